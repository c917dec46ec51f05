"""The Open Inference Protocol (KServe V2) on a real platform, both stores, driven by the clients
people already use: ``tritonclient.http`` and KServe's ``InferenceRESTClient``.

One deployment of the registered Iris model (version 1) serves the module. Every prediction
made over OIP must be recorded (read back by its UUID) and counted (Prometheus) exactly as one
made over ``/deployments/{name}/predict``; every malformed tensor must be refused with a clear
4xx in OIP's error shape and store nothing.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator
from typing import Any

import httpx
import numpy as np
import pytest
import tritonclient.http as triton
from kserve import InferenceRESTClient, InferInput, InferRequest, RESTConfig
from tritonclient.utils import InferenceServerException

from modeldeck.demo.train import FEATURES, iris_frame
from tests.conftest import Registered, RunningPlatform

pytestmark = pytest.mark.integration

NAME = "oip-iris"


@pytest.fixture(scope="module")
def iris(platform: RunningPlatform, mlflow_registry: Registered) -> Iterator[str]:
    client = platform.client()
    created = client.deploy(NAME, "iris", version=mlflow_registry.versions[0])
    client.wait(NAME, timeout=120)
    yield created["access_key"]
    client.delete(NAME)


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


@pytest.fixture
def triton_client(platform: RunningPlatform) -> Iterator[triton.InferenceServerClient]:
    client = triton.InferenceServerClient(platform.url.removeprefix("http://"))
    yield client
    client.close()


def rows(n: int) -> np.ndarray:
    X, _ = iris_frame()
    return X[FEATURES].to_numpy(dtype=np.float64)[:n]


def predict_path(platform: RunningPlatform, key: str, data: np.ndarray) -> list[Any]:
    """What ``/deployments/{name}/predict`` answers for the same rows."""
    r = httpx.post(
        f"{platform.url}/deployments/{NAME}/predict",
        json={"inputs": data.tolist()},
        headers=auth(key),
        timeout=30,
    )
    assert r.status_code == 200, r.text
    return r.json()["prediction"]  # type: ignore[no-any-return]


def recorded(platform: RunningPlatform, uuids: list[str]) -> list[dict[str, Any]]:
    page = platform.client().read_metrics_page(NAME, uuids=uuids)
    return page["metrics"]  # type: ignore[no-any-return]


def stored_count(platform: RunningPlatform) -> int:
    return len(list(platform.client().iter_metrics(NAME)))


def requests_counted(platform: RunningPlatform, code: int) -> float:
    """``modeldeck_requests_total`` of the deployment with status ``code``, all replicas."""
    text = httpx.get(f"{platform.url}/metrics", timeout=10).text
    total = 0.0
    for line in text.splitlines():
        if (
            line.startswith("modeldeck_requests_total{")
            and f'deployment="{NAME}"' in line
            and re.search(rf'code="{code}"', line)
        ):
            total += float(line.rsplit(" ", 1)[1])
    return total


def test_server_health_and_metadata(
    platform: RunningPlatform, triton_client: triton.InferenceServerClient
) -> None:
    assert triton_client.is_server_live()
    assert triton_client.is_server_ready()
    meta = triton_client.get_server_metadata()
    assert meta["name"] == "modeldeck" and meta["version"]

    async def kserve_health() -> tuple[bool, bool]:
        client = InferenceRESTClient(RESTConfig(protocol="v2"))
        try:
            return (
                await client.is_server_live(platform.url),
                await client.is_server_ready(platform.url),
            )
        finally:
            await client.close()

    assert asyncio.run(kserve_health()) == (True, True)


def test_model_metadata_comes_from_the_signature(
    iris: str, triton_client: triton.InferenceServerClient, mlflow_registry: Registered
) -> None:
    meta = triton_client.get_model_metadata(NAME, headers=auth(iris))
    assert meta["name"] == NAME
    assert meta["versions"] == [mlflow_registry.versions[0]]
    assert [(i["name"], i["datatype"], i["shape"]) for i in meta["inputs"]] == [
        (f, "FP64", [-1]) for f in FEATURES
    ]
    assert [(o["name"], o["datatype"]) for o in meta["outputs"]] == [("predict", "INT64")]
    assert meta["parameters"] == {"content_type": "pd"}
    same = triton_client.get_model_metadata(
        NAME, model_version=mlflow_registry.versions[0], headers=auth(iris)
    )
    assert same == meta
    with pytest.raises(InferenceServerException, match="serves version"):
        triton_client.get_model_metadata(
            NAME, model_version=mlflow_registry.versions[1], headers=auth(iris)
        )
    with pytest.raises(InferenceServerException, match="access key"):
        triton_client.get_model_metadata(NAME)


def test_model_readiness_needs_the_access_key(
    platform: RunningPlatform, iris: str, triton_client: triton.InferenceServerClient
) -> None:
    assert triton_client.is_model_ready(NAME, headers=auth(iris))
    assert not triton_client.is_model_ready(NAME)  # 401 without the key
    assert not triton_client.is_model_ready("no-such-model", headers=auth(iris))

    async def kserve_ready() -> bool:
        client = InferenceRESTClient(RESTConfig(protocol="v2"))
        try:
            return await client.is_model_ready(platform.url, NAME, headers=auth(iris))
        finally:
            await client.close()

    assert asyncio.run(kserve_ready())


def test_tritonclient_infers_binary_columns_recorded_and_counted(
    platform: RunningPlatform, iris: str, triton_client: triton.InferenceServerClient
) -> None:
    """tritonclient's defaults: binary tensors in and out, a column per input; the answer is
    the predict path's, and the prediction is stored under the UUID the answer carries."""
    data = rows(5)
    inputs = []
    for j, feature in enumerate(FEATURES):
        tensor = triton.InferInput(feature, [len(data)], "FP64")
        tensor.set_data_from_numpy(data[:, j].copy())  # binary_data=True by default
        inputs.append(tensor)
    before = requests_counted(platform, 200)
    result = triton_client.infer(NAME, inputs, headers=auth(iris), request_id="req-1")
    assert requests_counted(platform, 200) == before + 1
    labels = result.as_numpy("predict")
    assert labels is not None and labels.dtype == np.int64
    assert labels.tolist() == predict_path(platform, iris, data)
    response = result.get_response()
    # No outputs named: tritonclient asked for them in binary, and got them so.
    assert response["outputs"][0]["parameters"] == {"binary_data_size": 5 * 8}
    assert response["id"] == "req-1"
    assert response["model_name"] == NAME
    uuid = response["parameters"]["prediction_id"]
    [record] = recorded(platform, [uuid])
    sent = [dict(zip(FEATURES, r, strict=True)) for r in data.tolist()]
    assert record["metrics"]["input"] == sent
    assert record["metrics"]["output"] == labels.tolist()


