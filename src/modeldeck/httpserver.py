"""The HTTP protocol of every socket modeldeck listens on: uvicorn's, with read timeouts and
errors in the one JSON shape.

uvicorn times out idle keep-alive connections only: a client that connects and sends half a
request line, or headers a byte at a time (slowloris), holds its connection, and the memory
behind it, for ever. :func:`protocol` returns uvicorn's ``httptools`` protocol with two timers:

* **header timeout**: the request line and headers must arrive within ``header_seconds`` of the
  connection opening (or of the first byte of a later request on a kept-alive connection);
* **body timeout**: while a request's body is being read, ``body_seconds`` may pass without a
  byte arriving (an idle timeout: a large upload on a slow link goes on as long as it moves; the
  time the application spends not reading does not count).

A request that times out gets a ``408`` in the JSON error shape when nothing has been answered
yet, and its connection is closed. Requests that the HTTP parser refuses (a negative
``Content-Length``, a NUL or a bare CR in a header...) get uvicorn's ``400``, but in the JSON
error shape (``{"error": {"code": "bad_request", ...}}``) rather than plain text.
"""

from __future__ import annotations

import asyncio
import errno
import socket
from typing import Any

import orjson
import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from modeldeck.errors import ConfigurationError, error_body


class PortInUse(ConfigurationError):
    """Another process listens on the address the platform was to listen on."""

    code = "port_in_use"


def listen(host: str, port: int) -> socket.socket:
    """The platform's listening socket, bound before anything else starts: a port that is
    taken is a one-line error before the store is touched or a key made, not uvicorn's
    ``[Errno 98]`` after the whole platform started. Pass it to ``uvicorn.Server.run(sockets=)``."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn's own bind
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise PortInUse(
                f"port {port} on {host} is in use by another program (another modeldeck?): "
                "stop it, or choose another port with --port or MODELDECK_PORT"
            ) from None
        raise ConfigurationError(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    sock.listen(2048)  # uvicorn's default backlog
    # Not inheritable (Python's default): a replica that outlives the platform must never
    # hold the port the next platform listens on.
    return sock


STATUS_LINES = {400: b"HTTP/1.1 400 Bad Request\r\n", 408: b"HTTP/1.1 408 Request Timeout\r\n"}


def error_bytes(status: int, code: str, message: str) -> bytes:
    """A whole HTTP/1.1 answer in the JSON error shape that closes the connection."""
    body = orjson.dumps(error_body(code, message))
    return b"".join(
        [
            STATUS_LINES[status],
            b"content-type: application/json\r\n",
            b"content-length: " + str(len(body)).encode() + b"\r\n",
            b"connection: close\r\n\r\n",
            body,
        ]
    )


def config(
    app: Any, *, header_timeout: float, body_timeout: float, **options: Any
) -> uvicorn.Config:
    """``uvicorn.Config`` for ``app`` with modeldeck's protocol (see :func:`protocol`)."""
    return uvicorn.Config(app, http=protocol(header_timeout, body_timeout), **options)


def protocol(header_seconds: float, body_seconds: float) -> type[HttpToolsProtocol]:
    """uvicorn's ``httptools`` protocol with both read timeouts (``uvicorn.Config(http=)``)."""

    class GuardedProtocol(_Guarded):
        header_timeout = header_seconds
        body_timeout = body_seconds

    return GuardedProtocol


class _Guarded(HttpToolsProtocol):
    header_timeout = 10.0
    body_timeout = 30.0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._read_timer: asyncio.TimerHandle | None = None
        self._reading_body = False

    # -- the timers ---------------------------------------------------------------------------

    def _arm(self, seconds: float) -> None:
        self._disarm()
        if seconds > 0:
            self._read_timer = self.loop.call_later(seconds, self._timed_out)

    def _disarm(self) -> None:
        if self._read_timer is not None:
            self._read_timer.cancel()
            self._read_timer = None

    def _timed_out(self) -> None:
        self._read_timer = None
        if self.transport.is_closing():
            return
        if self._reading_body and self.flow.read_paused:
            # The application has not read what came: the wait is ours, not the client's.
            self._arm(self.body_timeout)
            return
        what = "its body" if self._reading_body else "its headers"
        seconds = self.body_timeout if self._reading_body else self.header_timeout
        self.logger.debug("closing a connection that sent no more of %s for %g s", what, seconds)
        answered = self.cycle is not None and self.cycle.response_started
        if not answered:
            self.transport.write(
                error_bytes(
                    408,
                    "request_timeout",
                    f"the request's {what.removeprefix('its ')} did not arrive within "
                    f"{seconds:g} s; the connection is closed",
                )
            )
        self.transport.close()

    # -- uvicorn's hooks ----------------------------------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm(self.header_timeout)

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._reading_body:
            self._arm(self.body_timeout)  # an idle timeout: every byte restarts it
        super().data_received(data)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._reading_body = False
        if self._read_timer is None:  # a later request on a kept-alive connection
            self._arm(self.header_timeout)

    def on_headers_complete(self) -> None:
        super().on_headers_complete()
        self._reading_body = True
        self._arm(self.body_timeout)

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._reading_body = False
        self._disarm()

    def send_400_response(self, msg: str) -> None:
        self._disarm()
        self.transport.write(
            error_bytes(
                400,
                "bad_request",
                "the request is not valid HTTP/1.1 (a malformed request line or header, a "
                "control character in a header, or a bad Content-Length)",
            )
        )
        self.transport.close()
