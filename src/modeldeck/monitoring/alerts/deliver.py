"""Sending one alert event to each of a rule's channels, with retries; never raises.

Each channel's delivery is retried with exponential back-off (:mod:`.retry`): HTTP channels on
connection errors, timeouts, 429 and 5xx; e-mail on connection errors and 4xx SMTP replies.
What happened is returned per channel (:func:`channel_view` is its stored and shown form).
"""

from __future__ import annotations

import asyncio
import smtplib
import ssl
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import httpx
import orjson

from modeldeck.monitoring.alerts import retry, webhook
from modeldeck.monitoring.alerts.channels import (
    Channel,
    EmailChannel,
    PagerDutyChannel,
    SlackChannel,
    TeamsChannel,
    WebhookChannel,
    email_message,
    pagerduty_body,
    slack_body,
    teams_body,
)
from modeldeck.monitoring.alerts.retry import Outcome


@dataclass(frozen=True)
class Smtp:
    """How the platform sends e-mail (from the ``MODELDECK_SMTP_*`` settings)."""

    host: str | None = None
    port: int = 587
    starttls: bool = True
    ssl: bool = False
    username: str | None = None
    password: str | None = None
    sender: str = "modeldeck@localhost"
    ca_file: Path | None = None
    timeout_s: float = 10.0


@dataclass(frozen=True)
class Retries:
    attempts: int = 5
    backoff_s: float = 1.0
    max_backoff_s: float = 30.0
    timeout_s: float = 10.0


@dataclass
class ChannelDelivery:
    """The outcome of one channel's delivery, after all its attempts."""

    channel: str  # the channel's type
    target: str  # where it went, secrets left out
    status: Literal["delivered", "failed"]
    attempts: int
    status_code: int | None  # HTTP status, or SMTP reply code, of the last attempt
    error: str
    delivery_id: str


def channel_view(result: ChannelDelivery) -> dict[str, Any]:
    return asdict(result)


def _host(url: str) -> str:
    """``https://hooks.slack.com/services/T/B/x`` -> ``https://hooks.slack.com``."""
    scheme, _, rest = url.partition("://")
    return f"{scheme}://{rest.split('/', 1)[0]}"


async def send(
    client: httpx.AsyncClient,
    channel: Channel,
    event: dict[str, Any],
    *,
    smtp: Smtp,
    retries: Retries,
) -> ChannelDelivery:
    """Deliver ``event`` (an alert event view with ``kind``, ``type`` and the rule's condition)
    to ``channel``."""
    if isinstance(channel, WebhookChannel):
        result = await webhook.deliver(
            client,
            str(channel.url),
            event,
            secret=channel.secret,
            attempts=retries.attempts,
            backoff_s=retries.backoff_s,
            max_backoff_s=retries.max_backoff_s,
            timeout_s=retries.timeout_s,
        )
        return ChannelDelivery(
            "webhook", result.url, result.status, result.attempts, result.status_code,
            result.error, result.delivery_id,
        )  # fmt: skip
    if isinstance(channel, SlackChannel | TeamsChannel):
        body = slack_body(event) if isinstance(channel, SlackChannel) else teams_body(event)
        return await _post(client, channel.type, str(channel.url), [body], retries)
    if isinstance(channel, PagerDutyChannel):
        url = str(channel.events_url)
        if event.get("kind") == "test":  # open and close a test incident of its own
            bodies = [pagerduty_body(event, channel, a) for a in ("trigger", "resolve")]
        else:
            action: Literal["trigger", "resolve"] = (
                "resolve" if event.get("kind") == "resolved" else "trigger"
            )
            bodies = [pagerduty_body(event, channel, action)]
        return await _post(client, "pagerduty", url, bodies, retries)
    return await _email(channel, event, smtp, retries)


async def _post(
    client: httpx.AsyncClient,
    kind: str,
    url: str,
    bodies: list[dict[str, Any]],
    retries: Retries,
) -> ChannelDelivery:
    """POST each body in turn as JSON (each one retried); stop at the first that fails."""
    delivery_id = str(uuid.uuid4())
    headers = {"Content-Type": "application/json", "User-Agent": webhook.USER_AGENT}
    total = 0
    outcome = Outcome(False, error="nothing to send")
    for body in bodies:
        content = orjson.dumps(body)

        async def attempt(content: bytes = content) -> Outcome:
            return await webhook.post(client, url, content, headers, retries.timeout_s)

        outcome, tried = await retry.attempts(
            attempt,
            target=f"{kind} {_host(url)}",
            attempts=retries.attempts,
            backoff_s=retries.backoff_s,
            max_backoff_s=retries.max_backoff_s,
        )
        total += tried
        if not outcome.ok:
            break
    status: Literal["delivered", "failed"] = "delivered" if outcome.ok else "failed"
    return ChannelDelivery(
        kind, _host(url), status, total, outcome.status_code, outcome.error, delivery_id
    )


async def _email(
    channel: EmailChannel, event: dict[str, Any], smtp: Smtp, retries: Retries
) -> ChannelDelivery:
    delivery_id = str(uuid.uuid4())
    target = f"smtp://{smtp.host}:{smtp.port} to {', '.join(channel.to)}"
    if not smtp.host:
        error = "no SMTP server: set MODELDECK_SMTP_HOST"
        return ChannelDelivery("email", target, "failed", 0, None, error, delivery_id)
    message = email_message(event, smtp.sender, channel.to)
    message["Message-ID"] = f"<{delivery_id}@modeldeck>"  # the same across retries

    async def attempt() -> Outcome:
        return await asyncio.to_thread(_send_mail, smtp, message)

    outcome, tried = await retry.attempts(
        attempt,
        target=f"e-mail via {smtp.host}",
        attempts=retries.attempts,
        backoff_s=retries.backoff_s,
        max_backoff_s=retries.max_backoff_s,
    )
    status: Literal["delivered", "failed"] = "delivered" if outcome.ok else "failed"
    return ChannelDelivery(
        "email", target, status, tried, outcome.status_code, outcome.error, delivery_id
    )


def _send_mail(smtp: Smtp, message: Any) -> Outcome:
    """One SMTP session: connect (TLS from the start, or STARTTLS), log in, send."""
    assert smtp.host is not None
    context = ssl.create_default_context(cafile=str(smtp.ca_file) if smtp.ca_file else None)
    try:
        server: smtplib.SMTP
        if smtp.ssl:
            server = smtplib.SMTP_SSL(smtp.host, smtp.port, timeout=smtp.timeout_s, context=context)
        else:
            server = smtplib.SMTP(smtp.host, smtp.port, timeout=smtp.timeout_s)
        with server:
            server.ehlo()
            if smtp.starttls and not smtp.ssl:
                server.starttls(context=context)  # refuses if the server does not offer it
                server.ehlo()
            if smtp.username:
                server.login(smtp.username, smtp.password or "")
            server.send_message(message)
    except smtplib.SMTPResponseException as exc:
        # 4xx: the server asks to try later; 5xx (refused, wrong credentials): it will not pass.
        error = f"SMTP {exc.smtp_code}: {_text(exc.smtp_error)}"
        return Outcome(False, 400 <= exc.smtp_code < 500, exc.smtp_code, error)
    except (smtplib.SMTPServerDisconnected, ConnectionError, TimeoutError) as exc:
        return Outcome(False, True, None, webhook.describe(exc))
    except (smtplib.SMTPException, ssl.SSLError, OSError) as exc:
        return Outcome(False, False, None, webhook.describe(exc))
    return Outcome(True, status_code=250)


def _text(value: bytes | str) -> str:
    return value.decode(errors="replace") if isinstance(value, bytes) else str(value)
