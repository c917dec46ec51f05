"""The Open Inference Protocol's translation (``gateway/oip.py``), in process: every datatype in
JSON and in the binary extension, the mapping of tensors to columns or rows, outputs."""

from __future__ import annotations

from typing import Any

import numpy as np
import orjson
import pytest
from tritonclient.utils import serialize_byte_tensor

from modeldeck.errors import BadRequest, ValidationFailed
from modeldeck.gateway import oip

NUMERIC = {
    "INT8": np.int8, "INT16": np.int16, "INT32": np.int32, "INT64": np.int64,
    "UINT8": np.uint8, "UINT16": np.uint16, "UINT32": np.uint32, "UINT64": np.uint64,
    "FP16": np.float16, "FP32": np.float32, "FP64": np.float64,
}  # fmt: skip
SIGNATURE = {
    "inputs": [{"name": "a", "type": "double"}, {"name": "b", "type": "long"},
               {"name": "c", "type": "string"}, {"name": "d", "type": "boolean"}],
    "outputs": [{"type": "long"}],
}  # fmt: skip


def binary(tensors: list[tuple[str, str, list[int], bytes]]) -> tuple[bytes, str]:
    """A request in the binary tensor extension, as tritonclient sends it."""
    header = orjson.dumps(
        {
            "inputs": [
                {"name": n, "datatype": t, "shape": s, "parameters": {"binary_data_size": len(b)}}
                for n, t, s, b in tensors
            ]
        }
    )
    return header + b"".join(b for *_, b in tensors), str(len(header))


@pytest.mark.parametrize("datatype", sorted(NUMERIC))
def test_every_numeric_datatype_in_binary_and_json(datatype: str) -> None:
    values = np.array([[1, 2], [3, 4]], dtype=NUMERIC[datatype])
    body, length = binary([("x", datatype, [2, 2], values.tobytes())])
    from_binary = oip.parse_infer(body, length).inputs[0]
    as_json = {"inputs": [{"name": "x", "datatype": datatype, "shape": [2, 2],
                           "data": values.tolist()}]}  # fmt: skip
    from_json = oip.parse_infer(orjson.dumps(as_json), None).inputs[0]
    assert from_binary.values == from_json.values == [1, 2, 3, 4]
    assert orjson.loads(oip.predict_body(oip.parse_infer(body, length), None)) == {
        "inputs": [[1, 2], [3, 4]]
    }


def test_bool_and_bytes_in_binary_and_json() -> None:
    words = serialize_byte_tensor(np.array([b"setosa", b"versicolor"], dtype=object))
    flags = np.array([True, False]).tobytes()
    body, length = binary([("c", "BYTES", [2], words.item()), ("d", "BOOL", [2], flags)])
    parsed = oip.parse_infer(body, length)
    assert [t.values for t in parsed.inputs] == [["setosa", "versicolor"], [True, False]]
    as_json = {
        "inputs": [
            {"name": "c", "datatype": "BYTES", "shape": [2], "data": ["x", "y"]},
            {"name": "d", "datatype": "BOOL", "shape": [2], "data": [True, 0]},
        ]
    }
    with pytest.raises(ValidationFailed, match="'d' is BOOL but its value 1 is 0"):
        oip.parse_infer(orjson.dumps(as_json), None)


def test_bytes_that_are_not_text_are_refused() -> None:
    raw = serialize_byte_tensor(np.array([b"\xff\xfe"], dtype=object)).item()
    body, length = binary([("c", "BYTES", [1], raw)])
    with pytest.raises(ValidationFailed, match="not UTF-8"):
        oip.parse_infer(body, length)


def test_binary_sizes_must_add_up() -> None:
    body, length = binary([("x", "FP32", [3], np.zeros(2, dtype=np.float32).tobytes())])
    with pytest.raises(ValidationFailed, match="has 2 values; shape \\[3\\] holds 3"):
        oip.parse_infer(body, length)
    with pytest.raises(ValidationFailed, match="not a whole number of FP32"):
        oip.parse_infer(*binary([("x", "FP32", [1], b"\x00" * 5)]))
    body, length = binary([("x", "FP32", [2], np.zeros(2, dtype=np.float32).tobytes())])
    assert oip.parse_infer(body, length).inputs[0].values == [0.0, 0.0]
    with pytest.raises(BadRequest, match="no input claims"):
        oip.parse_infer(body + b"extra", length)
    nan = np.array([np.nan], dtype=np.float64).tobytes()
    with pytest.raises(ValidationFailed, match="NaN"):
        oip.parse_infer(*binary([("x", "FP64", [1], nan)]))


def test_requested_outputs_in_binary_are_read() -> None:
    request = {
        "inputs": [{"name": "x", "datatype": "FP64", "shape": [1], "data": [1.0]}],
        "outputs": [{"name": "predict", "parameters": {"binary_data": True}}, {"name": "other"}],
    }
    parsed = oip.parse_infer(orjson.dumps(request), None)
    assert parsed.in_binary("predict") and not parsed.in_binary("other")


