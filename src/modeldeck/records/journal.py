"""The prediction journal: a replica's acknowledgement, before its records reach the store.

On a SQLite store a replica does not commit a prediction's record before it answers: it
appends the record, one line of JSON, to a file of its own in the journal directory next to
the database (``<database>.predictions-journal/``). One ``write`` system call, a few
microseconds, where a SQLite commit from a replica took 130 microseconds and competed with the
gateway for the machine's cores. The replica's writer thread then commits the journal's records
in groups, every ``GROUP_SECONDS``, and deletes each file once its records are committed.

The file survives the replica (its bytes are in the operating system's page cache once
``write`` returns), so the promise holds: when an endpoint has answered 200, its prediction is
recorded. It is the durability SQLite's WAL gives with ``synchronous=NORMAL``, the store's
setting: safe against any process being killed, not against the machine losing power.

Readers fold in what is not committed yet: :func:`absorb` inserts every journal line the store
does not hold (UUIDs are the primary key, so a line committed twice is harmless), before
``read_metrics``, before a delayed metric's UUID is declared unknown, and before drift and
performance are computed. Files whose writer is gone (killed) are absorbed and deleted, by the
next reader or by the platform's background loop.

Who owns a file is told by ``flock``: a writer holds an exclusive lock on each of its files for
as long as it lives, and the kernel drops it when the process dies, however it dies. A file is
created under a temporary name, locked, then renamed, so no reader ever sees a file that is
nobody's yet.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import orjson

from modeldeck.records.rows import insert_new_rows

if TYPE_CHECKING:
    from modeldeck.store import Store

log = logging.getLogger("modeldeck.journal")

SUFFIX = ".jsonl"
_TEMPORARY = ".new-"

Row = tuple[str, str, str, "int | None", int, int, str]
"""A predictions row as the hot path's insert takes it: metrics already encoded as JSON."""


def journal_dir(store: Store) -> Path | None:
    """Where ``store``'s replicas journal predictions; ``None`` unless it is a SQLite file."""
    path = store.sqlite_path
    return None if path is None else Path(path + ".predictions-journal")


def encode(row: Row) -> bytes:
    """One journal line: the row as a JSON array, its metrics (already JSON) spliced in."""
    head = orjson.dumps(row[:6])
    return b"".join((head[:-1], b",", row[6].encode(), b"]\n"))


def decode(line: bytes) -> Row:
    uuid, deployment_id, model_version, replica, start_ms, end_ms, metrics = orjson.loads(line)
    encoded = orjson.dumps(metrics).decode()
    return (uuid, deployment_id, model_version, replica, start_ms, end_ms, encoded)


@dataclass
class Segment:
    """One journal file of a writer: its descriptor (locked) and the rows written to it."""

    path: Path
    fd: int
    rows: list[Row] = field(default_factory=list)

    def close(self, *, delete: bool) -> None:
        if delete:
            with contextlib.suppress(FileNotFoundError):
                self.path.unlink()
        os.close(self.fd)  # drops the lock


class Journal:
    """A writer's journal files: one takes appends, older ones wait for their commit.

    :meth:`append` is the hot path (any thread); :meth:`take` and :meth:`close` are the
    writer thread's. Files are named ``<owner>-<sequence>.jsonl``.
    """

    def __init__(self, directory: Path, owner: str) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.directory = directory
        self._owner = f"{owner}-{os.getpid()}"
        self._sequence = 0
        self._lock = threading.Lock()
        self.appended = 0
        self._active = self._create()
        self._spare: Segment | None = None

    def append(self, row: Row) -> bool:
        """Write one row to the active file: once this returns, the row outlives the process.

        Returns whether the file held no row before (the writer thread has work again).
        """
        line = encode(row)
        with self._lock:
            segment = self._active
            written = os.write(segment.fd, line)
            if written != len(line):  # a full disk: drop the partial line from the file
                os.ftruncate(segment.fd, os.lseek(segment.fd, 0, os.SEEK_CUR) - written)
                os.lseek(segment.fd, 0, os.SEEK_END)
                raise OSError(28, "No space left on device (prediction journal)")
            segment.rows.append(row)
            self.appended += 1
            return len(segment.rows) == 1

    def take(self) -> Segment | None:
        """Swap in a fresh file and return the one that was active, unless it is empty."""
        if not self._active.rows:
            return None
        if self._spare is None:
            self._spare = self._create()
        with self._lock:
            taken, self._active = self._active, self._spare
        self._spare = None
        return taken

    def close(self) -> None:
        """Close the files that hold nothing (call after the last :meth:`take`)."""
        for segment in (self._active, self._spare):
            if segment is not None:
                segment.close(delete=not segment.rows)
        self._spare = None

    def _create(self) -> Segment:
        self._sequence += 1
        name = f"{self._owner}-{self._sequence:08d}{SUFFIX}"
        temporary = self.directory / f"{_TEMPORARY}{name}"
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            path = self.directory / name
            os.rename(temporary, path)
        except BaseException:
            os.close(fd)
            with contextlib.suppress(FileNotFoundError):
                temporary.unlink()
            raise
        return Segment(path, fd)


def absorb(store: Store, *, live: bool = True) -> int:
    """Commit into ``store`` the journal lines it does not hold yet; returns how many were new.

    Files of writers that are gone are deleted once committed. Those of live writers are read
    too when ``live`` (a reader wants to see every acknowledged prediction), and left to their
    writer. Lines of deployments deleted since are dropped, as their records would have been.
    """
    directory = journal_dir(store)
    if directory is None:
        return 0
    try:
        names = sorted(
            n for n in os.listdir(directory) if n.endswith(SUFFIX) and not n.startswith(_TEMPORARY)
        )
    except FileNotFoundError:
        return 0
    if not names:
        return 0
    rows: list[Row] = []
    orphans: list[tuple[Path, int]] = []
    try:
        for name in names:
            path = directory / name
            try:
                fd = os.open(path, os.O_RDONLY)
            except FileNotFoundError:
                continue  # committed and deleted by its writer meanwhile
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                orphan = False
            else:
                orphan = True
            if not orphan and not live:
                os.close(fd)
                continue
            with os.fdopen(os.dup(fd), "rb") as file:
                data = file.read()
            rows.extend(_rows(data, path, final=orphan))
            if orphan:
                orphans.append((path, fd))  # keep the lock until its rows are committed
            else:
                os.close(fd)
        added = _insert(store, rows) if rows else 0
        for path, _ in orphans:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
        if added and orphans:
            log.info(
                "absorbed %d journal file(s) of stopped replicas: %d new prediction record(s)",
                len(orphans), added,
            )  # fmt: skip
        return added
    finally:
        for _, fd in orphans:
            os.close(fd)


def _rows(data: bytes, path: Path, *, final: bool) -> Iterable[Row]:
    lines = data.split(b"\n")
    tail = lines.pop()  # after the last newline: empty, or a line still being written
    if tail and final:
        # The writer died mid-line: that prediction was never acknowledged.
        log.warning("%s ends in an incomplete line (%d bytes), skipped", path.name, len(tail))
    for number, line in enumerate(lines, 1):
        if not line:
            continue
        try:
            yield decode(line)
        except (ValueError, TypeError) as exc:
            log.warning("%s line %d is not a prediction record (%s)", path.name, number, exc)


def _insert(store: Store, rows: list[Row]) -> int:
    return insert_new_rows(store, rows)
