"""The store: one SQLAlchemy schema on SQLite (WAL, one writer) or PostgreSQL.

Reads use a pooled engine. On SQLite every write goes through one writer: a process-wide lock
plus ``BEGIN IMMEDIATE``, so writers from several processes (platform and replicas) queue on the
database lock instead of failing half-way. PostgreSQL sits behind the same interface.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import sqlite3
import threading
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import orjson
from alembic import command
from alembic.config import Config as AlembicConfig
from sqlalchemy import Connection, Engine, create_engine, event, inspect
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from modeldeck.errors import ConfigurationError
from modeldeck.store import guard

MIGRATIONS_DIR = Path(__file__).parent / "migrations"


def _json_dumps(value: Any) -> str:
    return orjson.dumps(value).decode()


_SQLITE_PRAGMAS = (
    "PRAGMA journal_mode=WAL",
    "PRAGMA synchronous=NORMAL",
    "PRAGMA foreign_keys=ON",
    "PRAGMA busy_timeout=30000",
)


def _sqlite_engine(url: str, *, immediate: bool) -> Engine:
    engine = create_engine(
        url,
        connect_args={"check_same_thread": False, "timeout": 30},
        # Errors are logged without their parameters: rows hold key hashes and secrets.
        hide_parameters=True,
        json_serializer=_json_dumps,
        json_deserializer=orjson.loads,
    )

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy, not the driver, emit BEGIN so that it can be BEGIN IMMEDIATE.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        for pragma in _SQLITE_PRAGMAS:
            cursor.execute(pragma)
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

    return engine


def _sqlite_connect(path: str) -> sqlite3.Connection:
    """A driver connection set up as the engines' are; transactions are explicit."""
    connection = sqlite3.connect(path, timeout=30, isolation_level=None, check_same_thread=False)
    for pragma in _SQLITE_PRAGMAS:
        connection.execute(pragma)
    return connection


