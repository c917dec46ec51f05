"""Rollouts and rollbacks: the versions a deployment served, and each replica's version.

* ``deployment_history``: one row per version a deployment was set to serve (``rolling out``,
  ``serving``, ``retired``, ``rolled back`` or ``failed``), newest last, a few per deployment;
  a rollback returns to the newest ``retired`` one;
* ``replicas.version``: the model version a replica runs (during a rollout two versions run).

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-08
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from modeldeck.store.schema import JSONType

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("replicas") as batch:
        batch.add_column(sa.Column("version", sa.String(32), nullable=False, server_default=""))
    op.create_table(
        "deployment_history",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True),
        sa.Column(
            "deployment_id",
            sa.String(36),
            sa.ForeignKey("deployments.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("reason", sa.String(16), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("message", sa.Text, nullable=False),
        sa.Column("model_name", sa.String(255), nullable=False),
        sa.Column("model_version", sa.String(32), nullable=False),
        sa.Column("version_spec", sa.String(255), nullable=False),
        sa.Column("model_uri", sa.String(1024), nullable=False),
        sa.Column("signature", JSONType, nullable=True),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("file_path", sa.Text, nullable=True),
        sa.Column("function_name", sa.String(255), nullable=True),
        sa.Column("env_manager", sa.String(16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("served_from", sa.DateTime(timezone=True), nullable=True),
        sa.Column("served_until", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_index(
        "ix_deployment_history_deployment_id", "deployment_history", ["deployment_id", "id"]
    )


def downgrade() -> None:
    op.drop_index("ix_deployment_history_deployment_id", table_name="deployment_history")
    op.drop_table("deployment_history")
    with op.batch_alter_table("replicas") as batch:
        batch.drop_column("version")
