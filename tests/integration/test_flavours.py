"""Every flavour end to end on one real platform (SQLite): XGBoost, LightGBM and CatBoost
(native MLflow flavours, CatBoost with a text category), PyTorch with a tensor signature, a
custom ``mlflow.pyfunc.PythonModel`` answering several columns, and a regression.

For each: deploy, predict in each accepted body form (the same answer, the one the model gives
in the training process), the record holds the input and output, and drift and performance
answer over simulated traffic with labels. The Open Inference Protocol's clients,
``tritonclient.http`` and KServe's ``InferenceRESTClient``, built from each model's own OIP
metadata as their users build them, get the same answer, recorded under its UUID.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from typing import Any

import httpx
import numpy as np
import pytest
import tritonclient.http as triton
from kserve import InferenceRESTClient, InferInput, InferRequest, RESTConfig

from modeldeck.simulate import simulate
from tests.conftest import Registered, RunningPlatform, start_platform
from tests.flavours import TRAINERS, Flavour, register_flavours

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(900)]

TRAFFIC = 60
NUMPY = {"FP64": np.float64, "FP32": np.float32, "INT64": np.int64, "INT32": np.int32}


@pytest.fixture(scope="module")
def flavours(mlflow_registry: Registered) -> dict[str, Flavour]:
    return register_flavours(
        mlflow_registry.tracking_uri, (mlflow_registry.root / "artifacts" / "flavours").as_uri()
    )


@pytest.fixture(scope="module")
def deployed(
    flavours: dict[str, Flavour],
    mlflow_registry: Registered,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[RunningPlatform, dict[str, str]]]:
    data_dir = tmp_path_factory.mktemp("flavours")
    running = start_platform(
        data_dir, f"sqlite:///{data_dir / 'modeldeck.db'}", mlflow_registry.tracking_uri
    )
    try:
        client = running.client()
        keys = {}
        for flavour, model in flavours.items():
            created = client.deploy(flavour, model.name, version=model.version, replicas=1)
            keys[flavour] = created["access_key"]
        for flavour in flavours:
            client.wait(flavour, timeout=180)
        yield running, keys
    finally:
        running.stop()


def _bodies(model: Flavour) -> dict[str, Any]:
    """The same rows in every accepted form (a tensor model's rows are positional)."""
    records = [dict(zip(model.columns, row, strict=True)) for row in model.rows]
    columns = {c: [row[i] for row in model.rows] for i, c in enumerate(model.columns)}
    return {
        "dataframe_split": {"dataframe_split": {"columns": model.columns, "data": model.rows}},
        "dataframe_records": {"dataframe_records": records},
        "instances (rows)": {"instances": model.rows},
        "instances (records)": {"instances": records},
        "inputs (rows)": {"inputs": model.rows},
        "inputs (columns)": {"inputs": columns},
    }


def _post(platform: RunningPlatform, name: str, key: str, body: Any) -> httpx.Response:
    return httpx.post(
        f"{platform.url}/deployments/{name}/predict",
        json=body,
        headers={"Authorization": f"Bearer {key}"},
        timeout=60,
    )


def _label_of(output: Any) -> Any:
    """The class in a prediction: the custom model answers ``{"label", "score", "band"}``."""
    return output["label"] if isinstance(output, dict) else output


@pytest.mark.parametrize("flavour", list(TRAINERS))
def test_predict_record_drift_and_performance(
    flavour: str,
    flavours: dict[str, Flavour],
    deployed: tuple[RunningPlatform, dict[str, str]],
) -> None:
    platform, keys = deployed
    model = flavours[flavour]
    key = keys[flavour]
    uuids: dict[str, str] = {}
    for form, body in _bodies(model).items():
        r = _post(platform, flavour, key, body)
        assert r.status_code == 200, (form, r.text)
        prediction = r.json()["prediction"]
        assert len(prediction) == len(model.rows), (form, prediction)
        if model.task == "regression":
            assert prediction == pytest.approx(model.expected, rel=1e-6), form
        else:
            assert [_label_of(p) for p in prediction] == model.expected, form
        if flavour == "custom":
            assert [set(p) for p in prediction] == [{"label", "score", "band"}] * 3
        uuids[form] = r.json()["uuid"]
        assert r.headers["X-Prediction-Id"] == uuids[form]

    # A row of the wrong shape or type is a 422 naming it, never a 500 from inside the model.
    bad_row = [*model.rows[0][:-1], "not a number" if not model.tensor else None]
    if flavour == "catboost":
        bad_row = [*model.rows[0][:-1], 3]  # the category must be a text
    r = _post(platform, flavour, key, {"inputs": [bad_row]})
    assert r.status_code == 422, r.text
    r = _post(platform, flavour, key, {"inputs": [model.rows[0][:-1]]})
    assert r.status_code == 422, r.text

    with platform.client() as client:
        stored = {
            rec["predictionUuid"]: rec["metrics"]
            for rec in client.read_metrics(flavour, uuids=list(uuids.values()))["metrics"]
        }
        assert set(stored) == set(uuids.values())
        split = stored[uuids["dataframe_split"]]
        assert split["input"] == [dict(zip(model.columns, r, strict=True)) for r in model.rows]
        assert [_label_of(o) for o in split["output"]] == pytest.approx(model.expected)
        positional = stored[uuids["inputs (rows)"]]
        assert positional["output"] == split["output"]

        if flavour == "custom":
            # Its answer is a record of three columns: the label is the prediction.
            assert client.set_monitoring(flavour, output_column="label").output_column == "label"
        begin = int(time.time() * 1000)
        result = simulate(
            client,
            flavour,
            requests=TRAFFIC,
            seed=11,
            concurrency=4,
            source="reference",
            labels="reference",
            label_delay=0.0,
            access_key=key,
        )
        assert (result.ok, result.failed, result.labels_sent) == (TRAFFIC, 0, TRAFFIC), (
            result.errors
        )
        end = int(time.time() * 1000) + 1
        drift = client.drift(flavour, start_ms=begin, end_ms=end)
        assert drift["current_rows"] == TRAFFIC
        assert {c["column"] for c in drift["columns"]} == set(model.columns)
        assert drift["reference"]["target_column"] == "target"
        assert drift["verdict"]["level"] in ("ok", "warn", "drift")
        assert drift["prediction"] is not None and drift["prediction"]["current_rows"] == TRAFFIC
        # Data quality reads every flavour's inputs, a tensor model's too: traffic drawn from the
        # reference is clean, and the schema neither lacks nor adds a column.
        quality = client.quality(flavour, start_ms=begin, end_ms=end)
        for window in quality["windows"]:
            assert window["schema"] == {"unexpected_columns": [], "absent_columns": []}
            assert {c["column"] for c in window["columns"]} == set(model.columns)
            assert all(c["missing"] == 0 and c["type_violations"] == 0 for c in window["columns"])
        assert sum(w["rows"] for w in quality["windows"]) == TRAFFIC
        perf = client.performance(flavour, start_ms=begin, end_ms=end)
        assert perf["task"] == model.task
        assert sum(w["labelled"] for w in perf["windows"]) == TRAFFIC
        realised = [w["realised"] for w in perf["windows"] if w["realised"]]
        assert sum(r["count"] for r in realised) == TRAFFIC
        if model.task == "regression":
            assert all(r["r2"] > 0.8 for r in realised), realised
        else:
            assert all(r["accuracy"] > 0.8 for r in realised), realised


def _tensors(metadata: dict[str, Any], model: Flavour) -> list[tuple[str, str, np.ndarray]]:
    """The model's rows as the OIP inputs its metadata describes: one ``[N, K]`` tensor for a
    tensor signature, else a column per input (``name``, ``datatype``, values)."""
    inputs = metadata["inputs"]
    if model.tensor:
        [spec] = inputs
        return [(spec["name"], spec["datatype"], np.array(model.rows, NUMPY[spec["datatype"]]))]
    assert [spec["name"] for spec in inputs] == model.columns
    tensors = []
    for j, spec in enumerate(inputs):
        values = [row[j] for row in model.rows]
        kind = NUMPY.get(spec["datatype"], np.object_)
        tensors.append((spec["name"], spec["datatype"], np.array(values, dtype=kind)))
    return tensors


def _answer(outputs: dict[str, list[Any]], flavour: str) -> list[Any]:
    """The predicted class or value per row: the custom model's ``label`` output, else the
    one output."""
    if flavour == "custom":
        assert set(outputs) == {"label", "score", "band"}
        return outputs["label"]
    [values] = outputs.values()
    return values


def _check(answer: list[Any], model: Flavour) -> None:
    if model.task == "regression":
        assert answer == pytest.approx(model.expected, rel=1e-6)
    else:
        assert answer == model.expected


@pytest.mark.parametrize("flavour", list(TRAINERS))
def test_oip_clients_get_the_models_answer(
    flavour: str,
    flavours: dict[str, Flavour],
    deployed: tuple[RunningPlatform, dict[str, str]],
) -> None:
    platform, keys = deployed
    model = flavours[flavour]
    headers = {"Authorization": f"Bearer {keys[flavour]}"}

    # tritonclient's defaults: binary tensors both ways.
    client = triton.InferenceServerClient(platform.url.removeprefix("http://"))
    try:
        metadata = client.get_model_metadata(flavour, headers=dict(headers))
        tensors = _tensors(metadata, model)
        inputs = []
        for name, datatype, values in tensors:
            tensor = triton.InferInput(name, list(values.shape), datatype)
            tensor.set_data_from_numpy(values)
            inputs.append(tensor)
        # tritonclient adds its own headers to the dict it is given: a copy.
        result = client.infer(flavour, inputs, headers=dict(headers))
    finally:
        client.close()
    response = result.get_response()
    outputs = {}
    for output in response["outputs"]:
        values = result.as_numpy(output["name"])
        assert values is not None, output
        outputs[output["name"]] = [
            v.decode() if isinstance(v, bytes) else v for v in values.ravel().tolist()
        ]
    _check(_answer(outputs, flavour), model)
    triton_uuid = response["parameters"]["prediction_id"]

    # KServe's client, JSON tensors; a DataFrame (content type "pd") when the metadata says so.
    request = InferRequest(
        model_name=flavour,
        infer_inputs=[
            InferInput(name=n, shape=list(v.shape), datatype=d, data=v.ravel().tolist())
            for n, d, v in tensors
        ],
        parameters=metadata.get("parameters"),
    )

    async def call() -> Any:
        kserve = InferenceRESTClient(RESTConfig(protocol="v2"))
        try:
            return await kserve.infer(platform.url, request, flavour, headers=dict(headers))
        finally:
            await kserve.close()

    answered = asyncio.run(call())
    _check(_answer({o.name: list(o.data) for o in answered.outputs}, flavour), model)
    kserve_uuid = answered.parameters["prediction_id"]

    with platform.client() as modeldeck:
        page = modeldeck.read_metrics(flavour, uuids=[triton_uuid, kserve_uuid])
    records = {rec["predictionUuid"]: rec["metrics"] for rec in page["metrics"]}
    assert set(records) == {triton_uuid, kserve_uuid}
    for record in records.values():
        assert [_label_of(o) for o in record["output"]] == pytest.approx(model.expected)
