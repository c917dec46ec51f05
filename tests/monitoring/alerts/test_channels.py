"""Each alert channel's delivery against local receivers: the body each destination gets
(Slack, Teams, PagerDuty Events v2, the signed webhook), e-mail through a real SMTP server on
loopback (STARTTLS and AUTH), retries, and channel validation on both stores."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import httpx
import pytest
from pydantic import ValidationError

from modeldeck.errors import ValidationFailed
from modeldeck.monitoring.alerts.channels import (
    EmailChannel,
    PagerDutyChannel,
    SlackChannel,
    TeamsChannel,
    WebhookChannel,
    mask,
    unmask,
)
from modeldeck.monitoring.alerts.deliver import ChannelDelivery, Retries, Smtp, send
from modeldeck.monitoring.alerts.rules import AlertRuleSpec
from modeldeck.monitoring.alerts.service import AlertService
from modeldeck.monitoring.alerts.webhook import SIGNATURE_HEADER, TIMESTAMP_HEADER, verify
from modeldeck.store import Store
from tests.fixtures import add_deployment
from tests.monitoring.alerts.receivers import (
    SMTP_PASSWORD,
    SMTP_USER,
    HttpReceiver,
    SmtpReceiver,
    http_receiver,
    smtp_receiver,
)

ROUTING_KEY = "R0UT1NGKEY0123456789abcdefABCDEF"
FAST = Retries(attempts=3, backoff_s=0.001, max_backoff_s=0.01, timeout_s=5)
EVENT: dict[str, Any] = {
    "type": "alert.firing",
    "id": 7,
    "rule": "accuracy-low",
    "deployment": "iris",
    "kind": "firing",
    "metric": "performance.accuracy",
    "value": 0.71234,
    "samples": 412,
    "threshold": 0.8,
    "comparison": "lt",
    "window_seconds": 86400,
    "message": "performance.accuracy = 0.7123 < 0.8 over the last 1d (412 samples) <&>",
    "ts": 1_795_829_042_021,
}


@pytest.fixture
def receiver() -> Iterator[HttpReceiver]:
    with http_receiver() as r:
        yield r


@pytest.fixture
def smtp(tmp_path: Path) -> Iterator[SmtpReceiver]:
    with smtp_receiver(tmp_path) as s:
        yield s


def _send(channel: Any, event: dict[str, Any] = EVENT, smtp: Smtp | None = None) -> ChannelDelivery:
    async def run() -> ChannelDelivery:
        async with httpx.AsyncClient() as client:
            return await send(client, channel, event, smtp=smtp or Smtp(), retries=FAST)

    return asyncio.run(run())


def _smtp(server: SmtpReceiver, **overrides: Any) -> Smtp:
    settings: dict[str, Any] = dict(
        host=server.host, port=server.port, starttls=True, username=SMTP_USER,
        password=SMTP_PASSWORD, sender="alerts@modeldeck.test", ca_file=server.ca_file,
        timeout_s=5,
    )  # fmt: skip
    return Smtp(**{**settings, **overrides})


def test_slack_gets_text_and_blocks(receiver: HttpReceiver) -> None:
    result = _send(SlackChannel(url=f"{receiver.url}/slack/T0/B0/secret"))
    assert (result.status, result.attempts, result.channel) == ("delivered", 1, "slack")
    assert result.target == receiver.url  # the URL's token is not kept
    (posted,) = receiver.at("/slack/T0/B0/secret")
    body = posted.body
    assert body["text"].startswith("Firing: iris/accuracy-low: performance.accuracy = 0.7123")
    assert body["text"].endswith("&lt;&amp;&gt;")  # Slack's three escapes
    header, section, context = body["blocks"]
    assert header == {
        "type": "header",
        "text": {"type": "plain_text", "text": "Firing: iris/accuracy-low"},
    }
    assert section["type"] == "section" and section["text"]["type"] == "mrkdwn"
    fields = {f["text"].split("\n")[0]: f["text"].split("\n")[1] for f in section["fields"]}
    assert fields == {
        "*Metric*": "performance.accuracy", "*Value*": "0.7123", "*Fires when*": "&lt; 0.8",
        "*Samples*": "412",
    }  # fmt: skip
    assert context["type"] == "context" and "2026-11-28T" in context["elements"][0]["text"]


def test_teams_gets_an_adaptive_card_message(receiver: HttpReceiver) -> None:
    resolved = {**EVENT, "kind": "resolved", "type": "alert.resolved"}
    result = _send(TeamsChannel(url=f"{receiver.url}/teams/hook"), resolved)
    assert result.status == "delivered"
    (posted,) = receiver.at("/teams/hook")
    assert posted.body["type"] == "message"
    (attachment,) = posted.body["attachments"]
    assert attachment["contentType"] == "application/vnd.microsoft.card.adaptive"
    card = attachment["content"]
    assert card["type"] == "AdaptiveCard" and card["version"] == "1.4"
    heading, text, facts = card["body"]
    assert heading["text"] == "Resolved: iris/accuracy-low" and heading["color"] == "Good"
    assert text["text"] == EVENT["message"]
    assert {f["title"]: f["value"] for f in facts["facts"]}["Deployment"] == "iris"


def test_pagerduty_triggers_and_resolves_with_one_dedup_key(receiver: HttpReceiver) -> None:
    channel = PagerDutyChannel(
        routing_key=ROUTING_KEY, severity="critical", events_url=f"{receiver.url}/pagerduty"
    )
    fired = _send(channel)
    resolved = _send(channel, {**EVENT, "kind": "resolved", "type": "alert.resolved"})
    assert fired.status == resolved.status == "delivered" and fired.status_code == 202
    trigger, resolve = (p.body for p in receiver.at("/pagerduty"))
    assert trigger["event_action"] == "trigger" and resolve["event_action"] == "resolve"
    assert trigger["routing_key"] == resolve["routing_key"] == ROUTING_KEY
    assert trigger["dedup_key"] == resolve["dedup_key"] == "modeldeck/iris/accuracy-low"
    payload = trigger["payload"]
    assert payload["severity"] == "critical" and payload["source"] == "modeldeck/iris"
    assert payload["summary"].startswith("Firing: iris/accuracy-low: performance.accuracy")
    assert payload["timestamp"] == "2026-11-28T01:24:02+00:00"
    assert payload["class"] == "performance.accuracy" and payload["component"] == "iris"
    assert "payload" not in resolve  # a resolve needs the key alone


def test_a_pagerduty_test_opens_and_closes_its_own_incident(receiver: HttpReceiver) -> None:
    channel = PagerDutyChannel(routing_key=ROUTING_KEY, events_url=f"{receiver.url}/pagerduty")
    result = _send(channel, {**EVENT, "kind": "test", "type": "alert.test"})
    assert (result.status, result.attempts) == ("delivered", 2)
    actions = [(p.body["event_action"], p.body["dedup_key"]) for p in receiver.at("/pagerduty")]
    assert actions == [
        ("trigger", "modeldeck/iris/accuracy-low/test"),
        ("resolve", "modeldeck/iris/accuracy-low/test"),
    ]


def test_the_webhook_channel_is_the_signed_generic_webhook(receiver: HttpReceiver) -> None:
    result = _send(WebhookChannel(url=f"{receiver.url}/hook", secret="s3cret"))
    assert result.status == "delivered"
    (posted,) = receiver.at("/hook")
    assert posted.body == EVENT
    signature = posted.headers[SIGNATURE_HEADER]
    # Re-serialised the way the platform sent it (orjson, compact).
    import orjson

    assert verify("s3cret", orjson.dumps(EVENT), posted.headers[TIMESTAMP_HEADER], signature)


def test_5xx_is_retried_and_4xx_is_not(receiver: HttpReceiver) -> None:
    receiver.script = [503, 502]
    result = _send(SlackChannel(url=f"{receiver.url}/slack"))
    assert (result.status, result.attempts) == ("delivered", 3)
    receiver.script = [404]
    result = _send(TeamsChannel(url=f"{receiver.url}/teams"))
    assert (result.status, result.attempts, result.status_code) == ("failed", 1, 404)
    assert result.error.startswith("HTTP 404")
    receiver.script = [500, 500, 500]
    result = _send(SlackChannel(url=f"{receiver.url}/slack"))
    assert (result.status, result.attempts, result.status_code) == ("failed", 3, 500)


def test_email_over_starttls_with_auth(smtp: SmtpReceiver) -> None:
    result = _send(EmailChannel(to=["ops@example.test", "ml@example.test"]), smtp=_smtp(smtp))
    assert (result.status, result.attempts, result.status_code) == ("delivered", 1, 250)
    assert smtp.logins == [SMTP_USER]
    ((envelope, message),) = smtp.messages
    assert envelope.mail_from == "alerts@modeldeck.test"
    assert envelope.rcpt_tos == ["ops@example.test", "ml@example.test"]
    assert message["Subject"] == "[modeldeck] Firing: iris/accuracy-low"
    assert message["To"] == "ops@example.test, ml@example.test"
    text = message.get_payload(decode=True).decode()
    assert EVENT["message"] in text and "Metric: performance.accuracy" in text


def test_email_with_a_wrong_password_fails_at_once(smtp: SmtpReceiver) -> None:
    result = _send(EmailChannel(to=["ops@example.test"]), smtp=_smtp(smtp, password="wrong"))
    assert (result.status, result.attempts, result.status_code) == ("failed", 1, 535)
    assert result.error.startswith("SMTP 535") and smtp.messages == []


def test_email_is_never_sent_in_the_clear_when_starttls_is_asked(tmp_path: Path) -> None:
    with smtp_receiver(tmp_path, starttls=False) as plain:
        refused = _send(EmailChannel(to=["ops@example.test"]), smtp=_smtp(plain))
        assert refused.status == "failed" and "STARTTLS" in refused.error
        assert plain.messages == []
        # Turned off on purpose (a relay on localhost), it sends.
        sent = _send(
            EmailChannel(to=["ops@example.test"]),
            smtp=_smtp(plain, starttls=False, username=None),
        )
        assert sent.status == "delivered" and len(plain.messages) == 1


def test_email_to_a_server_that_is_not_there_is_retried() -> None:
    from tests.conftest import free_port

    result = _send(
        EmailChannel(to=["ops@example.test"]),
        smtp=Smtp(host="127.0.0.1", port=free_port(), timeout_s=2),
    )
    assert (result.status, result.attempts) == ("failed", FAST.attempts)
    assert "ConnectionRefusedError" in result.error


def test_secrets_are_masked_and_come_back_from_the_stored_rule() -> None:
    stored = [
        {"type": "slack", "url": "https://hooks.slack.com/services/T0/B0/tok"},
        {"type": "pagerduty", "routing_key": ROUTING_KEY, "severity": "error"},
        {"type": "email", "to": ["a@example.test"]},
    ]
    shown = [mask(c) for c in stored]
    assert shown[0]["url"] == "https://hooks.slack.com/***"
    assert shown[1]["routing_key"] == "***" and shown[2] == stored[2]
    assert [unmask(c, stored) for c in shown] == stored


@pytest.mark.parametrize(
    "channel, field",
    [
        ({"type": "pagerduty", "routing_key": "short"}, "routing_key"),
        ({"type": "email", "to": []}, "to"),
        ({"type": "email", "to": ["not an address"]}, "to"),
        ({"type": "slack", "url": "ftp://hooks.example/x"}, "url"),
        ({"type": "teams"}, "url"),
        ({"type": "sms", "to": "+100"}, "channels.0"),
        ({"type": "slack", "url": "https://hooks.example/x", "channel": "#ml"}, "channel"),
    ],
)
def test_bad_channels_are_refused_naming_the_field(channel: dict[str, Any], field: str) -> None:
    spec = {"name": "r", "deployment": "iris", "metric": "technical.requests",
            "comparison": "gt", "threshold": 1, "channels": [channel]}  # fmt: skip
    with pytest.raises(ValidationError) as info:
        AlertRuleSpec.model_validate(spec)
    assert any(field in ".".join(map(str, e["loc"])) for e in info.value.errors()), info.value


def test_channel_checks_store_nothing_on_either_store(store_url: str) -> None:
    store = Store(store_url)
    store.migrate()
    try:
        add_deployment(store, "d-1", "iris")
        service = AlertService(store, cast(Any, None), cast(Any, None), smtp=Smtp())
        base = {"name": "r", "deployment": "iris", "metric": "technical.requests",
                "comparison": "gt", "threshold": 1}  # fmt: skip
        email = AlertRuleSpec.model_validate(
            {**base, "channels": [{"type": "email", "to": ["ops@example.test"]}]}
        )
        with pytest.raises(ValidationFailed, match="MODELDECK_SMTP_HOST") as info:
            service.create(email)
        assert info.value.details == {"field": "channels.0"}
        masked = AlertRuleSpec.model_validate(
            {**base, "channels": [{"type": "pagerduty", "routing_key": "***"}]}
        )
        with pytest.raises(ValidationFailed, match="routing_key"):
            service.create(masked)
        assert service.list() == []
        # With an SMTP server set, the same rule is stored, and shown without secrets.
        service.smtp = Smtp(host="127.0.0.1")
        pagerduty = {"type": "pagerduty", "routing_key": ROUTING_KEY}
        created = service.create(
            AlertRuleSpec.model_validate(
                {**base, "channels": [{"type": "email", "to": ["ops@example.test"]}, pagerduty]}
            )
        )
        assert created["channels"][1]["routing_key"] == "***"
        # Sent back as shown, the stored key stays.
        again = AlertRuleSpec.model_validate({**base, "channels": created["channels"]})
        service.replace("iris", "r", again)
        with store.read() as session:
            from sqlalchemy import select

            from modeldeck.store.schema import AlertRuleRow

            (row,) = session.scalars(select(AlertRuleRow))
            assert row.spec["channels"][1]["routing_key"] == ROUTING_KEY
    finally:
        store.close()
