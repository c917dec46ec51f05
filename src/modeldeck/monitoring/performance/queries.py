"""The SQL that aggregates predictions and their delayed ground truth into performance parts.

Realised performance is computed in the store: per window (``step``) and model version the
statements return prediction counts, a confusion matrix (or regression sums), log-loss sums,
per-score counts for ROC AUC and grouped probabilities for confidence estimation, never the
rows themselves. Each labelled prediction counts with its latest label: its own, or (a shadow
copy) the label of the stable prediction it copies (``shadow_links``). The SQL is written once
for SQLite and PostgreSQL through :class:`~modeldeck.store.jsonsql.Dialect`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import text

from modeldeck.monitoring.config import MonitoringConfig
from modeldeck.monitoring.performance import metrics as perf
from modeldeck.monitoring.summaries import parts
from modeldeck.store import Store
from modeldeck.store.jsonsql import Dialect

AUC_DIGITS = 3
ESTIMATE_DIGITS = 2
CLASSIFICATION_MAX_CLASSES = 50


class PerformanceQueries:
    """Performance aggregates of a deployment's predictions, read from one store."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.dialect = Dialect(store.dialect)

    def aggregate(
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
            "outcol": config.output_column or "",
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

    def _predicted(self, params: dict[str, Any]) -> str:
        """The prediction as text: the tracked output, or its ``output_column``."""
        if params["outcol"]:
            return self.dialect.text_in("p.metrics", "out", "outcol")
        return self.dialect.text("p.metrics", "out")

    def _confusion(
        self, params: dict[str, Any]
    ) -> list[tuple[int, str, str | None, str | None, int]]:
        d = self.dialect
        sql = (
            self._labels_cte() + f"SELECT {self._bucket()} AS b, p.model_version AS v, "
            f"{self._predicted(params)} AS predicted, "
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
        p = (
            d.number_in("p.metrics", "out", "outcol")
            if params["outcol"]
            else d.number("p.metrics", "out")
        )
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
                f"p.model_version AS v, {self._predicted(params)} AS pred, {cols} "
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