def test_tritonclient_rows_as_one_json_tensor(
    platform: RunningPlatform,
    iris: str,
    triton_client: triton.InferenceServerClient,
    mlflow_registry: Registered,
) -> None:
    """One [N, 4] FP32 tensor in JSON is a batch of rows in signature order; the versioned
    route answers; no ``id`` sent: the prediction's UUID is the answer's id."""
    data = rows(3).astype(np.float32)
    tensor = triton.InferInput("input-0", list(data.shape), "FP32")
    tensor.set_data_from_numpy(data, binary_data=False)
    result = triton_client.infer(
        NAME,
        [tensor],
        model_version=mlflow_registry.versions[0],
        outputs=[triton.InferRequestedOutput("predict", binary_data=False)],
        headers=auth(iris),
    )
    response = result.get_response()
    assert response["id"] == response["parameters"]["prediction_id"]
    assert response["outputs"][0]["shape"] == [3]
    assert result.as_numpy("predict").tolist() == predict_path(
        platform, iris, data.astype(np.float64)
    )
    assert len(recorded(platform, [response["id"]])) == 1


def test_kserve_client_with_pandas_content_type(platform: RunningPlatform, iris: str) -> None:
    data = rows(2)
    inputs = [
        InferInput(name=f, shape=[2], datatype="FP64", data=data[:, j].tolist())
        for j, f in enumerate(FEATURES)
    ]
    request = InferRequest(
        model_name=NAME,
        infer_inputs=inputs,
        request_id="kserve-1",
        parameters={"content_type": "pd"},
    )
    # The same rows as one [2, 4] tensor, without a content type: rows in signature order.
    as_rows = InferRequest(
        model_name=NAME,
        infer_inputs=[
            InferInput(name="input-0", shape=[2, 4], datatype="FP64", data=data.ravel().tolist())
        ],
    )
    headers: dict[str, str] = {}

    async def call() -> tuple[Any, Any]:
        client = InferenceRESTClient(RESTConfig(protocol="v2"))
        try:
            first = await client.infer(
                platform.url, request, NAME, headers=auth(iris), response_headers=headers
            )
            return first, await client.infer(platform.url, as_rows, NAME, headers=auth(iris))
        finally:
            await client.close()

    response, by_rows = asyncio.run(call())
    assert list(by_rows.outputs[0].data) == list(response.outputs[0].data)
    assert response.id == "kserve-1"
    [output] = response.outputs
    assert output.name == "predict" and output.datatype == "INT64"
    assert list(output.data) == predict_path(platform, iris, data)
    # The UUID where the predict path puts it too: the X-Prediction-Id header.
    uuid = headers["x-prediction-id"]
    assert response.parameters["prediction_id"] == uuid
    assert len(recorded(platform, [uuid])) == 1


