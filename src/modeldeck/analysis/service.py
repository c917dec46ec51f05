"""Drift and performance of a deployment over a time window, per model version.

* **Drift** compares the inputs (and outputs) tracked in a window with the deployment's
  reference data, column by column (:mod:`modeldeck.analysis.stats`). Windows with more than
  ``max_rows`` predictions are measured on a uniform sample of about ``max_rows`` of them,
  chosen by the random bits of their UUIDs, and the report says so.
* **Realised performance** joins predictions with their delayed ground truth and aggregates in
  the store: SQL returns a confusion matrix (or regression sums) per window and version, never
  the rows themselves (:mod:`modeldeck.analysis.performance` turns those into metrics).
* **Estimated performance** (classifiers that track probabilities): a
  :class:`~modeldeck.analysis.performance.ConfidenceEstimator` calibrated on labelled reference
  data turns each window's predicted probabilities (grouped in SQL) into an expected confusion
  matrix.
"""

from __future__ import annotations

import logging
import math
import time
import uuid as uuidlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import delete, func, select, text

from modeldeck.errors import ModeldeckError, NotFound, ValidationFailed
from modeldeck.monitoring.model_metrics import now_ms
from modeldeck.store import Store
from modeldeck.store.schema import DeploymentRow, PredictionRow, ReferenceDataRow

from . import performance as perf
from . import reference as ref
from . import stats
from .sql import Dialect

if TYPE_CHECKING:
    import pandas as pd

    from modeldeck.registry import Registry

log = logging.getLogger(__name__)

MAX_WINDOWS = 500
AUC_DIGITS = 3
ESTIMATE_DIGITS = 2
CLASSIFICATION_MAX_CLASSES = 50
REFETCH_SECONDS = 600.0


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
    top_k: int = Field(default=20, ge=1, le=1000, description="Categories kept per column.")
    max_rows: int = Field(
        default=200_000, ge=1000, le=10_000_000, description="Rows used for drift per window."
    )


@dataclass
class Reference:
    frame: pd.DataFrame
    row: ReferenceDataRow

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
            "estimator": self.row.estimator is not None,
            "created_at": self.row.created_at.isoformat() if self.row.created_at else None,
        }


