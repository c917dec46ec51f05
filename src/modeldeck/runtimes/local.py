"""The ``local`` runtime: replicas are supervised processes on this machine.

One supervisor task starts replica processes, health-checks them every
``health_interval_seconds``, restarts one that dies (exponential back-off, reset once it has run
for a minute) and stops them with SIGTERM then SIGKILL. A deployment whose replicas keep dying
before they ever become healthy is marked failed with the tail of the replica's log.

A replica is also recycled (stopped and started again, the reason kept in its ``last_error``)
when its resident memory exceeds the deployment's ``memory_mb`` (or
``replica_memory_limit_mb``), checked at every health check, and when the gateway reports that
it did not answer a request within ``request_timeout_seconds`` (``recycle``): a predict call
cannot be interrupted, so a hung one would hold its replica for ever.

A rollout (``rollout``) starts a new version's replicas beside the serving ones, under replica
indexes the serving ones do not use. The gateway keeps picking the serving replicas until every
new one is healthy; then the new ones take the traffic and the old ones drain (their in-flight
requests finish, for at most ``request_timeout_seconds``) and stop. New replicas that keep failing
to start are stopped and the serving ones carry on: the listener hears ``rollout="failed"``.

Replicas can outlive the control plane (``detached``, what ``modeldeck server`` does unless
``MODELDECK_KEEP_REPLICAS_ON_EXIT`` is off): they run in a session of their own, do not watch
the platform's process, and are left running when it exits, for any reason. The store records
each one's pid, process start time, port and the fingerprint of what it was started with; the
next control plane adopts every live one whose fingerprint matches what it would start now
(``DeploymentSpec.adopt``), health-checks it at once, and stops the others (``reap``). A
platform embedded in another program (tests, notebooks) is not detached: its replicas die
with it.

A canary (``start_candidate``) also starts another version's replicas under their own indexes,
but never switches to them: the gateway sends them a share of the traffic (``pick_candidate``)
or a copy of it (shadow) until the canary is stopped (``stop_candidate``). A candidate replica
that keeps failing to start stops the candidate (``candidate_failed`` says why).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psutil

from modeldeck import __version__
from modeldeck.builds.environment import replica_environment
from modeldeck.config import Settings
from modeldeck.replica.app import ReplicaConfig
from modeldeck.runtimes.base import (
    DeploymentSpec,
    Listener,
    RecordedReplica,
    ReplicaState,
    RuntimeEvent,
)
from modeldeck.runtimes.forks import WARM_WAIT_SECONDS, ForkedProcess, ForkServer

log = logging.getLogger("modeldeck.supervisor")

HEALTH_TIMEOUT = 2.0
UNHEALTHY_AFTER = 3  # consecutive failed checks before a ready replica takes no traffic
RECYCLE_AFTER = 20  # consecutive failed checks before it is killed and restarted
STABLE_AFTER_SECONDS = 60.0
RECYCLE_GRACE_SECONDS = 2.0  # a replica over its memory limit may finish requests this long


@dataclass
class Replica:
    deployment: str
    index: int
    spec: DeploymentSpec  # what this replica runs (during a rollout, old and new differ)
    status: str = "starting"
    proc: Process | None = None
    port: int | None = None
    restarts: int = 0
    crashes: int = 0  # consecutive crashes, for the back-off
    start_failures: int = 0  # exits before ever becoming ready
    ever_ready: bool = False
    last_error: str = ""
    started_at: float | None = None
    next_start_at: float = 0.0
    failed_checks: int = 0
    inflight: int = 0
    spawn_error: str = ""  # why the last start could not even create the process
    awaits_fork_server: bool = False  # a first start, deferred until the fork server is warm
    stopped_pid: int | None = None  # the process the supervisor stopped on purpose, last
    process_started: float | None = None  # the process's start time: its identity, with pid
    fingerprint: str = ""  # of what the process was started with

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def state(self) -> ReplicaState:
        return ReplicaState(
            index=self.index,
            status=self.status,
            pid=self.proc.pid if self.proc else None,
            port=self.port,
            restarts=self.restarts,
            last_error=self.last_error,
            started_at=self.started_at,
            inflight=self.inflight,
            version=self.spec.model_version,
            process_started=self.process_started if self.proc else None,
            fingerprint=self.fingerprint if self.proc else "",
        )


@dataclass
class _Deployment:
    spec: DeploymentSpec  # of the replicas that take traffic
    replicas: list[Replica] = field(default_factory=list)
    status: str = "deploying"
    message: str = ""
    rr: int = 0
    # A rollout: the new version's spec and replicas, starting beside ``replicas``.
    incoming_spec: DeploymentSpec | None = None
    incoming: list[Replica] = field(default_factory=list)
    # Replaced replicas finishing their in-flight requests before they stop.
    draining: list[Replica] = field(default_factory=list)
    # A canary's candidate version: its replicas take a share (or a copy) of the traffic.
    candidate_spec: DeploymentSpec | None = None
    candidate: list[Replica] = field(default_factory=list)
    candidate_failed: str = ""

    def supervised(self) -> list[Replica]:
        """The replicas that are health-checked and restarted (not the draining ones)."""
        return [*self.replicas, *self.incoming, *self.candidate]

    def everyone(self) -> list[Replica]:
        return [*self.replicas, *self.incoming, *self.candidate, *self.draining]

    def free_indexes(self, n: int) -> list[int]:
        """The ``n`` lowest replica indexes no live replica of this deployment uses."""
        taken = {r.index for r in self.everyone()}
        found: list[int] = []
        index = 0
        while len(found) < n:
            if index not in taken:
                found.append(index)
            index += 1
        return found


class LocalRuntime:
    name = "local"

    def __init__(self, settings: Settings, tracking_uri: str, *, detached: bool = False) -> None:
        self.settings = settings
        self.tracking_uri = tracking_uri
        self.detached = detached  # replicas outlive this process (see the module's docstring)
        self._deployments: dict[str, _Deployment] = {}
        self._listener: Listener | None = None
        self._task: asyncio.Task[None] | None = None
        self._http: httpx.AsyncClient | None = None
        self._drains: set[asyncio.Task[None]] = set()
        self._forks = (
            ForkServer(settings.replica_preload, detached=detached)
            if settings.replica_preload
            else None
        )
        self._warming: asyncio.Future[None] | None = None

    @property
    def replica_fork_server(self) -> str:
        """How new replicas start: ``off`` (``MODELDECK_REPLICA_PRELOAD`` is empty: as
        interpreters), else the fork server's :attr:`ForkServer.state`."""
        return "off" if self._forks is None else self._forks.state

    # -- lifecycle ----------------------------------------------------------------------------

    async def startup(self, listener: Listener) -> None:
        self._listener = listener
        self._http = httpx.AsyncClient(timeout=HEALTH_TIMEOUT)
        loop = asyncio.get_running_loop()
        if self._forks is not None:  # imports for seconds: replicas meanwhile start as processes
            self._warming = loop.run_in_executor(None, self._forks.warm)
        self._task = loop.create_task(self._supervise())

    async def shutdown(self, *, detach: bool = False) -> None:
        """Stop supervising; stop every replica, or with ``detach`` (replicas started
        ``detached``) leave them serving for the next control plane to adopt."""
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        for task in list(self._drains):
            task.cancel()
        if detach and self.detached:
            left = [r for d in self._deployments.values() for r in d.everyone() if r.proc]
            for replica in left:
                if isinstance(replica.proc, ForkedProcess):
                    replica.proc.release()
            if left:
                log.warning(
                    "%d replica process(es) keep serving; the next `modeldeck server` adopts "
                    "them, `modeldeck server --stop-all` stops them",
                    len(left),
                )
        else:
            await asyncio.gather(*(self._terminate_all(d) for d in self._deployments.values()))
        self._deployments.clear()
        if self._http:
            await self._http.aclose()

    # -- operations ---------------------------------------------------------------------------

    async def deploy(self, spec: DeploymentSpec) -> None:
        """Run ``spec``, stopping whatever runs under its name first (nothing serves meanwhile:
        for a deployment that serves, ``rollout`` is the way). Live processes in ``spec.adopt``
        that run exactly this spec are adopted instead of started; the others are stopped."""
        old = self._deployments.pop(spec.name, None)
        if old:
            await self._terminate_all(old)
        recorded, spec.adopt = spec.adopt, []
        dep = _Deployment(spec=spec)
        self._deployments[spec.name] = dep
        adopted: list[Replica] = []
        for i in range(spec.replicas):
            replica = Replica(deployment=spec.name, index=i, spec=spec)
            dep.replicas.append(replica)
            found = self._adoptable(replica, recorded)
            if found is None:
                self._spawn(replica)
                continue
            record, proc = found
            replica.proc, replica.port, replica.restarts = proc, record.port, record.restarts
            replica.started_at = replica.process_started = record.process_started
            replica.fingerprint = record.fingerprint
            adopted.append(replica)
            log.info("%s replica %d adopted (pid %d, port %s)", spec.name, i, proc.pid, record.port)
        taken = {r.proc.pid for r in adopted if r.proc}
        await self.reap([r for r in recorded if r.pid not in taken])
        message = "adopting running replicas" if adopted else "starting replicas"
        await self._emit(dep, status="deploying", message=message)
        if adopted:  # no need to wait for the next health check
            await asyncio.gather(*(self._check(dep, r) for r in adopted))
            if sum(r.status == "ready" for r in dep.replicas) >= max(1, spec.replicas):
                await self._emit(dep, status="deployed", message="")

    def _adoptable(
        self, replica: Replica, recorded: list[RecordedReplica]
    ) -> tuple[RecordedReplica, AdoptedProcess] | None:
        """The recorded live process that runs exactly what ``replica`` would, if any."""
        for record in recorded:
            if record.index != replica.index or record.port is None:
                continue
            if record.fingerprint != self.fingerprint(replica.spec, replica.index):
                return None
            proc = AdoptedProcess.find(record.pid, record.process_started)
            return (record, proc) if proc is not None else None
        return None

    async def reap(self, recorded: list[RecordedReplica]) -> int:
        """Stop the recorded replica processes that still run (left by an earlier control
        plane, and not adopted); returns how many there were."""
        if not recorded:
            return 0
        return await asyncio.to_thread(reap, recorded)

    def fingerprint(self, spec: DeploymentSpec, index: int) -> str:
        """Of everything replica ``index`` of ``spec`` is started with: two equal fingerprints
        mean a running process is what this control plane would start."""
        config = replica_config(self.settings, self.tracking_uri, spec, index)
        parts = [
            __version__,  # an upgraded platform replaces replicas running the old code
            config.to_json(),
            spec.python or sys.executable,
            repr(sorted(spec.environment.items())),
        ]
        return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:32]

    async def rollout(self, spec: DeploymentSpec) -> None:
        """Start ``spec``'s replicas beside the serving ones; they take the traffic once every
        one of them is healthy. A rollout still under way is abandoned for this one. Without
        a serving replica this is ``deploy``."""
        dep = self._deployments.get(spec.name)
        if dep is None or not self.serving(spec.name):
            await self.deploy(spec)
            return
        if dep.incoming:
            await self._abandon(dep)
        dep.incoming_spec = spec
        for index in dep.free_indexes(spec.replicas):
            replica = Replica(deployment=spec.name, index=index, spec=spec)
            dep.incoming.append(replica)
            self._spawn(replica)
        log.info(
            "%s: rolling out version %s beside version %s",
            spec.name,
            spec.model_version,
            dep.spec.model_version,
        )
        await self._emit(dep)

    async def start_candidate(self, spec: DeploymentSpec) -> None:
        """Start ``spec``'s replicas beside the serving ones as a canary's candidate (replacing
        a candidate already there); they never take over, see ``pick_candidate``."""
        dep = self._deployments.get(spec.name)
        if dep is None:
            return
        await self.stop_candidate(spec.name)
        dep.candidate_spec, dep.candidate_failed = spec, ""
        for index in dep.free_indexes(spec.replicas):
            replica = Replica(deployment=spec.name, index=index, spec=spec)
            dep.candidate.append(replica)
            self._spawn(replica)
        log.info("%s: candidate version %s starting", spec.name, spec.model_version)
        await self._emit(dep)

    async def stop_candidate(self, name: str) -> None:
        """Stop the candidate's replicas (their in-flight requests finish first)."""
        dep = self._deployments.get(name)
        if dep is None or dep.candidate_spec is None:
            return
        candidate, dep.candidate, dep.candidate_spec = dep.candidate, [], None
        for replica in candidate:
            if replica.status != "failed":
                replica.status = "draining"
        dep.draining.extend(candidate)
        self._background(self._drain(dep, candidate))

    def candidate(self, name: str) -> tuple[str, bool, str] | None:
        """The candidate's version, whether all its replicas are ready, and why it failed
        (``""`` while it has not); ``None`` without a candidate."""
        dep = self._deployments.get(name)
        if dep is None:
            return None
        if dep.candidate_spec is None:
            return ("", False, dep.candidate_failed) if dep.candidate_failed else None
        ready = bool(dep.candidate) and all(r.status == "ready" for r in dep.candidate)
        return dep.candidate_spec.model_version, ready, dep.candidate_failed

    def pick_candidate(self, name: str, limit: int | None = None) -> Replica | None:
        """The candidate's ready replica with the fewest requests in flight (under ``limit``)."""
        dep = self._deployments.get(name)
        if dep is None:
            return None
        ready = [
            r
            for r in dep.candidate
            if r.status == "ready" and (limit is None or r.inflight < limit)
        ]
        return min(ready, key=lambda r: r.inflight) if ready else None

    def serving(self, name: str) -> bool:
        """Whether ``name`` has a replica that takes traffic now."""
        dep = self._deployments.get(name)
        return (
            dep is not None
            and dep.status != "failed"
            and any(r.status == "ready" for r in dep.replicas)
        )

    def rolling_out(self, name: str) -> str | None:
        """The version starting beside the serving one, if a rollout is under way."""
        dep = self._deployments.get(name)
        return dep.incoming_spec.model_version if dep and dep.incoming_spec else None

    async def stop(self, name: str) -> None:
        dep = self._deployments.pop(name, None)
        if dep:
            await self._terminate_all(dep)

    async def scale(
        self, name: str, replicas: int, autoscaling: dict[str, Any] | None = None
    ) -> None:
        """Start replicas up to ``replicas``, or take the highest ones out of rotation, let
        their requests in flight finish (as a rollout's old replicas do) and stop them; returns
        once they have. ``autoscaling`` is recorded on the spec (the platform's autoscaler, not
        this runtime, acts on it)."""
        dep = self._deployments.get(name)
        if dep is None:
            return
        dep.spec.replicas, dep.spec.autoscaling = replicas, autoscaling
        removed = self._resize(dep, dep.replicas, dep.spec, replicas)
        if dep.incoming_spec is not None:  # the version rolling out gets the new count too
            dep.incoming_spec.replicas, dep.incoming_spec.autoscaling = replicas, autoscaling
            removed += self._resize(dep, dep.incoming, dep.incoming_spec, replicas)
        if not removed:
            await self._emit(dep)
            return
        for replica in removed:
            if replica.status != "failed":
                replica.status = "draining"
        dep.draining.extend(removed)
        await self._drain(dep, removed)  # emits the new replica states

    def _resize(
        self, dep: _Deployment, group: list[Replica], spec: DeploymentSpec, replicas: int
    ) -> list[Replica]:
        """Start or take out replicas of ``group`` (in place); returns the ones to stop."""
        for index in dep.free_indexes(max(0, replicas - len(group))):
            replica = Replica(deployment=spec.name, index=index, spec=spec)
            group.append(replica)
            self._spawn(replica)
        removed = group[replicas:]
        del group[replicas:]
        return removed

    def replicas(self, name: str) -> list[ReplicaState]:
        """Every live replica of ``name``: serving, rolling out and draining."""
        dep = self._deployments.get(name)
        return [r.state() for r in dep.everyone()] if dep else []

    def all_replicas(self) -> list[tuple[DeploymentSpec, ReplicaState]]:
        """Every replica this runtime supervises, with the spec it runs."""
        return [(r.spec, r.state()) for d in self._deployments.values() for r in d.everyone()]

    def running(self, name: str) -> bool:
        return name in self._deployments

    def autoscaled(self) -> list[DeploymentSpec]:
        """The specs of this runtime's deployments that have an autoscaling policy."""
        return [d.spec for d in list(self._deployments.values()) if d.spec.autoscaling is not None]

    # -- routing (used by the gateway) --------------------------------------------------------

    def pick(
        self, name: str, exclude: Replica | None = None, limit: int | None = None
    ) -> Replica | None:
        """The ready replica with the fewest requests in flight (round-robin among equals);
        with a ``limit``, only one with fewer than ``limit`` in flight."""
        dep = self._deployments.get(name)
        if dep is None:
            return None
        ready = [
            r
            for r in dep.replicas
            if r.status == "ready" and r is not exclude and (limit is None or r.inflight < limit)
        ]
        if not ready:
            return None
        dep.rr += 1
        n = len(ready)
        best = ready[dep.rr % n]
        for k in range(1, n):
            cand = ready[(dep.rr + k) % n]
            if cand.inflight < best.inflight:
                best = cand
        return best

    def process(self, replica: Replica) -> Process | None:
        """The process that runs ``replica`` now (the gateway keeps it across a request)."""
        return replica.proc

    async def crashed(
        self,
        replica: Replica,
        proc: Process | None,
        within: float = 1.0,
    ) -> int | None:
        """The exit code of ``proc`` (``replica``'s process when a request was sent to it) if
        it exited by itself, waiting up to ``within`` seconds for its exit to be reported (its
        sockets close a moment before). ``None`` while it runs, and when the supervisor stopped
        it (a hung or oversized replica recycled: its other requests were bystanders)."""
        if proc is None:
            return None
        deadline = time.monotonic() + within
        while (code := proc.poll()) is None and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        if code is None or replica.stopped_pid == proc.pid:
            return None
        return code

    def report_failure(self, replica: Replica, error: str) -> None:
        """The gateway could not reach a replica: take it out of rotation until it is healthy."""
        if replica.status == "ready":
            replica.status = "unhealthy"
            replica.last_error = error
            replica.failed_checks = UNHEALTHY_AFTER

    def recycle(self, replica: Replica, reason: str) -> None:
        """Kill and restart ``replica`` (it hung on a request), recording ``reason``.

        It takes no new traffic from now on; its other in-flight requests are cut off and the
        gateway retries them on another replica.
        """
        dep = self._deployments.get(replica.deployment)
        if dep is None or replica not in dep.supervised():
            return  # gone, or draining (the drain stops it)
        if replica.status not in ("starting", "ready", "unhealthy"):
            return  # already being stopped or restarted
        replica.last_error = reason
        self._background(self._recycle(dep, replica, grace=0.0))

    def _background(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self._drains.add(task)
        task.add_done_callback(self._drains.discard)

    # -- supervision --------------------------------------------------------------------------

    async def _supervise(self) -> None:
        interval = self.settings.health_interval_seconds
        while True:
            try:
                await self._tick()
            except asyncio.CancelledError:
                raise
            except Exception:  # the supervisor must outlive any one bad tick
                log.exception("supervisor tick failed")
            await asyncio.sleep(interval)

    async def _tick(self) -> None:
        checks = []
        for dep in list(self._deployments.values()):
            if dep.status == "failed":
                continue
            for replica in dep.supervised():
                checks.append(self._check(dep, replica))
        await asyncio.gather(*checks)
        for dep in list(self._deployments.values()):
            if dep.status == "deploying" and sum(r.status == "ready" for r in dep.replicas) >= max(
                1, dep.spec.replicas
            ):
                await self._emit(dep, status="deployed", message="")
            spec = dep.incoming_spec
            if (
                spec is not None
                and len(dep.incoming) >= max(1, spec.replicas)
                and all(r.status == "ready" for r in dep.incoming)
            ):
                await self._switch(dep)

    async def _switch(self, dep: _Deployment) -> None:
        """Every new replica is healthy: they take the traffic, the old ones drain and stop."""
        assert dep.incoming_spec is not None
        old, old_version = dep.replicas, dep.spec.model_version
        dep.spec, dep.replicas = dep.incoming_spec, dep.incoming
        dep.incoming_spec, dep.incoming = None, []
        for replica in old:
            replica.status = "draining"
        dep.draining.extend(old)
        log.info(
            "%s: version %s takes the traffic; version %s drains",
            dep.spec.name,
            dep.spec.model_version,
            old_version,
        )
        await self._emit(
            dep, status="deployed", message="", rollout="completed", version=dep.spec.model_version
        )
        self._background(self._drain(dep, old))

    async def _drain(self, dep: _Deployment, old: list[Replica]) -> None:
        """Let ``old``'s in-flight requests finish (bounded by the request timeout), then stop."""
        deadline = time.monotonic() + self.settings.request_timeout_seconds
        while any(r.inflight > 0 for r in old) and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        for replica in old:
            replica.status = "stopping"
        await asyncio.gather(*(self._terminate(r) for r in old))
        for replica in old:
            replica.status = "stopped"
        dep.draining = [r for r in dep.draining if r not in old]
        if self._deployments.get(dep.spec.name) is dep:
            await self._emit(dep)

    async def _abandon(self, dep: _Deployment) -> None:
        """Stop the replicas of a rollout that will not take the traffic."""
        incoming, dep.incoming, dep.incoming_spec = dep.incoming, [], None
        for replica in incoming:
            if replica.status != "failed":
                replica.status = "stopping"
        await asyncio.gather(*(self._terminate(r) for r in incoming))

    async def _check(self, dep: _Deployment, replica: Replica) -> None:
        now = time.monotonic()
        if replica.awaits_fork_server:
            if replica.status != "starting":  # stopped meanwhile
                replica.awaits_fork_server = False
            elif not self._fork_server_warming() or now >= replica.next_start_at:
                replica.awaits_fork_server = False
                self._spawn(replica, wait_for_forks=False)
                await self._emit(dep)
            return
        if replica.status == "restarting":
            if now >= replica.next_start_at:
                self._spawn(replica)
                await self._emit(dep)
            return
        if replica.spawn_error:  # counted as a failed start, so the deployment fails in time
            replica.last_error, replica.spawn_error = replica.spawn_error, ""
            await self._on_exit(dep, replica, -1, recycled=True)
            return
        proc = replica.proc
        if proc is None or replica.status == "stopping":
            return
        code = proc.poll()
        if code is not None:
            await self._on_exit(dep, replica, code)
            return
        limit = replica.spec.memory_mb or self.settings.replica_memory_limit_mb
        if limit:
            rss_mb = _rss_mb(proc.pid)
            if rss_mb is not None and rss_mb > limit:
                replica.last_error = (
                    f"recycled: resident memory {rss_mb:.0f} MB exceeded the limit of {limit} MB"
                )
                replica.status = "stopping"  # no new traffic; in-flight requests may finish
                self._background(self._recycle(dep, replica, grace=RECYCLE_GRACE_SECONDS))
                return
        healthy = await self._healthy(replica)
        if healthy:
            replica.failed_checks = 0
            if replica.status != "ready":
                replica.status = "ready"
                replica.ever_ready = True
                log.info(
                    "%s replica %d (version %s) ready on port %s",
                    dep.spec.name,
                    replica.index,
                    replica.spec.model_version,
                    replica.port,
                )
                await self._emit(dep)
            return
        replica.failed_checks += 1
        if replica.status == "starting":
            started = replica.started_at or time.time()
            if time.time() - started > self.settings.replica_start_timeout_seconds:
                replica.last_error = (
                    f"not healthy {self.settings.replica_start_timeout_seconds:.0f} s after start"
                )
                await self._recycle(dep, replica)
            return
        if replica.failed_checks >= RECYCLE_AFTER:
            replica.last_error = f"failed {replica.failed_checks} health checks"
            await self._recycle(dep, replica)
        elif replica.failed_checks >= UNHEALTHY_AFTER and replica.status == "ready":
            replica.status = "unhealthy"
            await self._emit(dep)

    async def _healthy(self, replica: Replica) -> bool:
        assert self._http is not None
        try:
            response = await self._http.get(replica.url + "/health")
        except httpx.HTTPError:
            return False
        return response.status_code == 200

    async def _recycle(self, dep: _Deployment, replica: Replica, grace: float = 10.0) -> None:
        """Stop ``replica`` (its ``last_error`` says why) and let it restart."""
        replica.status = "stopping"  # no traffic, and no health check races the stop
        await self._emit(dep)
        await self._terminate(replica, grace)
        if (
            self._deployments.get(dep.spec.name) is not dep
            or replica not in dep.supervised()
            or replica.proc is None
        ):
            return  # the deployment was stopped, replaced or scaled down meanwhile
        code = replica.proc.returncode
        await self._on_exit(dep, replica, code if code is not None else -1, recycled=True)

    async def _on_exit(
        self, dep: _Deployment, replica: Replica, code: int, *, recycled: bool = False
    ) -> None:
        ran_for = time.time() - (replica.started_at or time.time())
        if not recycled:
            replica.last_error = f"exited with code {code}"
        tail = _tail(self.log_path(dep.spec.name, replica.index))
        log.warning(
            "%s replica %d %s after %.1f s",
            dep.spec.name,
            replica.index,
            replica.last_error,
            ran_for,
        )
        replica.proc = None
        if not replica.ever_ready:
            replica.start_failures += 1
            if replica.start_failures >= self.settings.replica_max_start_failures:
                message = (
                    f"replica {replica.index} failed to start {replica.start_failures} times "
                    f"({replica.last_error})" + (f":\n{tail}" if tail else "")
                )
                replica.status = "failed"
                if replica in dep.incoming:  # a rollout: the serving replicas carry on
                    version = replica.spec.model_version
                    await self._abandon(dep)
                    log.warning("%s: version %s never took traffic", dep.spec.name, version)
                    await self._emit_rollout_failure(dep, version, message)
                    return
                if replica in dep.candidate:  # a canary: the serving replicas carry on
                    await self.stop_candidate(dep.spec.name)
                    dep.candidate_failed = message
                    log.warning("%s: candidate failed to start", dep.spec.name)
                    await self._emit(dep)
                    return
                await self._terminate_all(dep)
                await self._emit(dep, status="failed", message=message)
                return
        replica.crashes = 0 if ran_for > STABLE_AFTER_SECONDS else replica.crashes + 1
        backoff = min(
            self.settings.restart_backoff_max_seconds, 0.5 * 2 ** max(0, replica.crashes - 1)
        )
        replica.status = "restarting"
        replica.next_start_at = time.monotonic() + (0.0 if replica.crashes <= 1 else backoff)
        if replica.crashes <= 1:  # the first restart is at once, not at the next health check
            self._spawn(replica)
        await self._emit(dep)

    def _spawn(self, replica: Replica, *, wait_for_forks: bool = True) -> None:
        """Start ``replica``'s process. One that cannot even be created (``exec`` refused its
        environment, no memory left for a fork...) is not raised: the next health check
        counts it as a failed start, so that the deployment ends ``failed`` with the reason
        instead of a failed request or platform start."""
        spec = replica.spec
        first = replica.started_at is None
        if wait_for_forks and first and self._fork_server_warming() and _forkable(spec):
            assert self._forks is not None
            until = (self._forks.warming_since or time.monotonic()) + WARM_WAIT_SECONDS
            if time.monotonic() < until:
                replica.status = "starting"
                replica.awaits_fork_server = True
                replica.next_start_at = until
                return
        if replica.started_at is not None:
            replica.restarts += 1
        replica.status = "starting"
        replica.started_at = time.time()
        replica.failed_checks = 0
        replica.ever_ready = False
        try:
            proc, forked = self._start_process(replica)
        except (OSError, ValueError, RuntimeError) as exc:
            replica.proc = None
            replica.spawn_error = f"could not start the replica process: {exc}"
            log.error("%s replica %d: %s", spec.name, replica.index, replica.spawn_error)
            return
        replica.proc = proc
        replica.fingerprint = self.fingerprint(spec, replica.index)
        replica.process_started = _create_time(proc.pid)
        log.info(
            "%s replica %d started (pid %d%s)",
            spec.name, replica.index, proc.pid, ", forked" if forked else "",
        )  # fmt: skip

    def _fork_server_warming(self) -> bool:
        return self._forks is not None and self._forks.state == "warming"

    def _start_process(self, replica: Replica) -> tuple[Process, bool]:
        """A new process for ``replica`` listening on a fresh port; whether it was forked."""
        spec = replica.spec
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(("127.0.0.1", 0))
            sock.listen(2048)
            config = replica_config(self.settings, self.tracking_uri, spec, replica.index)
            log_path = self.log_path(spec.name, replica.index)
            log_path.parent.mkdir(parents=True, exist_ok=True)
            forked = None
            if self._forks is not None and _forkable(spec):
                forked = self._forks.start(["--config", config.to_json()], sock, log_path)
            proc = forked if forked is not None else self._exec(spec, config, sock, log_path)
            replica.port = sock.getsockname()[1]
            return proc, forked is not None
        finally:
            sock.close()

    def _exec(
        self, spec: DeploymentSpec, config: ReplicaConfig, sock: socket.socket, log_path: Path
    ) -> subprocess.Popen[bytes]:
        """A replica as a new interpreter (a build's, or the platform's own)."""
        env = {**os.environ, **spec.environment, "PYTHONUNBUFFERED": "1"}
        if spec.python:  # a build's isolated environment
            env = replica_environment(spec.python, Path(spec.python_path or ""), spec.environment)
            env["PYTHONUNBUFFERED"] = "1"
        argv = [spec.python or sys.executable, "-m", "modeldeck.replica.app"]
        argv += ["--config", config.to_json(), "--fd", str(sock.fileno())]
        if not self.detached:
            argv += ["--parent-pid", str(os.getpid())]
        with open(log_path, "ab") as out:
            return subprocess.Popen(
                argv,
                pass_fds=(sock.fileno(),),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=env,
                # Detached: Ctrl-C in the platform's terminal does not reach the replica.
                start_new_session=self.detached,
            )

    async def _terminate_all(self, dep: _Deployment) -> None:
        everyone = dep.everyone()
        for replica in everyone:
            if replica.status != "failed":
                replica.status = "stopping"
        await asyncio.gather(*(self._terminate(r) for r in everyone))
        for replica in everyone:
            if replica.status == "stopping":
                replica.status = "stopped"

    async def _terminate(self, replica: Replica, grace: float = 10.0) -> None:
        proc = replica.proc
        if proc is None or proc.poll() is not None:
            return
        replica.stopped_pid = proc.pid
        await _stop_process(proc, grace)

    def log_path(self, name: str, index: int) -> Path:
        """The file that replica ``index`` of ``name`` writes its stdout and stderr to."""
        return self.settings.logs_dir() / name / f"replica-{index}.log"

    async def _emit(
        self,
        dep: _Deployment,
        *,
        status: str | None = None,
        message: str | None = None,
        rollout: str | None = None,
        version: str = "",
    ) -> None:
        if status is not None:
            dep.status = status
        if message is not None:
            dep.message = message
        await self._send(
            RuntimeEvent(
                deployment=dep.spec.name,
                status=status,
                message=dep.message,
                replicas=[r.state() for r in dep.everyone()],
                rollout=rollout,
                version=version,
            )
        )

    async def _emit_rollout_failure(self, dep: _Deployment, version: str, message: str) -> None:
        # The serving replicas' status stands; the message is the failed version's.
        await self._send(
            RuntimeEvent(
                deployment=dep.spec.name,
                status=dep.status,
                message=message,
                replicas=[r.state() for r in dep.everyone()],
                rollout="failed",
                version=version,
            )
        )

    async def _send(self, event: RuntimeEvent) -> None:
        if self._listener is None:
            return
        try:
            await self._listener(event)
        except Exception:
            log.exception("could not record the state of %s", event.deployment)


async def _stop_process(proc: Process, grace: float) -> None:
    """SIGTERM, then SIGKILL after ``grace`` seconds."""
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        proc.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + grace
    while proc.poll() is None and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        await asyncio.get_running_loop().run_in_executor(None, proc.wait)


class AdoptedProcess:
    """A replica process an earlier control plane started: not this process's child, so
    watched through ``psutil`` (its exit code is not ours to know: ``-1`` once it is gone).
    Offers the part of :class:`subprocess.Popen`'s interface the supervisor uses."""

    def __init__(self, process: psutil.Process) -> None:
        self._process = process
        self.pid: int = process.pid
        self.returncode: int | None = None

    @classmethod
    def find(cls, pid: int, started: float) -> AdoptedProcess | None:
        """The live process ``pid`` if it started at ``started`` (else the pid was reused)."""
        try:
            process = psutil.Process(pid)
            if abs(process.create_time() - started) > 0.05:
                return None
            if process.status() == psutil.STATUS_ZOMBIE:
                return None
        except psutil.Error:
            return None
        return cls(process)

    def poll(self) -> int | None:
        if self.returncode is None:
            try:
                gone = self._process.status() == psutil.STATUS_ZOMBIE
            except psutil.Error:
                gone = True
            if gone:
                self.returncode = -1
        return self.returncode

    def send_signal(self, sig: int) -> None:
        if self.poll() is None:
            with contextlib.suppress(psutil.Error):
                self._process.send_signal(sig)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)

    def wait(self, timeout: float | None = None) -> int | None:
        with contextlib.suppress(psutil.Error):
            self._process.wait(timeout)
        return self.poll()


