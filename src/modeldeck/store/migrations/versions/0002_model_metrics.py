"""Model metrics: predictions, delayed metrics, aggregate metrics; batch and file deployments.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from modeldeck.store.schema import JSONType

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

ID = sa.BigInteger().with_variant(sa.Integer, "sqlite")


def upgrade() -> None:
    with op.batch_alter_table("deployments") as batch:
        batch.add_column(
            sa.Column("kind", sa.String(16), nullable=False, server_default="endpoint")
        )
        batch.add_column(
            sa.Column("source", sa.String(16), nullable=False, server_default="registry")
        )
        batch.add_column(sa.Column("file_path", sa.Text, nullable=True))
        batch.add_column(sa.Column("function_name", sa.String(255), nullable=True))
        batch.add_column(
            sa.Column("track_metrics", sa.Boolean, nullable=False, server_default=sa.true())
        )
    op.create_table(
        "predictions",
        sa.Column("uuid", sa.String(36), primary_key=True),
        sa.Column(
            "deployment_id",
            sa.String(36),
            sa.ForeignKey("deployments.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("model_version", sa.String(32), nullable=False),
        sa.Column("replica", sa.Integer, nullable=True),
        sa.Column("start_ms", sa.BigInteger, nullable=False),
        sa.Column("end_ms", sa.BigInteger, nullable=False),
        sa.Column("metrics", JSONType, nullable=False),
    )
    op.create_index("ix_predictions_deployment_end", "predictions", ["deployment_id", "end_ms"])
    op.create_table(
        "delayed_metrics",
        sa.Column("id", ID, primary_key=True, autoincrement=True),
        sa.Column(
            "prediction_uuid",
            sa.String(36),
            sa.ForeignKey("predictions.uuid", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("deployment_id", sa.String(36), nullable=False),
        sa.Column("ts_ms", sa.BigInteger, nullable=False),
        sa.Column("metrics", JSONType, nullable=False),
    )
    op.create_index("ix_delayed_metrics_prediction_uuid", "delayed_metrics", ["prediction_uuid"])
    op.create_index("ix_delayed_metrics_deployment_id", "delayed_metrics", ["deployment_id"])
    op.create_table(
        "aggregate_metrics",
        sa.Column("id", ID, primary_key=True, autoincrement=True),
        sa.Column(
            "deployment_id",
            sa.String(36),
            sa.ForeignKey("deployments.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("model_version", sa.String(32), nullable=False),
        sa.Column("start_ms", sa.BigInteger, nullable=False),
        sa.Column("end_ms", sa.BigInteger, nullable=False),
        sa.Column("ts_ms", sa.BigInteger, nullable=False),
        sa.Column("metrics", JSONType, nullable=False),
    )
    op.create_index("ix_aggregate_deployment_end", "aggregate_metrics", ["deployment_id", "end_ms"])


def downgrade() -> None:
    op.drop_table("aggregate_metrics")
    op.drop_table("delayed_metrics")
    op.drop_table("predictions")
    with op.batch_alter_table("deployments") as batch:
        for column in ("track_metrics", "function_name", "file_path", "source", "kind"):
            batch.drop_column(column)
