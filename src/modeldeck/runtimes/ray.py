"""The ``ray`` runtime: each deployment is a Ray Serve application.

A deployment named ``NAME`` runs as the Serve application ``NAME-<the first 8 characters of its
id>`` (route prefix ``/`` and the same), of one Serve deployment, ``replica``: Serve's application
names are global to a cluster, and a deployment's id is unique to the platform's store, so two
platforms sharing a cluster never touch each other's applications. The Serve deployment carries a
``version`` (a fingerprint of everything its replicas are started with but the count), so that
Serve scales it in place and leaves it running when the same version is run again: after a
restart of the control plane (which leaves Serve's applications running, unless
``MODELDECK_KEEP_REPLICAS_ON_EXIT`` is off), restoring a deployment adopts its replicas. It runs
with the deployment's replica count, or, for a deployment with an
autoscaling policy, with Serve's own autoscaler configured from it (``autoscaling_config``). Each
Ray replica builds the same app a local replica serves (``serving.replica``: ``load_replica`` then
``create_replica_app``), so predictions answer, validate and are tracked into the store exactly
as on the ``local`` runtime. The gateway forwards to Serve's HTTP proxy
(``ray_http_host:ray_http_port``) through one pseudo-replica per deployment (``RayEndpoint``);
Serve spreads the requests over its replicas and each answer names the replica that made it
(``X-Modeldeck-Replica``, Serve's replica rank).

Ray restarts replicas that die and rolls a new version out itself (``serve.run`` of a changed
application brings the new replicas up before the old ones stop). This runtime polls
``serve.status()`` every ``health_interval_seconds`` (at least every second) and reports replica
states the way the local runtime does. Each Ray replica writes its rank, process id and node to
Ray's key-value store, so replicas on this machine get their CPU and memory sampled.

Ray's driver runs in a process of its own (``RayDriver``), never in the platform's: a Ray driver
exits its process when it loses the cluster for ``ray_reconnect_seconds``, and in the platform's
process that took the control plane and every local deployment down with the cluster. When the
driver process is lost, the ``ray`` deployments are ``unavailable`` (with the reason) while the
others serve on; the next poll starts a new driver, which connects again, adopts the Serve
applications still running and runs again the ones the cluster lost.

Ray is imported only in that process and in Ray's replicas, and only once a deployment asks for
``runtime: ray``.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import importlib.util
import logging
import multiprocessing
import os
import signal
import sys
import threading
import time
from dataclasses import dataclass, field
from multiprocessing.managers import BaseManager
from typing import Any

import orjson

from modeldeck.config import Settings
from modeldeck.errors import ValidationFailed
from modeldeck.replica.app import ReplicaConfig
from modeldeck.runtimes.base import DeploymentSpec, Listener, ReplicaState, RuntimeEvent
from modeldeck.runtimes.local import Replica, replica_config

log = logging.getLogger("modeldeck.ray")

CONFIG_ENV = "MODELDECK_RAY_REPLICA_CONFIG"
SERVE_DEPLOYMENT = "replica"
KV_PREFIX = "modeldeck/replica/"
NAMESPACE = "modeldeck"

# Serve's replica states as ours.
REPLICA_STATES = {
    "RUNNING": "ready",
    "STARTING": "starting",
    "UPDATING": "starting",
    "PENDING_MIGRATION": "starting",
    "RECOVERING": "restarting",
    "STOPPING": "stopping",
    "STOPPED": "stopped",
}


def ray_installed() -> bool:
    return importlib.util.find_spec("ray") is not None


def require_ray() -> None:
    """422 unless Ray Serve can be imported (the ``modeldeck[ray]`` extra)."""
    if not ray_installed():
        raise ValidationFailed(
            "runtime 'ray' needs Ray Serve, which is not installed on the platform: "
            "pip install 'modeldeck[ray]'",
            details={"field": "runtime"},
        )


def app_name(spec: DeploymentSpec) -> str:
    """The Serve application (and route prefix) of ``spec``'s deployment on a shared cluster."""
    return f"{spec.name}-{spec.deployment_id[:8]}" if spec.deployment_id else spec.name


@dataclass(eq=False)
class RayEndpoint(Replica):
    """What the gateway picks for a ``ray`` deployment: Serve's proxy route for it."""

    base_url: str = ""

    @property
    def url(self) -> str:
        return self.base_url


