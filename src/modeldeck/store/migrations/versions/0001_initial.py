"""Deployments, their replicas and control-plane API keys.

Revision ID: 0001
Revises:
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from modeldeck.store.schema import JSONType

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "deployments",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("name", sa.String(63), nullable=False),
        sa.Column("crn", sa.String(255), nullable=False),
        sa.Column("model_name", sa.String(255), nullable=False),
        sa.Column("model_version", sa.String(32), nullable=False),
        sa.Column("version_spec", sa.String(255), nullable=False),
        sa.Column("model_uri", sa.String(1024), nullable=False),
        sa.Column("runtime", sa.String(16), nullable=False),
        sa.Column("replicas", sa.Integer, nullable=False),
        sa.Column("cpu", sa.Float, nullable=True),
        sa.Column("memory_mb", sa.Integer, nullable=True),
        sa.Column("environment", JSONType, nullable=False),
        sa.Column("auth_enabled", sa.Boolean, nullable=False),
        sa.Column("access_key_hash", sa.String(64), nullable=True),
        sa.Column("access_key_prefix", sa.String(16), nullable=True),
        sa.Column("desired_state", sa.String(16), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("status_message", sa.Text, nullable=False),
        sa.Column("signature", JSONType, nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_deployments_name", "deployments", ["name"], unique=True)
    op.create_index("ix_deployments_access_key_hash", "deployments", ["access_key_hash"])
    op.create_table(
        "replicas",
        sa.Column(
            "deployment_id",
            sa.String(36),
            sa.ForeignKey("deployments.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("index", sa.Integer, primary_key=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("pid", sa.Integer, nullable=True),
        sa.Column("port", sa.Integer, nullable=True),
        sa.Column("restarts", sa.Integer, nullable=False),
        sa.Column("last_error", sa.Text, nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "api_keys",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("key_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("prefix", sa.String(16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("api_keys")
    op.drop_table("replicas")
    op.drop_index("ix_deployments_access_key_hash", "deployments")
    op.drop_index("ix_deployments_name", "deployments")
    op.drop_table("deployments")
