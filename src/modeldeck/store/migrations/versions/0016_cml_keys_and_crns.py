"""Readable access keys, and a CRN of its own for every Cloudera ML deployment.

* ``deployments.access_key_encrypted`` and ``cml_models.access_key_encrypted``: the access key
  encrypted with the platform's secret (``modeldeck.auth.vault``). Keys made before this migration
  exist only as hashes: they keep working, and read back as null until rotated;
* ``cml_model_deployments.deployment_id``: the modeldeck deployment a CML deployment runs as.
  Until now its ``crn`` was that deployment's, shared by every CML deployment of a model; it
  becomes the CML deployment's own, ``.../model-deployment/<its id>`` (reading metrics by the old
  CRN still finds the modeldeck deployment's records);
* ``cml_model_deployments.live_since_ms``: when it became its model's live deployment, which
  tells the CML deployment each stored prediction belongs to. Existing deployments get their
  creation time.

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-04
"""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

from modeldeck.store.schema import JSONType

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None

CRN_PREFIX = "crn:cdp:ml:::workspace:modeldeck"  # as modeldeck.crn, frozen here
DEPLOYMENT_CRN = f"{CRN_PREFIX}/model-deployment/"

cml_deployments = sa.table(
    "cml_model_deployments",
    sa.column("id", sa.String),
    sa.column("crn", sa.String),
    sa.column("deployment_id", sa.String),
    sa.column("live_since_ms", JSONType),
    sa.column("created_at", sa.DateTime(timezone=True)),
)


def upgrade() -> None:
    for table in ("deployments", "cml_models"):
        with op.batch_alter_table(table) as batch:
            batch.add_column(sa.Column("access_key_encrypted", sa.Text, nullable=True))
    with op.batch_alter_table("cml_model_deployments") as batch:
        batch.add_column(sa.Column("deployment_id", sa.String(36), nullable=True))
        batch.add_column(sa.Column("live_since_ms", JSONType, nullable=True))
    connection = op.get_bind()
    rows = connection.execute(
        sa.select(cml_deployments.c.id, cml_deployments.c.crn, cml_deployments.c.created_at)
    ).all()
    for row_id, crn, created_at in rows:
        served_as = crn.removeprefix(DEPLOYMENT_CRN) if crn.startswith(DEPLOYMENT_CRN) else None
        connection.execute(
            cml_deployments.update()
            .where(cml_deployments.c.id == row_id)
            .values(
                crn=DEPLOYMENT_CRN + row_id,
                deployment_id=served_as,
                live_since_ms=[_ms(created_at)] if served_as else [],
            )
        )


def downgrade() -> None:
    connection = op.get_bind()
    rows = connection.execute(
        sa.select(cml_deployments.c.id, cml_deployments.c.deployment_id)
    ).all()
    for row_id, served_as in rows:
        connection.execute(
            cml_deployments.update()
            .where(cml_deployments.c.id == row_id)
            .values(crn=DEPLOYMENT_CRN + served_as if served_as else "")
        )
    with op.batch_alter_table("cml_model_deployments") as batch:
        batch.drop_column("live_since_ms")
        batch.drop_column("deployment_id")
    for table in ("cml_models", "deployments"):
        with op.batch_alter_table(table) as batch:
            batch.drop_column("access_key_encrypted")


def _ms(value: datetime | str) -> int:
    if isinstance(value, str):  # SQLite hands back text
        value = datetime.fromisoformat(value)
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return int(value.timestamp() * 1000)
