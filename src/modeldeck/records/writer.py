"""Group commit: the predictions of concurrent requests share one transaction.

A replica answers 200 only after its prediction's record is committed, so nothing acknowledged
can be lost; records that arrive while a transaction runs are committed together in the next,
so the cost per prediction falls as traffic rises.

On SQLite the records of one turn of an event loop form a batch. At the end of the turn the loop
commits it itself when no commit is running (on the store's kept connection a few rows take
about 40 microseconds, less than the round trip through a thread); otherwise the batch goes to
one writer thread, which drains everything queued while the previous transaction ran and
commits it at once.

A replica on a SQLite file store goes further: it journals instead (``journal=``). A record
is acknowledged once it is appended to the replica's prediction journal, a file that outlives
the process (:mod:`modeldeck.records.journal`), and the writer thread commits the journal
into the store every ``GROUP_SECONDS``: no commit is waited for on the request's path at all.

On PostgreSQL each event loop commits its own records, on the loop, with one
``INSERT … SELECT FROM jsonb_array_elements`` per group
(``ModelMetrics.insert_predictions_async``): the loop serves requests while the server works,
and nothing has to wait for the GIL. A writer thread that finishes a commit must win the GIL
back from a busy loop at every step of the protocol (up to the 5 ms switch interval each time),
which cost more than the commit itself. Threads (``write_blocking``) still use the thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import threading
import time
from pathlib import Path
from typing import Any

from modeldeck.errors import ServiceUnavailable
from modeldeck.records.journal import Journal, Segment
from modeldeck.records.model_metrics import ModelMetrics, PredictionRecord, encoded_row
from modeldeck.records.rows import insert_new_rows

log = logging.getLogger("modeldeck.writer")

MAX_GROUP = 2048
# PostgreSQL: when no commit is running, one starts as soon as this many records wait, rather
# than at the end of the loop's turn, so that the next group fills while it runs.
EARLY_START = 128
# A failed commit is retried after each of these delays. The loops are plain ``for`` loops, not
# tenacity's (which the alert deliveries use): its Retrying/AsyncRetrying objects cost 90 and
# 170 us per commit here even when the first attempt succeeds, on the path of every prediction.
RETRY_DELAYS = (0.05, 0.2, 1.0)
# SQLite: the writer thread checkpoints the WAL this often while predictions are committed
# (the hot path's commits never do: ``Store.checkpoint``).
CHECKPOINT_SECONDS = 1.0
# Journaling: how long the writer thread lets records gather before it commits them, and how
# many may wait uncommitted before new predictions are refused (the store is down or slow).
# Nothing waits for these commits (readers fold the journal in), so the group may be long: a
# transaction's own cost and the WAL checkpoint after it are shared by more rows. On a 2-core
# machine the thread spent about 47 us of CPU per prediction at 0.02 s and 15 at 0.1 s; in
# isolation a commit costs 5.7 us per row in groups of 100 and 2.7 in groups of 500
# (insert and checkpoint). A reader folds in at most this long's worth of lines per replica.
GROUP_SECONDS = 0.5
MAX_UNCOMMITTED = 200_000

_STOP = object()


class GroupWriter:
    def __init__(
        self,
        metrics: ModelMetrics,
        *,
        max_group: int = MAX_GROUP,
        journal: Path | None = None,
        owner: str = "writer",
    ) -> None:
        self._metrics = metrics
        self._max_group = max_group
        self._on_loop = metrics.store.dialect == "postgresql"
        self._queue: queue.SimpleQueue[_Batch | object] = queue.SimpleQueue()
        self._filling: dict[asyncio.AbstractEventLoop, _Batch] = {}  # one batch per loop
        self._loop_commits: dict[asyncio.AbstractEventLoop, _LoopCommits] = {}
        self._thread = threading.Thread(target=self._run, name="metrics-writer", daemon=True)
        self._commit_lock = threading.Lock()  # one commit at a time: inline or the thread's
        self.committed = 0
        self._journal: Journal | None = None
        if journal is not None:
            if metrics.store.sqlite_path is None:
                raise ValueError("a prediction journal needs a SQLite file store")
            self._journal = Journal(journal, owner)
            self._thread = threading.Thread(
                target=self._run_journal, name="metrics-journal", daemon=True
            )
        self._wake = threading.Event()
        self._hurry = threading.Event()  # flush and stop: commit now
        self._stopping = False
        self._uncommitted: list[Segment] = []  # taken from the journal, commit failed
        self._failure: BaseException | None = None  # the last commit's, until one succeeds
        self._progress = threading.Condition()

    def start(self) -> None:
        if not self._on_loop:
            self._metrics.store.defer_checkpoints()  # the thread checkpoints, the loops do not
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Commit what is queued for the thread, then stop.

        Records committed on an event loop are awaited by their requests: stop the server
        (which lets them finish) before the writer.
        """
        if self._journal is not None:
            self._stopping = True
            self._hurry.set()
            self._wake.set()
        else:
            self._queue.put(_STOP)
        self._thread.join(timeout)

    def flush(self, timeout: float = 30.0) -> None:
        """Journaling: return once every record written so far is committed into the store."""
        if self._journal is None:
            return
        target = self._journal.appended
        self._hurry.set()
        self._wake.set()
        with self._progress:
            if not self._progress.wait_for(lambda: self.committed >= target, timeout):
                raise TimeoutError(
                    f"the metrics writer committed {self.committed} of {target} records "
                    f"within {timeout:g} s"
                    + (f": {self._failure}" if self._failure is not None else "")
                )

    def _journal_append(self, record: PredictionRecord) -> None:
        assert self._journal is not None
        if self._failure is not None:
            raise self._failure  # the store refuses commits: acknowledge nothing more
        if self._journal.appended - self.committed >= MAX_UNCOMMITTED:
            raise ServiceUnavailable(
                f"the store is {self._journal.appended - self.committed} predictions "
                "behind; retry shortly"
            )
        if self._journal.append(encoded_row(record)):
            self._wake.set()

    async def write(self, record: PredictionRecord) -> None:
        """Return once the record is committed (or, journaling, appended to the journal);
        raise if it could not be.

        On SQLite the records of one turn of the event loop form one batch. At the end of the
        turn, if no commit is running, the loop commits the batch itself (a few rows commit in
        about 40 microseconds on the store's kept connection: less than waking the writer
        thread and being woken by it, about 150); otherwise the batch joins the thread's next
        group, so that under load one transaction carries many requests. On PostgreSQL the
        loop commits without blocking anyway.
        """
        if self._journal is not None:
            self._journal_append(record)
            return
        loop = asyncio.get_running_loop()
        if self._on_loop:
            commits = self._loop_commits.get(loop)
            if commits is None:
                for closed in [lp for lp in self._loop_commits if lp.is_closed()]:
                    del self._loop_commits[closed]
                commits = self._loop_commits[loop] = _LoopCommits(self, loop)
            await commits.add(record)
            return
        future: asyncio.Future[None] = loop.create_future()
        batch = self._filling.get(loop)
        if batch is None:
            batch = self._filling[loop] = _Batch(loop)
            loop.call_soon(self._end_of_turn, batch)
        batch.records.append(record)
        batch.waiters.append(future)
        if len(batch.records) >= self._max_group:
            self._hand_over(batch)
        await future

    def write_blocking(self, record: PredictionRecord, timeout: float = 30.0) -> None:
        """:meth:`write` for code running in a thread (decorated predict functions)."""
        if self._journal is not None:
            self._journal_append(record)
            return
        waiter = _Waiter()
        batch = _Batch(None)
        batch.records.append(record)
        batch.waiters.append(waiter)
        self._queue.put(batch)
        waiter.wait(timeout)

    def _end_of_turn(self, batch: _Batch) -> None:
        """Commit a loop's batch right here when nothing else is committing, else queue it."""
        assert batch.loop is not None
        if self._filling.get(batch.loop) is not batch:
            return  # already handed over, full
        del self._filling[batch.loop]
        if self._queue.empty() and self._commit_lock.acquire(blocking=False):
            try:
                # Never wait on the event loop: if another process is writing, use the thread.
                if self._metrics.insert_predictions(batch.records, wait=False):
                    self.committed += len(batch.records)
                    _settle(batch.waiters, None)
                    return
            except Exception:  # let the writer thread retry it like any other
                pass
            finally:
                self._commit_lock.release()
        self._queue.put(batch)

    def _hand_over(self, batch: _Batch) -> None:
        """Queue a loop's batch for the thread: at the end of the turn, or once it is full."""
        assert batch.loop is not None
        if self._filling.get(batch.loop) is batch:
            del self._filling[batch.loop]
            self._queue.put(batch)

    def _run(self) -> None:
        stopping = False
        checkpointed_at, committed = time.monotonic(), self.committed
        while not stopping:
            try:
                item = self._queue.get(timeout=CHECKPOINT_SECONDS)
            except queue.Empty:
                item = None
            if not self._on_loop and self.committed != committed:
                now = time.monotonic()
                if item is None or now - checkpointed_at >= CHECKPOINT_SECONDS:
                    checkpointed_at, committed = now, self.committed
                    self._checkpoint()
            if item is None:
                continue
            if item is _STOP:
                return
            assert isinstance(item, _Batch)
            group = [item]
            size = len(item.records)
            while size < self._max_group:
                try:
                    more = self._queue.get_nowait()
                except queue.Empty:
                    break
                if more is _STOP:
                    stopping = True
                    break
                assert isinstance(more, _Batch)
                group.append(more)
                size += len(more.records)
            self._commit(group)

    def _run_journal(self) -> None:
        """Journaling: every ``GROUP_SECONDS`` (while records come) commit what was journaled."""
        assert self._journal is not None
        journal = self._journal
        checkpointed_at, committed = time.monotonic(), self.committed
        while True:
            woken = self._wake.wait(CHECKPOINT_SECONDS)
            self._wake.clear()
            stopping = self._stopping
            if woken and not stopping:
                self._hurry.wait(GROUP_SECONDS)  # let the group fill, unless flushed
                self._hurry.clear()
            try:
                taken = journal.take()
            except OSError as exc:  # no room for a new file: keep appending to the old one
                log.warning("could not start a new prediction journal file: %s", exc)
                taken = None
            if taken is not None:
                self._uncommitted.append(taken)
            if self._uncommitted:
                self._commit_journaled(stopping)
            if self.committed != committed:
                now = time.monotonic()
                if not woken or now - checkpointed_at >= CHECKPOINT_SECONDS:
                    checkpointed_at, committed = now, self.committed
                    self._checkpoint()
            if stopping:
                # What could not be committed stays in its files, for the platform to absorb.
                for segment in self._uncommitted:
                    segment.close(delete=False)
                journal.close()
                return
            if self._uncommitted:
                time.sleep(RETRY_DELAYS[-1])  # the store is failing: retry, not spin

    def _commit_journaled(self, stopping: bool) -> None:
        error: BaseException | None = None
        for delay in (0.0,) if stopping else (0.0, *RETRY_DELAYS):
            if delay:
                time.sleep(delay)
            rows = [row for segment in self._uncommitted for row in segment.rows]
            try:
                with self._commit_lock:
                    insert_new_rows(self._metrics.store, rows)
            except Exception as exc:  # the store is down, busy or full: retry, then refuse
                error = exc
                log.warning("could not commit %d journaled predictions: %s", len(rows), exc)
                continue
            for segment in self._uncommitted:
                segment.close(delete=True)
            self._uncommitted.clear()
            self._failure = None
            with self._progress:
                self.committed += len(rows)
                self._progress.notify_all()
            return
        self._failure = _unrecorded(error)

    def _checkpoint(self) -> None:
        try:
            self._metrics.store.checkpoint()
        except Exception as exc:  # the next one will catch up; commits do not depend on it
            log.warning("could not checkpoint the store: %s", exc)

    def _commit(self, group: list[_Batch]) -> None:
        records = group[0].records if len(group) == 1 else [r for b in group for r in b.records]
        error: BaseException | None = None
        for delay in (0.0, *RETRY_DELAYS):
            if delay:
                time.sleep(delay)
            try:
                with self._commit_lock:
                    self._metrics.insert_predictions(records)
                error = None
                break
            except Exception as exc:  # the store is down or busy: retry, then give up loudly
                error = exc
                log.warning("could not commit %d predictions: %s", len(records), exc)
        if error is None:
            self.committed += len(records)
        # One wake-up per event loop for the whole group, not one per request.
        by_loop: dict[asyncio.AbstractEventLoop, list[Any]] = {}
        for batch in group:
            if batch.loop is None:
                for waiter in batch.waiters:
                    waiter.set(error)
            else:
                by_loop.setdefault(batch.loop, []).extend(batch.waiters)
        for loop, futures in by_loop.items():
            # A closed loop raises RuntimeError: nobody is waiting any more.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(_settle, futures, error)

    async def _commit_on_loop(self, records: list[PredictionRecord]) -> BaseException | None:
        """Commit a group on the running loop, retrying as the thread does; returns the error."""
        error: BaseException | None = None
        for delay in (0.0, *RETRY_DELAYS):
            if delay:
                await asyncio.sleep(delay)
            try:
                await self._metrics.insert_predictions_async(records)
            except Exception as exc:  # the store is down or busy: retry, then give up loudly
                error = exc
                log.warning("could not commit %d predictions: %s", len(records), exc)
                continue
            self.committed += len(records)
            return None
        return error


