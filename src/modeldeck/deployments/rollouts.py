"""Rollouts: a deployment's new version started beside the serving one (built first when its
environment is isolated), and the ones under way until the runtime reports their end.

The deployment row keeps describing the serving version until the runtime reports that the new
one took the traffic (then the row, the route and the history flip in one write; see
``repository.DeploymentRepository.record_event``); a new version that fails to start leaves the
row, and the traffic, with the old one. When nothing serves, the new version replaces whatever
there is. ``DeploymentService`` starts them (redeploy, rollback, alias moves) under its
per-deployment lock and composes this; it imports nothing of the service.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

from modeldeck.builds.environment import ISOLATED
from modeldeck.builds.service import BuildOutcome, BuildService
from modeldeck.deployments.aliases import holds
from modeldeck.deployments.history import Rollout, RolloutHistory
from modeldeck.deployments.repository import DeploymentRepository
from modeldeck.deployments.routing import RoutingTable
from modeldeck.deployments.rows import SETTING_COLUMNS, replica_spec, staged, version_values
from modeldeck.runtimes.base import Runtime
from modeldeck.store.schema import DeploymentRow


@dataclass
class Rollouts:
    """The rollouts under way, by deployment, and how one starts."""

    runtime: Runtime
    builds: BuildService
    rows: DeploymentRepository
    history: RolloutHistory
    routing: RoutingTable
    # The deployment's lock: held by the callers of ``start``, taken here for work that ends
    # after a build.
    lock: Callable[[str], asyncio.Lock]
    background: Callable[[Coroutine[Any, Any, None]], None]  # work no caller waits for
    pending: dict[str, Rollout] = field(default_factory=dict)
    # Deployments whose rollout has ended but whose row does not say so yet: until it
    # does, the row still names the version rolled out from.
    landing: set[str] = field(default_factory=set)

    def rolling_out(self, name: str) -> bool:
        """A rollout runs, or has ended and its outcome is not recorded yet (the row read
        meanwhile is stale: a poll acting on it would undo what the rollout did)."""
        return name in self.pending or name in self.landing

    async def cancel(self, name: str, message: str) -> None:
        rollout = self.pending.pop(name, None)
        if rollout is not None:
            await asyncio.to_thread(self.history.end_rollout, rollout, message)

    async def start(
        self,
        current: DeploymentRow,
        new: DeploymentRow,
        env_manager: str,
        reason: str,
        rollback_to: int | None,
    ) -> None:
        """Serve ``new`` in place of ``current``'s version (the caller holds the deployment's
        lock): built first, in the background, when its environment is isolated."""
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
            self.background(
                self._redeploy_when_built(
                    current.id, current.status, new, env_manager, build.id, rollback_to, reason
                )
            )
            return
        await self._apply(current.name, new, env_manager, None, rollback_to, reason)

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
        async with self.lock(new.name):
            row = await asyncio.to_thread(self.rows.find, new.name)
            if row is None or row.id != deployment_id or not await self.latest_build(row, build_id):
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
                        if holds(row, new.version_spec, rollback_to is not None)
                        else row.alias_held_version
                    ),
                )
                return
            if row.desired_state != "running":
                return  # stopped while it built
            await self._apply(new.name, new, env_manager, outcome, rollback_to, reason)

    async def _apply(
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
            **version_values(new),
            **{c: getattr(new, c) for c in SETTING_COLUMNS},
        }
        superseded_by = f"superseded by version {new.model_version}"
        current = await self._require(name)
        if current.desired_state != "running" or not self.runtime.serving(name):
            await self.cancel(name, superseded_by)  # deploy stops its replicas
            await asyncio.to_thread(self.history.replace, name, values, rollback_to)
            row = await self._require(name)
            self.routing.set(row)
            await self.runtime.deploy(replica_spec(row, outcome))
            return
        entry_id = rollback_to
        if entry_id is None:
            entry_id = await asyncio.to_thread(self.history.begin, current, values, reason)
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
        superseded = self.pending.pop(name, None)
        self.pending[name] = Rollout(
            version=new.model_version,
            previous_version=current.model_version,
            values=values,
            entry_id=entry_id,
            rollback=rollback_to is not None,
        )
        await self.runtime.rollout(replica_spec(staged(current, values), outcome))
        if superseded is not None:
            await asyncio.to_thread(self.history.end_rollout, superseded, superseded_by)

    async def latest_build(self, row: DeploymentRow, build_id: str) -> bool:
        latest = await self.builds.latest(row.id)
        return latest is None or latest.id == build_id

    async def _require(self, name: str) -> DeploymentRow:
        return await asyncio.to_thread(self.rows.require, name)

    async def _update(self, name: str, **values: object) -> None:
        await asyncio.to_thread(self.rows.update, name, values)
