"""The ``ray`` runtime against the ``local`` one: the same cases, the same answers.

Needs the ``ray`` extra (``make test-ray`` installs it). A Ray head on 127.0.0.1 (started here,
stopped at the end), one real ``modeldeck server`` that runs a deployment of iris with two
replicas on each runtime side by side.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from modeldeck.client import ApiError
from tests.conftest import Registered, RunningPlatform, free_port, start_platform
from tests.fixtures import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.ray]

ROW = [5.1, 3.5, 1.4, 0.2]
FEATURES = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
RUNTIMES = ["local", "ray"]


RAY = str(Path(sys.executable).parent / "ray")
# Token authentication turns itself on when ~/.ray/auth_token exists; this head is local.
RAY_ENV = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "RAY_AUTH_MODE": "disabled"}


def start_head(port: int) -> None:
    """A Ray head on 127.0.0.1:``port`` with 4 logical CPUs (one per replica)."""
    subprocess.run(
        [
            RAY, "start", "--head", "--port", str(port),
            "--num-cpus", "4", "--include-dashboard", "false", "--disable-usage-stats",
        ],
        check=True, env=RAY_ENV, capture_output=True, timeout=120,
    )  # fmt: skip


def stop_ray() -> None:
    subprocess.run([RAY, "stop", "--force"], env=RAY_ENV, capture_output=True, timeout=120)


@pytest.fixture(scope="module")
def ray_head(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A Ray head on this machine; its address."""
    port = free_port()
    start_head(port)
    try:
        yield f"127.0.0.1:{port}"
    finally:
        stop_ray()


@pytest.fixture(scope="module")
def platform(
    ray_head: str, mlflow_registry: Registered, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningPlatform]:
    data_dir = tmp_path_factory.mktemp("platform-ray")
    running = start_platform(
        data_dir,
        f"sqlite:///{data_dir / 'modeldeck.db'}",
        mlflow_registry.tracking_uri,
        MODELDECK_RAY_ADDRESS=ray_head,
        MODELDECK_RAY_HTTP_PORT=str(free_port()),
        RAY_USAGE_STATS_ENABLED="0",
        RAY_AUTH_MODE="disabled",
    )
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture(scope="module")
def deployed(platform: RunningPlatform) -> Iterator[dict[str, str]]:
    """iris version 2 with two replicas on each runtime: runtime -> access key."""
    client = platform.client()
    keys = {
        runtime: client.deploy(f"iris-{runtime}", "iris", version=2, replicas=2, runtime=runtime)[
            "access_key"
        ]
        for runtime in RUNTIMES
    }
    for runtime in RUNTIMES:
        d = client.wait(f"iris-{runtime}", timeout=240)
        assert d["runtime"] == runtime
        assert d["ready_replicas"] == 2, d
    yield keys
    for runtime in RUNTIMES:
        client.delete(f"iris-{runtime}")


