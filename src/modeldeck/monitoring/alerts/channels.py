"""Where an alert rule's events go, and what each destination receives.

A rule lists its channels (``channels``), each one of:

``webhook``
    The signed generic JSON webhook (:mod:`modeldeck.monitoring.alerts.webhook`); a rule's
    ``webhook_url`` and ``webhook_secret`` are the same channel, kept for older rules.
``slack``
    A Slack incoming webhook: a message with ``text`` (the notification's fallback) and Block
    Kit ``blocks``.
``teams``
    A Microsoft Teams incoming webhook (or a Teams Workflows "when a webhook request is
    received" flow): a ``message`` with one Adaptive Card attachment.
``email``
    An e-mail to ``to`` through the platform's SMTP server (``MODELDECK_SMTP_*`` settings).
``pagerduty``
    PagerDuty Events API v2: ``trigger`` when the rule fires, ``resolve`` when it resolves, with
    one ``dedup_key`` per rule so that the resolve closes the incident the trigger opened.

This module is pure: the channel models (validated at the edge, once) and the body each
destination gets. Sending happens in :mod:`modeldeck.monitoring.alerts.deliver`.
"""

from __future__ import annotations

import datetime as dt
from email.message import EmailMessage
from typing import Annotated, Any, Literal

from pydantic import AnyHttpUrl, BaseModel, ConfigDict, Field

from modeldeck.validation import Text

MASK = "***"
"""What the API shows instead of a secret; sent back unchanged, it keeps the stored secret."""

PAGERDUTY_EVENTS_URL = "https://events.pagerduty.com/v2/enqueue"
EMAIL_PATTERN = r"^[^@\s<>,;\"]{1,64}@[^@\s<>,;\"]{1,190}$"
ROUTING_KEY_PATTERN = r"^([A-Za-z0-9]{32}|\*\*\*)$"
SLACK_HEADER_MAX = 150  # characters of a Block Kit header
PAGERDUTY_SUMMARY_MAX = 1024


class WebhookChannel(BaseModel):
    """The signed generic JSON webhook."""

    model_config = ConfigDict(extra="forbid")
    type: Literal["webhook"] = "webhook"
    url: AnyHttpUrl = Field(description="Where events are POSTed as JSON.")
    secret: Annotated[str, Text(1024, opaque=True)] | None = Field(
        default=None, repr=False, description="Key signing each request (HMAC-SHA256)."
    )


class SlackChannel(BaseModel):
    """A Slack incoming webhook."""

    model_config = ConfigDict(extra="forbid")
    type: Literal["slack"] = "slack"
    url: AnyHttpUrl = Field(
        repr=False, description="The incoming webhook's URL (https://hooks.slack.com/services/...)."
    )


class TeamsChannel(BaseModel):
    """A Microsoft Teams incoming webhook or Workflows webhook."""

    model_config = ConfigDict(extra="forbid")
    type: Literal["teams"] = "teams"
    url: AnyHttpUrl = Field(repr=False, description="The webhook's URL.")


class EmailChannel(BaseModel):
    """E-mail through the platform's SMTP server."""

    model_config = ConfigDict(extra="forbid")
    type: Literal["email"] = "email"
    to: list[Annotated[str, Field(pattern=EMAIL_PATTERN, max_length=254)]] = Field(
        min_length=1, max_length=50, description="Recipients' addresses."
    )


class PagerDutyChannel(BaseModel):
    """PagerDuty Events API v2."""

    model_config = ConfigDict(extra="forbid")
    type: Literal["pagerduty"] = "pagerduty"
    routing_key: str = Field(
        pattern=ROUTING_KEY_PATTERN,
        repr=False,
        description="The 32-character integration key of an Events API v2 integration.",
    )
    severity: Literal["critical", "error", "warning", "info"] = Field(
        default="error", description="Severity of the incidents the rule triggers."
    )
    events_url: AnyHttpUrl = Field(
        default=AnyHttpUrl(PAGERDUTY_EVENTS_URL),
        description="The Events API endpoint (https://events.eu.pagerduty.com/v2/enqueue for "
        "the EU service region).",
    )


Channel = Annotated[
    WebhookChannel | SlackChannel | TeamsChannel | EmailChannel | PagerDutyChannel,
    Field(discriminator="type"),
]

SECRET_FIELDS: dict[str, tuple[str, ...]] = {
    "webhook": ("secret",),
    "slack": ("url",),
    "teams": ("url",),
    "pagerduty": ("routing_key",),
    "email": (),
}
"""The fields of each channel type that the API never shows."""


def mask(channel: dict[str, Any]) -> dict[str, Any]:
    """``channel`` (as stored) with its secrets replaced: a URL keeps its scheme and host."""
    shown = dict(channel)
    for name in SECRET_FIELDS[channel["type"]]:
        value = shown.get(name)
        if value is None:
            continue
        if name == "url":
            scheme, _, rest = str(value).partition("://")
            shown[name] = f"{scheme}://{rest.split('/', 1)[0]}/{MASK}"
        else:
            shown[name] = MASK
    return shown


def unmask(channel: dict[str, Any], stored: list[dict[str, Any]]) -> dict[str, Any]:
    """``channel`` with each secret that is shown masked taken back from the stored channel it
    masks (same type, same masked form)."""
    restored = dict(channel)
    for name in SECRET_FIELDS[channel["type"]]:
        value = channel.get(name)
        if value is None:
            continue
        for old in stored:
            if old["type"] == channel["type"] and mask(old).get(name) == value:
                restored[name] = old[name]
                break
    return restored


