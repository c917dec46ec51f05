"""Five-minute and hourly summaries: reports assembled from them equal reports computed from
the raw records, and a summary is rebuilt whenever its bucket (or hour) gains predictions or
labels."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import numpy as np
import pandas as pd
import pytest
from pydantic import TypeAdapter
from sqlalchemy import func, select

from modeldeck.monitoring.analysis import AnalysisService
from modeldeck.monitoring.config import MonitoringConfig
from modeldeck.monitoring.summaries.parts import BUCKET_MS
from modeldeck.records.model_metrics import ModelMetrics, PredictionRecord, Target
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


def _json_ready(report: dict[str, Any]) -> None:
    """The API's serialiser (pydantic, strict about types) takes the report: no NumPy values."""
    TypeAdapter(dict[str, Any]).dump_json(report)


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
    _json_ready(first)
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

    registry = Registry(f"sqlite:///{tmp_path / 'other.db'}")
    five = AnalysisService(store, registry, hourly=False)
    first = five.performance("clf", **window)  # builds and stores the summaries
    assert len(five.summary_store.cache) == 0
    second = five.performance("clf", **window)  # decodes them, keeps them in memory
    assert len(five.summary_store.cache) > 0
    third = five.performance("clf", **window)  # merged from memory: nothing double counted
    cold = AnalysisService(store, registry, hourly=False)
    # Hourly summaries: built from the five-minute ones and kept in memory, then served from
    # memory, then decoded by another process.
    hourly = [cached.performance("clf", **window) for _ in range(3)]
    assert len(cached.summary_store.cache) > 0
    for report in (second, third, cold.performance("clf", **window), *hourly):
        _same(report, first)
    _same(AnalysisService(store, registry).performance("clf", **window), first)
    _same(third, raw.performance("clf", **window))

    # A label landing in a bucket makes its summary stale: memory does not hide it.
    _label(metrics, records[:40], seed=13)
    _same(cached.performance("clf", **window), raw.performance("clf", **window))


def test_the_part_cache_drops_the_least_recently_used_beyond_its_size() -> None:
    from modeldeck.monitoring.summaries.store import PartCache

    cache = PartCache(max_bytes=100)
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
    _json_ready(binned)
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


def _hourly(store: Store) -> dict[tuple[str, int, str], tuple[int, int]]:
    """The stored hourly summaries: (kind, hour, version) -> (predictions, built)."""
    with store.read() as session:
        rows = session.execute(
            select(
                AnalysisSummaryRow.kind,
                AnalysisSummaryRow.bucket_ms,
                AnalysisSummaryRow.model_version,
                AnalysisSummaryRow.predictions,
                AnalysisSummaryRow.built_ms,
            ).where(AnalysisSummaryRow.kind.like("%/h%"))  # performance/h, drift/h...
        ).all()
    return {(k, b, v): (n, built) for k, b, v, n, built in rows}


def _keys(
    hourly: dict[tuple[str, int, str], tuple[int, int]],
) -> list[tuple[tuple[str, int, str], tuple[int, str]]]:
    return [(key, (key[1], key[2])) for key in hourly]


PERFORMANCE_WINDOWS: list[dict[str, Any]] = [
    {"start_ms": T0, "end_ms": T0 + 3 * HOUR + 1234, "step_ms": HOUR},  # whole hours
    {"start_ms": T0, "end_ms": T0 + 3 * HOUR, "step_ms": 90 * 60_000},  # hours and buckets
    {"start_ms": T0 + 10 * 60_000, "end_ms": T0 + 3 * HOUR, "step_ms": 30 * 60_000},  # buckets
    {"start_ms": T0 - 1000, "end_ms": T0 + 3 * HOUR + 7},  # one window: hours inside edges
    {"start_ms": T0 + 25 * 60_000, "end_ms": T0 + 2 * HOUR + 40 * 60_000},  # one hour inside
    {"start_ms": T0 - 27 * 24 * HOUR, "end_ms": T0 + 3 * HOUR},  # 651 hours, counted in two
]


def _three_ways(
    cached: AnalysisService, five: AnalysisService, raw: AnalysisService, **window: Any
) -> dict[str, Any]:
    """The performance report from hourly, from five-minute summaries and from the records,
    each the same."""
    report = cached.performance("clf", **window)
    _same(report, five.performance("clf", **window))
    _same(report, raw.performance("clf", **window))
    return report


