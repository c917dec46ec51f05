"""Model metrics on a real platform, both stores: the lab's flow, batch, custom code, faults."""

from __future__ import annotations

import os
import random
import signal
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from modeldeck.client import ApiError, Client
from modeldeck.demo.train import FEATURES, iris_frame
from tests.conftest import RunningPlatform

pytestmark = pytest.mark.integration

CML_KEYS = {
    "modelDeploymentCrn",
    "modelBuildCrn",
    "modelCrn",
    "startTimeStampMs",
    "endTimeStampMs",
    "predictionUuid",
    "modelVersion",
    "metrics",
}


@pytest.fixture(scope="module")
def iris(platform: RunningPlatform) -> Iterator[tuple[str, str]]:
    client = platform.client()
    created = client.deploy("tracked", "iris", version=2, replicas=2)
    client.wait("tracked", timeout=120)
    yield "tracked", created["access_key"]
    client.delete("tracked")


def post(platform: RunningPlatform, name: str, key: str, body: Any) -> httpx.Response:
    return httpx.post(
        f"{platform.url}/deployments/{name}/predict",
        json=body,
        headers={"Authorization": f"Bearer {key}"},
        timeout=30,
    )


def test_the_labs_flow(platform: RunningPlatform, iris: tuple[str, str]) -> None:
    name, key = iris
    client = platform.client()
    X, y = iris_frame()
    rng = random.Random(3)
    start = int(time.time() * 1000)
    sent: dict[str, tuple[dict[str, float], int]] = {}
    for _ in range(100):
        i = rng.randrange(len(X))
        record = {f: float(X.iloc[i][f]) for f in FEATURES}
        r = post(platform, name, key, {"dataframe_records": [record]})
        assert r.status_code == 200, r.text
        sent[r.json()["uuid"]] = (record, int(y.iloc[i]))
    end = int(time.time() * 1000)

    records = client.read_metrics(name, start_ms=start, end_ms=end)["metrics"]
    assert len(records) == 100
    deployment = client.deployment(name)
    for rec in records:
        assert set(rec) == CML_KEYS
        assert rec["modelDeploymentCrn"] == deployment["crn"]
        assert rec["modelVersion"] == "2"
        assert start <= rec["startTimeStampMs"] <= rec["endTimeStampMs"] <= end
        features, _ = sent[rec["predictionUuid"]]
        assert rec["metrics"]["input"] == features
        assert rec["metrics"]["output"] in (0, 1, 2)
        # A classifier records its class probabilities; the prediction is the most probable.
        probabilities = rec["metrics"]["probabilities"]
        assert set(probabilities) == {"0", "1", "2"}
        assert sum(probabilities.values()) == pytest.approx(1.0, abs=1e-5)
        assert max(probabilities, key=probabilities.get) == str(rec["metrics"]["output"])
    assert {r["predictionUuid"] for r in records} == set(sent)

    for uuid, (_, label) in sent.items():
        client.track_delayed_metrics({"actual_result": label}, uuid)
    merged = client.read_metrics(name, start_ms=start, end_ms=end)["metrics"]
    assert {r["predictionUuid"]: r["metrics"]["actual_result"] for r in merged} == {
        u: label for u, (_, label) in sent.items()
    }
    accuracy = sum(r["metrics"]["output"] == r["metrics"]["actual_result"] for r in merged) / 100
    assert accuracy > 0.9

    client.track_aggregate_metrics(name, {"accuracy": accuracy}, start, end)
    with_aggregate = client.read_metrics(name, start_ms=start, end_ms=end)["metrics"]
    aggregates = [r for r in with_aggregate if r["predictionUuid"] == ""]
    assert len(aggregates) == 1
    assert aggregates[0]["metrics"] == {"accuracy": accuracy}
    assert (aggregates[0]["startTimeStampMs"], aggregates[0]["endTimeStampMs"]) == (start, end)

    some = list(sent)[:3]
    by_uuid = client.read_metrics(name, uuids=some)["metrics"]
    assert sorted(r["predictionUuid"] for r in by_uuid) == sorted(some)
    assert client.read_metrics(name, start_ms=start, end_ms=end, model_version="1") == {
        "metrics": []
    }

    page = client.read_metrics_page(name, start_ms=start, end_ms=end, limit=30)
    assert len(page["metrics"]) == 30 and page["next_cursor"]
    streamed = [r["predictionUuid"] for r in client.iter_metrics(name, start_ms=start, end_ms=end)]
    assert len(streamed) == 101 and len(set(streamed)) == 101


