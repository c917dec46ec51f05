"""Deployments: create, list, get, stop, start, scale, redeploy, roll back, delete, and bring
back after a restart.

Knows nothing of HTTP. State lives in the store; the runtime runs the replicas and reports what
happens to them, which this service records. An in-memory routing table answers the gateway's
per-request questions (does this deployment exist, which key hash does it expect) without a
database round trip.

A redeploy of a deployment that serves is a rollout: the new version starts beside the serving
one and the deployment row keeps describing the serving version until the runtime reports that
the new one took the traffic (then the row, the route and the history flip in one write); a new
version that fails to start leaves the row, and the traffic, with the old one. The history
(``deployment_history``) keeps the versions a deployment served, so a rollback can return to the
previous one.

A deployment created (or redeployed) from a registry alias follows it (``track_alias``): the
platform calls ``follow_aliases`` every ``alias_poll_seconds`` and, when the alias points at
another version than the serving one, rolls that version out the same way. A version it will not
follow to (it failed to roll out, or the deployment was rolled back from it) is recorded as
``alias_held_version`` until the alias points elsewhere.
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

from sqlalchemy import Select, delete, select
from sqlalchemy.orm import Session, selectinload

from modeldeck.auth.keys import KeyHash, hash_key, new_access_key
from modeldeck.auth.vault import KeyVault
from modeldeck.builds.environment import ISOLATED
from modeldeck.builds.service import BuildOutcome, BuildService
from modeldeck.config import Settings
from modeldeck.crn import deployment_crn
from modeldeck.datadir import DataDirLock
from modeldeck.deployments.schemas import AutoscalingPolicy, DeploymentCreate, RedeployRequest
from modeldeck.errors import (
    ConfigurationError,
    Conflict,
    NotFound,
    ServiceUnavailable,
    ValidationFailed,
)
from modeldeck.gateway.routes import RouteEntry
from modeldeck.paths import allowed_python_file
from modeldeck.registry import Registry, parse_version_spec
from modeldeck.runtimes.base import DeploymentSpec, RecordedReplica, Runtime, RuntimeEvent
from modeldeck.runtimes.ray import require_ray
from modeldeck.store import Store
from modeldeck.store.schema import DeploymentHistoryRow, DeploymentRow, ReplicaRow, utcnow
from modeldeck.views.builds import BuildView, EnvironmentView, PruneResult
from modeldeck.views.deployments import (
    AccessKeyView,
    AutoscalingView,
    DeploymentCreated,
    DeploymentView,
    ReplicaView,
    RolloutView,
    deployment_warnings,
)

log = logging.getLogger("modeldeck.deployments")

HISTORY_LIMIT = 20  # history entries kept per deployment
# The deployment columns a version brings (and a rollback restores); the rest are settings.
VERSION_COLUMNS = (
    "model_name", "model_version", "version_spec", "model_uri", "source", "file_path",
    "function_name", "env_manager", "signature",
)  # fmt: skip
SETTING_COLUMNS = (
    "replicas", "cpu", "memory_mb", "environment", "auth_enabled", "track_metrics", "track_alias",
)  # fmt: skip


@dataclass
class _Rollout:
    """A version starting beside the serving one: what the deployment row becomes once the
    runtime reports that it took the traffic."""

    version: str
    previous_version: str
    values: dict[str, object]  # VERSION_COLUMNS and SETTING_COLUMNS
    entry_id: int  # its history entry: a new one, or for a rollback the entry returned to
    rollback: bool


class DeploymentService:
    def __init__(
        self,
        settings: Settings,
        store: Store,
        registry: Registry,
        runtime: Runtime,
        vault: KeyVault | None = None,
    ) -> None:
        self.settings = settings
        self.store = store
        self.registry = registry
        self.runtime = runtime
        self.vault = vault or KeyVault(settings)
        self._routes: dict[str, RouteEntry] = {}
        self._by_key: dict[str, str] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._rollouts: dict[str, _Rollout] = {}
        # Deployments whose rollout has ended but whose row does not say so yet: until it
        # does, the row still names the version rolled out from.
        self._landing: set[str] = set()
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
            model_name=row.model_name,
            signature=row.signature,
        )
        if row.access_key_hash:
            self._by_key[row.access_key_hash] = row.name

    def _drop_route(self, name: str) -> None:
        old = self._routes.pop(name, None)
        if old and old.key_hash:
            self._by_key.pop(old.key_hash, None)

    # -- lifecycle ----------------------------------------------------------------------------

    async def restore(self, lock: DataDirLock) -> None:
        """Bring back every deployment that should be running (after a platform restart).

        It rewrites every running deployment to ``deploying``: only the platform that holds
        the data directory's ``lock`` may do that, never a second one started beside it."""
        if not lock.held:
            raise ConfigurationError(
                "deployments are restored only by the platform holding the data directory's lock"
            )
        await asyncio.to_thread(self.builds.fail_unfinished)
        await asyncio.to_thread(self._fail_unfinished_rollouts)
        rows = await asyncio.to_thread(self._all_rows)
        for row in rows:
            self._set_route(row)
            # Replicas an earlier control plane left running: adopted where they run what
            # this one would start, else stopped.
            recorded = recorded_replicas(row)
            if row.desired_state == "running" and row.kind == "endpoint":
                log.info("restoring deployment %s (%s)", row.name, row.model_uri)
                try:
                    await self._set_status(row.name, "deploying", "restoring after restart")
                    await self._launch(row, "restore", adopt=recorded)
                except Exception as exc:  # one deployment never stops the platform starting
                    log.exception("could not restore deployment %s", row.name)
                    await self._fail_restore(row.name, exc)
                    await self.runtime.reap(recorded)
            elif recorded:
                await self.runtime.reap(recorded)

    async def _fail_restore(self, name: str, exc: Exception) -> None:
        message = f"could not be restored after a restart: {exc}"
        try:
            await self.runtime.stop(name)
            await self._update(name, status="failed", status_message=message[:2000])
        except Exception:
            log.exception("could not mark deployment %s failed", name)

    async def on_runtime_event(self, event: RuntimeEvent) -> None:
        rollout = None
        if event.rollout is not None:
            pending = self._rollouts.get(event.deployment)
            if pending is not None and pending.version == event.version:
                rollout = self._rollouts.pop(event.deployment)
                self._landing.add(event.deployment)
        try:
            row = await asyncio.to_thread(self._record_event, event, rollout)
        finally:
            if rollout is not None:
                self._landing.discard(event.deployment)
        if row is not None and rollout is not None and event.rollout == "completed":
            self._set_route(row)

    # -- operations ---------------------------------------------------------------------------

    async def create(
        self, request: DeploymentCreate, *, access_key: KeyHash | None = None
    ) -> DeploymentCreated:
        """Deploy; ``access_key`` is a key issued elsewhere (a Cloudera-style model's) to use
        instead of a new one, in which case the result carries no key. The key is stored as
        its hash and encrypted with the platform's secret."""
        async with self._lock(request.name):
            if await asyncio.to_thread(self._find, request.name) is not None:
                raise Conflict(
                    f"deployment {request.name!r} already exists",
                    details={"deployment": request.name},
                )
            row = await self._new_row(request)
            await asyncio.to_thread(self._insert, row)
            try:
                return await self._start_created(row, request, access_key)
            except Exception:
                # A failed create leaves nothing behind: no row, no route, no replica.
                log.exception("creating deployment %s failed; removing it", request.name)
                with contextlib.suppress(Exception):
                    await self.runtime.stop(request.name)
                self._drop_route(request.name)
                with contextlib.suppress(Exception):
                    await asyncio.to_thread(self._delete, request.name)
                raise

    async def _start_created(
        self, row: DeploymentRow, request: DeploymentCreate, access_key: KeyHash | None
    ) -> DeploymentCreated:
        if row.kind == "batch":
            return _created(await self.get(row.name), None)
        plaintext: str | None = None
        stored = access_key
        if stored is None:
            key = new_access_key()
            plaintext = key.plaintext
            encrypted = await asyncio.to_thread(self.vault.encrypt, key.plaintext)
            stored = KeyHash(key.hash, key.prefix, encrypted)
        await self._update(
            row.name,
            access_key_hash=stored.hash,
            access_key_prefix=stored.prefix,
            access_key_encrypted=stored.encrypted,
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
        return _created(await self.get(request.name), plaintext)

    async def redeploy(self, request: DeploymentCreate) -> DeploymentView:
        """Serve another model version (or file) under an existing deployment.

        The name, access key and recorded metrics stay. While the deployment serves, the new
        version's replicas start beside the old ones and take the traffic only once all are
        healthy (then the old ones drain and stop); if they fail to start the old version keeps
        serving and ``status_message`` says why. With an isolated environment (``env_manager``
        ``uv``/``virtualenv``, given or the deployment's) the new version's build runs first,
        in the background, while the old version keeps serving; a failed build leaves it
        serving.
        """
        async with self._lock(request.name):
            current = await self._require_endpoint(request.name)
            new = await self._new_row(request)
            if new.version_spec.startswith("@") and current.alias_held_version is not None:
                await self._update(request.name, alias_held_version=None)  # asked for explicitly
            env_manager = request.env_manager or current.env_manager
            await self._start_redeploy(current, new, env_manager, "redeploy", None)
            return await self.get(request.name)

    async def rollback(self, name: str) -> DeploymentView:
        """Return to the version the deployment served before its current one, the way a
        redeploy goes (beside the serving version; built first when isolated). 409 when there
        is none: a new deployment, or every earlier version was rolled back from already."""
        async with self._lock(name):
            current = await self._require_endpoint(name)
            target = await asyncio.to_thread(self._rollback_target, current.id)
            if target is None:
                raise Conflict(
                    f"deployment {name!r} has no previous version to roll back to",
                    details={"deployment": name},
                )
            new = _staged(current, {c: getattr(target, c) for c in VERSION_COLUMNS})
            if _follows(current):
                # The alias may still point at the version rolled back from: not followed to
                # again until it points elsewhere (see follow_alias).
                try:
                    held = await self._alias_target(current)
                except (NotFound, ServiceUnavailable):
                    held = current.model_version
                await self._update(name, alias_held_version=held)
            await self._start_redeploy(current, new, target.env_manager, "rollback", target.id)
            return await self.get(name)

    async def follow_aliases(self) -> dict[str, str]:
        """One poll of every deployment that follows an alias (see ``follow_alias``); returns
        the deployments whose alias moved, with the version now rolling out."""
        started: dict[str, str] = {}
        for row in await asyncio.to_thread(self._all_rows):
            if not _follows(row) or row.desired_state != "running":
                continue
            try:
                version = await self.follow_alias(row.name)
            except NotFound as exc:  # the alias (or the model) is gone: keep serving
                log.warning("deployment %s cannot follow its alias: %s", row.name, exc)
                continue
            except Exception:  # an MLflow outage must not stop the other deployments' checks
                log.exception("checking the alias of deployment %s failed", row.name)
                continue
            if version is not None:
                started[row.name] = version
        return started

    async def follow_alias(self, name: str) -> str | None:
        """If ``name`` follows an alias that now points at another version than the serving
        one, roll that version out (the way a redeploy does) and return it.

        Nothing happens while the deployment does not serve, builds or rolls out, nor when the
        alias points at ``alias_held_version`` (a version that failed to roll out, or that the
        deployment was rolled back from); the hold is released once the alias points elsewhere.
        """
        async with self._lock(name):
            # Asked before the row is read: no rollout starts while the lock is held, but
            # one that ends during the read would leave the row read stale.
            if self._rolling_out(name):
                return None
            row = await asyncio.to_thread(self._find, name)
            if (
                row is None
                or not _follows(row)
                or row.desired_state != "running"
                or row.status == "building"
                or not self.runtime.serving(name)
            ):
                return None
            target = await self._alias_target(row)
            if target in (row.model_version, row.alias_held_version):
                if target == row.model_version and row.alias_held_version is not None:
                    await self._update(name, alias_held_version=None)  # the alias moved back
                return None
            new = await self._new_row(
                _redeploy_create(row, RedeployRequest(alias=row.version_spec))
            )
            if new.model_version in (row.model_version, row.alias_held_version):
                return None  # it moved again since
            log.info(
                "deployment %s: alias %s of %s moved from version %s to %s; rolling it out",
                name, row.version_spec, row.model_name, row.model_version, new.model_version,
            )  # fmt: skip
            await self._update(name, alias_held_version=None)
            await self._start_redeploy(row, new, row.env_manager, "alias", None)
            return new.model_version

    async def candidate_spec(
        self,
        name: str,
        version: str | None,
        alias: str | None,
        replicas: int,
        *,
        require_serving: bool = True,
    ) -> tuple[DeploymentRow, DeploymentSpec]:
        """The serving deployment ``name`` and what its canary candidate (another version of
        its registered model, ``replicas`` replicas, the deployment's settings) runs.
        ``require_serving=False``: a canary resumed at start-up, its replicas still starting."""
        row = await self._require_endpoint(name)
        if row.source != "registry":
            raise ValidationFailed(
                f"deployment {name!r} serves a file: a canary needs a registered model",
                details={"deployment": name},
            )
        if row.runtime != "local":
            raise ValidationFailed(
                f"deployment {name!r} runs on {row.runtime}: canaries run on the local runtime",
                details={"deployment": name},
            )
        if row.env_manager in ISOLATED:
            raise ValidationFailed(
                f"deployment {name!r} runs in an isolated environment ({row.env_manager}): "
                "canaries run in the platform's environment only",
                details={"deployment": name},
            )
        if require_serving and not self.runtime.serving(name):
            raise Conflict(
                f"deployment {name!r} does not serve: a canary runs beside a serving version",
                details={"deployment": name},
            )
        request = _redeploy_create(row, RedeployRequest(version=version, alias=alias))
        request.replicas = replicas
        new = await self._new_row(request)
        spec = _spec(new)
        spec.deployment_id, spec.crn = row.id, row.crn
        return row, spec

    async def _alias_target(self, row: DeploymentRow) -> str:
        resolved = await asyncio.to_thread(self.registry.resolve, row.model_name, row.version_spec)
        return resolved.version

    async def _start_redeploy(
        self,
        current: DeploymentRow,
        new: DeploymentRow,
        env_manager: str,
        reason: str,
        rollback_to: int | None,
    ) -> None:
        if env_manager in ISOLATED and new.source == "registry":
            build = await self.builds.queue(
                current,
                model_name=new.model_name,
                model_version=new.model_version,
                model_uri=new.model_uri,
                env_manager=env_manager,
                reason=reason,
            )
            await self._update(
                current.name,
                status="building",
                status_message=f"build {build.id} of version {new.model_version}; version "
                f"{current.model_version} serves meanwhile",
            )
            self._background(
                self._redeploy_when_built(
                    current.id, current.status, new, env_manager, build.id, rollback_to, reason
                )
            )
            return
        await self._apply_redeploy(current.name, new, env_manager, None, rollback_to, reason)

    async def redeploy_version(self, name: str, request: RedeployRequest) -> DeploymentView:
        """Serve another version (of the same registered model unless ``request.model`` names
        one) with the deployment's replicas, resources and settings."""
        row = await self._require_endpoint(name)
        if row.source != "registry" and request.model is None:
            raise ValidationFailed(
                f"deployment {name!r} serves a file: name a registered model to redeploy",
                details={"field": "model"},
            )
        return await self.redeploy(_redeploy_create(row, request))

    async def _redeploy_when_built(
        self,
        deployment_id: str,
        previous_status: str,
        new: DeploymentRow,
        env_manager: str,
        build_id: str,
        rollback_to: int | None = None,
        reason: str = "redeploy",
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
                    alias_held_version=(
                        new.model_version
                        if _holds(row, new.version_spec, rollback_to is not None)
                        else row.alias_held_version
                    ),
                )
                return
            if row.desired_state != "running":
                return  # stopped while it built
            await self._apply_redeploy(new.name, new, env_manager, outcome, rollback_to, reason)

    async def _apply_redeploy(
        self,
        name: str,
        new: DeploymentRow,
        env_manager: str,
        outcome: BuildOutcome | None,
        rollback_to: int | None = None,
        reason: str = "redeploy",
    ) -> None:
        """Serve ``new``: beside the serving version (a rollout), or, when nothing serves,
        in place of whatever there is."""
        new.env_manager = env_manager
        values: dict[str, object] = {
            **_version_values(new),
            **{c: getattr(new, c) for c in SETTING_COLUMNS},
        }
        superseded_by = f"superseded by version {new.model_version}"
        current = await self._require(name)
        if current.desired_state != "running" or not self.runtime.serving(name):
            await self._cancel_rollout(name, superseded_by)  # deploy stops its replicas
            await asyncio.to_thread(self._replace, name, values, rollback_to)
            row = await self._require(name)
            self._set_route(row)
            await self.runtime.deploy(_spec(row, outcome))
            return
        entry_id = rollback_to
        if entry_id is None:
            entry_id = await asyncio.to_thread(self._begin_entry, current, values, reason)
        verb = "rolling back to" if rollback_to is not None else "rolling out"
        await self._update(
            name,
            status="deploying",
            status_message=f"{verb} version {new.model_version} beside version "
            f"{current.model_version}, which serves until the new replicas are healthy",
        )
        # Re-read: a rollout this one supersedes may have completed meanwhile. From here to
        # the runtime's abandoning that rollout's replicas nothing awaits.
        current = await self._require(name)
        superseded = self._rollouts.pop(name, None)
        self._rollouts[name] = _Rollout(
            version=new.model_version,
            previous_version=current.model_version,
            values=values,
            entry_id=entry_id,
            rollback=rollback_to is not None,
        )
        await self.runtime.rollout(_spec(_staged(current, values), outcome))
        if superseded is not None:
            await asyncio.to_thread(self._end_rollout_entry, superseded, superseded_by)

    async def _launch(
        self, row: DeploymentRow, reason: str, adopt: builtins.list[RecordedReplica] | None = None
    ) -> None:
        """Start ``row``'s replicas: at once in the platform's environment, or, with an
        isolated one, once its build (usually a cache hit) has it ready. ``adopt``: replica
        processes left running by an earlier control plane (see ``DeploymentSpec.adopt``)."""
        if row.env_manager not in ISOLATED or row.source != "registry":
            spec = _spec(row)
            spec.adopt = list(adopt or [])
            await self.runtime.deploy(spec)
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
        self._background(self._deploy_when_built(row.name, row.id, build.id, adopt or []))

    async def _deploy_when_built(
        self,
        name: str,
        deployment_id: str,
        build_id: str,
        adopt: builtins.list[RecordedReplica] | None = None,
    ) -> None:
        outcome = await self.builds.run(build_id)
        async with self._lock(name):
            row = await asyncio.to_thread(self._find, name)
            if row is None or row.id != deployment_id or row.desired_state != "running":
                await self.runtime.reap(adopt or [])
                return  # deleted or stopped while it built
            if not await self._latest_build(row, build_id):
                return
            if not outcome.ok:
                await self._update(
                    name, status="failed", status_message=f"build {build_id} failed: "
                    f"{outcome.message}",
                )  # fmt: skip
                await self.runtime.reap(adopt or [])
                return
            spec = _spec(row, outcome)
            spec.adopt = list(adopt or [])
            await self.runtime.deploy(spec)

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
            runtime=request.runtime or self.settings.default_runtime,
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
            track_alias=False,
            autoscaling=(
                request.autoscaling.model_dump() if request.autoscaling is not None else None
            ),
        )
        if request.model:
            spec = parse_version_spec(request.version, request.alias)
            resolved = await asyncio.to_thread(self.registry.resolve, request.model, spec)
            row.model_name = resolved.name
            row.model_version = resolved.version
            row.version_spec = resolved.spec
            row.model_uri = resolved.uri
            row.track_alias = request.track_alias and resolved.spec.startswith("@")
            if request.kind == "endpoint":
                row.signature = await asyncio.to_thread(self.registry.signature, resolved)
        elif request.file:
            row.source = "file"
            row.file_path = allowed_python_file(request.file, self.settings)
            row.function_name = request.function
            row.model_name = Path(row.file_path).stem
        if row.runtime == "ray" and request.kind == "endpoint":
            require_ray()
            if row.env_manager in ISOLATED:
                raise ValidationFailed(
                    "runtime 'ray' runs replicas in the Ray cluster's Python: env_manager "
                    f"{row.env_manager!r} is for the local runtime",
                    details={"field": "env_manager"},
                )
        if request.kind == "batch":
            row.runtime = "none"
            row.autoscaling = None
            row.replicas = 0
            row.desired_state = "stopped"
            row.status = "active"
        return row

    async def list(self, *, reveal_keys: bool = False) -> list[DeploymentView]:
        """Every deployment; ``reveal_keys``: with their access keys, for callers that may
        read them."""
        rows = await asyncio.to_thread(self._all_rows)
        return [self._view(r, reveal_keys) for r in rows]

    async def get(self, name: str, *, reveal_key: bool = False) -> DeploymentView:
        return self._view(await self._require(name), reveal_key)

    async def stop(self, name: str) -> DeploymentView:
        async with self._lock(name):
            await self._require_endpoint(name)
            await self._update(name, desired_state="stopped", status="stopping", status_message="")
            await self._cancel_rollout(name, "stopped during the rollout")
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

    async def scale(
        self,
        name: str,
        replicas: int | None = None,
        autoscaling: AutoscalingPolicy | None = None,
    ) -> DeploymentView:
        """A fixed count of ``replicas`` (ending autoscaling), or the ``autoscaling`` policy
        from now on (the count brought into its bounds at once). Replicas taken away drain
        first: their requests in flight finish."""
        async with self._lock(name):
            row = await self._require_endpoint(name)
            policy = autoscaling.model_dump() if autoscaling is not None else None
            if autoscaling is not None:
                replicas = autoscaling.clamp(row.replicas)
            if replicas is None:
                raise ValidationFailed(
                    "give either 'replicas' (a fixed count) or 'autoscaling'",
                    details={"field": "replicas"},
                )
            await self._update(name, replicas=replicas, autoscaling=policy)
            await self._resize(name, replicas, policy)
            return await self.get(name)

    async def autoscale(self, name: str, replicas: int) -> int | None:
        """The autoscaler's way to scale: to ``replicas`` (within the policy's bounds) unless
        the deployment no longer autoscales on the local runtime, does not run, builds or rolls
        out. Returns the count it had, ``None`` when nothing changed."""
        async with self._lock(name):
            # Asked before the row is read: no rollout starts while the lock is held, but
            # one that ends during the read would leave the row read stale.
            if self._rolling_out(name):
                return None
            row = await asyncio.to_thread(self._find, name)
            if (
                row is None
                or row.autoscaling is None
                or row.kind != "endpoint"
                or row.runtime != "local"
                or row.desired_state != "running"
                or row.status == "building"
                or self.runtime.rolling_out(name) is not None
                or not self.runtime.serving(name)
            ):
                return None
            replicas = AutoscalingPolicy.model_validate(row.autoscaling).clamp(replicas)
            if replicas == row.replicas:
                return None
            await self._update(name, replicas=replicas)
            await self._resize(name, replicas, row.autoscaling)
            return row.replicas

    async def _resize(self, name: str, replicas: int, policy: dict[str, Any] | None) -> None:
        rollout = self._rollouts.get(name)
        if rollout is not None:  # the version rolling out comes up with the new count
            rollout.values["replicas"] = replicas
        if self.runtime.running(name):
            # Its event updates the replica rows.
            await self.runtime.scale(name, replicas, policy)
        else:
            await asyncio.to_thread(self._trim_replicas, name, replicas)

    async def delete(self, name: str) -> None:
        async with self._lock(name):
            await self._require(name)
            self._rollouts.pop(name, None)
            await self.runtime.stop(name)
            await asyncio.to_thread(self._delete, name)
            self._drop_route(name)

    async def rotate_key(self, name: str) -> AccessKeyView:
        """Replace the access key; the old one stops working at once. (A key made before keys
        were kept encrypted becomes readable this way.)"""
        async with self._lock(name):
            await self._require_endpoint(name)
            key = new_access_key()
            encrypted = await asyncio.to_thread(self.vault.encrypt, key.plaintext)
            await self._update(
                name,
                access_key_hash=key.hash,
                access_key_prefix=key.prefix,
                access_key_encrypted=encrypted,
            )
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
            if row.kind == "endpoint":
                session.flush()
                session.add(_entry(row.id, _version_values(row), "deploy", "serving"))

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

    def _rolling_out(self, name: str) -> bool:
        """A rollout runs, or has ended and its outcome is not recorded yet (the row read
        meanwhile is stale: a poll acting on it would undo what the rollout did)."""
        return name in self._rollouts or name in self._landing

    async def _set_status(self, name: str, status: str, message: str = "") -> None:
        await self._update(name, status=status, status_message=message)

    def _record_event(self, event: RuntimeEvent, rollout: _Rollout | None) -> DeploymentRow | None:
        """Record what the runtime reports; with ``rollout`` (the one that just ended), flip
        the row to the new version or say why it never took traffic. Returns the row."""
        with self.store.write() as session:
            row = session.scalars(
                _select().where(DeploymentRow.name == event.deployment)
            ).one_or_none()
            if row is None:
                return None
            status, message = event.status, event.message
            if rollout is not None and event.rollout == "completed":
                for key, value in rollout.values.items():
                    setattr(row, key, value)
                _complete_entries(session, row.id, rollout)
            elif rollout is not None and event.rollout == "failed":
                verb = "rollback to" if rollout.rollback else "rollout of"
                message = (
                    f"{verb} {rollout.values['model_name']} version {rollout.version} failed: "
                    f"it never took traffic and was stopped; {row.model_name} version "
                    f"{row.model_version} keeps serving. {event.message}"
                )
                if not rollout.rollback:
                    _end_entry(session, rollout.entry_id, "failed", event.message)
                if _holds(row, str(rollout.values["version_spec"]), rollout.rollback):
                    row.alias_held_version = rollout.version  # not retried at the next poll
            elif event.rollout is None and self._rollouts.get(row.name) and status == "deployed":
                status = None  # the serving version settled; the rollout still runs
            if status is not None and not (row.desired_state == "stopped" and status != "stopped"):
                row.status = status
                row.status_message = message
                row.updated_at = utcnow()
            existing = {r.index: r for r in row.replica_rows}
            live = {state.index for state in event.replicas}
            for gone in list(row.replica_rows):
                if gone.index not in live and row.desired_state == "running":
                    row.replica_rows.remove(gone)  # replaced (a rollout) or scaled away
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
                rep.version = state.version
                rep.process_started = state.process_started
                rep.fingerprint = state.fingerprint
                rep.updated_at = utcnow()
            return row

    # -- history ------------------------------------------------------------------------------

    def _begin_entry(
        self, current: DeploymentRow, values: dict[str, object], reason: str = "redeploy"
    ) -> int:
        """The history entry of a version rolling out (and of the serving one, for deployments
        older than the history)."""
        with self.store.write() as session:
            if _serving_entry(session, current.id) is None:
                session.add(_entry(current.id, _version_values(current), "deploy", "serving"))
            entry = _entry(current.id, values, reason, "rolling out")
            session.add(entry)
            session.flush()
            return entry.id

    def _replace(self, name: str, values: dict[str, object], rollback_to: int | None) -> None:
        """Nothing serves: the row takes the new version now, and the history says so."""
        with self.store.write() as session:
            row = session.scalars(_select().where(DeploymentRow.name == name)).one()
            before = row.status
            for key, value in values.items():
                setattr(row, key, value)
            row.desired_state, row.status, row.status_message = "running", "deploying", ""
            row.updated_at = utcnow()
            old = _serving_entry(session, row.id)
            if rollback_to is not None:
                entry = session.get(DeploymentHistoryRow, rollback_to)
                if entry is not None:
                    entry.status, entry.served_from, entry.served_until = "serving", utcnow(), None
                if old is not None and old is not entry:
                    _end(old, "rolled back")
            else:
                session.add(_entry(row.id, values, "redeploy", "serving"))
                if old is not None:
                    _end(old, "failed" if before == "failed" else "retired")
            session.flush()
            _trim_history(session, row.id)

    def _end_rollout_entry(self, rollout: _Rollout, message: str) -> None:
        if rollout.rollback:
            return  # its entry is a version that served: it stays a rollback target
        with self.store.write() as session:
            _end_entry(session, rollout.entry_id, "failed", message)

    async def _cancel_rollout(self, name: str, message: str) -> None:
        rollout = self._rollouts.pop(name, None)
        if rollout is not None:
            await asyncio.to_thread(self._end_rollout_entry, rollout, message)

    def _rollback_target(self, deployment_id: str) -> DeploymentHistoryRow | None:
        with self.store.read() as session:
            return session.scalars(
                select(DeploymentHistoryRow)
                .where(
                    DeploymentHistoryRow.deployment_id == deployment_id,
                    DeploymentHistoryRow.status == "retired",
                )
                .order_by(DeploymentHistoryRow.id.desc())
                .limit(1)
            ).one_or_none()

    def _fail_unfinished_rollouts(self) -> None:
        with self.store.write() as session:
            for entry in session.scalars(
                select(DeploymentHistoryRow).where(DeploymentHistoryRow.status == "rolling out")
            ):
                entry.status = "failed"
                entry.message = "the platform stopped during the rollout"

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

    def _view(self, row: DeploymentRow, reveal_key: bool = False) -> DeploymentView:
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
                        version=rep.version,
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
        rolling_out = self._rollouts.get(row.name)
        return DeploymentView(
            rollout=(
                RolloutView(
                    version=rolling_out.version,
                    previous_version=rolling_out.previous_version,
                    rollback=rolling_out.rollback,
                )
                if rolling_out is not None
                else None
            ),
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
            # The serving version's: a rollout's new replicas take no traffic until the switch.
            ready_replicas=sum(
                r.status == "ready" and r.version in ("", row.model_version) for r in replica_views
            ),
            replica_states=replica_views,
            autoscaling=(
                AutoscalingView.model_validate(row.autoscaling)
                if row.autoscaling is not None
                else None
            ),
            cpu=row.cpu,
            memory_mb=row.memory_mb,
            environment=row.environment or {},
            auth_enabled=row.auth_enabled,
            access_key_prefix=row.access_key_prefix,
            access_key=self.vault.decrypt(row.access_key_encrypted) if reveal_key else None,
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
            track_alias=_follows(row),
            alias_held_version=row.alias_held_version if _follows(row) else None,
            warnings=deployment_warnings(row.kind, row.auth_enabled),
            created_at=row.created_at,
            updated_at=row.updated_at,
        )


