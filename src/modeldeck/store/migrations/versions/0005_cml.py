"""Cloudera ML API v2 objects (``cmlapi``): models, model builds and model deployments.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from modeldeck.store.schema import JSONType

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "cml_models",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("project_id", sa.String(255), nullable=False),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("description", sa.Text, nullable=False),
        sa.Column("deployment_name", sa.String(63), nullable=False, unique=True),
        sa.Column("registered_model_id", sa.String(255), nullable=True),
        sa.Column("auth_enabled", sa.Boolean, nullable=False),
        sa.Column("access_key_hash", sa.String(64), nullable=True),
        sa.Column("access_key_prefix", sa.String(16), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("project_id", "name"),
    )
    op.create_table(
        "cml_model_builds",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column(
            "model_id",
            sa.String(36),
            sa.ForeignKey("cml_models.id", ondelete="CASCADE"),
            nullable=False,
            index=True,
        ),
        sa.Column("project_id", sa.String(255), nullable=False),
        sa.Column("registered_model_version_id", sa.String(255), nullable=True),
        sa.Column("model_name", sa.String(255), nullable=False),
        sa.Column("model_version", sa.String(255), nullable=False),
        sa.Column("model_uri", sa.String(1024), nullable=False),
        sa.Column("file_path", sa.Text, nullable=True),
        sa.Column("function_name", sa.String(255), nullable=True),
        sa.Column("comment", sa.Text, nullable=False),
        sa.Column("runtime_identifier", sa.String(1024), nullable=True),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("status_message", sa.Text, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_table(
        "cml_model_deployments",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column(
            "model_id",
            sa.String(36),
            sa.ForeignKey("cml_models.id", ondelete="CASCADE"),
            nullable=False,
            index=True,
        ),
        sa.Column(
            "build_id",
            sa.String(36),
            sa.ForeignKey("cml_model_builds.id", ondelete="CASCADE"),
            nullable=False,
            index=True,
        ),
        sa.Column("project_id", sa.String(255), nullable=False),
        sa.Column("crn", sa.String(255), nullable=False),
        sa.Column("cpu", sa.Float, nullable=True),
        sa.Column("memory", sa.Float, nullable=True),
        sa.Column("replicas", sa.Integer, nullable=False),
        sa.Column("environment", JSONType, nullable=False),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("status_message", sa.Text, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("stopped_at", sa.DateTime(timezone=True), nullable=True),
    )


def downgrade() -> None:
    op.drop_table("cml_model_deployments")
    op.drop_table("cml_model_builds")
    op.drop_table("cml_models")