def test_metrics_sdk_over_rest_and_dataframe(
    platform: RunningPlatform, iris: tuple[str, str]
) -> None:
    from modeldeck import metrics

    name, key = iris
    start = int(time.time() * 1000)
    uuid = post(platform, name, key, {"inputs": [[6.7, 3.0, 5.2, 2.3]]}).json()["uuid"]
    metrics.configure(url=platform.url, api_key=platform.api_key)
    try:
        metrics.track_delayed_metrics({"actual_result": 2}, uuid, deployment=name)
        frame = metrics.read_metrics_df(deployment=name, start_timestamp_ms=start)
        assert list(frame["predictionUuid"]) == [uuid]
        assert frame.loc[0, "actual_result"] == 2 and frame.loc[0, "output"] == 2
        assert "input" in frame.columns and "end_time" in frame.columns
        with pytest.raises(ApiError) as info:
            metrics.track_delayed_metrics({"x": 1}, "00000000-0000-4000-8000-000000000000")
        assert info.value.status_code == 404
    finally:
        metrics.configure()


def test_bad_metric_input_is_refused_and_changes_nothing(
    platform: RunningPlatform, iris: tuple[str, str]
) -> None:
    name, key = iris
    client = platform.client()
    uuid = post(platform, name, key, {"inputs": [[5.1, 3.5, 1.4, 0.2]]}).json()["uuid"]
    before = client.read_metrics(name, uuids=[uuid])["metrics"]
    cases = [
        ("/api/v1/metrics/delayed", {"prediction_uuid": "not-a-uuid", "metrics": {"a": 1}}, 422),
        ("/api/v1/metrics/delayed", {"prediction_uuid": uuid, "metrics": {"": 1}}, 422),
        ("/api/v1/metrics/delayed", {"prediction_uuid": uuid, "metrics": [1, 2]}, 422),
        (
            f"/api/v1/deployments/{name}/metrics/aggregate",
            {"metrics": {"a": 1}, "start_timestamp_ms": 10, "end_timestamp_ms": 5},
            422,
        ),
        (
            f"/api/v1/deployments/{name}/metrics/aggregate",
            {"metrics": {"a": 1}, "start_timestamp_ms": -1, "end_timestamp_ms": 5},
            422,
        ),
        (
            "/api/v1/deployments/nope/metrics/aggregate",
            {"metrics": {"a": 1}, "start_timestamp_ms": 1, "end_timestamp_ms": 5},
            404,
        ),
        (f"/api/v1/deployments/{name}/predictions", {"predictions": [{"uuid": uuid}]}, 409),
        (
            f"/api/v1/deployments/{name}/predictions",
            {"predictions": [{"metrics": {"k": 1}}, {"metrics": "nope"}]},
            422,
        ),
    ]
    for path, body, status in cases:
        r = httpx.post(
            platform.url + path, json=body, headers={"Authorization": f"Bearer {platform.api_key}"}
        )
        assert r.status_code == status, (path, body, r.text)
        assert set(r.json()["error"]) == {"code", "message", "details"}
    assert client.read_metrics(name, uuids=[uuid])["metrics"] == before
    r = httpx.get(
        f"{platform.url}/api/v1/deployments/{name}/metrics/model",
        params={"cursor": "garbage"},
        headers={"Authorization": f"Bearer {platform.api_key}"},
    )
    assert r.status_code == 422


def test_batch_deployment(platform: RunningPlatform) -> None:
    client = platform.client()
    created = client.deploy("nightly", "iris", version=1, kind="batch")
    assert created["kind"] == "batch" and created["status"] == "active"
    assert created["access_key"] is None and created["endpoint_url"] == ""
    uuids = client.record_predictions(
        "nightly", [{"metrics": {"input": {"a": i}, "output": i % 3}} for i in range(20)]
    )
    assert len(set(uuids)) == 20
    client.track_delayed_metrics({"actual_result": 0}, uuids[0], deployment="nightly")
    records = client.read_metrics("nightly")["metrics"]
    assert len(records) == 20
    first = next(r for r in records if r["predictionUuid"] == uuids[0])
    assert first["metrics"] == {"input": {"a": 0}, "output": 0, "actual_result": 0}
    assert first["modelVersion"] == "1"
    with pytest.raises(ApiError) as info:
        client.scale("nightly", 2)
    assert info.value.status_code == 409
    client.delete("nightly")


PREDICT_PY = """
import modeldeck
from modeldeck import metrics


@modeldeck.model(metrics=True)
def predict(args):
    metrics.track_metric("input", args)
    total = sum(args["values"])
    if total < 0:
        raise ValueError("negative total")
    metrics.track_metric("output", total)
    metrics.track_metric("size", len(args["values"]))
    return {"total": total}
"""