@dataclass
class _App:
    spec: DeploymentSpec  # the version that takes the traffic
    endpoint: RayEndpoint
    status: str = "deploying"
    message: str = ""
    replicas: list[ReplicaState] = field(default_factory=list)
    incoming: DeploymentSpec | None = None  # a version Serve is rolling out
    task: asyncio.Task[None] | None = None  # the serve.run under way


class RayUnreachable(Exception):
    """Ray's driver process is gone or cannot connect: the cluster is unreachable."""


class RayCallFailed(Exception):
    """A call to Ray failed in the driver process (its type and words, as text: Ray's own
    exceptions do not always survive pickling)."""


class _Driver:
    """What runs in the driver process: every call to Ray, one connection for all of them."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._lock = threading.Lock()

    def connect(self) -> None:
        with self._lock:
            _guard(_connect_blocking, self.settings)

    def run(self, spec: DeploymentSpec, config: ReplicaConfig) -> None:
        _guard(_serve_run_blocking, spec, config, self.settings)

    def status(self) -> tuple[dict[str, Any], dict[str, dict[int, Any]], str]:
        result: tuple[dict[str, Any], dict[str, dict[int, Any]], str] = _guard(_serve_status)
        return result

    def delete(self, name: str) -> None:
        _guard(_serve_delete, name)

    def disconnect(self) -> None:
        import ray

        _guard(ray.shutdown)


def _guard(call: Any, *args: Any) -> Any:
    try:
        return call(*args)
    except Exception as exc:
        raise RayCallFailed(f"{type(exc).__name__}: {exc}") from None


class _DriverManager(BaseManager):
    pass


_DriverManager.register("Driver", _Driver)


def _driver_process_init(parent: int, reconnect_seconds: int) -> None:
    """In the driver process, before Ray is imported: Ray reads its settings from the
    environment; Ctrl-C is the platform's to handle; the process ends with the platform."""
    os.environ["RAY_gcs_rpc_server_reconnect_timeout_s"] = str(reconnect_seconds)  # noqa: SIM112
    signal.signal(signal.SIGINT, signal.SIG_IGN)

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1)
        os._exit(0)  # the platform is gone (even by SIGKILL): so is its driver

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


