"""What every runtime (``local`` processes, Ray Serve) offers the deployments service and the
gateway: the ``Runtime`` and ``Dispatch`` protocols and the records they pass."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from modeldeck.runtimes.local import Process, Replica


@dataclass
class DeploymentSpec:
    """Everything a runtime needs to run one deployment."""

    name: str
    model_uri: str
    model_version: str
    replicas: int
    crn: str = ""
    environment: dict[str, str] = field(default_factory=dict)
    cpu: float | None = None
    memory_mb: int | None = None
    deployment_id: str = ""
    model_name: str = ""
    track_metrics: bool = True
    source: str = "registry"  # registry | file
    file_path: str | None = None
    function_name: str | None = None
    # An isolated environment (a build's): its interpreter, the directory that puts modeldeck
    # on PYTHONPATH, the downloaded model the replicas load, the cache key (never evicted while
    # running) and the packages whose versions replicas report.
    python: str | None = None
    python_path: str | None = None
    model_path: str | None = None
    env_key: str | None = None
    env_packages: list[str] = field(default_factory=list)
    runtime: str = "local"  # local | ray: which runtime runs it
    # The autoscaling policy (AutoscalingPolicy's fields), or None for a fixed ``replicas``.
    # The platform's autoscaler changes a local deployment's count; Ray Serve scales its own.
    autoscaling: dict[str, Any] | None = None
    # Replica processes a previous control plane started and left running (recorded in the
    # store): a runtime adopts the ones still alive that run exactly this spec, instead of
    # starting new ones, and stops the rest.
    adopt: list[RecordedReplica] = field(default_factory=list)


@dataclass(frozen=True)
class RecordedReplica:
    """A replica process as the store recorded it: enough to find it again after a restart.

    A process is the same one when its pid *and* its start time match (a pid alone may have
    been reused); it runs the same thing when its ``fingerprint`` (of everything it was
    started with) matches.
    """

    index: int
    pid: int
    port: int | None
    process_started: float
    fingerprint: str
    restarts: int = 0


@dataclass
class ReplicaState:
    index: int
    # starting | ready | unhealthy | restarting | draining | stopping | stopped | failed
    status: str
    pid: int | None
    port: int | None
    restarts: int
    last_error: str
    started_at: float | None
    inflight: int = 0
    version: str = ""  # the model version this replica serves
    process_started: float | None = None  # the process's start time (its identity, with pid)
    fingerprint: str = ""  # of what it was started with: see RecordedReplica

    def to_dict(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "status": self.status,
            "pid": self.pid,
            "port": self.port,
            "restarts": self.restarts,
            "last_error": self.last_error,
            "started_at": self.started_at,
            "inflight": self.inflight,
            "version": self.version,
        }


@dataclass
class RuntimeEvent:
    """A change a runtime reports: a deployment's status or a replica's state."""

    deployment: str
    status: str | None = None  # deploying | deployed | failed | stopped
    message: str = ""
    replicas: list[ReplicaState] = field(default_factory=list)
    # The end of a rollout of ``version`` beside the serving replicas: ``completed`` (it took
    # the traffic) or ``failed`` (it never did; ``message`` says why).
    rollout: str | None = None
    version: str = ""


Listener = Callable[[RuntimeEvent], Awaitable[None]]


class Endpoint(Protocol):
    """Where the gateway sends one request."""

    url: str


class Runtime(Protocol):
    """What the deployments service, the canary and the autoscaler ask of a runtime.

    ``LocalRuntime`` (processes on this machine) and ``RayRuntime`` implement the lifecycle;
    ``Runtimes`` (``router.py``) composes the two behind this one interface. Canary candidates
    are local processes only.
    """

    async def startup(self, listener: Listener) -> None: ...

    async def shutdown(self, *, detach: bool = False) -> None: ...

    async def deploy(self, spec: DeploymentSpec) -> None: ...

    async def rollout(self, spec: DeploymentSpec) -> None: ...

    def serving(self, name: str) -> bool: ...

    def rolling_out(self, name: str) -> str | None: ...

    def running(self, name: str) -> bool: ...

    async def stop(self, name: str) -> None: ...

    async def scale(
        self, name: str, replicas: int, autoscaling: dict[str, Any] | None = None
    ) -> None: ...

    def replicas(self, name: str) -> list[ReplicaState]: ...

    def all_replicas(self) -> list[tuple[DeploymentSpec, ReplicaState]]: ...

    def autoscaled(self) -> list[DeploymentSpec]: ...

    async def reap(self, recorded: list[RecordedReplica]) -> int: ...

    async def start_candidate(self, spec: DeploymentSpec) -> None: ...

    async def stop_candidate(self, name: str) -> None: ...

    def candidate(self, name: str) -> tuple[str, bool, str] | None: ...


class Dispatch(Protocol):
    """What the gateway asks of the runtimes on each request: a replica to send it to, and
    what became of it. Endpoints are ``Replica`` records (a Ray deployment's is its route on
    Serve's proxy, a ``RayEndpoint``)."""

    def serving(self, name: str) -> bool: ...

    def pick(
        self, name: str, exclude: Replica | None = None, limit: int | None = None
    ) -> Replica | None: ...

    def pick_candidate(self, name: str, limit: int | None = None) -> Replica | None: ...

    def process(self, replica: Replica) -> Process | None: ...

    async def crashed(
        self, replica: Replica, proc: Process | None, within: float = 1.0
    ) -> int | None: ...

    def report_failure(self, replica: Replica, error: str) -> None: ...

    def recycle(self, replica: Replica, reason: str) -> None: ...
