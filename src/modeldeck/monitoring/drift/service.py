"""Data drift and prediction drift of a deployment over a window, against its reference.

Windows of up to ``max_rows`` predictions are tested on the tracked values themselves
(``mode: raw``, :func:`~modeldeck.monitoring.drift.stats.column_drift`); larger ones on the
hourly and five-minute summaries plus the ragged edges of the window (``mode: binned``,
:func:`~modeldeck.monitoring.drift.stats.binned_column_drift`), assembled by
:class:`~modeldeck.monitoring.summaries.store.SummaryStore`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import ColumnElement, func, select

from modeldeck.errors import ValidationFailed
from modeldeck.monitoring.config import ColumnOverride, MonitoringConfig, find_deployment
from modeldeck.monitoring.drift import stats
from modeldeck.monitoring.drift.plan import (
    DriftPlan,
    conform,
    drift_part,
    drift_plan,
    frame_of,
    is_scalar,
    output_plan,
    tracked_rows,
)
from modeldeck.monitoring.summaries import parts
from modeldeck.monitoring.summaries.store import SummaryStore, whole_buckets
from modeldeck.monitoring.windows import report_range
from modeldeck.records.journal import absorb
from modeldeck.records.model_metrics import now_ms
from modeldeck.store import Store
from modeldeck.store.schema import DeploymentRow, PredictionRow

if TYPE_CHECKING:
    import pandas as pd

    from modeldeck.monitoring.reference import Reference, References


@dataclass(frozen=True)
class DriftService:
    """Drift reports, and the drift summaries they (and data quality) are assembled from."""

    store: Store
    references: References
    summaries: SummaryStore

    def drift(
        self,
        name: str,
        *,
        start_ms: int | None = None,
        end_ms: int | None = None,
        model_version: str | None = None,
        columns: Sequence[str] | None = None,
        exact: bool = False,
        binned: bool = False,
    ) -> dict[str, Any]:
        """Data drift of each monitored column, dataset drift, and prediction drift.

        Windows of up to ``max_rows`` predictions (or any window, with ``exact``) are tested on
        the tracked values themselves; larger ones (or any window, with ``binned``: what
        background work asks, to read summaries rather than rows) on hourly and five-minute
        summaries (``mode: binned``).
        """
        absorb(self.store)  # predictions replicas journaled and not committed yet
        start_ms, end_ms = report_range(start_ms, end_ms, now_ms=now_ms())
        deployment = find_deployment(self.store, name)
        config = MonitoringConfig.of(deployment)
        reference = self.references.get(name, model_version)
        plan = drift_plan(reference, config)
        features = list(columns or plan.features)
        unknown = [c for c in features if c not in reference.frame.columns]
        if unknown:
            raise ValidationFailed(
                f"columns not in the reference data: {', '.join(unknown)}",
                details={"field": "columns"},
            )
        # At most max_rows + 1: whether to read summaries, not yet how many there are.
        total = self.count(
            deployment.id, start_ms, end_ms, model_version, limit=config.max_rows + 1
        )
        binned = (
            not exact
            and (binned or total > config.max_rows)
            and total > 0
            and set(features) <= set(plan.columns)
        )
        if binned:
            part, total = self.merged_part(
                deployment, config, plan, start_ms, end_ms, model_version
            )
        elif total > config.max_rows:
            total = self.count(deployment.id, start_ms, end_ms, model_version)
        report: dict[str, Any] = {
            "deployment": name,
            "model_version": model_version,
            "start": start_ms,
            "end": end_ms,
            "reference": reference.summary(),
            "predictions": total,
        }
        if binned:
            results, invalid = self._binned_columns(reference, config, plan, part, features)
            prediction = self._binned_prediction(reference, config, plan, part)
            report.update(
                mode="binned",
                current_rows=part.records,
                skipped_records=part.skipped,
                missing_columns=[c for c in features if c not in part.keys] if part.records else [],
                unmonitored_columns=sorted(k for k in part.keys if k not in features),
            )
        else:
            metrics = self._window_metrics(deployment.id, start_ms, end_ms, model_version)
            inputs, outputs, skipped = tracked_rows(
                metrics, config.input_key, config.output_key, config.output_column
            )
            current = frame_of(inputs)
            results, invalid = self._raw_columns(reference, config, current, features)
            prediction = self._prediction_drift(reference, outputs, config)
            report.update(
                mode="raw",
                current_rows=len(current),
                skipped_records=skipped,
                missing_columns=[c for c in features if c not in current.columns]
                if len(current)
                else [],
                unmonitored_columns=[c for c in current.columns if c not in features],
            )
        tested = [r for r in results if r.current_rows > 0]
        drifted = [r.column for r in tested if r.drifted]
        share = len(drifted) / len(tested) if tested else 0.0
        report["dataset"] = {
            "drifted": bool(tested) and share >= config.drift_share,
            "drifted_share": share,
            "threshold": config.drift_share,
            "drifted_columns": drifted,
            "columns": len(tested),
        }
        report["columns"] = [r.to_dict() for r in results]
        for column in report["columns"]:
            # Values of the wrong type (text in a numeric column...) are left out and counted.
            column["invalid_values"] = invalid[column["column"]]
        report["prediction"] = prediction
        report["verdict"] = drift_verdict(report, config.min_samples)
        return report

    def _raw_columns(
        self,
        reference: Reference,
        config: MonitoringConfig,
        current: pd.DataFrame,
        features: Sequence[str],
    ) -> tuple[list[stats.ColumnDrift], dict[str, int]]:
        import pandas as pd

        results: list[stats.ColumnDrift] = []
        invalid: dict[str, int] = {}
        for column in features:
            override = config.overrides.get(column, ColumnOverride())
            kind = override.kind or stats.column_kind(reference.frame[column])
            current_values, invalid[column] = conform(
                current[column] if column in current.columns else pd.Series([], dtype=float),
                kind,
            )
            baseline, _ = conform(reference.frame[column], kind)
            results.append(
                stats.column_drift(
                    column,
                    baseline,
                    current_values,
                    kind=kind,
                    method=override.method,
                    threshold=override.threshold,
                    top_k=config.top_k,
                )
            )
        return results, invalid

    def _binned_columns(
        self,
        reference: Reference,
        config: MonitoringConfig,
        plan: DriftPlan,
        part: parts.DriftPart,
        features: Sequence[str],
    ) -> tuple[list[stats.ColumnDrift], dict[str, int]]:
        results: list[stats.ColumnDrift] = []
        invalid: dict[str, int] = {}
        for column in features:
            override = config.overrides.get(column, ColumnOverride())
            column_plan = plan.columns[column]
            summary = part.columns.get(column) or column_plan.empty()
            invalid[column] = int(summary["invalid"])
            baseline, _ = conform(reference.frame[column], column_plan.kind)
            results.append(
                stats.binned_column_drift(
                    column,
                    baseline,
                    summary,
                    kind=column_plan.kind,  # type: ignore[arg-type]
                    edges=column_plan.edges,
                    method=override.method,
                    threshold=override.threshold,
                    top_k=config.top_k,
                )
            )
        return results, invalid

    def _prediction_drift(
        self, reference: Reference, outputs: list[Any], config: MonitoringConfig
    ) -> dict[str, Any] | None:
        import pandas as pd

        plan = output_plan(reference)
        if plan is None or not outputs:
            return None
        column, column_plan = plan
        values = pd.Series([o for o in outputs if is_scalar(o)])
        if values.empty:
            return None
        baseline = reference.frame[column]
        if column_plan.kind == "categorical":
            baseline = baseline.astype(str)
            values = values.astype(str)
        values, bad = conform(values, column_plan.kind)
        result = stats.column_drift(
            config.output_key,
            baseline,
            values,
            kind=column_plan.kind,  # type: ignore[arg-type]
            top_k=config.top_k,
        ).to_dict()
        result["reference_column"] = column
        result["invalid_values"] = bad
        return result

    def _binned_prediction(
        self,
        reference: Reference,
        config: MonitoringConfig,
        plan: DriftPlan,
        part: parts.DriftPart,
    ) -> dict[str, Any] | None:
        if plan.output is None or part.output is None:
            return None
        column, column_plan = plan.output
        summary = part.output
        counted = summary["counts"]
        if not (sum(counted.values()) if isinstance(counted, dict) else sum(counted)):
            return None
        baseline = reference.frame[column]
        if column_plan.kind == "categorical":
            baseline = baseline.astype(str)
        result = stats.binned_column_drift(
            config.output_key,
            conform(baseline, column_plan.kind)[0],
            summary,
            kind=column_plan.kind,  # type: ignore[arg-type]
            edges=column_plan.edges,
            top_k=config.top_k,
        ).to_dict()
        result["reference_column"] = column
        result["invalid_values"] = int(summary["invalid"])
        return result

    def _window_metrics(
        self, deployment_id: str, start_ms: int, end_ms: int, model_version: str | None
    ) -> list[dict[str, Any]]:
        """The tracked metrics of a window's predictions."""
        where = predictions_in(deployment_id, start_ms, end_ms, model_version)
        with self.store.read() as session:
            return list(session.scalars(select(PredictionRow.metrics).where(*where)))

    def count(
        self,
        deployment_id: str,
        start_ms: int,
        end_ms: int,
        model_version: str | None,
        *,
        limit: int | None = None,
    ) -> int:
        """Predictions in ``[start, end)`` (of a version), or at most ``limit`` of them."""
        where = predictions_in(deployment_id, start_ms, end_ms, model_version)
        if limit is None:
            query = select(func.count()).select_from(PredictionRow).where(*where)
        else:  # a column of the index, so the index alone answers
            rows = select(PredictionRow.end_ms).where(*where).limit(limit).subquery()
            query = select(func.count()).select_from(rows)
        with self.store.read() as session:
            return int(session.scalar(query) or 0)

    def merged_part(
        self,
        deployment: DeploymentRow,
        config: MonitoringConfig,
        plan: DriftPlan,
        start_ms: int,
        end_ms: int,
        model_version: str | None,
    ) -> tuple[parts.DriftPart, int]:
        """One window's drift summary (stored hourly and five-minute summaries plus its
        ragged edges) and its number of predictions."""

        def live(lo: int, hi: int) -> dict[tuple[int, str], parts.DriftPart]:
            return self._drift_parts(deployment.id, config, plan, lo, hi, hi - lo)

        found, counted = self.summaries.assemble(
            # Kinds as set_reference deletes them ("drift/..."); "h" is no hex digit.
            ("drift/" + plan.signature[:10], "drift/h" + plan.signature[:9]),
            deployment,
            plan.signature,
            start_ms,
            end_ms,
            live,
            lambda lo, hi: self._drift_parts(deployment.id, config, plan, lo, hi, parts.BUCKET_MS),
            parts.DriftPart.from_bytes,
            with_labels=False,
        )
        merged = parts.DriftPart()
        for (_, version), part in found.items():
            if not model_version or version == model_version:
                merged.merge(part)
        first, last = whole_buckets(start_ms, end_ms)
        if not self.summaries.enabled or last <= first:
            return merged, self.count(deployment.id, start_ms, end_ms, model_version)
        total = sum(n for (_, v), n in counted.items() if not model_version or v == model_version)
        for lo, hi in ((start_ms, first), (last, end_ms)):
            if hi > lo:
                total += self.count(deployment.id, lo, hi, model_version)
        return merged, total

    def _drift_parts(
        self,
        deployment_id: str,
        config: MonitoringConfig,
        plan: DriftPlan,
        start_ms: int,
        end_ms: int,
        step_ms: int,
    ) -> dict[tuple[int, str], parts.DriftPart]:
        """Drift summaries of ``[start, end)`` per ``step`` and version, from the raw records."""
        query = select(
            PredictionRow.end_ms, PredictionRow.model_version, PredictionRow.metrics
        ).where(
            PredictionRow.deployment_id == deployment_id,
            PredictionRow.end_ms >= start_ms,
            PredictionRow.end_ms < end_ms,
        )
        grouped: dict[tuple[int, str], list[dict[str, Any]]] = {}
        with self.store.read() as session:
            for end, version, metrics in session.execute(query):
                grouped.setdefault(((end - start_ms) // step_ms, version), []).append(metrics)
        return {key: drift_part(records, config, plan) for key, records in grouped.items()}


def predictions_in(
    deployment_id: str, start_ms: int, end_ms: int, model_version: str | None
) -> list[ColumnElement[bool]]:
    """Where a deployment's predictions in ``[start, end)`` (of a version) are."""
    where = [
        PredictionRow.deployment_id == deployment_id,
        PredictionRow.end_ms >= start_ms,
        PredictionRow.end_ms < end_ms,
    ]
    if model_version:
        where.append(PredictionRow.model_version == model_version)
    return where


def drift_verdict(report: Mapping[str, Any], min_samples: int) -> dict[str, Any]:
    """A drift report's summary, which hides nothing: how many columns drifted, whether the
    prediction drifted, and one ``level`` for the worst of them.

    ``level``: ``no_data`` (no predictions), ``not_enough_data`` (fewer than ``min_samples``
    current rows: no verdict, whatever the tests say), ``drift`` (dataset drift or prediction
    drift), ``warn`` (some columns drifted, below the dataset threshold), ``ok`` (nothing
    drifted). ``text`` says it in one line for the CLI and the dashboard.
    """
    dataset = report["dataset"]
    prediction = report.get("prediction")
    rows = int(report.get("current_rows") or 0)
    drifted = len(dataset["drifted_columns"])
    columns = int(dataset["columns"])
    prediction_drifted = None if prediction is None else bool(prediction["drifted"])
    if not rows:
        level, text = "no_data", "no predictions in this window"
    elif rows < min_samples:
        level = "not_enough_data"
        text = f"not enough data: {rows} of the {min_samples} rows a verdict needs"
    else:
        if dataset["drifted"] or prediction_drifted:
            level = "drift"
        elif drifted:
            level = "warn"
        else:
            level = "ok"
        said = {True: "prediction drifted", False: "prediction did not drift", None: ""}
        text = "; ".join(
            part
            for part in (
                f"{drifted} of {columns} columns drifted"
                + (" (dataset drift)" if dataset["drifted"] else ""),
                said[prediction_drifted],
            )
            if part
        )
    return {
        "level": level,
        "text": text,
        "drifted_columns": drifted,
        "columns": columns,
        "prediction_drifted": prediction_drifted,
        "current_rows": rows,
        "min_samples": min_samples,
    }
