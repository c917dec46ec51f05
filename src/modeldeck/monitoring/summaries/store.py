"""The stored five-minute and hourly summaries that reports are assembled from.

A report over a window asks :meth:`SummaryStore.assemble` for the window's parts
(:mod:`modeldeck.monitoring.summaries.parts`): whole hours come from hourly summaries, other
whole five-minute buckets from five-minute ones, the ragged edges are computed from the records.
A summary is valid while what it was built from is unchanged (predictions per bucket and
version, labels and the last label id, the signature of the settings and reference); a stale or
missing one is built from the records and stored (``analysis_summaries``).

Storing is a write on the read path, and it stays there: the background round
(:meth:`~modeldeck.monitoring.analysis.AnalysisService.refresh_summaries`) keeps the last day
and a stretch of the retention current, but a report over a window it has not reached yet, or
whose buckets late labels made stale, would otherwise build the same buckets from the records
again on every call (the module docstring of :mod:`modeldeck.monitoring.analysis` lists the
writes a report makes). A summary is a cache of the records: failing to store one never fails
a report.

Decoded parts are kept in memory (:class:`PartCache`) by the identity of the stored row they
were read from, so repeated reports do not decode them again.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol, TypeVar

from sqlalchemy import delete, select, text

from modeldeck.monitoring.summaries import parts
from modeldeck.records.model_metrics import now_ms
from modeldeck.store import Store
from modeldeck.store.schema import AnalysisSummaryRow, DeploymentRow

log = logging.getLogger(__name__)

PART_CACHE_BYTES = 32 * 1024 * 1024
"""Stored summaries kept decoded in memory, counted by their stored size (about 4,000
performance parts: two weeks of one deployment's, or a day of a dozen deployments')."""


class _Part(Protocol):
    def to_bytes(self) -> bytes: ...

    def merge(self, other: Any) -> Any: ...


Part = TypeVar("Part", bound=_Part)


class SummaryStore:
    """Five-minute and hourly summaries of one store, and the decoded ones in memory.

    ``summaries=False`` builds every part from the records (nothing read or stored),
    ``hourly=False`` uses five-minute summaries only (for comparisons).
    """

    def __init__(self, store: Store, *, summaries: bool = True, hourly: bool = True) -> None:
        self.store = store
        self.enabled = summaries
        self.hourly = hourly
        self.cache = PartCache(PART_CACHE_BYTES)

    def assemble(
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
        first, last = whole_buckets(start_ms, end_ms)
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
        if not self.enabled:
            for (index, version), part in build(first, last).items():
                out[(first + index * step, version)] = part
            return out, counted
        hours = (
            whole_hours(first, last, start_ms, step_ms or end_ms - start_ms, now_ms())
            if self.hourly
            else []
        )
        for lo, hi in gaps_around(first, last, hours, parts.HOUR_MS):
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
        for lo, hi in bucket_runs(stale, step):
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
        for lo, hi in bucket_runs(sorted({*stale, *unreadable}), hour):
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
                self.cache.put(identity, part, len(data))
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
            part = self.cache.get(identity)
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
                self.cache.put(valid[key], part, len(data))
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


class PartCache:
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


def whole_buckets(start_ms: int, end_ms: int) -> tuple[int, int]:
    """Where the whole five-minute buckets inside ``[start, end)`` begin and end."""
    step = parts.BUCKET_MS
    return -(-start_ms // step) * step, end_ms // step * step


def whole_hours(first: int, last: int, origin: int, step_ms: int, now: int) -> list[int]:
    """The hours inside ``[first, last)`` that are over and lie inside one window of a grid
    of ``step_ms`` from ``origin``: those an hourly summary can stand for."""
    hour = parts.HOUR_MS
    return [
        at
        for at in range(-(-first // hour) * hour, min(last, now) - hour + 1, hour)
        if (at - origin) // step_ms == (at + hour - 1 - origin) // step_ms
    ]


def gaps_around(first: int, last: int, hours: Sequence[int], span: int) -> list[tuple[int, int]]:
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


def bucket_runs(buckets: Sequence[int], step: int) -> list[tuple[int, int]]:
    """Sorted bucket starts as ``[lo, hi)`` runs of consecutive buckets."""
    runs: list[tuple[int, int]] = []
    for bucket in buckets:
        if runs and runs[-1][1] == bucket:
            runs[-1] = (runs[-1][0], bucket + step)
        else:
            runs.append((bucket, bucket + step))
    return runs
