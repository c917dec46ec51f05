"""Model metrics: per-prediction records, delayed ground truth, window aggregates, read-back.

Knows nothing of HTTP. Records come in from replicas (in groups, one transaction each), from the
REST API and from the SDK; they are read back in Cloudera ML's record shape:

    {"modelDeploymentCrn", "modelBuildCrn", "modelCrn", "startTimeStampMs", "endTimeStampMs",
     "predictionUuid", "metrics": {...}}

with delayed metrics merged into their prediction's ``metrics`` (later values win) and
aggregate records carrying ``predictionUuid == ""``.

A shadow canary's copy of a request is a prediction of its own (its own UUID, never returned to
the caller), linked to the stable prediction it copies (:class:`ShadowLinks`): the delayed
metrics of the stable prediction are its delayed metrics too, in the read-back here and in
realised performance (``monitoring/performance/queries.py``).
"""

from __future__ import annotations

import logging
import math
import os
import threading
import time
import uuid as uuidlib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson
from sqlalchemy import and_, delete, insert, or_, select

from modeldeck.crn import DEV, Identity, identity
from modeldeck.errors import Conflict, NotFound, ValidationFailed
from modeldeck.records.rows import COLUMNS, insert_sqlite
from modeldeck.store import Store
from modeldeck.store.schema import (
    AggregateMetricRow,
    AnalysisSummaryRow,
    DelayedMetricRow,
    PredictionRow,
    ShadowLinkRow,
)

log = logging.getLogger(__name__)


def encoded_row(record: PredictionRecord) -> tuple[Any, ...]:
    """A record as the hot path's inserts (and the prediction journal) take it."""
    return (
        record.uuid, record.deployment_id, record.model_version, record.replica,
        record.start_ms, record.end_ms, orjson.dumps(record.metrics).decode(),
    )  # fmt: skip


_COPY_PREDICTIONS = f"COPY predictions ({COLUMNS}) FROM STDIN"
# PostgreSQL, on an event loop: a group is one statement with one parameter, the rows as a JSON
# array of arrays. One round trip where COPY takes two (each costs a turn of a busy loop), one
# orjson call for the whole group, and the server takes each row's metrics out of the parsed
# array as jsonb without parsing them again. (For thousands of rows at once COPY costs the
# server less, so the synchronous path keeps it.) The writer retries a group whose connection
# broke, and a group that committed just before its connection died is then already there:
# the retry finds its (random) UUIDs taken and does nothing, so its requests get their 200.
_INSERT_JSON_ROWS = (
    f"INSERT INTO predictions ({COLUMNS}) "
    "SELECT r->>0, r->>1, r->>2, (r->>3)::integer, (r->>4)::bigint, (r->>5)::bigint, r->6 "
    "FROM jsonb_array_elements(%s::jsonb) AS r "
    "ON CONFLICT (uuid) DO NOTHING"
)


def _json_rows(records: Sequence[PredictionRecord]) -> str:
    return orjson.dumps(
        [(r.uuid, r.deployment_id, r.model_version, r.replica, r.start_ms, r.end_ms, r.metrics)
         for r in records]
    ).decode()  # fmt: skip


MAX_KEY_LENGTH = 255
MAX_DEPTH = 32
# The last millisecond of year 9999: later timestamps are typos, and past int64 the store fails.
MAX_TIMESTAMP_MS = 253_402_300_799_999
DEFAULT_PAGE = 1000
MAX_PAGE = 10_000
SUMMARY_MS = 300_000  # the span of one analysis summary (modeldeck.monitoring.summaries.parts)


def now_ms() -> int:
    return int(time.time() * 1000)