def test_hourly_summaries_give_the_five_minute_and_the_raw_performance(
    stores: tuple[AnalysisService, AnalysisService, Store], tmp_path: Any
) -> None:
    cached, raw, store = stores
    five = AnalysisService(store, Registry(f"sqlite:///{tmp_path / 'm.db'}"), hourly=False)
    metrics = ModelMetrics(store)
    records = _records(1500, seed=21)
    metrics.insert_predictions(records)
    _label(metrics, records, seed=22)

    first = {}
    for i, window in enumerate(PERFORMANCE_WINDOWS):
        first[i] = _three_ways(cached, five, raw, **window)
        _same(
            cached.performance("clf", **window, by_version=False),
            raw.performance("clf", **window, by_version=False),
        )
        _same(
            cached.performance("clf", **window, model_version="2"),
            raw.performance("clf", **window, model_version="2"),
        )
    hourly = _hourly(store)
    # Three whole hours, two versions each; what each counts adds up to the hour's predictions.
    assert {(k, b) for k, b, _ in hourly} == {("performance/h", T0 + h * HOUR) for h in range(3)}
    assert sum(n for n, _ in hourly.values()) == 1500
    assert first[0]["windows"][0]["labelled"] > 0

    # Ground truth arrives late for predictions of the first hour (new labels and corrected
    # ones): that hour's summary is rebuilt, the others are not, and every way agrees.
    old = [r for r in records if r.end_ms < T0 + HOUR]
    _label(metrics, old[:60], seed=23)
    report = _three_ways(cached, five, raw, **PERFORMANCE_WINDOWS[0])
    assert report != first[0]
    later = [w for w in report["windows"] if w["start"] > T0]
    assert later == [w for w in first[0]["windows"] if w["start"] > T0] != []
    rebuilt = _hourly(store)
    assert {b for key, (b, _) in _keys(rebuilt) if rebuilt[key] != hourly.get(key)} == {T0}

    # Late predictions of the last hour, summarised by a report that reads five-minute
    # summaries only: rebuilding those drops that hour's hourly summary, and the next report
    # with hours builds it anew.
    late = _records(200, seed=24, salt=3)
    metrics.insert_predictions(late)
    _label(metrics, late, seed=25)
    _same(
        five.performance("clf", **PERFORMANCE_WINDOWS[1]),
        raw.performance("clf", **PERFORMANCE_WINDOWS[1]),
    )
    assert not _hourly(store)
    for window in PERFORMANCE_WINDOWS:
        _three_ways(cached, five, raw, **window)
    assert sum(n for n, _ in _hourly(store).values()) == 1700


def test_hourly_summaries_give_the_five_minute_and_the_raw_drift(
    stores: tuple[AnalysisService, AnalysisService, Store], tmp_path: Any
) -> None:
    cached, raw, store = stores
    five = AnalysisService(store, Registry(f"sqlite:///{tmp_path / 'm.db'}"), hourly=False)
    metrics = ModelMetrics(store)
    rng = np.random.default_rng(27)
    reference = pd.DataFrame(
        {
            "x": rng.normal(0, 1, 3000),
            "colour": rng.choice(["red", "blue", "green"], 3000),
            "target": rng.choice(CLASSES, 3000),
        }
    )
    cached.set_reference("clf", reference, source="test", target_column="target")
    cached.set_config("clf", MonitoringConfig(max_rows=1000))
    metrics.insert_predictions(_records(2400, seed=28, shift=0.5))
    windows = [
        {"start_ms": T0 - 1000, "end_ms": T0 + 3 * HOUR + 1},
        {"start_ms": T0 + 7 * 60_000 + 3, "end_ms": T0 + 2 * HOUR + 9 * 60_000},
        {"start_ms": T0 - 1000, "end_ms": T0 + 3 * HOUR + 1, "model_version": "2"},
    ]

    def three_ways(window: dict[str, Any]) -> dict[str, Any]:
        report = cached.drift("clf", **window)
        assert report["mode"] == "binned"
        _same(report, five.drift("clf", **window))
        _same(report, raw.drift("clf", **window))
        return report

    before = [three_ways(w) for w in windows]
    assert {b for k, b, _ in _hourly(store) if k.startswith("drift/h")} == {
        T0 + h * HOUR for h in range(3)
    }
    hourly = _hourly(store)
    # More traffic in the middle hour, of another distribution: only that hour is rebuilt.
    moved = _records(600, seed=29, salt=4, shift=3.0)
    metrics.insert_predictions([r for r in moved if T0 + HOUR <= r.end_ms < T0 + 2 * HOUR])
    after = [three_ways(w) for w in windows]
    assert after[0]["predictions"] > before[0]["predictions"]
    assert after[0]["columns"] != before[0]["columns"]
    rebuilt = _hourly(store)
    assert {b for key, (b, _) in _keys(rebuilt) if rebuilt[key] != hourly.get(key)} == {T0 + HOUR}


