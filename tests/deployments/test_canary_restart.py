"""A canary survives a platform restart, on both stores, in process with real replicas.

The whole platform runs behind FastAPI's TestClient (lifespan and all) on the real MLflow
registry of ``conftest`` (``iris`` v1 and v2); leaving the client stops the platform, and a new
app on the same data directory and store is the restart. A resumed canary is active again with
the same request and start, its candidate answers its share, its request counts are the stored
ones, and the policy goes on. One whose deployment came to serve another version or was stopped
before the restart, or whose candidate cannot start again, is ended with the reason. Every end
(stop, rollback, promotion, the deployment's deletion) deletes the stored canary, and a deleted
deployment's canary does not go on as one of a new deployment of that name. The SIGKILL of a
real server is in tests/integration/test_canary.py.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr
from sqlalchemy import select, update

from modeldeck.api.app import create_app
from modeldeck.config import Settings
from modeldeck.platform import Platform
from modeldeck.store import Store
from modeldeck.store.schema import CanaryRow
from tests.conftest import Registered
from tests.fixtures import wait_for

API_KEY = "mdk_canary_restart"
NAME = "restartable"
ROW = [5.1, 3.5, 1.4, 0.2]
NEVER = {"min_requests": 10_000}  # a policy that waits for as long as the test runs


class Up:
    """One run of the platform: the admin API, predictions, and the platform object."""

    def __init__(self, client: TestClient) -> None:
        self.client = client
        self.access_key = ""

    @property
    def platform(self) -> Platform:
        platform: Platform = self.client.app.state.platform  # type: ignore[attr-defined]
        return platform

    def api(self, method: str, path: str, body: Any = None, expect: int = 200) -> Any:
        response = self.client.request(
            method,
            f"/api/v1/deployments/{NAME}{path}",
            json=body,
            headers={"Authorization": f"Bearer {API_KEY}"},
        )
        assert response.status_code == expect, response.text
        return response.json() if response.content else None

    def canary(self) -> dict[str, Any]:
        view: dict[str, Any] = self.api("GET", "/canary")
        return view

    def predict(self) -> str:
        response = self.client.post(
            f"/deployments/{NAME}/predict",
            json={"inputs": [ROW]},
            headers={"Authorization": f"Bearer {self.access_key}"},
        )
        assert response.status_code == 200, response.text
        return str(response.headers["x-modeldeck-version"])

    def deploy(self) -> None:
        created = self.client.post(
            "/api/v1/deployments",
            json={"name": NAME, "model": "iris", "version": "1", "replicas": 1},
            headers={"Authorization": f"Bearer {API_KEY}"},
        )
        assert created.status_code == 201, created.text
        self.access_key = created.json()["access_key"]
        self.wait_serving("1")

    def wait_serving(self, version: str) -> None:
        def serving() -> bool:
            d = self.api("GET", "")
            assert d["status"] != "failed", d["status_message"]
            return bool(d["version"] == version and d["status"] == "deployed")

        wait_for(serving, timeout=120)

    def start_canary(self, **request: Any) -> dict[str, Any]:
        view: dict[str, Any] = self.api("POST", "/canary", {"version": "2", **request})
        wait_for(lambda: self.canary()["candidate_ready"], timeout=120)
        return view

    def ended(self) -> dict[str, Any]:
        def done() -> dict[str, Any] | None:
            view = self.canary()
            return None if view["active"] else view

        view: dict[str, Any] = wait_for(done, timeout=60)
        return view


@contextmanager
def running(settings: Settings) -> Iterator[Up]:
    with TestClient(create_app(settings)) as client:
        yield Up(client)


def settings_for(
    store_url: str, registry: Registered, data_dir: Path, interval: float = 0.2
) -> Settings:
    return Settings(
        data_dir=data_dir,
        store_url=store_url,
        mlflow_tracking_uri=registry.tracking_uri,
        api_key=SecretStr(API_KEY),
        canary_interval_seconds=interval,
        health_interval_seconds=0.25,
        alias_poll_seconds=0,
        summary_interval_seconds=0,
    )


def stored(store_url: str) -> list[tuple[str, str, dict[str, Any]]]:
    store = Store(store_url)
    try:
        with store.read() as session:
            rows = session.scalars(select(CanaryRow)).all()
            return [(r.stable_version, r.candidate_version, dict(r.request)) for r in rows]
    finally:
        store.close()


def test_a_canary_resumes_after_a_restart_with_its_request_and_counts(
    store_url: str, mlflow_registry: Registered, tmp_path: Path
) -> None:
    settings = settings_for(store_url, mlflow_registry, tmp_path)
    request = {"percent": 100, "replicas": 1, "policy": NEVER}
    with running(settings) as first:
        first.deploy()
        first.start_canary(**request)
        assert [first.predict() for _ in range(5)] == ["2"] * 5
        before = first.canary()
        key = first.access_key
    [(stable, candidate, kept)] = stored(store_url)
    assert (stable, candidate) == ("1", "2")
    assert kept["percent"] == 100 and kept["policy"]["min_requests"] == 10_000

    with running(settings) as second:
        second.access_key = key
        view = second.canary()
        assert view["active"]
        same = ("mode", "percent", "stable_version", "candidate_version", "started_at", "policy")
        assert {k: view[k] for k in same} == {k: before[k] for k in same}
        decisions = [d["decision"] for d in view["decisions"]]
        assert [d for d in decisions if d != "wait"] == ["resumed", "started"], decisions
        resumed = view["decisions"][decisions.index("resumed")]
        assert resumed["reasons"][0] == (
            "resumed after a platform restart: version 2 gets 100% of requests again, beside "
            "version 1"
        )
        assert resumed["reasons"][1].startswith(
            "requests counted since the start: 5 of the candidate's, 0 of the stable version's"
        )
        assert resumed["evidence"]["candidate"]["requests"] == 5

        wait_for(lambda: second.canary()["candidate_ready"], timeout=120)
        second.wait_serving("1")
        assert [second.predict() for _ in range(3)] == ["2"] * 3  # the split goes on
        # The policy goes on deciding, on the counts kept plus the new ones.
        wait_for(
            lambda: second.canary()["last"]["reasons"] == ["8 of 10000 candidate requests so far"],
            timeout=30,
        )
        assert len(stored(store_url)) == 1
        assert second.platform.runtime.candidate(NAME) == ("2", True, "")


ENDED_ON_RESUME = {
    "redeployed": ("stopped", "the deployment serves version 2 now"),
    "stopped": ("stopped", "the deployment was stopped"),
    "candidate gone": (
        "rollback",
        "the candidate cannot start again: registered model 'iris' has no version 99",
    ),
    "request invalid": ("stopped", "its stored request is not valid: 1 validation error"),
}


@pytest.mark.parametrize("meanwhile", list(ENDED_ON_RESUME))
def test_a_canary_that_cannot_go_on_is_ended_on_resume_with_the_reason(
    store_url: str, mlflow_registry: Registered, tmp_path: Path, meanwhile: str
) -> None:
    # No evaluation before the restart: the canary outlives what happened in the store.
    settings = settings_for(store_url, mlflow_registry, tmp_path, interval=3600)
    with running(settings) as first:
        first.deploy()
        first.start_canary(mode="shadow", policy=NEVER)
        if meanwhile == "redeployed":
            first.api("POST", "/redeploy", {"version": "2"})
            first.wait_serving("2")
        elif meanwhile == "stopped":
            first.api("POST", "/stop")
        assert first.canary()["active"]
    if meanwhile == "candidate gone":  # e.g. the version was deleted from the registry
        change: dict[str, Any] = {"candidate_version": "99"}
    elif meanwhile == "request invalid":  # e.g. stored by a version with other limits
        change = {"request": {"version": "2", "mode": "shadow", "percent": 500}}
    if meanwhile in ("candidate gone", "request invalid"):
        store = Store(store_url)
        with store.write() as session:
            session.execute(update(CanaryRow).values(**change))
        store.close()
    assert len(stored(store_url)) == 1

    with running(settings) as second:
        view = second.canary()
        assert not view["active"]
        last = view["decisions"][0]
        decision, reason = ENDED_ON_RESUME[meanwhile]
        assert last["decision"] == decision
        assert last["reasons"][0].startswith(reason), last["reasons"]
        assert (last["stable_version"], last["mode"]) == ("1", "shadow")
        assert second.platform.canaries.routing(NAME) is None
        assert second.platform.runtime.candidate(NAME) is None
        assert stored(store_url) == []


def test_every_end_of_a_canary_deletes_its_stored_row(
    store_url: str, mlflow_registry: Registered, tmp_path: Path
) -> None:
    settings = settings_for(store_url, mlflow_registry, tmp_path)
    decide_at_once = {"min_requests": 1, "max_drift": False, "performance_margin": None}
    with running(settings) as up:
        up.deploy()

        up.start_canary(policy=NEVER)
        assert len(stored(store_url)) == 1
        assert up.api("DELETE", "/canary")["decisions"][0]["decision"] == "stopped"
        assert stored(store_url) == []

        # No replica answers in a microsecond: the first candidate request rolls it back.
        up.start_canary(percent=100, policy={**decide_at_once, "max_p95_ms": 0.001})
        assert len(stored(store_url)) == 1
        assert up.predict() == "2"
        assert up.ended()["decisions"][0]["decision"] == "rollback"
        assert stored(store_url) == []

        up.start_canary(percent=100, policy=decide_at_once)
        assert up.predict() == "2"
        last = up.ended()["decisions"][0]
        assert last["decision"] == "promote", last
        assert stored(store_url) == []
        up.wait_serving("2")

        # Deleting the deployment deletes its canary with it.
        up.api("POST", "/canary", {"version": "1", "policy": NEVER})
        assert [s[:2] for s in stored(store_url)] == [("2", "1")]
        up.api("DELETE", "", expect=204)
        assert stored(store_url) == []
        # The next evaluation ends the canary in memory.
        wait_for(lambda: up.platform.canaries.routing(NAME) is None, timeout=30)


def test_a_deleted_deployments_canary_ends_though_its_name_is_deployed_again(
    store_url: str, mlflow_registry: Registered, tmp_path: Path
) -> None:
    settings = settings_for(store_url, mlflow_registry, tmp_path, interval=3600)
    with running(settings) as up:
        up.deploy()
        up.start_canary(policy=NEVER)
        up.api("DELETE", "", expect=204)
        assert stored(store_url) == []
        up.deploy()  # the same name and stable version, another deployment
        assert up.client.portal is not None
        assert up.client.portal.call(up.platform.canaries.evaluate, NAME) == "stopped"
        view = up.canary()
        assert not view["active"] and view["decisions"] == []  # the new deployment has none
        assert up.platform.canaries.routing(NAME) is None
