"""The dashboard's own queries on both stores: latest predictions with their delayed metrics,
the distribution of predictions per window, and replica log tails."""

from __future__ import annotations

from pathlib import Path

import pytest

from modeldeck.errors import ValidationFailed
from modeldeck.records.model_metrics import ModelMetrics, PredictionRecord, new_prediction_id
from modeldeck.store import Store
from modeldeck.store.schema import DeploymentRow
from modeldeck.ui import service
from modeldeck.ui.service import (
    MISSING,
    OTHER,
    DashboardQueries,
    nice_step_ms,
    tail_lines,
)

T0 = 1_700_000_000_000
MINUTE = 60_000


@pytest.fixture
def store(store_url: str) -> Store:
    store = Store(store_url)
    store.migrate()
    with store.write() as session:
        for name in ("dash", "other"):
            session.add(
                DeploymentRow(
                    id=f"id-{name}", name=name, crn=f"crn:{name}", model_name="m",
                    model_version="1", version_spec="1", model_uri="models:/m/1",
                    runtime="local", replicas=1, environment={}, auth_enabled=True,
                    desired_state="running", status="deployed", status_message="",
                )
            )  # fmt: skip
    return store


def record(metrics: ModelMetrics, end_ms: int, output: object, deployment: str = "id-dash") -> str:
    uuid = new_prediction_id()
    tracked = {"input": {"x": 1}, "output": output}
    metrics.insert_predictions(
        [PredictionRecord(uuid, deployment, end_ms - 3, end_ms, tracked, "1", 0)]
    )
    return uuid


def test_recent_predictions_newest_first_with_delayed_metrics_merged(store: Store) -> None:
    metrics = ModelMetrics(store)
    uuids = [record(metrics, T0 + i * MINUTE, i % 3) for i in range(30)]
    record(metrics, T0 + 99 * MINUTE, 9, deployment="id-other")  # another deployment's
    metrics.track_delayed_many(None, [(uuids[-1], {"actual_result": 2, "note": "first"})])
    metrics.track_delayed_many(None, [(uuids[-1], {"note": "second"})])
    metrics.track_delayed_many(None, [(uuids[-3], {"actual_result": 0})])

    recent = DashboardQueries(store).recent_predictions("id-dash", limit=5)

    assert [r["uuid"] for r in recent] == uuids[::-1][:5]
    assert recent[0]["end_ms"] == T0 + 29 * MINUTE
    assert recent[0]["metrics"] == {"input": {"x": 1}, "output": 2}
    assert recent[0]["delayed"] == {"actual_result": 2, "note": "second"}
    assert recent[0]["delayed_at"] is not None
    assert recent[1]["delayed"] == {} and recent[1]["delayed_at"] is None
    assert recent[2]["delayed"] == {"actual_result": 0}
    assert DashboardQueries(store).recent_predictions("id-dash", model_version="7") == []


def test_distribution_counts_each_value_per_window(store: Store) -> None:
    metrics = ModelMetrics(store)
    # Window 0: two "a", one 1; window 1: nothing; window 2: one "a".
    record(metrics, T0 + 1000, "a")
    record(metrics, T0 + 2000, "a")
    record(metrics, T0 + 3000, 1)
    record(metrics, T0 + 2 * MINUTE + 5, "a")
    record(metrics, T0 + 3 * MINUTE, "a")  # the end is excluded

    report = DashboardQueries(store).prediction_distribution("id-dash", T0, T0 + 3 * MINUTE, MINUTE)

    assert report["kind"] == "categorical"
    assert report["values"] == ["1", "a"]  # numbers first
    assert [p["t"] for p in report["points"]] == [T0, T0 + MINUTE, T0 + 2 * MINUTE]
    assert [p["counts"] for p in report["points"]] == [{"a": 2, "1": 1}, {}, {"a": 1}]
    assert [p["count"] for p in report["points"]] == [3, 0, 1]


def test_distribution_folds_rare_values_and_missing_ones(store: Store) -> None:
    metrics = ModelMetrics(store)
    for i in range(12):  # value "v0" most frequent ... "v11" least, in one window
        for _ in range(12 - i):
            record(metrics, T0 + 1000, f"v{i}")
    uuid = new_prediction_id()
    metrics.insert_predictions([PredictionRecord(uuid, "id-dash", T0, T0 + 1000, {"input": {}})])

    report = DashboardQueries(store).prediction_distribution(
        "id-dash", T0, T0 + MINUTE, MINUTE, top=3
    )

    assert report["values"][:3] == ["v0", "v1", "v2"]
    assert set(report["values"][3:]) == {OTHER, MISSING}
    counts = report["points"][0]["counts"]
    assert counts["v0"] == 12 and counts["v2"] == 10
    assert counts[OTHER] == sum(12 - i for i in range(3, 12))
    assert counts[MISSING] == 1