def test_nested_json_data_is_row_major() -> None:
    request = {"inputs": [{"name": "x", "datatype": "INT32", "shape": [2, 3],
                           "data": [[1, 2, 3], [4, 5, 6]]}]}  # fmt: skip
    parsed = oip.parse_infer(orjson.dumps(request), None)
    assert parsed.inputs[0].values == [1, 2, 3, 4, 5, 6]
    assert orjson.loads(oip.predict_body(parsed, None)) == {"inputs": [[1, 2, 3], [4, 5, 6]]}


def columns(**tensors: tuple[str, list[Any]]) -> oip.InferRequest:
    inputs = [oip.Tensor(n, t, [len(v)], v) for n, (t, v) in tensors.items()]
    return oip.InferRequest(None, inputs, {})


def test_columns_are_checked_against_the_signature() -> None:
    ok = columns(a=("INT32", [1]), b=("UINT8", [2]), c=("BYTES", ["x"]), d=("BOOL", [True]))
    assert orjson.loads(oip.predict_body(ok, SIGNATURE)) == {
        "inputs": {"a": [1], "b": [2], "c": ["x"], "d": [True]}
    }
    with pytest.raises(ValidationFailed, match="'b' is FP32; the model's column 'b' is long"):
        oip.predict_body(columns(a=("FP64", [1.0]), b=("FP32", [2.0])), SIGNATURE)


def test_pandas_content_type_makes_one_wide_input_columns_too() -> None:
    wide = oip.InferRequest(None, [oip.Tensor("x", "FP64", [2, 1], [1.0, 2.0])], {})
    assert orjson.loads(oip.predict_body(wide, None)) == {"inputs": [[1.0], [2.0]]}
    wide.parameters = {"content_type": "pd"}
    assert orjson.loads(oip.predict_body(wide, None)) == {"inputs": {"x": [1.0, 2.0]}}


def test_outputs_are_named_and_typed() -> None:
    assert oip.outputs([0, 2], []) == [
        {"name": "predict", "datatype": "INT64", "shape": [2], "data": [0, 2]}
    ]
    assert oip.outputs([[0.5, 1], [2.0, 3]], ["score"]) == [
        {"name": "score", "datatype": "FP64", "shape": [2, 2], "data": [0.5, 1, 2.0, 3]}
    ]
    frame = oip.outputs([{"label": "a", "p": 0.9}, {"label": "b", "p": 0.7}], [])
    assert [(o["name"], o["datatype"], o["data"]) for o in frame] == [
        ("label", "BYTES", ["a", "b"]),
        ("p", "FP64", [0.9, 0.7]),
    ]
    assert oip.outputs([2**64], [])[0]["datatype"] == "FP64"  # past INT64: a number still
    assert oip.outputs({"anything": "else"}, []) == [
        {"name": "predict", "datatype": "BYTES", "shape": [1], "data": ['{"anything":"else"}']}
    ]


def test_outputs_in_binary_when_asked_read_back_by_tritonclient() -> None:
    from tritonclient.http import InferResult

    answer = {
        "id": "1",
        "outputs": oip.outputs(
            [{"label": "a", "n": 1, "p": 0.5, "ok": True}, {"label": "bc", "n": 2, "p": 0.25,
              "ok": False}], [],
        ),
    }  # fmt: skip
    everything = oip.InferRequest(None, [], {"binary_data_output": True})
    body, length = oip.render(orjson.loads(orjson.dumps(answer)), everything)
    assert length is not None
    result = InferResult.from_response_body(body, header_length=length)
    assert result.as_numpy("label").tolist() == [b"a", b"bc"]
    assert result.as_numpy("n").tolist() == [1, 2]
    assert result.as_numpy("p").tolist() == [0.5, 0.25]
    assert result.as_numpy("ok").tolist() == [True, False]
    only_n = oip.InferRequest(None, [], {}, binary_outputs={"n"})
    body, length = oip.render(orjson.loads(orjson.dumps(answer)), only_n)
    header = orjson.loads(body[:length])
    assert [("data" in o, o.get("parameters")) for o in header["outputs"]] == [
        (True, None), (False, {"binary_data_size": 16}), (True, None), (True, None)
    ]  # fmt: skip
    assert oip.render(answer, oip.InferRequest(None, [], {}))[1] is None  # JSON by default


def test_metadata_from_column_and_tensor_signatures() -> None:
    meta = oip.model_metadata("m", "3", SIGNATURE)
    assert [(i["name"], i["datatype"]) for i in meta["inputs"]] == [
        ("a", "FP64"), ("b", "INT64"), ("c", "BYTES"), ("d", "BOOL")
    ]  # fmt: skip
    assert meta["outputs"] == [{"name": "predict", "datatype": "INT64", "shape": [-1]}]
    assert meta["parameters"] == {"content_type": "pd"}
    spec = {"dtype": "float32", "shape": [-1, 28]}
    tensor = {"inputs": [{"type": "tensor", "tensor-spec": spec}]}
    meta = oip.model_metadata("m", "3", tensor)
    assert meta["inputs"] == [{"name": "input", "datatype": "FP32", "shape": [-1, 28]}]
    assert "parameters" not in meta
