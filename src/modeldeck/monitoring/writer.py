"""Group commit: the predictions of concurrent requests share one transaction.

A replica answers 200 only after its prediction's record is committed, so nothing acknowledged
can be lost; one writer thread drains everything queued while the previous transaction ran and
commits it at once, so the cost per prediction falls as traffic rises.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
import time
from concurrent.futures import Future

from modeldeck.monitoring.model_metrics import ModelMetrics, PredictionRecord

log = logging.getLogger("modeldeck.writer")

MAX_GROUP = 2048
RETRY_DELAYS = (0.05, 0.2, 1.0)

_STOP = object()


class GroupWriter:
    def __init__(self, metrics: ModelMetrics, *, max_group: int = MAX_GROUP) -> None:
        self._metrics = metrics
        self._max_group = max_group
        self._queue: queue.SimpleQueue[object] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="metrics-writer", daemon=True)
        self.committed = 0

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Commit what is queued, then stop."""
        self._queue.put(_STOP)
        self._thread.join(timeout)

    def submit(self, record: PredictionRecord) -> Future[None]:
        future: Future[None] = Future()
        self._queue.put((record, future))
        return future

    async def write(self, record: PredictionRecord) -> None:
        """Return once the record is committed; raise if it could not be."""
        await asyncio.wrap_future(self.submit(record))

    def write_blocking(self, record: PredictionRecord, timeout: float = 30.0) -> None:
        self.submit(record).result(timeout)

    def _run(self) -> None:
        stopping = False
        while not stopping:
            item = self._queue.get()
            if item is _STOP:
                return
            group = [item]
            while len(group) < self._max_group:
                try:
                    more = self._queue.get_nowait()
                except queue.Empty:
                    break
                if more is _STOP:
                    stopping = True
                    break
                group.append(more)
            self._commit(group)  # type: ignore[arg-type]

    def _commit(self, group: list[tuple[PredictionRecord, Future[None]]]) -> None:
        records = [r for r, _ in group]
        error: BaseException | None = None
        for delay in (0.0, *RETRY_DELAYS):
            if delay:
                time.sleep(delay)
            try:
                self._metrics.insert_predictions(records)
                error = None
                break
            except Exception as exc:  # the store is down or busy: retry, then give up loudly
                error = exc
                log.warning("could not commit %d predictions: %s", len(records), exc)
        for _, future in group:
            if error is None:
                future.set_result(None)
            else:
                future.set_exception(error)
        if error is None:
            self.committed += len(records)
