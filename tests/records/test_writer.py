"""The group writer on both stores: commit before acknowledging, errors to every waiter."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
import sqlalchemy.exc

from modeldeck.records import writer as writer_module
from modeldeck.records.model_metrics import (
    ModelMetrics,
    PredictionRecord,
    Target,
    new_prediction_id,
)
from modeldeck.records.writer import GroupWriter
from modeldeck.store import Store
from tests.fixtures import add_deployment

TARGET = Target("id-w", "w")
INTEGRITY = (sqlite3.IntegrityError, psycopg.IntegrityError, sqlalchemy.exc.IntegrityError)


@pytest.fixture
def metrics(store_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[ModelMetrics]:
    monkeypatch.setattr(writer_module, "RETRY_DELAYS", (0.01,))
    store = Store(store_url)
    store.migrate()
    add_deployment(store, TARGET.deployment_id, TARGET.name)
    yield ModelMetrics(store)
    store.close()


@pytest.fixture
def pg_metrics(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> Iterator[ModelMetrics]:
    """PostgreSQL only: where records are committed on the event loop."""
    from tests.conftest import drop_postgres_database, new_postgres_database

    monkeypatch.setattr(writer_module, "RETRY_DELAYS", (0.01,))
    base = request.getfixturevalue("postgres_admin")
    url, name = new_postgres_database(base)
    store = Store(url)
    try:
        store.migrate()
        add_deployment(store, TARGET.deployment_id, TARGET.name)
        yield ModelMetrics(store)
    finally:
        store.close()
        drop_postgres_database(base, name)


def _record(i: int, deployment_id: str = TARGET.deployment_id) -> PredictionRecord:
    return PredictionRecord(
        new_prediction_id(), deployment_id, 1000 + i, 1001 + i, {"input": {"x": i}, "output": i}
    )


def _group_sizes(metrics: ModelMetrics, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Record the size of every group the writer commits, on either path."""
    sizes: list[int] = []
    insert, insert_async = metrics.insert_predictions, metrics.insert_predictions_async

    def counting(records: Any, **kwargs: Any) -> bool:
        sizes.append(len(records))
        return insert(records, **kwargs)

    async def counting_async(records: Any) -> None:
        sizes.append(len(records))
        await insert_async(records)

    monkeypatch.setattr(metrics, "insert_predictions", counting)
    monkeypatch.setattr(metrics, "insert_predictions_async", counting_async)
    return sizes


def test_every_record_is_committed_before_its_write_returns(metrics: ModelMetrics) -> None:
    writer = GroupWriter(metrics)
    writer.start()
    unseen: list[str] = []

    async def produce() -> None:
        async def request(i: int) -> None:
            record = _record(i)
            await writer.write(record)
            # Read on another connection: committed, not merely sent.
            if not metrics.read(TARGET, uuids=[record.uuid]).metrics:
                unseen.append(record.uuid)

        await asyncio.gather(*(request(i) for i in range(300)))

    asyncio.run(produce())
    writer.stop()
    assert unseen == []
    assert metrics.count(TARGET) == 300 and writer.committed == 300


def test_every_producer_of_a_failed_group_gets_the_error(
    metrics: ModelMetrics, monkeypatch: pytest.MonkeyPatch
) -> None:
    sizes = _group_sizes(metrics, monkeypatch)
    writer = GroupWriter(metrics)
    writer.start()

    async def produce() -> list[BaseException | None]:
        # One unknown deployment (a foreign-key violation) fails the whole group it is in.
        records = [_record(i) for i in range(9)] + [_record(9, "no-such-deployment")]
        return await asyncio.gather(*(writer.write(r) for r in records), return_exceptions=True)

    outcomes = asyncio.run(produce())
    writer.stop()
    assert set(sizes) == {10}  # written in one turn of the loop: one group, then its retries
    # SQLite: the loop's own attempt at the end of the turn, then the thread's and its retry.
    assert len(sizes) == (3 if metrics.store.dialect == "sqlite" else 2)
    assert all(isinstance(o, INTEGRITY) for o in outcomes), outcomes
    assert len({type(o) for o in outcomes}) == 1
    assert metrics.count(TARGET) == 0 and writer.committed == 0


def test_a_later_group_commits_after_a_failed_one(metrics: ModelMetrics) -> None:
    writer = GroupWriter(metrics)
    writer.start()

    async def produce() -> None:
        with pytest.raises(INTEGRITY):
            await writer.write(_record(0, "no-such-deployment"))
        await asyncio.gather(*(writer.write(_record(i)) for i in range(1, 5)))

    asyncio.run(produce())
    writer.stop()
    assert metrics.count(TARGET) == 4


