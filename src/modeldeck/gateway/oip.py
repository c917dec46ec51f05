"""The Open Inference Protocol (KServe V2) over the model endpoints: pure translation, no HTTP.

An ``infer`` request's typed tensors become the body the replicas already take
(``{"inputs": ...}``, see ``replica/codecs.py``), and the replica's answer
``{"prediction": ..., "uuid": ...}`` becomes named, typed output tensors. The request goes
through the same forwarding and recording as ``/deployments/{name}/predict``: one path, two
dialects.

How tensors map to the model's input (docs/open-inference-protocol.md has the table):

* **Columns.** Every input is a DataFrame column (shape ``[N]`` or ``[N, 1]``, the same ``N``
  for all) when the request says ``parameters.content_type: "pd"`` (as MLServer's pandas codec
  does), when the model's signature is column-based and the input names are its columns, or
  when there are several inputs.
* **Rows.** A single input of two or more dimensions whose name is not a signature column is a
  batch of rows (``[N, features]``), positional in signature order: ``{"inputs": [[...], ...]}``.

Both JSON ``data`` (flat or nested, row-major) and the binary tensor extension
(``Inference-Header-Content-Length``, ``parameters.binary_data_size``; what ``tritonclient``
sends by default) are read. Outputs are answered in binary when the request asks
(``parameters.binary_data_output``, or ``binary_data`` on a requested output), else in JSON.
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass, field
from typing import Any

import orjson

from modeldeck.errors import BadRequest, ModeldeckError, ValidationFailed
from modeldeck.replica.codecs import dumps, signature_columns

# Datatype -> (numpy dtype of its binary form, the range of its integers or None).
DATATYPES: dict[str, tuple[str, tuple[int, int] | None]] = {
    "BOOL": ("?", None),
    "INT8": ("<i1", (-(2**7), 2**7 - 1)),
    "INT16": ("<i2", (-(2**15), 2**15 - 1)),
    "INT32": ("<i4", (-(2**31), 2**31 - 1)),
    "INT64": ("<i8", (-(2**63), 2**63 - 1)),
    "UINT8": ("<u1", (0, 2**8 - 1)),
    "UINT16": ("<u2", (0, 2**16 - 1)),
    "UINT32": ("<u4", (0, 2**32 - 1)),
    "UINT64": ("<u8", (0, 2**64 - 1)),
    "FP16": ("<f2", None),
    "FP32": ("<f4", None),
    "FP64": ("<f8", None),
    "BYTES": ("", None),
}
FLOATS = {"FP16", "FP32", "FP64"}
INTEGERS = {name for name, (_, bounds) in DATATYPES.items() if bounds is not None}
# MLflow column types -> the tensor datatypes that may fill them.
ACCEPTS: dict[str, set[str]] = {
    "double": FLOATS | INTEGERS,
    "float": FLOATS | INTEGERS,
    "long": INTEGERS,
    "integer": INTEGERS,
    "boolean": {"BOOL"},
    "string": {"BYTES"},
    "binary": {"BYTES"},
    "datetime": {"BYTES"},
}
# MLflow column or tensor types -> the datatype the metadata advertises.
FROM_MLFLOW = {
    "double": "FP64", "float": "FP32", "long": "INT64", "integer": "INT32", "boolean": "BOOL",
    "string": "BYTES", "binary": "BYTES", "datetime": "BYTES",
    "float64": "FP64", "float32": "FP32", "float16": "FP16", "int64": "INT64",
    "int32": "INT32", "int16": "INT16", "int8": "INT8", "uint64": "UINT64", "uint32": "UINT32",
    "uint16": "UINT16", "uint8": "UINT8", "bool": "BOOL", "str": "BYTES", "object": "BYTES",
}  # fmt: skip
_INT64 = (-(2**63), 2**63 - 1)
DEFAULT_OUTPUT = "predict"  # MLServer's name for a model's one unnamed output
PROTOCOL_HEADER = "inference-header-content-length"


@dataclass
class Tensor:
    name: str
    datatype: str
    shape: list[int]
    values: list[Any]  # flat, row-major
    parameters: dict[str, Any] = field(default_factory=dict)


@dataclass
class InferRequest:
    id: str | None
    inputs: list[Tensor]
    parameters: dict[str, Any]
    binary_outputs: set[str] = field(default_factory=set)
    """Outputs asked for in binary (``binary_data`` on a requested output)."""

    def in_binary(self, output: str) -> bool:
        return self.parameters.get("binary_data_output") is True or output in self.binary_outputs


# -- requests -------------------------------------------------------------------------------


def parse_infer(body: bytes, header_length: str | None) -> InferRequest:
    """An ``infer`` body (JSON, or JSON then binary tensors) to typed tensors, every tensor's
    values checked against its datatype and shape (400 malformed, 422 inconsistent)."""
    binary = b""
    if header_length is not None:
        if not header_length.isdigit() or int(header_length) > len(body):
            raise BadRequest(
                f"Inference-Header-Content-Length is {header_length!r}; the body is "
                f"{len(body)} bytes",
                details={"field": "Inference-Header-Content-Length"},
            )
        body, binary = body[: int(header_length)], body[int(header_length) :]
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise BadRequest(f"the request body is not valid JSON: {exc}") from exc
    if not isinstance(payload, dict):
        raise BadRequest("the request body must be a JSON object with 'inputs'")
    request_id = payload.get("id")
    if request_id is not None and not isinstance(request_id, str):
        raise BadRequest("'id' must be a string", details={"field": "id"})
    parameters = _object(payload.get("parameters"), "parameters")
    inputs = payload.get("inputs")
    if not isinstance(inputs, list) or not inputs:
        raise BadRequest(
            "'inputs' must be a non-empty list of tensors", details={"field": "inputs"}
        )
    offset = 0
    tensors = []
    seen: set[str] = set()
    for i, raw in enumerate(inputs):
        tensor, offset = _tensor(raw, f"inputs[{i}]", binary, offset)
        if tensor.name in seen:
            raise BadRequest(
                f"input {tensor.name!r} is given twice", details={"field": f"inputs[{i}].name"}
            )
        seen.add(tensor.name)
        tensors.append(tensor)
    if offset != len(binary):
        raise BadRequest(
            f"the body holds {len(binary) - offset} bytes of binary data that no input claims",
            details={"field": "binary_data_size"},
        )
    return InferRequest(request_id, tensors, parameters, _binary_outputs(payload.get("outputs")))


def _binary_outputs(requested: Any) -> set[str]:
    """The names of the requested outputs marked ``binary_data`` (the rest of ``outputs`` is
    not used: every output is answered)."""
    if not isinstance(requested, list):
        return set()
    return {
        str(o.get("name"))
        for o in requested
        if isinstance(o, dict)
        and isinstance(o.get("parameters"), dict)
        and o["parameters"].get("binary_data") is True
    }


def _object(value: Any, field_name: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise BadRequest(f"'{field_name}' must be an object", details={"field": field_name})
    return value


def _tensor(raw: Any, where: str, binary: bytes, offset: int) -> tuple[Tensor, int]:
    if not isinstance(raw, dict):
        raise BadRequest(f"{where} must be an object", details={"field": where})
    name, datatype, shape = raw.get("name"), raw.get("datatype"), raw.get("shape")
    if not isinstance(name, str) or not name:
        raise BadRequest(f"{where}.name must be a non-empty string", details={"field": where})
    if datatype not in DATATYPES:
        raise BadRequest(
            f"input {name!r}: datatype {datatype!r} is not one of {', '.join(DATATYPES)}",
            details={"field": f"{where}.datatype", "supported": list(DATATYPES)},
        )
    if not isinstance(shape, list) or not all(
        isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape
    ):
        raise BadRequest(
            f"input {name!r}: shape must be a list of non-negative integers",
            details={"field": f"{where}.shape"},
        )
    parameters = _object(raw.get("parameters"), f"{where}.parameters")
    size = parameters.get("binary_data_size")
    if size is not None:
        if not isinstance(size, int) or size < 0 or offset + size > len(binary):
            raise BadRequest(
                f"input {name!r}: binary_data_size {size!r} exceeds the binary data sent",
                details={"field": f"{where}.parameters.binary_data_size"},
            )
        values = _from_binary(name, datatype, binary[offset : offset + size])
        offset += size
    elif "data" in raw:
        values = _flatten(raw["data"])
        _check_values(name, datatype, values)
    else:
        raise BadRequest(f"input {name!r} has no 'data'", details={"field": f"{where}.data"})
    expected = math.prod(shape)
    if len(values) != expected:
        raise ValidationFailed(
            f"input {name!r} has {len(values)} values; shape {shape} holds {expected}",
            details={"field": name, "shape": shape, "values": len(values)},
        )
    return Tensor(name, datatype, shape, values, parameters), offset


def _flatten(data: Any) -> list[Any]:
    if not isinstance(data, list):
        return [data]
    flat: list[Any] = []
    stack = [iter(data)]
    while stack:
        for item in stack[-1]:
            if isinstance(item, list):
                stack.append(iter(item))
                break
            flat.append(item)
        else:
            stack.pop()
    return flat


def _check_values(name: str, datatype: str, values: list[Any]) -> None:
    bounds = DATATYPES[datatype][1]
    for i, v in enumerate(values):
        if datatype == "BOOL":
            ok = isinstance(v, bool)
        elif datatype == "BYTES":
            ok = isinstance(v, str)
        elif bounds is not None:
            ok = isinstance(v, int) and not isinstance(v, bool) and bounds[0] <= v <= bounds[1]
        else:
            ok = isinstance(v, int | float) and not isinstance(v, bool)
        if not ok:
            shown = orjson.dumps(v).decode()[:40]
            raise ValidationFailed(
                f"input {name!r} is {datatype} but its value {i} is {shown}",
                details={"field": name, "index": i, "datatype": datatype},
            )


def _from_binary(name: str, datatype: str, raw: bytes) -> list[Any]:
    if datatype == "BYTES":
        values: list[Any] = []
        at = 0
        while at < len(raw):
            if at + 4 > len(raw):
                raise ValidationFailed(
                    f"input {name!r}: its BYTES data ends inside a length prefix",
                    details={"field": name},
                )
            (n,) = struct.unpack_from("<I", raw, at)
            item = raw[at + 4 : at + 4 + n]
            if len(item) != n:
                raise ValidationFailed(
                    f"input {name!r}: its BYTES element {len(values)} is cut short",
                    details={"field": name},
                )
            try:
                values.append(item.decode("utf-8"))
            except UnicodeDecodeError as exc:
                raise ValidationFailed(
                    f"input {name!r}: element {len(values)} is not UTF-8 text, which the "
                    "model endpoint's JSON cannot carry",
                    details={"field": name, "index": len(values)},
                ) from exc
            at += 4 + n
        return values
    import numpy as np

    dtype = np.dtype(DATATYPES[datatype][0])
    if len(raw) % dtype.itemsize:
        raise ValidationFailed(
            f"input {name!r}: {len(raw)} bytes of binary data is not a whole number of "
            f"{datatype} values ({dtype.itemsize} bytes each)",
            details={"field": name},
        )
    array = np.frombuffer(raw, dtype=dtype)
    if datatype in FLOATS and not np.isfinite(array).all():
        raise ValidationFailed(
            f"input {name!r} holds NaN or an infinity, which JSON cannot carry",
            details={"field": name},
        )
    return list(array.tolist())


def predict_body(request: InferRequest, signature: dict[str, Any] | None) -> bytes:
    """The body the replicas take (``{"inputs": ...}``) for an infer request, checked against
    the signature's column types (422 naming the input)."""
    specs = signature_columns(signature)
    types = {s.name: s.type for s in specs or ()}
    content_type = request.parameters.get("content_type")
    inputs = request.inputs
    first = inputs[0]
    if (
        len(inputs) == 1
        and len(first.shape) >= 2
        and content_type != "pd"
        and first.name not in types
    ):
        return dumps({"inputs": _reshape(first.values, first.shape)})
    rows: int | None = None
    columns: dict[str, list[Any]] = {}
    for tensor in inputs:
        if len(tensor.shape) > 2 or (len(tensor.shape) == 2 and tensor.shape[1] != 1):
            raise ValidationFailed(
                f"input {tensor.name!r} has shape {tensor.shape}; as a column of the model's "
                "input it must be [N] or [N, 1]",
                details={"field": tensor.name, "shape": tensor.shape},
            )
        n = tensor.shape[0] if tensor.shape else 1
        if rows is not None and n != rows:
            raise ValidationFailed(
                f"input {tensor.name!r} has {n} rows, input {inputs[0].name!r} has {rows}",
                details={"field": tensor.name},
            )
        rows = n
        expected = types.get(tensor.name)
        if expected in ACCEPTS and tensor.datatype not in ACCEPTS[expected]:
            raise ValidationFailed(
                f"input {tensor.name!r} is {tensor.datatype}; the model's column "
                f"{tensor.name!r} is {expected} ({FROM_MLFLOW[expected]})",
                details={"field": tensor.name, "expected_type": expected},
            )
        columns[tensor.name] = tensor.values
    if not rows:
        raise ValidationFailed("the inputs hold no rows", details={"field": "inputs"})
    return dumps({"inputs": columns})