class RayDriver:
    """Ray's driver in a process of its own, started on first use and again after it is lost.

    Calls are blocking (run them in a thread); they may run concurrently, each thread on its own
    connection to the driver process. A lost process (the cluster went away for longer than
    ``ray_reconnect_seconds``) or a failed connection raises ``RayUnreachable``; a call Ray
    refuses raises ``RayCallFailed``."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._lock = threading.Lock()
        self._manager: _DriverManager | None = None
        self._driver: Any = None

    def call(self, method: str, *args: Any) -> Any:
        driver = self._ensure()
        try:
            return getattr(driver, method)(*args)
        except (EOFError, OSError) as exc:  # the process died under the call
            self.discard()
            raise RayUnreachable(
                f"lost Ray's driver process ({type(exc).__name__}: {exc}): the cluster was "
                f"unreachable for {self.settings.ray_reconnect_seconds} s"
            ) from None

    def connect(self) -> None:
        try:
            self.call("connect")
        except RayCallFailed as exc:
            self.discard()  # a half-made connection is not tried again
            address = self.settings.ray_address or "this machine"
            raise RayUnreachable(f"cannot connect to Ray ({address}): {exc}") from None

    def _ensure(self) -> Any:
        with self._lock:
            if self._driver is None:
                manager = _DriverManager(ctx=multiprocessing.get_context("spawn"))
                manager.start(
                    _driver_process_init, (os.getpid(), self.settings.ray_reconnect_seconds)
                )
                self._manager = manager
                self._driver = manager.Driver(self.settings)  # type: ignore[attr-defined]
            return self._driver

    def discard(self) -> None:
        """Stop the driver process, if any; the next call starts a new one."""
        with self._lock:
            manager, self._manager, self._driver = self._manager, None, None
        if manager is not None:
            with contextlib.suppress(Exception):
                manager.shutdown()


class RayRuntime:
    name = "ray"

    def __init__(self, settings: Settings, tracking_uri: str) -> None:
        require_ray()
        self.settings = settings
        self.tracking_uri = tracking_uri
        self._apps: dict[str, _App] = {}
        self._listener: Listener | None = None
        self._connected = False
        self._lock = asyncio.Lock()
        self._poller: asyncio.Task[None] | None = None
        self._driver = RayDriver(settings)
        self._lost = ""  # why the cluster is unreachable, while it is

    # -- lifecycle ----------------------------------------------------------------------------

    async def startup(self, listener: Listener) -> None:
        self._listener = listener
        self._poller = asyncio.get_running_loop().create_task(self._poll_forever())

    async def shutdown(self, *, detach: bool = False) -> None:
        """Stop polling and disconnect; delete the Serve applications unless ``detach`` (they
        keep serving, and the next control plane adopts them)."""
        if self._poller:
            self._poller.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._poller
        if detach:
            for app in self._apps.values():
                if app.task is not None:
                    app.task.cancel()
            if self._apps:
                log.warning("%d Ray Serve application(s) keep serving", len(self._apps))
            self._apps.clear()
        for name in list(self._apps):
            await self.stop(name)
        if self._connected:
            with contextlib.suppress(RayUnreachable, RayCallFailed):
                await asyncio.to_thread(self._driver.call, "disconnect")
            self._connected = False
        await asyncio.to_thread(self._driver.discard)

    async def _connect(self) -> None:
        async with self._lock:
            if not self._connected:
                await asyncio.to_thread(self._driver.connect)
                self._connected = True

    # -- operations ---------------------------------------------------------------------------

    async def deploy(self, spec: DeploymentSpec) -> None:
        app = self._apps.get(spec.name)
        if app is None:
            base = f"http://{self.settings.ray_http_host}:{self.settings.ray_http_port}"
            endpoint = RayEndpoint(
                deployment=spec.name, index=0, spec=spec, base_url=f"{base}/{app_name(spec)}"
            )
            app = self._apps[spec.name] = _App(spec=spec, endpoint=endpoint)
        else:
            app.spec = app.endpoint.spec = spec
            app.incoming = None
        app.status, app.message = "deploying", "starting Ray Serve replicas"
        self._run(app, spec)
        await self._emit(app, status="deploying", message=app.message)

    async def rollout(self, spec: DeploymentSpec) -> None:
        """Serve rolls the new version out beside the serving one; it takes the traffic once
        the application is running again (reported as ``rollout="completed"``)."""
        app = self._apps.get(spec.name)
        if app is None or not self.serving(spec.name):
            await self.deploy(spec)
            return
        app.incoming = spec
        self._run(app, spec)
        await self._emit(app)

    def _run(self, app: _App, spec: DeploymentSpec) -> None:
        if app.task is not None:
            app.task.cancel()
        app.task = asyncio.get_running_loop().create_task(self._serve_run(app, spec))

    async def _serve_run(self, app: _App, spec: DeploymentSpec) -> None:
        config = replica_config(self.settings, self.tracking_uri, spec, 0)  # Ray sets the rank
        try:
            await self._connect()
            await asyncio.to_thread(self._driver.call, "run", spec, config)
        except asyncio.CancelledError:
            raise
        except RayUnreachable as exc:
            await self._unreachable(str(exc))
        except Exception as exc:
            log.error("%s: Ray Serve could not run version %s: %s",
                      spec.name, spec.model_version, exc)  # fmt: skip
            message = str(exc) if isinstance(exc, RayCallFailed) else f"{type(exc).__name__}: {exc}"
            await self._failed(app, spec, message)

    async def _failed(self, app: _App, spec: DeploymentSpec, message: str) -> None:
        if self._apps.get(spec.name) is not app:
            return
        message = message[-2000:]
        if app.incoming is spec:
            # A failed rollout: Serve keeps the old version's replicas. Give it the old version
            # back too, so that it replaces one of them that dies with the version that serves.
            app.incoming = None
            await self._emit(app, app.status, message, rollout="failed", version=spec.model_version)
            app.task = asyncio.get_running_loop().create_task(self._serve_run(app, app.spec))
            return
        if spec is not app.spec or app.status != "deploying":
            return  # about a version that no longer matters
        app.status, app.message = "failed", message
        await self._emit(app, status="failed", message=message)

    def serving(self, name: str) -> bool:
        app = self._apps.get(name)
        return (
            app is not None
            and app.status != "failed"
            and any(r.status == "ready" for r in app.replicas)
        )

    def rolling_out(self, name: str) -> str | None:
        app = self._apps.get(name)
        return app.incoming.model_version if app and app.incoming else None

    def running(self, name: str) -> bool:
        return name in self._apps

    async def stop(self, name: str) -> None:
        app = self._apps.pop(name, None)
        if app is None:
            return
        if app.task is not None:
            app.task.cancel()
        if self._connected:
            try:
                await asyncio.to_thread(self._driver.call, "delete", app_name(app.spec))
            except Exception as exc:
                log.error("%s: deleting the Ray Serve application failed: %s", name, exc)
        else:
            log.warning("%s: Ray is unreachable; its Serve application %s is left on the cluster",
                        name, app_name(app.spec))  # fmt: skip

    async def scale(
        self, name: str, replicas: int, autoscaling: dict[str, Any] | None = None
    ) -> None:
        """A fixed count, or (``autoscaling``) Serve's autoscaler between its bounds."""
        app = self._apps.get(name)
        if app is None:
            return
        app.spec.replicas, app.spec.autoscaling = replicas, autoscaling
        if app.incoming is not None:
            app.incoming.replicas, app.incoming.autoscaling = replicas, autoscaling
        self._run(app, app.incoming or app.spec)  # Serve adds or removes replicas in place
        await self._emit(app)

    def replicas(self, name: str) -> list[ReplicaState]:
        app = self._apps.get(name)
        return list(app.replicas) if app else []

    def all_replicas(self) -> list[tuple[DeploymentSpec, ReplicaState]]:
        return [(a.spec, r) for a in self._apps.values() for r in a.replicas]

    # -- routing (used by the gateway) --------------------------------------------------------

    def pick(
        self, name: str, exclude: Replica | None = None, limit: int | None = None
    ) -> Replica | None:
        """The deployment's Serve route while a replica is ready (and, with a ``limit`` per
        replica, fewer than ``limit`` requests per ready replica are in flight)."""
        app = self._apps.get(name)
        # A retry (``exclude``) goes through the proxy again: Serve picks another replica.
        if app is None or not self.serving(name):
            return None
        ready = sum(r.status == "ready" for r in app.replicas)
        if limit is not None and app.endpoint.inflight >= limit * ready:
            return None
        return app.endpoint

    def report_failure(self, replica: Replica, error: str) -> None:
        """The proxy did not answer. Its replicas' states are Serve's (the next poll reads
        them): one failed connection does not take every replica out of rotation."""
        log.warning("%s: Ray Serve's proxy did not answer (%s)", replica.deployment, error)

    def recycle(self, replica: Replica, reason: str) -> None:
        """A request hung: Ray Serve's own health checks restart a stuck replica."""
        log.warning("%s: %s (Ray Serve restarts replicas that fail its health checks)",
                    replica.deployment, reason)  # fmt: skip

    # -- polling ------------------------------------------------------------------------------

    async def _poll_forever(self) -> None:
        interval = max(self.settings.health_interval_seconds, 1.0)
        while True:
            await asyncio.sleep(interval)
            if not self._apps or (not self._connected and not self._lost):
                continue
            try:
                if self._lost:
                    await self._reconnect()
                status, ranks, here = await asyncio.to_thread(self._driver.call, "status")
                await self._update(status, ranks, here)
            except asyncio.CancelledError:
                raise
            except RayUnreachable as exc:
                await self._unreachable(str(exc))
            except Exception as exc:  # Ray refused the call: poll again
                log.error("reading Ray Serve's status failed: %s", exc)

    async def _unreachable(self, reason: str) -> None:
        """The cluster is gone (for now): every ``ray`` deployment is ``unavailable``."""
        self._connected = False
        if not self._lost:
            log.error("Ray is unreachable; ray deployments are unavailable: %s", reason)
        self._lost = reason
        for app in self._apps.values():
            if app.task is not None:
                app.task.cancel()
                app.task = None
            if app.status != "unavailable" or app.replicas:
                app.status, app.message, app.replicas = "unavailable", reason[-2000:], []
                await self._emit(app, status="unavailable", message=app.message)

    async def _reconnect(self) -> None:
        """Connect again after an outage; adopt the Serve applications that kept running (the
        next status reads them) and run again the ones the cluster lost."""
        await self._connect()
        status, _, _ = await asyncio.to_thread(self._driver.call, "status")
        log.info("Ray is reachable again")
        self._lost = ""
        for app in self._apps.values():
            spec = app.incoming or app.spec
            app.status, app.message = "deploying", "Ray is reachable again"
            if app_name(spec) not in status or app.incoming is not None:
                app.message = "Ray is reachable again; starting Ray Serve replicas"
                self._run(app, spec)
            await self._emit(app, status="deploying", message=app.message)

    async def _update(
        self, status: dict[str, Any], ranks: dict[str, dict[int, Any]], here: str
    ) -> None:
        for app in list(self._apps.values()):
            overview = status.get(app_name(app.spec))
            if overview is None:
                continue
            app_status, message, counts = overview
            spec = app.incoming or app.spec
            states = _replica_states(
                counts, ranks.get(app_name(spec), {}), spec.model_version, here
            )
            changed = [r.to_dict() for r in states] != [r.to_dict() for r in app.replicas]
            app.replicas = states
            if app_status == "RUNNING" and (app.task is None or app.task.done()):
                if app.incoming is not None:
                    app.spec, app.incoming = app.incoming, None
                    app.endpoint.spec = app.spec
                    app.status = "deployed"
                    await self._emit(
                        app, status="deployed", rollout="completed", version=app.spec.model_version
                    )
                    continue
                if app.status != "deployed":
                    app.status, app.message = "deployed", ""
                    await self._emit(app, status="deployed")
                    continue
            elif app_status == "DEPLOY_FAILED" and app.status == "deploying" and not app.incoming:
                await self._failed(app, spec, message or "Ray Serve could not deploy it")
                continue
            elif app.status == "deploying" and message and message != app.message:
                # Serve's word on a slow start, such as a replica it cannot place ("Resources
                # required for each replica: {"CPU": 64.0}, total resources available: ...").
                app.message = message[-2000:]
                await self._emit(app, status="deploying", message=app.message)
                continue
            if changed:
                await self._emit(app)

    async def _emit(
        self,
        app: _App,
        status: str | None = None,
        message: str = "",
        rollout: str | None = None,
        version: str = "",
    ) -> None:
        if self._listener is not None:
            await self._listener(
                RuntimeEvent(
                    deployment=app.spec.name,
                    status=status,
                    message=message,
                    replicas=list(app.replicas),
                    rollout=rollout,
                    version=version,
                )
            )


