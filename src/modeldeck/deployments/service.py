"""Deployments: create, list, get, stop, start, scale, delete, and bring back after a restart.

Knows nothing of HTTP. State lives in the store; the runtime runs the replicas and reports what
happens to them, which this service records. An in-memory routing table answers the gateway's
per-request questions (does this deployment exist, which key hash does it expect) without a
database round trip.
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import logging
import uuid
from collections.abc import Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Select, select
from sqlalchemy.orm import selectinload

from modeldeck.builds.environment import ISOLATED
from modeldeck.builds.models import BuildView, EnvironmentView, PruneResult
from modeldeck.builds.service import BuildOutcome, BuildService
from modeldeck.config import Settings
from modeldeck.deployments.crn import deployment_crn
from modeldeck.deployments.local import LocalRuntime
from modeldeck.deployments.models import (
    AccessKeyView,
    DeploymentCreate,
    DeploymentCreated,
    DeploymentView,
    RedeployRequest,
    ReplicaView,
)
from modeldeck.deployments.runtime import DeploymentSpec, RuntimeEvent
from modeldeck.errors import Conflict, NotFound, ValidationFailed
from modeldeck.keys import KeyHash, NewKey, hash_key, new_access_key
from modeldeck.registry import Registry, parse_version_spec
from modeldeck.store import Store
from modeldeck.store.schema import DeploymentRow, ReplicaRow, utcnow

log = logging.getLogger("modeldeck.deployments")


@dataclass(frozen=True)
class RouteEntry:
    """What the gateway needs to know about a deployment on every request."""

    name: str
    auth_enabled: bool
    key_hash: str | None
    crn: str
    version: str
    source: str = "registry"
    deployment_id: str = ""


class DeploymentService:
    def __init__(
        self, settings: Settings, store: Store, registry: Registry, runtime: LocalRuntime
    ) -> None:
        self.settings = settings
        self.store = store
        self.registry = registry
        self.runtime = runtime
        self._routes: dict[str, RouteEntry] = {}
        self._by_key: dict[str, str] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self.builds = BuildService(settings, store, registry, in_use=self._environments_in_use)

    async def shutdown(self) -> None:
        """Cancel builds in progress (their records say so at the next start)."""
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    # -- routing ------------------------------------------------------------------------------

    def route(self, name: str) -> RouteEntry | None:
        return self._routes.get(name)

    def route_by_key(self, access_key: str) -> RouteEntry | None:
        name = self._by_key.get(hash_key(access_key))
        return self._routes.get(name) if name else None

    def _set_route(self, row: DeploymentRow) -> None:
        old = self._routes.get(row.name)
        if old and old.key_hash:
            self._by_key.pop(old.key_hash, None)
        self._routes[row.name] = RouteEntry(
            name=row.name,
            auth_enabled=row.auth_enabled,
            key_hash=row.access_key_hash,
            crn=row.crn,
            version=row.model_version,
            source=row.source,
            deployment_id=row.id,
        )
        if row.access_key_hash:
            self._by_key[row.access_key_hash] = row.name

    def _drop_route(self, name: str) -> None:
        old = self._routes.pop(name, None)
        if old and old.key_hash:
            self._by_key.pop(old.key_hash, None)

    # -- lifecycle ----------------------------------------------------------------------------

    async def restore(self) -> None:
        """Bring back every deployment that should be running (after a platform restart)."""
        await asyncio.to_thread(self.builds.fail_unfinished)
        rows = await asyncio.to_thread(self._all_rows)
        for row in rows:
            self._set_route(row)
            if row.desired_state == "running" and row.kind == "endpoint":
                log.info("restoring deployment %s (%s)", row.name, row.model_uri)
                await self._set_status(row.name, "deploying", "restoring after restart")
                await self._launch(row, "restore")

    async def on_runtime_event(self, event: RuntimeEvent) -> None:
        await asyncio.to_thread(self._record_event, event)

    # -- operations ---------------------------------------------------------------------------

    async def create(
        self, request: DeploymentCreate, *, access_key: KeyHash | None = None
    ) -> DeploymentCreated:
        """Deploy; ``access_key`` is a key issued elsewhere (a Cloudera-style model's) to use
        instead of a new one, in which case the result carries no key."""
        async with self._lock(request.name):
            if await asyncio.to_thread(self._find, request.name) is not None:
                raise Conflict(
                    f"deployment {request.name!r} already exists",
                    details={"deployment": request.name},
                )
            row = await self._new_row(request)
            await asyncio.to_thread(self._insert, row)
            if row.kind == "batch":
                return DeploymentCreated(**(await self.get(row.name)).model_dump(), access_key=None)
            key: NewKey | None = None
            stored = access_key
            if stored is None:
                key = new_access_key()
                stored = KeyHash(key.hash, key.prefix)
            await self._update(
                row.name, access_key_hash=stored.hash, access_key_prefix=stored.prefix
            )
            row = await self._require(row.name)
            if not request.auth_enabled:
                log.warning(
                    "deployment %s has authentication DISABLED: anyone who can reach the "
                    "platform can call it",
                    request.name,
                )
            self._set_route(row)
            await self._launch(row, "deploy")
            view = await self.get(request.name)
            return DeploymentCreated(**view.model_dump(), access_key=key.plaintext if key else None)

    async def redeploy(self, request: DeploymentCreate) -> DeploymentView:
        """Serve another model version (or file) under an existing deployment.

        The name, access key and recorded metrics stay; the replicas are replaced by the
        runtime (the old ones stop before the new ones start). With an isolated environment
        (``env_manager`` ``uv``/``virtualenv``, given or the deployment's) the new version's
        build runs first, in the background, while the old version keeps serving; a failed
        build leaves it serving.
        """
        async with self._lock(request.name):
            current = await self._require_endpoint(request.name)
            new = await self._new_row(request)
            env_manager = request.env_manager or current.env_manager
            if env_manager in ISOLATED and new.source == "registry":
                build = await self.builds.queue(
                    current,
                    model_name=new.model_name,
                    model_version=new.model_version,
                    model_uri=new.model_uri,
                    env_manager=env_manager,
                    reason="redeploy",
                )
                await self._update(
                    request.name,
                    status="building",
                    status_message=f"build {build.id} of version {new.model_version}; version "
                    f"{current.model_version} serves meanwhile",
                )
                self._background(
                    self._redeploy_when_built(
                        current.id, current.status, new, env_manager, build.id
                    )
                )
                return await self.get(request.name)
            await self._apply_redeploy(request.name, new, env_manager, None)
            return await self.get(request.name)

    async def redeploy_version(self, name: str, request: RedeployRequest) -> DeploymentView:
        """Serve another version (of the same registered model unless ``request.model`` names
        one) with the deployment's replicas, resources and settings."""
        row = await self._require_endpoint(name)
        if row.source != "registry" and request.model is None:
            raise ValidationFailed(
                f"deployment {name!r} serves a file: name a registered model to redeploy",
                details={"field": "model"},
            )
        create = DeploymentCreate(
            name=name,
            model=request.model or row.model_name,
            version=request.version,
            alias=request.alias,
            replicas=row.replicas,
            cpu=row.cpu,
            memory_mb=row.memory_mb,
            environment=dict(row.environment or {}),
            auth_enabled=row.auth_enabled,
            track_metrics=row.track_metrics,
            env_manager=request.env_manager,
        )
        return await self.redeploy(create)

    async def _redeploy_when_built(
        self,
        deployment_id: str,
        previous_status: str,
        new: DeploymentRow,
        env_manager: str,
        build_id: str,
    ) -> None:
        outcome = await self.builds.run(build_id)
        async with self._lock(new.name):
            row = await asyncio.to_thread(self._find, new.name)
            if (
                row is None
                or row.id != deployment_id
                or not await self._latest_build(row, build_id)
            ):
                return  # deleted, replaced, or a later build supersedes this one
            if not outcome.ok:
                serving = self.runtime.running(new.name)
                status = row.status
                if status == "building":
                    status = (
                        previous_status if serving and previous_status != "building" else "failed"
                    )
                kept = f"version {row.model_version} keeps serving" if serving else "nothing serves"
                await self._update(
                    new.name,
                    status=status,
                    status_message=f"build {build_id} of version {new.model_version} failed; "
                    f"{kept}: {outcome.message}",
                )
                return
            if row.desired_state != "running":
                return  # stopped while it built
            await self._apply_redeploy(new.name, new, env_manager, outcome)

    async def _apply_redeploy(
        self, name: str, new: DeploymentRow, env_manager: str, outcome: BuildOutcome | None
    ) -> None:
        await self._update(
            name,
            model_name=new.model_name,
            model_version=new.model_version,
            version_spec=new.version_spec,
            model_uri=new.model_uri,
            signature=new.signature,
            source=new.source,
            file_path=new.file_path,
            function_name=new.function_name,
            replicas=new.replicas,
            cpu=new.cpu,
            memory_mb=new.memory_mb,
            environment=new.environment,
            auth_enabled=new.auth_enabled,
            track_metrics=new.track_metrics,
            env_manager=env_manager,
            desired_state="running",
            status="deploying",
            status_message="",
        )
        await asyncio.to_thread(self._trim_replicas, name, new.replicas)
        row = await self._require(name)
        self._set_route(row)
        await self.runtime.deploy(_spec(row, outcome))

    async def _launch(self, row: DeploymentRow, reason: str) -> None:
        """Start ``row``'s replicas: at once in the platform's environment, or, with an
        isolated one, once its build (usually a cache hit) has it ready."""
        if row.env_manager not in ISOLATED or row.source != "registry":
            await self.runtime.deploy(_spec(row))
            return
        build = await self.builds.queue(
            row,
            model_name=row.model_name,
            model_version=row.model_version,
            model_uri=row.model_uri,
            env_manager=row.env_manager,
            reason=reason,
        )
        await self._update(
            row.name,
            status="building",
            status_message=f"build {build.id}: the {row.env_manager} environment of version "
            f"{row.model_version}",
        )
        self._background(self._deploy_when_built(row.name, row.id, build.id))

    async def _deploy_when_built(self, name: str, deployment_id: str, build_id: str) -> None:
        outcome = await self.builds.run(build_id)
        async with self._lock(name):
            row = await asyncio.to_thread(self._find, name)
            if row is None or row.id != deployment_id or row.desired_state != "running":
                return  # deleted or stopped while it built
            if not await self._latest_build(row, build_id):
                return
            if not outcome.ok:
                await self._update(
                    name, status="failed", status_message=f"build {build_id} failed: "
                    f"{outcome.message}",
                )  # fmt: skip
                return
            await self.runtime.deploy(_spec(row, outcome))

    async def _latest_build(self, row: DeploymentRow, build_id: str) -> bool:
        latest = await self.builds.latest(row.id)
        return latest is None or latest.id == build_id

    def _background(self, work: Coroutine[Any, Any, None]) -> None:
        async def run() -> None:
            try:
                await work
            except asyncio.CancelledError:
                raise
            except Exception:  # recorded in the log; the deployment keeps its last status
                log.exception("background deployment work failed")

        task = asyncio.get_running_loop().create_task(run())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _environments_in_use(self) -> set[str]:
        return {spec.env_key for spec, _ in self.runtime.all_replicas() if spec.env_key}

    # -- builds -------------------------------------------------------------------------------

    async def list_builds(self, name: str) -> builtins.list[BuildView]:
        return await self.builds.list(await self._require(name))

    async def get_build(self, name: str, build_id: str) -> BuildView:
        return await self.builds.get(await self._require(name), build_id)

    async def environments(self) -> builtins.list[EnvironmentView]:
        return await self.builds.environments()

    async def prune_environments(self) -> PruneResult:
        """Remove every cached environment and downloaded model no running replica uses."""
        models = {spec.model_path for spec, _ in self.runtime.all_replicas() if spec.model_path}
        return await self.builds.prune(models)

    async def _new_row(self, request: DeploymentCreate) -> DeploymentRow:
        deployment_id = str(uuid.uuid4())
        row = DeploymentRow(
            id=deployment_id,
            name=request.name,
            crn=deployment_crn(deployment_id),
            model_name="",
            model_version="",
            version_spec="",
            model_uri="",
            runtime=self.runtime.name,
            replicas=request.replicas,
            cpu=request.cpu,
            memory_mb=request.memory_mb,
            environment=request.environment,
            auth_enabled=request.auth_enabled,
            env_manager=request.env_manager or "local",
            desired_state="running",
            status="pending",
            status_message="",
            kind=request.kind,
            source="registry",
            track_metrics=request.track_metrics,
        )
        if request.model:
            spec = parse_version_spec(request.version, request.alias)
            resolved = await asyncio.to_thread(self.registry.resolve, request.model, spec)
            row.model_name = resolved.name
            row.model_version = resolved.version
            row.version_spec = resolved.spec
            row.model_uri = resolved.uri
            if request.kind == "endpoint":
                row.signature = await asyncio.to_thread(self.registry.signature, resolved)
        elif request.file:
            row.source = "file"
            row.file_path = _python_file(request.file)
            row.function_name = request.function
            row.model_name = Path(row.file_path).stem
        if request.kind == "batch":
            row.runtime = "none"
            row.replicas = 0
            row.desired_state = "stopped"
            row.status = "active"
        return row

    async def list(self) -> list[DeploymentView]:
        rows = await asyncio.to_thread(self._all_rows)
        return [self._view(r) for r in rows]

    async def get(self, name: str) -> DeploymentView:
        return self._view(await self._require(name))

    async def stop(self, name: str) -> DeploymentView:
        async with self._lock(name):
            await self._require_endpoint(name)
            await self._update(name, desired_state="stopped", status="stopping", status_message="")
            await self.runtime.stop(name)
            await self._update(name, status="stopped")
            await asyncio.to_thread(self._mark_replicas, name, "stopped")
            return await self.get(name)

    async def start(self, name: str) -> DeploymentView:
        async with self._lock(name):
            row = await self._require_endpoint(name)
            if (self.runtime.running(name) or row.status == "building") and row.status not in (
                "failed",
                "stopped",
            ):
                return self._view(row)
            await self._update(name, desired_state="running", status="deploying", status_message="")
            await self._launch(await self._require(name), "start")
            return await self.get(name)

    async def scale(self, name: str, replicas: int) -> DeploymentView:
        async with self._lock(name):
            await self._require_endpoint(name)
            await self._update(name, replicas=replicas)
            await self.runtime.scale(name, replicas)
            await asyncio.to_thread(self._trim_replicas, name, replicas)
            return await self.get(name)

    async def delete(self, name: str) -> None:
        async with self._lock(name):
            await self._require(name)
            await self.runtime.stop(name)
            await asyncio.to_thread(self._delete, name)
            self._drop_route(name)

    async def rotate_key(self, name: str) -> AccessKeyView:
        """Replace the access key; the old one stops working at once."""
        async with self._lock(name):
            await self._require_endpoint(name)
            key = new_access_key()
            await self._update(name, access_key_hash=key.hash, access_key_prefix=key.prefix)
            self._set_route(await self._require(name))
            return AccessKeyView(deployment=name, access_key=key.plaintext)

    # -- store helpers ------------------------------------------------------------------------

    def _lock(self, name: str) -> asyncio.Lock:
        return self._locks.setdefault(name, asyncio.Lock())

    async def _require_endpoint(self, name: str) -> DeploymentRow:
        row = await self._require(name)
        if row.kind != "endpoint":
            raise Conflict(
                f"deployment {name!r} is a batch deployment: it has no endpoint or replicas",
                details={"deployment": name},
            )
        return row

    async def _require(self, name: str) -> DeploymentRow:
        row = await asyncio.to_thread(self._find, name)
        if row is None:
            raise NotFound(f"deployment {name!r} not found", details={"deployment": name})
        return row

    def _find(self, name: str) -> DeploymentRow | None:
        with self.store.read() as session:
            return session.scalars(_select().where(DeploymentRow.name == name)).one_or_none()

    def _all_rows(self) -> builtins.list[DeploymentRow]:
        with self.store.read() as session:
            return list(session.scalars(_select().order_by(DeploymentRow.created_at)))

    def _insert(self, row: DeploymentRow) -> None:
        with self.store.write() as session:
            session.add(row)

    def _delete(self, name: str) -> None:
        with self.store.write() as session:
            row = session.scalars(select(DeploymentRow).where(DeploymentRow.name == name)).one()
            session.delete(row)

    async def _update(self, name: str, **values: object) -> None:
        await asyncio.to_thread(self._update_sync, name, values)

    def _update_sync(self, name: str, values: dict[str, object]) -> None:
        with self.store.write() as session:
            row = session.scalars(select(DeploymentRow).where(DeploymentRow.name == name)).one()
            for key, value in values.items():
                setattr(row, key, value)
            row.updated_at = utcnow()

    async def _set_status(self, name: str, status: str, message: str = "") -> None:
        await self._update(name, status=status, status_message=message)

    def _record_event(self, event: RuntimeEvent) -> None:
        with self.store.write() as session:
            row = session.scalars(
                _select().where(DeploymentRow.name == event.deployment)
            ).one_or_none()
            if row is None:
                return
            if event.status is not None and not (
                row.desired_state == "stopped" and event.status != "stopped"
            ):
                row.status = event.status
                row.status_message = event.message
                row.updated_at = utcnow()
            existing = {r.index: r for r in row.replica_rows}
            for state in event.replicas:
                rep = existing.get(state.index)
                if rep is None:
                    rep = ReplicaRow(deployment_id=row.id, index=state.index)
                    row.replica_rows.append(rep)
                rep.status = state.status
                rep.pid = state.pid
                rep.port = state.port
                rep.restarts = state.restarts
                rep.last_error = state.last_error
                rep.updated_at = utcnow()

    def _mark_replicas(self, name: str, status: str) -> None:
        with self.store.write() as session:
            row = session.scalars(_select().where(DeploymentRow.name == name)).one()
            for rep in row.replica_rows:
                rep.status = status
                rep.pid = None

    def _trim_replicas(self, name: str, replicas: int) -> None:
        with self.store.write() as session:
            row = session.scalars(_select().where(DeploymentRow.name == name)).one()
            for rep in list(row.replica_rows):
                if rep.index >= replicas:
                    row.replica_rows.remove(rep)

    def _view(self, row: DeploymentRow) -> DeploymentView:
        live = {r.index: r for r in self.runtime.replicas(row.name)}
        replica_views = []
        for rep in row.replica_rows:
            state = live.get(rep.index)
            if state is not None:
                replica_views.append(
                    ReplicaView(
                        **{
                            k: v
                            for k, v in state.to_dict().items()
                            if k in ReplicaView.model_fields
                        }
                    )
                )
            else:
                replica_views.append(
                    ReplicaView(
                        index=rep.index,
                        status="stopped" if row.desired_state == "stopped" else rep.status,
                        pid=rep.pid,
                        port=rep.port,
                        restarts=rep.restarts,
                        last_error=rep.last_error,
                    )
                )
        for index, state in sorted(live.items()):
            if index not in {r.index for r in row.replica_rows}:
                replica_views.append(
                    ReplicaView(
                        **{
                            k: v
                            for k, v in state.to_dict().items()
                            if k in ReplicaView.model_fields
                        }
                    )
                )
        return DeploymentView(
            id=row.id,
            name=row.name,
            crn=row.crn,
            model=row.model_name,
            version=row.model_version,
            version_spec=row.version_spec,
            model_uri=row.model_uri,
            runtime=row.runtime,
            status=row.status,
            status_message=row.status_message,
            desired_state=row.desired_state,
            replicas=row.replicas,
            ready_replicas=sum(r.status == "ready" for r in replica_views),
            replica_states=replica_views,
            cpu=row.cpu,
            memory_mb=row.memory_mb,
            environment=row.environment or {},
            auth_enabled=row.auth_enabled,
            access_key_prefix=row.access_key_prefix,
            endpoint_url=(
                f"{self.settings.resolved_public_url()}/deployments/{row.name}/predict"
                if row.kind == "endpoint"
                else ""
            ),
            kind=row.kind,
            source=row.source,
            file_path=row.file_path,
            function_name=row.function_name,
            track_metrics=row.track_metrics,
            signature=row.signature,
            env_manager=row.env_manager,
            created_at=row.created_at,
            updated_at=row.updated_at,
        )


def _python_file(path: str) -> str:
    """An absolute path to an existing ``.py`` file, or a 422 naming the field."""
    candidate = Path(path)
    if not candidate.is_absolute():
        raise ValidationFailed(
            f"file must be an absolute path on the platform's machine, got {path!r}",
            details={"field": "file"},
        )
    resolved = candidate.resolve()
    if resolved.suffix != ".py" or not resolved.is_file():
        raise ValidationFailed(
            f"file {path!r} is not an existing Python (.py) file", details={"field": "file"}
        )
    return str(resolved)


def _select() -> Select[DeploymentRow]:
    return select(DeploymentRow).options(selectinload(DeploymentRow.replica_rows))


def _spec(row: DeploymentRow, build: BuildOutcome | None = None) -> DeploymentSpec:
    spec = DeploymentSpec(
        name=row.name,
        model_uri=row.model_uri,
        model_version=row.model_version,
        replicas=row.replicas,
        crn=row.crn,
        environment=dict(row.environment or {}),
        cpu=row.cpu,
        memory_mb=row.memory_mb,
        deployment_id=row.id,
        model_name=row.model_name,
        track_metrics=row.track_metrics,
        source=row.source,
        file_path=row.file_path,
        function_name=row.function_name,
    )
    env = build.environment if build is not None else None
    if build is not None and env is not None:
        spec.python = env.python
        spec.python_path = build.replica_path
        spec.model_path = build.model_path
        spec.env_key = env.key
        spec.env_packages = sorted(env.model_packages)
    return spec


__all__ = ["DeploymentService", "RouteEntry"]
