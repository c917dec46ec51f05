"""``modeldeck simulate`` against a real platform (SQLite) serving the registered Iris model:
exact counts, the same requests for the same seed, drift that moves only the drifted feature in
the stored inputs, and ground truth that arrives only after its delay."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from click.testing import CliRunner

from modeldeck.cli.main import main
from modeldeck.client import Client
from modeldeck.demo.train import FEATURES
from modeldeck.simulate import FeatureDrift, Progress, Result, simulate
from tests.conftest import Registered, RunningPlatform, start_platform

pytestmark = pytest.mark.integration

NAME = "sim"


@pytest.fixture(scope="module")
def deployed(
    mlflow_registry: Registered, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[RunningPlatform, str]]:
    data_dir = tmp_path_factory.mktemp("simulate")
    running = start_platform(
        data_dir, f"sqlite:///{data_dir / 'modeldeck.db'}", mlflow_registry.tracking_uri
    )
    try:
        client = running.client()
        created = client.deploy(NAME, "iris", version=1, replicas=1)
        client.wait(NAME, timeout=120)
        yield running, created["access_key"]
    finally:
        running.stop()


def _stored(client: Client, result: Result) -> list[dict[str, Any]]:
    """The tracked metrics of each of the run's predictions, in request order."""
    uuids = [p.uuid for p in result.predictions if p.uuid]
    by_uuid = {
        r["predictionUuid"]: r["metrics"] for r in client.read_metrics(NAME, uuids=uuids)["metrics"]
    }
    assert set(by_uuid) == set(uuids)
    return [by_uuid[u] for u in uuids]


def _now_ms() -> int:
    return int(time.time() * 1000)


def test_exact_counts_and_the_same_requests_for_the_same_seed(
    deployed: tuple[RunningPlatform, str],
) -> None:
    platform, key = deployed
    with platform.client() as client:
        start = _now_ms()
        first = simulate(client, NAME, requests=60, seed=7, concurrency=4, access_key=key)
        end = _now_ms() + 1
        assert (first.sent, first.ok, first.failed) == (60, 60, 0), first.errors
        # Exactly the 60 predictions, each with the input that was sent.
        window = client.read_metrics(NAME, start_ms=start, end_ms=end)["metrics"]
        assert len(window) == 60
        stored = _stored(client, first)
        assert [m["input"] for m in stored] == [p.record for p in first.predictions]
        assert all(set(p.record) == set(FEATURES) for p in first.predictions)

        again = simulate(client, NAME, requests=60, seed=7, concurrency=2, access_key=key)
        assert again.ok == 60
        assert [m["input"] for m in _stored(client, again)] == [m["input"] for m in stored]
        other = simulate(client, NAME, requests=60, seed=8, access_key=key)
        assert [p.record for p in other.predictions] != [p.record for p in first.predictions]


def test_drift_moves_only_the_drifted_feature(deployed: tuple[RunningPlatform, str]) -> None:
    platform, key = deployed
    with platform.client() as client:
        options: dict[str, Any] = dict(requests=160, seed=3, source="reference", access_key=key)
        clean = simulate(client, NAME, **options)
        start = _now_ms()
        drifted = simulate(
            client,
            NAME,
            **options,
            drifts=[FeatureDrift("petal_length", shift=3.0)],
            drift_start=0.5,
        )
        end = _now_ms() + 1
        assert clean.ok == drifted.ok == 160 and drifted.drift_start == 80
        before = [m["input"] for m in _stored(client, clean)]
        after = [m["input"] for m in _stored(client, drifted)]
        for i, (b, a) in enumerate(zip(before, after, strict=True)):
            for feature in FEATURES:
                if feature == "petal_length" and i >= 80:
                    assert a[feature] == pytest.approx(b[feature] + 3.0)
                else:
                    assert a[feature] == b[feature]
        report = client.drift(NAME, start_ms=start, end_ms=end)
        assert report["current_rows"] == 160
        assert report["dataset"]["drifted_columns"] == ["petal_length"]


def test_ground_truth_arrives_after_the_delay(deployed: tuple[RunningPlatform, str]) -> None:
    platform, key = deployed
    delay = 4.0
    traffic_done = threading.Event()
    results: list[Result] = []

    def progress(p: Progress) -> None:
        if p.phase != "traffic":
            traffic_done.set()

    with platform.client() as client:
        start = _now_ms()

        def run() -> None:
            results.append(
                simulate(
                    client,
                    NAME,
                    requests=30,
                    seed=5,
                    source="reference",
                    labels="reference",
                    label_delay=delay,
                    access_key=key,
                    on_progress=progress,
                )
            )

        worker = threading.Thread(target=run)
        worker.start()
        assert traffic_done.wait(30)
        records = client.read_metrics(NAME, start_ms=start)["metrics"]
        looked = time.time()
        assert len(records) == 30
        assert not any("actual_result" in r["metrics"] for r in records)
        worker.join(60)
        assert results, "the run failed"
        result = results[0]
        # That look came before the first label was due.
        assert looked < min(p.answered_at or 0 for p in result.predictions) + delay
        assert result.ok == 30 and result.labels_sent == 30 and result.labels_failed == 0
        labelled = _stored(client, result)
        assert [m["actual_result"] for m in labelled] == [p.label for p in result.predictions]
        for p in result.predictions:
            assert p.answered_at is not None and p.label_sent_at is not None
            assert p.label_sent_at - p.answered_at >= delay
        perf = client.performance(NAME, start_ms=start)
        assert sum(w["labelled"] for w in perf["windows"]) == 30


def test_the_cli_with_labels_from_the_model_flipped_halfway(
    deployed: tuple[RunningPlatform, str], mlflow_registry: Registered
) -> None:
    platform, key = deployed
    env = {
        "MODELDECK_URL": platform.url,
        "MODELDECK_API_KEY": platform.api_key,
        "MODELDECK_ACCESS_KEY": key,
        "MLFLOW_TRACKING_URI": mlflow_registry.tracking_uri,
    }
    start = _now_ms()
    args = ["simulate", NAME, "--requests", "40", "--seed", "9", "--labels", "model"]
    result = CliRunner().invoke(main, [*args, "--flip-after", "0.5", "--json"], env=env)
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output)
    assert (summary["sent"], summary["ok"], summary["labels_sent"]) == (40, 40, 40)
    assert summary["flip_after"] == 20
    with platform.client() as client:
        records = client.read_metrics(NAME, start_ms=start)["metrics"]
    assert len(records) == 40
    # The model labels its own inputs: right for the first half, the next class after it.
    tracked = [r["metrics"] for r in records]
    same = sum(m["actual_result"] == m["output"] for m in tracked)
    moved = sum(m["actual_result"] == (m["output"] + 1) % 3 for m in tracked)
    assert (same, moved) == (20, 20)


def test_the_reference_route_samples_rows_with_a_seed(
    deployed: tuple[RunningPlatform, str],
) -> None:
    platform, _ = deployed
    with platform.client() as client:
        one = client.reference(NAME, rows=50, sample=True, seed=1)
        assert len(one["sample"]) == 50 and "head" not in one
        assert client.reference(NAME, rows=50, sample=True, seed=1)["sample"] == one["sample"]
        assert client.reference(NAME, rows=50, sample=True, seed=2)["sample"] != one["sample"]
        everything = client.reference(NAME, rows=10_000, sample=True, seed=1)["sample"]
        assert len(everything) == one["rows"] == 105
        head = client.reference(NAME, rows=3)
        assert len(head["head"]) == 3 and "sample" not in head