def _created(view: DeploymentView, access_key: str | None) -> DeploymentCreated:
    return DeploymentCreated(**{**view.model_dump(), "access_key": access_key})


def _follows(row: DeploymentRow) -> bool:
    """Whether ``row`` follows the registry alias in its ``version_spec``."""
    return (
        row.kind == "endpoint"
        and row.source == "registry"
        and row.track_alias
        and row.version_spec.startswith("@")
    )


def _holds(row: DeploymentRow, version_spec: str, rollback: bool) -> bool:
    """Whether a version of ``version_spec`` that failed to serve is held: ``row`` follows that
    very alias and it was not a rollback (which goes to a version, not an alias target)."""
    return _follows(row) and version_spec == row.version_spec and not rollback


def _redeploy_create(row: DeploymentRow, request: RedeployRequest) -> DeploymentCreate:
    """What a redeploy of ``row`` to ``request``'s version asks for: the deployment's replicas,
    resources and settings."""
    return DeploymentCreate(
        name=row.name,
        model=request.model or row.model_name,
        version=request.version,
        alias=request.alias,
        track_alias=request.track_alias,
        replicas=row.replicas,
        cpu=row.cpu,
        memory_mb=row.memory_mb,
        environment=dict(row.environment or {}),
        auth_enabled=row.auth_enabled,
        track_metrics=row.track_metrics,
        env_manager=request.env_manager,
        runtime="ray" if row.runtime == "ray" else "local",
    )


