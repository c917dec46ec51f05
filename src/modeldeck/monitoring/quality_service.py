"""The data-quality report of a deployment over a range, window by window.

It reads the same per-column summaries as drift
(:class:`~modeldeck.monitoring.drift.plan.DriftPlan`), from the records or from the stored
five-minute and hourly ones alike, and applies the checks of :mod:`modeldeck.monitoring.quality`
to them. Ranges of up to ``max_rows`` predictions are read from the records, larger ones from
the summaries; without reference data the records are read in chunks.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from modeldeck.errors import NotFound
from modeldeck.monitoring import quality as data_quality
from modeldeck.monitoring.config import MonitoringConfig, find_deployment
from modeldeck.monitoring.drift import stats
from modeldeck.monitoring.drift.plan import (
    DriftPlan,
    conform,
    drift_part,
    drift_plan,
    frame_of,
    tracked_rows,
)
from modeldeck.monitoring.drift.service import predictions_in
from modeldeck.monitoring.summaries import parts
from modeldeck.monitoring.windows import report_range, report_step
from modeldeck.records.journal import absorb
from modeldeck.records.model_metrics import now_ms
from modeldeck.store import Store
from modeldeck.store.schema import PredictionRow

if TYPE_CHECKING:
    import pandas as pd

    from modeldeck.monitoring.drift.service import DriftService
    from modeldeck.monitoring.reference import Reference, References

SIGNATURE_NUMERIC = frozenset({"double", "float", "long", "integer"})
"""MLflow column types read as numbers; the others (string, boolean, binary...) as categories."""


@dataclass(frozen=True)
class QualityService:
    """Data-quality reports; large ranges are read off the drift summaries."""

    store: Store
    references: References
    drift: DriftService

    def quality(
        self,
        name: str,
        *,
        start_ms: int | None = None,
        end_ms: int | None = None,
        step_ms: int | None = None,
        model_version: str | None = None,
        binned: bool = False,
    ) -> dict[str, Any]:
        """Data quality of each input column per window and over the whole range
        (:mod:`modeldeck.monitoring.quality`).

        Ranges of up to ``max_rows`` predictions are read from the records (``mode: raw``).
        Larger ones are assembled from the drift summaries, five-minute and hourly, plus the
        ragged edges of each window (``mode: binned``); without reference data there are no
        summaries and the records are read in chunks of ``max_rows`` (``mode: scan``). Every
        mode gives the same numbers: each summarises the records the same way. ``binned``
        reads the summaries whatever the range's size (what background work asks: the gauges).
        """
        absorb(self.store)  # predictions replicas journaled and not committed yet
        start_ms, end_ms = report_range(start_ms, end_ms, now_ms=now_ms())
        step_ms = report_step(start_ms, end_ms, step_ms)
        deployment = find_deployment(self.store, name)
        config = MonitoringConfig.of(deployment)
        try:
            reference: Reference | None = self.references.get(name, model_version)
        except NotFound:
            reference = None
        profiles: dict[str, data_quality.ColumnProfile]
        if reference is not None:
            plan = drift_plan(reference, config)
            profiles = {
                c: reference_profile(reference.frame[c], p) for c, p in plan.columns.items()
            }
            known: list[str] | None = reference.features
        else:
            profiles = signature_profiles(deployment.signature)
            known = list(profiles) if profiles else None
            plan = DriftPlan({c: quality_plan(p) for c, p in profiles.items()}, None, "")
        total = self.drift.count(
            deployment.id, start_ms, end_ms, model_version, limit=config.max_rows + 1
        )
        found: dict[int, tuple[parts.DriftPart, int]] = {}
        if (binned or total > config.max_rows) and total and reference is not None:
            mode = "binned"
            for index in range(math.ceil((end_ms - start_ms) / step_ms)):
                lo = start_ms + index * step_ms
                part, n = self.drift.merged_part(
                    deployment, config, plan, lo, min(lo + step_ms, end_ms), model_version
                )
                if n:
                    found[index] = (part, n)
        else:
            mode = "raw" if total <= config.max_rows else "scan"
            found = self._scan(
                deployment.id, config, plan, profiles, start_ms, end_ms, step_ms, model_version
            )
        whole = parts.DriftPart()
        windows = []
        for index, (part, n) in sorted(found.items()):
            whole.merge(part)
            lo = start_ms + index * step_ms
            window = {"start": lo, "end": min(lo + step_ms, end_ms), "predictions": n}
            window.update(data_quality.window_quality(part, profiles, reference_columns=known))
            windows.append(window)
        overall: dict[str, Any] = {
            "start": start_ms,
            "end": end_ms,
            "predictions": sum(n for _, n in found.values()),
        }
        overall.update(data_quality.window_quality(whole, profiles, reference_columns=known))
        return {
            "deployment": name,
            "model_version": model_version,
            "start": start_ms,
            "end": end_ms,
            "step": step_ms,
            "mode": mode,
            "reference": None if reference is None else reference.summary(),
            "note": None
            if reference is not None
            else "no reference data: out-of-range values, new categories and constancy against "
            "the reference need it; missing values and constant columns are computed"
            + ("" if deployment.signature else ", and column kinds are read from the data"),
            "windows": windows,
            "total": overall,
        }

    def _scan(
        self,
        deployment_id: str,
        config: MonitoringConfig,
        plan: DriftPlan,
        profiles: dict[str, data_quality.ColumnProfile],
        start_ms: int,
        end_ms: int,
        step_ms: int,
        model_version: str | None,
    ) -> dict[int, tuple[parts.DriftPart, int]]:
        """Quality summaries per window from the records, read ``max_rows`` at a time.

        Columns neither the reference nor the signature name are added to ``profiles`` (and
        ``plan``) as the records show them, their kind read from the data."""
        where = predictions_in(deployment_id, start_ms, end_ms, model_version)
        query = (
            select(PredictionRow.end_ms, PredictionRow.metrics)
            .where(*where)
            .execution_options(yield_per=config.max_rows)
        )
        found: dict[int, tuple[parts.DriftPart, int]] = {}
        with self.store.read() as session:
            for chunk in session.execute(query).partitions():
                grouped: dict[int, list[dict[str, Any]]] = {}
                for end, metrics in chunk:
                    grouped.setdefault((end - start_ms) // step_ms, []).append(metrics)
                if not any(p.typed for p in profiles.values()):
                    inputs, _, _ = tracked_rows(
                        [m for ms in grouped.values() for m in ms], config.input_key, ""
                    )
                    current = frame_of(inputs)
                    for column in current.columns:
                        if str(column) not in profiles:
                            kind = stats.column_kind(current[column])
                            profiles[str(column)] = data_quality.ColumnProfile(kind, typed=False)
                            plan.columns[str(column)] = quality_plan(profiles[str(column)])
                for index, records in grouped.items():
                    part = drift_part(records, config, plan)
                    before, n = found.get(index, (parts.DriftPart(), 0))
                    found[index] = (before.merge(part), n + len(records))
        return found


def reference_profile(values: pd.Series, plan: parts.ColumnPlan) -> data_quality.ColumnProfile:
    """What data quality compares a window's column with: the reference column ``values``."""
    conformed, _ = conform(values, plan.kind)
    present = conformed.dropna()
    if plan.kind == "numeric":
        finite = present[present.abs() != math.inf]
        if finite.empty:
            return data_quality.ColumnProfile("numeric", distinct=0)
        return data_quality.ColumnProfile(
            "numeric",
            low=float(finite.min()),
            high=float(finite.max()),
            distinct=int(finite.nunique()),
        )
    categories = frozenset(str(v) for v in present.unique())
    return data_quality.ColumnProfile(
        "categorical", categories=categories, distinct=len(categories)
    )


def signature_profiles(
    signature: Mapping[str, Any] | None,
) -> dict[str, data_quality.ColumnProfile]:
    """Column kinds from a model signature's named inputs (none for tensor signatures)."""
    profiles: dict[str, data_quality.ColumnProfile] = {}
    for column in (signature or {}).get("inputs") or []:
        if isinstance(column, dict) and isinstance(column.get("name"), str):
            numeric = column.get("type") in SIGNATURE_NUMERIC
            profiles[column["name"]] = data_quality.ColumnProfile(
                "numeric" if numeric else "categorical"
            )
    return profiles


def quality_plan(profile: data_quality.ColumnProfile) -> parts.ColumnPlan:
    """How a column without reference data is summarised: one bin for numbers."""
    if profile.kind == "numeric":
        return parts.ColumnPlan("numeric", (-math.inf, math.inf))
    return parts.ColumnPlan("categorical")
