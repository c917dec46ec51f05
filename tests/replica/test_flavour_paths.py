"""Which models take the scikit-learn fast path (an all-numeric scikit-learn model) and which go
through the pyfunc (every other flavour, text inputs, tensors), and that each answers as the
model did in the training process."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from modeldeck.replica import codecs
from modeldeck.replica.model import MlflowModel
from tests.conftest import Registered
from tests.flavours import TRAINERS, Flavour, register_flavours


@pytest.fixture(scope="module")
def flavours(mlflow_registry: Registered) -> dict[str, Flavour]:
    return register_flavours(
        mlflow_registry.tracking_uri,
        (Path(mlflow_registry.root) / "artifacts" / "flavour-paths").as_uri(),
    )


@pytest.mark.parametrize("flavour", list(TRAINERS))
def test_fast_path_only_where_safe(
    flavour: str, flavours: dict[str, Flavour], mlflow_registry: Registered
) -> None:
    model = flavours[flavour]
    runtime = MlflowModel(f"models:/{model.name}/{model.version}", mlflow_registry.tracking_uri)
    runtime.load()
    assert runtime.fast_path is model.fast_path
    assert (runtime.input_tensor is not None) is model.tensor
    frame = codecs.parse({"inputs": model.rows})
    frame = codecs.conform(frame, runtime.input_columns)
    if runtime.input_tensor is not None:
        frame = codecs.conform_tensor(frame, runtime.input_tensor)
    data = runtime.make_input(frame.columns, frame.rows)
    output = runtime.predict(data)
    if flavour == "custom":
        assert list(output.columns) == ["label", "score", "band"]
        assert output["label"].tolist() == model.expected
    else:
        assert np.ravel(output).tolist() == pytest.approx(model.expected)
    runtime.unload()


def test_a_tensor_signature_gets_an_array_of_its_dtype(
    flavours: dict[str, Flavour], mlflow_registry: Registered
) -> None:
    model = flavours["pytorch"]
    runtime = MlflowModel(f"models:/{model.name}/{model.version}", mlflow_registry.tracking_uri)
    runtime.load()
    assert runtime.input_tensor == codecs.TensorInput("float32", (-1, 4))
    data = runtime.make_input(None, model.rows)
    # JSON numbers decode as float64; MLflow refuses those for a float32 tensor.
    assert data.dtype == np.float32 and data.shape == (3, 4)
    runtime.unload()


def test_tensor_rows_are_checked_at_the_edge() -> None:
    tensor = codecs.TensorInput("float32", (-1, 2))
    ok = codecs.Frame(None, [[1.0, 2], [3, 4.5]])
    assert codecs.conform_tensor(ok, tensor) is ok
    with pytest.raises(codecs.ValidationFailed, match="row 1 has 3 values"):
        codecs.conform_tensor(codecs.Frame(None, [[1.0, 2.0], [1.0, 2.0, 3.0]]), tensor)
    with pytest.raises(codecs.ValidationFailed, match="row 0 value 1 is str"):
        codecs.conform_tensor(codecs.Frame(None, [[1.0, "x"]]), tensor)
    images = codecs.TensorInput("float64", (-1, 2, 2))
    array = codecs.tensor_array([[1, 2, 3, 4]], images)
    assert array.shape == (1, 2, 2) and array.dtype == np.float64
    assert codecs.TensorInput("float32", (-1, -1)).width is None
    vector = codecs.TensorInput("int64", (-1,))
    assert codecs.tensor_array([[1], [2]], vector).shape == (2,)
    flags = codecs.TensorInput("bool", (-1, 2))
    assert codecs.conform_tensor(codecs.Frame(None, [[True, False]]), flags)
    with pytest.raises(codecs.ValidationFailed, match="takes true or false"):
        codecs.conform_tensor(codecs.Frame(None, [[1, 0]]), flags)
