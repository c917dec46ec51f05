"""Per-version scores on the reference data, and shadow predictions linked to stable ones.

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from modeldeck.store.schema import JSONType

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "version_scores",
        sa.Column(
            "reference_id",
            sa.String(36),
            sa.ForeignKey("reference_data.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("model_version", sa.String(32), primary_key=True),
        sa.Column(
            "deployment_id",
            sa.String(36),
            sa.ForeignKey("deployments.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("estimator", JSONType, nullable=True),
        sa.Column("metrics", JSONType, nullable=True),
        sa.Column("rows", sa.Integer, nullable=False),
        sa.Column("scored_ms", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_version_scores_deployment_id", "version_scores", ["deployment_id"])
    op.create_table(
        "shadow_links",
        sa.Column(
            "shadow_uuid",
            sa.String(36),
            sa.ForeignKey("predictions.uuid", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("stable_uuid", sa.String(36), nullable=False),
        sa.Column("deployment_id", sa.String(36), nullable=False),
        sa.Column("shadow_end_ms", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_shadow_links_stable_uuid", "shadow_links", ["stable_uuid"])
    op.create_index(
        "ix_shadow_links_deployment_end", "shadow_links", ["deployment_id", "shadow_end_ms"]
    )


def downgrade() -> None:
    op.drop_table("shadow_links")
    op.drop_table("version_scores")
