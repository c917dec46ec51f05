"""What the dashboard reads beyond the other control-plane routes.

The latest tracked predictions with their delayed metrics (newest first, which the paged
``read_metrics`` route does not offer), the distribution of the predicted value over time
(counted in SQL, never by pulling the rows), and the tail of a replica's log file. Nothing here
knows of HTTP: :mod:`modeldeck.api.routes_dashboard` serves it.
"""

from __future__ import annotations

import math
import os
import re
from pathlib import Path
from typing import Any

from sqlalchemy import select, text

from modeldeck.errors import ValidationFailed
from modeldeck.store import Store
from modeldeck.store.jsonsql import Dialect
from modeldeck.store.schema import DelayedMetricRow, PredictionRow

MAX_RECENT = 200
TOP_VALUES = 10  # predicted values drawn one by one; the rest are folded into OTHER
OTHER = "__other__"
MISSING = "__missing__"
MAX_POINTS = 2_000
SAMPLE_ROWS = 20_000  # predictions read per distribution; larger ranges are sampled
MAX_GROUPS = 5_000  # (window, value) pairs grouped in full before folding rare values in SQL
MAX_UNION = 400  # windows counted one range each (SQLite allows 500 terms in a compound SELECT)
MAX_LOG_LINES = 5_000
LOG_READ_BYTES = 1 << 20
_STEPS_S = (1, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400)
_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def nice_step_ms(span_ms: int, points: int = 48) -> int:
    """A readable step (1 s, 5 s, ... 1 h, 6 h, 1 d, then whole days) giving about ``points``."""
    wanted = span_ms / points
    for step in _STEPS_S:
        if step * 1000 >= wanted:
            return step * 1000
    return int(math.ceil(wanted / 86_400_000) * 86_400_000)


