"""Request bodies to rows, checked against the model signature, without per-request pandas.

Accepted bodies (the lab's form and MLflow's scoring forms):

* ``{"inputs": ...}`` and ``{"instances": ...}``: a record ``{"col": value}``, columns
  ``{"col": [values]}``, records ``[{"col": value}, ...]``, rows ``[[v, ...], ...]`` or one row
  ``[v, ...]`` (positional, in signature order);
* ``{"dataframe_split": {"columns": [...], "data": [[...]]}}``;
* ``{"dataframe_records": [{...}, ...]}``.

Every request becomes a :class:`Frame` (column names and rows of plain Python values). Frames of
concurrent requests are concatenated into one DataFrame per predict call by the batcher.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson

from modeldeck.errors import BadRequest, InvalidJSON, ModelError, ValidationFailed

FORMS = ("inputs", "instances", "dataframe_split", "dataframe_records")

_NUMPY_DTYPES = {
    "double": "float64",
    "float": "float32",
    "long": "int64",
    "integer": "int32",
    "boolean": "bool",
    "string": "object",
    "binary": "object",
    "datetime": "datetime64[ns]",
}


@dataclass(frozen=True)
class ColumnSpec:
    name: str
    type: str
    required: bool = True


@dataclass(frozen=True)
class TensorInput:
    """A signature of one tensor input: its NumPy dtype and shape (``-1`` for any size).

    Every row of a request is one element of the batch dimension, flattened: a row of
    ``prod(shape[1:])`` numbers (or, for a string tensor, texts).
    """

    dtype: str
    shape: tuple[int, ...]

    @property
    def width(self) -> int | None:
        """Values per row; ``None`` when a dimension past the first is of any size."""
        width = 1
        for dim in self.shape[1:]:
            if dim < 0:
                return None
            width *= dim
        return width


@dataclass
class Frame:
    columns: list[str] | None
    rows: list[list[Any]]


def loads(body: bytes) -> Any:
    if not body or not body.strip():
        raise InvalidJSON('the request body is empty; send a JSON object such as {"inputs": ...}')
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise InvalidJSON(f"the request body is not valid JSON: {exc}") from exc


def dumps(obj: Any) -> bytes:
    return orjson.dumps(obj, option=orjson.OPT_SERIALIZE_NUMPY, default=_default)


def encode_output(output: Any, limit: int) -> bytes:
    """A model's output (plain JSON values after ``to_jsonable``) as JSON, checked.

    A 500 ``model_error`` when it is no JSON: a type JSON cannot carry (named), a NaN or an
    infinity (JSON has none: rather than answering and recording them as ``null``, which would
    read as "no prediction", they are refused), or more than ``limit`` bytes.
    """
    try:
        data = dumps(output)
    except (TypeError, orjson.JSONEncodeError) as exc:
        raise ModelError(
            f"the model's output cannot be sent as JSON: {_cause(exc)}",
            details={"reason": "not_serialisable"},
        ) from exc
    # orjson writes NaN and infinities as null: look for them only when there is a null.
    if b"null" in data and _non_finite(output):
        raise ModelError(
            "the model's output holds NaN or an infinity, which JSON cannot carry",
            details={"reason": "non_finite"},
        )
    if len(data) > limit:
        raise ModelError(
            f"the model's output is {len(data)} bytes of JSON; the limit is {limit} "
            "(MODELDECK_MAX_RESPONSE_BYTES)",
            details={"reason": "too_large", "bytes": len(data), "limit_bytes": limit},
        )
    return data


def _cause(exc: Exception) -> str:
    text = str(exc)
    prefix = "Type is not JSON serializable: "
    if text.startswith(prefix):
        return f"it holds a value of type {text.removeprefix(prefix)!r}, which is not JSON"
    return text or type(exc).__name__


def _non_finite(value: Any) -> bool:
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, float):
            if not math.isfinite(item):
                return True
        elif isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, list | tuple):
            stack.extend(item)
        elif hasattr(item, "dtype") and hasattr(item, "tolist"):
            stack.append(item.tolist())
    return False


def _default(obj: Any) -> Any:
    tolist = getattr(obj, "tolist", None)
    if tolist is not None:
        return tolist()
    item = getattr(obj, "item", None)
    if item is not None:
        return item()
    if hasattr(obj, "isoformat"):
        return obj.isoformat()
    raise TypeError(f"a {type(obj).__module__}.{type(obj).__qualname__} is not JSON")


def signature_columns(signature: dict[str, Any] | None) -> list[ColumnSpec] | None:
    """Column specs of a column-based signature; ``None`` for no signature or a tensor one."""
    if not signature or not signature.get("inputs"):
        return None
    inputs = signature["inputs"]
    if isinstance(inputs, str):
        inputs = orjson.loads(inputs)
    specs = []
    for i, col in enumerate(inputs):
        if col.get("type") == "tensor" or "name" not in col:
            return None
        specs.append(ColumnSpec(col.get("name", str(i)), col["type"], col.get("required", True)))
    return specs


def signature_tensor(signature: dict[str, Any] | None) -> TensorInput | None:
    """The tensor of a signature of exactly one tensor input; ``None`` for anything else
    (no signature, columns, several named tensors: those go to the pyfunc as they come)."""
    if not signature or not signature.get("inputs"):
        return None
    inputs = signature["inputs"]
    if isinstance(inputs, str):
        inputs = orjson.loads(inputs)
    if len(inputs) != 1 or inputs[0].get("type") != "tensor":
        return None
    spec = inputs[0].get("tensor-spec") or {}
    shape = tuple(int(d) for d in spec.get("shape") or (-1,))
    return TensorInput(str(spec.get("dtype", "float64")), shape)


def conform_tensor(frame: Frame, tensor: TensorInput) -> Frame:
    """Check each row against a tensor input: as many values as one element holds, each a
    number (a text for a string tensor). 422 naming the row and position at fault."""
    width = tensor.width
    check: Callable[[Any], bool] = _is_number
    expected = "a number"
    if tensor.dtype in ("str", "object", "bytes"):
        check, expected = _is_text, "a text"
    elif tensor.dtype == "bool":
        check, expected = _is_bool, "true or false"
    for i, row in enumerate(frame.rows):
        if width is not None and len(row) != width:
            raise ValidationFailed(
                f"row {i} has {len(row)} values; the model takes a tensor of shape "
                f"{list(tensor.shape)}, {width} values per row",
                details={"field": f"row {i}", "expected_shape": list(tensor.shape)},
            )
        for j, value in enumerate(row):
            if not check(value):
                raise ValidationFailed(
                    f"row {i} value {j} is {_describe(value)}; the model's {tensor.dtype} "
                    f"tensor takes {expected}",
                    details={"field": f"row {i}", "position": j, "expected_type": tensor.dtype},
                )
    return frame


def tensor_array(rows: list[list[Any]], tensor: TensorInput) -> Any:
    """Rows to one NumPy array of the tensor's dtype and shape (once per batch)."""
    import numpy as np

    array = np.asarray(rows, dtype=tensor.dtype)
    if len(tensor.shape) != 2:
        # (-1,): one value per row; (-1, 2, 2): rows of four values.
        array = array.reshape((len(rows), *tensor.shape[1:]))
    return array


