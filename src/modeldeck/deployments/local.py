"""The ``local`` runtime: replicas are supervised processes on this machine.

One supervisor task starts replica processes, health-checks them every
``health_interval_seconds``, restarts one that dies (exponential back-off, reset once it has run
for a minute) and stops them with SIGTERM then SIGKILL. A deployment whose replicas keep dying
before they ever become healthy is marked failed with the tail of the replica's log.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from modeldeck.builds.environment import replica_environment
from modeldeck.config import Settings
from modeldeck.deployments.runtime import DeploymentSpec, Listener, ReplicaState, RuntimeEvent
from modeldeck.serving.replica import ReplicaConfig

log = logging.getLogger("modeldeck.supervisor")

HEALTH_TIMEOUT = 2.0
UNHEALTHY_AFTER = 3  # consecutive failed checks before a ready replica takes no traffic
RECYCLE_AFTER = 20  # consecutive failed checks before it is killed and restarted
STABLE_AFTER_SECONDS = 60.0


@dataclass
class Replica:
    deployment: str
    index: int
    status: str = "starting"
    proc: subprocess.Popen[bytes] | None = None
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
        )


@dataclass
class _Deployment:
    spec: DeploymentSpec
    replicas: list[Replica] = field(default_factory=list)
    status: str = "deploying"
    message: str = ""
    rr: int = 0


class LocalRuntime:
    name = "local"

    def __init__(self, settings: Settings, tracking_uri: str) -> None:
        self.settings = settings
        self.tracking_uri = tracking_uri
        self._deployments: dict[str, _Deployment] = {}
        self._listener: Listener | None = None
        self._task: asyncio.Task[None] | None = None
        self._http: httpx.AsyncClient | None = None

    # -- lifecycle ----------------------------------------------------------------------------

    async def startup(self, listener: Listener) -> None:
        self._listener = listener
        self._http = httpx.AsyncClient(timeout=HEALTH_TIMEOUT)
        self._task = asyncio.get_running_loop().create_task(self._supervise())

    async def shutdown(self) -> None:
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await asyncio.gather(*(self._terminate_all(d) for d in self._deployments.values()))
        self._deployments.clear()
        if self._http:
            await self._http.aclose()

    # -- operations ---------------------------------------------------------------------------

    async def deploy(self, spec: DeploymentSpec) -> None:
        old = self._deployments.pop(spec.name, None)
        if old:
            await self._terminate_all(old)
        dep = _Deployment(spec=spec)
        self._deployments[spec.name] = dep
        for i in range(spec.replicas):
            replica = Replica(deployment=spec.name, index=i)
            dep.replicas.append(replica)
            self._spawn(dep, replica)
        await self._emit(dep, status="deploying", message="starting replicas")

    async def stop(self, name: str) -> None:
        dep = self._deployments.pop(name, None)
        if dep:
            await self._terminate_all(dep)

    async def scale(self, name: str, replicas: int) -> None:
        dep = self._deployments.get(name)
        if dep is None:
            return
        dep.spec.replicas = replicas
        while len(dep.replicas) < replicas:
            replica = Replica(deployment=name, index=len(dep.replicas))
            dep.replicas.append(replica)
            self._spawn(dep, replica)
        removed = dep.replicas[replicas:]
        dep.replicas = dep.replicas[:replicas]
        for replica in removed:
            replica.status = "stopping"
        await asyncio.gather(*(self._terminate(r) for r in removed))
        await self._emit(dep)

    def replicas(self, name: str) -> list[ReplicaState]:
        dep = self._deployments.get(name)
        return [r.state() for r in dep.replicas] if dep else []

    def all_replicas(self) -> list[tuple[DeploymentSpec, ReplicaState]]:
        """Every replica this runtime supervises, with its deployment's spec."""
        return [(d.spec, r.state()) for d in self._deployments.values() for r in d.replicas]

    def running(self, name: str) -> bool:
        return name in self._deployments

    # -- routing (used by the gateway) --------------------------------------------------------

    def pick(self, name: str, exclude: Replica | None = None) -> Replica | None:
        """The ready replica with the fewest requests in flight (round-robin among equals)."""
        dep = self._deployments.get(name)
        if dep is None:
            return None
        ready = [r for r in dep.replicas if r.status == "ready" and r is not exclude]
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

    def report_failure(self, replica: Replica, error: str) -> None:
        """The gateway could not reach a replica: take it out of rotation until it is healthy."""
        if replica.status == "ready":
            replica.status = "unhealthy"
            replica.last_error = error
            replica.failed_checks = UNHEALTHY_AFTER

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
            for replica in list(dep.replicas):
                checks.append(self._check(dep, replica))
        await asyncio.gather(*checks)
        for dep in list(self._deployments.values()):
            if dep.status == "deploying" and sum(r.status == "ready" for r in dep.replicas) >= max(
                1, dep.spec.replicas
            ):
                await self._emit(dep, status="deployed", message="")

    async def _check(self, dep: _Deployment, replica: Replica) -> None:
        now = time.monotonic()
        if replica.status == "restarting":
            if now >= replica.next_start_at:
                self._spawn(dep, replica)
                await self._emit(dep)
            return
        proc = replica.proc
        if proc is None or replica.status == "stopping":
            return
        code = proc.poll()
        if code is not None:
            await self._on_exit(dep, replica, code)
            return
        healthy = await self._healthy(replica)
        if healthy:
            replica.failed_checks = 0
            if replica.status != "ready":
                replica.status = "ready"
                replica.ever_ready = True
                log.info(
                    "%s replica %d ready on port %s", dep.spec.name, replica.index, replica.port
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

    async def _recycle(self, dep: _Deployment, replica: Replica) -> None:
        await self._terminate(replica)
        code = replica.proc.returncode if replica.proc else -1
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
                await self._terminate_all(dep)
                await self._emit(dep, status="failed", message=message)
                return
        replica.crashes = 0 if ran_for > STABLE_AFTER_SECONDS else replica.crashes + 1
        backoff = min(
            self.settings.restart_backoff_max_seconds, 0.5 * 2 ** max(0, replica.crashes - 1)
        )
        replica.status = "restarting"
        replica.next_start_at = time.monotonic() + (0.0 if replica.crashes <= 1 else backoff)
        await self._emit(dep)

    def _spawn(self, dep: _Deployment, replica: Replica) -> None:
        spec = dep.spec
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        sock.listen(2048)
        config = ReplicaConfig(
            deployment=spec.name,
            replica=replica.index,
            model_uri=spec.model_path or spec.model_uri,
            model_version=spec.model_version,
            tracking_uri=self.tracking_uri,
            deployment_crn=spec.crn,
            deployment_id=spec.deployment_id,
            model_name=spec.model_name,
            store_url=self.settings.resolved_store_url(),
            track_metrics=spec.track_metrics,
            source=spec.source,
            file_path=spec.file_path,
            function_name=spec.function_name,
            max_batch_rows=self.settings.max_batch_rows,
            log_level=self.settings.log_level,
            env_packages=list(spec.env_packages),
        )
        log_path = self.log_path(spec.name, replica.index)
        log_path.parent.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, **spec.environment, "PYTHONUNBUFFERED": "1"}
        if spec.python:  # a build's isolated environment
            env = replica_environment(spec.python, Path(spec.python_path or ""), spec.environment)
            env["PYTHONUNBUFFERED"] = "1"
        with open(log_path, "ab") as out:
            proc = subprocess.Popen(
                [
                    spec.python or sys.executable,
                    "-m",
                    "modeldeck.serving.replica",
                    "--config",
                    config.to_json(),
                    "--fd",
                    str(sock.fileno()),
                    "--parent-pid",
                    str(os.getpid()),
                ],
                pass_fds=(sock.fileno(),),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=env,
            )
        if replica.started_at is not None:
            replica.restarts += 1
        replica.port = sock.getsockname()[1]
        sock.close()
        replica.proc = proc
        replica.status = "starting"
        replica.started_at = time.time()
        replica.failed_checks = 0
        replica.ever_ready = False
        log.info("%s replica %d started (pid %d)", spec.name, replica.index, proc.pid)

    async def _terminate_all(self, dep: _Deployment) -> None:
        for replica in dep.replicas:
            if replica.status != "failed":
                replica.status = "stopping"
        await asyncio.gather(*(self._terminate(r) for r in dep.replicas))
        for replica in dep.replicas:
            if replica.status == "stopping":
                replica.status = "stopped"

    async def _terminate(self, replica: Replica, grace: float = 10.0) -> None:
        proc = replica.proc
        if proc is None or proc.poll() is not None:
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

    def log_path(self, name: str, index: int) -> Path:
        """The file that replica ``index`` of ``name`` writes its stdout and stderr to."""
        return self.settings.logs_dir() / name / f"replica-{index}.log"

    async def _emit(
        self, dep: _Deployment, *, status: str | None = None, message: str | None = None
    ) -> None:
        if status is not None:
            dep.status = status
        if message is not None:
            dep.message = message
        if self._listener is None:
            return
        event = RuntimeEvent(
            deployment=dep.spec.name,
            status=status,
            message=dep.message,
            replicas=[r.state() for r in dep.replicas],
        )
        try:
            await self._listener(event)
        except Exception:
            log.exception("could not record the state of %s", dep.spec.name)


def _tail(path: Path, lines: int = 15) -> str:
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - 8192))
            text = f.read().decode("utf-8", "replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])
