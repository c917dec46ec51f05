"""Migration 0016: existing deployments keep working. Keys made before it stay hashes only (and
keep opening their endpoints); each CML deployment gets a CRN of its own and remembers the
modeldeck deployment it ran as, so its old records read back under the new CRN."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import create_engine, text

from modeldeck.auth.keys import matches, new_access_key
from modeldeck.compat.cml_records import CmlRecords
from modeldeck.crn import deployment_crn
from modeldeck.records.model_metrics import ModelMetrics
from modeldeck.records.sdk_backends import target_of
from modeldeck.store import Store
from modeldeck.store.schema import CmlModelDeploymentRow, CmlModelRow, DeploymentRow
from tests.store.test_key_scopes_migration import _alembic

CREATED = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
CREATED_MS = int(CREATED.timestamp() * 1000)


def test_existing_deployments_keep_working_after_the_migration(store_url: str) -> None:
    if store_url.startswith("sqlite"):
        Path(store_url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    _alembic(store_url, "upgrade", "0015")
    key = new_access_key()
    engine = create_engine(store_url)
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO deployments (id, name, crn, model_name, model_version, version_spec,"
                " model_uri, runtime, replicas, environment, auth_enabled, access_key_hash,"
                " access_key_prefix, desired_state, status, status_message, kind, source,"
                " track_metrics, env_manager, track_alias, created_at, updated_at) VALUES"
                " ('dep', 'iris-lab', :crn, 'iris', '1', '1', 'models:/iris/1', 'local', 1, '{}',"
                " true, :hash, :prefix, 'running', 'deployed', '', 'endpoint', 'registry', true,"
                " 'local', false, :at, :at)"
            ),
            {"crn": deployment_crn("dep"), "hash": key.hash, "prefix": key.prefix, "at": CREATED},
        )
        conn.execute(
            text(
                "INSERT INTO cml_models (id, project_id, name, description, deployment_name,"
                " registered_model_id, auth_enabled, access_key_hash, access_key_prefix,"
                " created_at, updated_at) VALUES ('m', 'lab', 'iris', '', 'iris-lab', 'iris',"
                " true, :hash, :prefix, :at, :at)"
            ),
            {"hash": key.hash, "prefix": key.prefix, "at": CREATED},
        )
        conn.execute(
            text(
                "INSERT INTO cml_model_builds (id, model_id, project_id, model_name,"
                " model_version, model_uri, comment, status, status_message, created_at,"
                " updated_at) VALUES ('b', 'm', 'lab', 'iris', '1', '', '', 'built', '', :at, :at)"
            ),
            {"at": CREATED},
        )
        for row_id, crn in (("d", deployment_crn("dep")), ("failed", "")):
            conn.execute(
                text(
                    "INSERT INTO cml_model_deployments (id, model_id, build_id, project_id, crn,"
                    " replicas, environment, status, status_message, created_at, updated_at)"
                    " VALUES (:id, 'm', 'b', 'lab', :crn, 1, '{}', 'deploying', '', :at, :at)"
                ),
                {"id": row_id, "crn": crn, "at": CREATED},
            )
    engine.dispose()

    store = Store(store_url)
    store.migrate()
    with store.read() as session:
        deployment = session.get_one(DeploymentRow, "dep")
        model = session.get_one(CmlModelRow, "m")
        live = session.get_one(CmlModelDeploymentRow, "d")
        failed = session.get_one(CmlModelDeploymentRow, "failed")
    # the old key still opens the endpoint, and reads back as null until rotated
    assert matches(key.plaintext, deployment.access_key_hash)
    assert deployment.access_key_encrypted is None and model.access_key_encrypted is None
    assert (live.crn, live.deployment_id, live.live_since_ms) == (
        deployment_crn("d"),
        "dep",
        [CREATED_MS],
    )
    assert (failed.crn, failed.deployment_id, failed.live_since_ms) == (
        deployment_crn("failed"),
        None,
        [],
    )
    ModelMetrics(store).record(
        target_of(deployment),
        [{"metrics": {"output": 1}, "end_timestamp_ms": CREATED_MS + 10, "model_version": "1"}],
    )
    records = CmlRecords(store)
    for query in ({"model_deployment_crn": deployment_crn("d")},
                  {"model_deployment_crn": deployment_crn("dep")}):  # fmt: skip
        [record] = records.iter(**query)
        assert record["modelDeploymentCrn"] == deployment_crn("d")
        assert record["metrics"] == {"prediction": 1}
    store.close()

    _alembic(store_url, "downgrade", "0015")
    engine = create_engine(store_url)
    with engine.connect() as conn:
        crns = dict(conn.execute(text("SELECT id, crn FROM cml_model_deployments")).all())
    engine.dispose()
    assert crns == {"d": deployment_crn("dep"), "failed": ""}
    _alembic(store_url, "upgrade", "head")
