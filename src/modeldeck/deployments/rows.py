"""Deployment rows: what a row holds and what follows from it, with no store access.

The columns a version brings and the settings that stay, a new row from a request (its version
resolved in the registry), a staged copy with another version, the spec its replicas run, the
replica processes it recorded, and the query that loads rows with their replicas. Imports
nothing of the lifecycle.
"""

from __future__ import annotations

import asyncio
import builtins
import uuid
from pathlib import Path

from sqlalchemy import Select, select
from sqlalchemy.orm import selectinload

from modeldeck.builds.environment import ISOLATED
from modeldeck.builds.service import BuildOutcome
from modeldeck.config import Settings
from modeldeck.crn import deployment_crn
from modeldeck.deployments.schemas import DeploymentCreate, RedeployRequest
from modeldeck.errors import ValidationFailed
from modeldeck.paths import allowed_python_file
from modeldeck.registry import Registry, parse_version_spec
from modeldeck.runtimes.base import DeploymentSpec, RecordedReplica
from modeldeck.runtimes.ray import require_ray
from modeldeck.store.schema import DeploymentRow

# The deployment columns a version brings (and a rollback restores); the rest are settings.
VERSION_COLUMNS = (
    "model_name", "model_version", "version_spec", "model_uri", "source", "file_path",
    "function_name", "env_manager", "signature",
)  # fmt: skip
SETTING_COLUMNS = (
    "replicas", "cpu", "memory_mb", "environment", "auth_enabled", "track_metrics", "track_alias",
)  # fmt: skip


async def new_row(
    request: DeploymentCreate, settings: Settings, registry: Registry
) -> DeploymentRow:
    """A new row for ``request``: the registry's version resolved, the settings applied."""
    deployment_id = str(uuid.uuid4())
    row = DeploymentRow(
        id=deployment_id,
        name=request.name,
        crn=deployment_crn(deployment_id),
        model_name="",
        model_version="",
        version_spec="",
        model_uri="",
        runtime=request.runtime or settings.default_runtime,
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
        autoscaling=(request.autoscaling.model_dump() if request.autoscaling is not None else None),
    )
    if request.model:
        spec = parse_version_spec(request.version, request.alias)
        resolved = await asyncio.to_thread(registry.resolve, request.model, spec)
        row.model_name = resolved.name
        row.model_version = resolved.version
        row.version_spec = resolved.spec
        row.model_uri = resolved.uri
        row.track_alias = request.track_alias and resolved.spec.startswith("@")
        if request.kind == "endpoint":
            row.signature = await asyncio.to_thread(registry.signature, resolved)
    elif request.file:
        row.source = "file"
        row.file_path = allowed_python_file(request.file, settings)
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


def redeploy_create(row: DeploymentRow, request: RedeployRequest) -> DeploymentCreate:
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


def version_values(row: DeploymentRow) -> dict[str, object]:
    return {c: getattr(row, c) for c in VERSION_COLUMNS}


def staged(current: DeploymentRow, values: dict[str, object]) -> DeploymentRow:
    """A detached copy of ``current`` with ``values`` applied: what a new version runs as."""
    staged = DeploymentRow(
        **{c.key: getattr(current, c.key) for c in DeploymentRow.__table__.columns}
    )
    for key, value in values.items():
        setattr(staged, key, value)
    return staged


def select_deployments() -> Select[DeploymentRow]:
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


def replica_spec(row: DeploymentRow, build: BuildOutcome | None = None) -> DeploymentSpec:
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
