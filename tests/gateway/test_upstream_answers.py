"""What the gateway makes of an answer that is not a replica's: a plain-text 5xx (Ray Serve's
proxy answers "Internal Server Error" when the replica died with the request in it) becomes
the one JSON error shape, never passed through as text."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from aiohttp import web

from modeldeck.config import Settings
from modeldeck.errors import ModelCrashed
from modeldeck.gateway.forward import Gateway
from modeldeck.gateway.routes import RouteEntry
from modeldeck.runtimes.base import DeploymentSpec
from modeldeck.runtimes.local import Replica

ROUTE = RouteEntry(name="iris", auth_enabled=False, key_hash=None, crn="", version="1")


class OneReplica:
    def __init__(self, replica: Replica) -> None:
        self.replica = replica

    def pick(self, name: str, exclude: Any = None, limit: int | None = None) -> Replica | None:
        return None if exclude is self.replica else self.replica

    def serving(self, name: str) -> bool:
        return True

    def process(self, replica: Replica) -> None:
        return None

    async def crashed(self, replica: Replica, proc: Any, within: float = 1.0) -> int | None:
        return None

    def report_failure(self, replica: Replica, error: str) -> None:
        raise AssertionError(error)


async def _forward(answer: web.Response) -> Any:
    async def predict(request: web.Request) -> web.Response:
        return answer

    app = web.Application()
    app.router.add_post("/predict", predict)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    spec = DeploymentSpec(name="iris", model_uri="m", model_version="1", replicas=1)
    replica = Replica(deployment="iris", index=0, spec=spec, status="ready", port=port)
    gateway = Gateway(Settings(), None, OneReplica(replica), None, None)  # type: ignore[arg-type]
    await gateway.startup()
    try:
        return await gateway.forward(ROUTE, b"{}")
    finally:
        await gateway.shutdown()
        await runner.cleanup()


def test_a_plain_text_500_becomes_a_json_error() -> None:
    with pytest.raises(ModelCrashed) as raised:
        asyncio.run(_forward(web.Response(status=500, text="Internal Server Error")))
    assert raised.value.status_code == 502
    assert "Internal Server Error" in str(raised.value)
    assert raised.value.details == {"deployment": "iris", "status": 500}


def test_a_replicas_json_500_passes_through() -> None:
    error = {"error": {"code": "model_error", "message": "boom", "details": {}}}
    answer = asyncio.run(_forward(web.json_response(error, status=500)))
    assert answer.status == 500 and b"model_error" in answer.body
