"""Autoscaling and canaries that survive a restart.

* ``deployments.autoscaling``: the deployment's autoscaling policy (min and max replicas, target
  in-flight requests per replica, up and down delays), or null for a fixed replica count;
* ``canaries``: the canary (or shadow) a deployment runs now, one row per deployment, so a
  platform restart resumes it instead of ending it.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from modeldeck.store.schema import JSONType

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("deployments") as batch:
        batch.add_column(sa.Column("autoscaling", JSONType, nullable=True))
    op.create_table(
        "canaries",
        sa.Column(
            "deployment_id",
            sa.String(36),
            sa.ForeignKey("deployments.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("stable_version", sa.String(32), nullable=False),
        sa.Column("candidate_version", sa.String(32), nullable=False),
        sa.Column("request", JSONType, nullable=False),
        sa.Column("started_ms", sa.BigInteger, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("canaries")
    with op.batch_alter_table("deployments") as batch:
        batch.drop_column("autoscaling")