@pytest.mark.parametrize("max_groups", [2, 1000])
def test_distribution_folds_the_same_with_many_windows(
    store: Store, monkeypatch: pytest.MonkeyPatch, max_groups: int
) -> None:
    """Past MAX_GROUPS (window, value) pairs the leaders are found first and the rest folded
    in SQL: the same answer as folding them afterwards."""
    monkeypatch.setattr(service, "MAX_GROUPS", max_groups)
    metrics = ModelMetrics(store)
    for w in range(3):
        for i in range(5):
            for _ in range(5 - i):
                record(metrics, T0 + w * MINUTE + 1, f"v{i}")
    report = DashboardQueries(store).prediction_distribution(
        "id-dash", T0, T0 + 3 * MINUTE, MINUTE, top=2
    )
    assert report["values"] == ["v0", "v1", OTHER]
    assert [p["counts"] for p in report["points"]] == [{"v0": 5, "v1": 4, OTHER: 6}] * 3
    few = DashboardQueries(store).prediction_distribution(
        "id-dash", T0, T0 + 3 * MINUTE, MINUTE, top=5
    )
    assert few["values"] == ["v0", "v1", "v2", "v3", "v4"]
    assert few["points"][2]["counts"] == {"v0": 5, "v1": 4, "v2": 3, "v3": 2, "v4": 1}


def test_large_ranges_are_sampled_and_counts_stay_exact(store: Store) -> None:
    metrics = ModelMetrics(store)
    for i in range(600):
        record(metrics, T0 + (i % 2) * MINUTE + i, "a" if i % 3 else "b")
    queries = DashboardQueries(store)

    exact = queries.prediction_distribution("id-dash", T0, T0 + 2 * MINUTE, MINUTE)
    sampled = queries.prediction_distribution("id-dash", T0, T0 + 2 * MINUTE, MINUTE, max_rows=200)

    assert not exact["sampled"] and sampled["sampled"]
    assert exact["predictions"] == sampled["predictions"] == 600
    assert [p["count"] for p in sampled["points"]] == [300, 300]
    assert exact["points"][0]["counts"] == {"a": 200, "b": 100}
    for point in sampled["points"]:
        shares = point["counts"]
        assert abs(sum(shares.values()) - 300) <= 2  # rounding
        assert 140 <= shares["a"] <= 260  # 2/3 of 300, from a sample of about 100


def test_distribution_of_many_numbers_is_a_band(store: Store) -> None:
    metrics = ModelMetrics(store)
    for i in range(20):
        record(metrics, T0 + 1000 + i, 0.5 + i)
    record(metrics, T0 + MINUTE + 1, 100.0)

    report = DashboardQueries(store).prediction_distribution(
        "id-dash", T0, T0 + 2 * MINUTE, MINUTE, top=10
    )

    assert report["kind"] == "numeric"
    first, second = report["points"]
    assert first["count"] == 20
    assert first["mean"] == pytest.approx(10.0)
    assert (first["min"], first["max"]) == (0.5, 19.5)
    assert (second["count"], second["mean"]) == (1, 100.0)


def test_distribution_checks_its_range(store: Store) -> None:
    queries = DashboardQueries(store)
    with pytest.raises(ValidationFailed):
        queries.prediction_distribution("id-dash", T0, T0)
    with pytest.raises(ValidationFailed):
        queries.prediction_distribution("id-dash", T0, T0 + 86_400_000, 1)
    report = queries.prediction_distribution("id-dash", T0, T0 + 86_400_000)
    assert report["kind"] == "empty" and len(report["points"]) == 48


def test_nice_steps() -> None:
    assert nice_step_ms(3_600_000) == 120_000
    assert nice_step_ms(86_400_000) == 1_800_000
    assert nice_step_ms(100 * 86_400_000) == 3 * 86_400_000


def test_tail_lines(tmp_path: Path) -> None:
    path = tmp_path / "replica-0.log"
    assert tail_lines(path)["exists"] is False
    path.write_bytes(
        b"".join(f"line {i} \x1b[32mgreen\x1b[0m\n".encode() for i in range(50)) + b"bad \xff\n"
    )
    tail = tail_lines(path, lines=3)
    assert tail["exists"] and tail["truncated"]
    assert tail["lines"] == ["line 48 green", "line 49 green", "bad \ufffd"]
    cut = tail_lines(path, lines=100, max_bytes=40)
    assert cut["truncated"] and all(line.startswith(("line", "bad")) for line in cut["lines"])
    assert tail_lines(path, lines=1000)["lines"][0] == "line 0 green"
