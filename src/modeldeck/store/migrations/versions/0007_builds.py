"""Builds: an isolated, cached Python environment per model version.

* ``deployments.env_manager``: ``local`` (the platform's environment, as before), ``uv`` or
  ``virtualenv``;
* ``builds``: one row per build of a deployment's environment, with its status, the cache key,
  whether the cache had it, the resolved packages, the log and the duration.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from modeldeck.store.schema import JSONType

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("deployments") as batch:
        batch.add_column(
            sa.Column("env_manager", sa.String(16), nullable=False, server_default="local")
        )
    op.create_table(
        "builds",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column(
            "deployment_id",
            sa.String(36),
            sa.ForeignKey("deployments.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("reason", sa.String(16), nullable=False),
        sa.Column("model_name", sa.String(255), nullable=False),
        sa.Column("model_version", sa.String(32), nullable=False),
        sa.Column("model_uri", sa.String(1024), nullable=False),
        sa.Column("env_manager", sa.String(16), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("status_message", sa.Text, nullable=False),
        sa.Column("cache_key", sa.String(64), nullable=True),
        sa.Column("cache_hit", sa.Boolean, nullable=False),
        sa.Column("python_version", sa.String(32), nullable=True),
        sa.Column("environment_path", sa.Text, nullable=True),
        sa.Column("model_path", sa.Text, nullable=True),
        sa.Column("packages", JSONType, nullable=True),
        sa.Column("model_packages", JSONType, nullable=True),
        sa.Column("log", sa.Text, nullable=False),
        sa.Column("duration_seconds", sa.Float, nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_index("ix_builds_deployment_created", "builds", ["deployment_id", "created_at"])


def downgrade() -> None:
    op.drop_index("ix_builds_deployment_created", table_name="builds")
    op.drop_table("builds")
    with op.batch_alter_table("deployments") as batch:
        batch.drop_column("env_manager")
