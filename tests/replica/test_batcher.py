from __future__ import annotations

import asyncio

import pytest

from modeldeck.replica.batcher import Batcher
from modeldeck.replica.codecs import Frame
from tests.fixtures import SumModel


async def _run(model: SumModel, frames: list[Frame]) -> list[object]:
    batcher = Batcher(model.predict, model.make_input, max_rows=1024)
    batcher.start()
    try:
        return await asyncio.gather(*(batcher.submit(f) for f in frames), return_exceptions=True)
    finally:
        await batcher.stop()


def test_concurrent_requests_share_predict_calls_and_get_their_own_rows() -> None:
    model = SumModel()
    frames = [Frame(["a", "b"], [[i, 1]] * (1 + i % 3)) for i in range(50)]
    results = asyncio.run(_run(model, frames))
    for i, result in enumerate(results):
        assert list(result) == [i + 1] * (1 + i % 3)  # type: ignore[call-overload]
    assert sum(model.calls) == sum(len(f.rows) for f in frames)
    assert len(model.calls) < len(frames)  # batched, not one call per request


def test_one_failing_request_does_not_fail_its_neighbours() -> None:
    model = SumModel()
    frames = [
        Frame(["a", "b"], [[1, 1]]),
        Frame(["a", "b"], [[-1, 1]]),
        Frame(["a", "b"], [[2, 2]]),
    ]
    results = asyncio.run(_run(model, frames))
    assert list(results[0]) == [2]  # type: ignore[call-overload]
    assert isinstance(results[1], ValueError)
    assert list(results[2]) == [4]  # type: ignore[call-overload]


@pytest.mark.parametrize("max_rows", [1, 7])
def test_batches_respect_the_row_limit(max_rows: int) -> None:
    model = SumModel()

    async def go() -> None:
        batcher = Batcher(model.predict, model.make_input, max_rows=max_rows)
        batcher.start()
        await asyncio.gather(*(batcher.submit(Frame(["a", "b"], [[1, 1]])) for _ in range(20)))
        await batcher.stop()

    asyncio.run(go())
    assert sum(model.calls) == 20
    assert max(model.calls) <= max_rows