def masked_fields(channel: dict[str, Any]) -> list[str]:
    """The secret fields of ``channel`` that still hold a masked value."""
    return [
        name
        for name in SECRET_FIELDS[channel["type"]]
        if channel.get(name) is not None and str(channel[name]).endswith(MASK)
    ]


# -- what each destination receives --------------------------------------------------------------

_SYMBOLS = {"gt": ">", "ge": "≥", "lt": "<", "le": "≤"}


def title(event: dict[str, Any]) -> str:
    """``Firing: iris/accuracy-low``, ``Resolved: ...``, ``Test: ...``."""
    kind = str(event.get("kind", "firing")).capitalize()
    return f"{kind}: {event['deployment']}/{event['rule']}"


def _value(x: Any) -> str:
    if isinstance(x, float):
        return f"{x:.0f}" if abs(x) >= 1000 else f"{x:.4g}"
    return "-" if x is None else str(x)


def _facts(event: dict[str, Any]) -> list[tuple[str, str]]:
    symbol = _SYMBOLS.get(str(event.get("comparison")), str(event.get("comparison", "")))
    return [
        ("Deployment", str(event["deployment"])),
        ("Metric", str(event.get("metric", "-"))),
        ("Value", _value(event.get("value"))),
        ("Fires when", f"{symbol} {_value(event.get('threshold'))}"),
        ("Samples", _value(event.get("samples"))),
        ("Time", _iso(event.get("ts"))),
    ]


def _iso(ts_ms: Any) -> str:
    if not isinstance(ts_ms, int):
        return "-"
    return dt.datetime.fromtimestamp(ts_ms / 1000, dt.UTC).isoformat(timespec="seconds")


def _slack_escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def slack_body(event: dict[str, Any]) -> dict[str, Any]:
    """A Slack incoming-webhook message: ``text`` for notifications, ``blocks`` to show."""
    heading = title(event)
    fields = [
        {"type": "mrkdwn", "text": f"*{name}*\n{_slack_escape(value)}"}
        for name, value in _facts(event)[1:5]
    ]
    return {
        "text": _slack_escape(f"{heading}: {event['message']}"),
        "blocks": [
            {
                "type": "header",
                "text": {"type": "plain_text", "text": heading[:SLACK_HEADER_MAX]},
            },
            {
                "type": "section",
                "text": {"type": "mrkdwn", "text": _slack_escape(str(event["message"]))},
                "fields": fields,
            },
            {
                "type": "context",
                "elements": [{"type": "mrkdwn", "text": f"modeldeck · {_iso(event.get('ts'))}"}],
            },
        ],
    }


def teams_body(event: dict[str, Any]) -> dict[str, Any]:
    """A Teams webhook message carrying one Adaptive Card (version 1.4)."""
    firing = event.get("kind") == "firing"
    card = {
        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
        "type": "AdaptiveCard",
        "version": "1.4",
        "body": [
            {
                "type": "TextBlock",
                "size": "Large",
                "weight": "Bolder",
                "color": "Attention" if firing else "Good",
                "text": title(event),
                "wrap": True,
            },
            {"type": "TextBlock", "text": str(event["message"]), "wrap": True},
            {
                "type": "FactSet",
                "facts": [{"title": name, "value": value} for name, value in _facts(event)],
            },
        ],
    }
    return {
        "type": "message",
        "attachments": [
            {
                "contentType": "application/vnd.microsoft.card.adaptive",
                "contentUrl": None,
                "content": card,
            }
        ],
    }


def dedup_key(event: dict[str, Any]) -> str:
    """One incident per rule: its trigger and its resolve share this key (a test has its own)."""
    key = f"modeldeck/{event['deployment']}/{event['rule']}"
    return f"{key}/test" if event.get("kind") == "test" else key


def pagerduty_body(
    event: dict[str, Any], channel: PagerDutyChannel, action: Literal["trigger", "resolve"]
) -> dict[str, Any]:
    """An Events API v2 event: ``trigger`` with a payload, ``resolve`` with the key alone."""
    body: dict[str, Any] = {
        "routing_key": channel.routing_key,
        "event_action": action,
        "dedup_key": dedup_key(event),
    }
    if action == "trigger":
        summary = f"{title(event)}: {event['message']}"
        body["payload"] = {
            "summary": summary[:PAGERDUTY_SUMMARY_MAX],
            "source": f"modeldeck/{event['deployment']}",
            "severity": channel.severity,
            "timestamp": _iso(event.get("ts")),
            "component": str(event["deployment"]),
            "group": "modeldeck",
            "class": str(event.get("metric", "alert")),
            "custom_details": {name.lower(): value for name, value in _facts(event)},
        }
        body["client"] = "modeldeck"
    return body


def email_message(event: dict[str, Any], sender: str, to: list[str]) -> EmailMessage:
    """A plain-text e-mail: the title as subject, the message and the facts as body."""
    message = EmailMessage()
    message["Subject"] = f"[modeldeck] {title(event)}"
    message["From"] = sender
    message["To"] = ", ".join(to)
    lines = [str(event["message"]), ""]
    lines += [f"{name}: {value}" for name, value in _facts(event)]
    message.set_content("\n".join(lines) + "\n")
    return message
