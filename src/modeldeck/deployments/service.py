"""Deployments: create, list, get, stop, start, scale, redeploy, roll back, delete, and bring
back after a restart.

Knows nothing of HTTP. State lives in the store; the runtime runs the replicas and reports what
happens to them, which this service records. ``DeploymentService`` is the entry point routes, the
CLI, the platform, canaries and the autoscaler call; it holds the lifecycle and composes one
module per concern, none of which imports it (an import contract):

* ``rollouts``: a new version started beside the serving one, and those under way (``Rollouts``);
* ``routing``: the in-memory routing table the gateway reads (``RoutingTable``);
* ``repository``: deployment rows in the store, and the runtime's reports recorded;
* ``history``: the versions a deployment served and the rollout under way (``RolloutHistory``);
* ``aliases``: the rules of following a registry alias;
* ``mapping``: rows mapped to the API's views;
* ``rows``: what a row holds (its version columns, the spec its replicas run), no store access.

A redeploy of a deployment that serves is a rollout: the new version starts beside the serving
one and the deployment row keeps describing the serving version until the runtime reports that
the new one took the traffic (then the row, the route and the history flip in one write); a new
version that fails to start leaves the row, and the traffic, with the old one. A deployment that
follows a registry alias rolls out the version it moves to the same way (``follow_aliases``).
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import logging
from collections.abc import Coroutine
from typing import Any

from modeldeck.auth.keys import KeyHash, new_access_key
from modeldeck.auth.vault import KeyVault
from modeldeck.builds.environment import ISOLATED
from modeldeck.builds.service import BuildService
from modeldeck.config import Settings
from modeldeck.datadir import DataDirLock
from modeldeck.deployments.aliases import alias_target, follows
from modeldeck.deployments.history import HISTORY_LIMIT, Rollout, RolloutHistory
from modeldeck.deployments.mapping import created, deployment_view
from modeldeck.deployments.repository import DeploymentRepository
from modeldeck.deployments.rollouts import Rollouts
from modeldeck.deployments.routing import RoutingTable
from modeldeck.deployments.rows import (
    VERSION_COLUMNS,
    new_row,
    recorded_replicas,
    redeploy_create,
    replica_spec,
    staged,
)
from modeldeck.deployments.schemas import AutoscalingPolicy, DeploymentCreate, RedeployRequest
from modeldeck.errors import (
    ConfigurationError,
    Conflict,
    NotFound,
    ServiceUnavailable,
    ValidationFailed,
)
from modeldeck.gateway.routes import RouteEntry
from modeldeck.registry import Registry
from modeldeck.runtimes.base import DeploymentSpec, RecordedReplica, Runtime, RuntimeEvent
from modeldeck.store import Store
from modeldeck.store.schema import DeploymentRow
from modeldeck.views.builds import BuildView, EnvironmentView, PruneResult
from modeldeck.views.deployments import AccessKeyView, DeploymentCreated, DeploymentView

log = logging.getLogger("modeldeck.deployments")


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
        self._routing = RoutingTable()
        self._rows = DeploymentRepository(store)
        self._history = RolloutHistory(store)
        self._locks: dict[str, asyncio.Lock] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self.builds = BuildService(settings, store, registry, in_use=self._environments_in_use)
        self._rollouts = Rollouts(
            runtime,
            self.builds,
            self._rows,
            self._history,
            self._routing,
            self._lock,
            self._background,
        )

    async def shutdown(self) -> None:
        """Cancel builds in progress (their records say so at the next start)."""
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    # -- routing ------------------------------------------------------------------------------

    def route(self, name: str) -> RouteEntry | None:
        return self._routing.route(name)

    def route_by_key(self, access_key: str) -> RouteEntry | None:
        return self._routing.route_by_key(access_key)

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
        await asyncio.to_thread(self._history.fail_unfinished)
        rows = await asyncio.to_thread(self._rows.all_rows)
        for row in rows:
            self._routing.set(row)
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
            pending = self._rollouts.pending.get(event.deployment)
            if pending is not None and pending.version == event.version:
                rollout = self._rollouts.pending.pop(event.deployment)
                self._rollouts.landing.add(event.deployment)
        try:
            row = await asyncio.to_thread(self._record_event, event, rollout)
        finally:
            if rollout is not None:
                self._rollouts.landing.discard(event.deployment)
        if row is not None and rollout is not None and event.rollout == "completed":
            self._routing.set(row)

    # -- operations ---------------------------------------------------------------------------

    async def create(
        self, request: DeploymentCreate, *, access_key: KeyHash | None = None
    ) -> DeploymentCreated:
        """Deploy; ``access_key`` is a key issued elsewhere (a Cloudera-style model's) to use
        instead of a new one, in which case the result carries no key. The key is stored as
        its hash and encrypted with the platform's secret."""
        async with self._lock(request.name):
            if await asyncio.to_thread(self._rows.find, request.name) is not None:
                raise Conflict(
                    f"deployment {request.name!r} already exists",
                    details={"deployment": request.name},
                )
            row = await self._new_row(request)
            await asyncio.to_thread(self._rows.insert, row)
            try:
                return await self._start_created(row, request, access_key)
            except Exception:
                # A failed create leaves nothing behind: no row, no route, no replica.
                log.exception("creating deployment %s failed; removing it", request.name)
                with contextlib.suppress(Exception):
                    await self.runtime.stop(request.name)
                self._routing.drop(request.name)
                with contextlib.suppress(Exception):
                    await asyncio.to_thread(self._rows.delete, request.name)
                raise

    async def _start_created(
        self, row: DeploymentRow, request: DeploymentCreate, access_key: KeyHash | None
    ) -> DeploymentCreated:
        if row.kind == "batch":
            return created(await self.get(row.name), None)
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
        self._routing.set(row)
        await self._launch(row, "deploy")
        return created(await self.get(request.name), plaintext)

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
            await self._rollouts.start(current, new, env_manager, "redeploy", None)
            return await self.get(request.name)

    async def rollback(self, name: str) -> DeploymentView:
        """Return to the version the deployment served before its current one, the way a
        redeploy goes (beside the serving version; built first when isolated). 409 when there
        is none: a new deployment, or every earlier version was rolled back from already."""
        async with self._lock(name):
            current = await self._require_endpoint(name)
            target = await asyncio.to_thread(self._history.rollback_target, current.id)
            if target is None:
                raise Conflict(
                    f"deployment {name!r} has no previous version to roll back to",
                    details={"deployment": name},
                )
            new = staged(current, {c: getattr(target, c) for c in VERSION_COLUMNS})
            if follows(current):
                # The alias may still point at the version rolled back from: not followed to
                # again until it points elsewhere (see follow_alias).
                try:
                    held = await alias_target(self.registry, current)
                except (NotFound, ServiceUnavailable):
                    held = current.model_version
                await self._update(name, alias_held_version=held)
            await self._rollouts.start(current, new, target.env_manager, "rollback", target.id)
            return await self.get(name)

    async def follow_aliases(self) -> dict[str, str]:
        """One poll of every deployment that follows an alias (see ``follow_alias``); returns
        the deployments whose alias moved, with the version now rolling out."""
        started: dict[str, str] = {}
        for row in await asyncio.to_thread(self._rows.all_rows):
            if not follows(row) or row.desired_state != "running":
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
            if self._rollouts.rolling_out(name):
                return None
            row = await asyncio.to_thread(self._rows.find, name)
            if (
                row is None
                or not follows(row)
                or row.desired_state != "running"
                or row.status == "building"
                or not self.runtime.serving(name)
            ):
                return None
            target = await alias_target(self.registry, row)
            if target in (row.model_version, row.alias_held_version):
                if target == row.model_version and row.alias_held_version is not None:
                    await self._update(name, alias_held_version=None)  # the alias moved back
                return None
            new = await self._new_row(redeploy_create(row, RedeployRequest(alias=row.version_spec)))
            if new.model_version in (row.model_version, row.alias_held_version):
                return None  # it moved again since
            log.info(
                "deployment %s: alias %s of %s moved from version %s to %s; rolling it out",
                name, row.version_spec, row.model_name, row.model_version, new.model_version,
            )  # fmt: skip
            await self._update(name, alias_held_version=None)
            await self._rollouts.start(row, new, row.env_manager, "alias", None)
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
        request = redeploy_create(row, RedeployRequest(version=version, alias=alias))
        request.replicas = replicas
        new = await self._new_row(request)
        spec = replica_spec(new)
        spec.deployment_id, spec.crn = row.id, row.crn
        return row, spec

    async def redeploy_version(self, name: str, request: RedeployRequest) -> DeploymentView:
        """Serve another version (of the same registered model unless ``request.model`` names
        one) with the deployment's replicas, resources and settings."""
        row = await self._require_endpoint(name)
        if row.source != "registry" and request.model is None:
            raise ValidationFailed(
                f"deployment {name!r} serves a file: name a registered model to redeploy",
                details={"field": "model"},
            )
        return await self.redeploy(redeploy_create(row, request))

    async def _launch(
        self, row: DeploymentRow, reason: str, adopt: builtins.list[RecordedReplica] | None = None
    ) -> None:
        """Start ``row``'s replicas: at once in the platform's environment, or, with an
        isolated one, once its build (usually a cache hit) has it ready. ``adopt``: replica
        processes left running by an earlier control plane (see ``DeploymentSpec.adopt``)."""
        if row.env_manager not in ISOLATED or row.source != "registry":
            spec = replica_spec(row)
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
            row = await asyncio.to_thread(self._rows.find, name)
            if row is None or row.id != deployment_id or row.desired_state != "running":
                await self.runtime.reap(adopt or [])
                return  # deleted or stopped while it built
            if not await self._rollouts.latest_build(row, build_id):
                return
            if not outcome.ok:
                await self._update(
                    name, status="failed", status_message=f"build {build_id} failed: "
                    f"{outcome.message}",
                )  # fmt: skip
                await self.runtime.reap(adopt or [])
                return
            spec = replica_spec(row, outcome)
            spec.adopt = list(adopt or [])
            await self.runtime.deploy(spec)

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
        return await new_row(request, self.settings, self.registry)

    async def list(self, *, reveal_keys: bool = False) -> list[DeploymentView]:
        """Every deployment; ``reveal_keys``: with their access keys, for callers that may
        read them."""
        rows = await asyncio.to_thread(self._rows.all_rows)
        return [self._view(r, reveal_keys) for r in rows]

    async def get(self, name: str, *, reveal_key: bool = False) -> DeploymentView:
        return self._view(await self._require(name), reveal_key)

    async def stop(self, name: str) -> DeploymentView:
        async with self._lock(name):
            await self._require_endpoint(name)
            await self._update(name, desired_state="stopped", status="stopping", status_message="")
            await self._rollouts.cancel(name, "stopped during the rollout")
            await self.runtime.stop(name)
            await self._update(name, status="stopped")
            await asyncio.to_thread(self._rows.mark_replicas, name, "stopped")
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
            if self._rollouts.rolling_out(name):
                return None
            row = await asyncio.to_thread(self._rows.find, name)
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
        rollout = self._rollouts.pending.get(name)
        if rollout is not None:  # the version rolling out comes up with the new count
            rollout.values["replicas"] = replicas
        if self.runtime.running(name):
            # Its event updates the replica rows.
            await self.runtime.scale(name, replicas, policy)
        else:
            await asyncio.to_thread(self._rows.trim_replicas, name, replicas)

    async def delete(self, name: str) -> None:
        async with self._lock(name):
            await self._require(name)
            self._rollouts.pending.pop(name, None)
            await self.runtime.stop(name)
            await asyncio.to_thread(self._rows.delete, name)
            self._routing.drop(name)

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
            self._routing.set(await self._require(name))
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
        return await asyncio.to_thread(self._rows.require, name)

    async def _update(self, name: str, **values: object) -> None:
        await asyncio.to_thread(self._rows.update, name, values)

    async def _set_status(self, name: str, status: str, message: str = "") -> None:
        await self._update(name, status=status, status_message=message)

    def _record_event(self, event: RuntimeEvent, rollout: Rollout | None) -> DeploymentRow | None:
        return self._rows.record_event(event, rollout, self._rollouts.pending)

    def _view(self, row: DeploymentRow, reveal_key: bool = False) -> DeploymentView:
        return deployment_view(
            row,
            self.runtime.replicas(row.name),
            self._rollouts.pending.get(row.name),
            self.settings,
            self.vault,
            reveal_key,
        )


__all__ = ["HISTORY_LIMIT", "DeploymentService", "RouteEntry", "recorded_replicas"]