class Store:
    """Sessions for reading and for writing, and the schema's migrations."""

    def __init__(self, url: str) -> None:
        self.url = url
        parsed = make_url(url)
        self.dialect = parsed.get_backend_name()
        if self.dialect == "sqlite":
            database = parsed.database
            if database and database != ":memory:":
                ensure_writable_dir(Path(database).parent, "store directory")
            self.engine = _sqlite_engine(url, immediate=False)
            self._write_engine = _sqlite_engine(url, immediate=True)
        else:
            self.engine = create_engine(
                url,
                pool_pre_ping=True,
                pool_size=10,
                max_overflow=20,
                hide_parameters=True,
                json_serializer=_json_dumps,
                json_deserializer=orjson.loads,
            )
            self._write_engine = self.engine
        self._read_sessions = sessionmaker(self.engine, expire_on_commit=False)
        self._write_sessions = sessionmaker(self._write_engine, expire_on_commit=False)
        guard.install(self._read_sessions)
        guard.install(self._write_sessions)
        self._write_lock: _WriterLock | None = None
        # PostgreSQL: autocommit connections kept for bulk writes (one more per event loop).
        self._kept_lock = threading.Lock()
        self._kept: Any = None
        self._kept_async: dict[asyncio.AbstractEventLoop, _KeptAsync] = {}
        # SQLite: the file, and a driver connection kept for the hot path (guarded by the
        # writer lock), when the store is a file (an in-memory store lives in the engine's).
        self._sqlite_path: str | None = None
        self._kept_sqlite: sqlite3.Connection | None = None
        self._checkpoint_lock = threading.Lock()
        self._checkpoints_deferred = False
        self._checkpointer: sqlite3.Connection | None = None
        if self.dialect == "sqlite":
            database = parsed.database or ""
            if database not in ("", ":memory:"):
                self._sqlite_path = database
            lock_path = None if database in ("", ":memory:") else Path(database + ".writer-lock")
            self._write_lock = _WriterLock(lock_path)

    @property
    def sqlite_path(self) -> str | None:
        """The database file of a SQLite store; ``None`` in memory and on PostgreSQL."""
        return self._sqlite_path

    def migrate(self) -> None:
        """Bring the schema to the newest revision (idempotent)."""
        config = AlembicConfig()
        config.set_main_option("script_location", str(MIGRATIONS_DIR))
        try:
            with self._write_engine.connect() as connection:
                config.attributes["connection"] = connection
                command.upgrade(config, "head")
                connection.commit()
        except OperationalError as exc:
            raise ConfigurationError(
                f"cannot open the store at {make_url(self.url).render_as_string()}: {exc.orig}"
            ) from exc

    def table_names(self) -> list[str]:
        return sorted(inspect(self.engine).get_table_names())

    @contextmanager
    def read(self) -> Iterator[Session]:
        with self._read_sessions() as session:
            yield session

    @contextmanager
    def write(self) -> Iterator[Session]:
        """A session whose transaction commits on exit and rolls back on error."""
        if self._write_lock is None:
            with self._write_sessions.begin() as session:
                yield session
            return
        with self._write_lock.held(), self._write_sessions.begin() as session:
            yield session

    @contextmanager
    def write_connection(self, *, wait: bool = True) -> Iterator[Connection | None]:
        """Like :meth:`write`, without an ORM session: for bulk inserts on the hot path.

        With ``wait=False`` it yields ``None`` at once when another writer holds the lock.
        """
        if self._write_lock is None:
            with self._write_engine.begin() as connection:
                yield connection
            return
        with self._write_lock.held(wait=wait) as acquired:
            if not acquired:
                yield None
                return
            with self._write_engine.begin() as connection:
                yield connection

    @contextmanager
    def sqlite_transaction(self, *, wait: bool = True) -> Iterator[sqlite3.Cursor | None]:
        """SQLite: a driver cursor in a ``BEGIN IMMEDIATE`` transaction that commits on exit.

        The replicas' group commit: on a connection kept for it, without SQLAlchemy's pool,
        events and transaction bookkeeping, which cost more than the commit of a few rows
        (measured: one row, 85 microseconds through :meth:`write_connection`, 37 here). Yields
        ``None`` when the store is in memory (use :meth:`write_connection`) or, with
        ``wait=False``, when another writer holds the lock.
        """
        if self._write_lock is None or self._sqlite_path is None:
            yield None
            return
        with self._write_lock.held(wait=wait) as acquired:
            if not acquired:
                yield None
                return
            if self._kept_sqlite is None:
                self._kept_sqlite = _sqlite_connect(self._sqlite_path)
                if self._checkpoints_deferred:
                    self._kept_sqlite.execute("PRAGMA wal_autocheckpoint=0")
            connection = self._kept_sqlite
            cursor = connection.cursor()
            cursor.execute("BEGIN IMMEDIATE")
            try:
                yield cursor
                cursor.execute("COMMIT")
            except BaseException:
                if connection.in_transaction:
                    connection.execute("ROLLBACK")
                raise
            finally:
                cursor.close()

    def defer_checkpoints(self) -> None:
        """SQLite: the hot path's commits (:meth:`sqlite_transaction`) stop checkpointing; the
        caller promises to call :meth:`checkpoint` regularly (the group writer's thread does).

        Copying the WAL into the database and syncing it takes milliseconds, which an event
        loop committing on this connection would wait for. Without the promise, commits keep
        SQLite's automatic checkpoint, so a process that only inserts cannot grow the WAL
        without bound.
        """
        if self._write_lock is None:
            return
        with self._write_lock.held():
            self._checkpoints_deferred = True
            if self._kept_sqlite is not None:
                self._kept_sqlite.execute("PRAGMA wal_autocheckpoint=0")

    def checkpoint(self) -> None:
        """SQLite: copy what the WAL holds into the database file, without waiting for anyone.

        The group writer's thread calls it about once a second, off the event loop, once it
        has deferred the hot path's checkpoints to it (:meth:`defer_checkpoints`). A ``PASSIVE``
        checkpoint neither waits for nor blocks readers and writers; other connections keep
        SQLite's automatic checkpoints. No-op on PostgreSQL and for an in-memory store.
        """
        if self._sqlite_path is None:
            return
        with self._checkpoint_lock:
            if self._checkpointer is None:
                self._checkpointer = _sqlite_connect(self._sqlite_path)
            self._checkpointer.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()

    def copy_rows(self, statement: str, rows: Iterable[Sequence[Any]]) -> bool:
        """PostgreSQL: ``COPY ... FROM STDIN`` the rows as one transaction; return once committed.

        On a connection kept for it in autocommit mode: the ``COPY`` is its own transaction,
        two round trips where a pooled transaction takes five (pre-ping, ``BEGIN``, ``COPY``,
        copy end, ``COMMIT``). Returns ``False`` without writing when the kept connection is
        busy (another thread is using it); the caller then uses :meth:`write_connection`.
        """
        if not self._kept_lock.acquire(blocking=False):
            return False
        try:
            if self._kept is None:
                import psycopg

                args, kwargs = self._connect_args()
                self._kept = psycopg.connect(*args, **kwargs, autocommit=True)
            connection = self._kept
            try:
                with connection.cursor() as cursor, cursor.copy(statement) as copy:
                    for row in rows:
                        copy.write_row(row)
            except BaseException:
                if not _reusable(connection):  # the server went away, or we were interrupted
                    self._kept = None
                    connection.close()
                raise
            return True
        finally:
            self._kept_lock.release()

    async def commit_statement_async(self, statement: str, params: Sequence[Any]) -> None:
        """PostgreSQL: run one statement as a transaction of its own, awaiting the server.

        On a connection of the running event loop's, kept for it in autocommit mode (a psycopg
        connection belongs to one loop): one round trip, and the loop serves other requests
        meanwhile. Statements on one loop take turns on its connection.
        """
        loop = asyncio.get_running_loop()
        kept = self._kept_async.get(loop)
        if kept is None:
            self._close_kept_async(only_of_closed_loops=True)
            kept = self._kept_async[loop] = _KeptAsync()
        async with kept.lock:
            if kept.connection is None:
                import psycopg

                args, kwargs = self._connect_args()
                kept.connection = await psycopg.AsyncConnection.connect(
                    *args, **kwargs, autocommit=True
                )
            connection = kept.connection
            try:
                await connection.execute(statement, params)
            except BaseException:
                if not _reusable(connection):
                    kept.connection = None
                    await connection.close()  # no await inside for a connection of its own
                raise

    def _connect_args(self) -> tuple[list[Any], dict[str, Any]]:
        args, kwargs = self._write_engine.dialect.create_connect_args(self._write_engine.url)
        return list(args), dict(kwargs)

    def _close_kept_async(self, *, only_of_closed_loops: bool = False) -> None:
        for loop in list(self._kept_async):
            if only_of_closed_loops and not loop.is_closed():
                continue
            kept = self._kept_async.pop(loop, None)
            if kept is not None and kept.connection is not None:
                # Closing a psycopg connection only closes its socket: safe from any thread.
                kept.connection.pgconn.finish()
                kept.connection = None

    def close(self) -> None:
        with self._checkpoint_lock:
            if self._checkpointer is not None:
                self._checkpointer.close()
                self._checkpointer = None
        if self._write_lock is not None:
            with self._write_lock.held():
                if self._kept_sqlite is not None:
                    self._kept_sqlite.close()
                    self._kept_sqlite = None
        with self._kept_lock:
            if self._kept is not None:
                self._kept.close()
                self._kept = None
        self._close_kept_async()
        self.engine.dispose()
        if self._write_engine is not self.engine:
            self._write_engine.dispose()


