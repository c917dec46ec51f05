"""Cloudera ML API v2 requests and objects (models, builds, deployments), as modeldeck serves them.

Field names are Cloudera's (``snake_case``, as the ``cmlapi`` client and the REST API v2 use
them). Fields a Cloudera script may send that have no meaning here (``kernel``, ``visibility``,
``runtime_identifier`` ...) are accepted and ignored; unknown fields are an error naming them.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, computed_field, field_validator, model_validator

from modeldeck.deployments.schemas import MAX_REPLICAS
from modeldeck.validation import Text, environment_problem
from modeldeck.views.deployments import AUTH_DISABLED_WARNING

STRICT = ConfigDict(extra="forbid", protected_namespaces=())
Id = Annotated[str, Text(255, min_length=1)]
"""A project, model, build or deployment id as a request may carry it."""


class BuildConfig(BaseModel):
    """What to build: a registered model version, or a Python file and function."""

    model_config = STRICT

    registered_model_version_id: Annotated[str, Text(255, min_length=1)] | None = Field(
        default=None,
        description="A version's `model_version_id` (`models:/name/3`), or a version number, "
        "`@alias` or `latest` of the model's registered model.",
    )
    file_path: Annotated[str, Text(4096, min_length=1)] | None = Field(
        default=None,
        description="Instead of a registered version: absolute path of a Python file on the "
        "platform's machine.",
    )
    function_name: str | None = Field(
        default=None, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$", description="Function in `file_path`."
    )
    comment: Annotated[str, Text(10_000, multiline=True)] = ""
    runtime_identifier: Annotated[str, Text(1024)] | None = Field(
        default=None, description="Accepted, not used."
    )
    runtime_addon_identifiers: list[Annotated[str, Text(1024)]] | None = Field(
        default=None, description="Ignored."
    )
    kernel: Annotated[str, Text(255)] | None = Field(
        default=None, description="Accepted, not used."
    )

    @model_validator(mode="after")
    def _one_source(self) -> BuildConfig:
        if self.registered_model_version_id and self.file_path:
            raise ValueError("give registered_model_version_id or file_path, not both")
        if self.function_name and not self.file_path:
            raise ValueError("function_name goes with file_path")
        return self


class CreateModelBuildRequest(BuildConfig):
    project_id: Id | None = Field(default=None, description="Must match the path if given.")
    model_id: Id | None = Field(default=None, description="Must match the path if given.")


class DeployConfig(BaseModel):
    """Resources of a deployment. ``memory`` is in GiB and ``cpu`` in cores, as Cloudera's."""

    model_config = STRICT

    cpu: float | None = Field(
        default=None, gt=0, le=1024, description="CPU hint per replica (cores)."
    )
    memory: float | None = Field(
        default=None, gt=0, le=1024 * 1024, description="Memory hint per replica (GiB)."
    )
    replicas: int = Field(default=1, ge=1, le=MAX_REPLICAS)
    nvidia_gpus: int = Field(default=0, ge=0, le=0, description="GPUs are not supported: 0.")
    environment: dict[str, str] = Field(
        default_factory=dict,
        description="Environment variables for the replicas (an object, or one as a JSON string).",
    )

    @field_validator("environment", mode="before")
    @classmethod
    def _json_text(cls, value: Any) -> Any:
        if value is None or value == "":
            return {}
        if isinstance(value, str):
            try:
                return json.loads(value)
            except ValueError as exc:
                raise ValueError("environment must be an object or a JSON object string") from exc
        return value

    @field_validator("environment")
    @classmethod
    def _environment(cls, value: dict[str, str]) -> dict[str, str]:
        found = environment_problem(value)
        if found is not None:
            name, problem = found
            raise ValueError(f"{name}: {problem}" if name else problem)
        return value


class CreateModelDeploymentRequest(DeployConfig):
    project_id: Id | None = Field(default=None, description="Must match the path if given.")
    model_id: Id | None = Field(default=None, description="Must match the path if given.")
    build_id: Id | None = Field(default=None, description="Must match the path if given.")
    model_build_id: Id | None = Field(default=None, description="Must match the path if given.")


