"""A bug in a route answers the JSON error shape and leaves the connection usable, on a real
uvicorn server (the protocol ``modeldeck server`` runs); report answers survive NumPy values."""

from __future__ import annotations

import http.client
import json
import math
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import uvicorn
from fastapi import FastAPI

from modeldeck import httpserver
from modeldeck.api.app import create_app
from modeldeck.api.responses import ReportResponse
from modeldeck.config import Settings
from tests.conftest import Registered, free_port


@pytest.fixture(scope="module")
def server(
    mlflow_registry: Registered, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, int]]:
    """The platform's app, plus routes with a bug, served by uvicorn in a thread."""
    data_dir: Path = tmp_path_factory.mktemp("unhandled")
    app: FastAPI = create_app(
        Settings(data_dir=data_dir, mlflow_tracking_uri=mlflow_registry.tracking_uri)
    )

    @app.get("/bug")
    async def bug() -> dict[str, str]:
        raise RuntimeError("a bug")

    @app.get("/unserialisable")
    async def unserialisable() -> dict[str, object]:
        return {"drifted": np.bool_(True)}  # what FastAPI's pydantic serialiser refuses

    port = free_port()
    running = uvicorn.Server(
        httpserver.config(
            app, header_timeout=10, body_timeout=30, host="127.0.0.1", port=port, log_level="error"
        )
    )
    thread = threading.Thread(target=running.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not running.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the server did not start"
        time.sleep(0.05)
    try:
        yield "127.0.0.1", port
    finally:
        running.should_exit = True
        thread.join(30)


def _error(response: http.client.HTTPResponse) -> dict[str, object]:
    body = json.loads(response.read())
    assert set(body) == {"error"}
    assert set(body["error"]) == {"code", "message", "details"}
    return body["error"]  # type: ignore[no-any-return]


@pytest.mark.parametrize("path", ["/bug", "/unserialisable"])
def test_an_unhandled_error_answers_the_error_shape_and_keeps_the_connection(
    server: tuple[str, int], path: str
) -> None:
    connection = http.client.HTTPConnection(*server, timeout=30)
    try:
        for _ in range(2):  # twice over one connection, then a route that works
            connection.request("GET", path)
            response = connection.getresponse()
            assert response.status == 500
            assert response.getheader("connection", "").lower() != "close"
            assert response.getheader("x-content-type-options") == "nosniff"  # security headers
            error = _error(response)
            assert error["code"] == "internal_error" and "a bug" not in str(error["message"])
            socket = connection.sock
            assert socket is not None
        connection.request("GET", "/health")
        response = connection.getresponse()
        assert response.status == 200 and json.loads(response.read())["status"] == "ok"
        assert connection.sock is socket  # the same connection, not a new one
    finally:
        connection.close()


def test_report_responses_write_numpy_values_as_plain_json() -> None:
    body = ReportResponse(
        {
            "drifted": np.bool_(True),
            "statistic": np.float64(0.25),
            "missing": np.nan,
            "rows": np.int64(3),
            "bins": np.array([0.5, 1.5]),
            "half": np.float16(0.5),
            "infinite": math.inf,
        }
    ).body
    assert json.loads(body) == {
        "drifted": True,
        "statistic": 0.25,
        "missing": None,
        "rows": 3,
        "bins": [0.5, 1.5],
        "half": 0.5,
        "infinite": None,
    }
