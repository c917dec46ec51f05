"""The model runtime interface a replica serves, and its MLflow pyfunc implementation.

A runtime loads once (``load``), predicts on a DataFrame of many rows (``predict``) and
releases what it holds (``unload``); ``ready`` says whether it can take traffic. Only
:class:`MlflowModel` imports MLflow.
"""

from __future__ import annotations

from typing import Any, Protocol

from modeldeck.serving.codecs import ColumnSpec, signature_columns


class ModelRuntime(Protocol):
    ready: bool
    input_columns: list[ColumnSpec] | None

    def load(self) -> None: ...

    def predict(self, data: Any) -> Any: ...

    def unload(self) -> None: ...


class MlflowModel:
    """A registered MLflow model loaded as a pyfunc."""

    def __init__(self, model_uri: str, tracking_uri: str | None = None) -> None:
        self.model_uri = model_uri
        self.tracking_uri = tracking_uri
        self.ready = False
        self.input_columns: list[ColumnSpec] | None = None
        self._model: Any = None

    def load(self) -> None:
        import mlflow

        if self.tracking_uri:
            mlflow.set_tracking_uri(self.tracking_uri)
            mlflow.set_registry_uri(self.tracking_uri)
        self._model = mlflow.pyfunc.load_model(self.model_uri)
        signature = self._model.metadata.signature
        if signature is not None and signature.inputs is not None:
            self.input_columns = signature_columns({"inputs": signature.inputs.to_dict()})
        self.ready = True

    def predict(self, data: Any) -> Any:
        return self._model.predict(data)

    def unload(self) -> None:
        self._model = None
        self.ready = False
