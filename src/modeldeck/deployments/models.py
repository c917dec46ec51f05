"""Deployment requests and views, shared by the service, the API and the client."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$"
MAX_REPLICAS = 32


class DeploymentCreate(BaseModel):
    """A request to deploy a registered model version."""

    model_config = ConfigDict(extra="forbid", protected_namespaces=())

    name: str = Field(pattern=NAME_PATTERN, description="Deployment name, used in its URL.")
    model: str = Field(min_length=1, max_length=255, description="Registered model name.")
    version: str | None = Field(
        default=None, description="Version number, '@alias' or 'latest' (the default)."
    )
    alias: str | None = Field(default=None, description="Registry alias, e.g. 'champion'.")
    replicas: int = Field(default=1, ge=1, le=MAX_REPLICAS)
    cpu: float | None = Field(default=None, gt=0, description="CPU hint per replica (cores).")
    memory_mb: int | None = Field(default=None, gt=0, description="Memory hint per replica.")
    environment: dict[str, str] = Field(
        default_factory=dict, description="Environment variables for the replicas."
    )
    auth_enabled: bool = Field(
        default=True, description="Require the access key on the model endpoint."
    )

    @field_validator("version", mode="before")
    @classmethod
    def _version_text(cls, value: Any) -> Any:
        return str(value) if isinstance(value, int) and not isinstance(value, bool) else value

    @field_validator("environment")
    @classmethod
    def _env_names(cls, value: dict[str, str]) -> dict[str, str]:
        for key in value:
            if not key or not key.replace("_", "a").isalnum() or key[0].isdigit():
                raise ValueError(f"invalid environment variable name {key!r}")
        return value


class ScaleRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    replicas: int = Field(ge=1, le=MAX_REPLICAS)


class ReplicaView(BaseModel):
    index: int
    status: str
    pid: int | None = None
    port: int | None = None
    restarts: int = 0
    last_error: str = ""


class DeploymentView(BaseModel):
    model_config = ConfigDict(protected_namespaces=())

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
    replicas: int
    ready_replicas: int
    replica_states: list[ReplicaView]
    cpu: float | None
    memory_mb: int | None
    environment: dict[str, str]
    auth_enabled: bool
    access_key_prefix: str | None
    endpoint_url: str
    signature: dict[str, Any] | None
    created_at: datetime
    updated_at: datetime


class DeploymentCreated(DeploymentView):
    access_key: str | None = Field(
        description="The access key, shown only once. Null when authentication is disabled."
    )


class AccessKeyView(BaseModel):
    deployment: str
    access_key: str