def test_custom_predict_file_with_decorator(platform: RunningPlatform, tmp_path: Path) -> None:
    path = tmp_path / "predict.py"
    path.write_text(textwrap.dedent(PREDICT_PY))
    client = platform.client()
    created = client.deploy("custom", file=str(path), function="predict")
    d = client.wait("custom", timeout=120)
    assert d["source"] == "file" and d["file_path"] == str(path)
    r = post(platform, "custom", created["access_key"], {"values": [1, 2, 3.5]})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["prediction"] == {"total": 6.5}
    assert body["model_deployment_crn"] == d["crn"]
    assert r.headers["x-prediction-id"] == body["uuid"]
    record = client.read_metrics("custom", uuids=[body["uuid"]])["metrics"][0]
    assert record["metrics"] == {"input": {"values": [1, 2, 3.5]}, "output": 6.5, "size": 3}

    r = post(platform, "custom", created["access_key"], {"values": [-5]})
    assert r.status_code == 500 and "negative total" in r.json()["error"]["message"]
    r = httpx.post(
        f"{platform.url}/model",
        json={"accessKey": created["access_key"], "request": {"values": [2]}},
    )
    assert r.json()["response"]["prediction"] == {"total": 2}

    with pytest.raises(ApiError) as info:
        client.deploy("custom2", file="relative/predict.py")
    assert info.value.status_code == 422 and info.value.details["field"] == "file"
    with pytest.raises(ApiError) as info:
        client.deploy("custom2", file="/etc/passwd")
    assert info.value.status_code == 422
    client.delete("custom")


def test_concurrent_writers_lose_and_duplicate_nothing(
    platform: RunningPlatform, iris: tuple[str, str]
) -> None:
    name, key = iris
    start = int(time.time() * 1000)
    answered: list[str] = []
    lock = threading.Lock()

    def worker(seed: int) -> None:
        with httpx.Client(headers={"Authorization": f"Bearer {key}"}, timeout=30) as http:
            for i in range(40):
                row = [4 + (seed + i) % 4, 3.0, 1.0 + i % 5, 0.2]
                r = http.post(f"{platform.url}/deployments/{name}/predict", json={"inputs": [row]})
                assert r.status_code == 200
                with lock:
                    answered.append(r.json()["uuid"])

    threads = [threading.Thread(target=worker, args=(s,)) for s in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    stored = [
        r["predictionUuid"]
        for r in platform.client().iter_metrics(name, start_ms=start)
        if r["predictionUuid"]
    ]
    assert len(answered) == 320
    assert sorted(stored) == sorted(answered)


def test_nothing_acknowledged_is_lost_across_sigkills(
    platform: RunningPlatform, iris: tuple[str, str]
) -> None:
    """kill -9 of a replica, then of the platform, under load: every 200 is readable after."""
    name, key = iris
    client = platform.client()
    start = int(time.time() * 1000)
    answered: dict[str, list[float]] = {}
    lock = threading.Lock()
    stop = threading.Event()

    def traffic(seed: int) -> None:
        rng = random.Random(seed)
        with httpx.Client(headers={"Authorization": f"Bearer {key}"}, timeout=10) as http:
            while not stop.is_set():
                row = [round(rng.uniform(4, 8), 2), 3.0, round(rng.uniform(1, 6), 2), 1.0]
                try:
                    r = http.post(
                        f"{platform.url}/deployments/{name}/predict", json={"inputs": [row]}
                    )
                except httpx.HTTPError:
                    continue  # the platform is down: nothing was acknowledged
                if r.status_code == 200:
                    with lock:
                        answered[r.json()["uuid"]] = row

    threads = [threading.Thread(target=traffic, args=(s,)) for s in range(4)]
    for t in threads:
        t.start()
    try:
        time.sleep(1.0)
        victim = client.deployment(name)["replica_states"][1]["pid"]
        os.kill(victim, signal.SIGKILL)
        time.sleep(1.5)
        assert platform.proc is not None
        platform.proc.send_signal(signal.SIGKILL)
        platform.proc.wait(10)
        time.sleep(0.5)
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert len(answered) > 50

    platform.start()
    client = Client(platform.url, platform.api_key)
    client.wait(name, timeout=120)
    rows = [r for r in client.iter_metrics(name, start_ms=start) if r["predictionUuid"]]
    stored = {r["predictionUuid"]: r["metrics"] for r in rows}
    assert len(stored) == len(rows), "a prediction recorded twice"
    half = [u for u, m in stored.items() if "input" not in m or "output" not in m]
    assert not half, f"{len(half)} records without their input or output"
    missing = set(answered) - set(stored)
    assert not missing, f"{len(missing)} acknowledged predictions lost"
    for uuid, row in answered.items():
        assert stored[uuid]["input"] == dict(zip(FEATURES, row, strict=True))
        assert stored[uuid]["output"] in (0, 1, 2)


def test_call_model_through_the_cml_compatibility_layer(
    platform: RunningPlatform, iris: tuple[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from modeldeck.compat.cml import call_model

    name, key = iris
    monkeypatch.setenv("MODELDECK_URL", platform.url)
    monkeypatch.setenv("CDSW_DOMAIN", "unreachable.example")  # MODELDECK_URL wins
    record = {"sepal_length": 5.1, "sepal_width": 3.5, "petal_length": 1.4, "petal_width": 0.2}
    answer = call_model(key, record)
    assert answer["success"] is True
    assert answer["response"]["prediction"] == [0]
    uuid = answer["response"]["uuid"]
    stored = platform.client().read_metrics(name, uuids=[uuid])["metrics"]
    assert stored[0]["metrics"]["input"] == record
    wrong = call_model("not-a-key", record)
    assert wrong["success"] is False
