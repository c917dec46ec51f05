"""Labels from class probabilities: exactly what ``predict`` answers, or left to ``predict``."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from sklearn.ensemble import (
    ExtraTreesClassifier,
    GradientBoostingClassifier,
    HistGradientBoostingClassifier,
    RandomForestClassifier,
)
from sklearn.linear_model import LogisticRegression, LogisticRegressionCV
from sklearn.multioutput import MultiOutputClassifier
from sklearn.naive_bayes import BernoulliNB, GaussianNB, MultinomialNB
from sklearn.neighbors import KNeighborsClassifier
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.tree import DecisionTreeClassifier

from modeldeck.replica.model import ARGMAX_CLASSIFIERS, labels_from_probabilities, predicts_argmax

ESTIMATORS = [
    lambda: LogisticRegression(max_iter=500),
    lambda: LogisticRegressionCV(max_iter=500, cv=3),
    lambda: DecisionTreeClassifier(max_depth=4, random_state=0),
    lambda: RandomForestClassifier(n_estimators=10, random_state=0),
    lambda: ExtraTreesClassifier(n_estimators=10, random_state=0),
    lambda: GradientBoostingClassifier(n_estimators=10, random_state=0),
    lambda: HistGradientBoostingClassifier(max_iter=10, random_state=0),
    lambda: GaussianNB(),
    lambda: MultinomialNB(),
    lambda: BernoulliNB(),
    lambda: MLPClassifier(hidden_layer_sizes=(8,), max_iter=300, random_state=0),
    lambda: make_pipeline(StandardScaler(), LogisticRegression(max_iter=500)),
]


def _data(classes: int, rows: int = 600) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(classes)
    x = rng.random((rows, 4))
    y = (x[:, 0] * classes + rng.normal(0, 0.4, rows)).clip(0, classes - 1).astype(int)
    return x, np.array(["setosa", "versicolor", "virginica"][:classes])[y]


@pytest.mark.parametrize("classes", [2, 3])
@pytest.mark.parametrize("make", ESTIMATORS, ids=lambda m: type(m()).__name__)
def test_labels_from_probabilities_equal_predict(make, classes: int) -> None:
    x, y = _data(classes)
    estimator = make()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # convergence warnings of tiny fits
        estimator.fit(x, y)
    assert predicts_argmax(estimator)
    # Fresh rows, rows the trees put in one leaf (equal probabilities), and rows on the
    # boundary between classes.
    rng = np.random.default_rng(7)
    probe = np.vstack([rng.random((2000, 4)), x[:50], np.full((20, 4), 0.5)])
    probabilities = estimator.predict_proba(probe)
    expected = estimator.predict(probe)
    labels = labels_from_probabilities(probabilities, estimator.classes_)
    if labels is None:  # a tie somewhere: predict decides; the rows without one still agree
        top = probabilities.max(axis=1, keepdims=True)
        untied = (probabilities == top).sum(axis=1) == 1
        labels = labels_from_probabilities(probabilities[untied], estimator.classes_)
        expected = expected[untied]
    assert labels is not None
    assert labels.dtype == expected.dtype
    assert labels.tolist() == expected.tolist()


def test_a_tie_is_left_to_predict() -> None:
    classes = np.array(["a", "b", "c"])
    assert labels_from_probabilities(np.array([[0.2, 0.4, 0.4]]), classes) is None
    assert labels_from_probabilities(np.array([[0.5, 0.5]]), classes[:2]) is None
    assert labels_from_probabilities(np.array([[0.2, 0.5, 0.3]]), classes).tolist() == ["b"]
    # Probabilities that do not line up with the classes are not guessed at.
    assert labels_from_probabilities(np.array([[0.2, 0.8]]), classes) is None


def test_other_classifiers_keep_calling_predict() -> None:
    x, y = _data(3)
    multi = MultiOutputClassifier(LogisticRegression(max_iter=500)).fit(x, np.c_[y, y])
    knn = KNeighborsClassifier().fit(x, y)  # a vote, ties broken its own way

    class Custom(LogisticRegression):  # a subclass may override predict
        __module__ = "mypackage.models"

    custom = Custom(max_iter=500).fit(x, y)
    assert not predicts_argmax(multi)
    assert not predicts_argmax(knn)
    assert not predicts_argmax(custom)
    assert "sklearn.svm.SVC" not in ARGMAX_CLASSIFIERS  # Platt scaling can disagree with predict