def predict(platform: RunningPlatform, runtime: str, key: str, body: Any) -> httpx.Response:
    return httpx.post(
        f"{platform.url}/deployments/iris-{runtime}/predict",
        json=body,
        headers={"Authorization": f"Bearer {key}"},
        timeout=30,
    )


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_technical_metrics_count_the_requests_of_both_replicas(
    platform: RunningPlatform, deployed: dict[str, str], runtime: str
) -> None:
    client = platform.client()
    name = f"iris-{runtime}"
    n = 40  # the first requests the deployment sees (this test runs first)
    for _ in range(n):
        assert predict(platform, runtime, deployed[runtime], {"inputs": [ROW]}).status_code == 200
    data = wait_for(
        lambda: (
            d
            if (d := client.technical_metrics(name, start_ms=0))["totals"]["requests"] >= n
            else None
        ),
        timeout=30,
    )
    assert (data["totals"]["requests"], data["totals"]["failed"]) == (n, 0)
    table = {row["replica"]: row for row in data["replicas"]}
    assert table[0]["received"] > 0 and table[1]["received"] > 0, table
    assert sum(row["received"] for row in table.values()) == n
    states = client.deployment(name)["replica_states"]
    assert sorted(s["index"] for s in states) == [0, 1]
    assert all(s["status"] == "ready" and s["pid"] for s in states), states


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_predictions_answer_in_the_same_shape(
    platform: RunningPlatform, deployed: dict[str, str], runtime: str
) -> None:
    key = deployed[runtime]
    r = predict(platform, runtime, key, {"inputs": [ROW]})
    assert r.status_code == 200, r.text
    body = r.json()
    assert set(body) == {"prediction", "uuid"}
    assert body["prediction"] == [0]
    assert r.headers["x-prediction-id"] == body["uuid"]
    assert r.headers["x-modeldeck-version"] == "2"
    records = {"dataframe_records": [dict(zip(FEATURES, ROW, strict=True))] * 3}
    r = predict(platform, runtime, key, records)
    assert r.status_code == 200 and r.json()["prediction"] == [0, 0, 0]
    # Bad input: the same 422 naming the column, and wrong keys the same 401.
    r = predict(platform, runtime, key, {"dataframe_records": [{"sepal_length": 1.0}]})
    assert r.status_code == 422, r.text
    assert "sepal_width" in r.text
    assert predict(platform, runtime, "wrong", {"inputs": [ROW]}).status_code == 401
    r = httpx.post(
        f"{platform.url}/model", json={"accessKey": key, "request": {"inputs": [ROW]}}, timeout=30
    )
    assert r.status_code == 200 and r.json()["success"] is True, r.text


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_predictions_are_recorded_with_input_and_output(
    platform: RunningPlatform, deployed: dict[str, str], runtime: str
) -> None:
    client = platform.client()
    uuids = []
    for i in range(10):
        row = [ROW[0] + i / 10, *ROW[1:]]
        r = predict(platform, runtime, deployed[runtime], {"inputs": [row]})
        assert r.status_code == 200, r.text
        uuids.append(r.json()["uuid"])
    records = client.read_metrics(f"iris-{runtime}", uuids=uuids)["metrics"]
    assert sorted(r["predictionUuid"] for r in records) == sorted(uuids)
    crn = client.deployment(f"iris-{runtime}")["crn"]
    for record in records:
        assert record["modelDeploymentCrn"] == crn
        assert record["modelVersion"] == "2"
        assert set(record["metrics"]["input"]) == set(FEATURES)
        assert record["metrics"]["output"] == 0


# Reads the Serve controller's record of a deployment (its deployment_config), as Serve's own
# REST API would; in a process of its own so that this one never becomes a Ray driver.
SERVE_CONFIG = """
import json, sys, ray
ray.init(address=sys.argv[1], log_to_driver=False)
controller = ray.get_actor("SERVE_CONTROLLER_ACTOR", namespace="serve")
details = ray.get(controller.get_serve_instance_details.remote())
app = next(a for a in details["applications"] if a.rsplit("-", 1)[0] == sys.argv[2])
config = details["applications"][app]["deployments"]["replica"]["deployment_config"]
print(json.dumps(config))
"""

SERVE_APPS = """
import json, sys, ray
from ray import serve
ray.init(address=sys.argv[1], log_to_driver=False)
print(json.dumps(sorted(serve.status().applications)))
"""


