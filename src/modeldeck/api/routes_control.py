"""``/api/v1``: registered models (read through MLflow), deployments and API keys."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Response
from pydantic import BaseModel, ConfigDict, Field

from modeldeck.auth.api_keys import ADMIN, SCOPE_PATTERN
from modeldeck.deployments.canary import CanaryRequest
from modeldeck.deployments.schemas import DeploymentCreate, RedeployRequest, ScaleRequest
from modeldeck.errors import error_body
from modeldeck.platform import Platform
from modeldeck.validation import Text
from modeldeck.views.builds import BuildView, EnvironmentView, PruneResult
from modeldeck.views.deployments import (
    AccessKeyView,
    CanaryView,
    DeploymentCreated,
    DeploymentView,
)
from modeldeck.views.keys import ApiKeyCreated, ApiKeyView
from modeldeck.views.registry import AliasView, ModelVersionView, RegisteredModelView

from .deps import get_platform, may_read_keys, require_admin, require_api_key

ERROR_SCHEMA = {
    "type": "object",
    "properties": {
        "error": {
            "type": "object",
            "properties": {
                "code": {"type": "string"},
                "message": {"type": "string"},
                "details": {"type": "object"},
            },
            "required": ["code", "message", "details"],
        }
    },
    "required": ["error"],
}


def errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    return {
        code: {"description": "Error", "content": {"application/json": {"schema": ERROR_SCHEMA}}}
        for code in codes
    }


router = APIRouter(dependencies=[Depends(require_api_key)], responses=errors(401, 403, 422))


class ApiKeyCreate(BaseModel):
    name: Annotated[str, Text(255, min_length=1)] = "api"
    scope: str = Field(
        default=ADMIN,
        pattern=SCOPE_PATTERN,
        description="admin, deploy, read or predict:<deployment> (see docs/security.md).",
    )


@router.get("/models", tags=["models"], summary="List registered models")
async def list_models(platform: Platform = Depends(get_platform)) -> list[RegisteredModelView]:
    models = await asyncio.to_thread(platform.registry.list_models)
    return [RegisteredModelView.model_validate(m.to_dict()) for m in models]


@router.get(
    "/models/{name}",
    tags=["models"],
    summary="A registered model and its versions",
    responses=errors(404),
)
async def get_model(name: str, platform: Platform = Depends(get_platform)) -> RegisteredModelView:
    found = await asyncio.to_thread(platform.registry.get_model, name)
    return RegisteredModelView.model_validate(found.to_dict())


@router.get(
    "/models/{name}/versions/{version}",
    tags=["models"],
    summary="One version (number, @alias or latest) with run metrics and signature",
    responses=errors(400, 404),
)
async def get_model_version(
    name: str, version: str, platform: Platform = Depends(get_platform)
) -> ModelVersionView:
    found = await asyncio.to_thread(platform.registry.get_version, name, version)
    return ModelVersionView.model_validate(found.to_dict())


class AliasUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    version: int = Field(ge=1, description="The version the alias should point at.")


@router.put(
    "/models/{name}/aliases/{alias}",
    tags=["models"],
    summary="Point an alias (e.g. champion) at a version: promotion",
    responses=errors(400, 404),
)
async def set_alias(
    name: str, alias: str, body: AliasUpdate, platform: Platform = Depends(get_platform)
) -> AliasView:
    before, version = await asyncio.to_thread(
        platform.registry.set_alias, name, alias, body.version
    )
    return AliasView(model=name, alias=alias, version=version, previous_version=before)


@router.post(
    "/deployments",
    tags=["deployments"],
    status_code=201,
    summary="Deploy a registered model version",
    responses=errors(400, 404, 409),
)
async def create_deployment(
    body: DeploymentCreate, platform: Platform = Depends(get_platform)
) -> DeploymentCreated:
    return await platform.deployments.create(body)


@router.get("/deployments", tags=["deployments"], summary="List deployments")
async def list_deployments(
    platform: Platform = Depends(get_platform), reveal: bool = Depends(may_read_keys)
) -> list[DeploymentView]:
    return await platform.deployments.list(reveal_keys=reveal)


@router.get("/deployments/{name}", tags=["deployments"], responses=errors(404))
async def get_deployment(
    name: str, platform: Platform = Depends(get_platform), reveal: bool = Depends(may_read_keys)
) -> DeploymentView:
    return await platform.deployments.get(name, reveal_key=reveal)


@router.post("/deployments/{name}/stop", tags=["deployments"], responses=errors(404))
async def stop_deployment(name: str, platform: Platform = Depends(get_platform)) -> DeploymentView:
    return await platform.deployments.stop(name)


@router.post("/deployments/{name}/start", tags=["deployments"], responses=errors(404))
async def start_deployment(name: str, platform: Platform = Depends(get_platform)) -> DeploymentView:
    return await platform.deployments.start(name)


@router.post(
    "/deployments/{name}/scale",
    tags=["deployments"],
    responses=errors(404),
    summary="Set a fixed replica count, or an autoscaling policy",
)
async def scale_deployment(
    name: str, body: ScaleRequest, platform: Platform = Depends(get_platform)
) -> DeploymentView:
    """`replicas`: that many, from now on (ends autoscaling). `autoscaling`: between its min
    and max on the requests in flight per replica. Replicas taken away finish their requests in
    flight first."""
    return await platform.deployments.scale(name, body.replicas, body.autoscaling)


@router.post(
    "/deployments/{name}/access-key",
    tags=["deployments"],
    responses=errors(404),
    summary="Replace the deployment's access key (the old one stops working)",
)
async def rotate_access_key(name: str, platform: Platform = Depends(get_platform)) -> AccessKeyView:
    return await platform.deployments.rotate_key(name)


@router.post(
    "/deployments/{name}/redeploy",
    tags=["deployments"],
    responses=errors(404, 409),
    summary="Serve another model version under the deployment (builds first when isolated)",
)
async def redeploy_deployment(
    name: str, body: RedeployRequest | None = None, platform: Platform = Depends(get_platform)
) -> DeploymentView:
    """Without a body: the latest version of the model the deployment serves. While the
    deployment serves, the new version starts beside the old one and takes the traffic only once
    healthy (`rollout` in the answer); if it fails to start, the old version keeps serving."""
    return await platform.deployments.redeploy_version(name, body or RedeployRequest())


@router.post(
    "/deployments/{name}/rollback",
    tags=["deployments"],
    responses=errors(404, 409),
    summary="Return to the version the deployment served before its current one",
)
async def rollback_deployment(
    name: str, platform: Platform = Depends(get_platform)
) -> DeploymentView:
    """Goes like a redeploy (the current version serves until the previous one is healthy).
    409 when there is no previous version: a new deployment, or one already rolled back as far
    as its history goes."""
    return await platform.deployments.rollback(name)


@router.post(
    "/deployments/{name}/canary",
    tags=["deployments"],
    responses=errors(404, 409),
    summary="Run another version beside the serving one on a share (or a copy) of the traffic",
)
async def start_canary(
    name: str, body: CanaryRequest, platform: Platform = Depends(get_platform)
) -> CanaryView:
    """`mode: canary` sends `percent` of the requests to the candidate; `mode: shadow` sends it
    a copy of each (its answer is recorded, not returned). Every `MODELDECK_CANARY_INTERVAL_
    SECONDS` the `policy` promotes the candidate (a redeploy, and the deployment's alias moves
    to it) or rolls it back. 409 when a canary runs already or the deployment does not serve."""
    return await platform.canaries.start(name, body)


@router.get(
    "/deployments/{name}/canary",
    tags=["deployments"],
    responses=errors(404),
    summary="The deployment's canary and its recorded decisions, with their reasons",
)
async def canary_status(name: str, platform: Platform = Depends(get_platform)) -> CanaryView:
    return await platform.canaries.status(name)


@router.delete(
    "/deployments/{name}/canary",
    tags=["deployments"],
    responses=errors(404),
    summary="Stop the deployment's canary (its candidate's replicas stop)",
)
async def stop_canary(name: str, platform: Platform = Depends(get_platform)) -> CanaryView:
    return await platform.canaries.stop(name)


@router.get(
    "/deployments/{name}/builds",
    tags=["builds"],
    responses=errors(404),
    summary="The deployment's builds, newest first",
)
async def list_builds(name: str, platform: Platform = Depends(get_platform)) -> list[BuildView]:
    return await platform.deployments.list_builds(name)


@router.get(
    "/deployments/{name}/builds/{build_id}",
    tags=["builds"],
    responses=errors(404),
    summary="One build, with its log",
)
async def get_build(
    name: str, build_id: str, platform: Platform = Depends(get_platform)
) -> BuildView:
    return await platform.deployments.get_build(name, build_id)


@router.get("/environments", tags=["builds"], summary="Cached build environments")
async def list_environments(platform: Platform = Depends(get_platform)) -> list[EnvironmentView]:
    return await platform.deployments.environments()


@router.post(
    "/environments/prune",
    tags=["builds"],
    summary="Remove every cached environment that no running replica uses",
)
async def prune_environments(platform: Platform = Depends(get_platform)) -> PruneResult:
    return await platform.deployments.prune_environments()


@router.delete("/deployments/{name}", tags=["deployments"], status_code=204, responses=errors(404))
async def delete_deployment(name: str, platform: Platform = Depends(get_platform)) -> Response:
    await platform.deployments.delete(name)
    return Response(status_code=204)


keys_router = APIRouter(
    dependencies=[Depends(require_admin)], responses=errors(401, 403, 422), tags=["api keys"]
)


@keys_router.get("/api-keys", summary="List API keys (prefixes and scopes, never the keys)")
async def list_api_keys(platform: Platform = Depends(get_platform)) -> list[ApiKeyView]:
    return await asyncio.to_thread(platform.api_keys.list)


@keys_router.post(
    "/api-keys",
    status_code=201,
    responses=errors(404),  # a predict key for a deployment that does not exist
    summary="Create an API key (shown once)",
)
async def create_api_key(
    body: ApiKeyCreate, platform: Platform = Depends(get_platform)
) -> ApiKeyCreated:
    return await asyncio.to_thread(platform.api_keys.create, body.name, body.scope)


@keys_router.post(
    "/api-keys/{key_id}/rotate",
    responses=errors(404),
    summary="Give an API key a new secret (same name and scope); the old one stops working",
)
async def rotate_api_key(key_id: str, platform: Platform = Depends(get_platform)) -> ApiKeyCreated:
    return await asyncio.to_thread(platform.api_keys.rotate, key_id)


@keys_router.delete("/api-keys/{key_id}", status_code=204, responses=errors(404))
async def revoke_api_key(key_id: str, platform: Platform = Depends(get_platform)) -> Response:
    await asyncio.to_thread(platform.api_keys.revoke, key_id)
    return Response(status_code=204)


__all__ = ["ERROR_SCHEMA", "error_body", "errors", "keys_router", "router"]
