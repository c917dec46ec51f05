"""Alias tracking: a deployment from a registry alias follows it when it moves.

* ``deployments.track_alias``: follow the alias in ``version_spec`` (when it is one). Rows that
  exist before this migration get ``false``: an upgrade starts no rollout; a redeploy by alias
  makes them follow;
* ``deployments.alias_held_version``: a version the alias points at that the deployment does not
  follow to (it failed to roll out, or the deployment was rolled back from it), until the alias
  points elsewhere.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-09
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("deployments") as batch:
        batch.add_column(
            sa.Column("track_alias", sa.Boolean, nullable=False, server_default=sa.false())
        )
        batch.add_column(sa.Column("alias_held_version", sa.String(32), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("deployments") as batch:
        batch.drop_column("alias_held_version")
        batch.drop_column("track_alias")
