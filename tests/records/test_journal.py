"""The prediction journal: acknowledged before committed, and never lost in between.

A replica on a SQLite file appends each record to its journal and answers; its writer thread
commits the journal a moment later. These tests hold that moment open (a long
``GROUP_SECONDS``) to check what readers see meanwhile, what happens when the writer is
killed in it, and when the store refuses the commit.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import func, select, text

from modeldeck.errors import NotFound, ServiceUnavailable
from modeldeck.records import writer as writer_module
from modeldeck.records.journal import Journal, absorb, decode, encode, journal_dir
from modeldeck.records.model_metrics import (
    ModelMetrics,
    PredictionRecord,
    Target,
    encoded_row,
    new_prediction_id,
)
from modeldeck.records.writer import GroupWriter
from modeldeck.store import Store
from modeldeck.store.schema import PredictionRow
from tests.fixtures import add_deployment, wait_for

TARGET = Target("id-j", "j")


@pytest.fixture
def metrics(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[ModelMetrics]:
    monkeypatch.setattr(writer_module, "RETRY_DELAYS", (0.01,))
    store = Store(f"sqlite:///{tmp_path / 'store.db'}")
    store.migrate()
    add_deployment(store, TARGET.deployment_id, TARGET.name)
    yield ModelMetrics(store)
    store.close()


def _record(i: int, deployment_id: str = TARGET.deployment_id) -> PredictionRecord:
    return PredictionRecord(
        new_prediction_id(), deployment_id, 1000 + i, 1001 + i, {"input": {"x": i}, "output": i}
    )


def _committed(store: Store) -> int:
    """Rows in the predictions table itself, without folding in the journal."""
    with store.read() as session:
        return int(session.scalar(select(func.count()).select_from(PredictionRow)) or 0)


def _files(store: Store) -> list[Path]:
    directory = journal_dir(store)
    assert directory is not None
    return sorted(directory.glob("*.jsonl")) if directory.exists() else []


def _journaling(metrics: ModelMetrics) -> GroupWriter:
    directory = journal_dir(metrics.store)
    assert directory is not None
    writer = GroupWriter(metrics, journal=directory, owner="test")
    writer.start()
    return writer


def test_a_line_carries_the_row_and_its_metrics_unchanged() -> None:
    record = _record(1)
    record.metrics = {"input": {"naïve": [1.5, None, True]}, "output": "日本", "n": {"a": {}}}
    row = encoded_row(record)
    line = encode(row)
    assert line.endswith(b"\n") and line.count(b"\n") == 1
    assert decode(line[:-1]) == row
    assert json.loads(decode(line[:-1])[6]) == record.metrics


def test_a_write_is_acknowledged_before_its_commit_and_readers_see_it(
    metrics: ModelMetrics, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(writer_module, "GROUP_SECONDS", 30.0)  # the commit waits
    writer = _journaling(metrics)
    try:
        records = [_record(i) for i in range(20)]

        async def produce() -> None:
            await asyncio.gather(*(writer.write(r) for r in records))

        asyncio.run(produce())
        assert _committed(metrics.store) == 0, "nothing committed yet: the journal holds them"
        (journal,) = _files(metrics.store)
        assert len(journal.read_bytes().splitlines()) == 20

        # A reader folds the journal in: every acknowledged record is on the page.
        page = metrics.read(TARGET, start_ms=0)
        assert [r["predictionUuid"] for r in page.metrics] == [r.uuid for r in records]
        assert page.metrics[3]["metrics"] == {"input": {"x": 3}, "output": 3}
        assert journal.exists(), "a live writer's file is left to it"
        assert metrics.count(TARGET) == 20, "read twice, stored once"
    finally:
        monkeypatch.setattr(writer_module, "GROUP_SECONDS", 0.0)
        writer.flush(timeout=10)
        writer.stop()
    assert writer.committed == 20
    assert _committed(metrics.store) == 20
    assert _files(metrics.store) == [], "committed files are deleted"


def test_ground_truth_for_a_journaled_prediction_is_joined(
    metrics: ModelMetrics, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(writer_module, "GROUP_SECONDS", 30.0)
    writer = _journaling(metrics)
    try:
        first, second = _record(1), _record(2)
        writer.write_blocking(first)
        writer.write_blocking(second)
        assert _committed(metrics.store) == 0
        metrics.track_delayed(TARGET, first.uuid, {"actual": 1})
        metrics.track_delayed_many(TARGET, [(second.uuid, {"actual": 2})])
        with pytest.raises(NotFound):
            metrics.track_delayed(TARGET, new_prediction_id(), {"actual": 0})
        merged = metrics.read(TARGET, start_ms=0).metrics
        assert [r["metrics"]["actual"] for r in merged] == [1, 2]
    finally:
        writer.stop()


def test_stop_commits_what_was_journaled(
    metrics: ModelMetrics, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(writer_module, "GROUP_SECONDS", 30.0)
    writer = _journaling(metrics)
    for i in range(5):
        writer.write_blocking(_record(i))
    writer.stop()
    assert _committed(metrics.store) == 5
    assert _files(metrics.store) == []


KILLED_WRITER = """
import json, sys, time
from modeldeck.records import writer as writer_module
from modeldeck.records.journal import journal_dir
from modeldeck.records.model_metrics import ModelMetrics, PredictionRecord, new_prediction_id
from modeldeck.records.writer import GroupWriter
from modeldeck.store import Store

