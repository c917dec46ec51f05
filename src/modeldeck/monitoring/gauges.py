"""Drift, data quality, performance and label lag of each deployment over a recent window,
kept for scrapes.

Prometheus scrapes often and must get its answer fast, while a drift or performance report
reads a window of predictions. So the platform refreshes a snapshot in the background
(:meth:`QualityGauges.refresh`, every ``MODELDECK_QUALITY_GAUGES_INTERVAL_SECONDS``) over a
bounded trailing window (``MODELDECK_QUALITY_GAUGES_WINDOW_SECONDS``), built from the same
reports as the API's, read from the five-minute and hourly summaries the platform keeps (drift
in its binned form, whatever the window's size), and
the scrape-time collector (:class:`~modeldeck.monitoring.prometheus.QualityCollector`) only
reads that snapshot: a scrape never computes anything. Each view says when it was computed.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sqlalchemy import text

from modeldeck.errors import NotFound
from modeldeck.monitoring.quality import SHARES as QUALITY_SHARES
from modeldeck.records.model_metrics import now_ms
from modeldeck.store import Store

if TYPE_CHECKING:
    from modeldeck.monitoring.analysis import AnalysisService

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class QualityView:
    """One deployment's monitoring figures over ``[computed_at_ms - window_ms, computed_at_ms)``.

    A figure is None when it cannot be had: no reference data (drift), no labels (realised
    performance, label lag), no probabilities (estimated performance).
    """

    deployment: str
    computed_at_ms: int
    window_ms: int
    predictions: int = 0
    labelled: int = 0
    drifted_share: float | None = None
    dataset_drifted: bool | None = None
    prediction_drifted: bool | None = None
    performance: dict[str, float] = field(default_factory=dict)
    estimated: dict[str, float] = field(default_factory=dict)
    label_coverage: float | None = None
    label_lag_seconds: float | None = None
    quality: dict[tuple[str, str], float] = field(default_factory=dict)
    """``(column, problem)``: the share of the window's rows with that problem in that input
    column (``missing``, ``type_violation``, ``out_of_range``, ``new_category``), where known."""
    unexpected_columns: int | None = None


class QualityGauges:
    """The latest :class:`QualityView` of each deployment, refreshed by background work."""

    def __init__(self, store: Store, analysis: AnalysisService, window_seconds: int) -> None:
        self.store = store
        self.analysis = analysis
        self.window_ms = window_seconds * 1000
        self._views: dict[str, QualityView] = {}

    def views(self) -> list[QualityView]:
        """The snapshot, as the last refresh left it (what a scrape reads)."""
        return list(self._views.values())

    def refresh(self, deployments: Iterable[tuple[str, str]]) -> None:
        """Recompute the view of each ``(name, id)``; deployments not given are dropped."""
        fresh: dict[str, QualityView] = {}
        for name, deployment_id in deployments:
            try:
                fresh[name] = self.compute(name, deployment_id)
            except NotFound:
                continue  # deleted meanwhile
            except Exception:  # a snapshot: keep the last view rather than fail the others
                log.exception("refreshing the monitoring gauges of %s failed", name)
                if name in self._views:
                    fresh[name] = self._views[name]
        self._views = fresh  # one assignment: a scrape sees the old snapshot or the new one

    def compute(self, name: str, deployment_id: str) -> QualityView:
        end = now_ms()
        start = end - self.window_ms
        result = self.analysis.performance(name, start_ms=start, end_ms=end, by_version=False)
        window: dict[str, Any] = result["windows"][0] if result["windows"] else {}
        figures: dict[str, Any] = {
            "predictions": int(window.get("predictions", 0)),
            "labelled": int(window.get("labelled", 0)),
            "performance": _finite_values(window.get("realised")),
            "estimated": _finite_values(window.get("estimated")),
            "label_coverage": window.get("label_coverage"),
            "label_lag_seconds": self._label_lag(deployment_id, start, end),
        }
        try:
            # From the summaries the platform keeps: a few parts, not the window's rows.
            drift = self.analysis.drift(name, start_ms=start, end_ms=end, binned=True)
        except NotFound:  # no reference data: no drift
            drift = None
        if drift is not None and drift["current_rows"]:
            figures["drifted_share"] = float(drift["dataset"]["drifted_share"])
            figures["dataset_drifted"] = bool(drift["dataset"]["drifted"])
            prediction = drift.get("prediction")
            if prediction:
                figures["prediction_drifted"] = bool(prediction["drifted"])
        figures.update(self._quality(name, start, end))
        return QualityView(name, end, self.window_ms, **figures)

    def _quality(self, name: str, start: int, end: int) -> dict[str, Any]:
        """The data quality of the window as a whole (one window: its ``total``)."""
        report = self.analysis.quality(
            name, start_ms=start, end_ms=end, step_ms=end - start, binned=True
        )
        total = report["total"]
        if not total["rows"]:
            return {}
        shares = {
            (column["column"], problem.removesuffix("_share")): float(column[problem])
            for column in total["columns"]
            for problem in QUALITY_SHARES
            if column.get(problem) is not None
        }
        return {
            "quality": shares,
            "unexpected_columns": len(total["schema"]["unexpected_columns"]),
        }

    def _label_lag(self, deployment_id: str, start: int, end: int) -> float | None:
        """Mean seconds from a prediction to its ground truth, over the labels of the window's
        predictions (one indexed aggregate)."""
        sql = text(
            "SELECT AVG(ts_ms - prediction_end_ms) FROM delayed_metrics "
            "WHERE deployment_id = :dep AND prediction_end_ms >= :lo AND prediction_end_ms < :hi"
        )
        with self.store.read() as session:
            lag = session.execute(sql, {"dep": deployment_id, "lo": start, "hi": end}).scalar()
        return None if lag is None else max(0.0, float(lag) / 1000)


def _finite_values(metrics: dict[str, Any] | None) -> dict[str, float]:
    return {
        key: float(value)
        for key, value in (metrics or {}).items()
        if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
    }
