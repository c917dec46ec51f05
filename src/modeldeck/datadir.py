"""One platform per data directory: an OS file lock held for the platform's life.

A second ``modeldeck server`` (or ``make run``) on a data directory that a running platform uses
would restore every deployment of the running one (rewriting them to ``deploying``) and then
fail on the port. :class:`DataDirLock` stops it first: the platform takes an exclusive
``flock`` on ``<data_dir>/modeldeck.lock`` before it touches the store and writes its pid and
URL into the file; a second platform finds the lock taken and is refused with one line naming
the running one.

The lock belongs to the open file: it dies with the process (``kill -9`` included), so a stale
file never blocks a restart. The file descriptor is not inherited by replicas (Python opens
files non-inheritable, and replicas are started with ``close_fds``), so replicas that outlive
their control plane never hold it.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from pathlib import Path

from modeldeck.errors import ConfigurationError

LOCK_FILE = "modeldeck.lock"


class DataDirInUse(ConfigurationError):
    """Another platform holds the data directory's lock."""

    code = "data_dir_in_use"


class DataDirLock:
    """The exclusive lock on a data directory (see the module's docstring)."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir.absolute()
        self.path = self.data_dir / LOCK_FILE
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self, url: str) -> None:
        """Take the lock and record this process (pid) and ``url`` in the lock file, or raise
        :class:`DataDirInUse` naming the platform that holds it. Re-acquiring a held lock is a
        no-op."""
        if self._fd is not None:
            return
        self.data_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_holder(fd)
            os.close(fd)
            raise DataDirInUse(
                f"the data directory {self.data_dir} is in use by a running modeldeck "
                f"({holder}); stop it first, or start this one with another --data-dir",
                details={"data_dir": str(self.data_dir), "lock_file": str(self.path)},
            ) from None
        except BaseException:
            os.close(fd)
            raise
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps({"pid": os.getpid(), "url": url}).encode() + b"\n", 0)
        self._fd = fd

    def release(self) -> None:
        """Empty the lock file and let go of the lock (the file stays: removing it would let a
        third process lock a new file while a second waits on the old one)."""
        fd, self._fd = self._fd, None
        if fd is None:
            return
        with contextlib.suppress(OSError):
            os.ftruncate(fd, 0)
        os.close(fd)  # closing the only descriptor releases the flock

    def __enter__(self) -> DataDirLock:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def _read_holder(fd: int) -> str:
    """``pid N, URL`` from a held lock file (written right after locking: may still be empty)."""
    try:
        raw = os.pread(fd, 4096, 0)
        holder = json.loads(raw)
        return f"pid {int(holder['pid'])}, {holder['url']}"
    except (OSError, ValueError, KeyError, TypeError):
        return "pid unknown: it is starting"