def _replica_states(
    counts: dict[str, int], ranks: dict[int, Any], version: str, here: str
) -> list[ReplicaState]:
    """One state per Serve replica, ready ones first, numbered by rank; pids for replicas that
    run on this machine (the node at ``here``)."""
    statuses = [REPLICA_STATES.get(state, "starting") for state in ("RUNNING",)
                for _ in range(counts.get(state, 0))]  # fmt: skip
    statuses += [
        REPLICA_STATES.get(state, "starting")
        for state, n in sorted(counts.items())
        if state != "RUNNING"
        for _ in range(n)
    ]
    states = []
    for index, status in enumerate(statuses):
        info = ranks.get(index) if status == "ready" else None
        states.append(
            ReplicaState(
                index=index,
                status=status,
                pid=info["pid"] if info and info.get("node") == here else None,
                port=None,
                restarts=0,
                last_error="",
                started_at=info.get("started_at") if info else None,
                version=info.get("version", version) if info else version,
            )
        )
    return states


def _connect_blocking(settings: Settings) -> None:
    """In the driver process: connect to the cluster (or start one here) and Serve."""
    import ray
    from ray import serve

    address = settings.ray_address
    if not ray.is_initialized():
        if address:
            ray.init(address=address, namespace=NAMESPACE, log_to_driver=False)
        else:
            try:
                ray.init(address="auto", namespace=NAMESPACE, log_to_driver=False)
            except ConnectionError:  # no Ray on this machine: start one
                ray.init(namespace=NAMESPACE, include_dashboard=False, log_to_driver=False)
    serve.start(http_options={"host": settings.ray_http_host, "port": settings.ray_http_port})
    log.info("connected to Ray (%s)", address or "this machine")


