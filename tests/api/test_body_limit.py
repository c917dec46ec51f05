"""The control plane refuses a JSON body over ``max_api_body_bytes`` before holding it."""

from __future__ import annotations

from collections.abc import Iterator

import orjson
import pytest
from fastapi.testclient import TestClient

from modeldeck.api.app import create_app
from modeldeck.config import Settings
from tests.api.test_error_shape import assert_error_shape
from tests.conftest import Registered

ADMIN = {"Authorization": "Bearer mdk_body_limit", "Content-Type": "application/json"}
LIMIT = 4096


@pytest.fixture(scope="module")
def client(
    mlflow_registry: Registered, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[TestClient]:
    settings = Settings(
        data_dir=tmp_path_factory.mktemp("body-limit"),
        mlflow_tracking_uri=mlflow_registry.tracking_uri,
        api_key="mdk_body_limit",
        max_api_body_bytes=LIMIT,
    )
    with TestClient(create_app(settings), raise_server_exceptions=False) as c:
        yield c


def _batch(size: int) -> bytes:
    """A ``kind: batch`` deployment request padded with an environment to ``size`` bytes."""
    body = {"name": "padded", "kind": "batch", "environment": {"PAD": ""}}
    body["environment"]["PAD"] = "x" * (size - len(orjson.dumps(body)))
    raw = orjson.dumps(body)
    assert len(raw) == size
    return raw


def _deployments(client: TestClient) -> list[str]:
    r = client.get("/api/v1/deployments", headers=ADMIN)
    assert r.status_code == 200, r.text
    return [d["name"] for d in r.json()]


def test_a_declared_length_over_the_limit_is_refused_and_stores_nothing(
    client: TestClient,
) -> None:
    r = client.post("/api/v1/deployments", content=_batch(LIMIT + 1), headers=ADMIN)
    error = assert_error_shape(r, 413, "payload_too_large")
    assert error["details"] == {"limit_bytes": LIMIT}
    assert f"is {LIMIT + 1} bytes" in error["message"]
    assert "MODELDECK_MAX_API_BODY_BYTES" in error["message"]
    assert "padded" not in _deployments(client)


def test_a_streamed_body_over_the_limit_is_refused(client: TestClient) -> None:
    raw = _batch(LIMIT * 3)

    def chunks() -> Iterator[bytes]:  # no Content-Length: chunked transfer
        for start in range(0, len(raw), 1000):
            yield raw[start : start + 1000]

    r = client.post("/api/v1/deployments", content=chunks(), headers=ADMIN)
    error = assert_error_shape(r, 413, "payload_too_large")
    assert "is larger than" in error["message"]
    assert "padded" not in _deployments(client)


def test_a_body_at_the_limit_is_accepted(client: TestClient) -> None:
    r = client.post("/api/v1/deployments", content=_batch(LIMIT), headers=ADMIN)
    assert r.status_code == 201, r.text
    assert "padded" in _deployments(client)
