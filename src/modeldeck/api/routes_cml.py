"""``/api/v2``: Cloudera ML API v2 paths for registered models, models, builds and deployments.

The paths and field names are Cloudera's, so the ``cmlapi`` client (and scripts calling the
REST API directly) work unchanged; the work is :class:`~modeldeck.compat.cmlapi_service.CmlService`.
"""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, ConfigDict, Field

from modeldeck.compat.cmlapi_schemas import (
    CreateModelBuildRequest,
    CreateModelDeploymentRequest,
    CreateModelRequest,
    ListModelBuildsResponse,
    ListModelDeploymentsResponse,
    ListModelsResponse,
    ListRegisteredModelsResponse,
    Model,
    ModelBuild,
    ModelDeployment,
    RegisteredModel,
)
from modeldeck.compat.cmlapi_service import CmlService
from modeldeck.platform import Platform
from modeldeck.records.model_metrics import DEFAULT_PAGE, MAX_PAGE, MAX_TIMESTAMP_MS

from .deps import get_platform, may_read_keys, require_api_key
from .routes_control import errors

router = APIRouter(
    dependencies=[Depends(require_api_key)],
    responses=errors(400, 401, 403, 422),
    tags=["cml api v2"],
)

MODEL = "/projects/{project_id}/models/{model_id}"
BUILD = MODEL + "/builds/{build_id}"
DEPLOYMENT = BUILD + "/deployments/{deployment_id}"

SearchFilter = Query(None, description='A JSON object, e.g. {"model_name": "iris"}.')
Sort = Query(None, description="A field name, '-' first for descending.")
PageSize = Query(None, ge=1, le=1000, description="Page length (default: everything).")
PageToken = Query(None, description="`next_page_token` of the previous page.")


def cml(platform: Platform = Depends(get_platform)) -> CmlService:
    return platform.cml


@router.get("/registry/models", summary="List registered models (MLflow)")
async def list_registered_models(
    search_filter: str | None = SearchFilter,
    sort: str | None = Sort,
    page_size: int | None = PageSize,
    page_token: str | None = PageToken,
    service: CmlService = Depends(cml),
) -> ListRegisteredModelsResponse:
    return await service.list_registered_models(search_filter, sort, page_size, page_token)


@router.get(
    "/registry/models/{model_id}",
    summary="A registered model with its versions",
    responses=errors(404),
)
async def get_registered_model(
    model_id: str, sort: str | None = Sort, service: CmlService = Depends(cml)
) -> RegisteredModel:
    return await service.get_registered_model(model_id, sort)


@router.get("/models", summary="List models of every project")
async def list_all_models(
    search_filter: str | None = SearchFilter,
    sort: str | None = Sort,
    page_size: int | None = PageSize,
    page_token: str | None = PageToken,
    service: CmlService = Depends(cml),
    reveal: bool = Depends(may_read_keys),
) -> ListModelsResponse:
    return await service.list_models(
        None, search_filter, sort, page_size, page_token, reveal_keys=reveal
    )


@router.post(
    "/projects/{project_id}/models",
    status_code=201,
    summary="Create a model (optionally built and deployed at once), with its access key",
    responses=errors(404, 409),
)
async def create_model(
    project_id: str, body: CreateModelRequest, service: CmlService = Depends(cml)
) -> Model:
    return await service.create_model(project_id, body)


@router.get(
    "/projects/{project_id}/models",
    summary="List a project's models (with their access keys, for deploy and admin keys)",
)
async def list_models(
    project_id: str,
    search_filter: str | None = SearchFilter,
    sort: str | None = Sort,
    page_size: int | None = PageSize,
    page_token: str | None = PageToken,
    service: CmlService = Depends(cml),
    reveal: bool = Depends(may_read_keys),
) -> ListModelsResponse:
    return await service.list_models(
        project_id, search_filter, sort, page_size, page_token, reveal_keys=reveal
    )


@router.get(
    MODEL, summary="A model (with its access key, for deploy and admin keys)", responses=errors(404)
)
async def get_model(
    project_id: str,
    model_id: str,
    service: CmlService = Depends(cml),
    reveal: bool = Depends(may_read_keys),
) -> Model:
    return await service.get_model(project_id, model_id, reveal_key=reveal)


@router.post(
    MODEL + "/builds",
    status_code=201,
    summary="Build a registered version: resolve it and load it once, in the background",
    responses=errors(404),
)
async def create_model_build(
    project_id: str,
    model_id: str,
    body: CreateModelBuildRequest,
    service: CmlService = Depends(cml),
) -> ModelBuild:
    return await service.create_build(project_id, model_id, body)


@router.get(MODEL + "/builds", summary="List a model's builds", responses=errors(404))
async def list_model_builds(
    project_id: str,
    model_id: str,
    sort: str | None = Sort,
    page_size: int | None = PageSize,
    page_token: str | None = PageToken,
    service: CmlService = Depends(cml),
) -> ListModelBuildsResponse:
    return await service.list_builds(project_id, model_id, sort, page_size, page_token)


