"""The model-metrics service on both stores, without servers."""

from __future__ import annotations

import uuid as uuidlib
from collections.abc import Iterator

import numpy as np
import pytest

from modeldeck.errors import Conflict, NotFound, ValidationFailed
from modeldeck.records.model_metrics import (
    ModelMetrics,
    PredictionRecord,
    Target,
    clean_metrics,
    records_frame,
)
from modeldeck.store import Store
from tests.fixtures import add_deployment


@pytest.fixture
def service(store_url: str) -> Iterator[tuple[ModelMetrics, Target]]:
    store = Store(store_url)
    store.migrate()
    for name in ("a", "b"):
        add_deployment(
            store, f"id-{name}", name, model_version="3", version_spec="3", model_uri="models:/m/3"
        )
    yield ModelMetrics(store), Target("id-a", "a", "m", "3")
    store.close()


def _record(ts: int, target: Target, **metrics: object) -> PredictionRecord:
    return PredictionRecord(
        uuid=str(uuidlib.uuid4()),
        deployment_id=target.deployment_id,
        start_ms=ts - 2,
        end_ms=ts,
        metrics=dict(metrics),
        model_version="3",
        replica=0,
    )


def test_records_read_back_in_clouderas_shape_oldest_first(service) -> None:  # type: ignore[no-untyped-def]
    metrics, target = service
    records = [_record(1000 + i, target, input={"x": i}, output=i % 2) for i in range(5)]
    metrics.insert_predictions(list(reversed(records)))
    page = metrics.read(target, start_ms=1000, end_ms=1004)
    assert [r["predictionUuid"] for r in page.metrics] == [r.uuid for r in records]
    first = page.metrics[0]
    assert first["startTimeStampMs"] == 998 and first["endTimeStampMs"] == 1000
    assert first["metrics"] == {"input": {"x": 0}, "output": 0}
    assert first["modelDeploymentCrn"].endswith("/model-deployment/id-a")
    assert first["modelBuildCrn"].endswith("/v3") and first["modelCrn"].endswith("/model/m")
    assert metrics.read(target, start_ms=1001, end_ms=1002).metrics[0]["predictionUuid"] == (
        records[1].uuid
    )


def test_delayed_metrics_merge_later_values_win(service) -> None:  # type: ignore[no-untyped-def]
    metrics, target = service
    rec = _record(5000, target, output=1)
    metrics.insert_predictions([rec])
    metrics.track_delayed(target, rec.uuid, {"actual": 0, "note": "first"})
    metrics.track_delayed(None, rec.uuid.upper(), {"actual": 1})
    merged = metrics.read(target, uuids=[rec.uuid]).metrics[0]["metrics"]
    assert merged == {"output": 1, "actual": 1, "note": "first"}


def test_delayed_metrics_for_unknown_or_foreign_uuids_are_404(service) -> None:  # type: ignore[no-untyped-def]
    metrics, target = service
    other = Target("id-b", "b")
    rec = _record(10, other, output=1)
    metrics.insert_predictions([rec])
    with pytest.raises(NotFound):
        metrics.track_delayed(target, rec.uuid, {"actual": 1})
    with pytest.raises(NotFound, match="no prediction"):
        metrics.track_delayed(None, str(uuidlib.uuid4()), {"actual": 1})
    with pytest.raises(ValidationFailed):
        metrics.track_delayed(None, "nope", {"actual": 1})
    assert metrics.read(other, uuids=[rec.uuid]).metrics[0]["metrics"] == {"output": 1}


def test_aggregates_come_with_an_empty_uuid(service) -> None:  # type: ignore[no-untyped-def]
    metrics, target = service
    metrics.track_aggregate(target, {"accuracy": 0.9}, 100, 200)
    metrics.track_aggregate(target, {"accuracy": 0.5}, 100, 900)
    records = metrics.read(target, start_ms=0, end_ms=500).metrics
    assert records == [
        {
            **records[0],
            "predictionUuid": "",
            "metrics": {"accuracy": 0.9},
            "startTimeStampMs": 100,
            "endTimeStampMs": 200,
        }
    ]
    with pytest.raises(ValidationFailed, match="before"):
        metrics.track_aggregate(target, {"a": 1}, 5, 4)


