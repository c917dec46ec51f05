"""The store: one SQLAlchemy schema on SQLite (WAL, one writer) or PostgreSQL.

Reads use a pooled engine. On SQLite every write goes through one writer: a process-wide lock
plus ``BEGIN IMMEDIATE``, so writers from several processes (platform and replicas) queue on the
database lock instead of failing half-way. PostgreSQL sits behind the same interface.
"""

from __future__ import annotations

import fcntl
import os
import threading
from collections.abc import Iterator
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

MIGRATIONS_DIR = Path(__file__).parent / "migrations"


def _json_dumps(value: Any) -> str:
    return orjson.dumps(value).decode()


def _sqlite_engine(url: str, *, immediate: bool) -> Engine:
    engine = create_engine(
        url,
        connect_args={"check_same_thread": False, "timeout": 30},
        json_serializer=_json_dumps,
        json_deserializer=orjson.loads,
    )

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy, not the driver, emit BEGIN so that it can be BEGIN IMMEDIATE.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

    return engine


class Store:
    """Sessions for reading and for writing, and the schema's migrations."""

    def __init__(self, url: str) -> None:
        self.url = url
        parsed = make_url(url)
        self.dialect = parsed.get_backend_name()
        if self.dialect == "sqlite":
            database = parsed.database
            if database and database != ":memory:":
                _ensure_writable_dir(Path(database).parent)
            self.engine = _sqlite_engine(url, immediate=False)
            self._write_engine = _sqlite_engine(url, immediate=True)
        else:
            self.engine = create_engine(
                url,
                pool_pre_ping=True,
                pool_size=10,
                max_overflow=20,
                json_serializer=_json_dumps,
                json_deserializer=orjson.loads,
            )
            self._write_engine = self.engine
        self._read_sessions = sessionmaker(self.engine, expire_on_commit=False)
        self._write_sessions = sessionmaker(self._write_engine, expire_on_commit=False)
        self._write_lock: _WriterLock | None = None
        if self.dialect == "sqlite":
            database = parsed.database or ""
            lock_path = None if database in ("", ":memory:") else Path(database + ".writer-lock")
            self._write_lock = _WriterLock(lock_path)

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

    def close(self) -> None:
        self.engine.dispose()
        if self._write_engine is not self.engine:
            self._write_engine.dispose()


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


def _ensure_writable_dir(path: Path) -> None:
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigurationError(f"cannot create the data directory {path}: {exc}") from exc
    probe = path / ".modeldeck-write-test"
    try:
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise ConfigurationError(f"the data directory {path} is not writable: {exc}") from exc