def _serve_run_blocking(spec: DeploymentSpec, config: ReplicaConfig, settings: Settings) -> None:
    from ray import serve

    name = app_name(spec)
    serve.run(_application(spec, config, settings), name=name, route_prefix=f"/{name}")


def _serve_delete(name: str) -> None:
    from ray import serve

    serve.delete(name)
    _forget(name)


def _serve_status() -> tuple[dict[str, Any], dict[str, dict[int, Any]], str]:
    """Every application's (status, message, replica state counts), what each replica wrote
    about itself by application and rank, and the address of this machine's node."""
    import ray
    from ray import serve
    from ray.experimental import internal_kv

    apps: dict[str, Any] = {}
    for name, overview in serve.status().applications.items():
        deployment = overview.deployments.get(SERVE_DEPLOYMENT)
        counts = {str(getattr(k, "value", k)): v for k, v in (
            deployment.replica_states.items() if deployment else ()
        )}  # fmt: skip
        message = overview.message or (deployment.message if deployment else "")
        apps[name] = (str(getattr(overview.status, "value", overview.status)), message, counts)
    ranks: dict[str, dict[int, Any]] = {}
    for key in internal_kv._internal_kv_list(KV_PREFIX, namespace=NAMESPACE):
        value = internal_kv._internal_kv_get(key, namespace=NAMESPACE)
        if value:
            info = orjson.loads(value)
            ranks.setdefault(info["deployment"], {})[info["rank"]] = info
    return apps, ranks, ray.util.get_node_ip_address()  # type: ignore[no-untyped-call]