def test_the_records_of_one_turn_are_one_group(
    metrics: ModelMetrics, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(writer_module, "EARLY_START", 10_000)
    sizes = _group_sizes(metrics, monkeypatch)
    writer = GroupWriter(metrics)
    writer.start()

    async def produce() -> None:
        await asyncio.gather(*(writer.write(_record(i)) for i in range(100)))

    asyncio.run(produce())
    writer.stop()
    assert sizes == [100]


def test_groups_are_capped_at_max_group(
    metrics: ModelMetrics, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(writer_module, "EARLY_START", 10_000)
    sizes = _group_sizes(metrics, monkeypatch)
    writer = GroupWriter(metrics, max_group=40)
    writer.start()

    async def produce() -> None:
        await asyncio.gather(*(writer.write(_record(i)) for i in range(100)))

    asyncio.run(produce())
    writer.stop()
    assert sum(sizes) == 100 and max(sizes) <= 40
    assert metrics.count(TARGET) == 100


def test_on_postgres_a_burst_splits_so_that_the_next_group_fills_while_one_commits(
    pg_metrics: ModelMetrics, monkeypatch: pytest.MonkeyPatch
) -> None:
    metrics = pg_metrics
    monkeypatch.setattr(writer_module, "EARLY_START", 16)
    sizes = _group_sizes(metrics, monkeypatch)
    writer = GroupWriter(metrics)
    writer.start()

    async def produce() -> None:
        await asyncio.gather(*(writer.write(_record(i)) for i in range(100)))

    asyncio.run(produce())
    writer.stop()
    assert sizes == [16, 84]
    assert metrics.count(TARGET) == 100


def test_a_cancelled_producer_does_not_hold_up_the_others(metrics: ModelMetrics) -> None:
    writer = GroupWriter(metrics)
    writer.start()

    async def produce() -> None:
        tasks = [asyncio.create_task(writer.write(_record(i))) for i in range(20)]
        await asyncio.sleep(0)  # all twenty have queued their record
        tasks[3].cancel()
        results = await asyncio.gather(*tasks, return_exceptions=True)
        assert isinstance(results[3], asyncio.CancelledError)
        assert all(r is None for i, r in enumerate(results) if i != 3)

    asyncio.run(produce())
    writer.stop()
    assert metrics.count(TARGET) == 20  # the cancelled one was committed all the same


def test_writes_from_threads_and_from_a_loop_mix(metrics: ModelMetrics) -> None:
    writer = GroupWriter(metrics)
    writer.start()
    errors: list[BaseException] = []

    def blocking(first: int) -> None:
        try:
            for i in range(first, first + 25):
                writer.write_blocking(_record(i))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=blocking, args=(1000 * t,)) for t in range(1, 4)]
    for thread in threads:
        thread.start()

    async def produce() -> None:
        await asyncio.gather(*(writer.write(_record(i)) for i in range(100)))

    asyncio.run(produce())
    for thread in threads:
        thread.join()
    writer.stop()
    assert errors == []
    assert metrics.count(TARGET) == 175 and writer.committed == 175


def test_a_blocking_write_gets_the_error(metrics: ModelMetrics) -> None:
    writer = GroupWriter(metrics)
    writer.start()
    with pytest.raises(INTEGRITY):
        writer.write_blocking(_record(0, "no-such-deployment"))
    writer.write_blocking(_record(1))
    writer.stop()
    assert metrics.count(TARGET) == 1


def test_writers_on_several_loops_in_turn(metrics: ModelMetrics) -> None:
    writer = GroupWriter(metrics)
    writer.start()
    for run in range(3):

        async def produce(run: int = run) -> None:
            await asyncio.gather(*(writer.write(_record(100 * run + i)) for i in range(10)))

        asyncio.run(produce())
    writer.stop()
    assert metrics.count(TARGET) == 30