def _reshape(values: list[Any], shape: list[int]) -> list[Any]:
    """Flat row-major values as nested lists of ``shape`` (two or more dimensions)."""
    nested: list[Any] = values
    for size in reversed(shape[1:]):
        nested = [nested[i : i + size] for i in range(0, len(nested), size)] if size else []
    return nested


# -- answers --------------------------------------------------------------------------------


def infer_response(
    answer: dict[str, Any], request: InferRequest, name: str, version: str,
    signature: dict[str, Any] | None,
) -> dict[str, Any]:  # fmt: skip
    """The replica's ``{"prediction", "uuid"}`` as an OIP answer: named, typed outputs, the
    request's ``id`` echoed (the prediction's UUID when it sent none) and the UUID under
    ``parameters.prediction_id``."""
    uuid = str(answer.get("uuid", ""))
    return {
        "model_name": name,
        "model_version": version,
        "id": request.id if request.id is not None else uuid,
        "parameters": {"prediction_id": uuid},
        "outputs": outputs(answer.get("prediction"), _output_names(signature)),
    }


def _output_names(signature: dict[str, Any] | None) -> list[str]:
    columns = (signature or {}).get("outputs") or []
    if isinstance(columns, str):
        columns = orjson.loads(columns)
    return [c["name"] for c in columns if isinstance(c, dict) and c.get("name")]


