"""Webhook delivery of alert events: one signed JSON POST, retried with back-off.

Every delivery sends the event as a JSON body with these headers:

``X-Modeldeck-Event``
    The event type: the event's ``"type"`` field, ``"alert"`` when it has none.
``X-Modeldeck-Delivery``
    A uuid4 naming this delivery; retries of it carry the same id, so receivers can drop
    duplicates.
``X-Modeldeck-Timestamp``
    Unix seconds when this attempt was sent (each retry is signed afresh).
``X-Modeldeck-Signature``
    ``sha256=<hex>``: HMAC-SHA256, keyed with the rule's webhook secret, of the bytes
    ``f"{timestamp}.".encode() + body``. Sent only when the rule has a secret.

Signing the timestamp with the body lets a receiver refuse replayed requests. To verify,
take the raw body bytes as received (not re-serialised JSON) and the two headers::

    from modeldeck.monitoring.alerts.webhook import verify

    ok = verify(secret, body, headers["X-Modeldeck-Timestamp"],
                headers["X-Modeldeck-Signature"], tolerance_s=300)

Without modeldeck, compute ``hmac.new(secret, f"{timestamp}.".encode() + body, sha256)``,
compare its hex digest to the header after ``sha256=`` with ``hmac.compare_digest``, and
refuse timestamps more than a few minutes from your clock.

Connection errors, timeouts, 429 and 5xx responses are retried with exponential back-off and
a little jitter (:mod:`modeldeck.monitoring.alerts.retry`); any other non-2xx response fails at
once. :func:`deliver` never raises: it returns a :class:`Delivery` saying what happened.
"""

from __future__ import annotations

import hashlib
import hmac
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

import httpx
import orjson

from modeldeck.monitoring.alerts import retry
from modeldeck.monitoring.alerts.retry import Outcome

SIGNATURE_HEADER = "X-Modeldeck-Signature"
EVENT_HEADER = "X-Modeldeck-Event"
DELIVERY_HEADER = "X-Modeldeck-Delivery"
TIMESTAMP_HEADER = "X-Modeldeck-Timestamp"
USER_AGENT = "modeldeck-webhook"
DEFAULT_EVENT_TYPE = "alert"
MAX_ERROR_BODY = 200  # characters of a refusing receiver's body kept in the error


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """The signature header value for ``body`` sent at ``timestamp``: ``sha256=<hex>``."""
    message = f"{timestamp}.".encode() + body
    digest = hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def verify(
    secret: str,
    body: bytes,
    timestamp: int | str,
    signature: str,
    tolerance_s: float = 300,
    *,
    now: float | None = None,
) -> bool:
    """Whether ``signature`` signs ``body`` at ``timestamp`` with ``secret``, and is recent.

    ``timestamp`` may be the header text. A timestamp further than ``tolerance_s`` from ``now``
    (default: the current time) in either direction is refused, as is a malformed one.
    """
    try:
        sent = int(timestamp)
    except ValueError:
        return False
    current = time.time() if now is None else now
    if abs(current - sent) > tolerance_s:
        return False
    return hmac.compare_digest(sign(secret, sent, body), signature)


@dataclass
class Delivery:
    """The outcome of one delivery, after all its attempts."""

    url: str
    status: Literal["delivered", "failed"]
    attempts: int
    status_code: int | None  # of the last attempt's response; None if it got no response
    error: str  # why the last attempt failed; "" when delivered
    delivery_id: str


def _retryable(status_code: int) -> bool:
    return status_code == 429 or status_code >= 500


def describe(exc: Exception) -> str:
    message = str(exc)
    return f"{type(exc).__name__}: {message}" if message else type(exc).__name__


def _refusal(response: httpx.Response) -> str:
    text = response.text.strip()
    if len(text) > MAX_ERROR_BODY:
        text = text[:MAX_ERROR_BODY] + "..."
    reason = f"HTTP {response.status_code} {response.reason_phrase}".rstrip()
    return f"{reason}: {text}" if text else reason


async def post(
    client: httpx.AsyncClient, url: str, body: bytes, headers: Mapping[str, str], timeout_s: float
) -> Outcome:
    """One POST of ``body``: connection errors, timeouts, 429 and 5xx may pass on a retry;
    other answers, an invalid URL or an unsupported scheme will not."""
    try:
        response = await client.post(url, content=body, headers=headers, timeout=timeout_s)
    except Exception as exc:
        retry = isinstance(exc, httpx.TransportError) and not isinstance(
            exc, httpx.UnsupportedProtocol
        )
        return Outcome(False, retry, None, describe(exc))
    if response.is_success:
        return Outcome(True, status_code=response.status_code)
    code = response.status_code
    return Outcome(False, _retryable(code), code, _refusal(response))


async def deliver(
    client: httpx.AsyncClient,
    url: str,
    event: Mapping[str, Any],
    *,
    secret: str | None,
    attempts: int = 5,
    backoff_s: float = 0.5,
    max_backoff_s: float = 30,
    timeout_s: float = 10,
) -> Delivery:
    """POST ``event`` as JSON to ``url``, making up to ``attempts`` attempts; never raises.

    At least one attempt is made (none if the event cannot be serialised to JSON).

    The first retry waits ``backoff_s``, each next one twice as long, at most
    ``max_backoff_s`` (plus jitter). ``timeout_s`` bounds each attempt.
    """
    delivery_id = str(uuid.uuid4())
    try:
        body = orjson.dumps(event)
    except TypeError as exc:  # orjson.JSONEncodeError
        error = f"the event is not JSON-serialisable: {exc}"
        return Delivery(url, "failed", 0, None, error, delivery_id)
    headers = {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        EVENT_HEADER: str(event.get("type", DEFAULT_EVENT_TYPE)),
        DELIVERY_HEADER: delivery_id,
    }

    async def attempt() -> Outcome:
        timestamp = int(time.time())
        headers[TIMESTAMP_HEADER] = str(timestamp)
        if secret is not None:  # each attempt signed afresh
            headers[SIGNATURE_HEADER] = sign(secret, timestamp, body)
        return await post(client, url, body, headers, timeout_s)

    outcome, tried = await retry.attempts(
        attempt,
        target=f"webhook {url}",
        attempts=attempts,
        backoff_s=backoff_s,
        max_backoff_s=max_backoff_s,
    )
    status: Literal["delivered", "failed"] = "delivered" if outcome.ok else "failed"
    return Delivery(url, status, tried, outcome.status_code, outcome.error, delivery_id)
