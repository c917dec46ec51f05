"""Model metrics (predictions, delayed ground truth, read-back) and technical metrics, as the
API and the client show them."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from modeldeck.views.base import View


class Recorded(View):
    uuids: list[str]


class Counted(View):
    status: str = "recorded"
    count: int


class Accepted(View):
    status: str = "recorded"


class MetricsPage(View):
    metrics: list[dict[str, Any]] = Field(
        description="Model-metrics records in Cloudera ML's read_metrics shape."
    )
    next_cursor: str | None = Field(default=None, description="Pass as ?cursor= for the next page.")


class TechnicalMetrics(View):
    """Request, latency, size, CPU and memory series of a range, the per-replica table and the
    replica events (scaling). Its series are free-form: each point is ``{"t": ms, ...}``."""

    start: int = Field(description="ms since the epoch.")
    end: int
    step: int = Field(description="ms per point.")
    replica: int | None = None
    version: str | None = None
    latency_bounds_ms: list[float] = Field(default_factory=list)
    requests: list[dict[str, Any]] = Field(
        default_factory=list, description="One point per step: counts, rates, latency, sizes."
    )
    resources: dict[str, Any] = Field(
        default_factory=dict, description="CPU and memory: ``per_replica`` and ``all`` series."
    )
    replicas: list[dict[str, Any]] = Field(default_factory=list)
    totals: dict[str, Any] = Field(default_factory=dict)
    events: list[dict[str, Any]] = Field(default_factory=list)