def _forget(name: str) -> None:
    """Remove what the replicas of ``name`` wrote about themselves."""
    from ray.experimental import internal_kv

    for key in internal_kv._internal_kv_list(f"{KV_PREFIX}{name}/", namespace=NAMESPACE):
        internal_kv._internal_kv_del(key, namespace=NAMESPACE)


def _application(spec: DeploymentSpec, config: ReplicaConfig, settings: Settings) -> Any:
    """The Serve application of ``spec``: one deployment whose replicas build the replica app."""
    from ray import serve

    @serve.ingress(build_replica_app)
    class ModeldeckReplica:
        pass

    actor_options: dict[str, Any] = {
        "num_cpus": spec.cpu or 1,
        "runtime_env": {"env_vars": {**spec.environment, CONFIG_ENV: config.to_json()}},
    }
    if spec.memory_mb:
        actor_options["memory"] = spec.memory_mb * 1024 * 1024
    # Everything the replicas start with but their count: an unchanged version is scaled in
    # place, and run again (a restored deployment) it is left running.
    version = hashlib.sha256(
        orjson.dumps(
            [actor_options, settings.replica_max_concurrency, sys.executable],
            option=orjson.OPT_SORT_KEYS,
        )
    ).hexdigest()[:16]
    scaling: dict[str, Any] = {"num_replicas": spec.replicas}
    if spec.autoscaling is not None:
        scaling = {"autoscaling_config": autoscaling_config(spec.autoscaling, spec.replicas)}
    deployment: Any = serve.deployment(
        ModeldeckReplica,
        name=SERVE_DEPLOYMENT,
        max_ongoing_requests=settings.replica_max_concurrency,
        ray_actor_options=actor_options,
        **scaling,
    )
    # Serve gives a deployment run from Python a random code version unless it has one, and
    # replaces every replica when the version changes. Its public ``version`` option is gone
    # ("Serve manages deployment versions internally": the declarative config API hashes the
    # import path); the internal one is what keeps an unchanged deployment's replicas.
    deployment = deployment.options(version=version, _internal=True)
    return deployment.bind()


def autoscaling_config(policy: dict[str, Any], replicas: int) -> dict[str, Any]:
    """Our autoscaling policy as Ray Serve's ``autoscaling_config``: the same bounds, target
    (Serve's ongoing requests per replica count the ones queued at its handles, as our in-flight
    count counts the ones queued at the gateway) and delays; it starts with ``replicas``."""
    return {
        "min_replicas": policy["min_replicas"],
        "max_replicas": policy["max_replicas"],
        "initial_replicas": replicas,
        "target_ongoing_requests": policy["target_inflight"],
        "upscale_delay_s": policy["scale_up_delay_seconds"],
        "downscale_delay_s": policy["scale_down_delay_seconds"],
    }


def build_replica_app() -> Any:
    """Run by each Ray replica as it starts: load the model, serve the replica app."""
    import time

    import ray
    from ray import serve
    from ray.experimental import internal_kv

    from modeldeck.replica.app import create_replica_app, load_replica

    config = ReplicaConfig.from_json(os.environ[CONFIG_ENV])
    logging.basicConfig(level=config.log_level.upper())
    rank = getattr(serve.get_replica_context(), "rank", 0)
    config.replica = int(getattr(rank, "rank", rank) or 0)
    model, writer = load_replica(config)
    app = serve.get_replica_context().replica_id.deployment_id.app_name
    internal_kv._internal_kv_put(
        f"{KV_PREFIX}{app}/{config.replica}",
        orjson.dumps(
            {
                "deployment": app,
                "rank": config.replica,
                "pid": os.getpid(),
                "node": ray.util.get_node_ip_address(),  # type: ignore[no-untyped-call]
                "version": config.model_version,
                "started_at": time.time(),
            }
        ),
        namespace=NAMESPACE,
    )
    return create_replica_app(config, model, writer if config.track_metrics else None)
