"""``/api/v1``: monitoring settings, reference data, drift, performance and data-quality
reports (as JSON, and together as one HTML page)."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Depends, Query, Request, Response

from modeldeck.monitoring.config import MonitoringConfig
from modeldeck.monitoring.drift import series
from modeldeck.monitoring.reference import read_table
from modeldeck.monitoring.report import build_report
from modeldeck.monitoring.windows import step_for
from modeldeck.platform import Platform
from modeldeck.records.model_metrics import MAX_TIMESTAMP_MS, now_ms
from modeldeck.views.base import View
from modeldeck.views.monitoring import (
    DriftReport,
    DriftSeries,
    MonitoringConfigView,
    PerformanceReport,
    QualityReport,
    ReferenceView,
    WindowView,
)

from .deps import get_platform, read_body, require_api_key
from .responses import ReportResponse
from .routes_control import errors


def as_report(view: type[View]) -> dict[str, Any]:
    """Reports are rendered by ReportResponse (NumPy values cannot make them fail); their
    schema is the view the client reads them into."""
    return {"response_model": view, "response_class": ReportResponse}


router = APIRouter(
    dependencies=[Depends(require_api_key)],
    tags=["drift and performance"],
    responses=errors(401, 403, 422),
)

START = Query(
    default=None,
    ge=0,
    le=MAX_TIMESTAMP_MS,
    description="Start of the window, ms since the epoch (default: 24 h before end).",
)
END = Query(
    default=None,
    ge=0,
    le=MAX_TIMESTAMP_MS,
    description="End of the window, ms since the epoch (default: now).",
)
VERSION = Query(default=None, description="Only this model version (default: all).")
STEP = Query(
    default=None,
    ge=1,
    le=MAX_TIMESTAMP_MS // 1000,
    description="Seconds per window (default: one window).",
)


@router.get("/deployments/{name}/monitoring", responses=errors(404), summary="Monitoring settings")
async def get_monitoring(
    name: str, platform: Platform = Depends(get_platform)
) -> MonitoringConfigView:
    found = await asyncio.to_thread(platform.analysis.config, name)
    return MonitoringConfigView.model_validate(found)


@router.put(
    "/deployments/{name}/monitoring",
    responses=errors(404),
    summary="Set how tracked metrics map onto features, predictions and labels",
)
async def set_monitoring(
    name: str, body: MonitoringConfig, platform: Platform = Depends(get_platform)
) -> MonitoringConfigView:
    found = await asyncio.to_thread(platform.analysis.set_config, name, body)
    return MonitoringConfigView.model_validate(found)


@router.put(
    "/deployments/{name}/reference",
    responses=errors(400, 404, 413),
    summary="Upload reference data (the body is a CSV or Parquet file)",
    **as_report(ReferenceView),
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/octet-stream": {"schema": {"type": "string", "format": "binary"}}
            },
        }
    },
)
async def upload_reference(
    name: str,
    request: Request,
    filename: str = Query(
        description="Name of the file; its suffix (.csv, .parquet) decides the format."
    ),
    version: str = Query(default="", description="Model version it belongs to (default: all)."),
    target_column: str | None = Query(default=None, description="The label column, if any."),
    prediction_column: str | None = Query(
        default=None, description="The model's output column, if any."
    ),
    platform: Platform = Depends(get_platform),
) -> ReportResponse:
    body = await read_body(request, platform.settings.max_upload_bytes)

    def run() -> dict[str, Any]:
        frame = read_table(body, filename)
        return platform.analysis.set_reference(
            name,
            frame,
            source=f"upload {filename}",
            model_version=version,
            target_column=target_column,
            prediction_column=prediction_column,
        )

    return ReportResponse(await asyncio.to_thread(run))


@router.post(
    "/deployments/{name}/reference/from-registry",
    responses=errors(404),
    summary="Take reference data from what was logged with the MLflow run or model",
    **as_report(ReferenceView),
)
async def reference_from_registry(
    name: str,
    version: str | None = Query(
        default=None, description="Model version (default: the deployed one)."
    ),
    platform: Platform = Depends(get_platform),
) -> ReportResponse:
    return ReportResponse(
        await asyncio.to_thread(platform.analysis.reference_from_registry, name, version)
    )


@router.get(
    "/deployments/{name}/reference",
    responses=errors(404),
    summary="Reference data summary",
    **as_report(ReferenceView),
)
async def get_reference(
    name: str,
    version: str | None = VERSION,
    rows: int = Query(
        default=0, ge=0, le=10_000, description="Also return this many rows (`head`, or `sample`)."
    ),
    sample: bool = Query(
        default=False,
        description="Return `rows` rows drawn at random without replacement (as `sample`) "
        "instead of the first ones (as `head`).",
    ),
    seed: int | None = Query(
        default=None, ge=0, le=2**32 - 1, description="Seed of the sample: same seed, same rows."
    ),
    platform: Platform = Depends(get_platform),
) -> ReportResponse:
    def run() -> dict[str, Any]:
        reference = platform.analysis.reference(name, version)
        summary = reference.summary()
        if rows:
            frame = reference.frame
            picked = (
                frame.sample(n=min(rows, len(frame)), random_state=seed)
                if sample
                else frame.head(rows)
            )
            records = picked.astype(object).where(picked.notna(), None).to_dict("records")
            summary["sample" if sample else "head"] = records
        return summary

    return ReportResponse(await asyncio.to_thread(run))


@router.delete(
    "/deployments/{name}/reference",
    status_code=204,
    responses=errors(404),
    summary="Remove reference data",
)
async def delete_reference(
    name: str,
    version: str = Query(default="", description="Model version (default: the deployment's)."),
    platform: Platform = Depends(get_platform),
) -> None:
    await asyncio.to_thread(platform.analysis.delete_reference, name, version)


@router.get(
    "/deployments/{name}/window",
    responses=errors(404),
    summary="The range and step to show when none is given, fitted to the data present",
)
async def window(
    name: str,
    span: int | None = Query(
        default=None,
        ge=1,
        le=MAX_TIMESTAMP_MS // 1000,
        description="Seconds of range (default: from the first prediction to now, rounded up "
        "to a preset from 5 minutes to 14 days; 24 h without predictions).",
    ),
    step: int | None = Query(
        default=None,
        ge=1,
        le=MAX_TIMESTAMP_MS // 1000,
        description="Seconds per window (default: a readable step giving 12 to 60 windows).",
    ),
    platform: Platform = Depends(get_platform),
) -> WindowView:
    """`start` and `end` (ms), `step` (ms), the `span` (ms) and the `preset` it equals, the
    `first_prediction` (ms) and whether the range was `fitted`. The start is a whole multiple
    of the step: a one-hour step starts on the hour."""
    found = await asyncio.to_thread(
        lambda: platform.analysis.window(
            name,
            span_ms=span * 1000 if span else None,
            step_ms=step * 1000 if step else None,
        )
    )
    return WindowView.model_validate(found)


@router.get(
    "/deployments/{name}/drift",
    responses=errors(404),
    summary="Data drift per column, dataset drift and prediction drift over a window",
    **as_report(DriftReport),
)
async def drift(
    name: str,
    start: int | None = START,
    end: int | None = END,
    version: str | None = VERSION,
    column: list[str] | None = Query(default=None, description="Only these columns."),
    exact: bool = Query(
        default=False,
        description="Test every tracked value even when the window holds more than the "
        "deployment's `max_rows` predictions (slower); otherwise such windows are tested on "
        "five-minute summaries (`mode: binned`).",
    ),
    platform: Platform = Depends(get_platform),
) -> ReportResponse:
    report = await asyncio.to_thread(
        lambda: platform.analysis.drift(
            name, start_ms=start, end_ms=end, model_version=version, columns=column, exact=exact
        )
    )
    return ReportResponse(report)


@router.get(
    "/deployments/{name}/drift/series",
    responses=errors(404),
    summary="Drift of each column over time: every column's drift test, window by window",
    **as_report(DriftSeries),
)
async def drift_series(
    name: str,
    start: int | None = START,
    end: int | None = END,
    step: int | None = STEP,
    version: str | None = VERSION,
    column: list[str] | None = Query(default=None, description="Only these columns."),
    platform: Platform = Depends(get_platform),
) -> ReportResponse:
    """Each window's `dataset` drift, `verdict` and, per column, the test's `method`,
    `statistic` (a p-value or a distance, as `p_value` or `distance`), `threshold`, `drifted`
    and `current_rows`; the `prediction`'s the same. Windows are tested on the five-minute and
    hourly summaries, as a one-window drift report past `max_rows` is (at most 120 windows).
    Without `start`, `end` and `step`: the range fitted to the data, as `…/window` gives it;
    without `step`: a readable step giving at most 60 windows."""

    def run() -> dict[str, Any]:
        lo, hi, width = start, end, step * 1000 if step else None
        if lo is None and hi is None and width is None:
            fitted = platform.analysis.window(name)
            lo, hi, width = fitted.start, fitted.end, fitted.step
        hi = hi if hi is not None else now_ms() + 1
        lo = lo if lo is not None else hi - 86_400_000
        width = width or step_for(hi - lo)
        return series.drift_series(
            platform.analysis,
            name,
            start_ms=lo,
            end_ms=hi,
            step_ms=width,
            model_version=version,
            columns=column,
        )

    return ReportResponse(await asyncio.to_thread(run))


@router.get(
    "/deployments/{name}/performance",
    responses=errors(404),
    summary="Realised and estimated performance per window and model version",
    **as_report(PerformanceReport),
)
async def performance(
    name: str,
    start: int | None = START,
    end: int | None = END,
    step: int | None = STEP,
    version: str | None = VERSION,
    platform: Platform = Depends(get_platform),
) -> ReportResponse:
    report = await asyncio.to_thread(
        lambda: platform.analysis.performance(
            name,
            start_ms=start,
            end_ms=end,
            step_ms=step * 1000 if step else None,
            model_version=version,
        )
    )
    return ReportResponse(report)


@router.get(
    "/deployments/{name}/quality",
    responses=errors(404),
    summary="Data quality per input column, per window and in total",
    **as_report(QualityReport),
)
async def quality(
    name: str,
    start: int | None = START,
    end: int | None = END,
    step: int | None = STEP,
    version: str | None = VERSION,
    platform: Platform = Depends(get_platform),
) -> ReportResponse:
    """Missing values, type violations, out-of-range values, new categories, constant columns
    and schema (columns unexpected or absent). `mode` says how it was computed: `raw` (the
    records), `binned` (five-minute summaries, past the deployment's `max_rows`) or `scan`
    (the records in chunks: no reference data, so no summaries)."""
    report = await asyncio.to_thread(
        lambda: platform.analysis.quality(
            name,
            start_ms=start,
            end_ms=end,
            step_ms=step * 1000 if step else None,
            model_version=version,
        )
    )
    return ReportResponse(report)


@router.get(
    "/deployments/{name}/report",
    responses={
        **errors(404),
        200: {"description": "A self-contained HTML page", "content": {"text/html": {}}},
    },
    response_class=Response,
    summary="The drift and performance report as one HTML page (what `modeldeck report` writes)",
)
async def report(
    name: str,
    start: int | None = Query(
        default=None,
        ge=0,
        le=MAX_TIMESTAMP_MS,
        description="Start of the window, ms since the epoch (default: the window fitted to "
        "the data, as `GET .../window` gives it).",
    ),
    end: int | None = END,
    step: int | None = Query(
        default=None,
        ge=1,
        le=MAX_TIMESTAMP_MS // 1000,
        description="Seconds per performance window (default: a readable step giving the "
        "window 12 to 60 windows).",
    ),
    version: str | None = VERSION,
    platform: Platform = Depends(get_platform),
) -> Response:
    """Without reference data, the drift section says so and the rest is there. Charts are
    drawn by the plotly.js embedded in the page: it opens offline, as a saved file."""
    page = await asyncio.to_thread(
        lambda: build_report(
            platform.analysis, name, start_ms=start, end_ms=end,
            step_ms=step * 1000 if step else None, model_version=version,
        )
    )  # fmt: skip
    return Response(
        page,
        media_type="text/html; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{name}-report.html"'},
    )