Process = subprocess.Popen[bytes] | ForkedProcess | AdoptedProcess


def reap(recorded: list[RecordedReplica], grace: float = 10.0) -> int:
    """Stop the recorded replica processes that still run: SIGTERM, SIGKILL after ``grace``
    seconds. Blocking; returns how many there were."""
    procs = []
    for record in recorded:
        found = AdoptedProcess.find(record.pid, record.process_started)
        if found is not None:
            log.info("stopping replica process %d: nothing here runs it any more", found.pid)
            procs.append(found._process)
    for process in procs:
        with contextlib.suppress(psutil.Error):
            process.terminate()
    _, alive = psutil.wait_procs(procs, timeout=grace)
    for process in alive:
        with contextlib.suppress(psutil.Error):
            process.kill()
    psutil.wait_procs(alive, timeout=grace)
    return len(procs)


def _create_time(pid: int) -> float | None:
    try:
        return float(psutil.Process(pid).create_time())
    except psutil.Error:
        return None


def _rss_mb(pid: int) -> float | None:
    """Resident memory of process ``pid`` in MB (None when it is gone)."""
    try:
        return float(psutil.Process(pid).memory_info().rss) / (1024 * 1024)
    except psutil.Error:
        return None


def replica_config(
    settings: Settings, tracking_uri: str, spec: DeploymentSpec, index: int
) -> ReplicaConfig:
    """What replica ``index`` of ``spec`` is started with, on every runtime."""
    return ReplicaConfig(
        deployment=spec.name,
        replica=index,
        model_uri=spec.model_path or spec.model_uri,
        model_version=spec.model_version,
        tracking_uri=tracking_uri,
        deployment_crn=spec.crn,
        deployment_id=spec.deployment_id,
        model_name=spec.model_name,
        store_url=settings.resolved_store_url(),
        track_metrics=spec.track_metrics,
        source=spec.source,
        file_path=spec.file_path,
        function_name=spec.function_name,
        max_batch_rows=settings.max_batch_rows,
        max_response_bytes=settings.max_response_bytes,
        header_timeout_seconds=settings.header_timeout_seconds,
        body_timeout_seconds=settings.body_timeout_seconds,
        log_level=settings.log_level,
        env_packages=list(spec.env_packages),
    )


def _tail(path: Path, lines: int = 15) -> str:
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - 8192))
            text = f.read().decode("utf-8", "replace")
    except OSError:
        return ""
    # A model may print anything; what is stored (a status message) must fit both stores.
    return "\n".join(text.splitlines()[-lines:]).replace("\x00", "\ufffd")


def _forkable(spec: DeploymentSpec) -> bool:
    """Whether ``spec``'s replicas may be forked (``runtimes.forks``): the platform's own
    Python, no environment variables of their own."""
    return not spec.python and not spec.environment
