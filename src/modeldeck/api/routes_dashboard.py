"""``/api/v1``: what the web dashboard reads beyond the other routes (and scripts may too).

The latest predictions with their delayed metrics, the distribution of predictions over time,
and the tail of each replica's log.
"""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Depends, Query

from modeldeck.monitoring.config import KEY_PATTERN
from modeldeck.platform import Platform
from modeldeck.records.model_metrics import now_ms
from modeldeck.records.sdk_backends import find_target
from modeldeck.ui.service import (
    MAX_LOG_LINES,
    MAX_RECENT,
    DashboardQueries,
    tail_lines,
)

from .deps import get_platform, require_api_key
from .routes_control import errors

router = APIRouter(
    dependencies=[Depends(require_api_key)], tags=["dashboard"], responses=errors(401, 403, 422)
)

DAY_MS = 86_400_000


@router.get(
    "/deployments/{name}/metrics/model/recent",
    responses=errors(404),
    summary="The latest predictions, newest first, with their delayed metrics apart",
)
async def recent_predictions(
    name: str,
    limit: int = Query(default=20, ge=1, le=MAX_RECENT),
    version: str | None = Query(default=None, description="Only this model version."),
    platform: Platform = Depends(get_platform),
) -> dict[str, Any]:
    def run() -> dict[str, Any]:
        target = find_target(platform.store, name)
        records = DashboardQueries(platform.store).recent_predictions(
            target.deployment_id, limit, version
        )
        return {"deployment": name, "records": records}

    return await asyncio.to_thread(run)


@router.get(
    "/deployments/{name}/metrics/model/distribution",
    responses=errors(404),
    summary="Distribution of the predicted value per time window (counted in the store)",
)
async def prediction_distribution(
    name: str,
    start: int | None = Query(
        default=None, ge=0, description="ms since the epoch (default: 24 h before end)."
    ),
    end: int | None = Query(default=None, ge=0, description="ms since the epoch (default: now)."),
    step: int | None = Query(
        default=None, ge=1, description="Seconds per window (default: about 48 windows)."
    ),
    version: str | None = Query(default=None, description="Only this model version."),
    key: str | None = Query(
        default=None,
        pattern=KEY_PATTERN,
        description="Tracked key to count (default: the monitoring settings' output_key).",
    ),
    platform: Platform = Depends(get_platform),
) -> dict[str, Any]:
    def run() -> dict[str, Any]:
        target = find_target(platform.store, name)
        end_ms = end if end is not None else now_ms()
        start_ms = start if start is not None else end_ms - DAY_MS
        report = DashboardQueries(platform.store).prediction_distribution(
            target.deployment_id,
            start_ms,
            end_ms,
            step * 1000 if step else None,
            key or platform.analysis.config(name).output_key,
            version,
        )
        return {"deployment": name, **report}

    return await asyncio.to_thread(run)


@router.get(
    "/deployments/{name}/logs",
    responses=errors(404),
    summary="The tail of each replica's log (its stdout and stderr)",
)
async def replica_logs(
    name: str,
    replica: int | None = Query(default=None, ge=0, description="One replica (default: all)."),
    lines: int = Query(default=200, ge=1, le=MAX_LOG_LINES, description="Lines per replica."),
    platform: Platform = Depends(get_platform),
) -> dict[str, Any]:
    view = await platform.deployments.get(name)

    def run() -> dict[str, Any]:
        states = {r.index: r.status for r in view.replica_states}
        if replica is not None:
            indexes = [replica]
        elif states:  # the live replicas (during a rollout: both versions')
            indexes = sorted(states)
        else:  # stopped: every log the replicas left (a rollout's other indexes too)
            folder = platform.runtime.log_path(name, 0).parent
            found = (p.stem.removeprefix("replica-") for p in folder.glob("replica-*.log"))
            indexes = sorted(int(i) for i in found if i.isdigit()) or list(range(view.replicas))
        return {
            "deployment": name,
            "replicas": [
                {
                    "replica": i,
                    "status": states.get(i, "unknown"),
                    **tail_lines(platform.runtime.log_path(name, i), lines),
                }
                for i in indexes
            ],
        }

    return await asyncio.to_thread(run)
