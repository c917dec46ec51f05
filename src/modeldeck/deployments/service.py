"""Deployments: create, list, get, stop, start, scale, delete, and bring back after a restart.

Knows nothing of HTTP. State lives in the store; the runtime runs the replicas and reports what
happens to them, which this service records. An in-memory routing table answers the gateway's
per-request questions (does this deployment exist, which key hash does it expect) without a
database round trip.
"""

from __future__ import annotations

import asyncio
import builtins
import logging
import uuid
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Select, select
from sqlalchemy.orm import selectinload

from modeldeck.config import Settings
from modeldeck.deployments.crn import deployment_crn
from modeldeck.deployments.local import LocalRuntime
from modeldeck.deployments.models import (
    AccessKeyView,
    DeploymentCreate,
    DeploymentCreated,
    DeploymentView,
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
        rows = await asyncio.to_thread(self._all_rows)
        for row in rows:
            self._set_route(row)
            if row.desired_state == "running" and row.kind == "endpoint":
                log.info("restoring deployment %s (%s)", row.name, row.model_uri)
                await self._set_status(row.name, "deploying", "restoring after restart")
                await self.runtime.deploy(_spec(row))

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
            await self.runtime.deploy(_spec(row))
            view = await self.get(request.name)
            return DeploymentCreated(**view.model_dump(), access_key=key.plaintext if key else None)

    async def redeploy(self, request: DeploymentCreate) -> DeploymentView:
        """Serve another model version (or file) under an existing deployment.

        The name, access key and recorded metrics stay; the replicas are replaced by the
        runtime (the old ones stop before the new ones start).
        """
        async with self._lock(request.name):
            await self._require_endpoint(request.name)
            new = await self._new_row(request)
            await self._update(
                request.name,
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
                desired_state="running",
                status="deploying",
                status_message="",
            )
            await asyncio.to_thread(self._trim_replicas, request.name, new.replicas)
            row = await self._require(request.name)
            self._set_route(row)
            await self.runtime.deploy(_spec(row))
            return await self.get(request.name)

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
            if self.runtime.running(name) and row.status not in ("failed", "stopped"):
                return self._view(row)
            await self._update(name, desired_state="running", status="deploying", status_message="")
            await self.runtime.deploy(_spec(await self._require(name)))
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


def _spec(row: DeploymentRow) -> DeploymentSpec:
    return DeploymentSpec(
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


__all__ = ["DeploymentService", "RouteEntry"]
