"""The deployments service's rollouts, rollbacks and history on both stores, with a fake
runtime (tests/integration/test_rollout.py runs the same story with real replicas)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from sqlalchemy import select

from modeldeck.config import Settings
from modeldeck.deployments.schemas import DeploymentCreate, RedeployRequest
from modeldeck.deployments.service import HISTORY_LIMIT, DeploymentService
from modeldeck.errors import Conflict
from modeldeck.registry import Registry
from modeldeck.store import Store
from modeldeck.store.schema import DeploymentHistoryRow
from tests.conftest import Registered
from tests.fixtures import schema_drift
from tests.runtimes.test_local import FakeRuntime


def history(store: Store) -> list[tuple[str, str, str]]:
    with store.read() as session:
        rows = session.scalars(select(DeploymentHistoryRow).order_by(DeploymentHistoryRow.id))
        return [(r.model_name, r.model_version, r.status) for r in rows]


def test_redeploy_failure_and_rollback_flip_the_row_only_when_traffic_moves(
    store_url: str, mlflow_registry: Registered, tmp_path: Path
) -> None:
    store = Store(store_url)
    store.migrate()
    settings = Settings(
        data_dir=tmp_path,
        mlflow_tracking_uri=mlflow_registry.tracking_uri,
        replica_max_start_failures=2,
        restart_backoff_max_seconds=0.0,
    )
    rt = FakeRuntime(settings)
    service = DeploymentService(settings, store, Registry(mlflow_registry.tracking_uri), rt)
    rt._listener = service.on_runtime_event

    async def settle() -> None:
        for _ in range(10):
            await rt._tick()
            if rt.rolling_out("svc") is None:
                break
        await asyncio.gather(*rt._drains)

    async def run() -> None:
        await service.create(DeploymentCreate(name="svc", model="iris", version="1"))
        await rt._tick()
        assert (await service.get("svc")).status == "deployed"
        with pytest.raises(Conflict):
            await service.rollback("svc")

        # v1 -> v2: until every v2 replica is healthy the row, the route and the traffic stay v1
        rt.healthy = lambda r: r.spec.model_version == "1"
        view = await service.redeploy_version("svc", RedeployRequest(version="2"))
        assert (view.version, view.status) == ("1", "deploying")
        assert view.rollout is not None and view.rollout.version == "2"
        await rt._tick()
        route = service.route("svc")
        assert route is not None and route.version == "1"
        assert (await service.get("svc")).version == "1"
        assert history(store) == [("iris", "1", "serving"), ("iris", "2", "rolling out")]
        rt.healthy = lambda r: True
        await settle()
        view = await service.get("svc")
        assert (view.version, view.status, view.rollout) == ("2", "deployed", None)
        route = service.route("svc")
        assert route is not None and route.version == "2"
        assert [(r.index, r.version) for r in view.replica_states] == [(1, "2")]
        assert history(store) == [("iris", "1", "retired"), ("iris", "2", "serving")]

        # a version that cannot start: v2 keeps serving and the row says why
        rt.broken = lambda spec: spec.model_name == "broken"
        await service.redeploy_version("svc", RedeployRequest(model="broken"))
        await settle()
        view = await service.get("svc")
        assert (view.model, view.version, view.status) == ("iris", "2", "deployed")
        assert view.status_message.startswith("rollout of broken version 1 failed"), view
        assert "iris version 2 keeps serving" in view.status_message
        assert "failed to start 2 times" in view.status_message
        assert history(store)[-1] == ("broken", "1", "failed")

        # rollback: back to v1 the same way; v2 is then no target, so a second one is refused
        view = await service.rollback("svc")
        assert view.rollout is not None and view.rollout.rollback
        await settle()
        view = await service.get("svc")
        assert (view.version, view.model_uri, view.status) == ("1", "models:/iris/1", "deployed")
        assert history(store) == [
            ("iris", "1", "serving"),
            ("iris", "2", "rolled back"),
            ("broken", "1", "failed"),
        ]
        with pytest.raises(Conflict):
            await service.rollback("svc")

        # nothing serves (stopped): a redeploy replaces at once, and the row says so at once
        await service.stop("svc")
        view = await service.redeploy_version("svc", RedeployRequest(version="2"))
        assert (view.version, view.status, view.rollout) == ("2", "deploying", None)
        await settle()
        assert (await service.get("svc")).status == "deployed"
        assert history(store)[-2:] == [("broken", "1", "failed"), ("iris", "2", "serving")]

        # the history stays small
        for version in ["1", "2"] * (HISTORY_LIMIT // 2 + 1):
            await service.redeploy_version("svc", RedeployRequest(version=version))
            await settle()
        assert len(history(store)) == HISTORY_LIMIT
        assert (await service.get("svc")).version == "2"
        await service.delete("svc")
        assert history(store) == []

    try:
        asyncio.run(run())
    finally:
        store.close()


def test_the_migration_creates_the_history_the_schema_declares(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'm.db'}"
    assert schema_drift(url) == []
    assert "deployment_history" in Store(url).table_names()
