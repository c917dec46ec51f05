"""Deployments, their canaries and their model endpoints' answers, as the API and the client
show them (the requests that change them, validated strictly, are in
``modeldeck.deployments.schemas`` and ``modeldeck.deployments.canary``)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import Field

from modeldeck.views.base import View

AUTH_DISABLED_WARNING = (
    "authentication is disabled: anyone who can reach the platform can call this endpoint"
)


class ReplicaView(View):
    index: int
    status: str
    pid: int | None = None
    port: int | None = None
    restarts: int = 0
    last_error: str = ""
    version: str = Field(default="", description="The model version the replica runs.")


class RolloutView(View):
    """A version starting beside the serving one; it takes the traffic once all its replicas
    are healthy."""

    version: str
    previous_version: str = Field(description="The version that serves meanwhile.")
    rollback: bool = False


class AutoscalingView(View):
    """A deployment's autoscaling policy as it is stored (``AutoscalingPolicy`` checks one
    that is sent)."""

    min_replicas: int
    max_replicas: int
    target_inflight: float
    scale_up_delay_seconds: float
    scale_down_delay_seconds: float


def deployment_warnings(kind: str, auth_enabled: bool) -> list[str]:
    """What a deployment's answer warns about."""
    if kind == "endpoint" and not auth_enabled:
        return [AUTH_DISABLED_WARNING]
    return []


class DeploymentView(View):
    id: str
    name: str
    crn: str
    model: str
    version: str
    version_spec: str
    model_uri: str
    runtime: str
    status: str
    status_message: str
    desired_state: str
    replicas: int = Field(description="The replica count it is set to (by the autoscaler too).")
    ready_replicas: int
    replica_states: list[ReplicaView]
    autoscaling: AutoscalingView | None = Field(
        default=None, description="Its autoscaling policy; null: a fixed replica count."
    )
    cpu: float | None
    memory_mb: int | None
    environment: dict[str, str]
    auth_enabled: bool
    access_key_prefix: str | None
    access_key: str | None = Field(
        default=None,
        description="The access key, for API keys of scope deploy or admin; null for other "
        "callers, and for a key made before keys were kept encrypted until it is rotated.",
    )
    endpoint_url: str
    kind: str
    source: str
    file_path: str | None
    function_name: str | None
    track_metrics: bool
    signature: dict[str, Any] | None
    env_manager: str = "local"
    track_alias: bool = Field(
        default=False,
        description="Whether the deployment follows the alias in ``version_spec``: when the "
        "alias moves in MLflow, its new version rolls out.",
    )
    alias_held_version: str | None = Field(
        default=None,
        description="A version the followed alias points at that the deployment does not roll "
        "out: it failed to, or the deployment was rolled back from it. Released when the alias "
        "moves to another version, or by a redeploy with the alias.",
    )
    rollout: RolloutView | None = Field(
        default=None,
        description="While a redeploy or rollback is under way: the version starting beside "
        "the serving one (``version`` is still the serving one's).",
    )
    warnings: list[str] = Field(
        default_factory=list,
        description="Warnings about the deployment, e.g. that its endpoint needs no key.",
    )
    created_at: datetime
    updated_at: datetime


class DeploymentCreated(DeploymentView):
    access_key: str | None = Field(
        description="The access key, shown only once. A deployment with authentication "
        "disabled has one too: Cloudera's /model finds the deployment by it."
    )


class AccessKeyView(View):
    deployment: str
    access_key: str


class PredictionView(View):
    """A model endpoint's answer: the prediction and the UUID it is recorded under (a predict
    function that tracks its own metrics adds ``model_deployment_crn``)."""

    prediction: Any = None
    uuid: str | None = None


class CanaryPolicyView(View):
    """A canary's policy as it is stored (``CanaryPolicy`` checks one that is sent)."""

    min_requests: int
    max_error_rate: float
    max_p95_ms: float | None = None
    max_drift: bool
    performance_margin: float | None = None
    allow_estimated: bool = False
    reference_margin: float | None = None
    metric: str


class CanaryDecisionView(View):
    at: int = Field(description="Unix time in ms.")
    decision: str = Field(
        description="started | resumed (after a platform restart) | wait | promote | rollback "
        "| stopped"
    )
    stable_version: str
    candidate_version: str
    mode: str
    reasons: list[str]
    evidence: dict[str, Any] | None = None


class CanaryView(View):
    deployment: str
    active: bool
    mode: str | None = None
    percent: float | None = None
    stable_version: str | None = None
    candidate_version: str | None = None
    candidate_alias: str | None = None
    candidate_ready: bool = False
    started_at: int | None = None
    policy: CanaryPolicyView | None = None
    last: CanaryDecisionView | None = Field(default=None, description="The latest evaluation.")
    decisions: list[CanaryDecisionView] = Field(description="Recorded decisions, newest first.")
