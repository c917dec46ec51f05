"""Replica processes' identity, so that a restarted control plane can adopt them.

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("replicas") as batch:
        batch.add_column(sa.Column("process_started", sa.Float, nullable=True))
        batch.add_column(sa.Column("fingerprint", sa.String(64), nullable=False, server_default=""))


def downgrade() -> None:
    with op.batch_alter_table("replicas") as batch:
        batch.drop_column("fingerprint")
        batch.drop_column("process_started")
