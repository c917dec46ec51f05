"""Every route answers errors in one JSON shape (in process, with a real store and registry)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from modeldeck.api.app import create_app
from modeldeck.config import Settings
from tests.conftest import Registered

API_KEY = "mdk_shape_test"


@pytest.fixture(scope="module")
def client(
    mlflow_registry: Registered, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[TestClient]:
    data_dir: Path = tmp_path_factory.mktemp("shape")
    settings = Settings(
        data_dir=data_dir, mlflow_tracking_uri=mlflow_registry.tracking_uri, api_key=API_KEY
    )
    with TestClient(create_app(settings), raise_server_exceptions=False) as c:
        yield c


AUTH = {"Authorization": f"Bearer {API_KEY}"}


def assert_error_shape(response: Any, status: int, code: str | None = None) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"}, body
    error = body["error"]
    assert set(error) == {"code", "message", "details"}
    assert isinstance(error["message"], str) and error["message"]
    assert isinstance(error["details"], dict)
    if code:
        assert error["code"] == code
    return error  # type: ignore[no-any-return]


# The API's index: where the API, its docs and the dashboard are (nothing else), for anyone.
PUBLIC_ROUTES = {("GET", "/api/v1")}


def control_routes(client: TestClient) -> list[tuple[str, str]]:
    spec = client.get("/openapi.json").json()
    routes = []
    for path, item in spec["paths"].items():
        if not path.startswith(("/api/v1", "/api/v2")):
            continue
        for method in item:
            if (method.upper(), path) not in PUBLIC_ROUTES:
                routes.append((method.upper(), path))
    return routes


def test_the_api_index_is_the_one_public_control_route(client: TestClient) -> None:
    r = client.get("/api/v1")
    assert r.status_code == 200
    assert set(r.json()) == {
        "name", "version", "api", "openapi", "docs", "redoc", "dashboard", "authentication"
    }  # fmt: skip


def _fill(path: str) -> str:
    return (
        path.replace("{name}", "no-such-thing")
        .replace("{deployment}", "no-such-thing")
        .replace("{version}", "1")
        .replace("{key_id}", "no-such-key")
        .replace("{project_id}", "no-such-project")
        .replace("{model_id}", "no-such-thing")
        .replace("{build_id}", "no-such-build")
        .replace("{deployment_id}", "no-such-deployment")
    )


def test_every_control_route_needs_the_api_key(client: TestClient) -> None:
    routes = control_routes(client)
    assert len(routes) >= 12
    for method, path in routes:
        r = client.request(method, _fill(path), json={})
        assert_error_shape(r, 401, "unauthorized")
        r = client.request(method, _fill(path), json={}, headers={"Authorization": "Bearer nope"})
        error = assert_error_shape(r, 401, "unauthorized")
        assert "nope" not in error["message"]


VALID_BODIES = {
    "/scale": {"replicas": 1},
    "/metrics/delayed": {"prediction_uuid": "00000000-0000-4000-8000-000000000000", "metrics": {}},
    "/metrics/aggregate": {"metrics": {}, "start_timestamp_ms": 0, "end_timestamp_ms": 1},
    "/predictions": {"predictions": [{}]},
    "/metrics/delayed/batch": {
        "items": [{"prediction_uuid": "00000000-0000-4000-8000-000000000000", "metrics": {}}]
    },
    "/monitoring": {},
    "/aliases/{alias}": {"version": 1},
    "/builds": {},
    "/canary": {"version": "2"},
    "/deployments": {},
    "/rules/{deployment}/{name}": {
        "name": "r", "deployment": "no-such-thing", "metric": "technical.requests",
        "comparison": "gt", "threshold": 1,
    },
}  # fmt: skip
VALID_QUERIES = {"/reference": {"filename": "data.csv"}}


def test_unknown_deployments_and_models_are_404_everywhere(client: TestClient) -> None:
    for method, path in control_routes(client):
        if not any(p in path for p in ("{name}", "{key_id}", "{model_id}")):
            continue
        body = next((b for suffix, b in VALID_BODIES.items() if path.endswith(suffix)), None)
        query = next((q for suffix, q in VALID_QUERIES.items() if path.endswith(suffix)), None)
        if method == "PUT" and path.endswith("/reference"):
            r = client.put(_fill(path), params=query, content=b"a\n1\n", headers=AUTH)
        else:
            r = client.request(method, _fill(path), json=body, params=query, headers=AUTH)
        assert_error_shape(r, 404, "not_found")


@pytest.mark.parametrize(
    ("method", "path", "kwargs", "status", "code"),
    [
        ("GET", "/nowhere", {}, 404, "not_found"),
        ("PUT", "/api/v1/deployments", {"headers": AUTH}, 405, "method_not_allowed"),
        (
            "POST",
            "/api/v1/deployments",
            {"headers": {**AUTH, "Content-Type": "application/json"}, "content": b"{bad"},
            400,
            "invalid_json",
        ),
        (
            "POST",
            "/api/v1/deployments",
            {"headers": {**AUTH, "Content-Type": "text/plain"}, "content": b"{}"},
            415,
            "unsupported_media_type",
        ),
        (
            "POST",
            "/api/v1/deployments",
            {"headers": AUTH, "json": {"name": "x"}},
            422,
            "validation_failed",
        ),
        (
            "POST",
            "/api/v1/deployments",
            {"headers": AUTH, "json": {"name": "bad name!", "model": "iris"}},
            422,
            "validation_failed",
        ),
        (
            "POST",
            "/api/v1/deployments",
            {"headers": AUTH, "json": {"name": "x", "model": "iris", "replicas": 0}},
            422,
            "validation_failed",
        ),
        (
            "POST",
            "/api/v1/deployments",
            {"headers": AUTH, "json": {"name": "x", "model": "iris", "surprise": 1}},
            422,
            "validation_failed",
        ),
        (
            "POST",
            "/api/v1/deployments",
            {"headers": AUTH, "json": {"name": "x", "model": "nope"}},
            404,
            "not_found",
        ),
        (
            "POST",
            "/api/v1/deployments",
            {"headers": AUTH, "json": {"name": "x", "model": "iris", "version": "42"}},
            404,
            "not_found",
        ),
        (
            "POST",
            "/api/v1/deployments",
            {"headers": AUTH, "json": {"name": "x", "model": "iris", "alias": "gone"}},
            404,
            "not_found",
        ),
        (
            "POST",
            "/api/v1/deployments",
            {"headers": AUTH, "json": {"name": "x", "model": "iris", "version": "one"}},
            400,
            "bad_request",
        ),
        ("GET", "/api/v1/models/nope", {"headers": AUTH}, 404, "not_found"),
        (
            "POST",
            "/api/v2/projects/p/models",
            {"headers": AUTH, "json": {}},
            422,
            "validation_failed",
        ),
        (
            "POST",
            "/api/v2/projects/p/models",
            {"headers": AUTH, "json": {"name": "m", "auto_build_config": {"cpu": 1}}},
            422,
            "validation_failed",
        ),
        (
            "GET",
            "/api/v2/projects/p/models",
            {"headers": AUTH, "params": {"search_filter": "{bad"}},
            400,
            "bad_request",
        ),
        ("GET", "/api/v2/registry/models/nope", {"headers": AUTH}, 404, "not_found"),
        ("GET", "/api/v1/models/iris/versions/77", {"headers": AUTH}, 404, "not_found"),
        ("POST", "/deployments/nope/predict", {"json": {"inputs": [[1]]}}, 404, "not_found"),
        (
            "POST",
            "/deployments/nope/predict",
            {"content": b"x" * (6 * 1024 * 1024)},
            404,
            "not_found",
        ),
    ],
)
def test_error_cases_render_the_shape(
    client: TestClient, method: str, path: str, kwargs: dict[str, Any], status: int, code: str
) -> None:
    error = assert_error_shape(client.request(method, path, **kwargs), status, code)
    if status == 422:
        assert error["details"]["field"]


def test_validation_errors_name_the_field(client: TestClient) -> None:
    r = client.post(
        "/api/v1/deployments", headers=AUTH, json={"name": "x", "model": "iris", "replicas": 99}
    )
    error = assert_error_shape(r, 422, "validation_failed")
    assert error["details"]["field"] == "replicas"
    assert error["message"].startswith("replicas:")


@pytest.mark.parametrize(
    ("kwargs", "status"),
    [
        ({"content": b"{nope"}, 400),
        ({"json": ["not", "an", "object"]}, 400),
        ({"json": {"request": {"a": 1}}}, 401),
        ({"json": {"accessKey": "wrong", "request": {"a": 1}}}, 401),
        ({"json": {"accessKey": 5, "request": {"a": 1}}}, 401),
    ],
)
def test_cml_model_route_errors_carry_success_false(
    client: TestClient, kwargs: dict[str, Any], status: int
) -> None:
    r = client.post("/model", **kwargs)
    assert r.status_code == status
    body = r.json()
    assert body["success"] is False
    assert set(body["error"]) == {"code", "message", "details"}


def test_openapi_is_served_and_lists_the_model_endpoints(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    assert spec["info"]["title"] == "modeldeck"
    assert "/deployments/{name}/predict" in spec["paths"]
    assert "/model" in spec["paths"]
    health = client.get("/health").json()
    assert health["status"] == "ok"
    # Default preload: a fork server, importing or ready (never "off", "unavailable").
    assert health["replica_fork_server"] in {"warming", "ready"}