def test_pages_cover_everything_once(service) -> None:  # type: ignore[no-untyped-def]
    metrics, target = service
    records = [_record(7000 + i // 3, target, i=i) for i in range(50)]  # equal timestamps
    metrics.insert_predictions(records)
    seen = [r["predictionUuid"] for r in metrics.iter_records(target, limit=7)]
    assert sorted(seen) == sorted(r.uuid for r in records)
    with pytest.raises(ValidationFailed):
        metrics.read(target, cursor="nonsense")


def test_recording_batch_predictions_validates_all_before_writing(service) -> None:  # type: ignore[no-untyped-def]
    metrics, target = service
    with pytest.raises(ValidationFailed, match=r"predictions\[1\]\.metrics"):
        metrics.record(target, [{"metrics": {"a": 1}}, {"metrics": {"b": float("nan")}}])
    assert metrics.count(target) == 0
    (uuid,) = metrics.record(target, [{"metrics": {"a": 1}, "end_timestamp_ms": 10}])
    with pytest.raises(Conflict):
        metrics.record(target, [{"uuid": uuid, "metrics": {}}])
    assert metrics.count(target) == 1


def test_prune_removes_old_raw_records_but_keeps_aggregates(service) -> None:  # type: ignore[no-untyped-def]
    metrics, target = service
    old, new = _record(1_000, target, a=1), _record(9_000, target, a=2)
    metrics.insert_predictions([old, new])
    metrics.track_delayed(target, old.uuid, {"y": 1})
    metrics.track_aggregate(target, {"acc": 1.0}, 0, 2_000)
    assert metrics.prune(older_than_ms=5_000) == 1
    records = metrics.read(target, start_ms=0, end_ms=10_000).metrics
    assert [r["predictionUuid"] for r in records] == [new.uuid, ""]


def test_clean_metrics_accepts_json_and_numpy_and_names_bad_keys() -> None:
    assert clean_metrics({"a": np.float64(1.5), "b": np.arange(3), "c": {"d": [True, None]}}) == {
        "a": 1.5,
        "b": [0, 1, 2],
        "c": {"d": [True, None]},
    }
    for bad, field in [
        ({"a": {1, 2}}, "metrics.a"),
        ({"a": {"b": object()}}, "metrics.a.b"),
        ({"a": float("inf")}, "metrics.a"),
        ({"a": [1, b"x"]}, "metrics.a[1]"),
    ]:
        with pytest.raises(ValidationFailed) as info:
            clean_metrics(bad)
        assert info.value.details["field"] == field
    with pytest.raises(ValidationFailed):
        clean_metrics({"": 1})
    with pytest.raises(ValidationFailed):
        clean_metrics([("a", 1)])


def test_records_frame_has_a_column_per_metric() -> None:
    frame = records_frame(
        [
            {
                "predictionUuid": "u1",
                "startTimeStampMs": 0,
                "endTimeStampMs": 1000,
                "metrics": {"output": 1, "actual": 1},
            },
            {
                "predictionUuid": "u2",
                "startTimeStampMs": 0,
                "endTimeStampMs": 2000,
                "metrics": {"output": 0},
            },
        ]
    )
    assert list(frame["output"]) == [1, 0]
    assert frame["actual"].isna().tolist() == [False, True]
    assert str(frame["end_time"].dt.tz) == "UTC"


def test_the_platform_prunes_past_the_retention_period(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import asyncio
    import time

    from modeldeck.config import Settings
    from modeldeck.monitoring.technical import ReplicaEvents
    from modeldeck.platform import Platform
    from modeldeck.store.schema import ReplicaEventRow

    settings = Settings(data_dir=tmp_path, prediction_retention_days=1.0)
    store = Store(settings.resolved_store_url())
    store.migrate()
    add_deployment(
        store, "d", "d", model_uri="", runtime="none", replicas=0, desired_state="stopped",
        status="active", kind="batch",
    )  # fmt: skip
    target = Target("d", "d")
    now = int(time.time() * 1000)
    old, fresh = _record(now - 2 * 86_400_000, target), _record(now, target)
    ModelMetrics(store).insert_predictions([old, fresh])
    with store.write() as session:  # replica events share the retention of raw predictions
        session.add_all(
            ReplicaEventRow(deployment_id="d", ts_ms=ts, kind="scaled_up", message=m, details={})
            for ts, m in ((now - 2 * 86_400_000, "old"), (now, "fresh"))
        )

    async def run() -> int:
        platform = Platform(settings)
        await platform.start()
        try:
            return await platform.prune()
        finally:
            await platform.stop()

    asyncio.run(run())  # start-up pruned the old record; the explicit call finds nothing
    remaining = [r["predictionUuid"] for r in ModelMetrics(store).iter_records(target, start_ms=0)]
    assert remaining == [fresh.uuid]
    events = ReplicaEvents(store).between("d", 0, 2**62)
    assert [e["message"] for e in events] == ["fresh"]


def test_prediction_ids_are_time_ordered_version_7_uuids() -> None:
    import time

    from modeldeck.records.model_metrics import new_prediction_id

    first = new_prediction_id()
    time.sleep(0.002)
    ids = [new_prediction_id() for _ in range(1000)]
    parsed = uuidlib.UUID(first)
    assert parsed.version == 7 and parsed.variant == uuidlib.RFC_4122
    assert len(set(ids)) == 1000
    assert all(first < i for i in ids)  # later milliseconds sort after
    assert abs((parsed.int >> 80) - int(time.time() * 1000)) < 5_000


def test_prediction_ids_increase_strictly_within_a_millisecond() -> None:
    from modeldeck.records.model_metrics import new_prediction_id

    ids = [new_prediction_id() for _ in range(10_000)]  # many share a millisecond
    assert ids == sorted(ids) and len(set(ids)) == len(ids)


def test_prediction_ids_are_canonical_strings_with_fresh_random_bits() -> None:
    from modeldeck.records.model_metrics import new_prediction_id

    ids = [new_prediction_id() for _ in range(2_000)]  # past several refills of random bytes
    parsed = [uuidlib.UUID(i) for i in ids]
    assert [str(p) for p in parsed] == ids
    assert all(p.version == 7 and p.variant == uuidlib.RFC_4122 for p in parsed)
    assert len({p.int & ((1 << 62) - 1) for p in parsed}) == len(ids)


def test_awkward_strings_survive_the_bulk_insert(service) -> None:  # type: ignore[no-untyped-def]
    metrics, target = service
    awkward = {
        'quote"s': 'back\\slash \\N tab\t newline\n cr\r "quoted" é ☃',
        "nested": {"list": [1, 2.5, None, True, "\\"], "empty": {}},
        "big": 2**62,
    }
    record = PredictionRecord(
        str(uuidlib.uuid4()),
        target.deployment_id,
        5,
        6,
        awkward,
        model_version="v\t1\\",
        replica=None,
    )
    metrics.insert_predictions([record])
    [read] = metrics.read(target, uuids=[record.uuid]).metrics
    assert read["metrics"] == awkward and read["modelVersion"] == "v\t1\\"
    assert (read["startTimeStampMs"], read["endTimeStampMs"]) == (5, 6)
