"""Deployment requests, validated strictly (what the API and the client answer with is in
``modeldeck.views.deployments``)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from modeldeck.validation import (
    DEPLOYMENT_NAME_PATTERN,
    PositiveInt32,
    Text,
    environment_problem,
)

NAME_PATTERN = DEPLOYMENT_NAME_PATTERN
MAX_REPLICAS = 32
EnvManagerName = Literal["local", "uv", "virtualenv"]


class AutoscalingPolicy(BaseModel):
    """Scale a deployment's replicas between ``min_replicas`` and ``max_replicas`` on the
    requests in flight per replica (see docs/deployments.md, "Autoscaling")."""

    model_config = ConfigDict(extra="forbid")

    min_replicas: int = Field(default=1, ge=1, le=MAX_REPLICAS, description="Fewest replicas.")
    max_replicas: int = Field(ge=1, le=MAX_REPLICAS, description="Most replicas.")
    target_inflight: float = Field(
        default=4.0,
        gt=0,
        le=10_000,
        description="Requests in flight (answering or queued at the gateway) per replica that "
        "the autoscaler aims at: it wants ceil(in flight / target) replicas.",
    )
    scale_up_delay_seconds: float = Field(
        default=5.0,
        ge=0,
        le=3600,
        description="A larger count must be wanted for this long before replicas are added.",
    )
    scale_down_delay_seconds: float = Field(
        default=60.0,
        ge=0,
        le=86_400,
        description="A smaller count must be wanted for this long before replicas are removed "
        "(they drain first: their requests in flight finish).",
    )

    @model_validator(mode="after")
    def _bounds(self) -> AutoscalingPolicy:
        if self.max_replicas < self.min_replicas:
            raise ValueError(
                f"max_replicas ({self.max_replicas}) is below min_replicas ({self.min_replicas})"
            )
        return self

    def clamp(self, replicas: int) -> int:
        """``replicas`` brought into [min_replicas, max_replicas]."""
        return max(self.min_replicas, min(self.max_replicas, replicas))


class DeploymentCreate(BaseModel):
    """A request to deploy a registered model version."""

    model_config = ConfigDict(extra="forbid", protected_namespaces=())

    name: str = Field(pattern=NAME_PATTERN, description="Deployment name, used in its URL.")
    model: Annotated[str, Text(255, min_length=1)] | None = Field(
        default=None, description="Registered model name."
    )
    file: Annotated[str, Text(4096, min_length=1)] | None = Field(
        default=None,
        description="Instead of a registered model: absolute path of a Python file on the "
        "platform's machine holding the predict function.",
    )
    function: str = Field(
        default="predict",
        pattern=r"^[A-Za-z_][A-Za-z0-9_]*$",
        description="Name of the predict function in `file`.",
    )
    kind: Literal["endpoint", "batch"] = Field(
        default="endpoint",
        description="'batch': no endpoint or replicas; a name that batch inference jobs record "
        "their predictions under.",
    )
    track_metrics: bool = Field(
        default=True,
        description="Record every prediction's input and output (model metrics).",
    )
    version: Annotated[str, Text(255, min_length=1)] | None = Field(
        default=None, description="Version number, '@alias' or 'latest' (the default)."
    )
    alias: Annotated[str, Text(255, min_length=1)] | None = Field(
        default=None, description="Registry alias, e.g. 'champion'."
    )
    track_alias: bool = Field(
        default=True,
        description="With an alias: follow it, rolling out the version it points at whenever "
        "it moves in MLflow (checked every MODELDECK_ALIAS_POLL_SECONDS). False pins the "
        "version the alias resolves to now.",
    )
    replicas: int = Field(
        default=1,
        ge=1,
        le=MAX_REPLICAS,
        description="Replicas; with ``autoscaling``, the count to start with (brought into its "
        "bounds).",
    )
    autoscaling: AutoscalingPolicy | None = Field(
        default=None,
        description="Scale the replicas between min and max on the requests in flight per "
        "replica (null: a fixed count of ``replicas``).",
    )
    runtime: Literal["local", "ray"] | None = Field(
        default=None,
        description="'local' (processes on the platform's machine) or 'ray' (a Ray Serve "
        "application; needs modeldeck[ray]). Default: MODELDECK_DEFAULT_RUNTIME.",
    )
    cpu: float | None = Field(
        default=None, gt=0, le=1024, description="CPU hint per replica (cores)."
    )
    memory_mb: PositiveInt32 | None = Field(
        default=None,
        description="Resident memory limit per replica (MB); above it, the replica restarts.",
    )
    environment: dict[str, str] = Field(
        default_factory=dict,
        description="Environment variables for the replicas (at most 256; a value at most "
        "32 KiB, all of them 128 KiB; no NUL).",
    )
    auth_enabled: bool = Field(
        default=True, description="Require the access key on the model endpoint."
    )
    env_manager: EnvManagerName | None = Field(
        default=None,
        description="Where the replicas run: 'local' (the platform's own Python environment, "
        "the default) or an isolated environment built from the model's logged requirements "
        "with 'uv' or 'virtualenv' (see docs/builds.md). A redeploy keeps the deployment's "
        "when not given.",
    )

    @field_validator("version", mode="before")
    @classmethod
    def _version_text(cls, value: Any) -> Any:
        return str(value) if isinstance(value, int) and not isinstance(value, bool) else value

    @model_validator(mode="after")
    def _source(self) -> DeploymentCreate:
        if self.kind == "batch":
            if self.file:
                raise ValueError("a batch deployment records predictions; it takes no file")
            if self.autoscaling is not None:
                raise ValueError("a batch deployment has no replicas to autoscale")
            return self
        if (self.model is None) == (self.file is None):
            raise ValueError("give either 'model' (a registered model) or 'file'")
        if self.file and (self.version is not None or self.alias):
            raise ValueError("'version' and 'alias' apply to registered models, not files")
        if self.autoscaling is not None:
            self.replicas = self.autoscaling.clamp(self.replicas)
        if self.file and self.env_manager not in (None, "local"):
            raise ValueError(
                "env_manager 'uv' and 'virtualenv' build from a registered model's logged "
                "requirements; a file deployment runs in the platform's environment"
            )
        return self

    @field_validator("environment")
    @classmethod
    def _environment(cls, value: dict[str, str]) -> dict[str, str]:
        found = environment_problem(value)
        if found is not None:
            name, problem = found
            raise ValueError(f"{name}: {problem}" if name else problem)
        return value


class RedeployRequest(BaseModel):
    """Serve another version of a registered model under an existing deployment."""

    model_config = ConfigDict(extra="forbid", protected_namespaces=())

    model: Annotated[str, Text(255, min_length=1)] | None = Field(
        default=None,
        description="Registered model name (default: the one the deployment serves).",
    )
    version: Annotated[str, Text(255, min_length=1)] | None = Field(
        default=None, description="Version number, '@alias' or 'latest' (the default)."
    )
    alias: Annotated[str, Text(255, min_length=1)] | None = Field(
        default=None, description="Registry alias, e.g. 'champion'."
    )
    track_alias: bool = Field(
        default=True,
        description="With an alias: follow it from then on (false: serve the version it "
        "points at now and stay there).",
    )
    env_manager: EnvManagerName | None = Field(
        default=None, description="'local', 'uv' or 'virtualenv' (default: the deployment's)."
    )

    @field_validator("version", mode="before")
    @classmethod
    def _version_text(cls, value: Any) -> Any:
        return str(value) if isinstance(value, int) and not isinstance(value, bool) else value


class ScaleRequest(BaseModel):
    """Either a fixed count (``replicas``, which ends autoscaling) or an autoscaling policy."""

    model_config = ConfigDict(extra="forbid")

    replicas: int | None = Field(
        default=None, ge=1, le=MAX_REPLICAS, description="A fixed count; ends autoscaling."
    )
    autoscaling: AutoscalingPolicy | None = Field(
        default=None,
        description="Scale between min and max from now on (the count is brought into its "
        "bounds at once).",
    )

    @model_validator(mode="after")
    def _one(self) -> ScaleRequest:
        if (self.replicas is None) == (self.autoscaling is None):
            raise ValueError("give either 'replicas' (a fixed count) or 'autoscaling'")
        return self
