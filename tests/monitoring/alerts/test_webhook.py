"""Webhook delivery against a real HTTP receiver on 127.0.0.1."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import orjson
import pytest

from modeldeck.monitoring.alerts.webhook import (
    DELIVERY_HEADER,
    EVENT_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    Delivery,
    deliver,
    sign,
    verify,
)

SECRET = "s3cret"
EVENT = {"type": "alert.firing", "rule": "accuracy-low", "value": 0.71}
FAST = {"backoff_s": 0.001, "max_backoff_s": 0.01}


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes
    signature_ok: bool | None  # None: the receiver has no secret


@dataclass
class Receiver:
    """Answers POSTs with the scripted statuses in turn (then 200), checking signatures.

    A status of 0 means: sleep ``slow_s`` before answering 200, to make the client time out.
    """

    url: str
    script: list[int] = field(default_factory=list)
    secret: str | None = SECRET
    slow_s: float = 0.5
    received: list[Received] = field(default_factory=list)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    state = Receiver(url="")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            headers = dict(self.headers.items())
            signature_ok = None
            if state.secret is not None:
                signature_ok = verify(
                    state.secret,
                    body,
                    headers.get(TIMESTAMP_HEADER, ""),
                    headers.get(SIGNATURE_HEADER, ""),
                )
            state.received.append(Received(headers, body, signature_ok))
            status = state.script.pop(0) if state.script else 200
            if status == 0:
                time.sleep(state.slow_s)
                status = 200
            if signature_ok is False:
                status = 401
            payload = b'{"error": "nope"}' if status >= 400 else b"ok"
            try:
                self.send_response(status)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)
            except ConnectionError:  # the client timed out and went away
                pass

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, args=(0.01,), daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{server.server_address[1]}/hook"
    yield state
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


def _deliver(url: str, event: Mapping[str, Any] = EVENT, **kwargs: Any) -> Delivery:
    async def run() -> Delivery:
        async with httpx.AsyncClient() as client:
            return await deliver(client, url, event, **{"secret": SECRET, **FAST, **kwargs})

    return asyncio.run(run())


def test_sign_and_verify() -> None:
    body = orjson.dumps(EVENT)
    now = 1_700_000_000
    signature = sign(SECRET, now, body)
    assert signature.startswith("sha256=") and len(signature) == len("sha256=") + 64
    assert verify(SECRET, body, now, signature, now=now)
    assert verify(SECRET, body, str(now), signature, now=now + 299)
    assert not verify(SECRET, body, now, signature, now=now + 301)  # replayed too late
    assert not verify(SECRET, body, now, signature, now=now - 301)
    assert not verify(SECRET, body + b" ", now, signature, now=now)  # tampered body
    assert not verify(SECRET, body, now + 1, signature, now=now)  # tampered timestamp
    assert not verify("other", body, now, signature, now=now)
    assert not verify(SECRET, body, "yesterday", signature, now=now)
    assert not verify(SECRET, body, now, "sha256=", now=now)


def test_delivered_signed_json_to_a_real_receiver(receiver: Receiver) -> None:
    result = _deliver(receiver.url)
    assert (result.status, result.attempts, result.status_code, result.error) == (
        "delivered", 1, 200, ""
    )  # fmt: skip
    assert result.url == receiver.url
    [request] = receiver.received
    assert request.signature_ok is True
    assert orjson.loads(request.body) == EVENT
    assert request.headers["Content-Type"] == "application/json"
    assert request.headers[EVENT_HEADER] == "alert.firing"
    assert request.headers[DELIVERY_HEADER] == result.delivery_id
    assert abs(int(request.headers[TIMESTAMP_HEADER]) - time.time()) < 60


def test_no_secret_sends_no_signature(receiver: Receiver) -> None:
    receiver.secret = None
    result = _deliver(receiver.url, {"rule": "r"}, secret=None)
    assert result.status == "delivered"
    [request] = receiver.received
    assert SIGNATURE_HEADER not in request.headers
    assert request.headers[EVENT_HEADER] == "alert"  # the event has no "type"


def test_retries_503_with_the_same_delivery_id(receiver: Receiver) -> None:
    receiver.script = [503, 503]
    result = _deliver(receiver.url)
    assert (result.status, result.attempts, result.status_code) == ("delivered", 3, 200)
    ids = {r.headers[DELIVERY_HEADER] for r in receiver.received}
    assert ids == {result.delivery_id}
    assert len(receiver.received) == 3
    assert all(r.signature_ok for r in receiver.received)


def test_retries_429(receiver: Receiver) -> None:
    receiver.script = [429]
    result = _deliver(receiver.url)
    assert (result.status, result.attempts) == ("delivered", 2)


def test_gives_up_after_attempts_with_the_last_error(receiver: Receiver) -> None:
    receiver.script = [500, 502, 503]
    result = _deliver(receiver.url, attempts=3)
    assert (result.status, result.attempts, result.status_code) == ("failed", 3, 503)
    assert result.error.startswith("HTTP 503") and "nope" in result.error
    assert len(receiver.received) == 3


def test_client_error_is_not_retried(receiver: Receiver) -> None:
    receiver.script = [400]
    result = _deliver(receiver.url)
    assert (result.status, result.attempts, result.status_code) == ("failed", 1, 400)
    assert result.error.startswith("HTTP 400")
    assert len(receiver.received) == 1


def test_wrong_secret_is_refused_by_the_receiver(receiver: Receiver) -> None:
    result = _deliver(receiver.url, secret="wrong")
    assert (result.status, result.attempts, result.status_code) == ("failed", 1, 401)
    assert receiver.received[0].signature_ok is False


def test_timeouts_are_retried(receiver: Receiver) -> None:
    receiver.script = [0]
    result = _deliver(receiver.url, timeout_s=0.1)
    assert (result.status, result.attempts) == ("delivered", 2)

    receiver.script = [0, 0]
    result = _deliver(receiver.url, timeout_s=0.1, attempts=2)
    assert (result.status, result.attempts, result.status_code) == ("failed", 2, None)
    assert "Timeout" in result.error


def test_nothing_listening_fails_after_all_attempts() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    result = _deliver(f"http://127.0.0.1:{port}/hook", attempts=3)
    assert (result.status, result.attempts, result.status_code) == ("failed", 3, None)
    assert result.error.startswith("ConnectError")


def test_never_raises() -> None:
    result = _deliver("not a url", attempts=3)
    assert (result.status, result.attempts) == ("failed", 1)  # retrying cannot help
    assert result.error

    result = _deliver("http://127.0.0.1:1/hook", {"value": object()})
    assert (result.status, result.attempts) == ("failed", 0)
    assert "JSON" in result.error