def outputs(prediction: Any, names: list[str]) -> list[dict[str, Any]]:
    """A prediction (JSON values) as output tensors: records or a dict of columns give one
    output per column, rows give one ``[N, M]`` output, values one ``[N]`` output."""
    if isinstance(prediction, list) and prediction and all(isinstance(r, dict) for r in prediction):
        keys = list(prediction[0])
        return [_output(k, [r.get(k) for r in prediction], [len(prediction)]) for k in keys]
    if isinstance(prediction, dict) and all(isinstance(v, list) for v in prediction.values()):
        return [_output(str(k), v, [len(v)]) for k, v in prediction.items()]
    name = names[0] if len(names) == 1 else DEFAULT_OUTPUT
    if isinstance(prediction, list):
        if prediction and all(isinstance(r, list) for r in prediction):
            width = len(prediction[0])
            if all(len(r) == width and not _nested(r) for r in prediction):
                flat = [v for r in prediction for v in r]
                return [_output(name, flat, [len(prediction), width])]
        elif not _nested(prediction):
            return [_output(name, prediction, [len(prediction)])]
    return [_output(name, [prediction], [1])]


def _nested(values: list[Any]) -> bool:
    return any(isinstance(v, list | dict) for v in values)


def _output(name: str, values: list[Any], shape: list[int]) -> dict[str, Any]:
    if all(isinstance(v, bool) for v in values):
        datatype = "BOOL"
    elif all(_is_int64(v) for v in values):
        datatype = "INT64"
    elif all(isinstance(v, int | float) and not isinstance(v, bool) for v in values):
        datatype = "FP64"
    else:
        datatype = "BYTES"
        values = [v if isinstance(v, str) else orjson.dumps(v).decode() for v in values]
    return {"name": name, "datatype": datatype, "shape": shape, "data": values}


