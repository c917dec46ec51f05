"""Rollups, percentiles, series and replica events on both stores, without servers."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from sqlalchemy import delete, select

from modeldeck.errors import ValidationFailed
from modeldeck.monitoring import technical as technical_module
from modeldeck.monitoring.technical import (
    BUCKET_MS,
    GATEWAY_REPLICA,
    ReplicaEvents,
    ReplicaSample,
    TechnicalMetrics,
    latency_bucket,
    percentile,
)
from modeldeck.store import Store
from modeldeck.store.schema import LATENCY_BOUNDS_MS, DeploymentRow, ReplicaEventRow
from tests.fixtures import add_deployment


@pytest.fixture
def technical(store_url: str) -> Iterator[TechnicalMetrics]:
    store = Store(store_url)
    store.migrate()
    yield TechnicalMetrics(store)
    store.close()


def test_percentiles_interpolate_within_buckets() -> None:
    hist = [0] * (len(LATENCY_BOUNDS_MS) + 1)
    hist[latency_bucket(1.5)] = 50  # (1, 2]
    hist[latency_bucket(8.0)] = 50  # (7.5, 10]
    assert percentile(hist, 0.25) == pytest.approx(1.5)
    assert 7.5 < percentile(hist, 0.99) <= 10.0  # type: ignore[operator]
    assert percentile([0] * len(hist), 0.5) is None
    assert latency_bucket(0.1) == 0 and latency_bucket(10**9) == len(LATENCY_BOUNDS_MS)


def test_series_counts_exactly_per_replica_and_step(technical: TechnicalMetrics) -> None:
    start = int(time.time() * 1000) // BUCKET_MS * BUCKET_MS - 60_000
    for _ in range(7):
        technical.rollups.record("d", "1", 0, 200, 0.002, 100, 50)
    for _ in range(3):
        technical.rollups.record("d", "1", 1, 500, 0.020, 120, 80)
    technical.rollups.record("d", "1", None, 401, 0.0001, 10, 90)
    technical.rollups.record("other", "1", 0, 200, 0.002, 100, 50)
    technical.flush(
        [ReplicaSample("d", "1", 0, start + 1_000, 50.0, 100_000_000, 1.0),
         ReplicaSample("d", "1", 1, start + 1_000, 10.0, 200_000_000, 2.0)],
        everything=True,
    )  # fmt: skip
    data = technical.series("d", start, start + 120_000, step_ms=60_000)
    totals = data["totals"]
    assert (totals["requests"], totals["ok"], totals["failed"]) == (11, 7, 4)
    assert (totals["failed_4xx"], totals["failed_5xx"]) == (1, 3)
    assert totals["request_bytes"] == 7 * 100 + 3 * 120 + 10
    assert totals["response_bytes"] == 7 * 50 + 3 * 80 + 90
    assert data["replicas"] == [
        {"replica": "gateway", "received": 1, "success": 0, "failed": 1},
        {"replica": 0, "received": 7, "success": 7, "failed": 0},
        {"replica": 1, "received": 3, "success": 0, "failed": 3},
    ]
    assert len(data["requests"]) == 2
    assert sum(p["requests"] for p in data["requests"]) == 11
    assert data["resources"]["all"][0]["cpu_percent"] == pytest.approx(60.0)
    assert data["resources"]["all"][0]["rss_bytes"] == pytest.approx(300_000_000)
    only_one = technical.series("d", start, start + 120_000, step_ms=60_000, replica=1)
    assert only_one["totals"]["requests"] == 3
    assert list(only_one["resources"]["per_replica"]) == ["1"]
    assert GATEWAY_REPLICA == -1


def test_step_validation(technical: TechnicalMetrics) -> None:
    with pytest.raises(ValidationFailed):
        technical.series("d", 0, 60_000, step_ms=3_000)
    with pytest.raises(ValidationFailed, match="too many"):
        technical.series("d", 0, 86_400_000 * 30, step_ms=5_000)
    with pytest.raises(ValidationFailed):
        technical.series("d", 10, 5)
    now = int(time.time() * 1000) // BUCKET_MS * BUCKET_MS
    assert technical.series("d", now - 3_600_000, now)["step"] == 30_000


def test_prune_drops_old_rollups(technical: TechnicalMetrics) -> None:
    technical.rollups.record("d", "1", 0, 200, 0.001, 1, 1)
    technical.flush(everything=True)
    technical.prune(older_than_ms=int(time.time() * 1000) + BUCKET_MS)
    end = int(time.time() * 1000) + BUCKET_MS
    assert technical.series("d", end - 600_000, end)["totals"]["requests"] == 0


def _old_rows(
    technical: TechnicalMetrics, start: int, buckets: int, *, seed: int = 7
) -> tuple[int, int]:
    """Five-second rollups and samples for two replicas of ``d`` (and one of ``other``),
    written the way flushes write them: some buckets twice, as after a restart."""
    import random

    from sqlalchemy import insert

    from modeldeck.store.schema import ReplicaSampleRow, RollupRow

    rng = random.Random(seed)
    rollups, samples = [], []
    for b in range(buckets):
        t = start + b * BUCKET_MS
        for deployment, replica, version in (("d", 0, "1"), ("d", 1, "1"), ("d", 1, "2"),
                                             ("other", 0, "1")):  # fmt: skip
            for _ in range(2 if b % 17 == 0 else 1):
                hist = [rng.randrange(3) for _ in range(len(LATENCY_BOUNDS_MS) + 1)]
                n = sum(hist)
                ok = rng.randrange(n + 1)
                row = {
                    "deployment_id": deployment, "version": version, "replica": replica,
                    "bucket_ms": t, "requests": n, "status_2xx": ok, "status_4xx": n - ok,
                    "status_5xx": 0, "status_other": 0,
                    "latency_sum_ms": rng.uniform(0, 50) * n, "latency_max_ms": rng.uniform(0, 99),
                    "req_bytes_sum": 100 * n, "req_bytes_max": rng.randrange(500),
                    "resp_bytes_sum": 40 * n, "resp_bytes_max": rng.randrange(900),
                }  # fmt: skip
                row.update({f"lat_{i:02d}": c for i, c in enumerate(hist)})
                rollups.append(row)
            samples.append(
                {"deployment_id": deployment, "version": version, "replica": replica,
                 "ts_ms": t + 1_000, "cpu_percent": rng.uniform(0, 100),
                 "rss_bytes": rng.randrange(100_000_000, 200_000_000), "cpu_seconds": b * 0.1}
            )  # fmt: skip
    with technical.store.write() as session:
        session.execute(insert(RollupRow), rollups)
        session.execute(insert(ReplicaSampleRow), samples)
    return len(rollups), len(samples)


def _counts(technical: TechnicalMetrics) -> tuple[int, int]:
    from sqlalchemy import func, select

    from modeldeck.store.schema import ReplicaSampleRow, RollupRow

    with technical.store.read() as session:
        return (
            int(session.scalar(select(func.count()).select_from(RollupRow)) or 0),
            int(session.scalar(select(func.count()).select_from(ReplicaSampleRow)) or 0),
        )


def _close(a: dict[str, object], b: dict[str, object]) -> bool:
    """Equal dicts, floats within rounding (sums are added in another order)."""
    return a.keys() == b.keys() and all(
        a[k] == pytest.approx(b[k]) if isinstance(b[k], float) else a[k] == b[k] for k in a
    )


def test_compaction_keeps_every_count_sum_histogram_and_maximum(
    technical: TechnicalMetrics,
) -> None:
    from modeldeck.monitoring.technical import COARSE_MS, COMPACT_AFTER_MS

    now = int(time.time() * 1000)
    start = (now - COMPACT_AFTER_MS - 3 * 3_600_000) // COARSE_MS * COARSE_MS + 35_000
    _old_rows(technical, start, buckets=2 * 720 + 100)  # two hours and a bit, mid-window start
    recent = now - 60_000
    technical.rollups.record("d", "1", 0, 200, 0.003, 10, 10)
    technical.flush([ReplicaSample("d", "1", 0, recent, 5.0, 1, 1.0)], everything=True)
    end = now + BUCKET_MS
    hours = (start // COARSE_MS * COARSE_MS, end)
    before = {
        (rep, step): technical.series("d", *hours, step_ms=step, replica=rep)
        for rep in (None, 0, 1)
        for step in (COARSE_MS, 3_600_000)
    }
    rows_before = _counts(technical)

    removed = technical.compact()

    rows_after = _counts(technical)
    assert removed > 0 and removed == sum(rows_before) - sum(rows_after)
    # One row per five minutes and group remains of the old rows; the recent ones are untouched.
    windows = -(-(start % COARSE_MS + (2 * 720 + 100) * BUCKET_MS) // COARSE_MS)
    assert rows_after == (4 * windows + 1, 4 * windows + 1)
    for (rep, step), was in before.items():
        now_is = technical.series("d", *hours, step_ms=step, replica=rep)
        assert _close(now_is["totals"], was["totals"]), (rep, step)
        assert now_is["replicas"] == was["replicas"]
        assert len(now_is["requests"]) == len(was["requests"])
        for point, was_point in zip(now_is["requests"], was["requests"], strict=True):
            assert _close(point, was_point), (rep, step, point["t"])
        # CPU and memory: five-minute means; a coarser step averages those (a partly filled
        # five minutes weighs as much as a full one).
        rel = 1e-6 if step == COARSE_MS else 1e-2
        for what in ("cpu_percent", "rss_bytes"):
            got = [p[what] for p in now_is["resources"]["all"]]
            assert got == pytest.approx([p[what] for p in was["resources"]["all"]], rel=rel)
    assert technical.series("other", *hours, step_ms=COARSE_MS)["totals"]["requests"] > 0

    assert technical.compact() == 0  # nothing left to do, and it knows where it stopped
    technical._compacted.clear()
    assert technical.compact() == 0  # a restarted platform finds the old rows already compact
    assert _counts(technical) == rows_after


def test_steps_finer_than_compacted_rows_apply_to_recent_ranges_only(
    technical: TechnicalMetrics,
) -> None:
    from modeldeck.monitoring.technical import COARSE_MS, COMPACT_AFTER_MS

    now = int(time.time() * 1000)
    assert technical.series("d", now - 3_600_000, now, step_ms=10_000)["step"] == 10_000
    old = now - COMPACT_AFTER_MS - 3_600_000
    assert technical.series("d", old, old + 3_600_000, step_ms=10_000)["step"] == COARSE_MS
    assert technical.series("d", old, old + 3_600_000, step_ms=900_000)["step"] == 900_000


class _Clock:
    """Stands in for the ``time`` module of technical.py: ``time()`` answers ``now``."""

    def __init__(self, now_s: float) -> None:
        self.now = now_s

    def time(self) -> float:
        return self.now


def _events_store(store_url: str) -> Store:
    store = Store(store_url)
    store.migrate()
    add_deployment(store, "dep-a", "a")
    add_deployment(store, "dep-b", "b")
    return store


def test_replica_events_are_stored_and_a_restart_reads_them_in_order(
    store_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = _Clock(1_000.0)
    monkeypatch.setattr(technical_module, "time", clock)
    store = _events_store(store_url)
    events = TechnicalMetrics(store).events
    for t_s, kind, before, after in [
        (1_000.0, "scaled_up", 1, 2),
        (2_000.0, "scaled_up", 2, 3),
        (2_000.0, "scaled_down", 3, 2),  # the same millisecond: recorded order
        (3_000.0, "scaled_down", 2, 1),
    ]:
        clock.now = t_s
        events.record(
            "dep-a", kind, f"{kind} {before} → {after}",
            replicas_before=before, replicas_after=after, inflight=1.5,
        )  # fmt: skip
    events.record("dep-b", "scaled_up", "b's own", replicas_before=1, replicas_after=2)
    store.close()

    restarted = Store(store_url)  # a new platform on the same store
    again = TechnicalMetrics(restarted)
    try:
        assert again.events.between("dep-a", 2_000_000, 3_000_000) == [
            {"t": 2_000_000, "kind": "scaled_up", "message": "scaled_up 2 → 3",
             "replicas_before": 2, "replicas_after": 3, "inflight": 1.5},
            {"t": 2_000_000, "kind": "scaled_down", "message": "scaled_down 3 → 2",
             "replicas_before": 3, "replicas_after": 2, "inflight": 1.5},
        ]  # fmt: skip
        every = again.events.between("dep-a", 0, 2**62)
        assert [(e["t"], e["replicas_after"]) for e in every] == [
            (1_000_000, 2), (2_000_000, 3), (2_000_000, 2), (3_000_000, 1),
        ]  # fmt: skip
        assert again.events.between("dep-a", 3_000_001, 2**62) == []
        assert [e["message"] for e in again.events.between("dep-b", 0, 2**62)] == ["b's own"]
        # ... and the technical metrics query answers them with its range.
        data = again.series("dep-a", 2_995_000, 3_005_000)
        assert [e["kind"] for e in data["events"]] == ["scaled_down"]
    finally:
        restarted.close()


def test_pruning_replica_events_removes_the_old_ones_only(
    store_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = _Clock(1_000.0)
    monkeypatch.setattr(technical_module, "time", clock)
    store = _events_store(store_url)
    events = ReplicaEvents(store)
    for t_s in (1_000.0, 1_999.999, 2_000.0, 3_000.0):
        clock.now = t_s
        events.record("dep-a", "scaled_up", "up")
    clock.now = 1_500.0
    events.record("dep-b", "scaled_up", "up")
    try:
        assert events.prune(2_000_000) == 3
        assert [e["t"] for e in events.between("dep-a", 0, 2**62)] == [2_000_000, 3_000_000]
        assert events.between("dep-b", 0, 2**62) == []
        assert events.prune(2_000_000) == 0
    finally:
        store.close()


def test_deleting_a_deployment_deletes_its_replica_events(store_url: str) -> None:
    store = _events_store(store_url)
    events = ReplicaEvents(store)
    events.record("dep-a", "scaled_up", "a up", replicas_before=1, replicas_after=2)
    events.record("dep-b", "scaled_up", "b up", replicas_before=1, replicas_after=2)
    try:
        with store.write() as session:
            session.execute(delete(DeploymentRow).where(DeploymentRow.id == "dep-a"))
        with store.read() as session:
            left = session.scalars(select(ReplicaEventRow.deployment_id)).all()
        assert left == ["dep-b"]
        assert events.between("dep-a", 0, 2**62) == []
    finally:
        store.close()
