"""Metrics from SQL aggregates agree with scikit-learn; CBPE holds up under covariate shift.

The aggregates are built here the way the SQL builds them (counts per cell, per score, sums), from
seeded random data, and compared with scikit-learn on the raw rows.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest
from sklearn import metrics
from sklearn.linear_model import LogisticRegression

from modeldeck.monitoring.performance.metrics import (
    LOG_EPS,
    MAPE_EPS,
    ConfidenceEstimator,
    classification_metrics,
    log_loss_from_sums,
    regression_metrics,
    roc_auc_from_counts,
    roc_auc_from_grid,
    roc_auc_ovr_macro,
)

# -- classification ----------------------------------------------------------------------------


def test_classification_metrics_match_sklearn_including_a_class_never_predicted() -> None:
    rng = np.random.default_rng(0)
    actual = rng.choice(["a", "b", "c", "d"], size=500, p=[0.4, 0.3, 0.2, 0.1])
    # the model never predicts "d", and sometimes predicts "e", which never occurs
    predicted = np.where(rng.random(500) < 0.6, actual, rng.choice(["a", "b", "c", "e"], 500))
    predicted = np.where(predicted == "d", "a", predicted)
    confusion = Counter(zip(predicted.tolist(), actual.tolist(), strict=True))

    result = classification_metrics(confusion)

    labels = ["a", "b", "c", "d", "e"]
    assert list(result["per_class"]) == labels
    assert result["count"] == 500
    assert result["accuracy"] == pytest.approx(metrics.accuracy_score(actual, predicted), abs=1e-12)
    for name, score in [
        ("precision", metrics.precision_score),
        ("recall", metrics.recall_score),
        ("f1", metrics.f1_score),
    ]:
        macro = score(actual, predicted, average="macro", zero_division=0)
        assert result[f"{name}_macro"] == pytest.approx(macro, abs=1e-12), name
        per_class = score(actual, predicted, labels=labels, average=None, zero_division=0)
        for label, expected in zip(labels, per_class, strict=True):
            assert result["per_class"][label][name] == pytest.approx(expected, abs=1e-12)
    assert result["per_class"]["d"]["precision"] == 0.0
    assert result["per_class"]["e"]["recall"] == 0.0
    assert {label: m["support"] for label, m in result["per_class"].items()} == {
        label: int((actual == label).sum()) for label in labels
    }


def test_classification_metrics_of_nothing_are_none() -> None:
    result = classification_metrics({})
    assert result["count"] == 0
    assert result["per_class"] == {}
    assert all(
        result[k] is None for k in ("accuracy", "precision_macro", "recall_macro", "f1_macro")
    )
    # a zero count is no observation: it adds no class
    assert classification_metrics({("x", "x"): 3, ("y", "z"): 0})["per_class"].keys() == {"x"}


def test_classification_metrics_reject_negative_counts() -> None:
    with pytest.raises(ValueError, match="negative"):
        classification_metrics({("a", "a"): -1})


# -- ROC AUC -----------------------------------------------------------------------------------


def _counts_per_score(scores: np.ndarray, positive: np.ndarray) -> list[tuple[float, int, int]]:
    """What the SQL returns: GROUP BY score, SUM(positive), COUNT(*) - SUM(positive)."""
    rows = []
    for score in np.unique(scores):
        at = scores == score
        pos = int(positive[at].sum())
        rows.append((float(score), pos, int(at.sum()) - pos))
    return rows


def test_roc_auc_from_counts_equals_sklearn_with_ties() -> None:
    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, size=2000)
    scores = np.round(1 / (1 + np.exp(-(y * 1.2 + rng.normal(size=2000)))), 2)
    assert len(np.unique(scores)) < 200  # plenty of ties

    auc = roc_auc_from_counts(_counts_per_score(scores, y == 1))

    assert auc == pytest.approx(metrics.roc_auc_score(y, scores), abs=1e-12)


def test_roc_auc_merges_rows_of_one_score_and_needs_both_outcomes() -> None:
    assert roc_auc_from_counts([(0.2, 1, 0), (0.2, 0, 1), (0.9, 1, 0)]) == 0.75
    assert roc_auc_from_counts([(0.2, 3, 0), (0.7, 5, 0)]) is None
    assert roc_auc_from_counts([]) is None


def test_roc_auc_from_grid_equals_the_counted_form_and_sklearn() -> None:
    rng = np.random.default_rng(11)
    y = rng.integers(0, 2, size=3000)
    steps = np.clip(np.round(1000 / (1 + np.exp(-(y + rng.normal(size=3000))))), 0, 1000)
    grid = np.zeros((2, 1001), dtype=np.int64)
    np.add.at(grid[0], steps[y == 1].astype(int), 1)
    np.add.at(grid[1], steps[y == 0].astype(int), 1)

    auc = roc_auc_from_grid(grid[0], grid[1])

    assert auc == pytest.approx(metrics.roc_auc_score(y, steps / 1000), abs=1e-12)
    assert roc_auc_from_grid(grid[0], np.zeros(1001, dtype=np.int64)) is None


def test_roc_auc_from_grid_stays_exact_beyond_64_bit_sums() -> None:
    positives = np.array([0, 3_000_000_000, 1_000_000_000], dtype=np.int64)
    negatives = np.array([2_000_000_000, 1_000_000_000, 0], dtype=np.int64)

    auc = roc_auc_from_grid(positives, negatives)

    assert auc == roc_auc_from_counts(
        [(0.0, 0, 2_000_000_000), (0.5, 3_000_000_000, 1_000_000_000), (1.0, 1_000_000_000, 0)]
    )
    assert auc is not None and 0.5 < auc < 1


def test_roc_auc_ovr_macro_equals_sklearn() -> None:
    rng = np.random.default_rng(2)
    classes = ["cat", "dog", "eel"]
    pool = rng.dirichlet([1.0, 1.0, 1.0], size=25)  # few distinct vectors: many tied scores
    y = rng.choice(3, size=1500)
    # scores informative of the label: pick the pool vector whose top class is most often y
    chosen = np.where(
        rng.random(1500) < 0.5,
        rng.integers(0, 25, 1500),
        [rng.choice(np.flatnonzero(pool.argmax(1) == label)) for label in y],
    )
    proba = pool[chosen]

    per_class = {name: _counts_per_score(proba[:, j], y == j) for j, name in enumerate(classes)}

    expected = metrics.roc_auc_score(y, proba, multi_class="ovr", average="macro")
    assert roc_auc_ovr_macro(per_class) == pytest.approx(expected, abs=1e-12)


def test_roc_auc_ovr_macro_skips_classes_without_both_outcomes() -> None:
    per_class = {
        "a": [(0.1, 0, 2), (0.8, 2, 0)],  # AUC 1.0
        "b": [(0.2, 1, 1), (0.6, 1, 1)],  # AUC 0.5
        "c": [(0.1, 0, 4)],  # never the actual label: skipped
    }
    assert roc_auc_ovr_macro(per_class) == 0.75
    assert roc_auc_ovr_macro({"c": [(0.1, 0, 4)]}) is None


# -- log loss ----------------------------------------------------------------------------------


@pytest.mark.parametrize("k", [2, 3])
def test_log_loss_from_sums_equals_sklearn(k: int) -> None:
    rng = np.random.default_rng(3 + k)
    n = 400
    proba = rng.dirichlet(np.ones(k), size=n)
    proba[0] = np.eye(k)[0]  # certain and right ...
    proba[1] = np.eye(k)[1]  # ... and certain and wrong: the clip decides the loss
    y = rng.integers(0, k, size=n)
    y[0], y[1] = 0, 0
    y[2 : 2 + k] = np.arange(k)  # every class occurs

    p_actual = proba[np.arange(n), y]
    total = float(np.sum(-np.log(np.clip(p_actual, LOG_EPS, 1 - LOG_EPS))))  # the SQL's sum

    expected = metrics.log_loss(y, proba, labels=list(range(k)))
    assert log_loss_from_sums(total, n) == pytest.approx(expected, abs=1e-9)
    assert log_loss_from_sums(0.0, 0) is None


# -- regression --------------------------------------------------------------------------------


def _regression_sums(actual: np.ndarray, predicted: np.ndarray) -> tuple[Any, ...]:
    """What the SQL returns for one window."""
    err = actual - predicted
    return (
        len(actual),
        float(np.sum(np.abs(err))),
        float(np.sum(err * err)),
        float(np.sum(np.abs(err) / np.maximum(np.abs(actual), MAPE_EPS))),
        float(np.sum(actual)),
        float(np.sum(actual * actual)),
    )


def test_regression_metrics_equal_sklearn_with_a_zero_actual() -> None:
    rng = np.random.default_rng(4)
    actual = rng.normal(5.0, 2.0, size=300)
    actual[7] = 0.0
    predicted = actual + rng.normal(0.0, 0.7, size=300)

    result = regression_metrics(*_regression_sums(actual, predicted))

    assert result["count"] == 300
    assert result["mae"] == pytest.approx(metrics.mean_absolute_error(actual, predicted), abs=1e-9)
    assert result["rmse"] == pytest.approx(
        math.sqrt(metrics.mean_squared_error(actual, predicted)), abs=1e-9
    )
    # a zero actual makes MAPE enormous (~1e13): compare relative to its size
    mape = metrics.mean_absolute_percentage_error(actual, predicted)
    assert mape > 1e10
    assert result["mape"] == pytest.approx(mape, rel=1e-9)
    assert result["r2"] == pytest.approx(metrics.r2_score(actual, predicted), abs=1e-9)


def test_regression_mape_without_zero_actuals() -> None:
    rng = np.random.default_rng(5)
    actual = rng.uniform(1.0, 10.0, size=200)
    predicted = actual * rng.uniform(0.8, 1.2, size=200)
    result = regression_metrics(*_regression_sums(actual, predicted))
    expected = metrics.mean_absolute_percentage_error(actual, predicted)
    assert result["mape"] == pytest.approx(expected, abs=1e-9)


@pytest.mark.parametrize("offset", [0.0, 0.05])
def test_r2_of_constant_actuals_is_finite_as_in_sklearn(offset: float) -> None:
    actual = np.full(50, 3.0)
    predicted = actual + offset
    result = regression_metrics(*_regression_sums(actual, predicted))
    assert metrics.r2_score(actual, predicted) == (1.0 if offset == 0 else 0.0)
    assert result["r2"] == metrics.r2_score(actual, predicted)


def test_r2_treats_rounding_noise_in_sstot_as_zero() -> None:
    # 0.1 is not exact in binary, so SStot computed from sums is ~1e-17, not 0; scikit-learn
    # (which centres on a mean that is not exactly 0.1 either) gives -3e30 here
    actual = np.full(50, 0.1)
    sums = _regression_sums(actual, actual + 0.05)
    assert sums[5] - sums[4] ** 2 / 50 != 0
    assert regression_metrics(*sums)["r2"] == 0.0
    assert regression_metrics(*_regression_sums(actual, actual))["r2"] == 1.0


def test_regression_metrics_of_too_few_pairs() -> None:
    assert regression_metrics(0, 0.0, 0.0, 0.0, 0.0, 0.0) == {
        "count": 0,
        "mae": None,
        "rmse": None,
        "mape": None,
        "r2": None,
    }
    single = regression_metrics(1, 2.0, 4.0, 0.5, 4.0, 16.0)
    assert single == {"count": 1, "mae": 2.0, "rmse": 2.0, "mape": 0.5, "r2": None}


# -- confidence-based performance estimation ---------------------------------------------------


@dataclass
class Scenario:
    classes: list[str]
    estimator: ConfidenceEstimator
    reference_accuracy: float
    current_proba: np.ndarray
    current_accuracy: float


def _sample(
    rng: np.random.Generator, n: int, weights: np.ndarray, bias: np.ndarray, shift: float
) -> tuple[np.ndarray, np.ndarray]:
    """x ~ N(0, I) shifted by ``shift`` std in the first two features; y from a fixed softmax."""
    x = rng.normal(size=(n, weights.shape[1]))
    x[:, :2] += shift
    logits = x @ weights.T + bias
    p = np.exp(logits - logits.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    y = (p.cumsum(axis=1) < rng.random((n, 1))).sum(axis=1)
    return x, y


MODELS = {
    # binary: the shift moves inputs towards the decision boundary (accuracy ~0.87 -> ~0.78)
    "binary": (
        np.array([[0.0, 0.0, 0.0, 0.0, 0.0], [1.5, 1.0, 0.8, 0.5, 0.0]]),
        np.array([0.0, -2.5]),
    ),
    # 3 classes: the shift moves inputs to where classes 0 and 1 compete (~0.75 -> ~0.71)
    "3-class": (
        np.array(
            [[2.0, 0.0, 0.5, 0.0, 0.0], [0.0, 2.0, 0.0, 0.5, 0.0], [0.0, 0.0, -0.5, 0.0, 0.7]]
        ),
        np.array([0.0, 0.0, 2.0]),
    ),
}


@pytest.fixture(scope="module", params=sorted(MODELS))
def scenario(request: pytest.FixtureRequest) -> Scenario:
    weights, bias = MODELS[request.param]
    rng = np.random.default_rng(20240611)
    x_train, y_train = _sample(rng, 5_000, weights, bias, 0.0)
    model = LogisticRegression().fit(x_train, y_train)
    classes = [str(c) for c in model.classes_]
    x_ref, y_ref = _sample(rng, 20_000, weights, bias, 0.0)
    x_cur, y_cur = _sample(rng, 20_000, weights, bias, 1.0)
    estimator = ConfidenceEstimator.fit(
        model.predict_proba(x_ref), [str(v) for v in y_ref], classes
    )
    return Scenario(
        classes=classes,
        estimator=estimator,
        reference_accuracy=float(np.mean(model.predict(x_ref) == y_ref)),
        current_proba=model.predict_proba(x_cur),
        current_accuracy=float(np.mean(model.predict(x_cur) == y_cur)),
    )


def _binned(scenario: Scenario, digits: int = 2) -> list[tuple[str, tuple[float, ...], int]]:
    """What the SQL returns: predictions grouped by predicted label and rounded probabilities."""
    rounded = np.round(scenario.current_proba, digits).tolist()
    predicted = scenario.current_proba.argmax(axis=1)
    counts = Counter(
        (scenario.classes[p], tuple(r)) for p, r in zip(predicted, rounded, strict=True)
    )
    return [(label, vector, n) for (label, vector), n in counts.items()]


def test_cbpe_estimates_accuracy_under_covariate_shift(scenario: Scenario) -> None:
    # the benchmark means something: the shift really changes accuracy
    assert abs(scenario.current_accuracy - scenario.reference_accuracy) > 0.03

    estimate = scenario.estimator.estimate(scenario.current_proba)

    assert estimate["count"] == len(scenario.current_proba)
    assert abs(estimate["accuracy"] - scenario.current_accuracy) < 0.03
    confusion = estimate["confusion"]
    assert set(confusion) == set(scenario.classes)
    assert sum(sum(row.values()) for row in confusion.values()) == pytest.approx(20_000)
    predicted = Counter(scenario.current_proba.argmax(axis=1).tolist())
    for j, name in enumerate(scenario.classes):
        assert sum(confusion[name].values()) == pytest.approx(predicted[j])


def test_cbpe_binned_estimate_is_close_to_the_exact_one(scenario: Scenario) -> None:
    exact = scenario.estimator.estimate(scenario.current_proba)
    binned = scenario.estimator.estimate_binned(_binned(scenario))
    assert binned["count"] == exact["count"]
    for key in ("accuracy", "precision_macro", "recall_macro", "f1_macro"):
        assert abs(binned[key] - exact[key]) < 0.01, key


def test_cbpe_round_trips_through_json(scenario: Scenario) -> None:
    state = json.loads(json.dumps(scenario.estimator.to_dict()))
    restored = ConfidenceEstimator.from_dict(state)
    assert restored.classes == scenario.classes
    assert restored.estimate(scenario.current_proba) == scenario.estimator.estimate(
        scenario.current_proba
    )
    rows = _binned(scenario)
    assert restored.estimate_binned(rows) == scenario.estimator.estimate_binned(rows)


def test_cbpe_of_no_predictions() -> None:
    estimator = ConfidenceEstimator.fit(
        np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4]]), ["a", "b", "a"], ["a", "b"]
    )
    for estimate in (estimator.estimate(np.zeros((0, 2))), estimator.estimate_binned([])):
        assert estimate["count"] == 0
        assert estimate["accuracy"] is None
        assert estimate["confusion"] == {"a": {"a": 0.0, "b": 0.0}, "b": {"a": 0.0, "b": 0.0}}


def test_cbpe_rejects_inconsistent_input() -> None:
    proba = np.array([[0.9, 0.1], [0.2, 0.8]])
    with pytest.raises(ValueError, match="not among the classes"):
        ConfidenceEstimator.fit(proba, ["a", "c"], ["a", "b"])
    with pytest.raises(ValueError, match="probability matrix"):
        ConfidenceEstimator.fit(proba, ["a", "b"], ["a", "b", "c"])
    estimator = ConfidenceEstimator.fit(proba, ["a", "b"], ["a", "b"])
    with pytest.raises(ValueError, match="predicted label"):
        estimator.estimate_binned([("z", (0.5, 0.5), 1)])
    with pytest.raises(ValueError, match="format"):
        ConfidenceEstimator.from_dict({"classes": ["a", "b"], "calibrators": []})