def test_hours_a_report_reads_from_hourly_summaries() -> None:
    from modeldeck.monitoring.summaries.store import gaps_around, whole_hours

    now = T0 + 10 * HOUR + 5
    # One window: every whole hour that is over; the hour still running is not.
    assert whole_hours(T0 + 5 * 60_000, T0 + 4 * HOUR, T0, 4 * HOUR, now) == [
        T0 + HOUR,
        T0 + 2 * HOUR,
        T0 + 3 * HOUR,
    ]
    assert whole_hours(T0, T0 + 12 * HOUR, T0, 12 * HOUR, now) == [T0 + h * HOUR for h in range(10)]
    # 90-minute windows split every other hour; 30-minute windows split them all.
    assert whole_hours(T0, T0 + 3 * HOUR, T0, 90 * 60_000, now) == [T0, T0 + 2 * HOUR]
    assert whole_hours(T0, T0 + 3 * HOUR, T0, 30 * 60_000, now) == []
    assert gaps_around(T0, T0 + 3 * HOUR, [T0, T0 + 2 * HOUR], HOUR) == [(T0 + HOUR, T0 + 2 * HOUR)]
    assert gaps_around(T0 - BUCKET_MS, T0 + HOUR + BUCKET_MS, [T0], HOUR) == [
        (T0 - BUCKET_MS, T0),
        (T0 + HOUR, T0 + HOUR + BUCKET_MS),
    ]


def _built(store: Store) -> dict[tuple[str, int, str], tuple[str, int]]:
    """Every stored summary: (kind, bucket, version) -> (signature, built)."""
    with store.read() as session:
        rows = session.execute(
            select(
                AnalysisSummaryRow.kind,
                AnalysisSummaryRow.bucket_ms,
                AnalysisSummaryRow.model_version,
                AnalysisSummaryRow.signature,
                AnalysisSummaryRow.built_ms,
            )
        ).all()
    return {(k, b, v): (sig, built) for k, b, v, sig, built in rows}


def _of(built: dict[tuple[str, int, str], Any], prefix: str) -> dict[tuple[str, int, str], Any]:
    return {key: value for key, value in built.items() if key[0].startswith(prefix)}


def test_settings_changes_drop_only_the_summaries_they_affect(
    stores: tuple[AnalysisService, AnalysisService, Store],
) -> None:
    cached, raw, store = stores
    metrics = ModelMetrics(store)
    rng = np.random.default_rng(31)
    reference = pd.DataFrame(
        {
            "x": rng.normal(0, 1, 3000),
            "colour": rng.choice(["red", "blue", "green"], 3000),
            "target": rng.choice(CLASSES, 3000),
        }
    )
    cached.set_reference("clf", reference, source="test", target_column="target")
    cached.set_config("clf", MonitoringConfig(max_rows=1000))
    records = _records(2000, seed=32, shift=0.3)
    metrics.insert_predictions(records)
    _label(metrics, records, seed=33)
    drift_window = {"start_ms": T0 - 1000, "end_ms": T0 + 3 * HOUR + 1}
    perf_window = {"start_ms": T0, "end_ms": T0 + 3 * HOUR, "step_ms": HOUR}
    drift = cached.drift("clf", **drift_window)
    performance = cached.performance("clf", **perf_window)
    built = _built(store)
    assert drift["mode"] == "binned" and _of(built, "drift/") and _of(built, "performance")
    x = next(c for c in drift["columns"] if c["column"] == "x")
    assert x["method"] == "wasserstein" and x["drifted"]

    # Methods, thresholds, the drifted share, top_k and max_rows apply when a report is read:
    # every summary survives, and the reports apply the new settings to them.
    loose = MonitoringConfig(
        max_rows=1500,
        drift_share=0.9,
        top_k=2,
        overrides={"x": {"threshold": 10.0}, "colour": {"method": "psi"}},
    )
    cached.set_config("clf", loose)
    assert _built(store) == built
    relaxed = cached.drift("clf", **drift_window)
    assert _built(store) == built  # read from the summaries, none rebuilt
    _same(relaxed, raw.drift("clf", **drift_window))
    columns = {c["column"]: c for c in relaxed["columns"]}
    assert columns["x"]["threshold"] == 10.0 and not columns["x"]["drifted"]
    assert columns["x"]["statistic"] == pytest.approx(x["statistic"])
    assert columns["colour"]["method"] == "psi" and relaxed["dataset"]["threshold"] == 0.9
    _same(cached.performance("clf", **perf_window), performance)
    assert _built(store) == built

    # Another label key changes what performance summaries count: they go, drift's stay.
    relabelled = loose.model_copy(update={"label_key": "truth"})
    cached.set_config("clf", relabelled)
    after = _built(store)
    assert not _of(after, "performance") and _of(after, "drift/") == _of(built, "drift/")
    unlabelled = cached.performance("clf", **perf_window)
    _same(unlabelled, raw.performance("clf", **perf_window))
    assert all(w["labelled"] == 0 for w in unlabelled["windows"])
    rebuilt = _built(store)
    assert _of(rebuilt, "performance") and all(
        sig != built[key][0]
        for key, (sig, _) in _of(rebuilt, "performance").items()
        if key in built
    )

    # Forcing a column's kind changes what drift summaries hold: they go, performance's stay.
    recast = relabelled.model_copy(
        update={"overrides": {**relabelled.overrides, "x": {"kind": "categorical"}}}
    )
    cached.set_config("clf", MonitoringConfig.model_validate(recast.model_dump()))
    after = _built(store)
    assert not _of(after, "drift/") and _of(after, "performance") == _of(rebuilt, "performance")
    recast_drift = cached.drift("clf", **drift_window)
    assert _of(_built(store), "drift/")
    _same(recast_drift, raw.drift("clf", **drift_window))
    assert next(c for c in recast_drift["columns"] if c["column"] == "x")["kind"] == "categorical"


