"""The local runtime's rollouts, with fake replica processes: the supervisor's decisions only."""

from __future__ import annotations

import asyncio
import itertools
import socket
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from modeldeck.config import Settings
from modeldeck.runtimes.base import DeploymentSpec, RuntimeEvent
from modeldeck.runtimes.forks import WARM_WAIT_SECONDS
from modeldeck.runtimes.local import LocalRuntime, Replica, _Deployment

PIDS = itertools.count(10_000)


class FakeProc:
    def __init__(self, exit_code: int | None) -> None:
        self.pid = next(PIDS)
        self.returncode = exit_code

    def poll(self) -> int | None:
        return self.returncode


class FakeRuntime(LocalRuntime):
    """Replicas are objects: healthy when ``healthy(replica)`` says so; one whose spec
    ``broken`` matches exits at once, every time it starts."""

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings, "sqlite://")
        self.healthy: Callable[[Replica], bool] = lambda r: True
        self.broken: Callable[[DeploymentSpec], bool] = lambda spec: False
        self.events: list[RuntimeEvent] = []

        async def listen(event: RuntimeEvent) -> None:
            self.events.append(event)

        self._listener = listen

    def _spawn(self, replica: Replica, *, wait_for_forks: bool = True) -> None:
        if replica.started_at is not None:
            replica.restarts += 1
        replica.proc = FakeProc(1 if self.broken(replica.spec) else None)  # type: ignore[assignment]
        replica.port = 1
        replica.status = "starting"
        replica.started_at = time.time()
        replica.failed_checks = 0
        replica.ever_ready = False

    async def _healthy(self, replica: Replica) -> bool:
        return self.healthy(replica)

    async def _terminate(self, replica: Replica, grace: float = 10.0) -> None:
        if replica.proc is not None and replica.proc.poll() is None:
            replica.proc.returncode = -15


def spec(version: str, replicas: int = 2) -> DeploymentSpec:
    return DeploymentSpec(
        name="d", model_uri=f"models:/m/{version}", model_version=version, replicas=replicas
    )


def runtime(tmp_path: Path) -> FakeRuntime:
    return FakeRuntime(
        Settings(data_dir=tmp_path, replica_max_start_failures=2, restart_backoff_max_seconds=0.0)
    )


def picked_versions(rt: FakeRuntime, n: int = 8) -> set[str]:
    picks = [rt.pick("d") for _ in range(n)]
    return {p.spec.model_version for p in picks if p is not None}


def test_traffic_moves_only_once_every_new_replica_is_healthy(tmp_path: Path) -> None:
    async def run() -> None:
        rt = runtime(tmp_path)
        await rt.deploy(spec("1"))
        await rt._tick()
        assert picked_versions(rt) == {"1"}
        rt.healthy = lambda r: r.spec.model_version == "1"
        await rt.rollout(spec("2"))
        assert rt.rolling_out("d") == "2"
        states = {s.index: s.version for s in rt.replicas("d")}
        assert states == {0: "1", 1: "1", 2: "2", 3: "2"}, "new replicas get indexes of their own"
        await rt._tick()
        assert picked_versions(rt) == {"1"}
        rt.healthy = lambda r: r.spec.model_version == "1" or r.index == 2
        await rt._tick()
        assert picked_versions(rt) == {"1"}, "one healthy new replica of two takes no traffic"
        old = [r for r in rt._deployments["d"].replicas]
        old[0].inflight = 1  # a request still running on the old version
        rt.healthy = lambda r: True
        await rt._tick()
        assert picked_versions(rt) == {"2"}
        assert rt.rolling_out("d") is None
        completed = [e for e in rt.events if e.rollout == "completed"]
        assert [(e.version, e.status) for e in completed] == [("2", "deployed")]
        await asyncio.sleep(0.2)
        assert old[0].status == "draining" and old[0].proc is not None
        assert old[0].proc.poll() is None, "a replica with a request in flight is not stopped"
        old[0].inflight = 0
        await asyncio.wait_for(asyncio.gather(*rt._drains), 5)
        assert all(r.status == "stopped" and r.proc and r.proc.poll() == -15 for r in old)
        assert {s.index for s in rt.replicas("d")} == {2, 3}
        assert {s.index for s in rt.events[-1].replicas} == {2, 3}

        await rt.rollout(spec("3"))  # the next rollout takes the freed indexes again
        assert {s.index for s in rt.replicas("d") if s.version == "3"} == {0, 1}

    asyncio.run(run())


def test_a_new_version_that_cannot_start_never_takes_traffic(tmp_path: Path) -> None:
    async def run() -> None:
        rt = runtime(tmp_path)
        await rt.deploy(spec("1"))
        await rt._tick()
        rt.broken = lambda spec: spec.model_version == "2"
        await rt.rollout(spec("2"))
        for _ in range(10):
            await rt._tick()
            assert picked_versions(rt) == {"1"}
            if rt.rolling_out("d") is None:
                break
        assert rt.rolling_out("d") is None, "the failed rollout is abandoned"
        failed = [e for e in rt.events if e.rollout == "failed"]
        assert len(failed) == 1 and failed[0].version == "2"
        assert "failed to start 2 times" in failed[0].message
        assert failed[0].status == "deployed", "the serving version's status stands"
        assert rt.serving("d")
        assert {s.version for s in rt.replicas("d")} == {"1"}
        assert rt._deployments["d"].status == "deployed"

    asyncio.run(run())


