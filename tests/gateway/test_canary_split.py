"""The gateway's canary routing, in process against two tiny HTTP replicas: ``percent`` of the
requests go to the candidate, and shadow copies never delay an answer, are bounded, and are
counted under the candidate's version."""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

from aiohttp import web

from modeldeck.config import Settings
from modeldeck.gateway.forward import SHADOW_CONCURRENCY, Gateway
from modeldeck.gateway.routes import RouteEntry
from modeldeck.runtimes.base import DeploymentSpec
from modeldeck.runtimes.local import Replica

ROUTE = RouteEntry(name="iris", auth_enabled=False, key_hash=None, crn="", version="1")


class FakeRuntime:
    def __init__(self, stable: Replica, candidate: Replica) -> None:
        self.stable, self.candidate = stable, candidate

    def pick(self, name: str, exclude: Any = None, limit: int | None = None) -> Replica | None:
        return None if self.stable is exclude else self.stable

    def pick_candidate(self, name: str, limit: int | None = None) -> Replica | None:
        ok = limit is None or self.candidate.inflight < limit
        return self.candidate if ok else None

    def serving(self, name: str) -> bool:
        return True

    def process(self, replica: Replica) -> None:
        return None

    async def crashed(self, replica: Replica, proc: Any, within: float = 1.0) -> int | None:
        return None

    def report_failure(self, replica: Replica, error: str) -> None:
        raise AssertionError(error)


class FakeCanaries:
    def __init__(self, mode: str, percent: float) -> None:
        self.mode, self.percent = mode, percent

    def routing(self, name: str) -> tuple[str, float]:
        return self.mode, self.percent


async def replica(
    version: str, index: int, gate: asyncio.Event | None = None
) -> tuple[Replica, web.AppRunner]:
    async def predict(request: web.Request) -> web.Response:
        if gate is not None:
            await gate.wait()
        return web.json_response({"prediction": [0], "uuid": version})

    app = web.Application()
    app.router.add_post("/predict", predict)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    spec = DeploymentSpec(name="iris", model_uri="m", model_version=version, replicas=1)
    return Replica(deployment="iris", index=index, spec=spec, status="ready", port=port), runner


async def _setup(
    mode: str, percent: float, gate: asyncio.Event | None = None
) -> tuple[Gateway, list[Any], list[web.AppRunner]]:
    stable, r1 = await replica("1", 0)
    candidate, r2 = await replica("2", 1, gate)
    observed: list[Any] = []
    gateway = Gateway(
        Settings(),
        None,  # type: ignore[arg-type]
        FakeRuntime(stable, candidate),  # type: ignore[arg-type]
        FakeCanaries(mode, percent),  # type: ignore[arg-type]
        lambda *args: observed.append(args),
    )
    await gateway.startup()
    return gateway, observed, [r1, r2]


def test_a_canary_gets_its_percent_of_the_requests_and_answers_name_it() -> None:
    async def run() -> Counter[str]:
        gateway, _, runners = await _setup("canary", 25)
        try:
            answers = [await gateway.forward(ROUTE, b"{}") for _ in range(100)]
        finally:
            await gateway.shutdown()
            for r in runners:
                await r.cleanup()
        assert all(a.headers["x-modeldeck-version"] == a.version for a in answers)
        return Counter(a.version for a in answers if a.version)

    assert asyncio.run(run()) == {"1": 75, "2": 25}


def test_shadow_copies_are_bounded_and_never_delay_the_answer() -> None:
    async def run() -> None:
        gate = asyncio.Event()  # the candidate answers nothing until it is set
        gateway, observed, runners = await _setup("shadow", 0, gate)
        try:
            answers = await asyncio.wait_for(
                asyncio.gather(*(gateway.forward(ROUTE, b"{}") for _ in range(20))), timeout=5
            )
            assert {a.version for a in answers} == {"1"}  # every answer is the stable one's
            assert len(gateway._shadows) == SHADOW_CONCURRENCY
            assert gateway.shadow_dropped == 20 - SHADOW_CONCURRENCY
            gate.set()
            for _ in range(100):
                if not gateway._shadows:
                    break
                await asyncio.sleep(0.02)
            assert len(observed) == SHADOW_CONCURRENCY
            # (route, replica, status, seconds, request bytes, response bytes, version)
            assert {(o[1], o[2], o[6]) for o in observed} == {(1, 200, "2")}
        finally:
            await gateway.shutdown()
            for r in runners:
                await r.cleanup()

    asyncio.run(run())
