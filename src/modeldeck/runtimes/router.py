"""Local and Ray deployments side by side: the local runtime, handing ``ray`` ones to Ray.

``Runtimes`` is the runtime the platform wires into the deployments service and the gateway. A
deployment whose spec says ``runtime="ray"`` is run by a ``RayRuntime`` (created, and Ray
imported, on the first such deployment); every other call about it goes there too. Everything
else is the local runtime's.
"""

from __future__ import annotations

from typing import Any

from modeldeck.config import Settings
from modeldeck.runtimes.base import DeploymentSpec, Listener, ReplicaState
from modeldeck.runtimes.local import LocalRuntime, Replica
from modeldeck.runtimes.ray import RayEndpoint, RayRuntime


class Runtimes(LocalRuntime):
    def __init__(self, settings: Settings, tracking_uri: str, *, detached: bool = False) -> None:
        super().__init__(settings, tracking_uri, detached=detached)
        self._ray: RayRuntime | None = None
        self._on_ray: set[str] = set()
        self._listener_for_ray: Listener | None = None

    async def startup(self, listener: Listener) -> None:
        self._listener_for_ray = listener
        await super().startup(listener)

    async def shutdown(self, *, detach: bool = False) -> None:
        if self._ray is not None:
            await self._ray.shutdown(detach=detach)
        await super().shutdown(detach=detach)

    async def ray(self) -> RayRuntime:
        """The Ray runtime, created on first use (422 without the ``ray`` extra)."""
        if self._ray is None:
            runtime = RayRuntime(self.settings, self.tracking_uri)
            assert self._listener_for_ray is not None, "runtimes not started"
            await runtime.startup(self._listener_for_ray)
            self._ray = runtime
        return self._ray

    def _where(self, name: str) -> RayRuntime | None:
        return self._ray if name in self._on_ray else None

    async def deploy(self, spec: DeploymentSpec) -> None:
        if spec.runtime == "ray":
            ray = await self.ray()
            await self._move(spec)
            await ray.deploy(spec)
        else:
            await self._move(spec)
            await super().deploy(spec)

    async def rollout(self, spec: DeploymentSpec) -> None:
        ray = self._where(spec.name)
        if (spec.runtime == "ray") != (ray is not None):  # another runtime: start it there
            await self.deploy(spec)
        elif ray is not None:
            await ray.rollout(spec)
        else:
            await super().rollout(spec)

    async def _move(self, spec: DeploymentSpec) -> None:
        """Stop ``spec.name`` on the runtime it leaves."""
        ray = self._where(spec.name)
        if spec.runtime == "ray" and ray is None:
            await super().stop(spec.name)
            self._on_ray.add(spec.name)
        elif spec.runtime != "ray" and ray is not None:
            await ray.stop(spec.name)
            self._on_ray.discard(spec.name)

    def serving(self, name: str) -> bool:
        ray = self._where(name)
        return ray.serving(name) if ray else super().serving(name)

    def rolling_out(self, name: str) -> str | None:
        ray = self._where(name)
        return ray.rolling_out(name) if ray else super().rolling_out(name)

    async def stop(self, name: str) -> None:
        ray = self._where(name)
        if ray is not None:
            await ray.stop(name)
            self._on_ray.discard(name)
        else:
            await super().stop(name)

    async def scale(
        self, name: str, replicas: int, autoscaling: dict[str, Any] | None = None
    ) -> None:
        ray = self._where(name)
        if ray is not None:
            await ray.scale(name, replicas, autoscaling)
        else:
            await super().scale(name, replicas, autoscaling)

    def replicas(self, name: str) -> list[ReplicaState]:
        ray = self._where(name)
        return ray.replicas(name) if ray else super().replicas(name)

    def all_replicas(self) -> list[tuple[DeploymentSpec, ReplicaState]]:
        on_ray = self._ray.all_replicas() if self._ray else []
        return [*super().all_replicas(), *on_ray]

    def running(self, name: str) -> bool:
        ray = self._where(name)
        return ray.running(name) if ray else super().running(name)

    def pick(
        self, name: str, exclude: Replica | None = None, limit: int | None = None
    ) -> Replica | None:
        ray = self._where(name)
        return ray.pick(name, exclude, limit) if ray else super().pick(name, exclude, limit)

    def report_failure(self, replica: Replica, error: str) -> None:
        if isinstance(replica, RayEndpoint) and self._ray is not None:
            self._ray.report_failure(replica, error)
        else:
            super().report_failure(replica, error)

    def recycle(self, replica: Replica, reason: str) -> None:
        if isinstance(replica, RayEndpoint) and self._ray is not None:
            self._ray.recycle(replica, reason)
        else:
            super().recycle(replica, reason)