def _is_int64(value: Any) -> bool:
    low, high = _INT64
    return isinstance(value, int) and not isinstance(value, bool) and low <= value <= high


def render(answer: dict[str, Any], request: InferRequest) -> tuple[bytes, int | None]:
    """The answer's bytes and, when outputs go in binary, the length of its JSON header (for
    ``Inference-Header-Content-Length``): those outputs' ``data`` moves behind the JSON."""
    blobs = []
    for output in answer["outputs"]:
        if request.in_binary(output["name"]):
            blob = _to_binary(output["datatype"], output.pop("data"))
            output["parameters"] = {"binary_data_size": len(blob)}
            blobs.append(blob)
    header = dumps(answer)
    if not blobs:
        return header, None
    return header + b"".join(blobs), len(header)


def _to_binary(datatype: str, values: list[Any]) -> bytes:
    if datatype == "BYTES":
        encoded = [str(v).encode("utf-8") for v in values]
        return b"".join(struct.pack("<I", len(b)) + b for b in encoded)
    import numpy as np

    return bytes(np.asarray(values, dtype=DATATYPES[datatype][0]).tobytes())


def error_body(exc: ModeldeckError) -> dict[str, Any]:
    """OIP's error shape, ``{"error": "<message>"}``, with modeldeck's code and details beside."""
    return {"error": exc.message, "code": exc.code, "details": exc.details}