@router.get(BUILD, summary="A build", responses=errors(404))
async def get_model_build(
    project_id: str, model_id: str, build_id: str, service: CmlService = Depends(cml)
) -> ModelBuild:
    return await service.get_build(project_id, model_id, build_id)


@router.post(
    BUILD + "/deployments",
    status_code=201,
    summary="Deploy a build as the model's live deployment",
    responses=errors(404, 409),
)
async def create_model_deployment(
    project_id: str,
    model_id: str,
    build_id: str,
    body: CreateModelDeploymentRequest,
    service: CmlService = Depends(cml),
) -> ModelDeployment:
    return await service.create_deployment(project_id, model_id, build_id, body)


@router.get(BUILD + "/deployments", summary="List a build's deployments", responses=errors(404))
async def list_model_deployments(
    project_id: str,
    model_id: str,
    build_id: str,
    sort: str | None = Sort,
    page_size: int | None = PageSize,
    page_token: str | None = PageToken,
    service: CmlService = Depends(cml),
) -> ListModelDeploymentsResponse:
    return await service.list_deployments(
        project_id, model_id, build_id, sort, page_size, page_token
    )


@router.get(DEPLOYMENT, summary="A deployment and its status", responses=errors(404))
async def get_model_deployment(
    project_id: str,
    model_id: str,
    build_id: str,
    deployment_id: str,
    service: CmlService = Depends(cml),
) -> ModelDeployment:
    return await service.get_deployment(project_id, model_id, build_id, deployment_id)


@router.post(DEPLOYMENT + ":stop", summary="Stop a deployment", responses=errors(404))
async def stop_model_deployment(
    project_id: str,
    model_id: str,
    build_id: str,
    deployment_id: str,
    service: CmlService = Depends(cml),
) -> ModelDeployment:
    return await service.stop_deployment(project_id, model_id, build_id, deployment_id)


@router.post(
    DEPLOYMENT + ":restart",
    summary="Start a deployment's build again (new replicas); it becomes the live one",
    responses=errors(404, 409),
)
async def restart_model_deployment(
    project_id: str,
    model_id: str,
    build_id: str,
    deployment_id: str,
    service: CmlService = Depends(cml),
) -> ModelDeployment:
    return await service.restart_deployment(project_id, model_id, build_id, deployment_id)


# -- model metrics by CRN (cml.metrics_v1 / cdsw on a platform) -------------------------------


def _crn(what: str) -> Any:
    return Query(None, min_length=1, max_length=1024, description=f"The CRN of a {what}.")


def _timestamp() -> Any:
    return Query(None, ge=0, le=MAX_TIMESTAMP_MS, description="ms since the epoch")


class CmlMetricsPage(BaseModel):
    metrics: list[dict[str, Any]] = Field(
        description="Records in Cloudera ML's shape, with the CRNs the cmlapi objects show."
    )
    next_cursor: str | None = Field(
        description="Pass as ?cursor= (with the same end_timestamp_ms) for the next page; a page "
        "may be empty while more follow."
    )


class CmlAggregateMetrics(BaseModel):
    model_config = ConfigDict(extra="forbid", protected_namespaces=())

    metrics: dict[str, Any]
    start_timestamp_ms: int = Field(ge=0, le=MAX_TIMESTAMP_MS)
    end_timestamp_ms: int = Field(ge=0, le=MAX_TIMESTAMP_MS)
    model_deployment_crn: str = Field(min_length=1, max_length=1024)


class Recorded(BaseModel):
    status: str = "recorded"


@router.get(
    "/metrics",
    summary="Prediction records by model, build and/or deployment CRN (read_metrics)",
    responses=errors(404),
)
async def read_metrics(
    model_crn: str | None = _crn("model"),
    model_build_crn: str | None = _crn("model build"),
    model_deployment_crn: str | None = _crn("model deployment"),
    start_timestamp_ms: int | None = _timestamp(),
    end_timestamp_ms: int | None = _timestamp(),
    limit: int = Query(DEFAULT_PAGE, ge=1, le=MAX_PAGE),
    cursor: str | None = Query(None, max_length=2048),
    service: CmlService = Depends(cml),
) -> CmlMetricsPage:
    records, next_cursor = await asyncio.to_thread(
        service.records.page,
        model_crn=model_crn,
        model_build_crn=model_build_crn,
        model_deployment_crn=model_deployment_crn,
        start_ms=start_timestamp_ms or 0,
        end_ms=end_timestamp_ms,
        limit=limit,
        cursor=cursor,
    )
    return CmlMetricsPage(metrics=records, next_cursor=next_cursor)


@router.post(
    "/metrics/aggregate",
    status_code=201,
    summary="Window-level metrics of a deployment named by CRN (track_aggregate_metrics)",
    responses=errors(404),
)
async def track_aggregate_metrics(
    body: CmlAggregateMetrics, service: CmlService = Depends(cml)
) -> Recorded:
    await asyncio.to_thread(
        service.records.track_aggregate,
        body.metrics,
        body.start_timestamp_ms,
        body.end_timestamp_ms,
        body.model_deployment_crn,
    )
    return Recorded()


__all__ = ["router"]