class CreateModelRequest(BaseModel):
    model_config = STRICT

    project_id: Id | None = Field(default=None, description="Must match the path if given.")
    name: Annotated[str, Text(255, min_length=1)]
    description: Annotated[str, Text(10_000, multiline=True)] = ""
    disable_authentication: bool = Field(
        default=False, description="Serve without checking the access key (a warning is logged)."
    )
    registered_model_id: Annotated[str, Text(255, min_length=1)] | None = Field(
        default=None, description="The registered model's name."
    )
    visibility: Annotated[str, Text(255)] | None = Field(
        default=None, description="Accepted, not used."
    )
    auto_build_model: bool = False
    auto_build_config: BuildConfig | None = None
    auto_deploy_model: bool = False
    auto_deploy_config: DeployConfig | None = None

    @model_validator(mode="after")
    def _auto(self) -> CreateModelRequest:
        if self.auto_deploy_model and not self.auto_build_model:
            raise ValueError("auto_deploy_model needs auto_build_model: a deployment needs a build")
        if self.auto_build_model:
            config = self.auto_build_config
            has_source = config is not None and (
                config.registered_model_version_id or config.file_path
            )
            if not has_source and not self.registered_model_id:
                raise ValueError(
                    "auto_build_model needs auto_build_config.registered_model_version_id "
                    "(or registered_model_id, to build its latest version)"
                )
        return self


# -- what the API returns ---------------------------------------------------------------------


class RegisteredModelVersion(BaseModel):
    model_config = ConfigDict(protected_namespaces=())

    model_version_id: str = Field(description="`models:/name/version`: pass it to a build.")
    model_id: str
    version_number: int
    status: str
    description: str
    aliases: list[str]
    tags: dict[str, str]
    run_id: str | None
    source: str
    created_at: str | None


class RegisteredModel(BaseModel):
    model_config = ConfigDict(protected_namespaces=())

    model_id: str = Field(description="The registered model's name (MLflow's identifier).")
    name: str
    description: str
    created_at: str | None
    updated_at: str | None
    aliases: dict[str, str]
    tags: dict[str, str]
    model_versions: list[RegisteredModelVersion]


class ListRegisteredModelsResponse(BaseModel):
    models: list[RegisteredModel]
    next_page_token: str = ""


class Model(BaseModel):
    id: str
    project_id: str
    name: str
    description: str
    crn: str
    access_key: str | None = Field(
        description="The access key: in the answer to create_model, and for API keys of scope "
        "deploy or admin (null for others, and for keys made before keys were kept encrypted, "
        "until rotated)."
    )
    access_key_prefix: str | None
    auth_enabled: bool
    registered_model_id: str | None
    deployment_name: str = Field(description="The modeldeck deployment this model serves as.")
    endpoint_url: str
    created_at: datetime
    updated_at: datetime

    @computed_field(  # type: ignore[prop-decorator]
        description="Warnings about the model, e.g. that its endpoint needs no key."
    )
    @property
    def warnings(self) -> list[str]:
        return [] if self.auth_enabled else [AUTH_DISABLED_WARNING]


class ListModelsResponse(BaseModel):
    models: list[Model]
    next_page_token: str = ""


class ModelBuild(BaseModel):
    model_config = ConfigDict(protected_namespaces=())

    id: str
    project_id: str
    model_id: str
    crn: str
    status: str = Field(description="queued, building, built or build failed")
    status_message: str = Field(description="Why the build failed, or what it loaded.")
    registered_model_version_id: str | None
    model_name: str
    model_version: str
    file_path: str | None
    function_name: str | None
    comment: str
    runtime_identifier: str | None
    created_at: datetime
    updated_at: datetime
    built_at: datetime | None


class ListModelBuildsResponse(BaseModel):
    model_builds: list[ModelBuild]
    next_page_token: str = ""


class ModelDeployment(BaseModel):
    model_config = ConfigDict(protected_namespaces=())

    id: str
    project_id: str
    model_id: str
    build_id: str
    crn: str = Field(description="Its own CRN: the records of the predictions it served carry it.")
    status: str = Field(description="deploying, deployed, failed or stopped")
    status_message: str
    cpu: float | None
    memory: float | None
    nvidia_gpus: int = 0
    replicas: int
    environment: dict[str, str]
    deployment_name: str
    created_at: datetime
    updated_at: datetime
    stopped_at: datetime | None


class ListModelDeploymentsResponse(BaseModel):
    model_deployments: list[ModelDeployment]
    next_page_token: str = ""
