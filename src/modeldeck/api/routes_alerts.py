"""``/api/v1/alerts``: alert rules, their events, and evaluation on demand."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Depends, Query

from modeldeck.monitoring.alerts.rules import METRIC_NAMES, AlertRuleSpec
from modeldeck.platform import Platform
from modeldeck.records.model_metrics import MAX_TIMESTAMP_MS
from modeldeck.views.alerts import AlertEventView, AlertRuleView, ChannelDeliveryView

from .deps import get_platform, require_api_key
from .routes_control import errors

router = APIRouter(
    prefix="/alerts",
    dependencies=[Depends(require_api_key)],
    tags=["alerts"],
    responses=errors(401, 403, 422),
)


@router.get("/metrics", summary="The metrics an alert rule can watch")
async def alert_metrics() -> dict[str, str]:
    return METRIC_NAMES


@router.post("/rules", status_code=201, responses=errors(404, 409), summary="Create an alert rule")
async def create_rule(
    body: AlertRuleSpec, platform: Platform = Depends(get_platform)
) -> AlertRuleView:
    return AlertRuleView.model_validate(await asyncio.to_thread(platform.alerts.create, body))


@router.get("/rules", responses=errors(404), summary="List alert rules")
async def list_rules(
    deployment: str | None = Query(default=None, description="Only this deployment's rules."),
    platform: Platform = Depends(get_platform),
) -> list[AlertRuleView]:
    found = await asyncio.to_thread(platform.alerts.list, deployment)
    return [AlertRuleView.model_validate(rule) for rule in found]


@router.get("/rules/{deployment}/{name}", responses=errors(404), summary="Get an alert rule")
async def get_rule(
    deployment: str, name: str, platform: Platform = Depends(get_platform)
) -> AlertRuleView:
    found = await asyncio.to_thread(platform.alerts.get, deployment, name)
    return AlertRuleView.model_validate(found)


@router.put("/rules/{deployment}/{name}", responses=errors(404), summary="Replace an alert rule")
async def replace_rule(
    deployment: str, name: str, body: AlertRuleSpec, platform: Platform = Depends(get_platform)
) -> AlertRuleView:
    found = await asyncio.to_thread(platform.alerts.replace, deployment, name, body)
    return AlertRuleView.model_validate(found)


@router.delete(
    "/rules/{deployment}/{name}",
    status_code=204,
    responses=errors(404),
    summary="Delete an alert rule and its events",
)
async def delete_rule(
    deployment: str, name: str, platform: Platform = Depends(get_platform)
) -> None:
    await asyncio.to_thread(platform.alerts.delete, deployment, name)


@router.post(
    "/rules/{deployment}/{name}/test",
    responses=errors(404),
    summary="Send a test event to each channel of an alert rule (nothing is stored)",
)
async def test_rule(
    deployment: str, name: str, platform: Platform = Depends(get_platform)
) -> list[ChannelDeliveryView]:
    found = await platform.alerts.test(deployment, name)
    return [ChannelDeliveryView.model_validate(delivery) for delivery in found]


@router.get("/events", responses=errors(404), summary="Alert events, newest first")
async def list_events(
    deployment: str | None = Query(default=None, description="Only this deployment's events."),
    since: int = Query(
        default=0,
        ge=0,
        le=MAX_TIMESTAMP_MS,
        description="Only events at or after (ms since the epoch).",
    ),
    limit: int = Query(default=100, ge=1, le=1000),
    platform: Platform = Depends(get_platform),
) -> list[AlertEventView]:
    found = await asyncio.to_thread(platform.alerts.events, deployment, since, limit)
    return [AlertEventView.model_validate(event) for event in found]


@router.post("/evaluate", summary="Evaluate every rule now; returns the events produced")
async def evaluate_now(platform: Platform = Depends(get_platform)) -> list[AlertEventView]:
    return [AlertEventView.model_validate(event) for event in await platform.alerts.evaluate_all()]