def test_a_dropped_connection_costs_a_retry_not_a_record(
    pg_metrics: ModelMetrics, caplog: pytest.LogCaptureFixture
) -> None:
    metrics = pg_metrics
    writer = GroupWriter(metrics)
    writer.start()

    def drop_connections() -> None:
        with metrics.store.write() as session:
            session.execute(
                sqlalchemy.text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                    " WHERE datname = current_database() AND pid <> pg_backend_pid()"
                )
            )

    async def produce() -> None:
        await asyncio.gather(*(writer.write(_record(i)) for i in range(10)))
        drop_connections()
        await asyncio.gather(*(writer.write(_record(i)) for i in range(10, 20)))

    asyncio.run(produce())
    writer.write_blocking(_record(20))
    drop_connections()
    writer.write_blocking(_record(21))
    writer.stop()
    assert metrics.count(TARGET) == 22
    # Both kept connections (the loop's and the thread's) were dropped and replaced.
    assert caplog.text.count("could not commit") == 2


def test_on_postgres_inserts_go_on_when_the_kept_connection_is_busy(
    pg_metrics: ModelMetrics,
) -> None:
    with pg_metrics.store._kept_lock:  # another thread is using it: a pooled one is used
        assert pg_metrics.insert_predictions([_record(i) for i in range(3)])
    assert pg_metrics.count(TARGET) == 3


def test_on_postgres_a_bad_row_does_not_cost_the_kept_connection(
    pg_metrics: ModelMetrics,
) -> None:
    store = pg_metrics.store
    pg_metrics.insert_predictions([_record(0)])
    before = store._kept.info.backend_pid
    with pytest.raises(INTEGRITY):
        pg_metrics.insert_predictions([_record(1, "no-such-deployment")])
    pg_metrics.insert_predictions([_record(2)])
    assert store._kept.info.backend_pid == before
    assert pg_metrics.count(TARGET) == 2


def test_on_postgres_a_retried_group_that_had_committed_is_no_error(
    pg_metrics: ModelMetrics,
) -> None:
    """A commit that reached the server before its connection died is retried: no error."""
    records = [_record(i) for i in range(3)]

    async def twice() -> None:
        await pg_metrics.insert_predictions_async(records)
        await pg_metrics.insert_predictions_async(records)  # the writer's retry

    asyncio.run(twice())
    assert pg_metrics.count(TARGET) == 3


@pytest.mark.parametrize("checkpoint_seconds", [0.05, 3600.0])
def test_sqlite_commits_leave_checkpoints_to_the_writer_thread(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch, checkpoint_seconds: float
) -> None:
    """The event loop's commits never checkpoint (milliseconds of copying and syncing); the
    writer thread does, about once a second: the data then reaches the database file."""
    monkeypatch.setattr(writer_module, "CHECKPOINT_SECONDS", checkpoint_seconds)
    database = tmp_path / "store.db"
    store = Store(f"sqlite:///{database}")
    store.migrate()
    add_deployment(store, TARGET.deployment_id, TARGET.name)
    store.checkpoint()
    size_before = database.stat().st_size
    writer = GroupWriter(ModelMetrics(store))
    writer.start()
    padding = "x" * 1000

    async def produce() -> None:
        for start in range(0, 6000, 20):  # well past SQLite's automatic 1,000-page checkpoint
            records = [_record(i) for i in range(start, start + 20)]
            for record in records:
                record.metrics["padding"] = padding
            await asyncio.gather(*(writer.write(r) for r in records))

    asyncio.run(produce())
    assert writer.committed == 6000

    def grown() -> int:
        return database.stat().st_size - size_before

    if checkpoint_seconds < 1:
        deadline = time.monotonic() + 10
        while grown() < 6_000_000 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert grown() >= 6_000_000  # checkpointed into the database file
    else:
        time.sleep(0.3)
        assert grown() == 0  # everything is still in the WAL: no commit checkpointed
    writer.stop()
    assert ModelMetrics(store).count(TARGET) == 6000
    store.close()


def test_without_a_writer_thread_sqlite_commits_keep_checkpointing(tmp_path: Any) -> None:
    """Only the group writer, whose thread checkpoints, turns the hot path's checkpoints off:
    a process that inserts directly must not grow the WAL without bound."""
    database = tmp_path / "store.db"
    store = Store(f"sqlite:///{database}")
    store.migrate()
    add_deployment(store, TARGET.deployment_id, TARGET.name)
    store.checkpoint()
    size_before = database.stat().st_size
    metrics = ModelMetrics(store)
    for start in range(0, 6000, 20):
        records = [_record(i) for i in range(start, start + 20)]
        for record in records:
            record.metrics["padding"] = "x" * 1000
        assert metrics.insert_predictions(records)
    assert database.stat().st_size - size_before >= 4_000_000  # checkpointed as it went
    store.close()
