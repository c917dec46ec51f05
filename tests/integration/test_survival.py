"""Replicas outlive the control plane: a restart adopts them instead of reloading the model.

A real ``modeldeck server`` on each store, a 2-replica deployment of the registry's Iris model,
then the platform stopped with SIGKILL or SIGTERM. The replica processes keep answering on
their own ports meanwhile; the next ``modeldeck server`` finds them (pid, start time and
fingerprint in the store), health-checks them and serves through them, with the same pids, in
seconds. Replicas whose start-up settings changed are replaced, not adopted, and
``modeldeck server --stop-all`` leaves nothing running.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import httpx
import psutil
import pytest

from tests.conftest import (
    BACKENDS,
    Registered,
    RunningPlatform,
    platform_on,
    start_platform,
)
from tests.fixtures import wait_for

# make test-slow: each test starts, kills or restarts real platform processes.
pytestmark = [pytest.mark.integration, pytest.mark.slow]

ROW = [5.1, 3.5, 1.4, 0.2]


@pytest.fixture(params=BACKENDS)
def running(
    request: pytest.FixtureRequest, mlflow_registry: Registered, tmp_path_factory: Any
) -> Iterator[RunningPlatform]:
    """A platform of its own per test: each test stops and restarts it."""
    data_dir = tmp_path_factory.mktemp(f"survival-{request.param}")
    with platform_on(request, request.param, data_dir, mlflow_registry.tracking_uri) as platform:
        yield platform


def predict(platform: RunningPlatform, key: str) -> httpx.Response:
    return httpx.post(
        f"{platform.url}/deployments/iris/predict",
        json={"inputs": [ROW]},
        headers={"Authorization": f"Bearer {key}"},
        timeout=30,
    )


def replicas(platform: RunningPlatform) -> dict[int, dict[str, Any]]:
    return {r["index"]: r for r in platform.client().deployment("iris")["replica_states"]}


def deploy(platform: RunningPlatform) -> tuple[str, dict[int, dict[str, Any]]]:
    key = platform.client().deploy("iris", "iris", version=1, replicas=2)["access_key"]
    platform.client().wait("iris", timeout=120)
    return key, replicas(platform)


def answers_directly(port: int) -> bool:
    """The replica's own port answers (the platform is not in the way)."""
    try:
        return httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def restart_and_adopt(running: RunningPlatform, key: str, sig: int) -> None:
    """Stop the platform with ``sig``, start it again: the same replicas serve."""
    before = replicas(running)
    running.stop(sig, keep_replicas=True)

    # The control plane is gone; its replicas are not.
    for replica in before.values():
        assert psutil.pid_exists(replica["pid"])
        assert answers_directly(replica["port"])

    started = time.monotonic()
    running.start()
    wait_for(lambda: running.client().deployment("iris")["status"] == "deployed", timeout=30)
    back_after = time.monotonic() - started
    print(f"deployed again {back_after:.1f} s after the restart began ({signal.Signals(sig).name})")
    after = replicas(running)
    assert {i: r["pid"] for i, r in after.items()} == {i: r["pid"] for i, r in before.items()}
    assert all(r["status"] == "ready" for r in after.values())

    answered = predict(running, key)
    assert answered.status_code == 200, answered.text
    uuid = answered.json()["uuid"]
    wait_for(
        lambda: any(
            r["predictionUuid"] == uuid for r in running.client().iter_metrics("iris", start_ms=0)
        ),
        timeout=30,
    )


def test_a_restart_adopts_the_running_replicas(running: RunningPlatform) -> None:
    """SIGKILL, then SIGTERM: each restart serves through the same replica processes."""
    key, _ = deploy(running)
    assert predict(running, key).status_code == 200
    restart_and_adopt(running, key, signal.SIGKILL)
    restart_and_adopt(running, key, signal.SIGTERM)
    assert running.logs().count("adopted (pid") == 4


@pytest.mark.parametrize("running", ["sqlite"], indirect=True)
def test_replicas_of_other_settings_are_replaced_and_stop_all_stops_them(
    running: RunningPlatform,
) -> None:
    key, before = deploy(running)
    running.stop(signal.SIGTERM, keep_replicas=True)
    running.env["MODELDECK_MAX_BATCH_ROWS"] = "123"  # replicas are started with it
    running.start()
    running.client().wait("iris", timeout=120)
    after = replicas(running)
    assert not {r["pid"] for r in after.values()} & {r["pid"] for r in before.values()}
    old = [r["pid"] for r in before.values()]
    wait_for(lambda: not any(_alive(pid) for pid in old), timeout=30)  # none left running
    assert predict(running, key).status_code == 200

    running.stop(signal.SIGTERM, keep_replicas=True)
    assert all(_alive(r["pid"]) for r in after.values())
    result = subprocess.run(
        [sys.executable, "-m", "modeldeck.cli.main", "server", "--stop-all"],
        env=running.env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "stopped 2 replica process(es)" in result.stdout
    assert not any(_alive(r["pid"]) for r in after.values())


@pytest.mark.slow
def test_replicas_stop_with_the_platform_when_told_to(
    mlflow_registry: Registered, tmp_path: Any
) -> None:
    platform = start_platform(
        tmp_path,
        f"sqlite:///{tmp_path / 'modeldeck.db'}",
        mlflow_registry.tracking_uri,
        MODELDECK_KEEP_REPLICAS_ON_EXIT="false",
    )
    try:
        _, before = deploy(platform)
        platform.stop(signal.SIGTERM, keep_replicas=True)
        pids = [r["pid"] for r in before.values()]
        wait_for(lambda: not any(_alive(pid) for pid in pids), timeout=30)
    finally:
        platform.stop()


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False