class AnalysisService:
    def __init__(self, store: Store, registry: Registry) -> None:
        self.store = store
        self.registry = registry
        self.dialect = Dialect(store.dialect)
        self._fetch_failed: dict[tuple[str, str], float] = {}

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
            row.monitoring = config.model_dump(exclude_defaults=True)
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
        estimator = self._fit_estimator(deployment, frame, target_column)
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
                estimator=estimator,
                data=data,
            )
            session.add(row)
            session.flush()
            session.refresh(row)
        return Reference(frame, row).summary()

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
        return Reference(ref.from_parquet(row.data), row)

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
        sample: bool = True,
    ) -> dict[str, Any]:
        """Data drift of each monitored column, dataset drift, and prediction drift."""
        import pandas as pd

        start_ms, end_ms = _window(start_ms, end_ms)
        deployment = self._deployment(name)
        config = MonitoringConfig.model_validate(deployment.monitoring or {})
        reference = self.reference(name, model_version)
        features = list(columns or config.columns or reference.features)
        unknown = [c for c in features if c not in reference.frame.columns]
        if unknown:
            raise ValidationFailed(
                f"columns not in the reference data: {', '.join(unknown)}",
                details={"field": "columns"},
            )
        metrics, total, used = self._window_metrics(
            deployment.id, start_ms, end_ms, model_version, config.max_rows if sample else None
        )
        inputs, outputs, skipped = _rows(metrics, config.input_key, config.output_key)
        current = pd.DataFrame.from_records(inputs) if inputs else pd.DataFrame()
        missing = [c for c in features if c not in current.columns]
        report: dict[str, Any] = {
            "deployment": name,
            "model_version": model_version,
            "start": start_ms,
            "end": end_ms,
            "reference": reference.summary(),
            "predictions": total,
            "predictions_used": used,
            "sampled": used < total,
            "current_rows": len(current),
            "skipped_records": skipped,
            "missing_columns": missing if len(current) else [],
            "unmonitored_columns": [c for c in current.columns if c not in features],
        }
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
        report["prediction"] = self._prediction_drift(reference, outputs, config)
        return report

    def _prediction_drift(
        self, reference: Reference, outputs: list[Any], config: MonitoringConfig
    ) -> dict[str, Any] | None:
        import pandas as pd

        column = reference.row.prediction_column or reference.row.target_column
        if column is None or not outputs:
            return None
        values = pd.Series([o for o in outputs if _scalar(o)])
        if values.empty:
            return None
        baseline = reference.frame[column]
        kind = stats.column_kind(baseline)
        if kind == "categorical" or _few_integers(baseline):
            kind = "categorical"
            baseline = baseline.astype(str)
            values = values.astype(str)
        values, bad = _conform(values, kind)
        result = stats.column_drift(
            config.output_key, baseline, values, kind=kind, top_k=config.top_k
        ).to_dict()
        result["reference_column"] = column
        result["invalid_values"] = bad
        return result

    def _window_metrics(
        self,
        deployment_id: str,
        start_ms: int,
        end_ms: int,
        model_version: str | None,
        max_rows: int | None,
    ) -> tuple[list[dict[str, Any]], int, int]:
        """The tracked metrics of a window's predictions: (metrics, total, used)."""
        where = [
            PredictionRow.deployment_id == deployment_id,
            PredictionRow.end_ms >= start_ms,
            PredictionRow.end_ms < end_ms,
        ]
        if model_version:
            where.append(PredictionRow.model_version == model_version)
        with self.store.read() as session:
            total = int(
                session.scalar(select(func.count()).select_from(PredictionRow).where(*where)) or 0
            )
            query = select(PredictionRow.metrics).where(*where)
            if max_rows is not None and total > max_rows:
                # The last two hex digits of a UUID are random (v4 and v7 alike): keep those
                # below a cut-off for a uniform sample of about max_rows predictions.
                cut = math.ceil(256 * max_rows / total)
                if cut < 256:
                    query = query.where(func.substr(PredictionRow.uuid, 35, 2) < f"{cut:02x}")
            metrics = list(session.scalars(query))
        return metrics, total, len(metrics)

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
        """
        start_ms, end_ms = _window(start_ms, end_ms)
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
        deployment = self._deployment(name)
        config = MonitoringConfig.model_validate(deployment.monitoring or {})
        params = {
            "dep": deployment.id,
            "start": start_ms,
            "end": end_ms,
            "step": step_ms,
            "version": model_version or "",
            "out": config.output_key,
            "label": config.label_key,
            "proba": config.probability_key or "",
        }
        v = "p.model_version" if by_version else "''"
        totals = self._prediction_counts(params, v)
        task: str | None = config.task
        confusion_rows: list[tuple[int, str, str | None, str | None, int]] = []
        if task != "regression":
            confusion_rows = self._confusion(params, v)
            labels = {r[3] for r in confusion_rows if r[3] is not None}
            if task is None:
                task = _infer_task(labels)
        windows: dict[tuple[int, str], dict[str, Any]] = {}
        for (bucket, version), count in totals.items():
            windows[(bucket, version)] = _empty_window(start_ms, step_ms, bucket, version, count)
        if task == "regression":
            for bucket, version, *sums in self._regression_sums(params, v):
                window = windows.setdefault(
                    (bucket, version), _empty_window(start_ms, step_ms, bucket, version, 0)
                )
                window["realised"] = perf.regression_metrics(*sums)
                window["labelled"] = int(sums[0])
        else:
            grouped: dict[tuple[int, str], dict[tuple[str, str], int]] = {}
            for bucket, version, predicted, actual, count in confusion_rows:
                if predicted is None or actual is None:
                    continue
                cells = grouped.setdefault((bucket, version), {})
                cells[(predicted, actual)] = cells.get((predicted, actual), 0) + count
            extras = self._probability_metrics(params, v) if config.probability_key else {}
            for key, cells in grouped.items():
                window = windows.setdefault(
                    key, _empty_window(start_ms, step_ms, key[0], key[1], 0)
                )
                realised = perf.classification_metrics(cells)
                realised.update(extras.get(key, {}))
                window["realised"] = realised
                window["labelled"] = int(sum(cells.values()))
            self._estimate(deployment, params, windows, v)
        for window in windows.values():
            window["label_coverage"] = (
                window["labelled"] / window["predictions"] if window["predictions"] else None
            )
        for window in windows.values():
            window["end"] = min(window["end"], end_ms)  # the last window stops at the range's end
        ordered = sorted(windows.values(), key=lambda w: (w["start"], w["model_version"]))
        return {
            "deployment": name,
            "model_version": model_version,
            "task": task,
            "start": start_ms,
            "end": end_ms,
            "step": step_ms,
            "label_key": config.label_key,
            "windows": ordered,
        }

    def _sql_filter(self) -> str:
        return (
            "p.deployment_id = :dep AND p.end_ms >= :start AND p.end_ms < :end "
            "AND (:version = '' OR p.model_version = :version)"
        )

    def _labels_cte(self) -> str:
        d = self.dialect
        return (
            "WITH labels AS (SELECT prediction_uuid, MAX(id) AS id FROM delayed_metrics "
            f"WHERE deployment_id = :dep AND {d.has('metrics', 'label')} "
            "GROUP BY prediction_uuid) "
        )

    def _bucket(self) -> str:
        return "((p.end_ms - :start) / :step)"

    def _prediction_counts(self, params: dict[str, Any], v: str) -> dict[tuple[int, str], int]:
        sql = (
            f"SELECT {self._bucket()} AS b, {v} AS v, COUNT(*) FROM predictions p "
            f"WHERE {self._sql_filter()} GROUP BY b, v"
        )
        with self.store.read() as session:
            found = session.execute(text(sql), params)
            return {(int(bucket), str(version)): int(n) for bucket, version, n in found}

    def _confusion(
        self, params: dict[str, Any], v: str
    ) -> list[tuple[int, str, str | None, str | None, int]]:
        d = self.dialect
        sql = (
            self._labels_cte() + f"SELECT {self._bucket()} AS b, {v} AS v, "
            f"{d.text('p.metrics', 'out')} AS predicted, "
            f"{d.text('dm.metrics', 'label')} AS actual, "
            "COUNT(*) FROM predictions p JOIN labels l ON l.prediction_uuid = p.uuid "
            "JOIN delayed_metrics dm ON dm.id = l.id "
            f"WHERE {self._sql_filter()} GROUP BY b, v, predicted, actual"
        )
        with self.store.read() as session:
            return [
                (int(b), str(v), pr, ac, int(n))
                for b, v, pr, ac, n in session.execute(text(sql), params)
            ]

    def _regression_sums(self, params: dict[str, Any], v: str) -> list[tuple[Any, ...]]:
        d = self.dialect
        p = d.number("p.metrics", "out")
        a = d.number("dm.metrics", "label")
        eps = 2.220446049250313e-16
        sql = (
            self._labels_cte()
            + f"SELECT b, v, COUNT(*), SUM(ABS(a - pr)), SUM((a - pr) * (a - pr)), "
            f"SUM(ABS(a - pr) / {d.greatest('ABS(a)', str(eps))}), SUM(a), SUM(a * a) FROM ("
            f"SELECT {self._bucket()} AS b, {v} AS v, {p} AS pr, {a} AS a "
            "FROM predictions p JOIN labels l ON l.prediction_uuid = p.uuid "
            f"JOIN delayed_metrics dm ON dm.id = l.id WHERE {self._sql_filter()}) j "
            "WHERE pr IS NOT NULL AND a IS NOT NULL GROUP BY b, v"
        )
        with self.store.read() as session:
            return [
                (int(r[0]), str(r[1]), int(r[2]), *(float(x or 0.0) for x in r[3:]))
                for r in session.execute(text(sql), params)
            ]

    def _probability_metrics(
        self, params: dict[str, Any], v: str
    ) -> dict[tuple[int, str], dict[str, Any]]:
        """Log loss and ROC AUC per window, from probabilities tracked as ``{class: p}``."""
        d = self.dialect
        actual = d.text("dm.metrics", "label")
        eps = perf.LOG_EPS
        clipped = d.greatest(d.least("j.p_actual", str(1 - eps)), str(eps))
        inner = (
            f"SELECT {self._bucket()} AS b, {v} AS v, {actual} AS actual, "
            f"{d.nested_number('p.metrics', 'proba', actual)} AS p_actual "
            "FROM predictions p JOIN labels l ON l.prediction_uuid = p.uuid "
            f"JOIN delayed_metrics dm ON dm.id = l.id WHERE {self._sql_filter()}"
        )
        sql = (
            self._labels_cte() + f"SELECT j.b, j.v, COUNT(*), SUM(-LN({clipped})) FROM ({inner}) j "
            "WHERE j.p_actual IS NOT NULL GROUP BY j.b, j.v"
        )
        out: dict[tuple[int, str], dict[str, Any]] = {}
        with self.store.read() as session:
            for bucket, version, n, total in session.execute(text(sql), params):
                out[(int(bucket), str(version))] = {
                    "log_loss": perf.log_loss_from_sums(float(total), int(n))
                }
            classes = self._probability_classes(session, params)
            per_window: dict[tuple[int, str], dict[str, list[tuple[float, int, int]]]] = {}
            # A binary model's AUC needs the positive class only (the other is its mirror).
            scored = classes[1:] if len(classes) == 2 else classes
            for cls in scored:
                score = d.nested_number("p.metrics", "proba", ":cls")
                inner = (
                    f"SELECT {self._bucket()} AS b, {v} AS v, "
                    f"{d.round(score, AUC_DIGITS)} AS s, "
                    f"CASE WHEN {actual} = :cls THEN 1 ELSE 0 END AS pos "
                    "FROM predictions p JOIN labels l ON l.prediction_uuid = p.uuid "
                    f"JOIN delayed_metrics dm ON dm.id = l.id WHERE {self._sql_filter()}"
                )
                sql = (
                    self._labels_cte()
                    + f"SELECT j.b, j.v, j.s, SUM(j.pos), COUNT(*) - SUM(j.pos) FROM ({inner}) j "
                    "WHERE j.s IS NOT NULL GROUP BY j.b, j.v, j.s"
                )
                found = session.execute(text(sql), {**params, "cls": cls})
                for bucket, version, score, pos, neg in found:
                    key = (int(bucket), str(version))
                    rows = per_window.setdefault(key, {}).setdefault(cls, [])
                    rows.append((float(score), int(pos), int(neg)))
        for key, by_class in per_window.items():
            if len(classes) == 2:
                positive = classes[1]
                auc = perf.roc_auc_from_counts(by_class.get(positive, []))
            else:
                auc = perf.roc_auc_ovr_macro(by_class)
            out.setdefault(key, {})["roc_auc"] = auc
        return out

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

    def _estimate(
        self,
        deployment: DeploymentRow,
        params: dict[str, Any],
        windows: dict[tuple[int, str], dict[str, Any]],
        v: str,
    ) -> None:
        """Estimated performance for every window, when a calibrated estimator exists."""
        if not params.get("proba"):
            return
        with self.store.read() as session:
            rows = {
                r.model_version: r.estimator
                for r in session.scalars(
                    select(ReferenceDataRow).where(ReferenceDataRow.deployment_id == deployment.id)
                )
                if r.estimator
            }
        if not rows:
            return
        d = self.dialect
        for version_key, state in rows.items():
            estimator = perf.ConfidenceEstimator.from_dict(state)
            classes = [str(c) for c in state["classes"]]
            cols = ", ".join(
                d.round(d.nested_number("p.metrics", "proba", f":c{i}"), ESTIMATE_DIGITS)
                + f" AS p{i}"
                for i in range(len(classes))
            )
            group = ", ".join(f"p{i}" for i in range(len(classes)))
            sql = (
                f"SELECT b, v, pred, {group}, COUNT(*) FROM (SELECT {self._bucket()} AS b, "
                f"{v} AS v, {d.text('p.metrics', 'out')} AS pred, {cols} "
                f"FROM predictions p WHERE {self._sql_filter()}) q "
                f"WHERE {' AND '.join(f'p{i} IS NOT NULL' for i in range(len(classes)))} "
                f"GROUP BY b, v, pred, {group}"
            )
            binds = {**params, **{f"c{i}": c for i, c in enumerate(classes)}}
            grouped: dict[tuple[int, str], list[tuple[str, tuple[float, ...], int]]] = {}
            with self.store.read() as session:
                for row in session.execute(text(sql), binds):
                    bucket, version, output, *probs, n = row
                    if version_key and str(version) != version_key:
                        continue
                    vector = tuple(float(x) for x in probs)
                    # What the model predicted; the most probable class when it did not say.
                    predicted = (
                        output
                        if output in classes
                        else classes[max(range(len(vector)), key=vector.__getitem__)]
                    )
                    grouped.setdefault((int(bucket), str(version)), []).append(
                        (predicted, vector, int(n))
                    )
            for key, entries in grouped.items():
                if version_key == "" and key[1] in rows and key[1] != "":
                    continue  # that version has its own estimator
                window = windows.get(key)
                if window is not None:
                    estimate = estimator.estimate_binned(entries)
                    estimate.pop("confusion", None)
                    window["estimated"] = estimate

    def _fit_estimator(
        self, deployment: DeploymentRow, frame: pd.DataFrame, target_column: str | None
    ) -> dict[str, Any] | None:
        """Calibrate a confidence estimator when the model gives probabilities and labels exist."""
        if target_column is None or deployment.source != "registry":
            return None
        features = [c for c in frame.columns if c != target_column]
        try:
            import mlflow

            mlflow.set_tracking_uri(self.registry.tracking_uri)
            model = mlflow.sklearn.load_model(deployment.model_uri)
            if not hasattr(model, "predict_proba"):
                return None
            probabilities = model.predict_proba(frame[features])
            classes = [str(c) for c in model.classes_]
        except Exception as exc:  # not an sklearn model, or it cannot score the reference
            log.info("no confidence estimator for %s: %s", deployment.name, exc)
            return None
        labels = frame[target_column].astype(str).tolist()
        unknown = sorted(set(labels) - set(classes))
        if unknown:
            log.info(
                "no confidence estimator for %s: labels %s are not among the model's classes %s",
                deployment.name,
                unknown[:5],
                classes,
            )
            return None
        estimator = perf.ConfidenceEstimator.fit(probabilities, labels, classes)
        return estimator.to_dict()

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


def _window(start_ms: int | None, end_ms: int | None) -> tuple[int, int]:
    end_ms = now_ms() + 1 if end_ms is None else end_ms
    start_ms = end_ms - 86_400_000 if start_ms is None else start_ms
    if end_ms <= start_ms:
        raise ValidationFailed("end must be after start", details={"field": "end"})
    return start_ms, end_ms


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

        def number(v: Any) -> Any:
            if isinstance(v, bool) or not isinstance(v, int | float | str):
                return None
            return v

        converted = pd.to_numeric(values.map(number), errors="coerce")
        return converted, int((converted.isna() & present).sum())
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
    """The label column of logged training data: the one column the model does not take."""
    inputs = (signature or {}).get("inputs") or []
    names = {c.get("name") for c in inputs if isinstance(c, dict)}
    if not names:
        for candidate in ("target", "label", "y", "actual_result"):
            if candidate in frame.columns:
                return candidate
        return None
    extra = [c for c in frame.columns if c not in names]
    return extra[0] if len(extra) == 1 else None
