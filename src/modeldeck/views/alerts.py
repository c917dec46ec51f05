"""Alert rules, their events and test deliveries, as the API and the client show them (the
rule as it is sent, checked, is ``modeldeck.monitoring.alerts.rules.AlertRuleSpec``)."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from modeldeck.views.base import View


class AlertRuleView(View):
    """A stored rule: its spec (secrets masked), its state and when it changed."""

    id: str
    name: str
    deployment: str
    metric: str
    comparison: str
    threshold: float
    window_seconds: int
    min_samples: int
    cooldown_seconds: int
    webhook_url: str | None = None
    webhook_secret: str | None = Field(default=None, description="'***' when one is set.")
    channels: list[dict[str, Any]] = Field(default_factory=list)
    enabled: bool = True
    description: str = ""
    state: dict[str, Any] = Field(
        default_factory=dict, description="firing, last_fired_ms, last_value, ..."
    )
    created_at: str | None = None
    updated_at: str | None = None


class AlertEventView(View):
    """A rule started firing or resolved (``delivery``: how sending it went)."""

    id: int
    rule_id: str
    rule: str = Field(description="The rule's name.")
    deployment_id: str
    deployment: str | None = Field(
        default=None, description="The deployment's name (in the events an evaluation produced)."
    )
    kind: str = Field(description="firing or resolved.")
    metric: str
    value: float | None = None
    samples: int = 0
    message: str
    ts: int = Field(description="ms since the epoch.")
    delivery: dict[str, Any] | None = None


class ChannelDeliveryView(View):
    """One channel's delivery of a test event, after all its attempts."""

    channel: str = Field(description="The channel's type.")
    target: str = Field(description="Where it went, secrets left out.")
    status: str = Field(description="delivered or failed.")
    attempts: int
    status_code: int | None = None
    error: str = ""
    delivery_id: str = ""
