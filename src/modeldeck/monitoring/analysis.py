"""Drift, performance and data quality of a deployment over a time window.

* **Drift** compares the inputs (and outputs) tracked in a window with the deployment's
  reference data, column by column (:mod:`modeldeck.monitoring.drift.stats`). Windows with more than
  ``max_rows`` predictions are measured on a uniform sample of about ``max_rows`` of them,
  chosen by the random bits of their UUIDs, and the report says so.
* **Realised performance** joins predictions with their delayed ground truth and aggregates in
  the store: SQL returns a confusion matrix (or regression sums) per window and version, never
  the rows themselves (:mod:`modeldeck.monitoring.performance.metrics` turns those into metrics).
* **Estimated performance** (classifiers that track probabilities): each model version's own
  :class:`~modeldeck.monitoring.performance.metrics.ConfidenceEstimator`, calibrated on that
  version's predictions for the labelled reference data
  (:mod:`modeldeck.monitoring.performance.scoring`, stored per reference and version), turns
  each window's predicted probabilities (grouped in SQL) into an
  expected confusion matrix. A version without one of its own has no estimate ("unknown"):
  another version's calibration is never borrowed.
* **Data quality** (missing values, types, ranges, new categories, constant columns, schema)
  reads the same per-column summaries as drift, from the records or the stored five-minute
  ones alike (:mod:`modeldeck.monitoring.quality`).
* **Shadow copies** are linked to the stable prediction they copy (``shadow_links``): ground
  truth for the stable prediction labels its copy too.
"""

from __future__ import annotations

import logging
import math
import threading
import time
import uuid as uuidlib
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, Protocol, TypeVar

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import delete, func, select, text

from modeldeck.errors import ModeldeckError, NotFound, ValidationFailed
from modeldeck.monitoring import quality as data_quality
from modeldeck.monitoring import reference as ref
from modeldeck.monitoring.drift import stats
from modeldeck.monitoring.performance import metrics as perf
from modeldeck.monitoring.performance import scoring
from modeldeck.monitoring.summaries import parts
from modeldeck.monitoring.windows import PRESETS, Window, fit_window
from modeldeck.records.journal import absorb
from modeldeck.records.model_metrics import now_ms
from modeldeck.store import Store
from modeldeck.store.jsonsql import Dialect
from modeldeck.store.schema import (
    AnalysisSummaryRow,
    DeploymentRow,
    PredictionRow,
    ReferenceDataRow,
    VersionScoreRow,
)

if TYPE_CHECKING:
    import pandas as pd

    from modeldeck.registry import Registry

log = logging.getLogger(__name__)

MAX_WINDOWS = 500
AUC_DIGITS = 3
ESTIMATE_DIGITS = 2
CLASSIFICATION_MAX_CLASSES = 50
REFETCH_SECONDS = 600.0
PART_CACHE_BYTES = 32 * 1024 * 1024
"""Stored summaries kept decoded in memory, counted by their stored size (about 4,000
performance parts: two weeks of one deployment's, or a day of a dozen deployments')."""


class ColumnOverride(BaseModel):
    model_config = ConfigDict(extra="forbid")

    method: str | None = Field(default=None, description="One of " + ", ".join(stats.METHODS))
    threshold: float | None = Field(default=None, ge=0, allow_inf_nan=False)
    kind: Literal["numeric", "categorical"] | None = None


KEY_PATTERN = r'^[^"\\\x00-\x1f]{1,255}$'
"""A tracked-metric key usable in a JSON path: no quotes, backslashes or control characters."""


class MonitoringConfig(BaseModel):
    """How a deployment's tracked metrics map onto features, predictions and labels."""

    model_config = ConfigDict(extra="forbid")

    input_key: str = Field(
        pattern=KEY_PATTERN,
        default="input",
        description="Tracked key holding the features (a record or a list).",
    )
    output_key: str = Field(
        pattern=KEY_PATTERN, default="output", description="Tracked key holding the prediction."
    )
    label_key: str = Field(
        pattern=KEY_PATTERN,
        default="actual_result",
        description="Delayed-metric key holding the ground truth.",
    )
    probability_key: str | None = Field(
        pattern=KEY_PATTERN,
        default="probabilities",
        description="Tracked key holding class probabilities as {class: p} (classifiers).",
    )
    task: Literal["classification", "regression"] | None = Field(
        default=None, description="Default: inferred from the labels."
    )
    columns: list[str] | None = Field(
        default=None, description="Features to test for drift (default: the reference's)."
    )
    overrides: dict[str, ColumnOverride] = Field(
        default_factory=dict, description="Per-column drift method, threshold or kind."
    )
    drift_share: float = Field(
        default=0.5, gt=0, le=1, description="Share of drifted columns that is dataset drift."
    )
    min_samples: int = Field(
        default=30,
        ge=1,
        le=1_000_000,
        description="Current rows below which a drift verdict is 'not enough data'.",
    )
    top_k: int = Field(default=20, ge=1, le=1000, description="Categories kept per column.")
    max_rows: int = Field(
        default=50_000,
        ge=1000,
        le=10_000_000,
        description="Windows with more predictions are tested on five-minute summaries.",
    )


class _Part(Protocol):
    def to_bytes(self) -> bytes: ...

    def merge(self, other: Any) -> Any: ...


Part = TypeVar("Part", bound=_Part)


@dataclass(frozen=True)
class DriftPlan:
    """How a deployment's monitored columns are summarised; ``signature`` names the plan."""

    columns: dict[str, parts.ColumnPlan]
    output: tuple[str, parts.ColumnPlan] | None
    signature: str

    @property
    def features(self) -> list[str]:
        return list(self.columns)


@dataclass
class Reference:
    frame: pd.DataFrame
    row: ReferenceDataRow
    estimator: bool = False  # the version it is for has a confidence estimator calibrated on it

    @property
    def features(self) -> list[str]:
        skip = {self.row.target_column, self.row.prediction_column}
        return [c for c in self.frame.columns if c not in skip]

    def summary(self) -> dict[str, Any]:
        return {
            "model_version": self.row.model_version or None,
            "source": self.row.source,
            "rows": self.row.rows,
            "columns": self.row.columns,
            "target_column": self.row.target_column,
            "prediction_column": self.row.prediction_column,
            "estimator": self.estimator,
            "created_at": self.row.created_at.isoformat() if self.row.created_at else None,
        }


