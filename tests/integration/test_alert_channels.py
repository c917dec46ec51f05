"""Alert channels through a real platform on each store: a rule with every channel (Slack,
Teams, PagerDuty, the signed webhook, e-mail over STARTTLS with AUTH to an aiosmtpd server on
loopback), its test delivery from the API and the CLI, firing and resolved events reaching each
channel, and invalid channels refused with a 422 that stores nothing."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import orjson
import pytest
from click.testing import CliRunner

from modeldeck.cli.main import main
from modeldeck.monitoring.alerts.webhook import SIGNATURE_HEADER, TIMESTAMP_HEADER, verify
from tests.conftest import BACKENDS, RunningPlatform, platform_on
from tests.monitoring.alerts.receivers import (
    SMTP_PASSWORD,
    SMTP_USER,
    HttpReceiver,
    SmtpReceiver,
    http_receiver,
    smtp_receiver,
)

pytestmark = pytest.mark.integration

NAME = "chan"
ROUTING_KEY = "PDKEY0123456789abcdefABCDEF01234"
SECRET = "hook-secret"


@dataclass
class Setup:
    platform: RunningPlatform
    http: HttpReceiver
    smtp: SmtpReceiver

    def api(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.platform.api_key}"}
        return httpx.request(
            method, f"{self.platform.url}/api/v1{path}", headers=headers, timeout=60, **kwargs
        )

    def channels(self) -> list[dict[str, Any]]:
        url = self.http.url
        return [
            {"type": "slack", "url": f"{url}/slack/T0/B0/token"},
            {"type": "teams", "url": f"{url}/teams/hook"},
            {"type": "pagerduty", "routing_key": ROUTING_KEY, "events_url": f"{url}/pagerduty"},
            {"type": "webhook", "url": f"{url}/hook", "secret": SECRET},
            {"type": "email", "to": ["ops@example.test"]},
        ]

    def rule(self, name: str, **overrides: Any) -> dict[str, Any]:
        return {
            "name": name, "deployment": NAME, "metric": "technical.requests",
            "comparison": "gt", "threshold": -1, "min_samples": 0, "cooldown_seconds": 0,
            "channels": self.channels(), **overrides,
        }  # fmt: skip


@pytest.fixture(scope="module", params=BACKENDS)
def setup(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Setup]:
    data_dir = tmp_path_factory.mktemp(f"channels-{request.param}")
    with http_receiver() as http, smtp_receiver(data_dir) as smtp:
        settings = {
            "MODELDECK_SMTP_HOST": smtp.host,
            "MODELDECK_SMTP_PORT": str(smtp.port),
            "MODELDECK_SMTP_USERNAME": SMTP_USER,
            "MODELDECK_SMTP_PASSWORD": SMTP_PASSWORD,
            "MODELDECK_SMTP_CA_FILE": str(smtp.ca_file),
            "MODELDECK_SMTP_FROM": "alerts@modeldeck.test",
            "MODELDECK_ALERT_INTERVAL_SECONDS": "3600",  # evaluated by the tests only
            "MODELDECK_WEBHOOK_ATTEMPTS": "2",
        }
        # The deployment runs a file: no registered model, so an MLflow store of its own.
        tracking_uri = f"sqlite:///{data_dir / 'mlflow.db'}"
        with platform_on(request, request.param, data_dir, tracking_uri, **settings) as running:
            model = data_dir / "model.py"
            model.write_text("def predict(args):\n    return 1\n")
            running.client().deploy(NAME, file=str(model), function="predict")
            yield Setup(running, http, smtp)


def test_invalid_channels_are_a_422_and_store_nothing(setup: Setup) -> None:
    before = setup.api("GET", "/alerts/rules").json()
    bad = [
        ({"type": "pagerduty", "routing_key": "not-a-key"}, "routing_key"),
        ({"type": "email", "to": ["nobody"]}, "to"),
        ({"type": "carrier-pigeon"}, "channels"),
        ({"type": "slack", "url": "https://hooks.example/x", "icon": ":x:"}, "icon"),
        ({"type": "pagerduty", "routing_key": "***"}, "routing_key"),  # a mask, on a new rule
    ]
    for channel, field in bad:
        r = setup.api("POST", "/alerts/rules", json=setup.rule("bad", channels=[channel]))
        assert r.status_code == 422, (channel, r.text)
        error = r.json()["error"]
        assert error["code"] == "validation_failed"
        assert field in orjson.dumps(error).decode(), (field, error)
    assert setup.api("GET", "/alerts/rules").json() == before


def test_test_delivery_reaches_every_channel_from_api_and_cli(setup: Setup) -> None:
    # Disabled: evaluations leave it alone; a test delivery still goes out.
    created = setup.api("POST", "/alerts/rules", json=setup.rule("all", enabled=False))
    assert created.status_code == 201, created.text
    shown = {c["type"]: c for c in created.json()["channels"]}
    assert shown["slack"]["url"] == f"{setup.http.url}/***"
    assert shown["pagerduty"]["routing_key"] == shown["webhook"]["secret"] == "***"
    setup.http.posted.clear()
    mails = len(setup.smtp.messages)

    r = setup.api("POST", f"/alerts/rules/{NAME}/all/test")
    assert r.status_code == 200, r.text
    results = {d["channel"]: d for d in r.json()}
    assert set(results) == {"slack", "teams", "pagerduty", "webhook", "email"}
    assert all(d["status"] == "delivered" for d in results.values()), results
    assert "token" not in results["slack"]["target"]

    (slack,) = setup.http.at("/slack/T0/B0/token")
    assert slack.body["text"].startswith(f"Test: {NAME}/all") and slack.body["blocks"]
    (teams,) = setup.http.at("/teams/hook")
    assert teams.body["attachments"][0]["content"]["type"] == "AdaptiveCard"
    actions = [(p.body["event_action"], p.body["routing_key"]) for p in setup.http.at("/pagerduty")]
    assert actions == [("trigger", ROUTING_KEY), ("resolve", ROUTING_KEY)]
    (hook,) = setup.http.at("/hook")
    assert hook.body["type"] == "alert.test" and hook.body["rule"] == "all"
    raw = orjson.dumps(hook.body)
    assert verify(SECRET, raw, hook.headers[TIMESTAMP_HEADER], hook.headers[SIGNATURE_HEADER])
    envelope, message = setup.smtp.messages[mails]
    assert message["Subject"] == f"[modeldeck] Test: {NAME}/all"
    assert envelope.rcpt_tos == ["ops@example.test"]
    assert setup.api("GET", "/alerts/events", params={"deployment": NAME}).json() == []

    # Sent back as the API shows it, the rule keeps its secrets.
    rule = setup.api("GET", f"/alerts/rules/{NAME}/all").json()
    spec = {k: rule[k] for k in setup.rule("all", enabled=False)}
    assert setup.api("PUT", f"/alerts/rules/{NAME}/all", json=spec).status_code == 200
    setup.http.posted.clear()
    runner = CliRunner()
    base = ["--url", setup.platform.url, "--api-key", setup.platform.api_key]
    result = runner.invoke(main, [*base, "alerts", "test", NAME, "all"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert result.output.count("delivered") == 5
    assert [p.body["routing_key"] for p in setup.http.at("/pagerduty")] == [ROUTING_KEY] * 2

    # A channel that cannot be reached: the CLI says which, and exits 1.
    broken = setup.rule(
        "broken", enabled=False, channels=[{"type": "teams", "url": "http://127.0.0.1:9/nowhere"}]
    )
    assert setup.api("POST", "/alerts/rules", json=broken).status_code == 201
    result = runner.invoke(main, [*base, "alerts", "test", NAME, "broken"], catch_exceptions=False)
    assert result.exit_code == 1 and "failed" in result.output and "ConnectError" in result.output


def test_firing_and_resolved_reach_every_channel(setup: Setup) -> None:
    assert setup.api("POST", "/alerts/rules", json=setup.rule("live")).status_code == 201
    setup.http.posted.clear()
    mails = len(setup.smtp.messages)
    fired = [e for e in setup.api("POST", "/alerts/evaluate").json() if e["rule"] == "live"]
    assert [e["kind"] for e in fired] == ["firing"]
    delivery = fired[0]["delivery"]
    assert delivery["status"] == "delivered"
    assert sorted(c["channel"] for c in delivery["channels"]) == [
        "email", "pagerduty", "slack", "teams", "webhook",
    ]  # fmt: skip

    quiet = setup.rule("live", threshold=1e12)
    assert setup.api("PUT", f"/alerts/rules/{NAME}/live", json=quiet).status_code == 200
    resolved = [e for e in setup.api("POST", "/alerts/evaluate").json() if e["rule"] == "live"]
    assert [e["kind"] for e in resolved] == ["resolved"]

    pagerduty = [p.body for p in setup.http.at("/pagerduty")]
    assert [b["event_action"] for b in pagerduty] == ["trigger", "resolve"]
    assert {b["dedup_key"] for b in pagerduty} == {f"modeldeck/{NAME}/live"}
    assert [p.body["type"] for p in setup.http.at("/hook")] == ["alert.firing", "alert.resolved"]
    subjects = [m["Subject"] for _, m in setup.smtp.messages[mails:]]
    assert subjects == [f"[modeldeck] Firing: {NAME}/live", f"[modeldeck] Resolved: {NAME}/live"]
    # The stored history says how each channel went, the same on either store.
    stored = setup.api("GET", "/alerts/events", params={"deployment": NAME}).json()
    live = [e for e in stored if e["rule"] == "live"]
    assert [e["kind"] for e in live] == ["resolved", "firing"]
    for event in live:
        assert [c["status"] for c in event["delivery"]["channels"]] == ["delivered"] * 5
