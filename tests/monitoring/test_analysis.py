"""Drift and performance from a real store (SQLite and PostgreSQL), checked against scikit-learn."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn import metrics as skm

from modeldeck.errors import NotFound, ValidationFailed
from modeldeck.monitoring.analysis import AnalysisService
from modeldeck.monitoring.config import MonitoringConfig
from modeldeck.monitoring.drift.series import drift_series
from modeldeck.records.model_metrics import ModelMetrics, PredictionRecord, Target
from modeldeck.registry import Registry
from modeldeck.store import Store
from tests.fixtures import add_deployment

T0 = 1_700_000_000_000
HOUR = 3_600_000
CLASSES = ["a", "b", "c"]


@pytest.fixture
def setup(store_url: str, tmp_path: Any) -> Iterator[tuple[AnalysisService, ModelMetrics]]:
    store = Store(store_url)
    store.migrate()
    add_deployment(store, "dep-1", "clf", source="file")
    add_deployment(store, "dep-2", "reg", source="file")
    registry = Registry(f"sqlite:///{tmp_path / 'unused-mlflow.db'}")
    yield AnalysisService(store, registry), ModelMetrics(store)
    store.close()


def _uuid(i: int, salt: int = 0) -> str:
    return f"{salt:08x}-0000-4000-8000-{i:012x}"


def _classification_data(n: int, seed: int) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    raw = rng.dirichlet([2, 2, 2], size=n)
    probs = np.round(raw, 4)
    predicted = [CLASSES[i] for i in probs.argmax(axis=1)]
    # Labels agree with the prediction 70 % of the time in the first hour, 40 % in the second.
    actual = []
    for i, p in enumerate(predicted):
        agree = 0.7 if i < n // 2 else 0.4
        actual.append(p if rng.random() < agree else CLASSES[int(rng.integers(3))])
    return {"probs": probs, "predicted": predicted, "actual": actual}


def _record_classification(metrics: ModelMetrics, data: dict[str, Any], labelled: int) -> list[str]:
    n = len(data["predicted"])
    records = []
    for i in range(n):
        ts = T0 + (0 if i < n // 2 else HOUR) + i
        records.append(
            PredictionRecord(
                uuid=_uuid(i),
                deployment_id="dep-1",
                start_ms=ts,
                end_ms=ts,
                model_version="1",
                metrics={
                    "input": {"x": float(i % 7), "colour": ["red", "blue"][i % 2]},
                    "output": data["predicted"][i],
                    "probabilities": dict(zip(CLASSES, data["probs"][i].tolist(), strict=True)),
                },
            )
        )
    metrics.insert_predictions(records)
    target = Target("dep-1", "clf", "m", "1")
    # A wrong label first, corrected later: the latest delayed value counts.
    metrics.track_delayed_many(target, [(_uuid(0), {"actual_result": "zzz"})])
    metrics.track_delayed_many(
        target, [(_uuid(i), {"actual_result": data["actual"][i]}) for i in range(labelled)]
    )
    # A delayed metric without the label key must not count as a label.
    metrics.track_delayed_many(target, [(_uuid(n - 1), {"comment": "looked at it"})])
    return [r.uuid for r in records]


def test_realised_classification_equals_scikit_learn(
    setup: tuple[AnalysisService, ModelMetrics],
) -> None:
    service, metrics = setup
    data = _classification_data(600, seed=1)
    labelled = 500  # the last 100 predictions have no label yet
    _record_classification(metrics, data, labelled)

    report = service.performance(
        "clf", start_ms=T0, end_ms=T0 + 2 * HOUR, step_ms=HOUR, by_version=True
    )
    assert report["task"] == "classification"
    assert [w["model_version"] for w in report["windows"]] == ["1", "1"]
    halves = [(0, 300), (300, 500)]
    for window, (lo, hi) in zip(report["windows"], halves, strict=True):
        y = data["actual"][lo:hi]
        p = data["predicted"][lo:hi]
        probs = data["probs"][lo:hi]
        realised = window["realised"]
        assert window["predictions"] == 300
        assert window["labelled"] == hi - lo
        assert window["label_coverage"] == pytest.approx((hi - lo) / 300)
        assert realised["accuracy"] == pytest.approx(skm.accuracy_score(y, p), abs=1e-12)
        for name, fn in (
            ("precision_macro", skm.precision_score),
            ("recall_macro", skm.recall_score),
            ("f1_macro", skm.f1_score),
        ):
            expected = fn(y, p, average="macro", zero_division=0)
            assert realised[name] == pytest.approx(expected, abs=1e-12), name
        per_class = skm.f1_score(y, p, average=None, labels=CLASSES, zero_division=0)
        for cls, f1 in zip(CLASSES, per_class, strict=True):
            assert realised["per_class"][cls]["f1"] == pytest.approx(f1, abs=1e-12)
        assert realised["log_loss"] == pytest.approx(
            skm.log_loss(y, probs / probs.sum(axis=1, keepdims=True), labels=CLASSES), rel=1e-3
        )
        expected_auc = skm.roc_auc_score(
            y, probs / probs.sum(axis=1, keepdims=True), multi_class="ovr", labels=CLASSES
        )
        assert realised["roc_auc"] == pytest.approx(expected_auc, abs=2e-3)
    # The second hour's labels agree less often: accuracy falls.
    first, second = (w["realised"]["accuracy"] for w in report["windows"])
    assert second < first - 0.15


def test_log_loss_and_auc_are_exact_on_normalised_probabilities(
    setup: tuple[AnalysisService, ModelMetrics],
) -> None:
    service, metrics = setup
    rng = np.random.default_rng(5)
    n = 400
    p1 = np.round(rng.random(n), 2)
    y = (rng.random(n) < p1).astype(int)
    records = [
        PredictionRecord(
            uuid=_uuid(i, 7),
            deployment_id="dep-1",
            start_ms=T0 + i,
            end_ms=T0 + i,
            metrics={
                "output": int(p1[i] >= 0.5),
                "probabilities": {"0": round(1 - float(p1[i]), 2), "1": float(p1[i])},
            },
        )
        for i in range(n)
    ]
    metrics.insert_predictions(records)
    metrics.track_delayed_many(
        None, [(_uuid(i, 7), {"actual_result": int(y[i])}) for i in range(n)]
    )
    window = service.performance("clf", start_ms=T0, end_ms=T0 + HOUR)["windows"][0]
    proba = np.column_stack([np.round(1 - p1, 2), p1])
    assert window["realised"]["roc_auc"] == pytest.approx(skm.roc_auc_score(y, p1), abs=1e-12)
    assert window["realised"]["log_loss"] == pytest.approx(
        skm.log_loss(y, np.clip(proba, 1e-15, 1 - 1e-15)), rel=1e-9
    )


def test_realised_regression_equals_scikit_learn(
    setup: tuple[AnalysisService, ModelMetrics],
) -> None:
    service, metrics = setup
    rng = np.random.default_rng(2)
    n = 300
    actual = np.round(rng.normal(10, 3, n), 3)
    actual[5] = 0.0  # MAPE's denominator guard
    predicted = np.round(actual + rng.normal(0, 1, n), 3)
    records = [
        PredictionRecord(
            uuid=_uuid(i, 2),
            deployment_id="dep-2",
            start_ms=T0 + i,
            end_ms=T0 + i,
            metrics={"input": {"x": float(i)}, "output": float(predicted[i])},
        )
        for i in range(n)
    ]
    metrics.insert_predictions(records)
    metrics.track_delayed_many(
        Target("dep-2", "reg"),
        [(_uuid(i, 2), {"actual_result": float(actual[i])}) for i in range(n)],
    )
    service.set_config("reg", MonitoringConfig(task="regression"))
    realised = service.performance("reg", start_ms=T0, end_ms=T0 + HOUR)["windows"][0]["realised"]
    assert realised["count"] == n
    assert realised["mae"] == pytest.approx(skm.mean_absolute_error(actual, predicted), rel=1e-9)
    assert realised["rmse"] == pytest.approx(
        np.sqrt(skm.mean_squared_error(actual, predicted)), rel=1e-9
    )
    assert realised["mape"] == pytest.approx(
        skm.mean_absolute_percentage_error(actual, predicted), rel=1e-9
    )
    assert realised["r2"] == pytest.approx(skm.r2_score(actual, predicted), rel=1e-9)


def test_drift_against_uploaded_reference(setup: tuple[AnalysisService, ModelMetrics]) -> None:
    service, metrics = setup
    rng = np.random.default_rng(3)
    reference = pd.DataFrame(
        {
            "age": rng.normal(40, 10, 800).round(2),
            "income": rng.normal(50, 5, 800).round(2),
            "plan": rng.choice(["free", "pro", "team"], 800, p=[0.6, 0.3, 0.1]),
            "target": rng.integers(0, 2, 800),
        }
    )
    summary = service.set_reference("clf", reference, source="test", target_column="target")
    assert summary["rows"] == 800 and summary["target_column"] == "target"
    records = []
    for i in range(600):
        records.append(
            PredictionRecord(
                uuid=_uuid(i, 3),
                deployment_id="dep-1",
                start_ms=T0 + i,
                end_ms=T0 + i,
                metrics={
                    "input": {
                        "age": float(rng.normal(40, 10)) + 8.0,  # shifted
                        "income": float(rng.normal(50, 5)),
                        "plan": str(rng.choice(["free", "pro", "team"], p=[0.6, 0.3, 0.1])),
                    },
                    "output": int(rng.integers(0, 2)),
                },
            )
        )
    metrics.insert_predictions(records)
    report = service.drift("clf", start_ms=T0, end_ms=T0 + HOUR)
    by_column = {c["column"]: c for c in report["columns"]}
    assert set(by_column) == {"age", "income", "plan"}
    assert by_column["age"]["method"] == "ks" and by_column["age"]["drifted"]
    assert not by_column["income"]["drifted"]
    assert by_column["plan"]["method"] == "chisquare" and not by_column["plan"]["drifted"]
    assert report["dataset"]["drifted_columns"] == ["age"]
    assert report["dataset"]["drifted"] is False  # 1 of 3 < 0.5
    assert report["predictions"] == 600 and report["mode"] == "raw"
    assert report["prediction"] is not None and report["prediction"]["reference_column"] == "target"

    # Overrides: PSI on age with a threshold nothing reaches.
    service.set_config(
        "clf", MonitoringConfig(overrides={"age": {"method": "psi", "threshold": 100.0}})
    )
    age = next(c for c in service.drift("clf", start_ms=T0, end_ms=T0 + HOUR)["columns"])
    assert age["method"] == "psi" and not age["drifted"]

    # A window larger than max_rows is tested on five-minute summaries, and says so; the
    # verdicts are those of the exact test, and categorical statistics are the same numbers.
    service.set_config("clf", MonitoringConfig(max_rows=1000))
    more = [
        PredictionRecord(
            uuid=f"{i:08x}-0000-7000-8000-{int(rng.integers(0, 2**48)):012x}",
            deployment_id="dep-1",
            start_ms=T0 + 1000 + i,
            end_ms=T0 + 1000 + i * 1000,
            metrics={"input": {"age": 40.0, "income": 50.0, "plan": "free"}, "output": 1},
        )
        for i in range(3000)
    ]
    metrics.insert_predictions(more)
    binned = service.drift("clf", start_ms=T0, end_ms=T0 + HOUR)
    exact = service.drift("clf", start_ms=T0, end_ms=T0 + HOUR, exact=True)
    assert binned["mode"] == "binned" and exact["mode"] == "raw"
    assert binned["predictions"] == exact["predictions"] == 3600
    assert binned["current_rows"] == exact["current_rows"] == 3600
    for b, e in zip(binned["columns"], exact["columns"], strict=True):
        assert (b["column"], b["method"], b["drifted"]) == (e["column"], e["method"], e["drifted"])
        assert b["current_rows"] == e["current_rows"]
    assert binned["columns"][2]["statistic"] == pytest.approx(exact["columns"][2]["statistic"])
    assert binned["prediction"]["statistic"] == pytest.approx(exact["prediction"]["statistic"])
    assert binned["dataset"] == exact["dataset"]


def test_errors_leave_things_as_they_were(setup: tuple[AnalysisService, ModelMetrics]) -> None:
    service, _ = setup
    with pytest.raises(NotFound, match="no reference data"):
        service.drift("clf")
    with pytest.raises(NotFound):
        service.drift("nope")
    frame = pd.DataFrame({"a": [1.0, 2.0]})
    with pytest.raises(ValidationFailed, match="target_column 'y'"):
        service.set_reference("clf", frame, source="t", target_column="y")
    with pytest.raises(NotFound):
        service.reference("clf")
    with pytest.raises(ValidationFailed, match="unknown drift method"):
        service.set_config("clf", MonitoringConfig(overrides={"a": {"method": "nope"}}))
    assert service.config("clf") == MonitoringConfig()
    with pytest.raises(ValidationFailed, match="end must be after start"):
        service.performance("clf", start_ms=10, end_ms=5)
    with pytest.raises(ValidationFailed, match="too many"):
        service.performance("clf", start_ms=0, end_ms=10_000_000, step_ms=1)


def test_values_of_the_wrong_type_are_counted_not_fatal(
    setup: tuple[AnalysisService, ModelMetrics],
) -> None:
    service, metrics = setup
    reference = pd.DataFrame({"a": np.arange(100.0), "b": ["x", "y"] * 50, "target": [0, 1] * 50})
    service.set_reference("clf", reference, source="t", target_column="target")
    odd: list[Any] = ["oops", 1, None, {"z": 1}]
    metrics.insert_predictions(
        [
            PredictionRecord(
                uuid=_uuid(i, 9),
                deployment_id="dep-1",
                start_ms=T0 + i,
                end_ms=T0 + i,
                metrics={
                    "input": {"a": odd[i % 4], "b": [1, "x", None, [1]][i % 4]},
                    "output": [1, "a", None, [1, 2]][i % 4],
                },
            )
            for i in range(40)
        ]
    )
    report = service.drift("clf", start_ms=T0, end_ms=T0 + HOUR)
    a, b = report["columns"]
    assert a["invalid_values"] == 20 and a["current_rows"] == 10  # 'oops' and {...} left out
    assert b["invalid_values"] == 10 and b["current_rows"] == 20  # [1] left out; 1 -> "1"
    # Outputs: 1 and "a" are compared with the 0/1 target as text; lists and nulls are skipped.
    assert report["prediction"]["current_rows"] == 20
    assert report["prediction"]["drifted"] is True  # "a" was never a label


def test_labels_that_cannot_be_json_path_keys_do_not_break_reports(
    setup: tuple[AnalysisService, ModelMetrics],
) -> None:
    service, metrics = setup
    odd = ['say "hi"', "back\\slash"]
    metrics.insert_predictions(
        [
            PredictionRecord(
                uuid=_uuid(i, 11),
                deployment_id="dep-1",
                start_ms=T0 + i,
                end_ms=T0 + i,
                metrics={"output": odd[i % 2], "probabilities": {odd[0]: 0.3, odd[1]: 0.7}},
            )
            for i in range(20)
        ]
    )
    metrics.track_delayed_many(
        None, [(_uuid(i, 11), {"actual_result": odd[(i // 2) % 2]}) for i in range(20)]
    )
    window = service.performance("clf", start_ms=T0, end_ms=T0 + HOUR)["windows"][0]
    assert window["labelled"] == 20
    assert window["realised"]["accuracy"] == pytest.approx(0.5)


def _drift_setup(service: AnalysisService, metrics: ModelMetrics, n: int) -> None:
    """Reference: balanced output; current: ``n`` rows, ``age`` shifted, output all 1s."""
    rng = np.random.default_rng(11)
    reference = pd.DataFrame(
        {
            "age": rng.normal(40, 10, 800).round(2),
            "income": rng.normal(50, 5, 800).round(2),
            "plan": rng.choice(["free", "pro", "team"], 800, p=[0.6, 0.3, 0.1]),
            "target": rng.integers(0, 2, 800),
        }
    )
    service.set_reference("clf", reference, source="test", target_column="target")
    metrics.insert_predictions(
        [
            PredictionRecord(
                uuid=_uuid(i, 11),
                deployment_id="dep-1",
                start_ms=T0 + i,
                end_ms=T0 + i,
                metrics={
                    "input": {
                        "age": float(rng.normal(40, 10)) + 10.0,
                        "income": float(rng.normal(50, 5)),
                        "plan": str(rng.choice(["free", "pro", "team"], p=[0.6, 0.3, 0.1])),
                    },
                    "output": 1,
                },
            )
            for i in range(n)
        ]
    )


def test_the_drift_verdict_names_drifted_columns_and_the_prediction(
    setup: tuple[AnalysisService, ModelMetrics],
) -> None:
    """Dataset-level "no drift" (1 of 3 columns) no longer hides a drifted prediction."""
    service, metrics = setup
    _drift_setup(service, metrics, 400)
    report = service.drift("clf", start_ms=T0, end_ms=T0 + HOUR)
    assert report["dataset"]["drifted"] is False
    assert report["prediction"]["drifted"] is True
    assert report["verdict"] == {
        "level": "drift",
        "text": "1 of 3 columns drifted; prediction drifted",
        "drifted_columns": 1,
        "columns": 3,
        "prediction_drifted": True,
        "current_rows": 400,
        "min_samples": 30,
    }
    # The p-value and the distance under their own names.
    age = next(c for c in report["columns"] if c["column"] == "age")
    assert age["method"] == "ks" and age["p_value"] == age["statistic"] < 0.05
    assert age["distance"] is None


def test_below_min_samples_the_verdict_is_not_enough_data(
    setup: tuple[AnalysisService, ModelMetrics],
) -> None:
    service, metrics = setup
    _drift_setup(service, metrics, 3)
    verdict = service.drift("clf", start_ms=T0, end_ms=T0 + HOUR)["verdict"]
    assert verdict["level"] == "not_enough_data"
    assert verdict["text"] == "not enough data: 3 of the 30 rows a verdict needs"
    service.set_config("clf", MonitoringConfig(min_samples=3))
    assert service.drift("clf", start_ms=T0, end_ms=T0 + HOUR)["verdict"]["level"] != (
        "not_enough_data"
    )
    empty = service.drift("clf", start_ms=T0 + HOUR, end_ms=T0 + 2 * HOUR)["verdict"]
    assert empty["level"] == "no_data"


def test_the_label_column_of_a_tensor_models_reference() -> None:
    """A tensor signature names no columns: the label is the column of a usual label name, not
    'none' (every column was taken for a feature the model does not take)."""
    from modeldeck.monitoring.reference import guess_target

    frame = pd.DataFrame({"a": [1.0], "b": [2.0], "target": [0]})
    tensor = {"inputs": [{"type": "tensor", "tensor-spec": {"dtype": "float32", "shape": [-1, 2]}}]}
    assert guess_target(frame, tensor) == "target"
    columns = {"inputs": [{"name": "a", "type": "double"}, {"name": "b", "type": "double"}]}
    assert guess_target(frame, columns) == "target"
    assert guess_target(frame.rename(columns={"target": "y"}), None) == "y"


def test_drift_over_time_says_when_a_column_started_to_drift(
    setup: tuple[AnalysisService, ModelMetrics],
) -> None:
    """An hour like the reference, then an hour with ``age`` shifted: only ``age``, only in the
    second hour; each window's test is the one-window report's for the same range."""
    service, metrics = setup
    rng = np.random.default_rng(5)
    reference = pd.DataFrame(
        {
            "age": rng.normal(40, 10, 800).round(2),
            "income": rng.normal(50, 5, 800).round(2),
            "plan": rng.choice(["free", "pro", "team"], 800, p=[0.6, 0.3, 0.1]),
        }
    )
    service.set_reference("clf", reference, source="test")
    records = []
    for hour in (0, 1):
        for i in range(300):
            ts = T0 + hour * HOUR + i * 1000
            features = {
                "age": float(rng.normal(40, 10)) + 15.0 * hour,
                "income": float(rng.normal(50, 5)),
                "plan": str(rng.choice(["free", "pro", "team"], p=[0.6, 0.3, 0.1])),
            }
            records.append(
                PredictionRecord(
                    uuid=_uuid(hour * 1000 + i, 5),
                    deployment_id="dep-1",
                    start_ms=ts,
                    end_ms=ts,
                    metrics={"input": features, "output": "a"},
                )
            )
    metrics.insert_predictions(records)

    found = drift_series(service, "clf", start_ms=T0, end_ms=T0 + 2 * HOUR, step_ms=HOUR)
    assert found["columns"] == ["age", "income", "plan"]
    assert [w["predictions"] for w in found["windows"]] == [300, 300]
    drifted = {c: [w["columns"][c]["drifted"] for w in found["windows"]] for c in found["columns"]}
    assert drifted == {"age": [False, True], "income": [False, False], "plan": [False, False]}
    assert [w["dataset"]["drifted"] for w in found["windows"]] == [False, False]
    one = service.drift("clf", start_ms=T0 + HOUR, end_ms=T0 + 2 * HOUR, binned=True)
    [age] = [c for c in one["columns"] if c["column"] == "age"]
    second = found["windows"][1]["columns"]["age"]
    assert (second["method"], second["statistic"]) == (age["method"], age["statistic"])

    for step_ms, field in ((1000, "step"), (0, "step")):
        with pytest.raises(ValidationFailed) as refused:
            drift_series(service, "clf", start_ms=T0, end_ms=T0 + 2 * HOUR, step_ms=step_ms)
        assert refused.value.details == {"field": field}
    with pytest.raises(NotFound):
        drift_series(service, "reg", start_ms=T0, end_ms=T0 + HOUR, step_ms=HOUR)


def test_a_model_answering_several_columns_is_judged_on_its_output_column(
    setup: tuple[AnalysisService, ModelMetrics],
) -> None:
    """A record per prediction (``{"label", "score"}``): with ``output_column`` the label is the
    prediction for realised performance (raw and from summaries) and for prediction drift."""
    service, metrics = setup
    rng = np.random.default_rng(3)
    reference = pd.DataFrame(
        {"x": rng.normal(0, 1, 400).round(3), "target": rng.choice(CLASSES, 400)}
    )
    service.set_reference("clf", reference, source="test", target_column="target")
    predicted = [CLASSES[i % 3] for i in range(300)]
    actual = [p if i % 4 else "c" for i, p in enumerate(predicted)]  # 3 in 4 right, or "c"
    metrics.insert_predictions(
        [
            PredictionRecord(
                uuid=_uuid(i, 3),
                deployment_id="dep-1",
                start_ms=T0 + i * 1000,
                end_ms=T0 + i * 1000,
                metrics={
                    "input": {"x": float(rng.normal(0, 1))},
                    "output": {"label": predicted[i], "score": 0.5},
                },
            )
            for i in range(300)
        ]
    )
    target = Target("dep-1", "clf", "m", "1")
    metrics.track_delayed_many(
        target, [(_uuid(i, 3), {"actual_result": actual[i]}) for i in range(300)]
    )
    window = {"start_ms": T0, "end_ms": T0 + HOUR}
    whole = service.performance("clf", **window, by_version=False)["windows"][0]["realised"]
    assert whole["accuracy"] == 0  # a record is never equal to a label
    assert service.drift("clf", **window)["prediction"] is None

    service.set_config("clf", MonitoringConfig(output_column="label"))
    expected = skm.accuracy_score(actual, predicted)
    realised = service.performance("clf", **window, by_version=False)["windows"][0]["realised"]
    assert realised["accuracy"] == pytest.approx(expected, abs=1e-12)
    assert realised["per_class"].keys() == set(CLASSES)
    drift = service.drift("clf", **window)
    assert drift["prediction"]["current_rows"] == 300
    assert drift["prediction"]["reference_column"] == "target"
    binned = service.drift("clf", **window, binned=True)
    assert binned["mode"] == "binned"
    assert binned["prediction"]["current_rows"] == 300
    assert binned["prediction"]["drifted"] == drift["prediction"]["drifted"]
