"""Builds: records in the store, environments from the cache. Knows nothing of HTTP.

A build of a deployment's model version downloads the model (once per model), reads what MLflow
logged beside it, and finds its environment in the cache by key or makes it: ``queued`` ->
``building`` -> ``built`` | ``build failed`` (with the resolver's message). The deployments
service starts replicas in the environment of a ``built`` build, and never in a failed one.
"""

from __future__ import annotations

import asyncio
import builtins
import logging
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from sqlalchemy import select

from modeldeck.builds.environment import (
    BuildError,
    Environment,
    EnvironmentCache,
    read_model_files,
    recipe,
)
from modeldeck.config import Settings
from modeldeck.errors import ModeldeckError, NotFound
from modeldeck.registry import Registry
from modeldeck.store import Store
from modeldeck.store.schema import BuildRow, DeploymentRow, utcnow
from modeldeck.views.builds import BuildView, EnvironmentView, PruneResult

log = logging.getLogger("modeldeck.builds")

LOG_LIMIT = 64 * 1024
"""The stored build log keeps its last 64 KiB."""


@dataclass(frozen=True)
class BuildOutcome:
    """What a finished build gives the deployments service."""

    build_id: str
    ok: bool
    message: str
    environment: Environment | None = None
    model_path: str | None = None
    replica_path: str | None = None
    """The directory that puts modeldeck (and nothing else) on the replicas' PYTHONPATH."""