def parse(payload: Any) -> Frame:
    """A decoded JSON body to a :class:`Frame`; 400 when no accepted form is present."""
    if not isinstance(payload, dict):
        raise BadRequest(
            "the request body must be a JSON object with one of the keys " + ", ".join(FORMS),
            details={"accepted": list(FORMS)},
        )
    present = [k for k in FORMS if k in payload]
    if len(present) != 1:
        raise BadRequest(
            f"the request body must have exactly one of the keys {', '.join(FORMS)}"
            + (f"; it has {', '.join(present)}" if present else ""),
            details={"accepted": list(FORMS)},
        )
    form = present[0]
    value = payload[form]
    if form == "dataframe_split":
        return _split(value)
    if form == "dataframe_records":
        if not isinstance(value, list):
            raise ValidationFailed(
                "dataframe_records must be a list of objects", details={"field": form}
            )
        return _records(value, form)
    return _inputs(value, form)


def _split(value: Any) -> Frame:
    if not isinstance(value, dict) or "data" not in value:
        raise ValidationFailed(
            "dataframe_split must be an object with 'columns' and 'data'",
            details={"field": "dataframe_split"},
        )
    data = value["data"]
    columns = value.get("columns")
    if not isinstance(data, list) or not all(isinstance(r, list) for r in data):
        raise ValidationFailed(
            "dataframe_split.data must be a list of rows (lists)",
            details={"field": "dataframe_split.data"},
        )
    if columns is not None:
        if not isinstance(columns, list) or not all(isinstance(c, str) for c in columns):
            raise ValidationFailed(
                "dataframe_split.columns must be a list of strings",
                details={"field": "dataframe_split.columns"},
            )
        for i, row in enumerate(data):
            if len(row) != len(columns):
                raise ValidationFailed(
                    f"row {i} of dataframe_split.data has {len(row)} values for "
                    f"{len(columns)} columns",
                    details={"field": f"dataframe_split.data[{i}]"},
                )
    return Frame(columns, data)


def _records(records: list[Any], form: str) -> Frame:
    if not records:
        raise ValidationFailed(f"{form} holds no rows", details={"field": form})
    columns: list[str] = []
    seen: set[str] = set()
    for i, rec in enumerate(records):
        if not isinstance(rec, dict):
            raise ValidationFailed(
                f"{form}[{i}] must be an object of column: value", details={"field": f"{form}[{i}]"}
            )
        for key in rec:
            if key not in seen:
                seen.add(key)
                columns.append(key)
    rows = [[rec.get(c) for c in columns] for rec in records]
    return Frame(columns, rows)


