"""Every Open Inference Protocol route answers errors in OIP's shape, ``{"error": "<message>"}``
with modeldeck's ``code`` and ``details`` beside it (in process, a real store and registry)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from modeldeck.api.app import create_app
from modeldeck.config import Settings
from tests.conftest import Registered


@pytest.fixture(scope="module")
def client(
    mlflow_registry: Registered, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[TestClient]:
    data_dir: Path = tmp_path_factory.mktemp("oip-shape")
    settings = Settings(
        data_dir=data_dir, mlflow_tracking_uri=mlflow_registry.tracking_uri, api_key="mdk_oip"
    )
    with TestClient(create_app(settings), raise_server_exceptions=False) as c:
        yield c


def oip_routes(client: TestClient) -> list[tuple[str, str]]:
    spec = client.get("/openapi.json").json()
    return [
        (method.upper(), path)
        for path, item in spec["paths"].items()
        if path.startswith("/v2/models/")
        for method in item
    ]


def test_the_oip_routes_are_documented(client: TestClient) -> None:
    assert sorted(oip_routes(client)) == sorted(
        [
            ("GET", "/v2/models/{name}"),
            ("GET", "/v2/models/{name}/versions/{version}"),
            ("GET", "/v2/models/{name}/ready"),
            ("GET", "/v2/models/{name}/versions/{version}/ready"),
            ("POST", "/v2/models/{name}/infer"),
            ("POST", "/v2/models/{name}/versions/{version}/infer"),
        ]
    )


def test_an_unknown_model_is_a_404_in_oip_shape_on_every_route(client: TestClient) -> None:
    for method, path in oip_routes(client):
        url = path.replace("{name}", "no-such-model").replace("{version}", "1")
        response = client.request(method, url, json={"inputs": []})
        assert response.status_code == 404, (method, path, response.text)
        body = response.json()
        assert set(body) == {"error", "code", "details"}, (method, path, body)
        assert isinstance(body["error"], str) and "no-such-model" in body["error"]
        assert body["code"] == "not_found"


def test_server_health_needs_no_key(client: TestClient) -> None:
    assert client.get("/v2/health/live").json() == {"live": True}
    assert client.get("/v2/health/ready").json() == {"ready": True}
    assert client.get("/v2").json()["name"] == "modeldeck"