class BuildService:
    def __init__(
        self,
        settings: Settings,
        store: Store,
        registry: Registry,
        in_use: Callable[[], Iterable[str]],
    ) -> None:
        """``in_use`` gives the keys of environments that running replicas use: never evicted."""
        self.settings = settings
        self.store = store
        self.registry = registry
        self.in_use = in_use
        self.cache = EnvironmentCache(
            settings.build_cache_path(),
            settings.build_cache_max_bytes,
            settings.build_timeout_seconds,
        )
        self._locks: dict[str, asyncio.Lock] = {}
        self._active: set[str] = set()

    # -- running builds -----------------------------------------------------------------------

    async def queue(
        self,
        deployment: DeploymentRow,
        *,
        model_name: str,
        model_version: str,
        model_uri: str,
        env_manager: str,
        reason: str,
    ) -> BuildRow:
        row = BuildRow(
            id=str(uuid.uuid4()),
            deployment_id=deployment.id,
            reason=reason,
            model_name=model_name,
            model_version=model_version,
            model_uri=model_uri,
            env_manager=env_manager,
            status="queued",
            status_message="",
            cache_hit=False,
            log="",
            created_at=utcnow(),
        )
        await asyncio.to_thread(self._insert, row)
        return row

    async def run(self, build_id: str) -> BuildOutcome:
        """Run a queued build to its end; never raises for a failed build (it is recorded)."""
        row = await asyncio.to_thread(
            self._update, build_id, status="building", started_at=utcnow()
        )
        if row is None:
            return BuildOutcome(build_id, False, "the deployment was deleted")
        started = time.monotonic()
        lines: list[str] = []
        try:
            outcome = await self._build(row, lines)
        except BuildError as exc:
            outcome = BuildOutcome(build_id, False, exc.message)
        except ModeldeckError as exc:
            outcome = BuildOutcome(build_id, False, exc.message)
        except Exception as exc:  # a build must end, whatever went wrong
            log.exception("build %s failed", build_id)
            outcome = BuildOutcome(build_id, False, f"{type(exc).__name__}: {exc}")
        if not outcome.ok:
            lines.append(f"build failed: {outcome.message}")
        text = "\n".join(lines)
        await asyncio.to_thread(
            self._update,
            build_id,
            status="built" if outcome.ok else "build failed",
            status_message=outcome.message,
            log=text[-LOG_LIMIT:],
            duration_seconds=round(time.monotonic() - started, 3),
            finished_at=utcnow(),
        )
        log.info(
            "build %s of %s v%s: %s (%s)",
            build_id,
            row.model_name,
            row.model_version,
            "built" if outcome.ok else "build failed",
            outcome.message.splitlines()[0] if outcome.message else "",
        )
        return outcome

    async def _build(self, row: BuildRow, lines: list[str]) -> BuildOutcome:
        lines.append(f"downloading {row.model_uri}")
        model_dir = await asyncio.to_thread(
            self.registry.download_model,
            row.model_name,
            row.model_version,
            self.cache.models_dir,
        )
        files = read_model_files(model_dir)
        spec = recipe(
            row.env_manager,
            files,
            postgres=self.settings.resolved_store_url().startswith("postgresql"),
        )
        lines.append(f"model directory: {model_dir}")
        lines.append(f"python {files.python or '(not recorded)'}; requirements:")
        lines.extend(f"  {r}" for r in files.requirements)
        lines.append(f"cache key {spec.key}")
        await asyncio.to_thread(self._update, row.id, cache_key=spec.key, model_path=str(model_dir))
        async with self._locks.setdefault(spec.key, asyncio.Lock()):
            self._active.add(spec.key)
            try:
                env = await asyncio.to_thread(self.cache.lookup, spec.key)
                hit = env is not None
                if env is not None:
                    lines.append(
                        f"cache hit: environment {env.path} (built in {env.build_seconds} s)"
                    )
                    await asyncio.to_thread(self.cache.touch, spec.key)
                else:
                    lines.append(f"cache miss: creating the environment with {spec.manager}")
                    env = await self.cache.create(spec, files, lines)
                    removed = await asyncio.to_thread(
                        self.cache.evict, {*self.in_use(), *self._active}
                    )
                    for gone in removed:
                        lines.append(f"evicted environment {gone.key} ({gone.size_bytes} bytes)")
            finally:
                self._active.discard(spec.key)
        await asyncio.to_thread(
            self._update,
            row.id,
            cache_hit=hit,
            python_version=env.python_version,
            environment_path=env.path,
            packages=env.packages,
            model_packages=env.model_packages,
        )
        message = (
            f"cache hit: environment {spec.key}"
            if hit
            else f"environment {spec.key} built in {env.build_seconds:.1f} s"
        )
        replica_path = await asyncio.to_thread(self.cache.replica_path)
        return BuildOutcome(row.id, True, message, env, str(model_dir), str(replica_path))

    # -- reading ------------------------------------------------------------------------------

    async def list(self, deployment: DeploymentRow) -> builtins.list[BuildView]:
        rows = await asyncio.to_thread(self._rows, deployment.id)
        return [_view(r, deployment.name, with_log=False) for r in rows]

    async def get(self, deployment: DeploymentRow, build_id: str) -> BuildView:
        row = await asyncio.to_thread(self._get, build_id)
        if row is None or row.deployment_id != deployment.id:
            raise NotFound(
                f"build {build_id!r} of deployment {deployment.name!r} not found",
                details={"deployment": deployment.name, "build_id": build_id},
            )
        return _view(row, deployment.name, with_log=True)

    async def latest(self, deployment_id: str) -> BuildRow | None:
        """The deployment's newest build that starts replicas (not a Cloudera build's check)."""
        rows = await asyncio.to_thread(self._rows, deployment_id, 1, "cml")
        return rows[0] if rows else None

    # -- the cache ----------------------------------------------------------------------------

    async def environments(self) -> builtins.list[EnvironmentView]:
        in_use = {*self.in_use(), *self._active}
        entries = await asyncio.to_thread(self.cache.entries)
        return [
            EnvironmentView(
                key=e.key,
                env_manager=e.manager,
                path=e.path,
                python_version=e.python_version,
                size_bytes=e.size_bytes,
                created_at=e.created_at,
                last_used_at=e.last_used_at,
                build_seconds=e.build_seconds,
                in_use=e.key in in_use,
            )
            for e in reversed(entries)
        ]

    async def prune(self, model_paths_in_use: Iterable[str]) -> PruneResult:
        """Remove every environment and downloaded model that no running replica uses."""
        in_use = {*self.in_use(), *self._active}
        removed = await asyncio.to_thread(self.cache.evict, in_use, 0)
        models = await asyncio.to_thread(self.cache.prune_models, model_paths_in_use)
        return PruneResult(
            removed=[e.key for e in removed],
            freed_bytes=sum(e.size_bytes for e in removed),
            models_removed=models,
        )

    # -- store --------------------------------------------------------------------------------

    def fail_unfinished(self) -> None:
        """Builds the platform was running when it stopped will never finish: say so."""
        with self.store.write() as session:
            for row in session.scalars(
                select(BuildRow).where(BuildRow.status.in_(("queued", "building")))
            ):
                row.status = "build failed"
                row.status_message = "the platform stopped during the build"
                row.finished_at = utcnow()

    def _insert(self, row: BuildRow) -> None:
        with self.store.write() as session:
            session.add(row)

    def _update(self, build_id: str, **values: object) -> BuildRow | None:
        with self.store.write() as session:
            row = session.get(BuildRow, build_id)
            if row is None:  # its deployment was deleted meanwhile
                return None
            for key, value in values.items():
                setattr(row, key, value)
            return row

    def _get(self, build_id: str) -> BuildRow | None:
        with self.store.read() as session:
            return session.get(BuildRow, build_id)

    def _rows(
        self, deployment_id: str, limit: int | None = None, except_reason: str | None = None
    ) -> builtins.list[BuildRow]:
        query = select(BuildRow).where(BuildRow.deployment_id == deployment_id)
        if except_reason is not None:
            query = query.where(BuildRow.reason != except_reason)
        query = query.order_by(BuildRow.created_at.desc()).limit(limit)
        with self.store.read() as session:
            return list(session.scalars(query))


def _view(row: BuildRow, deployment: str, *, with_log: bool) -> BuildView:
    return BuildView(
        id=row.id,
        deployment=deployment,
        reason=row.reason,
        model=row.model_name,
        version=row.model_version,
        model_uri=row.model_uri,
        env_manager=row.env_manager,
        status=row.status,
        status_message=row.status_message,
        cache_key=row.cache_key,
        cache_hit=row.cache_hit,
        python_version=row.python_version,
        environment_path=row.environment_path,
        packages=list(row.packages or []),
        model_packages=dict(row.model_packages or {}),
        duration_seconds=row.duration_seconds,
        created_at=row.created_at,
        started_at=row.started_at,
        finished_at=row.finished_at,
        log=row.log if with_log else None,
    )


__all__ = ["BuildOutcome", "BuildService"]
