"""Technical monitoring: request counts, failures, latency, sizes, CPU and memory per replica.

The gateway sees every request to every replica, so it counts them: into Prometheus metrics
(for scrapers) and into fixed 5-second rollups per deployment, version and replica (counts by
status class, a latency histogram, size sums and maxima) that are flushed to the store. Storage
so grows with time and replicas, not with requests. Replica CPU and resident memory are sampled
with psutil at each flush. Queries re-aggregate rollups to any step in SQL and merge histograms
for percentiles.

Rollups and samples older than eight hours are compacted to five-minute rows (counts, sums and
histograms add up exactly; maxima stay maxima; CPU and memory become five-minute means), so a
week's chart reads a few thousand rows instead of a quarter of a million. Steps finer than five
minutes so apply to the last eight hours only: a range reaching further back is answered at
five-minute steps (the answer's ``step`` says which).

Replica events (the autoscaler's "scaled up 2 → 3: 11.5 in flight per replica > target 4") are
stored, so a platform restart keeps them, and answered with the series of their range
(``events``). They are rare (one per scaling), so each is one write; the hourly housekeeping
prunes them after the raw-prediction retention (``MODELDECK_PREDICTION_RETENTION_DAYS``, 30 days
by default), and deleting a deployment deletes its events.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import String, cast, delete, func, insert, literal, select

from modeldeck.errors import ValidationFailed
from modeldeck.store import Store
from modeldeck.store.schema import (
    LATENCY_BOUNDS_MS,
    ReplicaEventRow,
    ReplicaSampleRow,
    RollupRow,
)

BUCKET_MS = 5_000
GATEWAY_REPLICA = -1  # requests refused before reaching a replica (401, 413, 503...)
MAX_POINTS = 2_000
COARSE_MS = 300_000  # the resolution rollups and samples are compacted to
COMPACT_AFTER_MS = 8 * 3_600_000  # ... once they are this old
_COMPACT_CHUNK_MS = 3_600_000  # the time range one compaction transaction rewrites


def _class(status: int) -> str:
    return f"{status // 100}xx"


def latency_bucket(ms: float) -> int:
    for i, bound in enumerate(LATENCY_BOUNDS_MS):
        if ms <= bound:
            return i
    return len(LATENCY_BOUNDS_MS)


@dataclass
class _Bucket:
    requests: int = 0
    status: dict[str, int] = field(default_factory=lambda: {"2xx": 0, "4xx": 0, "5xx": 0})
    latency_sum_ms: float = 0.0
    latency_max_ms: float = 0.0
    hist: list[int] = field(default_factory=lambda: [0] * (len(LATENCY_BOUNDS_MS) + 1))
    req_bytes_sum: int = 0
    req_bytes_max: int = 0
    resp_bytes_sum: int = 0
    resp_bytes_max: int = 0


class RequestRollups:
    """In-memory 5-second buckets, keyed by deployment, version and replica, until flushed."""

    def __init__(self) -> None:
        self._buckets: dict[tuple[str, str, int, int], _Bucket] = {}
        self._lock = threading.Lock()

    def record(
        self,
        deployment_id: str,
        version: str,
        replica: int | None,
        status: int,
        seconds: float,
        request_bytes: int,
        response_bytes: int,
    ) -> None:
        ms = seconds * 1000.0
        start = int(time.time() * 1000) // BUCKET_MS * BUCKET_MS
        key = (deployment_id, version, GATEWAY_REPLICA if replica is None else replica, start)
        with self._lock:
            bucket = self._buckets.get(key)
            if bucket is None:
                bucket = self._buckets[key] = _Bucket()
            bucket.requests += 1
            cls = _class(status)
            bucket.status[cls] = bucket.status.get(cls, 0) + 1
            bucket.latency_sum_ms += ms
            bucket.latency_max_ms = max(bucket.latency_max_ms, ms)
            bucket.hist[latency_bucket(ms)] += 1
            bucket.req_bytes_sum += request_bytes
            bucket.req_bytes_max = max(bucket.req_bytes_max, request_bytes)
            bucket.resp_bytes_sum += response_bytes
            bucket.resp_bytes_max = max(bucket.resp_bytes_max, response_bytes)

    def drain(self, *, everything: bool = False) -> list[dict[str, Any]]:
        """Rows for every closed bucket (all buckets with ``everything``), removed from memory."""
        cutoff = int(time.time() * 1000) // BUCKET_MS * BUCKET_MS
        with self._lock:
            keys = [k for k in self._buckets if everything or k[3] < cutoff]
            taken = [(k, self._buckets.pop(k)) for k in keys]
        rows = []
        for (deployment_id, version, replica, start), b in taken:
            row: dict[str, Any] = {
                "deployment_id": deployment_id,
                "version": version,
                "replica": replica,
                "bucket_ms": start,
                "requests": b.requests,
                "status_2xx": b.status.get("2xx", 0),
                "status_4xx": b.status.get("4xx", 0),
                "status_5xx": b.status.get("5xx", 0),
                "status_other": sum(
                    v for k, v in b.status.items() if k not in ("2xx", "4xx", "5xx")
                ),
                "latency_sum_ms": b.latency_sum_ms,
                "latency_max_ms": b.latency_max_ms,
                "req_bytes_sum": b.req_bytes_sum,
                "req_bytes_max": b.req_bytes_max,
                "resp_bytes_sum": b.resp_bytes_sum,
                "resp_bytes_max": b.resp_bytes_max,
            }
            for i, count in enumerate(b.hist):
                row[f"lat_{i:02d}"] = count
            rows.append(row)
        return rows


@dataclass
class ReplicaSample:
    deployment_id: str
    version: str
    replica: int
    ts_ms: int
    cpu_percent: float
    rss_bytes: int
    cpu_seconds: float


def percentile(hist: Sequence[int], q: float) -> float | None:
    """The q-quantile (0..1) of a latency histogram, interpolated inside its bucket (ms)."""
    total = sum(hist)
    if total == 0:
        return None
    rank = q * total
    seen = 0
    for i, count in enumerate(hist):
        if count and seen + count >= rank:
            low = LATENCY_BOUNDS_MS[i - 1] if i > 0 else 0.0
            high = LATENCY_BOUNDS_MS[i] if i < len(LATENCY_BOUNDS_MS) else low * 2
            return low + (high - low) * max(0.0, min(1.0, (rank - seen) / count))
        seen += count
    return LATENCY_BOUNDS_MS[-1]


class ReplicaEvents:
    """What happened to a deployment's replicas (scaling), in the store.

    An event is a dict: ``t`` (ms since the epoch), ``kind``, ``message`` and whatever else its
    recorder gave (the autoscaler: ``replicas_before``, ``replicas_after``, ``inflight``), which
    is stored as JSON and flattened back on reading. Every method blocks on the store: call it
    from a thread when on the event loop.
    """

    def __init__(self, store: Store) -> None:
        self.store = store

    def record(self, deployment_id: str, kind: str, message: str, **details: Any) -> None:
        row = ReplicaEventRow(
            deployment_id=deployment_id,
            ts_ms=int(time.time() * 1000),
            kind=kind,
            message=message,
            details=details,
        )
        with self.store.write() as session:
            session.add(row)

    def between(self, deployment_id: str, start_ms: int, end_ms: int) -> list[dict[str, Any]]:
        """The events of ``deployment_id`` from ``start_ms`` (inclusive) to ``end_ms``, oldest
        first."""
        query = (
            select(ReplicaEventRow)
            .where(
                ReplicaEventRow.deployment_id == deployment_id,
                ReplicaEventRow.ts_ms >= start_ms,
                ReplicaEventRow.ts_ms < end_ms,
            )
            .order_by(ReplicaEventRow.ts_ms, ReplicaEventRow.id)
        )
        with self.store.read() as session:
            rows = session.scalars(query).all()
            return [{"t": r.ts_ms, "kind": r.kind, "message": r.message, **r.details} for r in rows]

    def prune(self, older_than_ms: int) -> int:
        """Delete the events from before ``older_than_ms``; returns how many."""
        with self.store.write() as session:
            result = session.execute(
                delete(ReplicaEventRow).where(ReplicaEventRow.ts_ms < older_than_ms)
            )
        return int(getattr(result, "rowcount", 0) or 0)


class TechnicalMetrics:
    """Stores rollups and samples; answers the seven charts' series and the replica table."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.rollups = RequestRollups()
        self.events = ReplicaEvents(store)
        self._compacted: dict[str, int] = {}  # table -> compacted up to (ms)

    def flush(self, samples: Sequence[ReplicaSample] = (), *, everything: bool = False) -> int:
        rows = self.rollups.drain(everything=everything)
        if not rows and not samples:
            return 0
        with self.store.write() as session:
            if rows:
                session.execute(insert(RollupRow), rows)
            if samples:
                session.execute(
                    insert(ReplicaSampleRow),
                    [s.__dict__ for s in samples],
                )
        return len(rows)

    def compact(self, before_ms: int | None = None) -> int:
        """Rewrite rollups and samples older than ``before_ms`` (default: eight hours ago) as
        one row per five minutes, deployment, version and replica; returns the rows removed.

        Only five-minute windows that hold more than one row of a group are rewritten, one
        hour per transaction, so a second run finds nothing to do; what one run has compacted
        is remembered, so the next looks only at rows newer than that.
        """
        if before_ms is None:
            before_ms = int(time.time() * 1000) - COMPACT_AFTER_MS
        before_ms = before_ms // COARSE_MS * COARSE_MS
        removed = 0
        for table in (_ROLLUPS, _SAMPLES):
            since = self._compacted.get(table.name, 0)
            if since >= before_ms:
                continue
            ts = table.ts
            with self.store.read() as session:
                deployments = list(
                    session.scalars(
                        select(table.col("deployment_id"))
                        .where(ts >= since, ts < before_ms)
                        .distinct()
                    )
                )
            for deployment_id in deployments:
                for lo, hi in _spans(self._loose_windows(table, deployment_id, since, before_ms)):
                    removed += self._rewrite(table, deployment_id, lo, hi)
            self._compacted[table.name] = before_ms
        return removed

    def _loose_windows(
        self, table: _Compactable, deployment_id: str, since: int, before: int
    ) -> list[int]:
        """Five-minute windows in which some group has more than one row."""
        ts = table.ts
        window = (ts - ts % COARSE_MS).label("window")
        group = table.col("version") + literal(":") + cast(table.col("replica"), String)
        query = (
            select(window)
            .where(table.col("deployment_id") == deployment_id, ts >= since, ts < before)
            .group_by(window)
            .having(func.count() > func.count(group.distinct()))
            .order_by(window)
        )
        with self.store.read() as session:
            return [int(w) for w in session.scalars(query)]

    def _rewrite(self, table: _Compactable, deployment_id: str, lo: int, hi: int) -> int:
        ts = table.ts
        window = (ts - ts % COARSE_MS).label("window")
        where = (table.col("deployment_id") == deployment_id, ts >= lo, ts < hi)
        keys = (table.col("deployment_id"), table.col("version"), table.col("replica"))
        aggregates = table.aggregates()
        merged = select(*keys, window, *aggregates.values()).where(*where).group_by(*keys, window)
        columns = ["deployment_id", "version", "replica", ts.key, *aggregates]
        with self.store.write() as session:
            last_id = session.scalar(select(func.max(table.col("id"))).where(*where))
            if last_id is None:
                return 0
            session.execute(insert(table.row).from_select(columns, merged))
            result = session.execute(delete(table.row).where(*where, table.col("id") <= last_id))
            deleted = int(getattr(result, "rowcount", 0) or 0)
            # (psycopg reports no row count for INSERT ... SELECT: count what is left instead)
            kept = session.scalar(select(func.count()).select_from(table.row).where(*where))
        return deleted - int(kept or 0)

    def prune(self, older_than_ms: int) -> None:
        with self.store.write() as session:
            session.execute(delete(RollupRow).where(RollupRow.bucket_ms < older_than_ms))
            session.execute(delete(ReplicaSampleRow).where(ReplicaSampleRow.ts_ms < older_than_ms))

    def series(
        self,
        deployment_id: str,
        start_ms: int,
        end_ms: int,
        step_ms: int | None = None,
        replica: int | None = None,
        *,
        version: str | None = None,
    ) -> dict[str, Any]:
        """Everything the monitoring charts need for one deployment and range (of one
        ``replica`` and one model ``version`` when given; CPU and memory are per replica).

        The range is widened to whole 5-second buckets: ``start`` down, ``end`` up.
        """
        if end_ms <= start_ms:
            raise ValidationFailed("end must be after start", details={"field": "end"})
        start_ms = start_ms // BUCKET_MS * BUCKET_MS
        end_ms = -(-end_ms // BUCKET_MS) * BUCKET_MS
        span = end_ms - start_ms
        if step_ms is None:
            step_ms = max(BUCKET_MS, _round_step(span / 120))
        if step_ms < BUCKET_MS or step_ms % BUCKET_MS:
            raise ValidationFailed(
                f"step must be a multiple of {BUCKET_MS // 1000} s", details={"field": "step"}
            )
        if step_ms < COARSE_MS and start_ms < int(time.time() * 1000) - COMPACT_AFTER_MS:
            step_ms = COARSE_MS  # older rows are five-minute rows: finer steps would mislead
        if span / step_ms > MAX_POINTS:
            raise ValidationFailed(
                f"{span // step_ms} points is too many; use a larger step (at most "
                f"{MAX_POINTS} points)",
                details={"field": "step"},
            )
        hist_cols = [getattr(RollupRow, f"lat_{i:02d}") for i in range(len(LATENCY_BOUNDS_MS) + 1)]
        slot = (RollupRow.bucket_ms - (RollupRow.bucket_ms - start_ms) % step_ms).label("slot")
        query = (
            select(
                slot,
                func.sum(RollupRow.requests),
                func.sum(RollupRow.status_2xx),
                func.sum(RollupRow.status_4xx),
                func.sum(RollupRow.status_5xx),
                func.sum(RollupRow.status_other),
                func.sum(RollupRow.latency_sum_ms),
                func.max(RollupRow.latency_max_ms),
                func.sum(RollupRow.req_bytes_sum),
                func.max(RollupRow.req_bytes_max),
                func.sum(RollupRow.resp_bytes_sum),
                func.max(RollupRow.resp_bytes_max),
                *[func.sum(c) for c in hist_cols],
            )
            .where(
                RollupRow.deployment_id == deployment_id,
                RollupRow.bucket_ms >= start_ms,
                RollupRow.bucket_ms < end_ms,
            )
            .group_by(slot)
            .order_by(slot)
        )
        if replica is not None:
            query = query.where(RollupRow.replica == replica)
        if version is not None:
            query = query.where(RollupRow.version == version)
        slots = list(range(start_ms, end_ms, step_ms))
        by_slot: dict[int, Any] = {}
        with self.store.read() as session:
            for found in session.execute(query):
                by_slot[int(found[0])] = found
            replica_table = self._replica_table(session, deployment_id, start_ms, end_ms)
            resources = self._resources(session, deployment_id, start_ms, end_ms, step_ms, replica)
        step_s = step_ms / 1000
        requests = []
        for s in slots:
            row = by_slot.get(s)
            if row is None:
                requests.append(_empty_point(s))
                continue
            n = int(row[1] or 0)
            hist = [int(v or 0) for v in row[12:]]
            requests.append(
                {
                    "t": s,
                    "requests": n,
                    "rps": n / step_s,
                    "ok": int(row[2] or 0),
                    "failed": n - int(row[2] or 0),
                    "failed_4xx": int(row[3] or 0),
                    "failed_5xx": int(row[4] or 0),
                    "failed_other": int(row[5] or 0),
                    "latency_mean_ms": (row[6] or 0) / n if n else None,
                    "latency_max_ms": row[7],
                    "latency_p50_ms": percentile(hist, 0.50),
                    "latency_p95_ms": percentile(hist, 0.95),
                    "latency_p99_ms": percentile(hist, 0.99),
                    "request_bytes_mean": (row[8] or 0) / n if n else None,
                    "request_bytes_max": row[9],
                    "response_bytes_mean": (row[10] or 0) / n if n else None,
                    "response_bytes_max": row[11],
                }
            )
        totals: dict[str, Any] = {
            "requests": sum(p["requests"] for p in requests),
            "ok": sum(p["ok"] for p in requests),
            "failed": sum(p["failed"] for p in requests),
            "failed_4xx": sum(p["failed_4xx"] for p in requests),
            "failed_5xx": sum(p["failed_5xx"] for p in requests),
            "request_bytes": sum(int(by_slot[t][8] or 0) for t in by_slot),
            "response_bytes": sum(int(by_slot[t][10] or 0) for t in by_slot),
        }
        overall = [
            sum(int(by_slot[t][12 + i] or 0) for t in by_slot)
            for i in range(len(LATENCY_BOUNDS_MS) + 1)
        ]
        latency_sum = sum(float(by_slot[t][6] or 0) for t in by_slot)
        totals["latency_mean_ms"] = latency_sum / totals["requests"] if totals["requests"] else None
        for name, q in (
            ("latency_p50_ms", 0.5),
            ("latency_p95_ms", 0.95),
            ("latency_p99_ms", 0.99),
        ):
            totals[name] = percentile(overall, q)
        return {
            "start": start_ms,
            "end": end_ms,
            "step": step_ms,
            "replica": replica,
            "version": version,
            "latency_bounds_ms": LATENCY_BOUNDS_MS,
            "requests": requests,
            "resources": resources,
            "replicas": replica_table,
            "totals": totals,
            "events": self.events.between(deployment_id, start_ms, end_ms),
        }

    def _replica_table(
        self, session: Any, deployment_id: str, start_ms: int, end_ms: int
    ) -> list[dict[str, Any]]:
        query = (
            select(
                RollupRow.replica,
                func.sum(RollupRow.requests),
                func.sum(RollupRow.status_2xx),
            )
            .where(
                RollupRow.deployment_id == deployment_id,
                RollupRow.bucket_ms >= start_ms,
                RollupRow.bucket_ms < end_ms,
            )
            .group_by(RollupRow.replica)
            .order_by(RollupRow.replica)
        )
        table = []
        for replica, received, ok in session.execute(query):
            table.append(
                {
                    "replica": "gateway" if replica == GATEWAY_REPLICA else int(replica),
                    "received": int(received or 0),
                    "success": int(ok or 0),
                    "failed": int(received or 0) - int(ok or 0),
                }
            )
        return table

    def _resources(
        self,
        session: Any,
        deployment_id: str,
        start_ms: int,
        end_ms: int,
        step_ms: int,
        replica: int | None,
    ) -> dict[str, Any]:
        slot = (ReplicaSampleRow.ts_ms - (ReplicaSampleRow.ts_ms - start_ms) % step_ms).label(
            "slot"
        )
        query = (
            select(
                slot,
                ReplicaSampleRow.replica,
                func.avg(ReplicaSampleRow.cpu_percent),
                func.avg(ReplicaSampleRow.rss_bytes),
                func.max(ReplicaSampleRow.rss_bytes),
            )
            .where(
                ReplicaSampleRow.deployment_id == deployment_id,
                ReplicaSampleRow.ts_ms >= start_ms,
                ReplicaSampleRow.ts_ms < end_ms,
            )
            .group_by(slot, ReplicaSampleRow.replica)
            .order_by(slot, ReplicaSampleRow.replica)
        )
        if replica is not None:
            query = query.where(ReplicaSampleRow.replica == replica)
        per_replica: dict[int, list[dict[str, Any]]] = {}
        total: dict[int, dict[str, float]] = {}
        for s, rep, cpu, rss, rss_max in session.execute(query):
            point = {
                "t": int(s),
                "cpu_percent": float(cpu or 0),
                "rss_bytes": float(rss or 0),
                "rss_bytes_max": int(rss_max or 0),
            }
            per_replica.setdefault(int(rep), []).append(point)
            agg = total.setdefault(int(s), {"cpu_percent": 0.0, "rss_bytes": 0.0})
            agg["cpu_percent"] += point["cpu_percent"]
            agg["rss_bytes"] += point["rss_bytes"]
        return {
            "per_replica": {str(k): v for k, v in sorted(per_replica.items())},
            "all": [{"t": t, **v} for t, v in sorted(total.items())],
        }


def _empty_point(t: int) -> dict[str, Any]:
    return {
        "t": t, "requests": 0, "rps": 0.0, "ok": 0, "failed": 0, "failed_4xx": 0,
        "failed_5xx": 0, "failed_other": 0, "latency_mean_ms": None, "latency_max_ms": None,
        "latency_p50_ms": None, "latency_p95_ms": None, "latency_p99_ms": None,
        "request_bytes_mean": None, "request_bytes_max": None, "response_bytes_mean": None,
        "response_bytes_max": None,
    }  # fmt: skip


def _round_step(ms: float) -> int:
    """A readable step (5 s, 10 s, 30 s, 1 m, 5 m, ...) near ``ms``."""
    for step in (5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 21600, 43200, 86400):
        if step * 1000 >= ms:
            return step * 1000
    return int(math.ceil(ms / 86_400_000) * 86_400_000)


@dataclass(frozen=True)
class _Compactable:
    """A table of per-replica rows that compaction merges into five-minute rows."""

    name: str
    row: Any  # the mapped class
    ts_name: str
    merge: dict[str, str]  # column -> how rows merge: sum, max or mean

    def col(self, column: str) -> Any:
        return getattr(self.row, column)

    @property
    def ts(self) -> Any:
        return getattr(self.row, self.ts_name)

    def aggregates(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for column, how in self.merge.items():
            col = getattr(self.row, column)
            if how == "sum":
                out[column] = func.sum(col)
            elif how == "max":
                out[column] = func.max(col)
            else:
                mean = func.avg(col)
                out[column] = func.round(mean) if column == "rss_bytes" else mean
        return out


_ROLLUPS = _Compactable(
    "technical_rollups",
    RollupRow,
    "bucket_ms",
    {
        "requests": "sum", "status_2xx": "sum", "status_4xx": "sum", "status_5xx": "sum",
        "status_other": "sum", "latency_sum_ms": "sum", "latency_max_ms": "max",
        "req_bytes_sum": "sum", "req_bytes_max": "max", "resp_bytes_sum": "sum",
        "resp_bytes_max": "max",
        **{f"lat_{i:02d}": "sum" for i in range(len(LATENCY_BOUNDS_MS) + 1)},
    },
)  # fmt: skip
_SAMPLES = _Compactable(
    "replica_samples",
    ReplicaSampleRow,
    "ts_ms",
    {"cpu_percent": "mean", "rss_bytes": "mean", "cpu_seconds": "max"},
)


def _spans(windows: Sequence[int]) -> list[tuple[int, int]]:
    """Windows (sorted starts) grouped into ranges of at most an hour: (lo, hi) pairs."""
    spans: list[tuple[int, int]] = []
    for w in windows:
        if spans and w + COARSE_MS - spans[-1][0] <= _COMPACT_CHUNK_MS:
            spans[-1] = (spans[-1][0], w + COARSE_MS)
        else:
            spans.append((w, w + COARSE_MS))
    return spans