def _unrecorded(error: BaseException | None) -> BaseException:
    # The cause is logged with each failed attempt; callers get no store internals.
    failure = ServiceUnavailable("predictions cannot be recorded: the store refuses writes; retry")
    failure.__cause__ = error
    return failure


class _Batch:
    """Records bound for the thread, and who waits for them: one loop's futures, or _Waiters."""

    __slots__ = ("loop", "records", "waiters")

    def __init__(self, loop: asyncio.AbstractEventLoop | None) -> None:
        self.loop = loop
        self.records: list[PredictionRecord] = []
        self.waiters: list[Any] = []


class _LoopCommits:
    """PostgreSQL: one event loop's group commit, run on that loop by one task at a time.

    Records wait in ``_records`` while a commit runs; when it ends, the task settles that
    group's futures and commits everything that arrived meanwhile. With no commit running, one
    starts at the end of the turn, or at once when ``EARLY_START`` records wait: so a burst of
    requests woken together splits into two groups that take turns, one filling (the loop
    busy) while the other commits (the server busy).
    """

    def __init__(self, writer: GroupWriter, loop: asyncio.AbstractEventLoop) -> None:
        self._writer = writer
        self._loop = loop
        self._records: list[PredictionRecord] = []
        self._futures: list[asyncio.Future[None]] = []
        self._task: asyncio.Task[None] | None = None
        self._start_scheduled = False

    def add(self, record: PredictionRecord) -> asyncio.Future[None]:
        future: asyncio.Future[None] = self._loop.create_future()
        self._records.append(record)
        self._futures.append(future)
        if self._task is None:
            if len(self._records) >= EARLY_START:
                self._start()
            elif not self._start_scheduled:
                self._start_scheduled = True
                self._loop.call_soon(self._start)
        return future

    def _start(self) -> None:
        self._start_scheduled = False
        if self._task is None and self._records:
            self._task = self._loop.create_task(self._run(*self._take()))

    def _take(self) -> tuple[list[PredictionRecord], list[asyncio.Future[None]]]:
        limit = self._writer._max_group
        records, futures = self._records[:limit], self._futures[:limit]
        del self._records[:limit], self._futures[:limit]
        return records, futures

    async def _run(
        self, records: list[PredictionRecord], futures: list[asyncio.Future[None]]
    ) -> None:
        try:
            while True:
                error = await self._writer._commit_on_loop(records)
                _settle(futures, error)
                if not self._records:
                    return
                records, futures = self._take()
        except BaseException:  # cancelled (the loop is shutting down): nothing is known
            for future in futures:
                future.cancel()
            raise
        finally:
            self._task = None
            if self._records and not self._start_scheduled:
                self._start_scheduled = True
                self._loop.call_soon(self._start)


class _Waiter:
    def __init__(self) -> None:
        self._event = threading.Event()
        self._error: BaseException | None = None

    def set(self, error: BaseException | None) -> None:
        self._error = error
        self._event.set()

    def wait(self, timeout: float) -> None:
        if not self._event.wait(timeout):
            raise TimeoutError(f"the metrics writer did not commit within {timeout:g} s")
        if self._error is not None:
            raise self._error


def _settle(futures: list[asyncio.Future[None]], error: BaseException | None) -> None:
    for future in futures:
        if future.done():
            continue
        if error is None:
            future.set_result(None)
        else:
            future.set_exception(error)