writer_module.GROUP_SECONDS = 3600  # killed before it commits
store = Store(sys.argv[1])
writer = GroupWriter(ModelMetrics(store), journal=journal_dir(store), owner="doomed")
writer.start()
uuids = []
for i in range(50):
    uuid = new_prediction_id()
    writer.write_blocking(PredictionRecord(uuid, "id-j", i, i + 1, {"input": i, "output": -i}))
    uuids.append(uuid)
print(json.dumps(uuids), flush=True)
time.sleep(3600)
"""


def test_the_journal_of_a_killed_writer_is_absorbed_then_deleted(
    metrics: ModelMetrics,
) -> None:
    process = subprocess.Popen(
        [sys.executable, "-c", KILLED_WRITER, metrics.store.url],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        acknowledged = json.loads(process.stdout.readline())
        # Alive, it owns its file: the platform's sweep of dead writers' files leaves it.
        assert absorb(metrics.store, live=False) == 0
        assert len(_files(metrics.store)) == 1
    finally:
        os.kill(process.pid, signal.SIGKILL)
        process.wait(10)
    assert _committed(metrics.store) == 0
    assert absorb(metrics.store, live=False) == 50
    assert _files(metrics.store) == []
    stored = {r["predictionUuid"]: r["metrics"] for r in metrics.read(TARGET, start_ms=0).metrics}
    assert list(stored) == acknowledged
    assert stored[acknowledged[7]] == {"input": 7, "output": -7}
    assert absorb(metrics.store) == 0


def test_a_dead_writers_torn_line_and_garbage_are_skipped_and_reported(
    metrics: ModelMetrics, caplog: pytest.LogCaptureFixture
) -> None:
    directory = journal_dir(metrics.store)
    assert directory is not None
    directory.mkdir()
    good = encode(encoded_row(_record(1)))
    torn = encode(encoded_row(_record(2)))[:-9]
    (directory / "gone-1-00000001.jsonl").write_bytes(good + b"not json\n" + torn)
    with caplog.at_level(logging.WARNING, "modeldeck.journal"):
        assert absorb(metrics.store, live=False) == 1
    assert "line 2 is not a prediction record" in caplog.text
    assert "ends in an incomplete line" in caplog.text
    assert _committed(metrics.store) == 1
    assert _files(metrics.store) == []


def test_rows_of_a_deleted_deployment_are_dropped(metrics: ModelMetrics) -> None:
    directory = journal_dir(metrics.store)
    assert directory is not None
    journal = Journal(directory, "w")
    journal.append(encoded_row(_record(1)))
    journal.append(encoded_row(_record(2, deployment_id="deleted-since")))
    assert absorb(metrics.store) == 1
    assert metrics.count(TARGET) == 1
    journal.close()


def test_a_failing_store_refuses_new_predictions_and_keeps_the_acknowledged_ones(
    metrics: ModelMetrics, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The commit fails for real (the table is renamed away): predictions already
    acknowledged stay in the journal and are committed once the store is back, and no new
    prediction is acknowledged meanwhile."""
    monkeypatch.setattr(writer_module, "GROUP_SECONDS", 0.01)
    monkeypatch.setattr(writer_module, "RETRY_DELAYS", (0.01, 0.02))
    writer = _journaling(metrics)
    with metrics.store.write() as session:
        session.execute(text("ALTER TABLE predictions RENAME TO predictions_away"))
    acknowledged = _record(1)
    try:
        writer.write_blocking(acknowledged)
        wait_for(lambda: writer._failure is not None, timeout=10)
        with pytest.raises(ServiceUnavailable, match="predictions cannot be recorded"):
            writer.write_blocking(_record(2))
        assert len(_files(metrics.store)) >= 1
    finally:
        with metrics.store.write() as session:
            session.execute(text("ALTER TABLE predictions_away RENAME TO predictions"))
    wait_for(lambda: writer.committed == 1, timeout=15)
    writer.write_blocking(_record(3))  # accepted again
    writer.flush(timeout=10)
    writer.stop()
    uuids = [r["predictionUuid"] for r in metrics.read(TARGET, start_ms=0).metrics]
    assert acknowledged.uuid in uuids and len(uuids) == 2
    assert _files(metrics.store) == []


def test_a_journal_needs_a_sqlite_file(tmp_path: Path) -> None:
    store = Store("sqlite://")
    assert journal_dir(store) is None
    with pytest.raises(ValueError, match="SQLite file"):
        GroupWriter(ModelMetrics(store), journal=tmp_path / "j")
    assert absorb(store) == 0


def test_many_threads_append_without_losing_or_repeating_a_line(
    metrics: ModelMetrics, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(writer_module, "GROUP_SECONDS", 0.005)
    writer = _journaling(metrics)
    records = [_record(i) for i in range(4000)]

    async def produce() -> None:
        await asyncio.gather(
            *(asyncio.to_thread(writer.write_blocking, r) for r in records[:2000]),
            *(writer.write(r) for r in records[2000:]),
        )

    asyncio.run(produce())
    writer.flush(timeout=30)
    writer.stop()
    with metrics.store.read() as session:
        stored = list(session.scalars(select(PredictionRow.uuid)))
    assert sorted(stored) == sorted(r.uuid for r in records)
