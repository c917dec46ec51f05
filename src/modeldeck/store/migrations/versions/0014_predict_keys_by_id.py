"""Predict keys belong to a deployment, not to a name.

``api_keys.deployment_id``: the deployment a ``predict:<deployment>`` key opens, deleted with
it (a foreign key with ``ON DELETE CASCADE``), so that a key cannot outlive its deployment and
open a later deployment of the same name. Keys made before this migration are bound to the
deployment that has their name now; one whose deployment is gone stays unbound and opens
nothing (revoke it).

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("api_keys") as batch:
        batch.add_column(sa.Column("deployment_id", sa.String(36), nullable=True))
        batch.create_foreign_key(
            "fk_api_keys_deployment", "deployments", ["deployment_id"], ["id"], ondelete="CASCADE"
        )
        batch.create_index("ix_api_keys_deployment_id", ["deployment_id"])
    op.execute(
        "UPDATE api_keys SET deployment_id = (SELECT d.id FROM deployments d "
        "WHERE 'predict:' || d.name = api_keys.scope) WHERE scope LIKE 'predict:%'"
    )


def downgrade() -> None:
    with op.batch_alter_table("api_keys") as batch:
        batch.drop_index("ix_api_keys_deployment_id")
        batch.drop_constraint("fk_api_keys_deployment", type_="foreignkey")
        batch.drop_column("deployment_id")
