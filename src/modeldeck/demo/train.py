"""The lab's demo model: logistic regression on Iris, three runs, the best one registered."""

from __future__ import annotations

import logging
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger("modeldeck.demo.train")

FEATURES = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
EXPERIMENT = "modeldeck-demo-iris"
DEFAULT_C_VALUES = (0.05, 1.0, 10.0)


@dataclass
class TrainedModel:
    name: str
    version: str
    run_id: str
    accuracy: float
    params: dict[str, Any]


def iris_frame() -> tuple[Any, Any]:
    """Iris as a DataFrame with the lab's column names, and its integer labels."""
    from sklearn.datasets import load_iris

    data = load_iris(as_frame=True)
    X = data.data.copy()
    X.columns = FEATURES
    return X, data.target.astype("int64")


def train_and_register(
    tracking_uri: str,
    artifact_location: str | None = None,
    model_name: str = "sklearn_model",
    c_values: tuple[float, ...] = DEFAULT_C_VALUES,
    alias: str | None = "champion",
) -> TrainedModel:
    """Log one run per ``C`` to MLflow, register the most accurate as ``model_name``."""
    import mlflow
    from mlflow.models import infer_signature
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import train_test_split

    mlflow.set_tracking_uri(tracking_uri)
    mlflow.set_registry_uri(tracking_uri)
    client = mlflow.MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
    experiment = client.get_experiment_by_name(EXPERIMENT)
    experiment_id = (
        experiment.experiment_id
        if experiment
        else client.create_experiment(EXPERIMENT, artifact_location=artifact_location)
    )
    X, y = iris_frame()
    X_train, X_test, y_train, y_test = train_test_split(
        X, y, test_size=0.3, random_state=42, stratify=y
    )
    best: tuple[float, str, str, dict[str, Any]] | None = None
    for c in c_values:
        params = {"C": c, "max_iter": 500, "solver": "lbfgs"}
        with mlflow.start_run(experiment_id=experiment_id, run_name=f"logreg-C{c}") as run:
            model = LogisticRegression(**params).fit(X_train, y_train)
            accuracy = float((model.predict(X_test) == y_test).mean())
            mlflow.log_params(params)
            mlflow.log_metric("accuracy", accuracy)
            info = mlflow.sklearn.log_model(
                model,
                name="model",
                signature=infer_signature(X_train, model.predict(X_train)),
                input_example=X_train.head(3),
                # MLflow's own requirements for the flavour in its default (skops) format:
                # scikit-learn and skops, pinned, plus mlflow. Inference would import the
                # model in a subprocess to find them (half this function's time) and add
                # whatever the training process had imported (pytest, rich...).
                pip_requirements=mlflow.sklearn.get_default_pip_requirements(include_skops=True),
            )
            # The training data, kept with the run: modeldeck measures drift against it.
            reference = X_train.assign(target=y_train.to_numpy())
            with tempfile.TemporaryDirectory() as tmp:
                path = Path(tmp) / "reference_data.parquet"
                reference.to_parquet(path, index=False)
                mlflow.log_artifact(str(path))
            log.info("run %s: C=%s accuracy=%.3f", run.info.run_id, c, accuracy)
            if best is None or accuracy > best[0]:
                best = (accuracy, run.info.run_id, info.model_uri, params)
    assert best is not None
    accuracy, run_id, model_uri, params = best
    version = mlflow.register_model(model_uri, model_name)
    if alias:
        client.set_registered_model_alias(model_name, alias, version.version)
    return TrainedModel(model_name, str(version.version), run_id, accuracy, params)