def test_the_background_round_keeps_the_whole_retention_summarised_a_stretch_at_a_time(
    stores: tuple[AnalysisService, AnalysisService, Store],
) -> None:
    from modeldeck.records.model_metrics import now_ms

    cached, raw, store = stores
    metrics = ModelMetrics(store)
    rng = np.random.default_rng(41)
    reference = pd.DataFrame(
        {"x": rng.normal(0, 1, 2000), "colour": rng.choice(["red", "blue"], 2000)}
    )
    cached.set_reference("clf", reference, source="test")
    cached.set_config("clf", MonitoringConfig(max_rows=1000))
    # The expected hours are computed from ``now``, the service computes them again at each
    # call: keep the test clear of an hour's end (where both would disagree).
    while HOUR - now_ms() % HOUR < 60_000:
        time.sleep(1)
    now = now_ms()
    records = [
        PredictionRecord(
            uuid=_uuid(i, 41 + version),
            deployment_id="dep-1",
            start_ms=now - i * BUCKET_MS,
            end_ms=now - i * BUCKET_MS,
            model_version=str(version),
            metrics={
                "input": {"x": float(rng.normal()), "colour": str(rng.choice(["red", "blue"]))},
                "output": CLASSES[i % 3],
            },
        )
        for i in range(1, 4 * 24 * 12)  # two every five minutes over four days
        for version in (1, 2)
    ]
    metrics.insert_predictions(records)
    _label(metrics, records, seed=42)
    oldest = now - 84 * HOUR  # the retention: three and a half days
    refresh = {"hours": 24, "backfill_hours": 24, "oldest_ms": oldest}

    def hours_of(kind: str) -> set[int]:
        return {b for (k, b, _), _ in _built(store).items() if k.startswith(kind)}

    end = now // BUCKET_MS * BUCKET_MS
    top = -(-(end - 24 * HOUR) // HOUR) * HOUR
    bottom = -(-oldest // HOUR) * HOUR
    cached.refresh_summaries("clf", **refresh)
    # The last day, and one stretch of 24 hours below it: nothing older yet.
    assert min(hours_of("performance/h")) == min(hours_of("drift/h")) == top - 24 * HOUR
    cached.refresh_summaries("clf", **refresh)
    assert min(hours_of("performance/h")) == top - 48 * HOUR
    cached.refresh_summaries("clf", **refresh)  # down to the retention (12 hours left)
    expected = set(range(bottom, end // HOUR * HOUR, HOUR))
    assert hours_of("performance/h") >= expected and hours_of("drift/h") >= expected
    assert min(hours_of("performance/h")) == bottom

    # A report over the whole retention builds nothing: every summary it reads is there.
    before = _built(store)
    window = {"start_ms": bottom, "end_ms": end // HOUR * HOUR}
    drift = cached.drift("clf", **window)
    performance = cached.performance("clf", **window, step_ms=HOUR)
    assert _built(store) == before
    assert drift["mode"] == "binned" and drift["predictions"] == len(
        [r for r in records if bottom <= r.end_ms < window["end_ms"]]
    )
    _same(performance, raw.performance("clf", **window, step_ms=HOUR))
    _same(drift, raw.drift("clf", **window))

    # The next round starts again from the top, where late labels are taken in.
    _label(metrics, records[: 24 * 30], seed=43)  # new labels for the last 30 hours
    cached.refresh_summaries("clf", **refresh)
    rebuilt = {key for key, value in _built(store).items() if before.get(key) != value}
    assert rebuilt and min(b for k, b, _ in rebuilt if k == "performance/h") >= top - 24 * HOUR