def _inputs(value: Any, form: str) -> Frame:
    if isinstance(value, dict):
        if not value:
            raise ValidationFailed(f"{form} holds no columns", details={"field": form})
        columns = list(value)
        cols = list(value.values())
        if all(isinstance(c, list) for c in cols):
            n = len(cols[0])
            for name, c in zip(columns, cols, strict=True):
                if len(c) != n:
                    raise ValidationFailed(
                        f"column {name!r} has {len(c)} values, column {columns[0]!r} has {n}",
                        details={"field": f"{form}.{name}"},
                    )
            return Frame(columns, [list(r) for r in zip(*cols, strict=True)])
        if any(isinstance(c, list) for c in cols):
            raise ValidationFailed(f"{form} mixes list and scalar columns", details={"field": form})
        return Frame(columns, [cols])
    if isinstance(value, list):
        if not value:
            raise ValidationFailed(f"{form} holds no rows", details={"field": form})
        if all(isinstance(r, dict) for r in value):
            return _records(value, form)
        if all(isinstance(r, list) for r in value):
            return Frame(None, value)
        if not any(isinstance(r, list | dict) for r in value):
            return Frame(None, [value])
        raise ValidationFailed(
            f"{form} must be rows (lists), records (objects) or one row of values",
            details={"field": form},
        )
    raise ValidationFailed(
        f"{form} must be an object or a list, got {type(value).__name__}", details={"field": form}
    )


def conform(frame: Frame, specs: list[ColumnSpec] | None) -> Frame:
    """Check a frame against the signature and put its columns in signature order.

    Raises 422 naming the column or row at fault. Extra columns are dropped, as MLflow does.
    """
    if specs is None:
        if frame.columns is None:
            width = len(frame.rows[0])
            for i, row in enumerate(frame.rows):
                if len(row) != width:
                    raise ValidationFailed(
                        f"row {i} has {len(row)} values, row 0 has {width}",
                        details={"field": f"row {i}"},
                    )
        return frame
    names = [s.name for s in specs]
    if frame.columns is None:
        for i, row in enumerate(frame.rows):
            if len(row) != len(specs):
                raise ValidationFailed(
                    f"row {i} has {len(row)} values; the model expects {len(specs)} "
                    f"({', '.join(names)})",
                    details={"field": f"row {i}", "expected_columns": names},
                )
        rows = frame.rows
    else:
        position = {c: i for i, c in enumerate(frame.columns)}
        missing = [s.name for s in specs if s.required and s.name not in position]
        if missing:
            raise ValidationFailed(
                f"missing input column{'s' if len(missing) > 1 else ''} "
                f"{', '.join(repr(m) for m in missing)}; the model expects {', '.join(names)}",
                details={"field": missing[0], "missing": missing, "expected_columns": names},
            )
        if frame.columns == names:
            rows = frame.rows
        else:
            idx = [position.get(n) for n in names]
            rows = [[row[j] if j is not None else None for j in idx] for row in frame.rows]
    for spec_i, spec in enumerate(specs):
        check = _CHECKS.get(spec.type)
        if check is None:
            continue
        for row_i, row in enumerate(rows):
            value = row[spec_i]
            if value is None:
                if spec.required:
                    raise ValidationFailed(
                        f"column {spec.name!r} is required but row {row_i} has no value",
                        details={"field": spec.name, "row": row_i},
                    )
                continue
            if not check(value):
                raise ValidationFailed(
                    f"column {spec.name!r} expects {spec.type} but row {row_i} has "
                    f"{_describe(value)}",
                    details={"field": spec.name, "row": row_i, "expected_type": spec.type},
                )
    return Frame(names, rows)


def _is_number(v: Any) -> bool:
    return (isinstance(v, int | float) and not isinstance(v, bool)) and not (
        isinstance(v, float) and math.isinf(v)
    )


def _is_bool(v: Any) -> bool:
    return isinstance(v, bool)


def _is_text(v: Any) -> bool:
    return isinstance(v, str)


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


_CHECKS: dict[str, Callable[[Any], bool]] = {
    "double": _is_number,
    "float": _is_number,
    "long": _is_int,
    "integer": _is_int,
    "boolean": lambda v: isinstance(v, bool),
    "string": lambda v: isinstance(v, str),
    "binary": lambda v: isinstance(v, str),
    "datetime": lambda v: isinstance(v, str),
}


def _describe(value: Any) -> str:
    text = orjson.dumps(value).decode() if not isinstance(value, float) else repr(value)
    if len(text) > 40:
        text = text[:37] + "..."
    return f"{type(value).__name__} {text}"


def dataframe(columns: list[str] | None, rows: list[list[Any]], specs: list[ColumnSpec] | None):  # type: ignore[no-untyped-def]
    """Rows to one pandas DataFrame with the signature's dtypes (once per batch)."""
    import pandas as pd

    if columns is None:
        return pd.DataFrame(rows)
    df = pd.DataFrame(rows, columns=columns)
    if specs:
        for spec in specs:
            dtype = _NUMPY_DTYPES.get(spec.type)
            if dtype and dtype != "object" and df[spec.name].dtype != dtype:
                with contextlib.suppress(TypeError, ValueError):
                    df[spec.name] = df[spec.name].astype(dtype)
    return df
