"""Technical monitoring: request rollups and replica resource samples.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from modeldeck.store.schema import LATENCY_BOUNDS_MS

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

ID = sa.BigInteger().with_variant(sa.Integer, "sqlite")


def upgrade() -> None:
    op.create_table(
        "technical_rollups",
        sa.Column("id", ID, primary_key=True, autoincrement=True),
        sa.Column("deployment_id", sa.String(36), nullable=False),
        sa.Column("version", sa.String(32), nullable=False),
        sa.Column("replica", sa.Integer, nullable=False),
        sa.Column("bucket_ms", sa.BigInteger, nullable=False),
        sa.Column("requests", sa.Integer, nullable=False),
        sa.Column("status_2xx", sa.Integer, nullable=False),
        sa.Column("status_4xx", sa.Integer, nullable=False),
        sa.Column("status_5xx", sa.Integer, nullable=False),
        sa.Column("status_other", sa.Integer, nullable=False),
        sa.Column("latency_sum_ms", sa.Float, nullable=False),
        sa.Column("latency_max_ms", sa.Float, nullable=False),
        sa.Column("req_bytes_sum", sa.BigInteger, nullable=False),
        sa.Column("req_bytes_max", sa.BigInteger, nullable=False),
        sa.Column("resp_bytes_sum", sa.BigInteger, nullable=False),
        sa.Column("resp_bytes_max", sa.BigInteger, nullable=False),
        *[
            sa.Column(f"lat_{i:02d}", sa.Integer, nullable=False, server_default="0")
            for i in range(len(LATENCY_BOUNDS_MS) + 1)
        ],
    )
    op.create_index(
        "ix_rollups_deployment_bucket", "technical_rollups", ["deployment_id", "bucket_ms"]
    )
    op.create_table(
        "replica_samples",
        sa.Column("id", ID, primary_key=True, autoincrement=True),
        sa.Column("deployment_id", sa.String(36), nullable=False),
        sa.Column("version", sa.String(32), nullable=False),
        sa.Column("replica", sa.Integer, nullable=False),
        sa.Column("ts_ms", sa.BigInteger, nullable=False),
        sa.Column("cpu_percent", sa.Float, nullable=False),
        sa.Column("rss_bytes", sa.BigInteger, nullable=False),
        sa.Column("cpu_seconds", sa.Float, nullable=False),
    )
    op.create_index("ix_samples_deployment_ts", "replica_samples", ["deployment_id", "ts_ms"])


def downgrade() -> None:
    op.drop_table("replica_samples")
    op.drop_table("technical_rollups")