class DashboardQueries:
    """Read-only queries over the store for the dashboard's model-metrics tab."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.sql = Dialect(store.dialect)

    def recent_predictions(
        self, deployment_id: str, limit: int = 20, model_version: str | None = None
    ) -> list[dict[str, Any]]:
        """The ``limit`` latest predictions, newest first, each with its merged delayed metrics.

        ``metrics`` is what was tracked with the prediction; ``delayed`` what arrived later
        (later values of a key win, as in ``read_metrics``) and ``delayed_at`` when the last of
        it arrived (null when nothing has).
        """
        limit = max(1, min(limit, MAX_RECENT))
        query = select(PredictionRow).where(PredictionRow.deployment_id == deployment_id)
        if model_version:
            query = query.where(PredictionRow.model_version == model_version)
        query = query.order_by(PredictionRow.end_ms.desc(), PredictionRow.uuid.desc()).limit(limit)
        delayed: dict[str, tuple[dict[str, Any], int]] = {}
        with self.store.read() as session:
            rows = list(session.scalars(query))
            if rows:
                found = session.execute(
                    select(DelayedMetricRow.prediction_uuid, DelayedMetricRow.ts_ms,
                           DelayedMetricRow.metrics)
                    .where(DelayedMetricRow.prediction_uuid.in_([r.uuid for r in rows]))
                    .order_by(DelayedMetricRow.ts_ms, DelayedMetricRow.id)
                )  # fmt: skip
                for uuid, ts_ms, metrics in found:
                    merged = delayed.get(uuid, ({}, 0))[0]
                    merged.update(metrics or {})
                    delayed[uuid] = (merged, int(ts_ms))
        return [
            {
                "uuid": row.uuid,
                "model_version": row.model_version,
                "replica": row.replica,
                "start_ms": row.start_ms,
                "end_ms": row.end_ms,
                "metrics": row.metrics,
                "delayed": delayed[row.uuid][0] if row.uuid in delayed else {},
                "delayed_at": delayed[row.uuid][1] if row.uuid in delayed else None,
            }
            for row in rows
        ]

    def prediction_distribution(
        self,
        deployment_id: str,
        start_ms: int,
        end_ms: int,
        step_ms: int | None = None,
        key: str = "output",
        model_version: str | None = None,
        top: int = TOP_VALUES,
        max_rows: int = SAMPLE_ROWS,
    ) -> dict[str, Any]:
        """How the tracked ``key`` (the prediction) is distributed in each window.

        ``categorical``: a count per value (values compare as JSON text, as the performance
        report's classes do); the ``top`` most frequent values of the range are kept and the
        rest counted as ``__other__``, records without the key as ``__missing__``.
        ``numeric`` (more than ``top`` distinct values, all numbers): count, mean, minimum and
        maximum per window. Every window of the range has a point, so charts share one axis.

        ``count`` is exact. A range of more than ``max_rows`` predictions is read from a sample
        of about ``max_rows`` of them, spread over the range (on SQLite by a hash of the row
        number, on PostgreSQL by the random bits of the UUIDs, as drift reports sample): each
        window's count is then shared out in the proportions of its sampled values, and
        ``sampled`` says so.
        """
        if end_ms <= start_ms:
            raise ValidationFailed("end must be after start", details={"field": "end"})
        span = end_ms - start_ms
        step_ms = step_ms or nice_step_ms(span)
        if step_ms <= 0:
            raise ValidationFailed("step must be positive", details={"field": "step"})
        if span / step_ms > MAX_POINTS:
            raise ValidationFailed(
                f"{math.ceil(span / step_ms)} points is too many; use a larger step (at most "
                f"{MAX_POINTS} points)",
                details={"field": "step"},
            )
        value = self.sql.text("metrics", "key")
        number = self.sql.number("metrics", "key")
        slot = "(end_ms - ((end_ms - :start) % :step))"
        base = "deployment_id = :deployment"
        params: dict[str, Any] = {
            "deployment": deployment_id, "key": key, "start": start_ms, "end": end_ms,
            "step": step_ms,
        }  # fmt: skip
        if model_version:
            base += " AND model_version = :version"
            params["version"] = model_version
        where = f"{base} AND end_ms >= :start AND end_ms < :end"
        slots = list(range(start_ms, end_ms, step_ms))
        with self.store.read() as session:

            def rows(sql: str, extra: dict[str, Any] | None = None) -> list[Any]:
                return list(session.execute(text(sql), {**params, **(extra or {})}).all())

            # Exact counts per window, from the index alone.
            if len(slots) <= MAX_UNION:  # a range count per window: no sort
                # (literal bounds only: with a second pair SQLite may scan from :start each time)
                found = rows(" UNION ALL ".join(
                    f"SELECT {t}, COUNT(*) FROM predictions WHERE {base} "
                    f"AND end_ms >= {t} AND end_ms < {min(t + step_ms, end_ms)}"
                    for t in slots
                ))  # fmt: skip
            else:
                found = rows(f"SELECT {slot}, COUNT(*) FROM predictions WHERE {where} GROUP BY 1")
            totals = {int(t): int(n) for t, n in found if n}
            predictions = sum(totals.values())
            sampled = predictions > max_rows
            if sampled:
                cut = math.ceil(65_536 * max_rows / predictions)
                if self.store.dialect == "sqlite":
                    # Row numbers scrambled by a multiplicative hash: decided from the index
                    # alone, without reading the rows that are left out.
                    where += " AND ((rowid * 2654435761) % 65536) < :cut"
                    params["cut"] = cut
                else:  # the UUID's last four hex digits are random (v4 and v7 alike)
                    where += " AND substr(uuid, 33, 4) < :cut"
                    params["cut"] = f"{cut:04x}"
            grouped = rows(
                f"SELECT {slot}, {value}, COUNT(*) FROM predictions WHERE {where} "
                "GROUP BY 1, 2 LIMIT :limit",
                {"limit": MAX_GROUPS + 1},
            )
            seen: dict[str | None, int] = {}
            for _, v, n in grouped:
                seen[v] = seen.get(v, 0) + int(n)
            named = sorted((v for v in seen if v is not None), key=lambda v: (-seen[v], v))
            complete = len(grouped) <= MAX_GROUPS
            if len(named) > top and all(_is_number(v) for v in named):
                found = rows(
                    f"SELECT {slot}, COUNT({number}), AVG({number}), MIN({number}), "
                    f"MAX({number}) FROM predictions WHERE {where} GROUP BY 1"
                )
                band = {int(t): (int(n), mean, low, high) for t, n, mean, low, high in found}
                points: list[dict[str, Any]] = []
                for t in slots:
                    _, mean, low, high = band.get(t, (0, None, None, None))
                    points.append({"t": t, "count": totals.get(t, 0), "mean": _float(mean),
                                   "min": _float(low), "max": _float(high)})  # fmt: skip
                kind, values = "numeric", []
            else:
                if not complete:  # too many (window, value) pairs: find the leaders first
                    leaders = rows(
                        f"SELECT {value}, COUNT(*) FROM predictions WHERE {where} "
                        "GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT :top",
                        {"top": top + 1},
                    )
                    named = [v for v, _ in leaders if v is not None]
                    label = value
                    if len(named) > top:  # and fold the rest in SQL
                        marks = ", ".join(f":keep{i}" for i in range(top))
                        label = (
                            f"CASE WHEN {value} IS NULL THEN NULL WHEN {value} IN ({marks}) "
                            f"THEN {value} ELSE :other END"
                        )
                    folded = {f"keep{i}": v for i, v in enumerate(named[:top])}
                    grouped = rows(
                        f"SELECT {slot}, {label}, COUNT(*) FROM predictions WHERE {where} "
                        "GROUP BY 1, 2",
                        {**folded, "other": OTHER},
                    )
                kept = set(named[:top])
                points = self._shares(grouped, totals, slots, kept)
                found_values = {v for p in points for v in p["counts"]}
                values = sorted(found_values & kept, key=_value_order)
                values += sorted(found_values - kept)
                kind = "categorical" if values else "empty"
        return {
            "key": key, "start": start_ms, "end": end_ms, "step": step_ms,
            "model_version": model_version, "kind": kind, "values": values,
            "predictions": predictions, "sampled": sampled, "points": points,
        }  # fmt: skip

    @staticmethod
    def _shares(
        grouped: list[Any], totals: dict[int, int], slots: list[int], kept: set[str]
    ) -> list[dict[str, Any]]:
        """Counts per window and value (other than ``kept``: ``__other__``); from a sample,
        each window's exact count shared out in the sample's proportions."""
        counts: dict[int, dict[str, int]] = {}
        for t, v, n in grouped:
            name = MISSING if v is None else str(v) if v in kept or v == OTHER else OTHER
            per = counts.setdefault(int(t), {})
            per[name] = per.get(name, 0) + int(n)
        points = []
        for t in slots:
            per = counts.get(t, {})
            total, seen = totals.get(t, 0), sum(per.values())
            if seen and seen != total:
                per = {v: round(total * n / seen) for v, n in per.items()}
            points.append({"t": t, "count": total, "counts": per})
        return points


def _is_number(value: Any) -> bool:
    try:
        return math.isfinite(float(value))
    except (TypeError, ValueError):
        return False


def _float(value: Any) -> float | None:
    return None if value is None else float(value)


def _value_order(value: str) -> tuple[int, float, str]:
    """Numbers in numeric order first, then text."""
    return (0, float(value), value) if _is_number(value) else (1, 0.0, value)


def tail_lines(path: Path, lines: int = 200, max_bytes: int = LOG_READ_BYTES) -> dict[str, Any]:
    """The last ``lines`` lines of a log file (reading at most ``max_bytes`` from its end).

    Terminal colour codes are removed; invalid UTF-8 is replaced. A missing file is reported
    as ``exists: false`` with no lines.
    """
    lines = max(1, min(lines, MAX_LOG_LINES))
    try:
        with open(path, "rb") as f:
            stat = os.fstat(f.fileno())
            offset = max(0, stat.st_size - max_bytes)
            f.seek(offset)
            data = f.read(max_bytes)
    except FileNotFoundError:
        return {"exists": False, "lines": [], "truncated": False, "size_bytes": 0,
                "modified_ms": None}  # fmt: skip
    found = data.decode("utf-8", "replace").splitlines()
    if offset and found:
        found = found[1:]  # the first line read is most likely cut
    return {
        "exists": True,
        "lines": [_ANSI.sub("", line) for line in found[-lines:]],
        "truncated": offset > 0 or len(found) > lines,
        "size_bytes": stat.st_size,
        "modified_ms": int(stat.st_mtime * 1000),
    }