def test_scale_during_a_rollout_applies_to_both_versions(tmp_path: Path) -> None:
    async def run() -> None:
        rt = runtime(tmp_path)
        await rt.deploy(spec("1"))
        await rt._tick()
        rt.healthy = lambda r: r.spec.model_version == "1"
        await rt.rollout(spec("2"))
        await rt.scale("d", 3)
        versions = [s.version for s in rt.replicas("d")]
        assert versions.count("1") == 3 and versions.count("2") == 3
        assert len({s.index for s in rt.replicas("d")}) == 6
        rt.healthy = lambda r: True
        await rt._tick()
        await rt._tick()
        assert picked_versions(rt, 12) == {"2"}
        assert len(rt._deployments["d"].replicas) == 3

    asyncio.run(run())


def test_scale_down_drains_the_replicas_it_takes_away(tmp_path: Path) -> None:
    """A replica scaled away takes no new request at once, finishes the ones in flight, and
    only then stops; ``scale`` returns once it has."""

    async def run() -> None:
        rt = runtime(tmp_path)
        await rt.deploy(spec("1", replicas=3))
        await rt._tick()
        dep = rt._deployments["d"]
        busy = dep.replicas[2]
        busy.inflight = 1
        scaling = asyncio.create_task(rt.scale("d", 1))
        await asyncio.sleep(0.2)
        assert not scaling.done(), "waits for the request in flight"
        assert busy.status == "draining" and busy.proc is not None
        assert busy.proc.poll() is None, "not stopped while a request is in flight"
        assert {rt.pick("d").index for _ in range(6)} == {0}  # type: ignore[union-attr]
        busy.inflight = 0
        await asyncio.wait_for(scaling, 5)
        assert busy.status == "stopped" and busy.proc.poll() == -15
        assert [s.index for s in rt.replicas("d")] == [0]
        assert [s.index for s in rt.events[-1].replicas] == [0]

    asyncio.run(run())


def test_the_runtime_tells_how_new_replicas_start(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``GET /health``'s ``replica_fork_server``: no preload, no fork server; one that failed
    to start is ``unavailable`` and forks nothing (replicas then start as interpreters)."""
    assert (
        LocalRuntime(Settings(data_dir=tmp_path, replica_preload=[]), "").replica_fork_server
        == "off"
    )
    runtime = LocalRuntime(Settings(data_dir=tmp_path, replica_preload=["json"]), "")
    assert runtime.replica_fork_server == "warming"
    forks = runtime._forks
    assert forks is not None
    # The probe process cannot start (the context is the process-wide one: put it back after).
    monkeypatch.setattr(forks._context, "Process", None)
    forks.warm()
    assert runtime.replica_fork_server == "unavailable"
    with socket.socket() as sock:
        assert forks.start(["--config", "{}"], sock, tmp_path / "replica.log") is None


class WarmingForks:
    """A fork server that is warm once the test says so."""

    def __init__(self, since: float) -> None:
        self.warm = False
        self.warming_since = since

    @property
    def state(self) -> str:
        return "ready" if self.warm else "warming"


def test_a_first_start_waits_for_the_warming_fork_server(tmp_path: Path) -> None:
    """A replica's first start waits (up to ``WARM_WAIT_SECONDS``) for a fork server that is
    importing, instead of starting an interpreter that makes the same imports beside it; a
    restart, or a wait past the limit, starts at once."""
    rt = LocalRuntime(Settings(data_dir=tmp_path), "sqlite://")
    rt._forks = WarmingForks(time.monotonic())  # type: ignore[assignment]
    seen: list[str] = []

    def start(replica: Replica) -> tuple[FakeProc, bool]:
        seen.append(rt.replica_fork_server)
        return FakeProc(None), rt.replica_fork_server == "ready"

    rt._start_process = start  # type: ignore[assignment,method-assign]

    async def emitted(*_: object, **__: object) -> None:
        pass

    rt._emit = emitted  # type: ignore[method-assign]
    dep = _Deployment(spec=spec("1", replicas=1))
    first = Replica(deployment="d", index=0, spec=dep.spec)
    rt._spawn(first)
    assert (first.proc, first.status, first.awaits_fork_server) == (None, "starting", True)
    asyncio.run(rt._check(dep, first))
    assert first.proc is None and seen == [], "started before the fork server was warm"
    rt._forks.warm = True  # type: ignore[union-attr]
    asyncio.run(rt._check(dep, first))
    assert first.proc is not None and seen == ["ready"] and not first.awaits_fork_server

    rt._forks = WarmingForks(time.monotonic())  # type: ignore[assignment]
    rt._spawn(first)  # a restart: at once, as an interpreter
    assert seen == ["ready", "warming"] and first.restarts == 1

    late = Replica(deployment="d", index=1, spec=dep.spec)
    rt._forks = WarmingForks(time.monotonic() - WARM_WAIT_SECONDS)  # type: ignore[assignment]
    rt._spawn(late)
    assert late.proc is not None and seen[-1] == "warming", "waited past the limit"

    waiting = Replica(deployment="d", index=3, spec=dep.spec)
    rt._forks = WarmingForks(time.monotonic())  # type: ignore[assignment]
    rt._spawn(waiting)
    assert waiting.proc is None
    waiting.next_start_at = time.monotonic() - 1  # the wait ran out, the server still warms
    asyncio.run(rt._check(dep, waiting))
    assert waiting.proc is not None and seen[-1] == "warming"

    with_env = Replica(deployment="d", index=2, spec=spec("1"))
    with_env.spec.environment = {"OMP_NUM_THREADS": "1"}  # never forked: no wait
    rt._spawn(with_env)
    assert with_env.proc is not None and not with_env.awaits_fork_server
