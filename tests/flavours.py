"""Small models of every flavour modeldeck serves, trained and registered in seconds.

Used by the flavour integration tests (tests/integration/test_flavours.py) and the serving
benchmark's ``--flavours`` mode. Each model logs its training frame with a ``target`` column as
``reference_data.parquet``, so drift, performance and the simulator work on it as on the demo.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from modeldeck.demo.train import FEATURES, iris_frame

EXPERIMENT = "modeldeck-flavours"
MODELS_DIR = Path(__file__).parent / "models"


@dataclass
class Flavour:
    """A registered model of one flavour and what its tests send it."""

    name: str
    version: str
    task: str  # classification | regression
    columns: list[str]
    rows: list[list[Any]]
    """Three rows to predict, in ``columns`` order."""
    expected: list[Any]
    """What the model predicts for ``rows``, computed in the training process."""
    fast_path: bool
    """Whether the replica may call the estimator directly (``MlflowModel.fast_path``)."""
    tensor: bool = False
    """A tensor signature: no column names, rows given positionally."""
    reference: Any = field(default=None, repr=False)


def _iris() -> tuple[Any, Any]:
    X, y = iris_frame()
    return X, y


def _colour(X: Any) -> Any:
    """A string column that says much about the class: the bucket of petal width."""
    import pandas as pd

    return pd.cut(X["petal_width"], [-1.0, 0.8, 1.7, 10.0], labels=["red", "green", "blue"]).astype(
        str
    )


def _log_reference(frame: Any) -> None:
    import mlflow

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "reference_data.parquet"
        frame.to_parquet(path, index=False)
        mlflow.log_artifact(str(path))


def _xgboost() -> tuple[Callable[..., Any], Any, Any, str]:
    import mlflow.xgboost
    import xgboost

    X, y = _iris()
    model = xgboost.XGBClassifier(n_estimators=5, max_depth=2, n_jobs=1).fit(X, y)

    def log(signature: Any) -> Any:
        return mlflow.xgboost.log_model(
            model, name="model", signature=signature, pip_requirements=["mlflow", "xgboost"]
        )

    return log, model.predict(X), X.assign(target=y), "classification"


def _lightgbm() -> tuple[Callable[..., Any], Any, Any, str]:
    import lightgbm
    import mlflow.lightgbm

    X, y = _iris()
    model = lightgbm.LGBMClassifier(n_estimators=5, num_leaves=4, verbose=-1, n_jobs=1).fit(X, y)

    def log(signature: Any) -> Any:
        return mlflow.lightgbm.log_model(
            model, name="model", signature=signature, pip_requirements=["mlflow", "lightgbm"]
        )

    return log, model.predict(X), X.assign(target=y), "classification"


def _catboost() -> tuple[Callable[..., Any], Any, Any, str]:
    import catboost
    import mlflow.catboost

    X, y = _iris()
    X = X.assign(colour=_colour(X))
    model = catboost.CatBoostClassifier(
        iterations=10,
        depth=2,
        verbose=False,
        allow_writing_files=False,
        thread_count=1,
        cat_features=["colour"],
    ).fit(X, y)

    def log(signature: Any) -> Any:
        return mlflow.catboost.log_model(
            model, name="model", signature=signature, pip_requirements=["mlflow", "catboost"]
        )

    return log, model.predict(X).reshape(-1), X.assign(target=y), "classification"


def _pytorch() -> tuple[Callable[..., Any], Any, Any, str]:
    import mlflow.pytorch
    import numpy as np
    import torch

    X, y = _iris()
    torch.manual_seed(0)
    net = IrisNet()
    optimiser = torch.optim.Adam(net.parameters(), lr=0.05)
    inputs = torch.tensor(X.to_numpy(dtype=np.float32))
    targets = torch.tensor(y.to_numpy())
    for _ in range(200):
        optimiser.zero_grad()
        loss = torch.nn.functional.cross_entropy(net.logits(inputs), targets)
        loss.backward()
        optimiser.step()
    net.eval()
    with torch.no_grad():
        expected = net(inputs).numpy()
    example = X.to_numpy(dtype=np.float32)[:3]

    def log(signature: Any) -> Any:
        # MLflow's default format for PyTorch, 'pt2', saves the graph traced on the example
        # (not a pickle of the class, which the replica could not import from ``tests``).
        return mlflow.pytorch.log_model(
            net,
            name="model",
            signature=signature,
            input_example=example,
            pip_requirements=["mlflow", "torch"],
        )

    return log, expected, X.assign(target=y), "classification"


def _custom() -> tuple[Callable[..., Any], Any, Any, str]:
    import mlflow.pyfunc

    X, y = _iris()

    def log(signature: Any) -> Any:
        return mlflow.pyfunc.log_model(
            name="model",
            python_model=str(MODELS_DIR / "scored_bands.py"),
            signature=signature,
            pip_requirements=["mlflow", "pandas"],
        )

    petal = X["petal_length"]
    labels = ((petal >= 2.5).astype(int) + (petal >= 4.9).astype(int)).tolist()
    return log, labels, X.assign(target=y), "classification"


def _regression() -> tuple[Callable[..., Any], Any, Any, str]:
    import mlflow.sklearn
    from sklearn.linear_model import Ridge

    X, _ = _iris()
    features = ["sepal_length", "sepal_width", "petal_width"]
    target = X["petal_length"]
    model = Ridge(alpha=1.0).fit(X[features], target)

    def log(signature: Any) -> Any:
        return mlflow.sklearn.log_model(
            model,
            name="model",
            signature=signature,
            pip_requirements=mlflow.sklearn.get_default_pip_requirements(include_skops=True),
        )

    return log, model.predict(X[features]), X[features].assign(target=target), "regression"


try:
    import torch as _torch

    class IrisNet(_torch.nn.Module):
        """A linear layer over Iris whose forward answers the class of highest logit."""

        def __init__(self) -> None:
            super().__init__()
            self.linear = _torch.nn.Linear(len(FEATURES), 3)

        def logits(self, x: Any) -> Any:
            return self.linear(x)

        def forward(self, x: Any) -> Any:
            return self.linear(x).argmax(dim=1)

except ImportError:  # pragma: no cover - torch is a dev dependency
    pass


TRAINERS: dict[str, Callable[[], tuple[Callable[..., Any], Any, Any, str]]] = {
    "xgboost": _xgboost,
    "lightgbm": _lightgbm,
    "catboost": _catboost,
    "pytorch": _pytorch,
    "custom": _custom,
    "regression": _regression,
}


def register_flavours(
    tracking_uri: str, artifact_location: str, only: list[str] | None = None
) -> dict[str, Flavour]:
    """Train, log and register each flavour (``only`` those named) as model ``flavour-<name>``."""
    import mlflow
    import numpy as np
    from mlflow.models import ModelSignature, infer_signature
    from mlflow.types import Schema, TensorSpec

    mlflow.set_tracking_uri(tracking_uri)
    mlflow.set_registry_uri(tracking_uri)
    client = mlflow.MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
    experiment = client.get_experiment_by_name(EXPERIMENT)
    experiment_id = (
        experiment.experiment_id
        if experiment
        else client.create_experiment(EXPERIMENT, artifact_location=artifact_location)
    )
    registered: dict[str, Flavour] = {}
    for name, trainer in TRAINERS.items():
        if only is not None and name not in only:
            continue
        log, predicted, reference, task = trainer()
        features = reference.drop(columns=["target"])
        tensor = name == "pytorch"
        if tensor:
            signature = ModelSignature(
                inputs=Schema([TensorSpec(np.dtype(np.float32), (-1, len(features.columns)))]),
                outputs=Schema([TensorSpec(np.dtype(np.int64), (-1,))]),
            )
        elif name == "custom":
            import pandas as pd

            out = pd.DataFrame({"label": [0], "score": [0.5], "band": ["short"]})
            signature = infer_signature(features, out)
        else:
            signature = infer_signature(features, np.asarray(predicted))
        with mlflow.start_run(experiment_id=experiment_id, run_name=name):
            info = log(signature)
            _log_reference(reference)
        version = mlflow.register_model(info.model_uri, f"flavour-{name}")
        picks = [0, 60, 120]
        rows = features.iloc[picks].to_numpy().tolist()
        registered[name] = Flavour(
            name=f"flavour-{name}",
            version=str(version.version),
            task=task,
            columns=list(features.columns),
            rows=[[_plain(v) for v in row] for row in rows],
            expected=[_plain(np.asarray(predicted)[i]) for i in picks],
            fast_path=name == "regression",
            tensor=tensor,
            reference=reference,
        )
    return registered


def _plain(value: Any) -> Any:
    item = getattr(value, "item", None)
    return item() if item is not None else value
