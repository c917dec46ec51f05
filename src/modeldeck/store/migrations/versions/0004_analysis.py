"""Drift, performance and alerts: reference data, monitoring settings, alert rules and events.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from modeldeck.store.schema import JSONType

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

ID = sa.BigInteger().with_variant(sa.Integer, "sqlite")


def upgrade() -> None:
    with op.batch_alter_table("deployments") as batch:
        batch.add_column(sa.Column("monitoring", JSONType, nullable=True))
    op.create_table(
        "reference_data",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column(
            "deployment_id",
            sa.String(36),
            sa.ForeignKey("deployments.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("model_version", sa.String(32), nullable=False),
        sa.Column("source", sa.Text, nullable=False),
        sa.Column("rows", sa.Integer, nullable=False),
        sa.Column("columns", JSONType, nullable=False),
        sa.Column("target_column", sa.String(255), nullable=True),
        sa.Column("prediction_column", sa.String(255), nullable=True),
        sa.Column("estimator", JSONType, nullable=True),
        sa.Column("data", sa.LargeBinary, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("deployment_id", "model_version"),
    )
    op.create_table(
        "alert_rules",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column(
            "deployment_id",
            sa.String(36),
            sa.ForeignKey("deployments.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("spec", JSONType, nullable=False),
        sa.Column("state", JSONType, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("deployment_id", "name"),
    )
    op.create_table(
        "alert_events",
        sa.Column("id", ID, primary_key=True, autoincrement=True),
        sa.Column(
            "rule_id",
            sa.String(36),
            sa.ForeignKey("alert_rules.id", ondelete="CASCADE"),
            nullable=False,
            index=True,
        ),
        sa.Column("deployment_id", sa.String(36), nullable=False),
        sa.Column("rule_name", sa.String(100), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("metric", sa.String(255), nullable=False),
        sa.Column("value", sa.Float, nullable=False),
        sa.Column("samples", sa.Integer, nullable=False),
        sa.Column("message", sa.Text, nullable=False),
        sa.Column("ts_ms", sa.BigInteger, nullable=False),
        sa.Column("delivery", JSONType, nullable=True),
    )
    op.create_index("ix_alert_events_deployment_ts", "alert_events", ["deployment_id", "ts_ms"])


def downgrade() -> None:
    op.drop_table("alert_events")
    op.drop_table("alert_rules")
    op.drop_table("reference_data")
    with op.batch_alter_table("deployments") as batch:
        batch.drop_column("monitoring")
