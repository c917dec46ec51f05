"""Five-minute analysis summaries, and what keeps them checkable cheaply.

* ``analysis_summaries``: per deployment, five-minute bucket and model version, the additive
  aggregates drift and performance reports are assembled from (histograms, confusion counts,
  sums).
* ``delayed_metrics.prediction_end_ms``: the labelled prediction's time, so the labels of a
  bucket are counted (and joined) without a join over every prediction; filled for old rows.
* The predictions index gains ``model_version``, so counts per bucket and version are read from
  the index alone.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index(
        "ix_predictions_deployment_end_version",
        "predictions",
        ["deployment_id", "end_ms", "model_version"],
    )
    op.drop_index("ix_predictions_deployment_end", table_name="predictions")
    with op.batch_alter_table("delayed_metrics") as batch:
        batch.add_column(sa.Column("prediction_end_ms", sa.BigInteger, nullable=True))
    op.execute(
        "UPDATE delayed_metrics SET prediction_end_ms = "
        "(SELECT p.end_ms FROM predictions p WHERE p.uuid = delayed_metrics.prediction_uuid)"
    )
    op.create_index(
        "ix_delayed_deployment_prediction_end",
        "delayed_metrics",
        ["deployment_id", "prediction_end_ms", "id"],
    )
    op.create_table(
        "analysis_summaries",
        sa.Column(
            "deployment_id",
            sa.String(36),
            sa.ForeignKey("deployments.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("kind", sa.String(16), primary_key=True),
        sa.Column("bucket_ms", sa.BigInteger, primary_key=True),
        sa.Column("model_version", sa.String(32), primary_key=True),
        sa.Column("signature", sa.String(64), nullable=False),
        sa.Column("predictions", sa.Integer, nullable=False),
        sa.Column("labels", sa.Integer, nullable=False),
        sa.Column("label_max_id", sa.BigInteger, nullable=False),
        sa.Column("built_ms", sa.BigInteger, nullable=False),
        sa.Column("data", sa.LargeBinary, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("analysis_summaries")
    op.drop_index("ix_delayed_deployment_prediction_end", table_name="delayed_metrics")
    with op.batch_alter_table("delayed_metrics") as batch:
        batch.drop_column("prediction_end_ms")
    op.create_index("ix_predictions_deployment_end", "predictions", ["deployment_id", "end_ms"])
    op.drop_index("ix_predictions_deployment_end_version", table_name="predictions")
