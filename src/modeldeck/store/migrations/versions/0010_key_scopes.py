"""Key scopes: what a control-plane API key may do, and when it was last used.

* ``api_keys.scope``: ``admin``, ``deploy``, ``read`` or ``predict:<deployment>``. Keys that
  exist before this migration could do everything, so they become ``admin``;
* ``api_keys.last_used_at``: when the key last authenticated a request (written at most once a
  minute per key), null until then.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("api_keys") as batch:
        batch.add_column(sa.Column("scope", sa.String(80), nullable=False, server_default="admin"))
        batch.add_column(sa.Column("last_used_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("api_keys") as batch:
        batch.drop_column("last_used_at")
        batch.drop_column("scope")
