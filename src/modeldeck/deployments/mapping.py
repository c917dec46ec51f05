"""Deployment rows mapped to the views the API, the client and the dashboard show
(``modeldeck.views.deployments``): the row, its replicas as the runtime reports them now, and the
rollout under way. Pure: reads no store, imports nothing of the lifecycle.
"""

from __future__ import annotations

from modeldeck.auth.vault import KeyVault
from modeldeck.config import Settings
from modeldeck.deployments.aliases import follows
from modeldeck.deployments.history import Rollout
from modeldeck.runtimes.base import ReplicaState
from modeldeck.store.schema import DeploymentRow
from modeldeck.views.deployments import (
    AutoscalingView,
    DeploymentCreated,
    DeploymentView,
    ReplicaView,
    RolloutView,
    deployment_warnings,
)


def deployment_view(
    row: DeploymentRow,
    replicas: list[ReplicaState],
    rolling_out: Rollout | None,
    settings: Settings,
    vault: KeyVault,
    reveal_key: bool = False,
) -> DeploymentView:
    """``row`` as a view: ``replicas`` are the runtime's live ones, ``rolling_out`` the version
    starting beside the serving one; ``reveal_key`` decrypts the access key into it."""
    live = {r.index: r for r in replicas}
    replica_views = []
    for rep in row.replica_rows:
        state = live.get(rep.index)
        if state is not None:
            replica_views.append(
                ReplicaView(
                    **{k: v for k, v in state.to_dict().items() if k in ReplicaView.model_fields}
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
                    **{k: v for k, v in state.to_dict().items() if k in ReplicaView.model_fields}
                )
            )
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
            AutoscalingView.model_validate(row.autoscaling) if row.autoscaling is not None else None
        ),
        cpu=row.cpu,
        memory_mb=row.memory_mb,
        environment=row.environment or {},
        auth_enabled=row.auth_enabled,
        access_key_prefix=row.access_key_prefix,
        access_key=vault.decrypt(row.access_key_encrypted) if reveal_key else None,
        endpoint_url=(
            f"{settings.resolved_public_url()}/deployments/{row.name}/predict"
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
        track_alias=follows(row),
        alias_held_version=row.alias_held_version if follows(row) else None,
        warnings=deployment_warnings(row.kind, row.auth_enabled),
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def created(view: DeploymentView, access_key: str | None) -> DeploymentCreated:
    return DeploymentCreated(**{**view.model_dump(), "access_key": access_key})
