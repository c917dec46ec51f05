from __future__ import annotations

import pytest

from modeldeck.errors import BadRequest, InvalidJSON, ValidationFailed
from modeldeck.replica.codecs import ColumnSpec, Frame, conform, dataframe, loads, parse

SPECS = [ColumnSpec("a", "double"), ColumnSpec("b", "long"), ColumnSpec("c", "string")]


@pytest.mark.parametrize(
    "payload",
    [
        {"inputs": [[1.5, 2, "x"]]},
        {"inputs": [1.5, 2, "x"]},
        {"inputs": {"a": 1.5, "b": 2, "c": "x"}},
        {"inputs": {"a": [1.5], "b": [2], "c": ["x"]}},
        {"inputs": [{"a": 1.5, "b": 2, "c": "x"}]},
        {"instances": [[1.5, 2, "x"]]},
        {"dataframe_split": {"columns": ["a", "b", "c"], "data": [[1.5, 2, "x"]]}},
        {"dataframe_split": {"columns": ["c", "b", "a"], "data": [["x", 2, 1.5]]}},
        {"dataframe_records": [{"c": "x", "a": 1.5, "b": 2, "extra": 1}]},
    ],
)
def test_every_accepted_form_gives_the_same_rows(payload: dict) -> None:
    frame = conform(parse(payload), SPECS)
    assert frame.columns == ["a", "b", "c"]
    assert frame.rows == [[1.5, 2, "x"]]


def test_dataframe_uses_signature_dtypes() -> None:
    df = dataframe(["a", "b", "c"], [[1, 2, "x"], [2.5, 3, "y"]], SPECS)
    assert str(df["a"].dtype) == "float64"
    assert str(df["b"].dtype) == "int64"
    assert df.shape == (2, 3)


@pytest.mark.parametrize(
    ("payload", "field", "words"),
    [
        ({"inputs": [[1.0, 2]]}, "row 0", "expects 3"),
        ({"inputs": [["1.0", 2, "x"]]}, "a", "expects double"),
        ({"inputs": [[1.0, 2.5, "x"]]}, "b", "expects long"),
        ({"inputs": [[1.0, True, "x"]]}, "b", "expects long"),
        ({"inputs": [[None, 2, "x"]]}, "a", "required"),
        ({"dataframe_records": [{"a": 1.0, "b": 2}]}, "c", "missing input column 'c'"),
        ({"dataframe_split": {"columns": ["a"], "data": [[1, 2]]}}, "dataframe_split.data[0]", ""),
        ({"dataframe_split": {"data": "nope"}}, "dataframe_split.data", ""),
        ({"inputs": {"a": [1.0, 2.0], "b": [1], "c": ["x", "y"]}}, "inputs.b", "values"),
        ({"inputs": []}, "inputs", "no rows"),
        ({"inputs": "text"}, "inputs", "object or a list"),
    ],
)
def test_wrong_shapes_and_types_name_the_field(payload: dict, field: str, words: str) -> None:
    with pytest.raises(ValidationFailed) as info:
        conform(parse(payload), SPECS)
    assert info.value.status_code == 422
    assert info.value.details["field"] == field
    assert words in info.value.message


@pytest.mark.parametrize(
    "payload", [[1, 2], {"nothing": 1}, {"inputs": [[1]], "instances": [[1]]}, "x", 3]
)
def test_bodies_without_exactly_one_form_are_bad_requests(payload: object) -> None:
    with pytest.raises(BadRequest) as info:
        parse(payload)
    assert info.value.status_code == 400
    assert "inputs" in info.value.message


@pytest.mark.parametrize("body", [b"", b"   ", b"{bad", b'{"inputs": NaN}', b"\xff\xfe"])
def test_invalid_json_is_a_400(body: bytes) -> None:
    with pytest.raises(InvalidJSON) as info:
        loads(body)
    assert info.value.status_code == 400


def test_without_signature_rows_must_agree_in_width() -> None:
    frame = conform(Frame(None, [[1, 2], [3, 4]]), None)
    assert frame.rows == [[1, 2], [3, 4]]
    with pytest.raises(ValidationFailed, match="row 1 has 1 values"):
        conform(Frame(None, [[1, 2], [3]]), None)
