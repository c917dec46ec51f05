"""Replicas forked from a process that has already imported the model libraries.

Starting a replica as a new interpreter costs seconds of CPU before it loads its model: MLflow,
scikit-learn, pandas and skops's table of trusted types are imported anew each time (about 5 s
of a 6 s start on a 2-core machine). The standard library's ``forkserver`` start method keeps
one server process that imports them once (``MODELDECK_REPLICA_PRELOAD``) and forks each
replica from it, so a replica that crashed is serving again in about a second, and the
imported libraries' memory is shared between replicas until written to.

A replica is forked only where a fresh interpreter would behave the same: deployments running
in the platform's own Python (not a build's environment) with no environment variables of
their own (variables such as ``OMP_NUM_THREADS`` are read when a library is imported, which in
a forked replica has already happened). The server starts in the background with the runtime;
a replica's first start waits for it for up to ``WARM_WAIT_SECONDS`` (its imports take a few
seconds, and an interpreter started meanwhile would make the same imports, competing with it
for the CPU), then starts as a new interpreter; restarts never wait.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import socket
import sys
import threading
import time
from multiprocessing.context import ForkServerContext
from pathlib import Path
from typing import Any

log = logging.getLogger("modeldeck.supervisor")

WARM_WAIT_SECONDS = 20.0


class ForkedProcess:
    """A forked replica with the part of :class:`subprocess.Popen`'s interface the supervisor
    uses: ``pid``, ``poll()``, ``returncode``, ``send_signal()``, ``kill()``, ``wait()``."""

    def __init__(self, process: Any) -> None:
        self._process = process
        self.pid: int = process.pid

    @property
    def returncode(self) -> int | None:
        code = self._process.exitcode
        return None if code is None else int(code)

    def poll(self) -> int | None:
        return self.returncode

    def send_signal(self, sig: int) -> None:
        if self.poll() is None:
            os.kill(self.pid, sig)

    def kill(self) -> None:
        if self.poll() is None:
            self._process.kill()

    def wait(self, timeout: float | None = None) -> int | None:
        self._process.join(timeout)
        return self.returncode

    def release(self) -> None:
        """Let this process outlive ours: at exit, ``multiprocessing`` terminates the daemon
        processes it started and joins the others, unless they are forgotten."""
        multiprocessing.process._children.discard(self._process)  # type: ignore[attr-defined]


class ForkServer:
    """One ``forkserver`` per runtime, warmed in the background; :meth:`start` forks a replica
    once it is warm and returns ``None`` before (the caller then starts an interpreter)."""

    def __init__(self, preload: list[str], *, detached: bool = False) -> None:
        self._detached = detached
        self._context: ForkServerContext = multiprocessing.get_context("forkserver")
        self._context.set_forkserver_preload(preload)
        self._preload = preload
        self._ready = threading.Event()
        self._failed = False
        self.warming_since: float | None = None  # time.monotonic() when warm() began

    @property
    def ready(self) -> bool:
        return self.state == "ready"

    @property
    def state(self) -> str:
        """``warming`` (importing; replicas start as interpreters), ``ready``, or
        ``unavailable`` (it failed to start: every replica is an interpreter)."""
        if self._failed:
            return "unavailable"
        return "ready" if self._ready.is_set() else "warming"

    def warm(self) -> None:
        """Start the server and wait for its imports (blocking: run it in a thread)."""
        self.warming_since = time.monotonic()
        try:
            probe = self._context.Process(target=_noop, daemon=True)
            probe.start()
            probe.join(120)
            if probe.exitcode != 0:
                raise RuntimeError(f"the probe process exited with {probe.exitcode}")
        except Exception as exc:  # replicas then start as interpreters, as without preload
            self._failed = True
            log.warning(
                "replica fork server unavailable (%s); replicas start as new processes", exc
            )
            return
        self._ready.set()
        log.info("replica fork server ready (preloaded %s)", ", ".join(self._preload))

    def start(self, argv: list[str], sock: socket.socket, log_path: Path) -> ForkedProcess | None:
        """Fork ``modeldeck.replica.app`` with ``argv`` (``--fd`` is added) listening on
        ``sock``, its output appended to ``log_path``; ``None`` while the server is not ready."""
        if not self.ready:
            return None
        watch = None if self._detached else os.getpid()
        process = self._context.Process(
            target=_run_replica, args=(argv, sock, str(log_path), watch), daemon=True
        )
        process.start()
        return ForkedProcess(process)


def _noop() -> None:
    pass


def _run_replica(
    argv: list[str], sock: socket.socket, log_path: str, platform_pid: int | None
) -> None:
    """In the forked child: output to the replica's log, then the replica's own ``main``.
    Without ``platform_pid`` (detached) it runs in a session of its own and outlives both the
    fork server and the platform."""
    if platform_pid is None:
        os.setsid()
    fd = os.open(log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)
    for stream in (sys.stdout, sys.stderr):
        if hasattr(stream, "reconfigure"):
            stream.reconfigure(line_buffering=True, write_through=True)
    from modeldeck.replica.app import main

    # The fork server is the parent, and lives as long as its children: the replica watches
    # the platform itself, and exits when it does.
    watch = [] if platform_pid is None else ["--parent-pid", str(platform_pid)]
    main([*argv, "--fd", str(sock.fileno()), *watch])
