"""Canary decisions: a canary's start, each change of its policy's verdict and its end.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from modeldeck.store.schema import JSONType

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

ID = sa.BigInteger().with_variant(sa.Integer, "sqlite")


def upgrade() -> None:
    op.create_table(
        "canary_decisions",
        sa.Column("id", ID, primary_key=True, autoincrement=True),
        sa.Column("deployment_id", sa.String(36), nullable=False),
        sa.Column("stable_version", sa.String(32), nullable=False),
        sa.Column("candidate_version", sa.String(32), nullable=False),
        sa.Column("mode", sa.String(16), nullable=False),
        sa.Column("decision", sa.String(16), nullable=False),
        sa.Column("reasons", JSONType, nullable=False),
        sa.Column("evidence", JSONType, nullable=True),
        sa.Column("ts_ms", sa.BigInteger, nullable=False),
    )
    op.create_index(
        "ix_canary_decisions_deployment_ts", "canary_decisions", ["deployment_id", "ts_ms"]
    )


def downgrade() -> None:
    op.drop_table("canary_decisions")