def replica_error(status: int, body: bytes) -> ModeldeckError:
    """A replica's error answer (modeldeck's shape) as the error it stands for."""
    try:
        error = orjson.loads(body).get("error", {})
    except (orjson.JSONDecodeError, AttributeError):
        error = {}
    failure = ModeldeckError(
        str(error.get("message", "the model endpoint failed")), details=error.get("details")
    )
    failure.status_code = status
    failure.code = str(error.get("code", "error"))
    return failure


# -- metadata -------------------------------------------------------------------------------


def model_metadata(name: str, version: str, signature: dict[str, Any] | None) -> dict[str, Any]:
    """``GET /v2/models/{name}``: the signature's inputs and outputs as tensor metadata."""
    inputs = _metadata_tensors((signature or {}).get("inputs"), "input")
    outputs_ = _metadata_tensors((signature or {}).get("outputs"), DEFAULT_OUTPUT)
    metadata: dict[str, Any] = {
        "name": name,
        "versions": [version],
        "platform": "mlflow",
        "inputs": inputs,
        "outputs": outputs_,
    }
    if signature_columns(signature) is not None:
        metadata["parameters"] = {"content_type": "pd"}  # inputs are DataFrame columns
    return metadata


def _metadata_tensors(columns: Any, default: str) -> list[dict[str, Any]]:
    if not columns:
        return []
    if isinstance(columns, str):
        columns = orjson.loads(columns)
    tensors = []
    for i, col in enumerate(columns):
        if col.get("type") == "tensor":
            spec = col.get("tensor-spec", {})
            datatype = FROM_MLFLOW.get(str(spec.get("dtype")), "BYTES")
            shape = list(spec.get("shape", [-1]))
        else:
            datatype = FROM_MLFLOW.get(str(col.get("type")), "BYTES")
            shape = [-1]
        name = col.get("name") or (default if len(columns) == 1 else f"{default}-{i}")
        tensors.append({"name": name, "datatype": datatype, "shape": shape})
    return tensors
