"""Following a registry alias: what one poll decides, on both stores, with a fake runtime and
the real MLflow registry (tests/integration/test_follow_alias.py runs it with real replicas).

The tests move an alias of their own (``follow``) so that the shared registry's ``champion``,
which other tests deploy, stays put.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from modeldeck.config import Settings
from modeldeck.deployments.schemas import DeploymentCreate, RedeployRequest
from modeldeck.deployments.service import DeploymentService
from modeldeck.registry import Registry
from modeldeck.store import Store
from tests.conftest import Registered
from tests.deployments.test_service import history
from tests.fixtures import schema_drift
from tests.runtimes.test_local import FakeRuntime

ALIAS = "follow"


@pytest.fixture
def move_alias(mlflow_registry: Registered) -> Iterator[Callable[[str], None]]:
    """Points ``iris@follow`` at a version; the alias starts at v1 and is removed afterwards."""
    from mlflow import MlflowClient

    uri = mlflow_registry.tracking_uri
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)

    def move(version: str) -> None:
        client.set_registered_model_alias("iris", ALIAS, version)

    move("1")
    yield move
    client.delete_registered_model_alias("iris", ALIAS)


def test_one_poll_rolls_out_a_moved_alias_and_nothing_else(
    store_url: str,
    mlflow_registry: Registered,
    tmp_path: Path,
    move_alias: Callable[[str], None],
) -> None:
    move = move_alias
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
            if all(rt.rolling_out(n) is None for n in ("fol", "pin", "fixed")):
                break
        await asyncio.gather(*rt._drains)

    async def run() -> None:
        view = await service.create(DeploymentCreate(name="fol", model="iris", alias=ALIAS))
        assert (view.version, view.version_spec, view.track_alias) == ("1", "@follow", True)
        pin = await service.create(DeploymentCreate(name="pin", model="iris", version="1"))
        assert pin.track_alias is False
        fixed = await service.create(
            DeploymentCreate(name="fixed", model="iris", alias=ALIAS, track_alias=False)
        )
        assert (fixed.version_spec, fixed.track_alias) == ("@follow", False)
        await settle()

        # the alias points at the serving version: nothing
        assert await service.follow_aliases() == {}
        assert rt.rolling_out("fol") is None

        # the alias moves: the follower rolls out (the pinned ones never move)
        move("2")
        assert await service.follow_aliases() == {"fol": "2"}
        view = await service.get("fol")
        assert view.rollout is not None and view.rollout.version == "2"
        assert rt.rolling_out("pin") is None and rt.rolling_out("fixed") is None
        await settle()
        view = await service.get("fol")
        assert (view.version, view.version_spec, view.track_alias) == ("2", "@follow", True)
        assert (await service.get("pin")).version == "1"
        assert (await service.get("fixed")).version == "1"
        assert await service.follow_aliases() == {}

        # a rollback holds the version it left while the alias still points there
        await service.rollback("fol")
        await settle()
        view = await service.get("fol")
        assert (view.version, view.track_alias, view.alias_held_version) == ("1", True, "2")
        assert await service.follow_aliases() == {}
        assert rt.rolling_out("fol") is None
        # ... until the alias points elsewhere (here: back at the serving version)
        move("1")
        assert await service.follow_aliases() == {}
        assert (await service.get("fol")).alias_held_version is None
        move("2")
        assert await service.follow_aliases() == {"fol": "2"}
        await settle()
        assert (await service.get("fol")).version == "2"

        # a version that fails to roll out is held, not retried at every poll
        rt.broken = lambda spec: spec.name == "fol" and spec.model_version == "1"
        move("1")
        assert await service.follow_aliases() == {"fol": "1"}
        await settle()
        view = await service.get("fol")
        assert (view.version, view.status, view.alias_held_version) == ("2", "deployed", "1")
        assert view.status_message.startswith("rollout of iris version 1 failed"), view
        entries = len(history(store))
        assert await service.follow_aliases() == {}
        assert rt.rolling_out("fol") is None
        assert len(history(store)) == entries

        # a redeploy with the alias asks for it explicitly: the hold is released
        rt.broken = lambda spec: False
        await service.redeploy_version("fol", RedeployRequest(alias=ALIAS))
        await settle()
        view = await service.get("fol")
        assert (view.version, view.alias_held_version, view.track_alias) == ("1", None, True)

        # redeployed to a version number, it is pinned and stays there
        await service.redeploy_version("fol", RedeployRequest(version="1"))
        await settle()
        move("2")
        assert (await service.get("fol")).track_alias is False
        assert await service.follow_aliases() == {}

        # a stopped follower is not started by a move
        await service.redeploy_version("fol", RedeployRequest(alias=ALIAS))
        await settle()
        assert (await service.get("fol")).version == "2"
        await service.stop("fol")
        move("1")
        assert await service.follow_aliases() == {}
        assert not rt.running("fol")
        for name in ("fol", "pin", "fixed"):
            await service.delete(name)

    try:
        asyncio.run(run())
    finally:
        store.close()


def test_a_poll_while_a_rollback_is_being_recorded_keeps_the_hold(
    store_url: str,
    mlflow_registry: Registered,
    tmp_path: Path,
    move_alias: Callable[[str], None],
) -> None:
    """The rollback's replicas are healthy and the runtime says so, but the row still names
    the version rolled back from while the event is being recorded: a poll then must not read
    that row as "the alias moved back to the serving version" and release the hold (it did
    once, and the next poll rolled the held version out again)."""
    store = Store(store_url)
    store.migrate()
    settings = Settings(data_dir=tmp_path, mlflow_tracking_uri=mlflow_registry.tracking_uri)
    rt = FakeRuntime(settings)
    service = DeploymentService(settings, store, Registry(mlflow_registry.tracking_uri), rt)
    rt._listener = service.on_runtime_event
    recording, release = threading.Event(), threading.Event()
    record = service._record_event

    def slow_record(event: Any, rollout: Any) -> Any:  # a slow commit, made to order
        if rollout is not None and rollout.rollback:
            recording.set()
            assert release.wait(30)
        return record(event, rollout)

    service._record_event = slow_record  # type: ignore[method-assign]

    async def settle() -> None:
        for _ in range(10):
            await rt._tick()
            if rt.rolling_out("fol") is None:
                break

    async def run() -> None:
        await service.create(DeploymentCreate(name="fol", model="iris", alias=ALIAS))
        await settle()
        move_alias("2")
        assert await service.follow_aliases() == {"fol": "2"}
        await settle()
        await service.rollback("fol")
        ticking = asyncio.create_task(settle())
        await asyncio.to_thread(recording.wait, 30)
        assert (await service.get("fol")).version == "2"  # the row is not recorded yet
        assert await service.follow_aliases() == {}
        release.set()
        await ticking
        view = await service.get("fol")
        assert (view.version, view.alias_held_version) == ("1", "2")
        assert await service.follow_aliases() == {}
        assert rt.rolling_out("fol") is None
        await service.delete("fol")

    try:
        asyncio.run(run())
    finally:
        release.set()
        store.close()


def test_the_migration_adds_the_alias_columns_the_schema_declares(tmp_path: Path) -> None:
    from sqlalchemy import create_engine, inspect

    url = f"sqlite:///{tmp_path / 'm.db'}"
    assert schema_drift(url) == []
    engine = create_engine(url)
    with engine.connect() as conn:
        columns = {c["name"] for c in inspect(conn).get_columns("deployments")}
    engine.dispose()
    assert {"track_alias", "alias_held_version"} <= columns
