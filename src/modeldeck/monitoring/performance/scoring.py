"""One model version's predictions on the reference data, scored against its labels.

Each version is scored on its own: its confidence estimator is calibrated on *its* predicted
probabilities for the labelled reference rows (never on another version's), and its metrics on
those rows (accuracy, macro F1... or MAE, RMSE...) are what a canary's sanity floor compares
before any traffic is judged. :class:`~modeldeck.monitoring.analysis.AnalysisService` loads the
model, calls :func:`score` and stores the result per reference and version
(``version_scores``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from modeldeck.monitoring.performance import metrics as perf

if TYPE_CHECKING:
    import pandas as pd

SCORED = "scored"
UNAVAILABLE = "unavailable"
CLASSIFICATION_MAX_CLASSES = 50


@dataclass
class Score:
    """What scoring a version on a reference gave: ``status`` ``scored`` (``metrics`` holds its
    metrics on the labelled rows, ``estimator`` its calibration when it gives probabilities) or
    ``unavailable`` (``reason`` says why)."""

    status: str
    reason: str = ""
    estimator: dict[str, Any] | None = None
    metrics: dict[str, Any] | None = None
    rows: int = 0
    notes: list[str] = field(default_factory=list)

    @classmethod
    def unavailable(cls, reason: str) -> Score:
        return cls(UNAVAILABLE, reason)


def score(model: Any, frame: pd.DataFrame, features: list[str], target: str | None) -> Score:
    """Score ``model`` (a scikit-learn estimator, or anything with ``predict``) on the rows of
    ``frame`` that have a label in ``target``.

    Classification (labels that are few and integral, or text): accuracy and macro precision,
    recall and F1 from the confusion matrix of ``predict`` against the labels (compared as
    text), plus a :class:`~modeldeck.monitoring.performance.metrics.ConfidenceEstimator`
    calibrated on ``predict_proba`` when the model has it and knows every label. Regression:
    MAE, RMSE, MAPE and R².
    """
    import numpy as np

    if target is None:
        return Score.unavailable("the reference data has no label column")
    labelled = frame[frame[target].notna()]
    if labelled.empty:
        return Score.unavailable("the reference data has no labelled rows")
    inputs = labelled[features]
    try:
        predicted = np.asarray(_column(model.predict(inputs)))
    except Exception as exc:  # the model cannot score its reference: say why, do not fail
        return Score.unavailable(f"the model cannot predict the reference data: {exc}")
    labels = [_text(x) for x in labelled[target]]
    if len(predicted) != len(labels):
        return Score.unavailable(
            f"the model gave {len(predicted)} predictions for {len(labels)} reference rows"
        )
    if classification(set(labels)):
        confusion: dict[tuple[str, str], int] = {}
        for p, a in zip((_text(x) for x in predicted), labels, strict=True):
            confusion[(p, a)] = confusion.get((p, a), 0) + 1
        metrics = perf.classification_metrics(confusion)
        metrics.pop("per_class", None)
        result = Score(SCORED, metrics={"task": "classification", **metrics}, rows=len(labels))
        # Classes and labels as the tracked probabilities name them (str of the class).
        result.estimator, why = _estimator(model, inputs, labelled[target].astype(str).tolist())
        if result.estimator is None:
            result.notes.append(f"no confidence estimator: {why}")
        return result
    try:
        actual = labelled[target].astype(float).to_numpy()
        values = predicted.astype(float)
    except (TypeError, ValueError) as exc:
        return Score.unavailable(f"the predictions or labels are not numbers: {exc}")
    error = actual - values
    sums = (
        float(np.abs(error).sum()),
        float((error * error).sum()),
        float((np.abs(error) / np.maximum(np.abs(actual), perf.MAPE_EPS)).sum()),
        float(actual.sum()),
        float((actual * actual).sum()),
    )
    metrics = perf.regression_metrics(len(actual), *sums)
    return Score(SCORED, metrics={"task": "regression", **metrics}, rows=len(actual))


def classification(labels: set[str]) -> bool:
    """Whether labels (as text) are classes: few, and text or integral numbers."""
    if len(labels) > CLASSIFICATION_MAX_CLASSES:
        return False
    for label in labels:
        try:
            value = float(label)
        except ValueError:
            return True
        if not value.is_integer():
            return False
    return True


def _estimator(model: Any, inputs: Any, labels: list[str]) -> tuple[dict[str, Any] | None, str]:
    proba = getattr(model, "predict_proba", None)
    classes = getattr(model, "classes_", None)
    if proba is None or classes is None:
        return None, "the model gives no class probabilities"
    names = [str(c) for c in classes]
    unknown = sorted(set(labels) - set(names))
    if unknown:
        return None, f"labels {unknown[:5]} are not among the model's classes {names}"
    try:
        fitted = perf.ConfidenceEstimator.fit(proba(inputs), labels, names)
    except Exception as exc:  # degenerate probabilities and the like
        return None, f"calibration failed: {exc}"
    return fitted.to_dict(), ""


def _column(output: Any) -> Any:
    """A prediction output as one value per row (a one-column frame's column)."""
    columns = getattr(output, "columns", None)
    if columns is not None:
        return output.iloc[:, 0]
    return output


def _text(value: Any) -> str:
    """A predicted class as text, as labels are compared (``1`` for an integral ``1.0``)."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    item = getattr(value, "item", None)
    if item is not None:
        return _text(item())
    return str(value)
