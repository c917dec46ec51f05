"""Micro-batching: concurrent requests share one predict call.

A model's predict costs about the same for one row as for a thousand, so the replica queues the
frames of concurrent requests, concatenates them into one DataFrame, predicts once in a worker
thread and splits the output back by row counts. A lone request is predicted at once: no timer
waits for company.

A model whose predict calls take under a millisecond (a linear model on a few rows) is called on
the event loop itself: handing it to a thread would cost more than the call.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from modeldeck.replica.codecs import Frame

INLINE_BELOW_SECONDS = 0.001


class Batcher:
    def __init__(
        self,
        predict: Callable[[Any], Any],
        make_input: Callable[[list[str] | None, list[list[Any]]], Any],
        *,
        max_rows: int = 1024,
    ) -> None:
        self._predict = predict
        self._make_input = make_input
        self._max_rows = max_rows
        self._queue: asyncio.Queue[tuple[Frame, asyncio.Future[Any]]] = asyncio.Queue()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="predict")
        self._task: asyncio.Task[None] | None = None
        self._cost = INLINE_BELOW_SECONDS  # moving average of predict time; first call in a thread

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
        self._executor.shutdown(wait=False, cancel_futures=True)

    async def submit(self, frame: Frame) -> Any:
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        await self._queue.put((frame, future))
        return await future

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            first = await self._queue.get()
            batch = [first]
            rows = len(first[0].rows)
            while rows < self._max_rows and not self._queue.empty():
                item = self._queue.get_nowait()
                batch.append(item)
                rows += len(item[0].rows)
            groups: dict[tuple[str, ...] | None, list[tuple[Frame, asyncio.Future[Any]]]] = {}
            for item in batch:
                key = tuple(item[0].columns) if item[0].columns is not None else None
                groups.setdefault(key, []).append(item)
            for group in groups.values():
                if self._cost < INLINE_BELOW_SECONDS:
                    _settle(self._predict_group(group))
                else:
                    outcomes = await loop.run_in_executor(
                        self._executor, self._predict_group, group
                    )
                    _settle(outcomes)

    def _predict_group(
        self, group: list[tuple[Frame, asyncio.Future[Any]]]
    ) -> list[tuple[asyncio.Future[Any], Any, BaseException | None]]:
        frames = [f for f, _ in group]
        rows = [r for f in frames for r in f.rows]
        started = time.perf_counter()
        try:
            output = self._predict(self._make_input(frames[0].columns, rows))
            parts = _split(output, [len(f.rows) for f in frames])
        except Exception as exc:
            if len(group) == 1:
                return [(group[0][1], None, exc)]
            # One bad request must not fail its neighbours: predict them one by one.
            return [outcome for item in group for outcome in self._predict_group([item])]
        finally:
            self._cost = 0.8 * self._cost + 0.2 * (time.perf_counter() - started)
        return [(future, part, None) for (_, future), part in zip(group, parts, strict=True)]


def _settle(outcomes: list[tuple[asyncio.Future[Any], Any, BaseException | None]]) -> None:
    for future, value, exc in outcomes:
        if future.done():
            continue
        if exc is not None:
            future.set_exception(exc)
        else:
            future.set_result(value)


def _split(output: Any, counts: list[int]) -> list[Any]:
    """Cut a batch's output into one piece per request."""
    if len(counts) == 1:
        return [output]
    total = sum(counts)
    if hasattr(output, "iloc"):
        if len(output) != total:
            raise ValueError("the model returned a different number of rows than it was given")
        pieces, start = [], 0
        for n in counts:
            pieces.append(output.iloc[start : start + n])
            start += n
        return pieces
    if hasattr(output, "__len__") and len(output) == total:
        pieces, start = [], 0
        for n in counts:
            pieces.append(output[start : start + n])
            start += n
        return pieces
    raise ValueError("the model's output cannot be split by request")
