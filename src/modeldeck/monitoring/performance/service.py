"""Realised and estimated performance of a deployment per window and model version.

* **Realised performance** joins predictions with their delayed ground truth and aggregates in
  the store (:mod:`modeldeck.monitoring.performance.queries`): a confusion matrix (or
  regression sums) per window and version, never the rows themselves
  (:mod:`modeldeck.monitoring.performance.metrics` turns those into metrics).
* **Estimated performance** (classifiers that track probabilities): each model version's own
  :class:`~modeldeck.monitoring.performance.metrics.ConfidenceEstimator`, calibrated on that
  version's predictions for the labelled reference data
  (:mod:`modeldeck.monitoring.performance.versions`), turns each window's predicted
  probabilities (grouped in SQL) into an expected confusion matrix. A version without one of
  its own has no estimate ("unknown"): another version's calibration is never borrowed.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select

from modeldeck.monitoring.config import MonitoringConfig, find_deployment, performance_signature
from modeldeck.monitoring.performance import metrics as perf
from modeldeck.monitoring.performance.queries import CLASSIFICATION_MAX_CLASSES, PerformanceQueries
from modeldeck.monitoring.reference import reference_ids, resolve_reference
from modeldeck.monitoring.summaries import parts
from modeldeck.monitoring.summaries.store import SummaryStore
from modeldeck.monitoring.windows import report_range, report_step
from modeldeck.records.journal import absorb
from modeldeck.records.model_metrics import now_ms
from modeldeck.store import Store
from modeldeck.store.schema import DeploymentRow, VersionScoreRow


@dataclass(frozen=True)
class PerformanceService:
    """Performance reports, assembled from stored summaries where the windows allow."""

    store: Store
    summaries: SummaryStore
    queries: PerformanceQueries

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
        start_ms, end_ms = report_range(start_ms, end_ms, now_ms=now_ms())
        span = end_ms - start_ms
        step_ms = report_step(start_ms, end_ms, step_ms)
        deployment = find_deployment(self.store, name)
        config = MonitoringConfig.of(deployment)
        # Summaries serve windows made of whole buckets (or one window, whatever its edges).
        aligned = step_ms >= span or (
            start_ms % parts.BUCKET_MS == 0 and step_ms % parts.BUCKET_MS == 0
        )
        per_window: dict[tuple[int, str], parts.PerformancePart] = {}
        # Windows over every version: each version's part too (each has its own estimator).
        members: dict[tuple[int, str], dict[str, parts.PerformancePart]] = {}
        if aligned:
            found, _ = self.summaries.assemble(
                ("performance", "performance/h"),
                deployment,
                performance_signature(config),
                start_ms,
                end_ms,
                lambda lo, hi: self.queries.aggregate(deployment.id, config, lo, hi, hi - lo),
                lambda lo, hi: self.queries.aggregate(
                    deployment.id, config, lo, hi, parts.BUCKET_MS
                ),
                parts.PerformancePart.from_bytes,
                with_labels=True,
                step_ms=step_ms,
            )
            pieces = [((at - start_ms) // step_ms, v, p) for (at, v), p in found.items()]
        else:
            live = self.queries.aggregate(deployment.id, config, start_ms, end_ms, step_ms)
            pieces = [(bucket, v, p) for (bucket, v), p in live.items()]
        for bucket, version, part in pieces:
            if model_version and version != model_version:
                continue
            key = (bucket, version if by_version else "")
            per_window.setdefault(key, parts.PerformancePart()).merge(part)
            if not by_version and part.estimate:
                member = members.setdefault(key, {})
                member.setdefault(version, parts.PerformancePart()).merge(part)
        task = config.task or infer_task_from(per_window.values())
        estimators = self._estimators(deployment) if config.probability_key else {}
        windows = []
        for (bucket, version), part in sorted(per_window.items()):
            window = empty_window(start_ms, step_ms, bucket, version, part.predictions)
            window["end"] = min(window["end"], end_ms)  # the last window stops at the range's end
            if task == "regression":
                if part.regression[0]:
                    window["realised"] = perf.regression_metrics(
                        int(part.regression[0]), *part.regression[1:]
                    )
                    window["labelled"] = int(part.regression[0])
            elif part.confusion:
                realised = perf.classification_metrics(part.confusion)
                realised.update(probability_metrics(part))
                window["realised"] = realised
                window["labelled"] = int(sum(part.confusion.values()))
            if task != "regression" and part.estimate:
                each = [(version, part)] if by_version else members[(bucket, version)].items()
                window["estimated"] = estimated(estimators, each)
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
            references = reference_ids(session, deployment.id)
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
            if estimator and resolve_reference(references, version) == reference_id
        }


def empty_window(
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


def infer_task_from(found: Iterable[parts.PerformancePart]) -> str | None:
    labels: set[str] = set()
    for part in found:
        if part.many_labels:
            return "regression"
        labels.update(actual for _, actual in part.confusion)
    if not labels:
        return None
    return infer_task(labels)


def infer_task(labels: set[str]) -> str:
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


def probability_metrics(part: parts.PerformancePart) -> dict[str, Any]:
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


def estimated(
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
        estimate = estimate_part(estimator, part)
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


def estimate_part(
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