def _version_values(row: DeploymentRow) -> dict[str, object]:
    return {c: getattr(row, c) for c in VERSION_COLUMNS}


def _staged(current: DeploymentRow, values: dict[str, object]) -> DeploymentRow:
    """A detached copy of ``current`` with ``values`` applied: what a new version runs as."""
    staged = DeploymentRow(
        **{c.key: getattr(current, c.key) for c in DeploymentRow.__table__.columns}
    )
    for key, value in values.items():
        setattr(staged, key, value)
    return staged


def _entry(
    deployment_id: str, values: dict[str, object], reason: str, status: str
) -> DeploymentHistoryRow:
    entry = DeploymentHistoryRow(
        deployment_id=deployment_id, reason=reason, status=status, message=""
    )
    for column in VERSION_COLUMNS:
        setattr(entry, column, values[column])
    if status == "serving":
        entry.served_from = utcnow()
    return entry


def _end(entry: DeploymentHistoryRow, status: str, message: str = "") -> None:
    entry.status, entry.message = status, message or entry.message
    if entry.served_from is not None and entry.served_until is None:
        entry.served_until = utcnow()


def _end_entry(session: Session, entry_id: int, status: str, message: str) -> None:
    entry = session.get(DeploymentHistoryRow, entry_id)
    if entry is not None and entry.status == "rolling out":
        _end(entry, status, message)


