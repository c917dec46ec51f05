"""``/api/v1``: model metrics (predictions, delayed ground truth, aggregates, read-back)."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Response
from pydantic import BaseModel, ConfigDict, Field

from modeldeck.platform import Platform
from modeldeck.records.export import MAX_EXPORT_ROWS, export_csv
from modeldeck.records.model_metrics import DEFAULT_PAGE, MAX_PAGE, MAX_TIMESTAMP_MS, now_ms
from modeldeck.records.sdk_backends import find_target
from modeldeck.validation import INT32_MAX, ModelVersion, Text
from modeldeck.views.metrics import Accepted, Counted, MetricsPage, Recorded, TechnicalMetrics

from .deps import get_platform, require_api_key
from .routes_control import errors

router = APIRouter(
    dependencies=[Depends(require_api_key)], tags=["model metrics"], responses=errors(401, 403, 422)
)


class DelayedMetrics(BaseModel):
    model_config = ConfigDict(extra="forbid")

    prediction_uuid: Annotated[str, Text(255, min_length=1)] = Field(
        description="UUID the prediction was answered with."
    )
    metrics: dict[str, Any] = Field(description="Metrics to merge into the prediction's record.")


class DelayedMetricsBatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    items: list[DelayedMetrics] = Field(min_length=1, max_length=10_000)


class AggregateMetrics(BaseModel):
    model_config = ConfigDict(extra="forbid", protected_namespaces=())

    metrics: dict[str, Any]
    start_timestamp_ms: int = Field(ge=0, le=MAX_TIMESTAMP_MS)
    end_timestamp_ms: int = Field(ge=0, le=MAX_TIMESTAMP_MS)
    model_version: ModelVersion | None = None


class PredictionIn(BaseModel):
    model_config = ConfigDict(extra="forbid", protected_namespaces=())

    uuid: Annotated[str, Text(36, min_length=1)] | None = Field(
        default=None, description="Default: a new UUID."
    )
    metrics: dict[str, Any] = Field(default_factory=dict)
    start_timestamp_ms: int | None = Field(default=None, ge=0, le=MAX_TIMESTAMP_MS)
    end_timestamp_ms: int | None = Field(default=None, ge=0, le=MAX_TIMESTAMP_MS)
    model_version: ModelVersion | None = None


class PredictionsIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    predictions: list[PredictionIn] = Field(min_length=1, max_length=10_000)


@router.post(
    "/deployments/{name}/predictions",
    status_code=201,
    responses=errors(404, 409),
    summary="Record predictions made elsewhere (batch inference)",
)
async def record_predictions(
    name: str, body: PredictionsIn, platform: Platform = Depends(get_platform)
) -> Recorded:
    def run() -> list[str]:
        target = find_target(platform.store, name)
        entries = [p.model_dump(exclude_none=True) for p in body.predictions]
        return platform.model_metrics.record(target, entries)

    return Recorded(uuids=await asyncio.to_thread(run))


@router.post(
    "/deployments/{name}/metrics/delayed",
    status_code=201,
    responses=errors(404),
    summary="Attach delayed metrics (ground truth) to a prediction",
)
async def track_delayed(
    name: str, body: DelayedMetrics, platform: Platform = Depends(get_platform)
) -> Accepted:
    def run() -> None:
        target = find_target(platform.store, name)
        platform.model_metrics.track_delayed(target, body.prediction_uuid, body.metrics)

    await asyncio.to_thread(run)
    return Accepted()


@router.post(
    "/deployments/{name}/metrics/delayed/batch",
    status_code=201,
    responses=errors(404),
    summary="Attach delayed metrics to many predictions in one transaction (all or nothing)",
)
async def track_delayed_batch(
    name: str, body: DelayedMetricsBatch, platform: Platform = Depends(get_platform)
) -> Counted:
    def run() -> int:
        target = find_target(platform.store, name)
        entries = [(item.prediction_uuid, item.metrics) for item in body.items]
        return platform.model_metrics.track_delayed_many(target, entries)

    return Counted(count=await asyncio.to_thread(run))


@router.post(
    "/metrics/delayed",
    status_code=201,
    responses=errors(404),
    summary="Attach delayed metrics to a prediction, found by its UUID alone",
)
async def track_delayed_by_uuid(
    body: DelayedMetrics, platform: Platform = Depends(get_platform)
) -> Accepted:
    await asyncio.to_thread(
        platform.model_metrics.track_delayed, None, body.prediction_uuid, body.metrics
    )
    return Accepted()


@router.post(
    "/deployments/{name}/metrics/aggregate",
    status_code=201,
    responses=errors(404),
    summary="Track window-level metrics",
)
async def track_aggregate(
    name: str, body: AggregateMetrics, platform: Platform = Depends(get_platform)
) -> Accepted:
    def run() -> None:
        target = find_target(platform.store, name)
        platform.model_metrics.track_aggregate(
            target,
            body.metrics,
            body.start_timestamp_ms,
            body.end_timestamp_ms,
            body.model_version or "",
        )

    await asyncio.to_thread(run)
    return Accepted()


@router.get(
    "/deployments/{name}/metrics/model",
    responses=errors(404),
    summary="Read model metrics records (Cloudera ML's shape), a page at a time",
)
async def read_model_metrics(
    name: str,
    start: int = Query(
        default=0, ge=0, le=MAX_TIMESTAMP_MS, description="Start of the range, ms since the epoch."
    ),
    end: int | None = Query(
        default=None, ge=0, le=MAX_TIMESTAMP_MS, description="End of the range (default: now)."
    ),
    uuid: list[str] | None = Query(default=None, description="Only these predictions."),
    version: str | None = Query(default=None, description="Only this model version."),
    limit: int = Query(default=DEFAULT_PAGE, ge=1, le=MAX_PAGE),
    cursor: str | None = Query(default=None),
    platform: Platform = Depends(get_platform),
) -> MetricsPage:
    def run() -> MetricsPage:
        target = find_target(platform.store, name)
        page = platform.model_metrics.read(
            target,
            start_ms=start,
            end_ms=end,
            uuids=uuid,
            model_version=version,
            limit=limit,
            cursor=cursor,
        )
        return MetricsPage(**page.to_dict())

    return await asyncio.to_thread(run)


@router.get(
    "/deployments/{name}/metrics/model/csv",
    responses={
        **errors(404),
        200: {"description": "The predictions as CSV", "content": {"text/csv": {}}},
    },
    response_class=Response,
    summary="Download the predictions of a range as CSV, one column per tracked key",
)
async def export_model_metrics(
    name: str,
    start: int = Query(
        default=0, ge=0, le=MAX_TIMESTAMP_MS, description="Start of the range, ms since the epoch."
    ),
    end: int | None = Query(
        default=None, ge=0, le=MAX_TIMESTAMP_MS, description="End of the range (default: now)."
    ),
    version: str | None = Query(default=None, description="Only this model version."),
    limit: int = Query(default=MAX_EXPORT_ROWS, ge=1, le=MAX_EXPORT_ROWS),
    platform: Platform = Depends(get_platform),
) -> Response:
    """Oldest first, with their delayed metrics merged in (as the read-back has them); tracked
    objects spread over one column per field. `X-Modeldeck-Rows` counts the rows;
    `X-Modeldeck-Truncated: true` says the range holds more than `limit`."""

    def run() -> Response:
        target = find_target(platform.store, name)
        records = platform.model_metrics.iter_records(
            target, start_ms=start, end_ms=end, model_version=version,
            include_aggregates=False, limit=min(limit + 1, MAX_PAGE),
        )  # fmt: skip
        export = export_csv(records, limit)
        return Response(
            export.text,
            media_type="text/csv; charset=utf-8",
            headers={
                "Content-Disposition": f'attachment; filename="{target.name}-predictions.csv"',
                "X-Modeldeck-Rows": str(export.rows),
                "X-Modeldeck-Truncated": str(export.truncated).lower(),
            },
        )

    return await asyncio.to_thread(run)


@router.get(
    "/deployments/{name}/metrics/technical",
    responses=errors(404),
    summary="Technical metrics: requests, failures, latency, sizes, CPU, memory, per replica",
)
async def read_technical_metrics(
    name: str,
    start: int | None = Query(
        default=None,
        ge=0,
        le=MAX_TIMESTAMP_MS,
        description="ms since the epoch (default: 1 h ago).",
    ),
    end: int | None = Query(
        default=None, ge=0, le=MAX_TIMESTAMP_MS, description="ms since the epoch (default: now)."
    ),
    step: int | None = Query(
        default=None,
        ge=5,
        le=MAX_TIMESTAMP_MS // 1000,
        description="Seconds per point (default: ~120 points).",
    ),
    replica: int | None = Query(
        default=None, ge=-1, le=INT32_MAX, description="One replica (-1: refused at the gateway)."
    ),
    version: str | None = Query(
        default=None,
        min_length=1,
        max_length=32,
        description="One model version (a canary's candidate or stable one, say).",
    ),
    platform: Platform = Depends(get_platform),
) -> TechnicalMetrics:
    def run() -> dict[str, Any]:
        target = find_target(platform.store, name)
        platform.technical.flush(everything=True)  # answer up to this moment
        end_ms = end if end is not None else now_ms()
        start_ms = start if start is not None else end_ms - 3_600_000
        return platform.technical.series(
            target.deployment_id,
            start_ms,
            end_ms,
            step * 1000 if step is not None else None,
            replica,
            version=version,
        )

    return TechnicalMetrics.model_validate(await asyncio.to_thread(run))