def serve_apps(ray_head: str) -> list[str]:
    """The names of the Serve applications on the cluster."""
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "RAY_AUTH_MODE": "disabled"}
    done = subprocess.run(
        [sys.executable, "-c", SERVE_APPS, ray_head],
        env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def serve_deployment_config(ray_head: str, app: str) -> dict[str, Any]:
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "RAY_AUTH_MODE": "disabled"}
    done = subprocess.run(
        [sys.executable, "-c", SERVE_CONFIG, ray_head, app],
        env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def test_an_autoscaling_policy_becomes_serve_autoscaling_config(
    platform: RunningPlatform, ray_head: str
) -> None:
    client = platform.client()
    policy = {
        "min_replicas": 1,
        "max_replicas": 2,
        "target_inflight": 3.0,
        "scale_up_delay_seconds": 2.0,
        "scale_down_delay_seconds": 30.0,
    }
    created = client.deploy(
        "iris-auto", "iris", version=2, runtime="ray", autoscaling=policy, cpu=0.5
    )
    d = client.wait("iris-auto", timeout=240)
    assert d["runtime"] == "ray" and d["autoscaling"] == policy
    assert 1 <= d["ready_replicas"] <= 2 and d["replicas"] == 1
    r = httpx.post(
        f"{platform.url}/deployments/iris-auto/predict",
        json={"inputs": [ROW]},
        headers={"Authorization": f"Bearer {created['access_key']}"},
        timeout=30,
    )
    assert r.status_code == 200, r.text
    config = serve_deployment_config(ray_head, "iris-auto")
    scaling = config["autoscaling_config"]
    assert (scaling["min_replicas"], scaling["max_replicas"], scaling["initial_replicas"]) == (
        1, 2, 1
    )  # fmt: skip
    assert scaling["target_ongoing_requests"] == 3.0
    assert (scaling["upscale_delay_s"], scaling["downscale_delay_s"]) == (2.0, 30.0)
    # A fixed count again: Serve's autoscaler is off, num_replicas is back.
    client.scale("iris-auto", 2)
    wait_for(lambda: client.deployment("iris-auto")["ready_replicas"] == 2, timeout=120)
    config = serve_deployment_config(ray_head, "iris-auto")
    assert config.get("autoscaling_config") is None and config["num_replicas"] == 2
    client.delete("iris-auto")


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_scale_down_and_up(
    platform: RunningPlatform, deployed: dict[str, str], runtime: str
) -> None:
    client = platform.client()
    name = f"iris-{runtime}"

    def replicas(n: int) -> bool:
        d = client.deployment(name)
        live = [s for s in d["replica_states"] if s["status"] not in ("stopped",)]
        return d["ready_replicas"] == n and len(live) == n

    client.scale(name, 1)
    wait_for(lambda: replicas(1), timeout=120)
    assert predict(platform, runtime, deployed[runtime], {"inputs": [ROW]}).status_code == 200
    client.scale(name, 2)
    wait_for(lambda: replicas(2), timeout=120)
    for _ in range(5):
        assert predict(platform, runtime, deployed[runtime], {"inputs": [ROW]}).status_code == 200


class Load:
    """Requests in a loop on another thread: every status and answering version."""

    def __init__(self, platform: RunningPlatform, runtime: str, key: str) -> None:
        self.url = f"{platform.url}/deployments/iris-{runtime}/predict"
        self.key = key
        self.statuses: list[int] = []
        self.versions: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        with httpx.Client(timeout=30, headers={"Authorization": f"Bearer {self.key}"}) as http:
            while not self._stop.is_set():
                r = http.post(self.url, json={"inputs": [ROW]})
                self.statuses.append(r.status_code)
                self.versions.append(r.headers.get("x-modeldeck-version", ""))
                time.sleep(0.02)

    def __enter__(self) -> Load:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(60)


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_redeploy_under_load_fails_no_request_and_a_broken_version_never_serves(
    platform: RunningPlatform,
    deployed: dict[str, str],
    mlflow_registry: Registered,
    runtime: str,
) -> None:
    client = platform.client()
    name = f"iris-{runtime}"
    with Load(platform, runtime, deployed[runtime]) as load:
        client.redeploy(name, version=1)
        client.wait(name, version="1", timeout=240)
        time.sleep(1.0)
    assert load.statuses and set(load.statuses) == {200}, sorted(set(load.statuses))
    assert load.versions[-1] == "1"
    with Load(platform, runtime, deployed[runtime]) as load:
        client.redeploy(name, mlflow_registry.broken_model)

        def failed() -> dict[str, Any] | None:
            d = client.deployment(name)
            done = d["rollout"] is None and "rollout of broken" in d["status_message"]
            return d if done else None

        d = wait_for(failed, timeout=240)
    assert load.statuses and set(load.statuses) == {200}, sorted(set(load.statuses))
    assert (d["model"], d["version"], d["status"]) == ("iris", "1", "deployed"), d
    r = predict(platform, runtime, deployed[runtime], {"inputs": [ROW]})
    assert r.status_code == 200 and r.headers["x-modeldeck-version"] == "1"


def test_deleting_a_ray_deployment_removes_its_serve_application(
    platform: RunningPlatform, ray_head: str
) -> None:
    client = platform.client()
    client.deploy("iris-gone", "iris", version=1, runtime="ray")
    client.wait("iris-gone", timeout=240)
    client.delete("iris-gone")
    with pytest.raises(ApiError):
        client.deployment("iris-gone")
    apps = [a.rsplit("-", 1)[0] for a in serve_apps(ray_head)]
    assert "iris-ray" in apps and "iris-gone" not in apps


def test_a_replica_ray_cannot_place_is_shown_with_serves_reason(
    platform: RunningPlatform,
) -> None:
    """The head has 4 CPUs: a replica asking for 64 is never scheduled, and the deployment
    says why instead of 'starting Ray Serve replicas' for ever."""
    client = platform.client()
    client.deploy("iris-huge", "iris", version=1, runtime="ray", cpu=64)
    try:
        d = wait_for(
            lambda: d if "64" in (d := client.deployment("iris-huge"))["status_message"] else None,
            timeout=120,
        )
        assert d["status"] == "deploying" and d["ready_replicas"] == 0
        assert "resources" in d["status_message"].lower(), d["status_message"]
    finally:
        client.delete("iris-huge")


def ray_pids(platform: RunningPlatform, name: str) -> set[int]:
    """The pids of the deployment's ready Ray replicas (all on this machine here)."""
    states = platform.client().deployment(name)["replica_states"]
    return {s["pid"] for s in states if s["status"] == "ready" and s["pid"]}


def test_scaling_a_ray_deployment_leaves_its_serving_replicas_alone(
    platform: RunningPlatform, deployed: dict[str, str]
) -> None:
    """Serve scales a deployment of an unchanged version in place: 2 -> 3 -> 2 never replaces
    a serving replica, and no request fails meanwhile."""
    client = platform.client()
    name = "iris-ray"
    wait_for(lambda: len(ray_pids(platform, name)) == 2, timeout=60)
    before = ray_pids(platform, name)
    with Load(platform, "ray", deployed["ray"]) as load:
        client.scale(name, 3)
        wait_for(lambda: len(ray_pids(platform, name)) == 3, timeout=120)
        assert before < ray_pids(platform, name), "scaling up replaced a serving replica"
        client.scale(name, 2)
        wait_for(lambda: len(ray_pids(platform, name)) == 2, timeout=120)
    assert load.statuses and set(load.statuses) == {200}, sorted(set(load.statuses))
    assert len(ray_pids(platform, name) & before) >= 1


def test_two_platforms_on_one_cluster_keep_to_their_own_applications(
    platform: RunningPlatform,
    deployed: dict[str, str],
    ray_head: str,
    mlflow_registry: Registered,
    tmp_path: Path,
) -> None:
    """Serve's application names are global to a cluster: a second platform deploying a
    deployment of the same name, then deleting it, must not touch the first one's."""
    other = start_platform(
        tmp_path,
        f"sqlite:///{tmp_path / 'modeldeck.db'}",
        mlflow_registry.tracking_uri,
        MODELDECK_RAY_ADDRESS=ray_head,
        MODELDECK_RAY_HTTP_PORT=platform.env["MODELDECK_RAY_HTTP_PORT"],
        RAY_USAGE_STATS_ENABLED="0",
        RAY_AUTH_MODE="disabled",
    )
    try:
        before = ray_pids(platform, "iris-ray")
        key = other.client().deploy(
            "iris-ray", "iris", version=1, replicas=1, runtime="ray", cpu=0.5
        )["access_key"]
        other.client().wait("iris-ray", timeout=240)
        theirs = httpx.post(
            f"{other.url}/deployments/iris-ray/predict",
            json={"inputs": [ROW]},
            headers={"Authorization": f"Bearer {key}"},
            timeout=30,
        )
        assert theirs.status_code == 200, theirs.text
        ours = predict(platform, "ray", deployed["ray"], {"inputs": [ROW]})
        assert ours.status_code == 200, ours.text
        # Each answer is recorded by its own platform's replicas, into its own store.
        uuids = {"theirs": theirs.json()["uuid"], "ours": ours.json()["uuid"]}
        for client, mine, not_mine in (
            (other.client(), "theirs", "ours"),
            (platform.client(), "ours", "theirs"),
        ):
            found = client.read_metrics("iris-ray", uuids=list(uuids.values()))["metrics"]
            assert [r["predictionUuid"] for r in found] == [uuids[mine]], not_mine
        assert len([a for a in serve_apps(ray_head) if a.startswith("iris-ray-")]) == 2
        other.client().delete("iris-ray")
        # The first platform's application still serves, with the same replicas.
        assert predict(platform, "ray", deployed["ray"], {"inputs": [ROW]}).status_code == 200
        assert ray_pids(platform, "iris-ray") == before
        assert len([a for a in serve_apps(ray_head) if a.startswith("iris-ray-")]) == 1
    finally:
        other.stop()


def test_a_control_plane_restart_leaves_ray_applications_serving(
    platform: RunningPlatform, deployed: dict[str, str], ray_head: str
) -> None:
    """SIGTERM of the platform leaves Serve's applications running (they answer on Serve's
    proxy meanwhile), and the restarted platform adopts them: same replica processes."""
    name = "iris-ray"
    wait_for(lambda: len(ray_pids(platform, name)) == 2, timeout=60)
    before = ray_pids(platform, name)
    apps = [a for a in serve_apps(ray_head) if a.startswith(f"{name}-")]
    platform.stop(keep_replicas=True)
    assert [a for a in serve_apps(ray_head) if a.startswith(f"{name}-")] == apps
    proxy = f"http://127.0.0.1:{platform.env['MODELDECK_RAY_HTTP_PORT']}/{apps[0]}/predict"
    assert httpx.post(proxy, json={"inputs": [ROW]}, timeout=30).status_code == 200
    platform.start()
    client = platform.client()
    wait_for(lambda: client.deployment(name)["status"] == "deployed", timeout=120)
    wait_for(lambda: len(ray_pids(platform, name)) == 2, timeout=60)
    assert ray_pids(platform, name) == before, "the restart replaced Ray replicas"
    assert predict(platform, "ray", deployed["ray"], {"inputs": [ROW]}).status_code == 200


def test_a_ray_outage_leaves_the_platform_and_local_deployments_serving(
    platform: RunningPlatform, deployed: dict[str, str], ray_head: str
) -> None:
    """``ray stop`` with the platform up (its Ray driver used to take the platform's process
    down about a minute later): the platform and its local deployment serve on, the Ray
    deployment is ``unavailable`` with the reason, and it serves again once a cluster is back
    at the address (its Serve application run again there)."""
    client = platform.client()
    wait_for(lambda: client.deployment("iris-ray")["status"] == "deployed", timeout=120)
    stop_ray()
    wait_for(lambda: client.deployment("iris-ray")["status"] == "unavailable", timeout=180)
    lost = client.deployment("iris-ray")
    assert "Ray" in lost["status_message"] and lost["ready_replicas"] == 0, lost
    assert predict(platform, "ray", deployed["ray"], {"inputs": [ROW]}).status_code == 503
    for _ in range(5):
        assert predict(platform, "local", deployed["local"], {"inputs": [ROW]}).status_code == 200
    assert client.deployment("iris-local")["status"] == "deployed"

    start_head(int(ray_head.rsplit(":", 1)[1]))
    wait_for(lambda: client.deployment("iris-ray")["status"] == "deployed", timeout=300)
    wait_for(
        lambda: predict(platform, "ray", deployed["ray"], {"inputs": [ROW]}).status_code == 200,
        timeout=60,
    )
    assert platform.proc.poll() is None, "the platform exited"
