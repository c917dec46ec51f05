"""Each model version is scored on the reference data with its own predictions: its estimated
performance comes from its own calibration (never the serving version's), a version not scored
has none ("unknown"), and its metrics on the labelled reference are kept for the canary's floor.
On both stores, with the real MLflow models of ``mlflow_registry`` (iris v1 serving, v2 not)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pandas as pd
import pytest

from modeldeck.demo.train import iris_frame
from modeldeck.monitoring.analysis import AnalysisService
from modeldeck.monitoring.performance.metrics import ConfidenceEstimator
from modeldeck.records.model_metrics import ModelMetrics, PredictionRecord
from modeldeck.registry import Registry
from modeldeck.store import Store
from tests.conftest import Registered
from tests.fixtures import add_deployment

T0 = 1_700_000_100_000  # on a five-minute boundary


@pytest.fixture
def service(store_url: str, mlflow_registry: Registered) -> Iterator[tuple[AnalysisService, Store]]:
    store = Store(store_url)
    store.migrate()
    add_deployment(
        store, "dep-1", "clf", source="registry", model_name="iris", model_version="1",
        version_spec="1", model_uri="models:/iris/1",
    )  # fmt: skip
    yield AnalysisService(store, Registry(mlflow_registry.tracking_uri)), store
    store.close()


def _model(registry: Registered, version: str) -> Any:
    import mlflow.sklearn

    return mlflow.sklearn.load_model(f"models:/iris/{version}")


def _reference() -> pd.DataFrame:
    X, y = iris_frame()
    return X.iloc[::2].assign(target=y.iloc[::2].to_numpy())  # fixed: every other row


def _record(store: Store, version: str, probabilities: np.ndarray, salt: int) -> None:
    """Predictions of ``version``: its probabilities (two decimals, as the SQL groups them)
    and the class of the highest one as the output."""
    records = [
        PredictionRecord(
            uuid=f"{salt:08x}-0000-4000-8000-{i:012x}",
            deployment_id="dep-1",
            start_ms=T0 + i,
            end_ms=T0 + i,
            model_version=version,
            metrics={
                "output": int(np.argmax(p)),
                "probabilities": {str(c): float(x) for c, x in enumerate(p)},
            },
        )
        for i, p in enumerate(probabilities)
    ]
    ModelMetrics(store).insert_predictions(records)


def test_a_non_serving_version_is_estimated_with_its_own_calibration(
    service: tuple[AnalysisService, Store], mlflow_registry: Registered
) -> None:
    analysis, store = service
    reference = _reference()
    summary = analysis.set_reference("clf", reference, source="upload", target_column="target")
    assert summary["estimator"] is True  # the serving version, scored on it at once
    assert analysis.version_score("clf", "2") is None  # not scored yet: no estimate
    features = reference.drop(columns="target")
    X, _ = iris_frame()
    current = X.iloc[1::2]  # fixed inputs the reference does not hold
    probabilities = {
        v: np.round(_model(mlflow_registry, v).predict_proba(current), 2) for v in ("1", "2")
    }
    _record(store, "1", probabilities["1"], salt=1)
    _record(store, "2", probabilities["2"], salt=2)
    window = {"start_ms": T0, "end_ms": T0 + 1000}

    before = analysis.performance("clf", model_version="2", **window)["windows"][0]
    assert before["estimated"] is None  # unknown: the serving version's is not borrowed

    score = analysis.score_version("clf", "2")
    assert score["status"] == "scored" and score["estimator"] is not None
    assert analysis.version_score("clf", "2") == score  # stored: scored once
    own = {
        v: ConfidenceEstimator.fit(
            _model(mlflow_registry, v).predict_proba(features),
            reference["target"].astype(str).tolist(),
            ["0", "1", "2"],
        )
        for v in ("1", "2")
    }
    report = analysis.performance("clf", **window)
    estimated = {w["model_version"]: w["estimated"] for w in report["windows"]}
    for version in ("1", "2"):
        expected = own[version].estimate(probabilities[version])
        assert estimated[version]["accuracy"] == pytest.approx(expected["accuracy"], abs=1e-9)
        assert estimated[version]["f1_macro"] == pytest.approx(expected["f1_macro"], abs=1e-9)
        assert estimated[version]["count"] == len(current)
    borrowed = own["1"].estimate(probabilities["2"])["accuracy"]
    assert estimated["2"]["accuracy"] != pytest.approx(borrowed, abs=1e-9)

    # A window over every version adds each version's own expected confusion matrix.
    both = analysis.performance("clf", by_version=False, **window)["windows"][0]["estimated"]
    cells = sum(
        np.array(
            [[own[v].estimate(probabilities[v])["confusion"][p][a] for a in "012"] for p in "012"]
        )
        for v in ("1", "2")
    )
    assert both["accuracy"] == pytest.approx(np.trace(cells) / cells.sum(), abs=1e-9)
    assert both["count"] == 2 * len(current)
    # A version with predictions and no estimator of its own makes such a window unknown.
    _record(store, "3", probabilities["2"][:5], salt=3)
    assert (
        analysis.performance("clf", by_version=False, **window)["windows"][0]["estimated"] is None
    )


def test_each_version_is_scored_against_the_reference_labels(
    service: tuple[AnalysisService, Store], mlflow_registry: Registered
) -> None:
    analysis, _ = service
    reference = _reference()
    analysis.set_reference("clf", reference, source="upload", target_column="target")
    features, labels = reference.drop(columns="target"), reference["target"].to_numpy()
    for version in ("1", "2"):
        score = analysis.score_version("clf", version)
        accuracy = float((_model(mlflow_registry, version).predict(features) == labels).mean())
        assert score["metrics"]["task"] == "classification"
        assert score["metrics"]["accuracy"] == pytest.approx(accuracy, abs=1e-12)
        assert score["rows"] == len(reference)
    # On the stable version's reference by name: the same reference here.
    assert analysis.version_score("clf", "2", on_version="1") == analysis.version_score("clf", "2")
    # A version the registry does not hold is scored as unavailable, with the reason.
    missing = analysis.score_version("clf", "99")
    assert missing["status"] == "unavailable" and "99" in missing["reason"]
    # Replacing the reference drops its scores: each version is scored anew on the new one.
    analysis.set_reference("clf", reference.iloc[:40], source="upload", target_column="target")
    assert analysis.version_score("clf", "2") is None
    assert analysis.version_score("clf", "1") is not None  # the serving one, at once


def test_a_reference_without_labels_scores_nothing(service: tuple[AnalysisService, Store]) -> None:
    analysis, _ = service
    unlabelled = _reference().drop(columns="target")
    summary = analysis.set_reference("clf", unlabelled, source="upload")
    assert summary["estimator"] is False
    score = analysis.version_score("clf", "1")
    assert score is not None
    assert (score["status"], score["reason"]) == (
        "unavailable",
        "the reference data has no label column",
    )
