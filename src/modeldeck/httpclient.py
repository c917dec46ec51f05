"""One HTTP client per process for the metrics SDK and the Cloudera compatibility modules.

Building an ``httpx.Client`` costs tens of milliseconds (most of it an SSL context, made even for
``http://`` URLs), and a new client opens a new connection for its first request. Code written
for Cloudera ML calls ``cdsw.call_model`` in loops, so :mod:`modeldeck.metrics`,
``cml.models_v1``, ``cdsw`` and ``cmlapi`` share the client :func:`shared` returns: built on first
use, reused by every call (httpx's ``Client`` may be shared between threads), closed when the
interpreter exits. A process forked after first use builds its own, since a connection pool must
not be shared across a fork.

Callers pass their URL, headers and timeout with each request, so one client serves every
platform and key a process talks to. Answers that set cookies are not a concern: no modeldeck
API sets one.
"""

from __future__ import annotations

import atexit
import os
import threading

import httpx

DEFAULT_TIMEOUT = 60.0

_lock = threading.Lock()
_client: httpx.Client | None = None
_owner_pid = 0


def shared() -> httpx.Client:
    """The process's HTTP client, built on first use."""
    global _client, _owner_pid
    with _lock:
        if _client is None or _client.is_closed or _owner_pid != os.getpid():
            _client = httpx.Client(timeout=DEFAULT_TIMEOUT)
            _owner_pid = os.getpid()
        return _client


def close() -> None:
    """Close the process's client (at exit; a later :func:`shared` builds a new one)."""
    global _client
    with _lock:
        client, _client = _client, None
    if client is not None and _owner_pid == os.getpid():
        client.close()


atexit.register(close)
