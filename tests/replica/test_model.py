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


def test_pipelines_that_select_columns_by_name_use_pyfunc(mlflow_registry: Registered) -> None:
    """A ``ColumnTransformer`` picking columns by name raises on an array: the fast path would
    have failed every request of this common pipeline with a 500."""
    from sklearn.compose import ColumnTransformer
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    X, y = iris_frame()
    estimator = make_pipeline(
        ColumnTransformer([("scaled", StandardScaler(), ["petal_length", "petal_width"])]),
        LogisticRegression(max_iter=500),
    ).fit(X, y)
    signature = ModelSignature(
        inputs=Schema([ColSpec("double", f) for f in FEATURES]),
        outputs=Schema([ColSpec("long")]),
    )
    info = _log(estimator, signature, mlflow_registry)
    model = MlflowModel(info.model_uri, mlflow_registry.tracking_uri)
    model.load()
    assert not model.fast_path
    got = model.predict(model.make_input(FEATURES, _rows(X)))
    assert np.array_equal(np.ravel(got), estimator.predict(X))


def test_which_estimators_take_arrays() -> None:
    from sklearn.compose import ColumnTransformer
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import FunctionTransformer, StandardScaler

    from modeldeck.replica.model import takes_arrays

    by_position = ColumnTransformer([("s", StandardScaler(), [0, 1]), ("d", "drop", [2, 3])])
    assert takes_arrays(make_pipeline(StandardScaler(), LogisticRegression()))
    assert takes_arrays(make_pipeline(by_position, LogisticRegression()))
    assert takes_arrays(make_pipeline(FunctionTransformer(), LogisticRegression()))
    by_name = ColumnTransformer([("s", StandardScaler(), ["a"])])
    assert not takes_arrays(make_pipeline(by_name, LogisticRegression()))
    assert not takes_arrays(make_pipeline(FunctionTransformer(np.log1p), LogisticRegression()))

    class Own(LogisticRegression):
        pass

    assert not takes_arrays(make_pipeline(StandardScaler(), Own()))
