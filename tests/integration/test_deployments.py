"""A real ``modeldeck server`` with real MLflow models and replica processes, on both stores."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections import Counter
from typing import Any

import httpx
import pytest
from sqlalchemy import create_engine, update

from modeldeck.client import ApiError
from modeldeck.store.schema import DeploymentRow
from tests.conftest import Registered, RunningPlatform
from tests.fixtures import wait_for

pytestmark = pytest.mark.integration

ROW = [5.1, 3.5, 1.4, 0.2]
FEATURES = ["sepal_length", "sepal_width", "petal_length", "petal_width"]


def predict(platform: RunningPlatform, name: str, key: str | None, body: Any) -> httpx.Response:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    return httpx.post(
        f"{platform.url}/deployments/{name}/predict", json=body, headers=headers, timeout=30
    )


def test_deploy_by_version_alias_and_latest(
    platform: RunningPlatform, mlflow_registry: Registered
) -> None:
    client = platform.client()
    created = {
        "by-version": client.deploy("by-version", "iris", version=1),
        "by-alias": client.deploy("by-alias", "iris", alias="champion"),
        "by-latest": client.deploy("by-latest", "iris"),
    }
    expected = {
        "by-version": ("1", "1"),
        "by-alias": ("1", "@champion"),
        "by-latest": ("2", "latest"),
    }
    for name, (version, spec) in expected.items():
        d = client.wait(name, timeout=120)
        assert (d["version"], d["version_spec"]) == (version, spec)
        assert d["model_uri"] == f"models:/iris/{version}"
        assert d["signature"]["inputs"][0]["name"] == "sepal_length"
        key = created[name]["access_key"]
        assert key and d["access_key_prefix"] == key[:8]
        r = predict(platform, name, key, {"inputs": [ROW]})
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["prediction"] == [0]
        assert r.headers["x-prediction-id"] == body["uuid"]
        assert client.deployment(name)["access_key"] == key  # admin keys read it back
    for name in expected:
        client.delete(name)


@pytest.fixture(scope="module")
def pair(platform: RunningPlatform) -> tuple[str, str]:
    """A deployment of iris with two replicas: (name, access key)."""
    client = platform.client()
    created = client.deploy("pair", "iris", version=2, replicas=2)
    client.wait("pair", timeout=120)
    return "pair", created["access_key"]


def test_every_accepted_body_form_predicts(
    platform: RunningPlatform, pair: tuple[str, str]
) -> None:
    name, key = pair
    setosa, virginica = ROW, [6.7, 3.0, 5.2, 2.3]
    bodies = [
        {"inputs": [setosa, virginica]},
        {"instances": [setosa, virginica]},
        {"dataframe_split": {"columns": FEATURES, "data": [setosa, virginica]}},
        {"dataframe_records": [dict(zip(FEATURES, r, strict=True)) for r in (setosa, virginica)]},
        {"inputs": {f: [setosa[i], virginica[i]] for i, f in enumerate(FEATURES)}},
    ]
    for body in bodies:
        r = predict(platform, name, key, body)
        assert r.status_code == 200, (body, r.text)
        assert r.json()["prediction"] == [0, 2]


def test_two_replicas_both_receive_traffic(
    platform: RunningPlatform, pair: tuple[str, str]
) -> None:
    name, key = pair
    seen = Counter(
        predict(platform, name, key, {"inputs": [ROW]}).headers["x-modeldeck-replica"]
        for _ in range(40)
    )
    assert set(seen) == {"0", "1"}, seen


def test_kill_9_of_a_replica_under_traffic(
    platform: RunningPlatform, pair: tuple[str, str]
) -> None:
    name, key = pair
    client = platform.client()
    before = {r["index"]: r for r in client.deployment(name)["replica_states"]}
    victim = before[0]
    statuses: Counter[int] = Counter()
    answered: set[str] = set()
    stop = threading.Event()
    start_ms = int(time.time() * 1000)

    def traffic() -> None:
        with httpx.Client(headers={"Authorization": f"Bearer {key}"}, timeout=30) as http:
            while not stop.is_set():
                r = http.post(f"{platform.url}/deployments/{name}/predict", json={"inputs": [ROW]})
                statuses[r.status_code] += 1
                if r.status_code == 200:
                    answered.add(r.json()["uuid"])

    # Restarts are forked once the fork server has imported MLflow (seconds after start).
    wait_for(lambda: "replica fork server ready" in platform.logs(), timeout=120)
    threads = [threading.Thread(target=traffic) for _ in range(4)]
    for t in threads:
        t.start()
    try:
        time.sleep(1.0)
        killed_at = time.monotonic()
        os.kill(victim["pid"], signal.SIGKILL)

        def respawned() -> bool:
            r0 = {r["index"]: r for r in client.deployment(name)["replica_states"]}[0]
            return r0["pid"] not in (None, victim["pid"])

        wait_for(respawned, timeout=10, interval=0.05)
        respawned_after = time.monotonic() - killed_at

        def restarted() -> dict[str, Any] | None:
            states = {r["index"]: r for r in client.deployment(name)["replica_states"]}
            r0 = states[0]
            ok = r0["status"] == "ready" and r0["pid"] != victim["pid"] and r0["restarts"] >= 1
            return states if ok else None

        states = wait_for(restarted, timeout=60, interval=0.05)
        back_after = time.monotonic() - killed_at
        time.sleep(0.5)
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert states[1]["pid"] == before[1]["pid"], "the healthy replica must not be touched"
    assert statuses[200] > 20
    # What was in the killed replica (one request per caller at most) gets a 502: it is not
    # retried elsewhere, in case it is what killed the replica (a poison request).
    assert set(statuses) <= {200, 502}, f"answers during the kill: {dict(statuses)}"
    assert statuses[502] <= len(threads), f"answers during the kill: {dict(statuses)}"
    assert client.deployment(name)["status"] == "deployed"
    # A new process at once (no back-off for a first crash), forked from the fork server that
    # has MLflow and scikit-learn imported already, so it serves again within seconds.
    assert respawned_after < 2.0, f"a new process only {respawned_after:.1f} s after the kill"
    assert back_after < 5.0, f"replica 0 served again only {back_after:.1f} s after the kill"
    assert f"{name} replica 0 started (pid {states[0]['pid']}, forked)" in platform.logs()
    stored = {r["predictionUuid"] for r in client.iter_metrics(name, start_ms=start_ms)}
    assert answered <= stored, f"{len(answered - stored)} answered predictions have no record"


def test_scale_stop_start(platform: RunningPlatform, pair: tuple[str, str]) -> None:
    name, key = pair
    client = platform.client()
    d = client.scale(name, 1)
    assert d["replicas"] == 1 and len(d["replica_states"]) == 1
    assert predict(platform, name, key, {"inputs": [ROW]}).status_code == 200

    d = client.stop(name)
    assert d["status"] == "stopped" and d["desired_state"] == "stopped"
    r = predict(platform, name, key, {"inputs": [ROW]})
    assert r.status_code == 503
    assert "no ready replica" in r.json()["error"]["message"]

    client.start(name)
    d = client.wait(name, timeout=120)
    assert d["ready_replicas"] == 1
    assert predict(platform, name, key, {"inputs": [ROW]}).status_code == 200, "key survives"

    d = client.scale(name, 2)
    d = wait_for(lambda: (x := client.deployment(name))["ready_replicas"] == 2 and x, timeout=120)
    assert [r["index"] for r in d["replica_states"]] == [0, 1]


def test_bad_requests_get_clear_errors(platform: RunningPlatform, pair: tuple[str, str]) -> None:
    name, key = pair
    url = f"{platform.url}/deployments/{name}/predict"
    auth = {"Authorization": f"Bearer {key}"}

    r = httpx.post(url, json={"inputs": [ROW]}, headers={"Authorization": "Bearer wrong"})
    assert r.status_code == 401 and r.json()["error"]["code"] == "unauthorized"
    r = httpx.post(url, json={"inputs": [ROW]})
    assert r.status_code == 401 and "missing access key" in r.json()["error"]["message"]

    r = httpx.post(url, content=b'{"inputs": [[5.1, 3.5', headers=auth)
    assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_json"

    r = httpx.post(url, json={"inputs": [[5.1, 3.5, 1.4]]}, headers=auth)
    assert r.status_code == 422
    assert (
        "expects 4 (sepal_length, sepal_width, petal_length, petal_width)"
        in (r.json()["error"]["message"])
    )
    r = httpx.post(url, json={"dataframe_records": [{"sepal_length": "big"}]}, headers=auth)
    assert r.status_code == 422 and r.json()["error"]["details"]["field"] == "sepal_width"

    big = b'{"inputs": [' + b",".join([b"[1.0, 2.0, 3.0, 4.0]"] * 300_000) + b"]}"
    assert len(big) > 5 * 1024 * 1024
    r = httpx.post(url, content=big, headers=auth)
    assert r.status_code == 413 and r.json()["error"]["code"] == "payload_too_large"

    with pytest.raises(ApiError) as info:
        platform.client().deploy("ghost", "no-such-model")
    assert info.value.status_code == 404
    assert "registered model 'no-such-model' not found" in info.value.message
    with pytest.raises(ApiError) as info:
        platform.client().deploy("ghost", "iris", version=99)
    assert info.value.status_code == 404 and "has no version 99" in info.value.message
    with pytest.raises(ApiError) as info:
        platform.client().deploy(name, "iris")
    assert info.value.status_code == 409
    assert predict(platform, name, key, {"inputs": [ROW]}).status_code == 200, "nothing changed"


def test_cloudera_model_route(platform: RunningPlatform, pair: tuple[str, str]) -> None:
    name, key = pair
    record = dict(zip(FEATURES, ROW, strict=True))
    r = httpx.post(f"{platform.url}/model", json={"accessKey": key, "request": record})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["success"] is True
    response = body["response"]
    assert response["prediction"] == [0]
    assert response["model_deployment_crn"] == platform.client().deployment(name)["crn"]
    assert len(response["uuid"]) == 36

    r = httpx.post(
        f"{platform.url}/model", params={"accessKey": key}, json={"request": {"inputs": [ROW]}}
    )
    assert r.status_code == 200 and r.json()["response"]["prediction"] == [0]

    r = httpx.post(f"{platform.url}/model", json={"accessKey": key, "request": {"x": 1}})
    assert r.status_code == 422 and r.json()["success"] is False


def test_authentication_can_be_disabled(platform: RunningPlatform) -> None:
    client = platform.client()
    created = client.deploy("open", "iris", version=1, auth_enabled=False)
    d = client.wait("open", timeout=120)
    assert d["auth_enabled"] is False and created["access_key"]
    assert predict(platform, "open", None, {"inputs": [ROW]}).status_code == 200
    assert "authentication DISABLED" in platform.logs()
    client.delete("open")
    assert predict(platform, "open", None, {"inputs": [ROW]}).status_code == 404


def test_a_model_that_cannot_load_ends_failed(platform: RunningPlatform) -> None:
    client = platform.client()
    client.deploy("broken", "broken")
    with pytest.raises(ApiError) as info:
        client.wait("broken", timeout=180)
    assert info.value.code == "deployment_failed"
    d = client.deployment("broken")
    assert d["status"] == "failed"
    assert "fails to load on purpose" in d["status_message"]
    client.delete("broken")


@pytest.mark.slow  # make test-slow
def test_platform_restart_brings_deployments_back(
    platform: RunningPlatform, pair: tuple[str, str]
) -> None:
    """Running deployments come back, stopped ones stay stopped, and one that cannot be
    restored (its stored environment is more than ``exec`` takes, as rows stored before the
    environment was validated can be) is marked failed with the reason while the others serve."""
    name, key = pair
    client = platform.client()
    client.deploy("sleeper", "iris", version=1)
    client.wait("sleeper", timeout=120)
    client.stop("sleeper")
    client.deploy("doomed", "iris", version=1)

    pids = [r["pid"] for r in client.deployment(name)["replica_states"]]
    assert all(pids)
    platform.stop()
    for pid in pids:
        wait_for(lambda pid=pid: not _alive(pid), timeout=30)
    engine = create_engine(platform.env["MODELDECK_STORE_URL"])
    with engine.begin() as conn:
        conn.execute(
            update(DeploymentRow)
            .where(DeploymentRow.name == "doomed")
            .values(environment={"HUGE": "x" * 200_000})
        )
    engine.dispose()
    platform.start()

    d = platform.client().wait(name, timeout=120)
    assert d["ready_replicas"] == d["replicas"] == 2
    r = predict(platform, name, key, {"inputs": [ROW]})
    assert r.status_code == 200, "the same access key works after a restart"
    assert platform.client().deployment("sleeper")["status"] == "stopped", "stopped stays stopped"
    doomed = wait_for(
        lambda: (d := platform.client().deployment("doomed"))["status"] == "failed" and d,
        timeout=60,
    )
    assert "could not start the replica process" in doomed["status_message"], doomed
    assert "Argument list too long" in doomed["status_message"]
    client = platform.client()
    client.delete("doomed")


def _alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True