def _reusable(connection: Any) -> bool:
    """After a failed statement: is the connection idle (a bad row), not broken or mid-query?"""
    from psycopg import pq

    return bool(connection.info.transaction_status == pq.TransactionStatus.IDLE)


class _KeptAsync:
    """One event loop's connection for :meth:`Store.commit_statement_async`, and its lock."""

    def __init__(self) -> None:
        self.lock = asyncio.Lock()
        self.connection: Any = None


class _WriterLock:
    """One writer at a time for a SQLite file, across threads and processes.

    SQLite's own busy handler sleeps 1, 2, 5, 10... ms between retries when another process
    holds the write lock; replicas and the platform writing to one file would pay those sleeps
    on every collision. ``flock`` queues them instead and wakes the next writer at once.
    """

    def __init__(self, path: Path | None) -> None:
        self._thread_lock = threading.Lock()
        self._path = path
        self._fd: int | None = None

    @contextmanager
    def held(self, *, wait: bool = True) -> Iterator[bool]:
        if not self._thread_lock.acquire(blocking=wait):
            yield False
            return
        try:
            if self._path is None:
                yield True
                return
            if self._fd is None:
                self._fd = os.open(self._path, os.O_RDWR | os.O_CREAT, 0o600)
            try:
                fcntl.flock(self._fd, fcntl.LOCK_EX if wait else fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                yield False
                return
            try:
                yield True
            finally:
                fcntl.flock(self._fd, fcntl.LOCK_UN)
        finally:
            self._thread_lock.release()


def describe_error(exc: BaseException) -> str:
    """A database error in words that hold none of the values involved, for a log line.

    SQLAlchemy's message holds the statement (its parameters are hidden: the engines are made
    with ``hide_parameters``), and PostgreSQL adds a ``DETAIL`` that quotes the offending row's
    values ("Key (key_hash)=(...) already exists"): neither is logged. What is left is the
    driver's error class and its primary message (a constraint's name, a type mismatch).
    """
    orig = getattr(exc, "orig", None) or exc
    diag = getattr(orig, "diag", None)
    primary = getattr(diag, "message_primary", None) if diag is not None else None
    if primary is None:
        primary = str(orig).split("\n", 1)[0]
    return f"{type(orig).__module__}.{type(orig).__name__}: {primary}"


def ensure_writable_dir(path: Path, what: str = "data directory") -> None:
    """Create ``path`` if need be and check that a file can be written there, or raise a
    :class:`ConfigurationError` naming the path and the cause (read-only, not a directory,
    disk full...): the platform must refuse to start rather than fail on its first write."""
    path = path.absolute()
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigurationError(f"cannot create the {what} {path}: {_cause(exc)}") from exc
    probe = path / ".modeldeck-write-test"
    try:
        # A few kilobytes, not an empty file: a full disk still has room for a new inode.
        with open(probe, "wb") as f:
            f.write(b"\0" * 4096)
    except OSError as exc:
        raise ConfigurationError(f"the {what} {path} is not writable: {_cause(exc)}") from exc
    finally:
        with contextlib.suppress(OSError):
            probe.unlink()


def _cause(exc: OSError) -> str:
    return exc.strerror or str(exc)
