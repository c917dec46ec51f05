"""Rollups, percentiles and series on both stores, without servers."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from modeldeck.errors import ValidationFailed
from modeldeck.monitoring.technical import (
    BUCKET_MS,
    GATEWAY_REPLICA,
    ReplicaSample,
    TechnicalMetrics,
    latency_bucket,
    percentile,
)
from modeldeck.store import Store
from modeldeck.store.schema import LATENCY_BOUNDS_MS


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
    assert technical.series("d", 0, 3_600_000)["step"] == 30_000


def test_prune_drops_old_rollups(technical: TechnicalMetrics) -> None:
    technical.rollups.record("d", "1", 0, 200, 0.001, 1, 1)
    technical.flush(everything=True)
    technical.prune(older_than_ms=int(time.time() * 1000) + BUCKET_MS)
    end = int(time.time() * 1000) + BUCKET_MS
    assert technical.series("d", end - 600_000, end)["totals"]["requests"] == 0