class AnalysisService:
    def __init__(
        self, store: Store, registry: Registry, *, summaries: bool = True, hourly: bool = True
    ) -> None:
        """``summaries=False`` computes every report from the raw records, ``hourly=False``
        from five-minute summaries only (for comparisons)."""
        self.store = store
        self.registry = registry
        self.summaries = summaries
        self.hourly = hourly
        self.dialect = Dialect(store.dialect)
        self._fetch_failed: dict[tuple[str, str], float] = {}
        self._parts = _PartCache(PART_CACHE_BYTES)
        self._scoring = threading.Lock()
        self._backfill: dict[str, int] = {}  # deployment id: the oldest hour summarised lately

    # -- configuration ------------------------------------------------------------------------

    def config(self, name: str) -> MonitoringConfig:
        return MonitoringConfig.model_validate(self._deployment(name).monitoring or {})

    def set_config(self, name: str, config: MonitoringConfig) -> MonitoringConfig:
        for column, override in config.overrides.items():
            if override.method is not None and override.method not in stats.METHODS:
                raise ValidationFailed(
                    f"unknown drift method {override.method!r} for column {column!r}; "
                    f"methods: {', '.join(stats.METHODS)}",
                    details={"field": f"overrides.{column}.method"},
                )
        with self.store.write() as session:
            row = self._deployment_in(session, name)
            before = MonitoringConfig.model_validate(row.monitoring or {})
            row.monitoring = config.model_dump(exclude_defaults=True)
            # Summaries hold what the settings make of the records, not verdicts: methods,
            # thresholds, drift_share, top_k and max_rows apply when a report is read. Only
            # the summaries whose inputs changed are dropped (they would never match again).
            stale = []
            if _performance_signature(before) != _performance_signature(config):
                stale.append(AnalysisSummaryRow.kind.in_(("performance", "performance/h")))
            if _drift_inputs(before) != _drift_inputs(config):
                stale.append(AnalysisSummaryRow.kind.like("drift/%"))
            for kinds in stale:
                session.execute(
                    delete(AnalysisSummaryRow).where(
                        AnalysisSummaryRow.deployment_id == row.id, kinds
                    )
                )
        return config

    # -- reference data -----------------------------------------------------------------------

    def set_reference(
        self,
        name: str,
        frame: pd.DataFrame,
        *,
        source: str,
        model_version: str = "",
        target_column: str | None = None,
        prediction_column: str | None = None,
    ) -> dict[str, Any]:
        """Store ``frame`` as the reference of a deployment (or of one of its versions)."""
        frame = ref.check_frame(frame)
        for what, column in (
            ("target_column", target_column),
            ("prediction_column", prediction_column),
        ):
            if column is not None and column not in frame.columns:
                raise ValidationFailed(
                    f"{what} {column!r} is not a column of the reference data "
                    f"(columns: {', '.join(frame.columns)})",
                    details={"field": what},
                )
        deployment = self._deployment(name)
        columns = [
            {"name": c, "kind": stats.column_kind(frame[c]), "dtype": str(frame[c].dtype)}
            for c in frame.columns
        ]
        data = ref.to_parquet(frame)
        with self.store.write() as session:
            session.execute(
                delete(ReferenceDataRow).where(
                    ReferenceDataRow.deployment_id == deployment.id,
                    ReferenceDataRow.model_version == model_version,
                )
            )
            row = ReferenceDataRow(
                id=str(uuidlib.uuid4()),
                deployment_id=deployment.id,
                model_version=model_version,
                source=source,
                rows=len(frame),
                columns=columns,
                target_column=target_column,
                prediction_column=prediction_column,
                data=data,
            )
            session.add(row)
            session.execute(
                delete(AnalysisSummaryRow).where(
                    AnalysisSummaryRow.deployment_id == deployment.id,
                    AnalysisSummaryRow.kind.like("drift/%"),
                )
            )
            session.flush()
            session.refresh(row)
        # The version the reference is for is scored on it now (its estimator ready for the
        # next report); other versions are scored in the background (score_versions).
        reference = Reference(frame, row)
        found = self._score(deployment, model_version or deployment.model_version, reference)
        reference.estimator = found.get("estimator") is not None
        return reference.summary()

    def reference_from_registry(
        self, name: str, model_version: str | None = None
    ) -> dict[str, Any]:
        """Take the reference data from what was logged with the MLflow run or model."""
        deployment = self._deployment(name)
        if deployment.source != "registry":
            raise ValidationFailed(
                f"deployment {name!r} does not serve a registered model; upload reference data",
                details={"deployment": name},
            )
        version = model_version or deployment.model_version
        frame, source = ref.from_mlflow(self.registry, deployment.model_name, version)
        target = _guess_target(frame, deployment.signature)
        return self.set_reference(
            name,
            frame,
            source=source,
            model_version=model_version or "",
            target_column=target,
        )

    def reference(self, name: str, model_version: str | None = None) -> Reference:
        deployment = self._deployment(name)
        with self.store.read() as session:
            rows = {
                r.model_version: r
                for r in session.scalars(
                    select(ReferenceDataRow).where(ReferenceDataRow.deployment_id == deployment.id)
                )
            }
        row = rows.get(model_version or "") or rows.get("")
        if row is None and model_version is None and len(rows) == 1:
            row = next(iter(rows.values()))
        if row is None and not rows and self._may_fetch(deployment, model_version):
            self.reference_from_registry(name, model_version)
            return self.reference(name, model_version)
        if row is None:
            raise NotFound(
                f"deployment {name!r} has no reference data"
                + (f" for version {model_version}" if model_version else "")
                + "; set it with 'modeldeck reference set' or from the registry",
                details={"deployment": name},
            )
        reference = Reference(ref.from_parquet(row.data), row)
        version = model_version or row.model_version or deployment.model_version
        with self.store.read() as session:
            estimator = session.scalar(
                select(VersionScoreRow.estimator).where(
                    VersionScoreRow.reference_id == row.id,
                    VersionScoreRow.model_version == version,
                )
            )
        reference.estimator = estimator is not None
        return reference

    def _may_fetch(self, deployment: DeploymentRow, model_version: str | None) -> bool:
        """Whether to look for logged reference data in MLflow now (at most every 10 min)."""
        if deployment.source != "registry":
            return False
        key = (deployment.id, model_version or deployment.model_version)
        now = time.monotonic()
        if now - self._fetch_failed.get(key, -math.inf) < REFETCH_SECONDS:
            return False
        try:
            ref.from_mlflow(self.registry, deployment.model_name, key[1])
        except ModeldeckError:
            self._fetch_failed[key] = now
            return False
        return True

    def delete_reference(self, name: str, model_version: str = "") -> None:
        deployment = self._deployment(name)
        with self.store.write() as session:
            result = session.execute(
                delete(ReferenceDataRow).where(
                    ReferenceDataRow.deployment_id == deployment.id,
                    ReferenceDataRow.model_version == model_version,
                )
            )
            if not getattr(result, "rowcount", 0):
                raise NotFound(f"deployment {name!r} has no such reference data")

    # -- drift --------------------------------------------------------------------------------

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
        start_ms, end_ms = _window(start_ms, end_ms)
        deployment = self._deployment(name)
        config = MonitoringConfig.model_validate(deployment.monitoring or {})
        reference = self.reference(name, model_version)
        plan = self._drift_plan(reference, config)
        features = list(columns or plan.features)
        unknown = [c for c in features if c not in reference.frame.columns]
        if unknown:
            raise ValidationFailed(
                f"columns not in the reference data: {', '.join(unknown)}",
                details={"field": "columns"},
            )
        # At most max_rows + 1: whether to read summaries, not yet how many there are.
        total = self._count(
            deployment.id, start_ms, end_ms, model_version, limit=config.max_rows + 1
        )
        binned = (
            not exact
            and (binned or total > config.max_rows)
            and total > 0
            and set(features) <= set(plan.columns)
        )
        if binned:
            part, total = self._merged_drift_part(
                deployment, config, plan, start_ms, end_ms, model_version
            )
        elif total > config.max_rows:
            total = self._count(deployment.id, start_ms, end_ms, model_version)
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
            inputs, outputs, skipped = _rows(metrics, config.input_key, config.output_key)
            current = _frame(inputs)
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
            current_values, invalid[column] = _conform(
                current[column] if column in current.columns else pd.Series([], dtype=float),
                kind,
            )
            baseline, _ = _conform(reference.frame[column], kind)
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
            baseline, _ = _conform(reference.frame[column], column_plan.kind)
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

    def _drift_plan(self, reference: Reference, config: MonitoringConfig) -> DriftPlan:
        """How each monitored column (and the output) is summarised, from the reference."""
        columns: dict[str, parts.ColumnPlan] = {}
        for column in config.columns or reference.features:
            if column not in reference.frame.columns:
                continue
            override = config.overrides.get(column, ColumnOverride())
            columns[column] = _column_plan(
                reference.frame[column], override.kind or stats.column_kind(reference.frame[column])
            )
        output = self._output_plan(reference)
        # From the reference and _drift_inputs(config) alone (set_config relies on it).
        signature = parts.signature(
            reference.row.id,
            str(reference.row.created_at),
            config.input_key,
            config.output_key,
            {c: p.kind for c, p in columns.items()},
            None if output is None else output[1].kind,
        )
        return DriftPlan(columns, output, signature)

    def _output_plan(self, reference: Reference) -> tuple[str, parts.ColumnPlan] | None:
        column = reference.row.prediction_column or reference.row.target_column
        if column is None:
            return None
        baseline = reference.frame[column]
        kind = stats.column_kind(baseline)
        if kind == "categorical" or _few_integers(baseline):
            return column, parts.ColumnPlan("categorical")
        return column, _column_plan(baseline, "numeric")

    def _prediction_drift(
        self, reference: Reference, outputs: list[Any], config: MonitoringConfig
    ) -> dict[str, Any] | None:
        import pandas as pd

        plan = self._output_plan(reference)
        if plan is None or not outputs:
            return None
        column, column_plan = plan
        values = pd.Series([o for o in outputs if _scalar(o)])
        if values.empty:
            return None
        baseline = reference.frame[column]
        if column_plan.kind == "categorical":
            baseline = baseline.astype(str)
            values = values.astype(str)
        values, bad = _conform(values, column_plan.kind)
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
            _conform(baseline, column_plan.kind)[0],
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
        where = [
            PredictionRow.deployment_id == deployment_id,
            PredictionRow.end_ms >= start_ms,
            PredictionRow.end_ms < end_ms,
        ]
        if model_version:
            where.append(PredictionRow.model_version == model_version)
        with self.store.read() as session:
            return list(session.scalars(select(PredictionRow.metrics).where(*where)))

    def _count(
        self,
        deployment_id: str,
        start_ms: int,
        end_ms: int,
        model_version: str | None,
        *,
        limit: int | None = None,
    ) -> int:
        """Predictions in ``[start, end)`` (of a version), or at most ``limit`` of them."""
        where = [
            PredictionRow.deployment_id == deployment_id,
            PredictionRow.end_ms >= start_ms,
            PredictionRow.end_ms < end_ms,
        ]
        if model_version:
            where.append(PredictionRow.model_version == model_version)
        if limit is None:
            query = select(func.count()).select_from(PredictionRow).where(*where)
        else:  # a column of the index, so the index alone answers
            rows = select(PredictionRow.end_ms).where(*where).limit(limit).subquery()
            query = select(func.count()).select_from(rows)
        with self.store.read() as session:
            return int(session.scalar(query) or 0)

    def _merged_drift_part(
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

        found, counted = self._assemble(
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
        first, last = _whole_buckets(start_ms, end_ms)
        if not self.summaries or last <= first:
            return merged, self._count(deployment.id, start_ms, end_ms, model_version)
        total = sum(n for (_, v), n in counted.items() if not model_version or v == model_version)
        for lo, hi in ((start_ms, first), (last, end_ms)):
            if hi > lo:
                total += self._count(deployment.id, lo, hi, model_version)
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
        return {key: _drift_part(records, config, plan) for key, records in grouped.items()}

    # -- data quality -------------------------------------------------------------------------

    def quality(
        self,
        name: str,
        *,
        start_ms: int | None = None,
        end_ms: int | None = None,
        step_ms: int | None = None,
        model_version: str | None = None,
    ) -> dict[str, Any]:
        """Data quality of each input column per window and over the whole range
        (:mod:`modeldeck.monitoring.quality`).

        Ranges of up to ``max_rows`` predictions are read from the records (``mode: raw``).
        Larger ones are assembled from the drift summaries, five-minute and hourly, plus the
        ragged edges of each window (``mode: binned``); without reference data there are no
        summaries and the records are read in chunks of ``max_rows`` (``mode: scan``). Every
        mode gives the same numbers: each summarises the records the same way.
        """
        absorb(self.store)  # predictions replicas journaled and not committed yet
        start_ms, end_ms = _window(start_ms, end_ms)
        step_ms = _step(start_ms, end_ms, step_ms)
        deployment = self._deployment(name)
        config = MonitoringConfig.model_validate(deployment.monitoring or {})
        try:
            reference: Reference | None = self.reference(name, model_version)
        except NotFound:
            reference = None
        profiles: dict[str, data_quality.ColumnProfile]
        if reference is not None:
            plan = self._drift_plan(reference, config)
            profiles = {c: _profile(reference.frame[c], p) for c, p in plan.columns.items()}
            known: list[str] | None = reference.features
        else:
            profiles = _signature_profiles(deployment.signature)
            known = list(profiles) if profiles else None
            plan = DriftPlan({c: _quality_plan(p) for c, p in profiles.items()}, None, "")
        total = self._count(
            deployment.id, start_ms, end_ms, model_version, limit=config.max_rows + 1
        )
        found: dict[int, tuple[parts.DriftPart, int]] = {}
        if total > config.max_rows and reference is not None:
            mode = "binned"
            for index in range(math.ceil((end_ms - start_ms) / step_ms)):
                lo = start_ms + index * step_ms
                part, n = self._merged_drift_part(
                    deployment, config, plan, lo, min(lo + step_ms, end_ms), model_version
                )
                if n:
                    found[index] = (part, n)
        else:
            mode = "raw" if total <= config.max_rows else "scan"
            found = self._scan_quality(
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

    def _scan_quality(
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
        where = [
            PredictionRow.deployment_id == deployment_id,
            PredictionRow.end_ms >= start_ms,
            PredictionRow.end_ms < end_ms,
        ]
        if model_version:
            where.append(PredictionRow.model_version == model_version)
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
                    inputs, _, _ = _rows(
                        [m for ms in grouped.values() for m in ms], config.input_key, ""
                    )
                    current = _frame(inputs)
                    for column in current.columns:
                        if str(column) not in profiles:
                            kind = stats.column_kind(current[column])
                            profiles[str(column)] = data_quality.ColumnProfile(kind, typed=False)
                            plan.columns[str(column)] = _quality_plan(profiles[str(column)])
                for index, records in grouped.items():
                    part = _drift_part(records, config, plan)
                    before, n = found.get(index, (parts.DriftPart(), 0))
                    found[index] = (before.merge(part), n + len(records))
        return found

    # -- summaries ----------------------------------------------------------------------------

    def _assemble(
        self,
        kinds: tuple[str, str],
        deployment: DeploymentRow,
        signature: str,
        start_ms: int,
        end_ms: int,
        live: Callable[[int, int], Mapping[tuple[int, str], Part]],
        build: Callable[[int, int], Mapping[tuple[int, str], Part]],
        load: Callable[[bytes], Part],
        *,
        with_labels: bool,
        step_ms: int | None = None,
    ) -> tuple[dict[tuple[int, str], Part], dict[tuple[int, str], int]]:
        """The parts of ``[start, end)`` keyed by (piece start, version), and the predictions
        of each summarised piece (not of the ragged edges; none without summaries).

        ``kinds`` names the five-minute and the hourly summaries. Whole hours that lie inside
        one window of ``step_ms`` (default: the whole range) and are over come from hourly
        summaries, the other whole five-minute buckets from five-minute ones; a summary still
        valid is read from ``analysis_summaries``, else built (``build(lo, hi)`` over a run of
        buckets, hours from their five-minute summaries) and stored. The ragged edges of the
        window are computed by ``live(lo, hi)`` and not stored.
        """
        step = parts.BUCKET_MS
        first, last = _whole_buckets(start_ms, end_ms)
        out: dict[tuple[int, str], Part] = {}
        counted: dict[tuple[int, str], int] = {}
        if last <= first:
            for (_, version), part in live(start_ms, end_ms).items():
                out[(start_ms, version)] = part
            return out, counted
        for lo, hi in ((start_ms, first), (last, end_ms)):
            if hi > lo:
                for (_, version), part in live(lo, hi).items():
                    out[(lo, version)] = part
        if not self.summaries:
            for (index, version), part in build(first, last).items():
                out[(first + index * step, version)] = part
            return out, counted
        hours = (
            _whole_hours(first, last, start_ms, step_ms or end_ms - start_ms, now_ms())
            if self.hourly
            else []
        )
        for lo, hi in _gaps(first, last, hours, parts.HOUR_MS):
            found, valid_for = self._buckets(
                kinds, deployment, signature, lo, hi, build, load, with_labels=with_labels
            )
            out.update(found)
            counted.update((key, n) for key, (n, _, _) in valid_for.items())
        if hours:
            found, predictions = self._hours(
                kinds, deployment, signature, hours, build, load, with_labels=with_labels
            )
            out.update(found)
            counted.update(predictions)
        return out, counted

    def _buckets(
        self,
        kinds: tuple[str, str],
        deployment: DeploymentRow,
        signature: str,
        first: int,
        last: int,
        build: Callable[[int, int], Mapping[tuple[int, str], Part]],
        load: Callable[[bytes], Part],
        *,
        with_labels: bool,
    ) -> tuple[dict[tuple[int, str], Part], dict[tuple[int, str], tuple[int, int, int]]]:
        """The five-minute parts of ``[first, last)`` (whole buckets), and what each was found
        valid for or built from: (predictions of its version, labels, last label id)."""
        kind, hour_kind = kinds
        step = parts.BUCKET_MS
        out: dict[tuple[int, str], Part] = {}
        counted: dict[tuple[int, str], tuple[int, int, int]] = {}
        counts = self._bucket_counts(deployment.id, first, last)
        labels = self._label_counts(deployment.id, first, last) if with_labels else {}
        stored = self._stored(deployment.id, kind, first, last)
        versions: dict[int, list[tuple[str, int]]] = {}
        for (bucket, version), n in counts.items():
            versions.setdefault(bucket, []).append((version, n))
        stale: list[int] = []
        valid: dict[tuple[int, str], tuple[Any, ...]] = {}
        for bucket in sorted(versions):
            label_count, label_max = labels.get(bucket, (0, 0))
            rows = [(stored.get((bucket, version)), n) for version, n in versions[bucket]]
            if all(
                row is not None
                and row.signature == signature
                and row.predictions == n
                and (row.labels, row.label_max_id) == (label_count, label_max)
                for row, n in rows
            ):
                for row, n in rows:
                    assert row is not None
                    valid[(bucket, row.model_version)] = (deployment.id, kind, *row)
                    counted[(bucket, row.model_version)] = (n, label_count, label_max)
            else:
                stale.append(bucket)
        loaded, unreadable = self._load_parts(deployment.id, kind, valid, load)
        out.update(loaded)
        stale = sorted({*stale, *unreadable})
        for lo, hi in _runs(stale, step):
            built = build(lo, hi)
            fresh = []
            for (index, version), part in built.items():
                bucket = lo + index * step
                out[(bucket, version)] = part
                label_count, label_max = labels.get(bucket, (0, 0))
                n = counts.get((bucket, version), 0)
                counted[(bucket, version)] = (n, label_count, label_max)
                fresh.append(
                    AnalysisSummaryRow(
                        deployment_id=deployment.id,
                        kind=kind,
                        bucket_ms=bucket,
                        model_version=version,
                        signature=signature,
                        predictions=n,
                        labels=label_count,
                        label_max_id=label_max,
                        built_ms=now_ms(),
                        data=part.to_bytes(),
                    )
                )
            self._store_summaries(deployment.id, kind, lo, hi, fresh, hourly=hour_kind)
        return out, counted

    def _hours(
        self,
        kinds: tuple[str, str],
        deployment: DeploymentRow,
        signature: str,
        hours: Sequence[int],
        build: Callable[[int, int], Mapping[tuple[int, str], Part]],
        load: Callable[[bytes], Part],
        *,
        with_labels: bool,
    ) -> tuple[dict[tuple[int, str], Part], dict[tuple[int, str], int]]:
        """The hourly parts of ``hours`` (sorted hour starts), and their predictions.

        An hourly summary is the sum of its hour's twelve five-minute summaries and records
        the sums of what they were valid for: predictions per version, labels and the last
        label id. It is valid while the hour still holds as many predictions (all versions
        together) and labels, the last one the same: predictions and delayed metrics are only
        ever added (new ids) or pruned, so anything that makes one of its five-minute
        summaries stale changes these too. Rebuilding a five-minute summary also deletes the
        hourly one of its hour (:meth:`_store_summaries`). A stale hour is assembled anew from
        its five-minute summaries (rebuilding those that are stale themselves).
        """
        hour_kind = kinds[1]
        hour = parts.HOUR_MS
        totals = self._hour_counts(deployment.id, hours, with_labels)
        stored: dict[int, list[Any]] = {}
        for (at, _), row in self._stored(
            deployment.id, hour_kind, hours[0], hours[-1] + hour
        ).items():
            stored.setdefault(at, []).append(row)
        valid: dict[tuple[int, str], tuple[Any, ...]] = {}
        counted: dict[tuple[int, str], int] = {}
        stale: list[int] = []
        for at in hours:
            n, label_count, label_max = totals.get(at, (0, 0, 0))
            if not n:
                continue  # no predictions: nothing to report
            rows = stored.get(at, [])
            if (
                rows
                and sum(r.predictions for r in rows) == n
                and all(
                    r.signature == signature
                    and (r.labels, r.label_max_id) == (label_count, label_max)
                    for r in rows
                )
            ):
                for row in rows:
                    valid[(at, row.model_version)] = (deployment.id, hour_kind, *row)
                    counted[(at, row.model_version)] = row.predictions
            else:
                stale.append(at)
        out, unreadable = self._load_parts(deployment.id, hour_kind, valid, load)
        for key in [key for key in out if key[0] in unreadable]:
            del out[key], counted[key]  # the whole hour is rebuilt
        for lo, hi in _runs(sorted({*stale, *unreadable}), hour):
            found, valid_for = self._buckets(
                kinds, deployment, signature, lo, hi, build, load, with_labels=with_labels
            )
            merged: dict[tuple[int, str], Part] = {}
            predictions: dict[tuple[int, str], int] = {}
            bucket_labels: dict[int, dict[int, tuple[int, int]]] = {}
            for (bucket, version), part in found.items():
                at = bucket // hour * hour
                key = (at, version)
                if key not in merged:
                    merged[key] = type(part)()  # a fresh part: cached ones are never changed
                merged[key].merge(part)
                n, label_count, label_max = valid_for[(bucket, version)]
                predictions[key] = predictions.get(key, 0) + n
                bucket_labels.setdefault(at, {})[bucket] = (label_count, label_max)
            fresh = []
            for (at, version), part in merged.items():
                in_hour = bucket_labels[at].values()
                label_count = sum(c for c, _ in in_hour)
                label_max = max(m for _, m in in_hour)
                data = part.to_bytes()
                row = AnalysisSummaryRow(
                    deployment_id=deployment.id,
                    kind=hour_kind,
                    bucket_ms=at,
                    model_version=version,
                    signature=signature,
                    predictions=predictions[(at, version)],
                    labels=label_count,
                    label_max_id=label_max,
                    built_ms=now_ms(),
                    data=data,
                )
                fresh.append(row)
                out[(at, version)] = part
                counted[(at, version)] = row.predictions
                identity = (
                    deployment.id,
                    hour_kind,
                    at,
                    version,
                    signature,
                    row.predictions,
                    label_count,
                    label_max,
                    row.built_ms,
                )
                self._parts.put(identity, part, len(data))
            self._store_summaries(deployment.id, hour_kind, lo, hi, fresh)
        return out, counted

    def _stored(
        self, deployment_id: str, kind: str, lo: int, hi: int
    ) -> dict[tuple[int, str], Any]:
        """Which summaries of ``kind`` exist in ``[lo, hi)`` and what they were built from (the
        parts themselves come from memory when this process decoded the same summary before)."""
        with self.store.read() as session:
            return {
                (r.bucket_ms, r.model_version): r
                for r in session.execute(
                    select(
                        AnalysisSummaryRow.bucket_ms,
                        AnalysisSummaryRow.model_version,
                        AnalysisSummaryRow.signature,
                        AnalysisSummaryRow.predictions,
                        AnalysisSummaryRow.labels,
                        AnalysisSummaryRow.label_max_id,
                        AnalysisSummaryRow.built_ms,
                    ).where(
                        AnalysisSummaryRow.deployment_id == deployment_id,
                        AnalysisSummaryRow.kind == kind,
                        AnalysisSummaryRow.bucket_ms >= lo,
                        AnalysisSummaryRow.bucket_ms < hi,
                    )
                )
            }

    def _load_parts(
        self,
        deployment_id: str,
        kind: str,
        valid: Mapping[tuple[int, str], tuple[Any, ...]],
        load: Callable[[bytes], Part],
    ) -> tuple[dict[tuple[int, str], Part], set[int]]:
        """The parts of valid stored summaries (cached, else read and decoded), and the
        buckets whose stored data cannot be decoded (to be rebuilt)."""
        out: dict[tuple[int, str], Part] = {}
        missing: list[tuple[int, str]] = []
        for key, identity in valid.items():
            part = self._parts.get(identity)
            if part is None:
                missing.append(key)
            else:
                out[key] = part
        unreadable: set[int] = set()
        buckets = sorted({bucket for bucket, _ in missing})
        wanted = set(missing)
        for lo in range(0, len(buckets), 500):
            chunk = buckets[lo : lo + 500]
            with self.store.read() as session:
                rows = session.execute(
                    select(
                        AnalysisSummaryRow.bucket_ms,
                        AnalysisSummaryRow.model_version,
                        AnalysisSummaryRow.data,
                    ).where(
                        AnalysisSummaryRow.deployment_id == deployment_id,
                        AnalysisSummaryRow.kind == kind,
                        AnalysisSummaryRow.bucket_ms.in_(chunk),
                    )
                ).all()
            for bucket, version, data in rows:
                key = (bucket, version)
                if key not in wanted:
                    continue
                try:
                    part = load(data)
                except (ValueError, KeyError, TypeError):  # unreadable: rebuild it
                    unreadable.add(bucket)
                    continue
                out[key] = part
                self._parts.put(valid[key], part, len(data))
        return out, unreadable

    def _store_summaries(
        self,
        deployment_id: str,
        kind: str,
        lo: int,
        hi: int,
        rows: list[AnalysisSummaryRow],
        *,
        hourly: str | None = None,
    ) -> None:
        """Replace the summaries of ``kind`` in ``[lo, hi)`` with ``rows``; with ``hourly``
        (five-minute ones), also drop the hourly summaries of the hours they are in."""
        try:
            with self.store.write() as session:
                session.execute(
                    delete(AnalysisSummaryRow).where(
                        AnalysisSummaryRow.deployment_id == deployment_id,
                        AnalysisSummaryRow.kind == kind,
                        AnalysisSummaryRow.bucket_ms >= lo,
                        AnalysisSummaryRow.bucket_ms < hi,
                    )
                )
                if hourly is not None:
                    session.execute(
                        delete(AnalysisSummaryRow).where(
                            AnalysisSummaryRow.deployment_id == deployment_id,
                            AnalysisSummaryRow.kind == hourly,
                            AnalysisSummaryRow.bucket_ms >= lo // parts.HOUR_MS * parts.HOUR_MS,
                            AnalysisSummaryRow.bucket_ms < hi,
                        )
                    )
                session.add_all(rows)
        except Exception as exc:  # a cache: failing to keep it must not fail the report
            log.warning("could not store analysis summaries: %s", exc)

    def _bucket_counts(self, deployment_id: str, lo: int, hi: int) -> dict[tuple[int, str], int]:
        """Predictions per five-minute bucket and version (from the index alone)."""
        sql = (
            "SELECT (end_ms - :lo) / :step AS b, model_version, COUNT(*) FROM predictions "
            "WHERE deployment_id = :dep AND end_ms >= :lo AND end_ms < :hi "
            "GROUP BY b, model_version"
        )
        params = {"dep": deployment_id, "lo": lo, "hi": hi, "step": parts.BUCKET_MS}
        with self.store.read() as session:
            return {
                (lo + int(b) * parts.BUCKET_MS, str(v)): int(n)
                for b, v, n in session.execute(text(sql), params)
            }

    def _hour_counts(
        self, deployment_id: str, hours: Sequence[int], with_labels: bool
    ) -> dict[int, tuple[int, int, int]]:
        """Per hour: predictions, and delayed metrics of them (count, last id), from the
        indexes, one range scan per hour and table (grouping the rows by an expression costs
        several times more)."""
        span = parts.HOUR_MS
        # Labels: count and last id from one pass over the index, as one text value (a scalar
        # subquery returns one column); NULL when there are none.
        labels = (
            "(SELECT COUNT(*) || ' ' || MAX(d.id) FROM delayed_metrics d "
            "WHERE d.deployment_id = :dep AND d.prediction_end_ms >= h.at "
            f"AND d.prediction_end_ms < h.at + {span}), "
            # Labels of the stable predictions that shadow copies in the hour copy.
            "(SELECT COUNT(*) || ' ' || MAX(d.id) FROM shadow_links s "
            "JOIN delayed_metrics d ON d.prediction_uuid = s.stable_uuid "
            "WHERE s.deployment_id = :dep AND s.shadow_end_ms >= h.at "
            f"AND s.shadow_end_ms < h.at + {span})"
            if with_labels
            else "NULL, NULL"
        )
        out: dict[int, tuple[int, int, int]] = {}
        for lo in range(0, len(hours), 500):  # a statement of a few kilobytes
            values = ", ".join(f"({int(at)})" for at in hours[lo : lo + 500])
            sql = (
                f"WITH h(at) AS (VALUES {values}) SELECT h.at, "
                "(SELECT COUNT(*) FROM predictions p WHERE p.deployment_id = :dep "
                f"AND p.end_ms >= h.at AND p.end_ms < h.at + {span}), {labels} FROM h"
            )
            with self.store.read() as session:
                for at, n, *found in session.execute(text(sql), {"dep": deployment_id}):
                    count, top = 0, 0
                    for counted in found:
                        if counted is not None and " " in str(counted):
                            more, last = str(counted).split()
                            count, top = count + int(more), max(top, int(last))
                    out[int(at)] = (int(n), count, top)
        return out

    def _label_counts(self, deployment_id: str, lo: int, hi: int) -> dict[int, tuple[int, int]]:
        """Delayed metrics per five-minute bucket of their predictions: (count, last id)."""
        sql = (
            "SELECT (prediction_end_ms - :lo) / :step AS b, COUNT(*), MAX(id) "
            "FROM delayed_metrics WHERE deployment_id = :dep "
            "AND prediction_end_ms >= :lo AND prediction_end_ms < :hi GROUP BY b"
        )
        # Labels of the stable predictions that shadow copies in the bucket copy.
        linked = (
            "SELECT (s.shadow_end_ms - :lo) / :step AS b, COUNT(*), MAX(d.id) "
            "FROM shadow_links s JOIN delayed_metrics d ON d.prediction_uuid = s.stable_uuid "
            "WHERE s.deployment_id = :dep AND s.shadow_end_ms >= :lo AND s.shadow_end_ms < :hi "
            "GROUP BY b"
        )
        params = {"dep": deployment_id, "lo": lo, "hi": hi, "step": parts.BUCKET_MS}
        out: dict[int, tuple[int, int]] = {}
        with self.store.read() as session:
            for statement in (sql, linked):
                for b, n, top in session.execute(text(statement), params):
                    bucket = lo + int(b) * parts.BUCKET_MS
                    count, last = out.get(bucket, (0, 0))
                    out[bucket] = (count + int(n), max(last, int(top)))
        return out

    def refresh_summaries(
        self,
        name: str,
        *,
        hours: int = 24,
        backfill_hours: int = 0,
        oldest_ms: int | None = None,
    ) -> None:
        """Build the summaries of the last ``hours`` that are missing or stale, and score each
        version seen in them that has no score on its reference yet.

        With ``backfill_hours``, also those of that many whole hours further back: each call
        takes the stretch below the one the previous call took, down to ``oldest_ms`` (the
        retention), then starts again below the last ``hours`` (so that late labels for an old
        hour are taken in on the next round). The work per call stays bounded while the
        summaries of the whole retention become, and stay, current.

        The platform calls this in the background, so that reports find them ready.
        """
        end = now_ms() // parts.BUCKET_MS * parts.BUCKET_MS
        start = end - hours * 3_600_000
        deployment = self._deployment(name)
        windows = [(start, end)]
        if backfill_hours > 0 and oldest_ms is not None:
            older = self._backfill_stretch(deployment.id, start, oldest_ms, backfill_hours)
            if older is not None:
                windows.append(older)
        report = self.performance(name, start_ms=start, end_ms=end)
        for lo, hi in windows[1:]:
            self.performance(name, start_ms=lo, end_ms=hi)
        config = MonitoringConfig.model_validate(deployment.monitoring or {})
        try:
            reference = self.reference(name)
        except NotFound:
            return  # no reference data: no drift to summarise, no version to score
        plan = self._drift_plan(reference, config)
        for lo, hi in windows:
            self._merged_drift_part(deployment, config, plan, lo, hi, None)
        # Each version that served lately gets its own estimator (scored once).
        versions = {deployment.model_version, *(w["model_version"] for w in report["windows"])}
        self.score_versions(name, versions)

    def _backfill_stretch(
        self, deployment_id: str, recent_ms: int, oldest_ms: int, hours: int
    ) -> tuple[int, int] | None:
        """The next ``hours`` whole hours to summarise below ``recent_ms``, going down to
        ``oldest_ms`` and then from the top again; None when there is nothing older."""
        hour = parts.HOUR_MS
        top = -(-recent_ms // hour) * hour  # the hour the recent window is whole from
        bottom = -(-oldest_ms // hour) * hour
        if top <= bottom:
            return None
        cursor = self._backfill.get(deployment_id, top)
        if cursor <= bottom or cursor > top:
            cursor = top  # a round is over (or the retention moved): start again
        low = max(cursor - hours * hour, bottom)
        self._backfill[deployment_id] = low
        return low, cursor

    # -- the window a view shows ------------------------------------------------------------

    def window(
        self, name: str, *, span_ms: int | None = None, step_ms: int | None = None
    ) -> Window:
        """The range and step to show ``name`` over when the caller names neither: from its
        first prediction (in the longest preset) to now, rounded up to a preset, in about 12
        to 60 windows that start on whole steps (:func:`~modeldeck.monitoring.windows.fit_window`).
        A given ``span_ms`` or ``step_ms`` wins."""
        absorb(self.store)  # predictions replicas journaled and not committed yet
        deployment = self._deployment(name)
        now = now_ms()
        oldest = now - PRESETS[-1][1] * 1000
        query = select(func.min(PredictionRow.end_ms)).where(
            PredictionRow.deployment_id == deployment.id, PredictionRow.end_ms >= oldest
        )
        with self.store.read() as session:
            first = session.scalar(query)
        return fit_window(
            now, None if first is None else int(first), span_ms=span_ms, step_ms=step_ms
        )

    # -- performance --------------------------------------------------------------------------

    def performance(
        self,
        name: str,
        *,
        start_ms: int | None = None,
        end_ms: int | None = None,
        step_ms: int | None = None,
        model_version: str | None = None,
        by_version: bool = True,
    ) -> dict[str, Any]:
        """Realised (and, where possible, estimated) performance per window and version.

        With ``by_version=False`` each window covers every version (``model_version == ""``).
        A single window, or windows that start on a five-minute boundary and last whole
        multiples of five minutes, are assembled from stored summaries plus their ragged
        edges (hourly ones for the whole hours inside a window, five-minute ones for the rest);
        other windows are aggregated in one go.
        """
        absorb(self.store)  # predictions replicas journaled and not committed yet
        start_ms, end_ms = _window(start_ms, end_ms)
        span = end_ms - start_ms
        step_ms = _step(start_ms, end_ms, step_ms)
        deployment = self._deployment(name)
        config = MonitoringConfig.model_validate(deployment.monitoring or {})
        # Summaries serve windows made of whole buckets (or one window, whatever its edges).
        aligned = step_ms >= span or (
            start_ms % parts.BUCKET_MS == 0 and step_ms % parts.BUCKET_MS == 0
        )
        per_window: dict[tuple[int, str], parts.PerformancePart] = {}
        # Windows over every version: each version's part too (each has its own estimator).
        members: dict[tuple[int, str], dict[str, parts.PerformancePart]] = {}
        if aligned:
            found, _ = self._assemble(
                ("performance", "performance/h"),
                deployment,
                _performance_signature(config),
                start_ms,
                end_ms,
                lambda lo, hi: self._performance_parts(deployment.id, config, lo, hi, hi - lo),
                lambda lo, hi: self._performance_parts(
                    deployment.id, config, lo, hi, parts.BUCKET_MS
                ),
                parts.PerformancePart.from_bytes,
                with_labels=True,
                step_ms=step_ms,
            )
            pieces = [((at - start_ms) // step_ms, v, p) for (at, v), p in found.items()]
        else:
            live = self._performance_parts(deployment.id, config, start_ms, end_ms, step_ms)
            pieces = [(bucket, v, p) for (bucket, v), p in live.items()]
        for bucket, version, part in pieces:
            if model_version and version != model_version:
                continue
            key = (bucket, version if by_version else "")
            per_window.setdefault(key, parts.PerformancePart()).merge(part)
            if not by_version and part.estimate:
                member = members.setdefault(key, {})
                member.setdefault(version, parts.PerformancePart()).merge(part)
        task = config.task or _infer_task_from(per_window.values())
        estimators = self._estimators(deployment) if config.probability_key else {}
        windows = []
        for (bucket, version), part in sorted(per_window.items()):
            window = _empty_window(start_ms, step_ms, bucket, version, part.predictions)
            window["end"] = min(window["end"], end_ms)  # the last window stops at the range's end
            if task == "regression":
                if part.regression[0]:
                    window["realised"] = perf.regression_metrics(
                        int(part.regression[0]), *part.regression[1:]
                    )
                    window["labelled"] = int(part.regression[0])
            elif part.confusion:
                realised = perf.classification_metrics(part.confusion)
                realised.update(_probability_metrics(part))
                window["realised"] = realised
                window["labelled"] = int(sum(part.confusion.values()))
            if task != "regression" and part.estimate:
                each = [(version, part)] if by_version else members[(bucket, version)].items()
                window["estimated"] = _estimated(estimators, each)
            window["label_coverage"] = (
                window["labelled"] / window["predictions"] if window["predictions"] else None
            )
            windows.append(window)
        windows.sort(key=lambda w: (w["start"], w["model_version"]))
        return {
            "deployment": name,
            "model_version": model_version,
            "task": task,
            "start": start_ms,
            "end": end_ms,
            "step": step_ms,
            "label_key": config.label_key,
            "windows": windows,
        }

    def _estimators(self, deployment: DeploymentRow) -> dict[str, perf.ConfidenceEstimator]:
        """Each version's own estimator: calibrated on its predictions for its reference."""
        with self.store.read() as session:
            references = _reference_ids(session, deployment.id)
            scores = session.execute(
                select(
                    VersionScoreRow.reference_id,
                    VersionScoreRow.model_version,
                    VersionScoreRow.estimator,
                ).where(VersionScoreRow.deployment_id == deployment.id)
            ).all()
        return {
            version: perf.ConfidenceEstimator.from_dict(estimator)
            for reference_id, version, estimator in scores
            if estimator and _resolve_reference(references, version) == reference_id
        }

    def _performance_parts(
        self,
        deployment_id: str,
        config: MonitoringConfig,
        start_ms: int,
        end_ms: int,
        step_ms: int,
    ) -> dict[tuple[int, str], parts.PerformancePart]:
        """Performance aggregates of ``[start, end)`` per ``step`` and version, in SQL."""
        params = {
            "dep": deployment_id,
            "start": start_ms,
            "end": end_ms,
            "step": step_ms,
            "version": "",
            "out": config.output_key,
            "label": config.label_key,
            "proba": config.probability_key or "",
        }
        out: dict[tuple[int, str], parts.PerformancePart] = {}

        def part(key: tuple[int, str]) -> parts.PerformancePart:
            return out.setdefault(key, parts.PerformancePart())

        for key, n in self._prediction_counts(params).items():
            part(key).predictions = n
        if config.task != "regression":
            labels: dict[tuple[int, str], set[str]] = {}
            for bucket, version, predicted, actual, n in self._confusion(params):
                if predicted is None or actual is None:
                    continue
                cells = part((bucket, version)).confusion
                cells[(predicted, actual)] = cells.get((predicted, actual), 0) + n
                labels.setdefault((bucket, version), set()).add(actual)
            for key, seen in labels.items():
                if len(seen) > CLASSIFICATION_MAX_CLASSES:
                    part(key).many_labels = True
                    part(key).confusion = {}
        if config.task != "classification":
            for bucket, version, *sums in self._regression_sums(params):
                part((bucket, version)).regression = [float(x) for x in sums]
        if config.probability_key and config.task != "regression":
            self._probability_parts(params, part)
        return out

    def _sql_filter(self) -> str:
        return (
            "p.deployment_id = :dep AND p.end_ms >= :start AND p.end_ms < :end "
            "AND (:version = '' OR p.model_version = :version)"
        )

    def _labels_cte(self) -> str:
        """Each labelled prediction's latest label: its own, or (a shadow copy) the stable
        prediction's it copies, whichever came last."""
        d = self.dialect
        return (
            "WITH labels AS (SELECT prediction_uuid, MAX(id) AS id FROM ("
            "SELECT prediction_uuid, id FROM delayed_metrics "
            "WHERE deployment_id = :dep AND prediction_end_ms >= :start "
            f"AND prediction_end_ms < :end AND {d.has('metrics', 'label')} "
            "UNION ALL SELECT s.shadow_uuid, ld.id FROM shadow_links s "
            "JOIN delayed_metrics ld ON ld.prediction_uuid = s.stable_uuid "
            "WHERE s.deployment_id = :dep AND s.shadow_end_ms >= :start "
            f"AND s.shadow_end_ms < :end AND {d.has('ld.metrics', 'label')}"
            ") own_and_linked GROUP BY prediction_uuid) "
        )

    def _bucket(self) -> str:
        return "((p.end_ms - :start) / :step)"

    def _prediction_counts(self, params: dict[str, Any]) -> dict[tuple[int, str], int]:
        sql = (
            f"SELECT {self._bucket()} AS b, p.model_version AS v, COUNT(*) FROM predictions p "
            f"WHERE {self._sql_filter()} GROUP BY b, v"
        )
        with self.store.read() as session:
            found = session.execute(text(sql), params)
            return {(int(bucket), str(version)): int(n) for bucket, version, n in found}

    def _joined(self) -> str:
        return (
            "FROM predictions p JOIN labels l ON l.prediction_uuid = p.uuid "
            f"JOIN delayed_metrics dm ON dm.id = l.id WHERE {self._sql_filter()}"
        )

    def _confusion(
        self, params: dict[str, Any]
    ) -> list[tuple[int, str, str | None, str | None, int]]:
        d = self.dialect
        sql = (
            self._labels_cte() + f"SELECT {self._bucket()} AS b, p.model_version AS v, "
            f"{d.text('p.metrics', 'out')} AS predicted, "
            f"{d.text('dm.metrics', 'label')} AS actual, COUNT(*) "
            f"{self._joined()} GROUP BY b, v, predicted, actual"
        )
        with self.store.read() as session:
            return [
                (int(b), str(v), pr, ac, int(n))
                for b, v, pr, ac, n in session.execute(text(sql), params)
            ]

    def _regression_sums(self, params: dict[str, Any]) -> list[tuple[Any, ...]]:
        d = self.dialect
        p = d.number("p.metrics", "out")
        a = d.number("dm.metrics", "label")
        eps = 2.220446049250313e-16
        sql = (
            self._labels_cte()
            + f"SELECT b, v, COUNT(*), SUM(ABS(a - pr)), SUM((a - pr) * (a - pr)), "
            f"SUM(ABS(a - pr) / {d.greatest('ABS(a)', str(eps))}), SUM(a), SUM(a * a) FROM ("
            f"SELECT {self._bucket()} AS b, p.model_version AS v, {p} AS pr, {a} AS a "
            f"{self._joined()}) j WHERE pr IS NOT NULL AND a IS NOT NULL GROUP BY b, v"
        )
        with self.store.read() as session:
            return [
                (int(r[0]), str(r[1]), int(r[2]), *(float(x or 0.0) for x in r[3:]))
                for r in session.execute(text(sql), params)
            ]

    def _probability_parts(
        self,
        params: dict[str, Any],
        part: Callable[[tuple[int, str]], parts.PerformancePart],
    ) -> None:
        """Log-loss sums, per-score counts (ROC AUC) and grouped probabilities (estimates).

        Probabilities are tracked as ``{class: p}``.
        """
        d = self.dialect
        actual = d.text("dm.metrics", "label")
        eps = perf.LOG_EPS
        clipped = d.greatest(d.least("j.p_actual", str(1 - eps)), str(eps))
        inner = (
            f"SELECT {self._bucket()} AS b, p.model_version AS v, {actual} AS actual, "
            f"{d.nested_number('p.metrics', 'proba', actual)} AS p_actual {self._joined()}"
        )
        sql = (
            self._labels_cte() + f"SELECT j.b, j.v, COUNT(*), SUM(-LN({clipped})) FROM ({inner}) j "
            "WHERE j.p_actual IS NOT NULL GROUP BY j.b, j.v"
        )
        with self.store.read() as session:
            for bucket, version, n, total in session.execute(text(sql), params):
                part((int(bucket), str(version))).log_loss = [float(n), float(total)]
            classes = self._probability_classes(session, params)
            if not classes:
                return
            # A binary model's AUC needs the positive class only (the other is its mirror).
            scored = classes[1:] if len(classes) == 2 else classes
            for cls in scored:
                score = d.nested_number("p.metrics", "proba", ":cls")
                inner = (
                    f"SELECT {self._bucket()} AS b, p.model_version AS v, "
                    f"{d.round(score, AUC_DIGITS)} AS s, "
                    f"CASE WHEN {actual} = :cls THEN 1 ELSE 0 END AS pos {self._joined()}"
                )
                sql = (
                    self._labels_cte()
                    + f"SELECT j.b, j.v, j.s, SUM(j.pos), COUNT(*) - SUM(j.pos) FROM ({inner}) j "
                    "WHERE j.s IS NOT NULL GROUP BY j.b, j.v, j.s"
                )
                found = session.execute(text(sql), {**params, "cls": cls})
                for bucket, version, s, pos, neg in found:
                    part((int(bucket), str(version))).count_score(cls, float(s), int(pos), int(neg))
            cols = ", ".join(
                d.round(d.nested_number("p.metrics", "proba", f":c{i}"), ESTIMATE_DIGITS)
                + f" AS p{i}"
                for i in range(len(classes))
            )
            group = ", ".join(f"p{i}" for i in range(len(classes)))
            sql = (
                f"SELECT b, v, pred, {group}, COUNT(*) FROM (SELECT {self._bucket()} AS b, "
                f"p.model_version AS v, {d.text('p.metrics', 'out')} AS pred, {cols} "
                f"FROM predictions p WHERE {self._sql_filter()}) q "
                f"WHERE {' AND '.join(f'p{i} IS NOT NULL' for i in range(len(classes)))} "
                f"GROUP BY b, v, pred, {group}"
            )
            binds = {**params, **{f"c{i}": c for i, c in enumerate(classes)}}
            for bucket, version, output, *probs, n in session.execute(text(sql), binds):
                target = part((int(bucket), str(version)))
                if target.classes != classes:
                    target.estimate = parts._remap(target.estimate, target.classes, classes)
                    target.classes = classes
                key = (str(output), tuple(float(x) for x in probs))
                target.estimate[key] = target.estimate.get(key, 0) + int(n)

    def _probability_classes(self, session: Any, params: dict[str, Any]) -> list[str]:
        """The classes named in the tracked probabilities (one prediction's keys), sorted."""
        d = self.dialect
        if d.sqlite:
            sql = (
                "SELECT DISTINCT je.key FROM predictions p, "
                "json_each(p.metrics, '$.\"' || :proba || '\"') je "
                f"WHERE {self._sql_filter()} LIMIT {CLASSIFICATION_MAX_CLASSES + 1}"
            )
        else:
            sql = (
                "SELECT DISTINCT k FROM (SELECT jsonb_object_keys(p.metrics -> :proba) AS k "
                f"FROM predictions p WHERE {self._sql_filter()} "
                "AND jsonb_typeof(p.metrics -> :proba) = 'object') q "
                f"LIMIT {CLASSIFICATION_MAX_CLASSES + 1}"
            )
        if not params.get("proba"):
            return []
        classes = sorted(str(r[0]) for r in session.execute(text(sql), params))
        return classes[:CLASSIFICATION_MAX_CLASSES]

    # -- versions scored on the reference -----------------------------------------------------

    def scoring_reference(self, name: str, version: str) -> Reference:
        """The reference a version is scored on: its own, else the deployment's."""
        try:
            return self.reference(name, version)
        except NotFound:
            return self.reference(name)

    def score_version(
        self, name: str, version: str, *, on_version: str | None = None
    ) -> dict[str, Any]:
        """``version``'s score on the reference of ``on_version`` (default: its own): the stored
        one, else computed now (the model loaded and run on the reference) and stored.

        Background work (the platform's summaries, a canary's start): reports only read stored
        scores. Raises 404 when there is no reference data.
        """
        deployment = self._deployment(name)
        reference = self.scoring_reference(name, on_version or version)
        return self._score(deployment, version, reference)

    def version_score(
        self, name: str, version: str, *, on_version: str | None = None
    ) -> dict[str, Any] | None:
        """The stored score of ``version`` on the reference of ``on_version`` (default: its
        own); ``None`` while it is not scored (or there is no reference data)."""
        deployment = self._deployment(name)
        with self.store.read() as session:
            references = _reference_ids(session, deployment.id)
            reference_id = _resolve_reference(references, on_version or version)
            if reference_id is None:
                return None
            row = session.get(VersionScoreRow, (reference_id, version))
            return None if row is None else _score_view(row)

    def score_versions(self, name: str, versions: Iterable[str]) -> None:
        """Score each of ``versions`` that has no stored score on its reference yet."""
        for version in sorted(set(versions)):
            if version and self.version_score(name, version) is None:
                try:
                    self.score_version(name, version)
                except NotFound:
                    return  # no reference data (yet)

    def _score(
        self, deployment: DeploymentRow, version: str, reference: Reference
    ) -> dict[str, Any]:
        key = (reference.row.id, version)
        with self._scoring:  # one at a time: each loads a model
            with self.store.read() as session:
                row = session.get(VersionScoreRow, key)
                if row is not None:
                    return _score_view(row)
            found = self._compute_score(deployment, version, reference)
            for note in found.notes:
                log.info("version %s of %s: %s", version, deployment.name, note)
            row = VersionScoreRow(
                reference_id=reference.row.id,
                model_version=version,
                deployment_id=deployment.id,
                status=found.status,
                reason=found.reason or "; ".join(found.notes),
                estimator=found.estimator,
                metrics=found.metrics,
                rows=found.rows,
                scored_ms=now_ms(),
            )
            view = _score_view(row)
            try:
                with self.store.write() as session:
                    session.merge(row)
            except Exception as exc:  # the reference replaced meanwhile: scored again later
                log.warning("could not store the score of version %s: %s", version, exc)
            return view

    def _compute_score(
        self, deployment: DeploymentRow, version: str, reference: Reference
    ) -> scoring.Score:
        """Run ``version``'s model (scikit-learn models only: no user code runs in the control
        plane) on the reference and score it against the reference's labels."""
        if deployment.source != "registry":
            return scoring.Score.unavailable("the deployment does not serve a registered model")
        if reference.row.target_column is None:
            return scoring.Score.unavailable("the reference data has no label column")
        try:
            import mlflow

            mlflow.set_tracking_uri(self.registry.tracking_uri)  # for the artifact store
            source = self.registry.model_source(deployment.model_name, version)
            model = mlflow.sklearn.load_model(source)
        except Exception as exc:  # not an sklearn model, or gone from the registry
            return scoring.Score.unavailable(
                f"version {version} cannot be loaded as a scikit-learn model: {exc}"
            )
        return scoring.score(
            model, reference.frame, reference.features, reference.row.target_column
        )

    # -- helpers ------------------------------------------------------------------------------

    def _deployment(self, name: str) -> DeploymentRow:
        with self.store.read() as session:
            return self._deployment_in(session, name)

    @staticmethod
    def _deployment_in(session: Any, name: str) -> DeploymentRow:
        row = session.scalars(select(DeploymentRow).where(DeploymentRow.name == name)).one_or_none()
        if row is None:
            raise NotFound(f"deployment {name!r} not found", details={"deployment": name})
        return row  # type: ignore[no-any-return]


class _PartCache:
    """Decoded summaries by what identifies their stored row's content (deployment, kind,
    bucket, version, signature, counts, build time), least recently used out first.

    A stored summary never changes under the same identity (a rebuild has a new build time),
    and callers only ever merge cached parts into fresh ones, never modify them.
    """

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self._entries: OrderedDict[tuple[Any, ...], tuple[Any, int]] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def get(self, key: tuple[Any, ...]) -> Any:
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return None
            self._entries.move_to_end(key)
            return entry[0]

    def put(self, key: tuple[Any, ...], part: Any, size: int) -> None:
        with self._lock:
            old = self._entries.pop(key, None)
            if old is not None:
                self._bytes -= old[1]
            self._entries[key] = (part, size)
            self._bytes += size
            while self._bytes > self.max_bytes and self._entries:
                _, (_, dropped) = self._entries.popitem(last=False)
                self._bytes -= dropped

    def __len__(self) -> int:
        return len(self._entries)


def _reference_ids(session: Any, deployment_id: str) -> dict[str, str]:
    """A deployment's reference rows: model version ("" for the deployment's) -> id."""
    return {
        version: reference_id
        for version, reference_id in session.execute(
            select(ReferenceDataRow.model_version, ReferenceDataRow.id).where(
                ReferenceDataRow.deployment_id == deployment_id
            )
        )
    }


def _resolve_reference(references: Mapping[str, str], version: str) -> str | None:
    """The reference a version is scored on (:meth:`AnalysisService.scoring_reference`): its
    own, else the deployment's, else the only one there is."""
    found = references.get(version) or references.get("")
    if found is None and len(references) == 1:
        found = next(iter(references.values()))
    return found


def _score_view(row: VersionScoreRow) -> dict[str, Any]:
    return {
        "model_version": row.model_version,
        "reference_id": row.reference_id,
        "status": row.status,
        "reason": row.reason,
        "estimator": row.estimator or None,
        "metrics": row.metrics or None,
        "rows": row.rows,
    }


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


def _window(start_ms: int | None, end_ms: int | None) -> tuple[int, int]:
    """The window asked for; by default the last day, from a five-minute boundary."""
    end_ms = now_ms() + 1 if end_ms is None else end_ms
    if start_ms is None:
        start_ms = (end_ms - 86_400_000) // parts.BUCKET_MS * parts.BUCKET_MS
    if end_ms <= start_ms:
        raise ValidationFailed("end must be after start", details={"field": "end"})
    return start_ms, end_ms


def _step(start_ms: int, end_ms: int, step_ms: int | None) -> int:
    """The width of a range's windows: ``step_ms``, or the whole range; at most
    ``MAX_WINDOWS`` of them."""
    span = end_ms - start_ms
    step_ms = step_ms or span
    if step_ms <= 0:
        raise ValidationFailed("step must be positive", details={"field": "step"})
    if math.ceil(span / step_ms) > MAX_WINDOWS:
        raise ValidationFailed(
            f"{math.ceil(span / step_ms)} windows is too many (at most {MAX_WINDOWS}); "
            "use a larger step",
            details={"field": "step"},
        )
    return step_ms


SIGNATURE_NUMERIC = frozenset({"double", "float", "long", "integer"})
"""MLflow column types read as numbers; the others (string, boolean, binary...) as categories."""


def _profile(values: pd.Series, plan: parts.ColumnPlan) -> data_quality.ColumnProfile:
    """What data quality compares a window's column with: the reference column ``values``."""
    conformed, _ = _conform(values, plan.kind)
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


def _signature_profiles(
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


def _quality_plan(profile: data_quality.ColumnProfile) -> parts.ColumnPlan:
    """How a column without reference data is summarised: one bin for numbers."""
    if profile.kind == "numeric":
        return parts.ColumnPlan("numeric", (-math.inf, math.inf))
    return parts.ColumnPlan("categorical")


def _empty_window(
    start_ms: int, step_ms: int, bucket: int, version: str, count: int
) -> dict[str, Any]:
    return {
        "start": start_ms + bucket * step_ms,
        "end": start_ms + (bucket + 1) * step_ms,
        "model_version": version,
        "predictions": count,
        "labelled": 0,
        "realised": None,
        "estimated": None,
    }


def _rows(
    metrics: Sequence[Mapping[str, Any]], input_key: str, output_key: str
) -> tuple[list[dict[str, Any]], list[Any], int]:
    """Feature records and outputs from tracked metrics; records of another shape are skipped."""
    inputs: list[dict[str, Any]] = []
    outputs: list[Any] = []
    skipped = 0
    for m in metrics:
        given = m.get(input_key)
        out = m.get(output_key)
        if isinstance(given, dict):
            inputs.append(given)
            if out is not None:
                outputs.append(out[0] if isinstance(out, list) and len(out) == 1 else out)
        elif isinstance(given, list) and given and all(isinstance(g, dict) for g in given):
            inputs.extend(given)
            if isinstance(out, list) and len(out) == len(given):
                outputs.extend(out)
        else:
            skipped += 1
    return inputs, outputs, skipped


def _conform(values: pd.Series, kind: str) -> tuple[pd.Series, int]:
    """Values fit for a column of ``kind``, and how many did not fit (now missing).

    Numeric columns take numbers (and numeric text); categorical columns take scalars, compared
    as text (``1`` and ``"1"`` are one category). Lists, objects and the like count as invalid
    rather than failing the report.
    """
    import pandas as pd

    present = values.notna()
    if kind == "numeric":
        if pd.api.types.is_numeric_dtype(values.dtype) and not pd.api.types.is_bool_dtype(
            values.dtype
        ):
            return values.astype(float), 0  # already numbers (a reference column, say)

        def number(v: Any) -> Any:
            if isinstance(v, bool) or not isinstance(v, int | float | str):
                return None
            return v

        converted = pd.to_numeric(values.map(number), errors="coerce")
        return converted, int((converted.isna() & present).sum())
    if pd.api.types.infer_dtype(values, skipna=True) in ("string", "empty"):
        return values, 0  # text already (fast path for reference columns)
    scalar = values.map(lambda v: str(v) if _scalar(v) else None)
    return scalar, int((scalar.isna() & present).sum())


def _scalar(value: Any) -> bool:
    return isinstance(value, str | int | float | bool) and not (
        isinstance(value, float) and not math.isfinite(value)
    )


def _few_integers(values: pd.Series) -> bool:
    import numpy as np

    clean = values.dropna()
    if clean.empty or not np.issubdtype(clean.dtype, np.number):
        return False
    return bool((clean == np.round(clean)).all() and clean.nunique() <= 20)


def _infer_task(labels: set[str]) -> str:
    if len(labels) > CLASSIFICATION_MAX_CLASSES:
        return "regression"
    for label in labels:
        try:
            value = float(label)
        except ValueError:
            return "classification"
        if not value.is_integer():
            return "regression"
    return "classification"


def _guess_target(frame: pd.DataFrame, signature: Mapping[str, Any] | None) -> str | None:
    """The label column of logged training data: the one column the model does not take; for
    a signature without column names (none, or tensors) a column of a usual label name."""
    inputs = (signature or {}).get("inputs") or []
    names = {
        c.get("name")
        for c in inputs
        if isinstance(c, dict) and c.get("name") and c.get("type") != "tensor"
    }
    if not names:
        for candidate in ("target", "label", "y", "actual_result"):
            if candidate in frame.columns:
                return candidate
        return None
    extra = [c for c in frame.columns if c not in names]
    return extra[0] if len(extra) == 1 else None


def _whole_buckets(start_ms: int, end_ms: int) -> tuple[int, int]:
    """Where the whole five-minute buckets inside ``[start, end)`` begin and end."""
    step = parts.BUCKET_MS
    return -(-start_ms // step) * step, end_ms // step * step


def _whole_hours(first: int, last: int, origin: int, step_ms: int, now: int) -> list[int]:
    """The hours inside ``[first, last)`` that are over and lie inside one window of a grid
    of ``step_ms`` from ``origin``: those an hourly summary can stand for."""
    hour = parts.HOUR_MS
    return [
        at
        for at in range(-(-first // hour) * hour, min(last, now) - hour + 1, hour)
        if (at - origin) // step_ms == (at + hour - 1 - origin) // step_ms
    ]


def _gaps(first: int, last: int, hours: Sequence[int], span: int) -> list[tuple[int, int]]:
    """The parts of ``[first, last)`` outside the spans starting at ``hours`` (sorted)."""
    gaps: list[tuple[int, int]] = []
    at = first
    for lo in hours:
        if lo > at:
            gaps.append((at, lo))
        at = lo + span
    if last > at:
        gaps.append((at, last))
    return gaps


def _runs(buckets: Sequence[int], step: int) -> list[tuple[int, int]]:
    """Sorted bucket starts as ``[lo, hi)`` runs of consecutive buckets."""
    runs: list[tuple[int, int]] = []
    for bucket in buckets:
        if runs and runs[-1][1] == bucket:
            runs[-1] = (runs[-1][0], bucket + step)
        else:
            runs.append((bucket, bucket + step))
    return runs


def _column_plan(reference: pd.Series, kind: str) -> parts.ColumnPlan:
    if kind == "numeric":
        values, _ = _conform(reference, "numeric")
        finite = values[values.notna()]
        finite = finite[finite.abs() != math.inf]
        if len(finite):
            return parts.ColumnPlan("numeric", tuple(float(x) for x in stats.numeric_edges(finite)))
        return parts.ColumnPlan("numeric", (-math.inf, math.inf))
    return parts.ColumnPlan("categorical")


def _frame(inputs: list[dict[str, Any]]) -> pd.DataFrame:
    import pandas as pd

    return pd.DataFrame.from_records(inputs) if inputs else pd.DataFrame()


def _summarise(values: pd.Series, plan: parts.ColumnPlan) -> dict[str, Any]:
    import numpy as np

    present = int(values.notna().sum())
    conformed, invalid = _conform(values, plan.kind)
    missing = len(values) - present
    if plan.kind == "numeric":
        return parts.summarise_numeric(
            conformed.dropna().to_numpy(dtype=np.float64), plan, missing, invalid
        )
    return parts.summarise_categorical(conformed.dropna().tolist(), missing, invalid)


def _drift_part(
    records: Sequence[Mapping[str, Any]], config: MonitoringConfig, plan: DriftPlan
) -> parts.DriftPart:
    """One group of tracked records as a drift summary."""
    import pandas as pd

    inputs, outputs, skipped = _rows(records, config.input_key, config.output_key)
    current = _frame(inputs)
    part = parts.DriftPart(records=len(current), skipped=skipped)
    part.keys = {str(c): int(current[c].notna().sum()) for c in current.columns}
    for column, column_plan in plan.columns.items():
        values = current[column] if column in current.columns else pd.Series([], dtype=float)
        part.columns[column] = _summarise(values, column_plan)
    if plan.output is not None:
        kept = pd.Series([o for o in outputs if _scalar(o)], dtype=object)
        output_plan = plan.output[1]
        if output_plan.kind == "categorical":
            kept = kept.astype(str)
        part.output = _summarise(kept, output_plan)
    return part


def _drift_inputs(config: MonitoringConfig) -> tuple[Any, ...]:
    """The settings a drift summary depends on (with the reference): where the features and the
    output are tracked, which columns are summarised and the kinds forced on them."""
    kinds = {c: o.kind for c, o in sorted(config.overrides.items()) if o.kind is not None}
    columns = None if config.columns is None else sorted(set(config.columns))
    return config.input_key, config.output_key, columns, kinds


def _performance_signature(config: MonitoringConfig) -> str:
    return parts.signature(
        config.output_key, config.label_key, config.probability_key, config.task, 1
    )


def _infer_task_from(found: Iterable[parts.PerformancePart]) -> str | None:
    labels: set[str] = set()
    for part in found:
        if part.many_labels:
            return "regression"
        labels.update(actual for _, actual in part.confusion)
    if not labels:
        return None
    return _infer_task(labels)


def _probability_metrics(part: parts.PerformancePart) -> dict[str, Any]:
    """Log loss and ROC AUC of a window, from its probability sums and per-score counts."""
    out: dict[str, Any] = {}
    n, total = part.log_loss
    if n:
        out["log_loss"] = perf.log_loss_from_sums(total, int(n))
    grids = part.grids()
    if grids:
        aucs = {cls: perf.roc_auc_from_grid(grid[0], grid[1]) for cls, grid in grids.items()}
        if len(part.classes) == 2:
            out["roc_auc"] = aucs.get(part.classes[1])
        else:  # one-vs-rest, macro: as perf.roc_auc_ovr_macro
            defined = [auc for auc in aucs.values() if auc is not None]
            out["roc_auc"] = sum(defined) / len(defined) if defined else None
    return out


def _estimated(
    estimators: Mapping[str, perf.ConfidenceEstimator],
    members: Iterable[tuple[str, parts.PerformancePart]],
) -> dict[str, Any] | None:
    """The estimated metrics of a window from each version's part, each estimated with that
    version's own estimator (the expected confusion matrices add up); ``None`` (unknown) when
    a version in it has none."""
    cells: dict[tuple[str, str], float] = {}
    count = 0
    for version, part in members:
        estimator = estimators.get(version)
        if estimator is None:
            return None
        estimate = _estimate(estimator, part)
        if estimate is None:
            return None
        count += estimate["count"]
        for predicted, row in estimate["confusion"].items():
            for actual, expected in row.items():
                cells[(predicted, actual)] = cells.get((predicted, actual), 0.0) + expected
    metrics = perf.classification_metrics(cells)
    return {
        "count": count,
        **{k: metrics[k] for k in ("accuracy", "precision_macro", "recall_macro", "f1_macro")},
    }


def _estimate(
    estimator: perf.ConfidenceEstimator, part: parts.PerformancePart
) -> dict[str, Any] | None:
    classes = [str(c) for c in estimator.classes]
    entries: list[tuple[str, tuple[float, ...], int]] = []
    if part.classes == classes:
        order = list(range(len(classes)))
    elif set(classes) <= set(part.classes):
        order = [part.classes.index(c) for c in classes]
    else:
        return None  # the tracked probabilities do not name every class the estimator knows
    for (output, probs), n in part.estimate.items():
        vector = tuple(probs[i] for i in order)
        if min(vector) < 0:
            continue  # a prediction without one of the classes
        # What the model predicted; the most probable class when it did not say.
        predicted = (
            output
            if output in classes
            else classes[max(range(len(vector)), key=vector.__getitem__)]
        )
        entries.append((predicted, vector, n))
    return estimator.estimate_binned(entries)
