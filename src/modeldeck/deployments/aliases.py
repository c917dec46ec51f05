"""Alias following: which deployments follow a registry alias, and which version is held.

A deployment created (or redeployed) from a registry alias follows it (``track_alias``): the
platform calls ``DeploymentService.follow_aliases`` every ``alias_poll_seconds`` and, when the
alias points at another version than the serving one, rolls that version out the way a redeploy
does. A version it will not follow to (it failed to roll out, or the deployment was rolled back
from it) is recorded as ``alias_held_version`` until the alias points elsewhere. These are the
rules it goes by; the rollout itself is the lifecycle's (``service``).
"""

from __future__ import annotations

import asyncio

from modeldeck.registry import Registry
from modeldeck.store.schema import DeploymentRow


def follows(row: DeploymentRow) -> bool:
    """Whether ``row`` follows the registry alias in its ``version_spec``."""
    return (
        row.kind == "endpoint"
        and row.source == "registry"
        and row.track_alias
        and row.version_spec.startswith("@")
    )


def holds(row: DeploymentRow, version_spec: str, rollback: bool) -> bool:
    """Whether a version of ``version_spec`` that failed to serve is held: ``row`` follows that
    very alias and it was not a rollback (which goes to a version, not an alias target)."""
    return follows(row) and version_spec == row.version_spec and not rollback


async def alias_target(registry: Registry, row: DeploymentRow) -> str:
    """The version ``row``'s alias points at now."""
    resolved = await asyncio.to_thread(registry.resolve, row.model_name, row.version_spec)
    return resolved.version
