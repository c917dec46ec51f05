"""The MLflow model runtime, on real registered models: the fast path answers as pyfunc does."""

from __future__ import annotations

import uuid
from typing import Any

import mlflow
import numpy as np
import pandas as pd
from mlflow.models import ModelSignature
from mlflow.types import ColSpec, Schema
from sklearn.linear_model import LogisticRegression

from modeldeck.demo.train import FEATURES, iris_frame
from modeldeck.replica.model import MlflowModel
from tests.conftest import Registered


def _rows(X: pd.DataFrame) -> list[list[float]]:
    return X[FEATURES].to_numpy().tolist()


def test_sklearn_fast_path_matches_pyfunc(mlflow_registry: Registered) -> None:
    model = MlflowModel("models:/iris/2", mlflow_registry.tracking_uri)
    model.load()
    assert model.fast_path
    X, _ = iris_frame()
    fast = model.predict(model.make_input(FEATURES, _rows(X)))
    reference = mlflow.pyfunc.load_model("models:/iris/2").predict(X)
    assert np.array_equal(fast, reference)


def _log(estimator: Any, signature: ModelSignature, registry: Registered) -> Any:
    """Log ``estimator`` in an experiment of its own, with its artifacts under the registry's
    root (the default experiment's are in ./mlruns of the working directory)."""
    mlflow.set_tracking_uri(registry.tracking_uri)
    name = f"serving-{uuid.uuid4().hex[:8]}"
    experiment = mlflow.create_experiment(
        name, artifact_location=(registry.root / "artifacts" / name).as_uri()
    )
    with mlflow.start_run(experiment_id=experiment):
        return mlflow.sklearn.log_model(
            estimator,
            name="model",
            signature=signature,
            # Not inferred (a subprocess importing the model, seconds per test).
            pip_requirements=mlflow.sklearn.get_default_pip_requirements(include_skops=True),
        )


def test_fast_path_follows_the_estimators_feature_order(
    mlflow_registry: Registered, tmp_path: object
) -> None:
    X, y = iris_frame()
    fitted_order = list(reversed(FEATURES))
    estimator = LogisticRegression(max_iter=500).fit(X[fitted_order], y)
    signature = ModelSignature(
        inputs=Schema([ColSpec("double", f) for f in FEATURES]),
        outputs=Schema([ColSpec("long")]),
    )
    info = _log(estimator, signature, mlflow_registry)
    model = MlflowModel(info.model_uri, mlflow_registry.tracking_uri)
    model.load()
    assert model.fast_path
    got = model.predict(model.make_input(FEATURES, _rows(X)))
    assert np.array_equal(got, estimator.predict(X[fitted_order]))


def test_non_numeric_signatures_use_pyfunc(mlflow_registry: Registered) -> None:
    from sklearn.dummy import DummyClassifier

    estimator = DummyClassifier(strategy="most_frequent").fit([[0]], ["x"])
    signature = ModelSignature(inputs=Schema([ColSpec("string", "a")]))
    info = _log(estimator, signature, mlflow_registry)
    model = MlflowModel(info.model_uri, mlflow_registry.tracking_uri)
    model.load()
    assert not model.fast_path
    assert list(model.predict(model.make_input(["a"], [["q"], ["r"]]))) == ["x", "x"]
