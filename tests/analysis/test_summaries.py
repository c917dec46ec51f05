"""Five-minute summaries: reports assembled from them equal reports computed from the raw
records, and a summary is rebuilt whenever its bucket gains predictions or labels."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import func, select

from modeldeck.analysis.parts import BUCKET_MS
from modeldeck.analysis.service import AnalysisService, MonitoringConfig
from modeldeck.monitoring.model_metrics import ModelMetrics, PredictionRecord, Target
from modeldeck.registry import Registry
from modeldeck.store import Store
from modeldeck.store.schema import AnalysisSummaryRow
from tests.fixtures import add_deployment

HOUR = 3_600_000
T0 = 1_700_002_800_000  # on an hour boundary
CLASSES = ["a", "b", "c"]
TARGET = Target("dep-1", "clf", "m", "1")


@pytest.fixture
def stores(
    store_url: str, tmp_path: Any
) -> Iterator[tuple[AnalysisService, AnalysisService, Store]]:
    store = Store(store_url)
    store.migrate()
    add_deployment(store, "dep-1", "clf", source="file")
    registry = Registry(f"sqlite:///{tmp_path / 'unused-mlflow.db'}")
    yield AnalysisService(store, registry), AnalysisService(store, registry, summaries=False), store
    store.close()


def _uuid(i: int, salt: int = 0) -> str:
    return f"{salt:08x}-0000-4000-8000-{i:012x}"


def _records(n: int, seed: int, *, salt: int = 0, shift: float = 0.0) -> list[PredictionRecord]:
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        probs = np.round(rng.dirichlet([2, 2, 2]), 3)
        ts = T0 + int(rng.integers(0, 3 * HOUR))
        out.append(
            PredictionRecord(
                uuid=_uuid(i, salt),
                deployment_id="dep-1",
                start_ms=ts,
                end_ms=ts,
                model_version=str(1 + i % 2),
                metrics={
                    "input": {
                        "x": float(rng.normal(shift, 1.0)),
                        "colour": str(rng.choice(["red", "blue", "green"])),
                    },
                    "output": CLASSES[int(probs.argmax())],
                    "probabilities": dict(zip(CLASSES, probs.tolist(), strict=True)),
                },
            )
        )
    return out


def _label(metrics: ModelMetrics, records: list[PredictionRecord], seed: int) -> None:
    rng = np.random.default_rng(seed)
    metrics.track_delayed_many(
        TARGET,
        [
            (r.uuid, {"actual_result": CLASSES[int(rng.integers(3))]})
            for r in records
            if rng.random() < 0.8
        ],
    )


def _same(a: Any, b: Any) -> None:
    """Equal, floats to 1e-9 (sums added in another order)."""
    if isinstance(a, dict):
        assert set(a) == set(b)
        for key in a:
            _same(a[key], b[key])
    elif isinstance(a, list):
        assert len(a) == len(b)
        for x, y in zip(a, b, strict=True):
            _same(x, y)
    elif isinstance(a, float):
        assert a == pytest.approx(b, rel=1e-9, abs=1e-12)
    else:
        assert a == b


def _summaries(store: Store) -> int:
    with store.read() as session:
        return int(session.scalar(select(func.count()).select_from(AnalysisSummaryRow)) or 0)


def test_performance_from_summaries_equals_the_raw_aggregation(
    stores: tuple[AnalysisService, AnalysisService, Store],
) -> None:
    cached, raw, store = stores
    metrics = ModelMetrics(store)
    records = _records(1500, seed=1)
    metrics.insert_predictions(records)
    _label(metrics, records, seed=2)
    window = {"start_ms": T0, "end_ms": T0 + 3 * HOUR + 1234, "step_ms": HOUR}

    first = cached.performance("clf", **window)
    assert _summaries(store) > 0
    _same(first, raw.performance("clf", **window))
    assert [w["predictions"] for w in first["windows"]] != []
    assert any(w["realised"] and "roc_auc" in w["realised"] for w in first["windows"])
    # Every version together, and a single window with ragged edges.
    _same(
        cached.performance("clf", **window, by_version=False),
        raw.performance("clf", **window, by_version=False),
    )
    ragged = {"start_ms": T0 + 77_777, "end_ms": T0 + 2 * HOUR + 5}
    _same(cached.performance("clf", **ragged), raw.performance("clf", **ragged))

    # Served from the summaries now; new predictions in an old bucket and new labels (late
    # ground truth, a corrected label) make their buckets rebuild.
    late = _records(300, seed=3, salt=1)
    metrics.insert_predictions(late)
    _label(metrics, late, seed=4)
    _label(metrics, records[:50], seed=5)
    again = cached.performance("clf", **window)
    assert again != first
    _same(again, raw.performance("clf", **window))


def test_reports_served_from_decoded_summaries_in_memory_stay_equal(
    stores: tuple[AnalysisService, AnalysisService, Store], tmp_path: Any
) -> None:
    cached, raw, store = stores
    metrics = ModelMetrics(store)
    records = _records(900, seed=11)
    metrics.insert_predictions(records)
    _label(metrics, records, seed=12)
    window = {"start_ms": T0, "end_ms": T0 + 3 * HOUR, "step_ms": HOUR}

    first = cached.performance("clf", **window)  # builds and stores the summaries
    assert len(cached._parts) == 0
    second = cached.performance("clf", **window)  # decodes them, keeps them in memory
    assert len(cached._parts) > 0
    third = cached.performance("clf", **window)  # merged from memory: nothing double counted
    cold = AnalysisService(store, Registry(f"sqlite:///{tmp_path / 'other.db'}"))
    for report in (second, third, cold.performance("clf", **window)):
        _same(report, first)
    _same(third, raw.performance("clf", **window))

    # A label landing in a bucket makes its summary stale: memory does not hide it.
    _label(metrics, records[:40], seed=13)
    _same(cached.performance("clf", **window), raw.performance("clf", **window))


def test_the_part_cache_drops_the_least_recently_used_beyond_its_size() -> None:
    from modeldeck.analysis.service import _PartCache

    cache = _PartCache(max_bytes=100)
    cache.put(("a",), "A", 40)
    cache.put(("b",), "B", 40)
    assert cache.get(("a",)) == "A"  # a is now the most recently used
    cache.put(("c",), "C", 40)
    assert (cache.get(("a",)), cache.get(("b",)), cache.get(("c",))) == ("A", None, "C")
    cache.put(("d",), "D", 500)  # larger than the whole cache: nothing stays
    assert len(cache) == 0


def test_drift_from_summaries_equals_drift_from_the_records(
    stores: tuple[AnalysisService, AnalysisService, Store],
) -> None:
    cached, raw, store = stores
    metrics = ModelMetrics(store)
    rng = np.random.default_rng(7)
    reference = pd.DataFrame(
        {
            "x": rng.normal(0, 1, 3000),
            "colour": rng.choice(["red", "blue", "green"], 3000),
            "target": rng.choice(CLASSES, 3000),
        }
    )
    cached.set_reference("clf", reference, source="test", target_column="target")
    cached.set_config("clf", MonitoringConfig(max_rows=1000))
    metrics.insert_predictions(_records(2000, seed=8, shift=0.5))
    window = {"start_ms": T0 - 1000, "end_ms": T0 + 3 * HOUR + 1}

    binned = cached.drift("clf", **window)
    assert binned["mode"] == "binned" and _summaries(store) > 0
    _same(binned, raw.drift("clf", **window))
    exact = cached.drift("clf", **window, exact=True)
    assert exact["mode"] == "raw"
    by_column = {c["column"]: c for c in binned["columns"]}
    for column in exact["columns"]:
        mine = by_column[column["column"]]
        assert (mine["method"], mine["drifted"]) == (column["method"], column["drifted"])
        assert mine["current_rows"] == column["current_rows"] == 2000
    # x moved half a standard deviation: Wasserstein from the histograms is within 2 % of it.
    assert by_column["x"]["method"] == "wasserstein" and by_column["x"]["drifted"]
    assert by_column["x"]["statistic"] == pytest.approx(exact["columns"][0]["statistic"], rel=0.02)
    assert by_column["colour"]["statistic"] == pytest.approx(exact["columns"][1]["statistic"])
    assert binned["prediction"]["statistic"] == pytest.approx(exact["prediction"]["statistic"])

    # Per version, and after more traffic lands in a summarised bucket.
    one = {**window, "model_version": "1"}
    _same(cached.drift("clf", **one), raw.drift("clf", **one))
    metrics.insert_predictions(_records(500, seed=9, salt=2, shift=3.0))
    moved = cached.drift("clf", **window)
    assert moved["predictions"] == 2500
    _same(moved, raw.drift("clf", **window))

    # A new reference forgets the drift summaries built on the old one.
    cached.set_reference("clf", reference.assign(x=reference["x"] + 3), source="t2")
    with store.read() as session:
        kinds = set(session.scalars(select(AnalysisSummaryRow.kind)))
    assert not any(k.startswith("drift/") for k in kinds)


def test_pruning_removes_summaries_of_pruned_buckets(
    stores: tuple[AnalysisService, AnalysisService, Store],
) -> None:
    cached, _, store = stores
    metrics = ModelMetrics(store)
    metrics.insert_predictions(_records(400, seed=11))
    cached.performance("clf", start_ms=T0, end_ms=T0 + 3 * HOUR, step_ms=HOUR)
    before = _summaries(store)
    assert before > 0
    metrics.prune(T0 + HOUR)
    with store.read() as session:
        oldest = session.scalar(select(func.min(AnalysisSummaryRow.bucket_ms)))
    assert _summaries(store) < before and oldest is not None and oldest >= T0 + HOUR - BUCKET_MS
    after = cached.performance("clf", start_ms=T0, end_ms=T0 + 3 * HOUR, step_ms=HOUR)
    assert all(w["start"] >= T0 + HOUR for w in after["windows"])
