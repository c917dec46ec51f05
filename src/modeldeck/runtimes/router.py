"""Local and Ray deployments side by side: one ``Runtime`` and ``Dispatch`` over the two.

``Runtimes`` is the runtime the platform wires into the deployments service and the gateway. It
holds a ``LocalRuntime`` and, from the first deployment whose spec says ``runtime="ray"``, a
``RayRuntime`` (Ray is imported then, not before). Every call about a deployment goes to the
runtime that runs it. Canary candidates are local processes: a Ray deployment has none.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from modeldeck.config import Settings
from modeldeck.runtimes.base import DeploymentSpec, Listener, RecordedReplica, ReplicaState
from modeldeck.runtimes.local import LocalRuntime, Process, Replica
from modeldeck.runtimes.ray import RayEndpoint, RayRuntime


class Runtimes:
    def __init__(self, settings: Settings, tracking_uri: str, *, detached: bool = False) -> None:
        self.settings = settings
        self.tracking_uri = tracking_uri
        self.local = LocalRuntime(settings, tracking_uri, detached=detached)
        self._ray: RayRuntime | None = None
        self._on_ray: set[str] = set()
        self._listener: Listener | None = None

    @property
    def replica_fork_server(self) -> str:
        return self.local.replica_fork_server

    async def startup(self, listener: Listener) -> None:
        self._listener = listener
        await self.local.startup(listener)

    async def shutdown(self, *, detach: bool = False) -> None:
        if self._ray is not None:
            await self._ray.shutdown(detach=detach)
        await self.local.shutdown(detach=detach)

    async def ray(self) -> RayRuntime:
        """The Ray runtime, created on first use (422 without the ``ray`` extra)."""
        if self._ray is None:
            runtime = RayRuntime(self.settings, self.tracking_uri)
            assert self._listener is not None, "runtimes not started"
            await runtime.startup(self._listener)
            self._ray = runtime
        return self._ray

    def _where(self, name: str) -> LocalRuntime | RayRuntime:
        """The runtime that runs ``name`` (the local one for a name neither knows)."""
        if name in self._on_ray and self._ray is not None:
            return self._ray
        return self.local

    # -- lifecycle ----------------------------------------------------------------------------

    async def deploy(self, spec: DeploymentSpec) -> None:
        if spec.runtime == "ray":
            ray = await self.ray()  # a 422 without the extra, before anything is stopped
            await self._move(spec)
            await ray.deploy(spec)
        else:
            await self._move(spec)
            await self.local.deploy(spec)

    async def rollout(self, spec: DeploymentSpec) -> None:
        on_ray = isinstance(self._where(spec.name), RayRuntime)
        if (spec.runtime == "ray") != on_ray:  # another runtime: start it there
            await self.deploy(spec)
        else:
            await self._where(spec.name).rollout(spec)

    async def _move(self, spec: DeploymentSpec) -> None:
        """Stop ``spec.name`` on the runtime it leaves."""
        ray = self._where(spec.name) if spec.name in self._on_ray else None
        if spec.runtime == "ray" and ray is None:
            await self.local.stop(spec.name)
            self._on_ray.add(spec.name)
        elif spec.runtime != "ray" and ray is not None:
            await ray.stop(spec.name)
            self._on_ray.discard(spec.name)

    async def stop(self, name: str) -> None:
        await self._where(name).stop(name)
        self._on_ray.discard(name)

    async def scale(
        self, name: str, replicas: int, autoscaling: dict[str, Any] | None = None
    ) -> None:
        await self._where(name).scale(name, replicas, autoscaling)

    async def reap(self, recorded: list[RecordedReplica]) -> int:
        return await self.local.reap(recorded)

    # -- state --------------------------------------------------------------------------------

    def serving(self, name: str) -> bool:
        return self._where(name).serving(name)

    def rolling_out(self, name: str) -> str | None:
        return self._where(name).rolling_out(name)

    def running(self, name: str) -> bool:
        return self._where(name).running(name)

    def replicas(self, name: str) -> list[ReplicaState]:
        return self._where(name).replicas(name)

    def all_replicas(self) -> list[tuple[DeploymentSpec, ReplicaState]]:
        on_ray = self._ray.all_replicas() if self._ray else []
        return [*self.local.all_replicas(), *on_ray]

    def autoscaled(self) -> list[DeploymentSpec]:
        """Deployments the platform's autoscaler sizes (Ray Serve scales its own)."""
        return self.local.autoscaled()

    def log_path(self, name: str, index: int) -> Path:
        return self.local.log_path(name, index)

    # -- canary candidates (local processes) --------------------------------------------------

    async def start_candidate(self, spec: DeploymentSpec) -> None:
        await self.local.start_candidate(spec)

    async def stop_candidate(self, name: str) -> None:
        await self.local.stop_candidate(name)

    def candidate(self, name: str) -> tuple[str, bool, str] | None:
        return self.local.candidate(name)

    # -- dispatch (the gateway, on each request) ----------------------------------------------

    def pick(
        self, name: str, exclude: Replica | None = None, limit: int | None = None
    ) -> Replica | None:
        return self._where(name).pick(name, exclude, limit)

    def pick_candidate(self, name: str, limit: int | None = None) -> Replica | None:
        return self.local.pick_candidate(name, limit)

    def process(self, replica: Replica) -> Process | None:
        return self.local.process(replica)

    async def crashed(
        self, replica: Replica, proc: Process | None, within: float = 1.0
    ) -> int | None:
        return await self.local.crashed(replica, proc, within)

    def report_failure(self, replica: Replica, error: str) -> None:
        if isinstance(replica, RayEndpoint) and self._ray is not None:
            self._ray.report_failure(replica, error)
        else:
            self.local.report_failure(replica, error)

    def recycle(self, replica: Replica, reason: str) -> None:
        if isinstance(replica, RayEndpoint) and self._ray is not None:
            self._ray.recycle(replica, reason)
        else:
            self.local.recycle(replica, reason)