class _PredictionIds:
    """Time-ordered UUIDs (version 7, RFC 9562), strictly increasing within a process.

    New predictions then land at the end of the primary-key index instead of at random places
    in it: on SQLite that is 500,000 inserts/s instead of 64,000 with random (version 4) UUIDs.
    The 12 bits after the millisecond timestamp count within a millisecond (RFC 9562's
    "fixed-length dedicated counter"), so records of one millisecond keep their order.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._last_ms = 0
        self._counter = 0
        self._random = b""  # os.urandom in 4 KiB reads: one system call per 512 UUIDs
        self._taken = 0

    def __call__(self) -> str:
        with self._lock:
            ms = time.time_ns() // 1_000_000
            if ms <= self._last_ms:
                ms = self._last_ms
                self._counter += 1
                if self._counter > 0xFFF:  # 4,096 in one millisecond: borrow the next one
                    ms += 1
                    self._counter = 0
            else:
                self._counter = 0
            self._last_ms = ms
            counter = self._counter
            taken = self._taken
            if taken == len(self._random):
                self._random, taken = os.urandom(4096), 0
            self._taken = taken + 8
            random = self._random[taken : taken + 8]
        # Formatted by hand: twice as fast as str(uuid.UUID(int=...)), on every prediction.
        rand = int.from_bytes(random) & 0x3FFF_FFFF_FFFF_FFFF  # 62 random bits
        high, low = f"{ms & 0xFFFF_FFFF_FFFF:012x}", f"{0x8000_0000_0000_0000 | rand:016x}"
        return f"{high[:8]}-{high[8:]}-7{counter:03x}-{low[:4]}-{low[4:]}"


new_prediction_id = _PredictionIds()


@dataclass(frozen=True)
class Target:
    """The deployment records belong to, and what names its records carry."""

    deployment_id: str
    name: str
    model_name: str = ""
    model_version: str = ""
    dev: bool = False

    def identity(self, model_version: str) -> Identity:
        if self.dev:
            return DEV
        return identity(self.deployment_id, self.model_name, model_version)


@dataclass
class PredictionRecord:
    uuid: str
    deployment_id: str
    start_ms: int
    end_ms: int
    metrics: dict[str, Any]
    model_version: str = ""
    replica: int | None = None

    def row(self) -> dict[str, Any]:
        return {
            "uuid": self.uuid,
            "deployment_id": self.deployment_id,
            "model_version": self.model_version,
            "replica": self.replica,
            "start_ms": self.start_ms,
            "end_ms": self.end_ms,
            "metrics": self.metrics,
        }


@dataclass
class Page:
    metrics: list[dict[str, Any]]
    next_cursor: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"metrics": self.metrics, "next_cursor": self.next_cursor}


def clean_metrics(metrics: Any, *, what: str = "metrics") -> dict[str, Any]:
    """Check that metrics are a dict of JSON values; NumPy values become plain Python.

    Raises 422 naming the offending key.
    """
    if not isinstance(metrics, Mapping):
        raise ValidationFailed(
            f"{what} must be an object of key: value, got {type(metrics).__name__}",
            details={"field": what},
        )
    return {_key(k, what): _value(v, f"{what}.{k}", 0) for k, v in metrics.items()}


def clean_metric(key: Any, value: Any) -> tuple[str, Any]:
    return _key(key, "metrics"), _value(value, f"metrics.{key}", 0)


def _key(key: Any, what: str) -> str:
    if not isinstance(key, str) or not key or len(key) > MAX_KEY_LENGTH or "\x00" in key:
        raise ValidationFailed(
            f"metric keys must be non-empty strings of at most {MAX_KEY_LENGTH} characters "
            "without NUL, "
            f"got {key!r:.60}",
            details={"field": what},
        )
    return key


def _value(value: Any, path: str, depth: int) -> Any:
    if depth > MAX_DEPTH:
        raise ValidationFailed(f"{path} is nested too deeply", details={"field": path})
    if isinstance(value, str) and "\x00" in value:
        # PostgreSQL's JSONB cannot hold U+0000: refused on every store, so both agree.
        raise ValidationFailed(f"{path} holds a NUL character (U+0000)", details={"field": path})
    if value is None or isinstance(value, bool | str | int):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValidationFailed(
                f"{path} is {value}, which JSON cannot carry", details={"field": path}
            )
        return value
    if isinstance(value, Mapping):
        out = {}
        for k, v in value.items():
            if not isinstance(k, str) or "\x00" in k:
                raise ValidationFailed(
                    f"{path} has a non-string or NUL-holding key {k!r:.40}",
                    details={"field": path},
                )
            out[k] = _value(v, f"{path}.{k}", depth + 1)
        return out
    if isinstance(value, list | tuple):
        return [_value(v, f"{path}[{i}]", depth + 1) for i, v in enumerate(value)]
    tolist = getattr(value, "tolist", None)  # NumPy scalars and arrays
    if tolist is not None and type(value).__module__ == "numpy":
        return _value(tolist(), path, depth)
    raise ValidationFailed(
        f"{path} is a {type(value).__name__}; metric values must be JSON: numbers, strings, "
        "booleans, lists or objects",
        details={"field": path},
    )


def _timestamp(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= MAX_TIMESTAMP_MS


def _uuid(value: Any) -> str:
    try:
        return str(uuidlib.UUID(str(value)))
    except ValueError as exc:
        raise ValidationFailed(
            f"{value!r:.60} is not a prediction UUID", details={"field": "prediction_uuid"}
        ) from exc


class ShadowLinks:
    """Shadow copies' predictions linked to the stable predictions they copy, stored in groups.

    The gateway adds a pair when the candidate answers a copy (its prediction is committed or
    journaled by then); :meth:`flush` stores the pending pairs with the copy's end time, which
    the platform calls every few seconds and before each canary evaluation, and a read-back
    before it reads. Pairs whose copy was not recorded (tracking off) are dropped. At most
    ``MAX_PENDING`` pairs wait (the oldest dropped first) while the store cannot take them.
    """

    MAX_PENDING = 100_000

    def __init__(self, store: Store) -> None:
        self.store = store
        self._pending: list[tuple[str, str, str]] = []
        self._lock = threading.Lock()
        self._flushing = threading.Lock()

    def add(self, deployment_id: str, stable_uuid: str, shadow_uuid: str) -> None:
        with self._lock:
            self._pending.append((deployment_id, stable_uuid, shadow_uuid))
            if len(self._pending) > self.MAX_PENDING:
                del self._pending[: len(self._pending) - self.MAX_PENDING]

    def flush(self) -> int:
        """Store the pending links; returns how many were stored."""
        with self._flushing:
            with self._lock:
                pending, self._pending = self._pending, []
            if not pending:
                return 0
            try:
                return self._store(pending)
            except Exception:
                with self._lock:  # kept for the next flush
                    self._pending[:0] = pending
                raise

    def _store(self, pending: list[tuple[str, str, str]]) -> int:
        from modeldeck.records.journal import absorb

        absorb(self.store)  # copies journaled and not committed yet
        stored = 0
        with self.store.write() as session:
            for chunk_start in range(0, len(pending), 900):
                chunk = pending[chunk_start : chunk_start + 900]
                shadows = [shadow for _, _, shadow in chunk]
                ends = {
                    uuid: (deployment_id, end_ms)
                    for uuid, deployment_id, end_ms in session.execute(
                        select(
                            PredictionRow.uuid, PredictionRow.deployment_id, PredictionRow.end_ms
                        ).where(PredictionRow.uuid.in_(shadows))
                    )
                }
                linked = set(
                    session.scalars(
                        select(ShadowLinkRow.shadow_uuid).where(
                            ShadowLinkRow.shadow_uuid.in_(shadows)
                        )
                    )
                )
                rows = [
                    {
                        "shadow_uuid": shadow,
                        "stable_uuid": stable,
                        "deployment_id": deployment_id,
                        "shadow_end_ms": ends[shadow][1],
                    }
                    for deployment_id, stable, shadow in chunk
                    if ends.get(shadow, ("", 0))[0] == deployment_id and shadow not in linked
                ]
                if rows:
                    session.execute(insert(ShadowLinkRow), rows)
                    stored += len(rows)
        return stored


class ModelMetrics:
    def __init__(self, store: Store, shadow_links: ShadowLinks | None = None) -> None:
        self.store = store
        self.shadow_links = shadow_links

    # -- writes -------------------------------------------------------------------------------

    def insert_predictions(self, records: Sequence[PredictionRecord], *, wait: bool = True) -> bool:
        """Commit a group of predictions in one transaction (the replicas' group commit).

        The hot path of ingestion, so it skips SQLAlchemy's per-row parameter processing:
        metrics are encoded once with orjson and the rows go to the driver as tuples, in
        multi-row statements on SQLite and with ``COPY`` on PostgreSQL (on the store's kept
        autocommit connection: the ``COPY`` is the transaction). With ``wait=False`` it returns
        ``False`` instead of waiting when another writer holds the SQLite store.
        """
        if not records:
            return True
        rows = [encoded_row(r) for r in records]
        if self.store.dialect == "postgresql":
            if not self.store.copy_rows(_COPY_PREDICTIONS, rows):
                with self.store.write_connection() as connection:  # the kept one is busy
                    driver = connection.connection.driver_connection  # type: ignore[union-attr]
                    with driver.cursor() as cursor, cursor.copy(_COPY_PREDICTIONS) as copy:  # type: ignore[union-attr]
                        for row in rows:
                            copy.write_row(row)
            return True
        with self.store.sqlite_transaction(wait=wait) as cursor:
            if cursor is not None:
                insert_sqlite(cursor, rows)
                return True
        if not wait:
            return False  # busy (or an in-memory store, which the thread writes)
        with self.store.write_connection() as connection:
            assert connection is not None
            insert_sqlite(connection.connection.driver_connection.cursor(), rows)  # type: ignore[union-attr]
        return True

    async def insert_predictions_async(self, records: Sequence[PredictionRecord]) -> None:
        """PostgreSQL: :meth:`insert_predictions` on the running event loop, without blocking it.

        The group commit of a replica's event loop: while the server works, the loop goes on
        serving requests, and no thread has to win the GIL back from the loop to finish it.
        """
        if records:
            await self.store.commit_statement_async(_INSERT_JSON_ROWS, (_json_rows(records),))

    def absorb_journals(self) -> int:
        """Fold in the predictions replicas have journaled and not committed yet (SQLite)."""
        from modeldeck.records.journal import absorb

        return absorb(self.store)

    def track_delayed(self, target: Target | None, prediction_uuid: str, metrics: Any) -> str:
        """Attach metrics that arrived later (ground truth) to a recorded prediction.

        ``target`` may be ``None``: UUIDs are unique across deployments. Returns the UUID.
        An unknown UUID is looked for in the replicas' journals before it is refused.
        """
        try:
            return self._track_delayed(target, prediction_uuid, metrics)
        except NotFound:
            # Not committed yet? Then it is in a journal, or its replica committed it since.
            self.absorb_journals()
        return self._track_delayed(target, prediction_uuid, metrics)

    def _track_delayed(self, target: Target | None, prediction_uuid: str, metrics: Any) -> str:
        clean = clean_metrics(metrics)
        uuid = _uuid(prediction_uuid)
        with self.store.write() as session:
            found = session.execute(
                select(PredictionRow.deployment_id, PredictionRow.end_ms).where(
                    PredictionRow.uuid == uuid
                )
            ).one_or_none()
            owner, end_ms = found if found is not None else (None, None)
            if owner is None or (target is not None and owner != target.deployment_id):
                where = f" in deployment {target.name!r}" if target is not None else ""
                raise NotFound(
                    f"no prediction {uuid}{where}",
                    details={"prediction_uuid": uuid},
                )
            session.add(
                DelayedMetricRow(
                    prediction_uuid=uuid,
                    deployment_id=owner,
                    prediction_end_ms=end_ms,
                    ts_ms=now_ms(),
                    metrics=clean,
                )
            )
        return uuid

    def track_delayed_many(self, target: Target | None, entries: Sequence[tuple[str, Any]]) -> int:
        """Attach delayed metrics to many predictions in one transaction: all or nothing.

        ``entries`` are ``(prediction_uuid, metrics)`` pairs. Every UUID must name a recorded
        prediction (of ``target``, when given); otherwise nothing is recorded and the error
        names the first unknown UUID. Returns how many were recorded.
        """
        try:
            return self._track_delayed_many(target, entries)
        except NotFound:
            # Not committed yet? Then it is in a journal, or its replica committed it since.
            self.absorb_journals()
        return self._track_delayed_many(target, entries)

    def _track_delayed_many(self, target: Target | None, entries: Sequence[tuple[str, Any]]) -> int:
        cleaned = [
            (_uuid(u), clean_metrics(m, what=f"items[{i}].metrics"))
            for i, (u, m) in enumerate(entries)
        ]
        ts = now_ms()
        with self.store.write() as session:
            owners: dict[str, str] = {}
            ends: dict[str, int] = {}
            uuids = [u for u, _ in cleaned]
            for chunk_start in range(0, len(uuids), 900):
                chunk = uuids[chunk_start : chunk_start + 900]
                found = session.execute(
                    select(
                        PredictionRow.uuid, PredictionRow.deployment_id, PredictionRow.end_ms
                    ).where(PredictionRow.uuid.in_(chunk))
                )
                for uuid, deployment_id, end_ms in found:
                    owners[uuid] = deployment_id
                    ends[uuid] = end_ms
            for i, (uuid, _) in enumerate(cleaned):
                owner = owners.get(uuid)
                if owner is None or (target is not None and owner != target.deployment_id):
                    where = f" in deployment {target.name!r}" if target is not None else ""
                    raise NotFound(
                        f"items[{i}]: no prediction {uuid}{where}; nothing was recorded",
                        details={"prediction_uuid": uuid, "index": i},
                    )
            session.execute(
                insert(DelayedMetricRow),
                [
                    {
                        "prediction_uuid": uuid,
                        "deployment_id": owners[uuid],
                        "prediction_end_ms": ends[uuid],
                        "ts_ms": ts,
                        "metrics": metrics,
                    }
                    for uuid, metrics in cleaned
                ],
            )
        return len(cleaned)

    def record(self, target: Target, entries: Sequence[Mapping[str, Any]]) -> list[str]:
        """Record predictions made elsewhere (batch inference, the REST API); returns UUIDs."""
        records = []
        for i, entry in enumerate(entries):
            if not isinstance(entry, Mapping):
                raise ValidationFailed(
                    f"predictions[{i}] must be an object", details={"field": f"predictions[{i}]"}
                )
            end = entry.get("end_timestamp_ms") or now_ms()
            start = entry.get("start_timestamp_ms") or end
            for name, value in (("start_timestamp_ms", start), ("end_timestamp_ms", end)):
                if not _timestamp(value):
                    raise ValidationFailed(
                        f"predictions[{i}].{name} must be an integer from 0 to "
                        f"{MAX_TIMESTAMP_MS} (ms since the epoch, up to year 9999)",
                        details={"field": f"predictions[{i}].{name}"},
                    )
            records.append(
                PredictionRecord(
                    uuid=_uuid(entry["uuid"]) if entry.get("uuid") else new_prediction_id(),
                    deployment_id=target.deployment_id,
                    start_ms=start,
                    end_ms=end,
                    metrics=clean_metrics(
                        entry.get("metrics", {}), what=f"predictions[{i}].metrics"
                    ),
                    model_version=str(entry.get("model_version") or target.model_version),
                )
            )
        uuids = [r.uuid for r in records]
        if len(set(uuids)) != len(uuids):
            raise ValidationFailed("prediction UUIDs repeat", details={"field": "predictions"})
        with self.store.read() as session:
            taken = session.scalars(select(PredictionRow.uuid).where(PredictionRow.uuid.in_(uuids)))
            clash = next(iter(taken), None)
        if clash:
            raise Conflict(f"prediction {clash} is already recorded", details={"uuid": clash})
        self.insert_predictions(records)
        return uuids

    def track_aggregate(
        self, target: Target, metrics: Any, start_ms: int, end_ms: int, model_version: str = ""
    ) -> None:
        clean = clean_metrics(metrics)
        for name, value in (("start_timestamp_ms", start_ms), ("end_timestamp_ms", end_ms)):
            if not _timestamp(value):
                raise ValidationFailed(
                    f"{name} must be an integer from 0 to {MAX_TIMESTAMP_MS} (milliseconds since "
                    "the epoch, up to year 9999)",
                    details={"field": name},
                )
        if end_ms < start_ms:
            raise ValidationFailed(
                "end_timestamp_ms is before start_timestamp_ms",
                details={"field": "end_timestamp_ms"},
            )
        with self.store.write() as session:
            session.add(
                AggregateMetricRow(
                    deployment_id=target.deployment_id,
                    model_version=model_version or target.model_version,
                    start_ms=start_ms,
                    end_ms=end_ms,
                    ts_ms=now_ms(),
                    metrics=clean,
                )
            )

    def prune(self, older_than_ms: int) -> int:
        """Delete raw prediction records (and their delayed metrics) older than a timestamp."""
        with self.store.write() as session:
            old = select(PredictionRow.uuid).where(PredictionRow.end_ms < older_than_ms)
            session.execute(
                delete(DelayedMetricRow).where(DelayedMetricRow.prediction_uuid.in_(old))
            )
            result = session.execute(
                delete(PredictionRow).where(PredictionRow.end_ms < older_than_ms)
            )
            # Summaries of hours now wholly gone; a partly pruned hour's no longer matches its
            # prediction count and is rebuilt when next read.
            session.execute(
                delete(AnalysisSummaryRow).where(
                    AnalysisSummaryRow.bucket_ms + SUMMARY_MS <= older_than_ms
                )
            )
            return int(getattr(result, "rowcount", 0) or 0)

    # -- reads --------------------------------------------------------------------------------

    def read(
        self,
        target: Target,
        *,
        start_ms: int = 0,
        end_ms: int | None = None,
        uuids: Sequence[str] | None = None,
        model_version: str | None = None,
        include_aggregates: bool = True,
        limit: int = DEFAULT_PAGE,
        cursor: str | None = None,
    ) -> Page:
        """One page of records, oldest first; ``next_cursor`` continues after it.

        Predictions are selected by their end time within ``[start_ms, end_ms]``; aggregates by
        a window that lies within it. Aggregates come on the last page.
        """
        after = _parse_cursor(cursor)
        if after is None:
            self.absorb_journals()  # every prediction answered so far is on the pages
            if self.shadow_links is not None:
                self.shadow_links.flush()  # and every shadow copy answered is linked
        end_ms = now_ms() if end_ms is None else end_ms
        limit = max(1, min(limit, MAX_PAGE))
        query = select(PredictionRow).where(PredictionRow.deployment_id == target.deployment_id)
        if uuids is not None:
            query = query.where(PredictionRow.uuid.in_([_uuid(u) for u in uuids]))
        else:
            query = query.where(PredictionRow.end_ms.between(start_ms, end_ms))
        if model_version:
            query = query.where(PredictionRow.model_version == model_version)
        if after is not None:
            query = query.where(
                or_(
                    PredictionRow.end_ms > after[0],
                    and_(PredictionRow.end_ms == after[0], PredictionRow.uuid > after[1]),
                )
            )
        query = query.order_by(PredictionRow.end_ms, PredictionRow.uuid).limit(limit + 1)
        with self.store.read() as session:
            rows = list(session.scalars(query))
            more = len(rows) > limit
            rows = rows[:limit]
            delayed = self._delayed(session, [r.uuid for r in rows])
            records = [self._record(target, r, delayed.get(r.uuid)) for r in rows]
            if not more and include_aggregates and uuids is None:
                records.extend(self._aggregates(session, target, start_ms, end_ms, model_version))
        next_cursor = f"{rows[-1].end_ms}:{rows[-1].uuid}" if more and rows else None
        return Page(records, next_cursor)

    def iter_records(self, target: Target, **kwargs: Any) -> Iterator[dict[str, Any]]:
        """Every record in the range, fetched a page at a time."""
        cursor = None
        while True:
            page = self.read(target, cursor=cursor, **kwargs)
            yield from page.metrics
            if page.next_cursor is None:
                return
            cursor = page.next_cursor

    def count(self, target: Target) -> int:
        from sqlalchemy import func

        self.absorb_journals()
        with self.store.read() as session:
            return int(
                session.scalar(
                    select(func.count())
                    .select_from(PredictionRow)
                    .where(PredictionRow.deployment_id == target.deployment_id)
                )
                or 0
            )

    def _delayed(self, session: Any, uuids: list[str]) -> dict[str, dict[str, Any]]:
        """Each prediction's delayed metrics merged (later ones win); a shadow copy's are
        those of the stable prediction it copies, then its own."""
        stable_of: dict[str, str] = {}
        for chunk_start in range(0, len(uuids), 900):
            chunk = uuids[chunk_start : chunk_start + 900]
            links = session.execute(
                select(ShadowLinkRow.shadow_uuid, ShadowLinkRow.stable_uuid).where(
                    ShadowLinkRow.shadow_uuid.in_(chunk)
                )
            )
            stable_of.update((shadow, stable) for shadow, stable in links)
        wanted = [*uuids, *stable_of.values()]
        merged: dict[str, dict[str, Any]] = {}
        for chunk_start in range(0, len(wanted), 900):
            chunk = wanted[chunk_start : chunk_start + 900]
            rows = session.execute(
                select(DelayedMetricRow.prediction_uuid, DelayedMetricRow.metrics)
                .where(DelayedMetricRow.prediction_uuid.in_(chunk))
                .order_by(DelayedMetricRow.id)
            )
            for prediction_uuid, metrics in rows:
                merged.setdefault(prediction_uuid, {}).update(metrics)
        for shadow, stable in stable_of.items():
            if stable in merged:
                merged[shadow] = {**merged[stable], **merged.get(shadow, {})}
        return merged

    def _aggregates(
        self,
        session: Any,
        target: Target,
        start_ms: int,
        end_ms: int,
        model_version: str | None,
    ) -> list[dict[str, Any]]:
        query = select(AggregateMetricRow).where(
            AggregateMetricRow.deployment_id == target.deployment_id,
            AggregateMetricRow.start_ms >= start_ms,
            AggregateMetricRow.end_ms <= end_ms,
        )
        if model_version:
            query = query.where(AggregateMetricRow.model_version == model_version)
        records = []
        for row in session.scalars(
            query.order_by(AggregateMetricRow.end_ms, AggregateMetricRow.id)
        ):
            records.append(
                _shape(target, row.start_ms, row.end_ms, "", row.metrics, row.model_version)
            )
        return records

    @staticmethod
    def _record(
        target: Target, row: PredictionRow, delayed: dict[str, Any] | None
    ) -> dict[str, Any]:
        metrics = dict(row.metrics)
        if delayed:
            metrics.update(delayed)
        return _shape(target, row.start_ms, row.end_ms, row.uuid, metrics, row.model_version)


def _shape(
    target: Target,
    start_ms: int,
    end_ms: int,
    prediction_uuid: str,
    metrics: dict[str, Any],
    model_version: str,
) -> dict[str, Any]:
    names = target.identity(model_version)
    return {
        "modelDeploymentCrn": names.deployment,
        "modelBuildCrn": names.build,
        "modelCrn": names.model,
        "startTimeStampMs": start_ms,
        "endTimeStampMs": end_ms,
        "predictionUuid": prediction_uuid,
        "modelVersion": model_version,
        "metrics": metrics,
    }


def _parse_cursor(cursor: str | None) -> tuple[int, str] | None:
    if not cursor:
        return None
    ts, sep, uuid = cursor.partition(":")
    if not sep or not ts.isdigit():
        raise ValidationFailed("invalid cursor", details={"field": "cursor"})
    return int(ts), uuid


def records_frame(records: Sequence[Mapping[str, Any]]) -> Any:
    """Records as a pandas DataFrame: the record fields plus one column per metric key."""
    import pandas as pd

    rows = []
    for rec in records:
        row = {k: v for k, v in rec.items() if k != "metrics"}
        for key, value in rec["metrics"].items():
            row[key] = value
        rows.append(row)
    frame = pd.DataFrame(rows)
    for column in ("startTimeStampMs", "endTimeStampMs"):
        if column in frame:
            frame[column.replace("TimeStampMs", "_time")] = pd.to_datetime(
                frame[column], unit="ms", utc=True
            )
    return frame
