"""Redeploy and rollback without downtime, on a real platform under continuous load.

The tests run in order on one deployment: v1 -> v2 (a switch), v2 -> a model that cannot load
(a failed rollout: v2 keeps serving), then a rollback to v1. Every phase runs under a bounded
loop of predict requests and must lose none of them.

Each phase waits for real replicas to load (about 10 s each on two cores), so this module runs
on SQLite only and lets a replica fail to start twice rather than three times; the service's
rollout and history logic runs on both stores in tests/deployments/test_service.py.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from types import TracebackType

import httpx
import pytest

from modeldeck.client import ApiError
from tests.api.test_error_shape import assert_error_shape
from tests.conftest import Registered, RunningPlatform, start_platform
from tests.integration.test_deployments import ROW, predict, wait_for

pytestmark = pytest.mark.integration

NAME = "roll"


class Load:
    """Predict requests back to back from a thread, until stopped or bounded out (count, time).

    ``failures`` holds every answer that was not a 200 and every request that raised.
    """

    def __init__(
        self,
        platform: RunningPlatform,
        key: str,
        max_requests: int = 20_000,
        seconds: float = 150,
        name: str = NAME,
    ) -> None:
        self.url = f"{platform.url}/deployments/{name}/predict"
        self.key = key
        self.max_requests = max_requests
        self.seconds = seconds
        self.versions: list[str] = []
        self.failures: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        deadline = time.monotonic() + self.seconds
        with httpx.Client(headers={"Authorization": f"Bearer {self.key}"}, timeout=30) as http:
            for _ in range(self.max_requests):
                if self._stop.is_set() or time.monotonic() > deadline:
                    return
                try:
                    r = http.post(self.url, json={"inputs": [ROW]})
                except httpx.HTTPError as exc:
                    self.failures.append(f"{type(exc).__name__}: {exc}")
                    continue
                if r.status_code != 200:
                    self.failures.append(f"{r.status_code}: {r.text[:300]}")
                else:
                    self.versions.append(r.headers["x-modeldeck-version"])
                time.sleep(0.01)  # steady, not saturating: the new replicas need the CPU

    def __enter__(self) -> Load:
        self._thread.start()
        time.sleep(0.3)
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        time.sleep(0.3)  # a little traffic after the change too
        self._stop.set()
        self._thread.join(60)
        assert not self._thread.is_alive()


@pytest.fixture(scope="module")
def platform(
    mlflow_registry: Registered, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningPlatform]:
    data_dir = tmp_path_factory.mktemp("rollout")
    running = start_platform(
        data_dir,
        f"sqlite:///{data_dir / 'modeldeck.db'}",
        mlflow_registry.tracking_uri,
        MODELDECK_REPLICA_MAX_START_FAILURES="2",
    )
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture(scope="module")
def key(platform: RunningPlatform) -> str:
    created = platform.client().deploy(NAME, "iris", version=1)
    platform.client().wait(NAME, timeout=120)
    return str(created["access_key"])


def served_by(platform: RunningPlatform, key: str) -> set[str]:
    return {
        predict(platform, NAME, key, {"inputs": [ROW]}).headers["x-modeldeck-version"]
        for _ in range(10)
    }


def test_rollback_with_no_history_is_409(platform: RunningPlatform, key: str) -> None:
    r = httpx.post(
        f"{platform.url}/api/v1/deployments/{NAME}/rollback",
        headers={"Authorization": f"Bearer {platform.api_key}"},
        timeout=30,
    )
    error = assert_error_shape(r, 409, "conflict")
    assert error["details"] == {"deployment": NAME}
    assert "no previous version" in error["message"]
    assert served_by(platform, key) == {"1"}, "a refused rollback changes nothing"


def test_a_version_switch_under_load_loses_no_request(platform: RunningPlatform, key: str) -> None:
    client = platform.client()
    with Load(platform, key) as load:
        answer = client.redeploy(NAME, version=2)
        # The row describes the serving version until the new one takes the traffic.
        assert answer["version"] == "1" and answer["rollout"]["version"] == "2", answer
        assert answer["status"] == "deploying"
        d = client.wait(NAME, timeout=180, version="2")
    assert load.failures == []
    assert load.versions[0] == "1" and load.versions[-1] == "2"
    first_v2 = load.versions.index("2")
    assert set(load.versions[first_v2:]) == {"2"}, "once v2 answers, v1 does not any more"
    assert d["version"] == "2" and d["rollout"] is None and d["status_message"] == ""
    states = {r["index"]: (r["version"], r["status"]) for r in d["replica_states"]}
    assert states[1] == ("2", "ready"), "the new replica has an index of its own"
    assert states.get(0, ("1", "stopped"))[0] == "1"

    def drained() -> bool:
        replicas = client.deployment(NAME)["replica_states"]
        return [(r["index"], r["version"]) for r in replicas] == [(1, "2")]

    wait_for(drained, timeout=60)  # the old replica drains and is stopped, its row removed
    assert served_by(platform, key) == {"2"}
    # The dashboard's Logs tab lists the live replica, not the index the old one had.
    logs = httpx.get(
        f"{platform.url}/api/v1/deployments/{NAME}/logs",
        headers={"Authorization": f"Bearer {platform.api_key}"},
    ).json()
    assert [(r["replica"], r["status"]) for r in logs["replicas"]] == [(1, "ready")]


def cli(platform: RunningPlatform, *args: str) -> tuple[int, str]:
    from click.testing import CliRunner

    from modeldeck.cli.main import main

    base = ["--url", platform.url, "--api-key", platform.api_key]
    result = CliRunner().invoke(main, [*base, *args])
    return result.exit_code, result.output


def test_a_broken_new_version_never_takes_traffic(platform: RunningPlatform, key: str) -> None:
    client = platform.client()
    with Load(platform, key) as load:
        # The CLI waits for the new version and fails when it never serves.
        code, out = cli(platform, "deployments", "redeploy", NAME, "--model", "broken")
    assert code == 1, out
    assert "rollout_failed" in out
    assert load.failures == []
    assert set(load.versions) == {"2"}
    d = client.deployment(NAME)
    assert (d["status"], d["model"], d["version"]) == ("deployed", "iris", "2"), d
    assert d["rollout"] is None
    message = d["status_message"]
    assert "rollout of broken version 1 failed" in message, message
    assert "iris version 2 keeps serving" in message
    assert "fails to load on purpose" in message, "the log tail says why"
    assert {r["version"] for r in d["replica_states"]} == {"2"}
    assert served_by(platform, key) == {"2"}


def test_rollback_returns_to_v1_under_load(platform: RunningPlatform, key: str) -> None:
    client = platform.client()
    with Load(platform, key) as load:
        code, out = cli(platform, "rollback", NAME, "--json")
    assert code == 0, out
    d = json.loads(out)
    assert load.failures == []
    assert load.versions[0] == "2" and load.versions[-1] == "1"
    assert d["version"] == "1" and d["model_uri"] == "models:/iris/1" and d["rollout"] is None
    assert served_by(platform, key) == {"1"}
    # v2 was rolled back from, and the broken version never served: nothing further back.
    with pytest.raises(ApiError) as again:
        client.rollback(NAME)
    assert again.value.status_code == 409
    code, out = cli(platform, "rollback", NAME)
    assert code == 1 and "no previous version" in out and "409 conflict" in out
    client.delete(NAME)
    with pytest.raises(ApiError) as gone:
        client.rollback(NAME)
    assert gone.value.status_code == 404