def _serving_entry(session: Session, deployment_id: str) -> DeploymentHistoryRow | None:
    return session.scalars(
        select(DeploymentHistoryRow)
        .where(
            DeploymentHistoryRow.deployment_id == deployment_id,
            DeploymentHistoryRow.status == "serving",
        )
        .order_by(DeploymentHistoryRow.id.desc())
        .limit(1)
    ).one_or_none()


def _complete_entries(session: Session, deployment_id: str, rollout: _Rollout) -> None:
    """The rolled-out version serves: its entry says so, the one it replaced ends."""
    old = _serving_entry(session, deployment_id)
    new = session.get(DeploymentHistoryRow, rollout.entry_id)
    if new is not None:
        new.status, new.served_from, new.served_until = "serving", utcnow(), None
    if old is not None and old is not new:
        same = all(getattr(old, c) == rollout.values[c] for c in VERSION_COLUMNS[:-1])
        if rollout.rollback:
            _end(old, "rolled back")
        elif same:
            session.delete(old)  # the same version again: one entry is enough
        else:
            _end(old, "retired")
    session.flush()
    _trim_history(session, deployment_id)


def _trim_history(session: Session, deployment_id: str) -> None:
    stale = session.scalars(
        select(DeploymentHistoryRow.id)
        .where(DeploymentHistoryRow.deployment_id == deployment_id)
        .order_by(DeploymentHistoryRow.id.desc())
        .offset(HISTORY_LIMIT)
    ).all()
    if stale:
        session.execute(delete(DeploymentHistoryRow).where(DeploymentHistoryRow.id.in_(stale)))


def _select() -> Select[DeploymentRow]:
    return select(DeploymentRow).options(selectinload(DeploymentRow.replica_rows))


def recorded_replicas(row: DeploymentRow) -> builtins.list[RecordedReplica]:
    """The replica processes the store says a local deployment had (Ray's are Serve's)."""
    if row.runtime != "local":
        return []
    return [
        RecordedReplica(
            index=r.index,
            pid=r.pid,
            port=r.port,
            process_started=r.process_started,
            fingerprint=r.fingerprint,
            restarts=r.restarts,
        )
        for r in row.replica_rows
        if r.pid is not None and r.process_started is not None
    ]


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
        runtime=row.runtime,
        autoscaling=dict(row.autoscaling) if row.autoscaling is not None else None,
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