def _column(name: str, datatype: str, shape: list[int], data: list[Any]) -> dict[str, Any]:
    return {"name": name, "datatype": datatype, "shape": shape, "data": data}


GOOD = [_column(f, "FP64", [1], [1.0]) for f in FEATURES]
BAD_BODIES: list[tuple[str, Any, int, str]] = [
    ("values short of the shape", [_column(FEATURES[0], "FP64", [2], [1.0]), *GOOD[1:]], 422,
     "has 1 values; shape [2] holds 2"),
    ("a datatype the column does not take", [_column(FEATURES[0], "BYTES", [1], ["a"]),
     *GOOD[1:]], 422, "is BYTES; the model's column"),
    ("a value of another datatype", [_column(FEATURES[0], "FP64", [1], ["x"]), *GOOD[1:]],
     422, "is FP64 but its value 0"),
    ("an integer out of its range", [_column(FEATURES[0], "INT8", [1], [300]), *GOOD[1:]],
     422, "is INT8 but its value 0 is 300"),
    ("no such datatype", [_column(FEATURES[0], "FP128", [1], [1.0]), *GOOD[1:]], 400,
     "datatype 'FP128' is not one of"),
    ("columns of unequal length", [_column(FEATURES[0], "FP64", [2], [1.0, 2.0]), *GOOD[1:]],
     422, "has 1 rows"),
    ("a column of two dimensions", [_column(FEATURES[0], "FP64", [1, 2], [1.0, 2.0]),
     *GOOD[1:]], 422, "must be [N] or [N, 1]"),
    ("a missing column", GOOD[1:], 422, "missing input column"),
    ("rows of the wrong width", [_column("x", "FP64", [1, 3], [1.0, 2.0, 3.0])], 422,
     "row 0 has 3 values; the model expects 4"),
    ("no inputs", [], 400, "'inputs' must be a non-empty list"),
]  # fmt: skip


def test_bad_tensors_get_a_clear_error_and_store_nothing(
    platform: RunningPlatform, iris: str
) -> None:
    url = f"{platform.url}/v2/models/{NAME}/infer"
    stored = stored_count(platform)
    counted = requests_counted(platform, 422)
    for what, inputs, status, message in BAD_BODIES:
        r = httpx.post(url, json={"inputs": inputs}, headers=auth(iris), timeout=30)
        assert r.status_code == status, (what, r.text)
        body = r.json()
        assert isinstance(body["error"], str) and message in body["error"], (what, body)
    # Binary data the header does not account for.
    r = httpx.post(
        url,
        content=b'{"inputs": []}',
        headers={**auth(iris), "Inference-Header-Content-Length": "99"},
        timeout=30,
    )
    assert r.status_code == 400 and "Inference-Header-Content-Length" in r.json()["error"]
    assert stored_count(platform) == stored
    refused = sum(1 for _, _, status, _ in BAD_BODIES if status == 422)
    assert requests_counted(platform, 422) == counted + refused  # counted like predict's


def test_errors_have_the_oip_shape(platform: RunningPlatform, iris: str) -> None:
    body = {"inputs": GOOD}
    missing_key = httpx.post(f"{platform.url}/v2/models/{NAME}/infer", json=body, timeout=30)
    assert missing_key.status_code == 401
    assert missing_key.json()["code"] == "unauthorized"
    assert "access key" in missing_key.json()["error"]
    unknown = httpx.post(
        f"{platform.url}/v2/models/nope/infer", json=body, headers=auth(iris), timeout=30
    )
    assert unknown.status_code == 404 and isinstance(unknown.json()["error"], str)
    ok = httpx.post(
        f"{platform.url}/v2/models/{NAME}/infer", json=body, headers=auth(iris), timeout=30
    )
    assert ok.status_code == 200, ok.text
    assert ok.headers["x-prediction-id"] == ok.json()["parameters"]["prediction_id"]
