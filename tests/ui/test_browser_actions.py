"""The dashboard does what the CLI does for a deployment's life, in a real headless Chromium
against one real platform: alert rules created (a refused one shows the API's message beside
its field) and deleted, a rollback, a canary started and stopped, the access key rotated (shown
once; the old key refused, the new one served), a deployment deleted, and the predictions (CSV)
and the report (HTML) downloaded with the tab's key. Each effect is checked through the API.

Screenshots go to ``$MODELDECK_SCREENSHOTS`` when it is set, else to a temporary folder.
"""

from __future__ import annotations

import csv
import io
import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect

from modeldeck.client import ApiError, Client
from modeldeck.demo.train import FEATURES
from tests.conftest import Registered, RunningPlatform, start_platform
from tests.ui.test_browser import TIME_ZONE, VIEWPORT, Console, browser, screenshots  # noqa: F401

pytestmark = pytest.mark.integration

NAME = "life"
RECORDED = 30
SLACK = "https://hooks.slack.com/services/T0/B0/x"


class Platform:
    def __init__(self, running: RunningPlatform, client: Client, key: str, versions: list[str]):
        self.running = running
        self.client = client
        self.access_key = key
        self.v1, self.v2 = versions

    def predict_status(self, key: str) -> int:
        return httpx.post(
            f"{self.running.url}/deployments/{NAME}/predict",
            json={"inputs": [[5.1, 3.5, 1.4, 0.2]]},
            headers={"Authorization": f"Bearer {key}"},
            timeout=30,
        ).status_code


@pytest.fixture(scope="module")
def platform(
    mlflow_registry: Registered, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Platform]:
    data_dir = tmp_path_factory.mktemp("dashboard-actions")
    running = start_platform(
        data_dir, f"sqlite:///{data_dir / 'modeldeck.db'}", mlflow_registry.tracking_uri
    )
    client = running.client()
    try:
        v1, v2 = mlflow_registry.versions
        created = client.deploy(NAME, "iris", version=v1, replicas=1)
        client.wait(NAME, timeout=180)
        now = int(time.time() * 1000)
        values = [5.1, 3.5, 1.4, 0.2]
        client.record_predictions(
            NAME,
            [
                {
                    "metrics": {"input": dict(zip(FEATURES, values, strict=True)), "output": i % 3},
                    "start_timestamp_ms": now - (RECORDED - i) * 60_000 - 3,
                    "end_timestamp_ms": now - (RECORDED - i) * 60_000,
                    "model_version": v1,
                }
                for i in range(RECORDED)
            ],
        )
        yield Platform(running, client, created["access_key"], [v1, v2])
    finally:
        client.close()
        running.stop()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:  # noqa: F811
    context = browser.new_context(viewport=VIEWPORT, timezone_id=TIME_ZONE, accept_downloads=True)
    page = context.new_page()
    page.set_default_timeout(60_000)
    yield page
    context.close()


def open_tab(page: Page, platform: Platform, tab: str = "", name: str = NAME) -> None:
    """Sign in (once per page), then open a deployment's tab."""
    if page.url == "about:blank":
        page.goto(platform.running.url + "/")
        page.wait_for_selector("body[data-view=login][data-state=ready]")
        page.get_by_label("API key").fill(platform.running.api_key)
        page.get_by_role("button", name="Sign in").click()
        page.wait_for_selector("body[data-view=deployments][data-state=ready]")
    page.goto(f"{platform.running.url}/#/deployments/{name}{'/' + tab if tab else ''}")
    view = f"deployment:{tab or 'overview'}"
    page.wait_for_selector(f"body[data-view='{view}'][data-state=ready]")


def head_button(page: Page, name: str) -> Any:
    return page.locator("#deployment-head").get_by_role("button", name=name, exact=True)


def eventually(check: Callable[[], bool], timeout: float = 180.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what or check}"
        time.sleep(0.5)


def errors_but(console: Console, status: int) -> list[str]:
    """The page's errors, but Chromium's line for each answer with ``status`` (an API error
    the test provokes and the page shows)."""
    return [e for e in console.take() if f"status of {status}" not in e]


def shoot(page: Page, path: Path) -> None:
    page.screenshot(path=str(path), full_page=True)


def test_alert_rules_are_created_and_deleted_from_the_alerts_tab(
    page: Page,
    platform: Platform,
    screenshots: Path,  # noqa: F811
) -> None:
    console = Console(page)
    open_tab(page, platform, "alerts")
    page.get_by_role("button", name="New rule…").click()
    dialog = page.get_by_role("dialog")
    dialog.get_by_label("Rule name").fill("acc-low")
    dialog.get_by_label("Metric", exact=True).fill("performance.nope")
    dialog.get_by_label("Fires when the metric is").select_option("lt")
    dialog.get_by_label("Threshold").fill("0.8")
    dialog.get_by_label("Window").fill("2h")
    dialog.get_by_label("Minimum samples").fill("25")
    dialog.get_by_label("Slack incoming-webhook URL").fill(SLACK)
    dialog.get_by_role("button", name="Create rule").click()
    # The API's 422 is shown beside the field it names; nothing was created.
    metric = dialog.get_by_label("Metric", exact=True)
    expect(metric).to_have_attribute("aria-invalid", "true")
    expect(dialog.locator("#rule-metric-error")).to_contain_text("performance.nope")
    expect(dialog.get_by_role("alert")).to_contain_text("metric:")
    assert platform.client.alert_rules(NAME) == []
    shoot(page, screenshots / "alert-rule-form.png")

    metric.fill("performance.accuracy")
    dialog.get_by_role("button", name="Create rule").click()
    expect(page.locator("#alert-rules-table tbody tr", has_text="acc-low")).to_contain_text(
        "< 0.8 over 2h (≥ 25 samples)"
    )
    shoot(page, screenshots / "alerts-with-rule.png")
    (rule,) = platform.client.alert_rules(NAME)
    assert rule["metric"] == "performance.accuracy" and rule["comparison"] == "lt"
    assert rule["threshold"] == 0.8 and rule["window_seconds"] == 7200
    assert rule["min_samples"] == 25 and rule["cooldown_seconds"] == 900  # the CLI's default
    assert [c["type"] for c in rule["channels"]] == ["slack"]

    row = page.locator("#alert-rules-table tbody tr", has_text="acc-low")
    row.get_by_role("button", name="Delete rule acc-low").click()
    confirm = page.get_by_role("dialog")
    expect(confirm).to_contain_text("Delete alert rule acc-low?")
    confirm.get_by_role("button", name="Cancel").click()  # cancelling changes nothing
    assert len(platform.client.alert_rules(NAME)) == 1
    row.get_by_role("button", name="Delete rule acc-low").click()
    page.get_by_role("dialog").get_by_role("button", name="Delete rule").click()
    expect(page.locator("#alert-rules-table")).to_contain_text("No alert rules")
    assert platform.client.alert_rules(NAME) == []
    assert errors_but(console, 422) == []


def test_predictions_download_as_csv_and_the_report_as_html(
    page: Page,
    platform: Platform,
    screenshots: Path,  # noqa: F811
) -> None:
    console = Console(page)
    open_tab(page, platform, "model-metrics")
    with page.expect_download() as caught:
        page.get_by_role("button", name="Download CSV").click()
    download = caught.value
    assert download.suggested_filename == f"{NAME}-predictions.csv"
    rows = list(csv.DictReader(io.StringIO(Path(download.path()).read_text())))
    assert len(rows) == RECORDED  # the tab's range (24 h) holds them all
    assert {r["model_version"] for r in rows} == {platform.v1}
    assert float(rows[0]["input.petal_length"]) == 1.4
    expect(page.locator(".toast", has_text=f"({RECORDED} rows)")).to_be_visible()
    shoot(page, screenshots / "model-metrics-download.png")

    open_tab(page, platform, "drift")
    with page.expect_download() as caught:
        page.get_by_role("button", name="Download report").click()
    download = caught.value
    assert download.suggested_filename == f"{NAME}-report.html"
    report = Path(download.path()).read_text()
    assert report.startswith("<!DOCTYPE html>") and f"modeldeck report: {NAME}" in report
    assert "<h2>Data drift</h2>" in report and "<h2>Performance</h2>" in report
    assert console.take() == []


def test_rotating_the_key_shows_the_new_one_once_and_refuses_the_old(
    page: Page,
    platform: Platform,
    screenshots: Path,  # noqa: F811
) -> None:
    console = Console(page)
    old = platform.access_key
    assert platform.predict_status(old) == 200
    open_tab(page, platform)
    head_button(page, f"Rotate the access key of {NAME}").click()
    confirm = page.get_by_role("dialog")
    expect(confirm).to_contain_text("stops working at once")
    confirm.get_by_role("button", name="Replace the key").click()
    shown = page.locator("#new-access-key")
    expect(shown).to_have_text(re.compile(r"^\s*[0-9a-f]{40}\s*$"))
    new = shown.inner_text().strip()
    shoot(page, screenshots / "new-access-key.png")
    page.get_by_role("dialog").get_by_role("button", name="Done").click()
    expect(shown).to_have_count(0)  # shown once: the dialog is gone, and so is the key
    # The overview shows the new key's prefix (never the key).
    expect(page.locator("#tab-overview")).to_contain_text(f"{new[:8]}…")
    assert new not in page.locator("#main").inner_text()
    assert new != old
    platform.access_key = new
    assert platform.predict_status(old) == 401
    assert platform.predict_status(new) == 200
    assert console.take() == []


def test_rollback_returns_to_the_version_served_before(page: Page, platform: Platform) -> None:
    console = Console(page)
    client = platform.client
    client.redeploy(NAME, version=platform.v2)
    client.wait(NAME, timeout=180, version=platform.v2)
    open_tab(page, platform)
    head_button(page, f"Roll back {NAME}").click()
    confirm = page.get_by_role("dialog")
    expect(confirm).to_contain_text(f"before v{platform.v2}")
    confirm.get_by_role("button", name="Roll back").click()
    expect(page.locator(".toast", has_text=f"{NAME} is rolling back")).to_be_visible()
    client.wait(NAME, timeout=180, version=platform.v1)
    # The page follows the rollout (auto-refresh, 15 s by default) to the version rolled back to.
    expect(page.locator("#deployment-head .subtitle").first).to_contain_text(
        f"iris v{platform.v1} ·", timeout=45_000
    )
    expect(page.locator("#tab-overview")).to_contain_text(f"models:/iris/{platform.v1}")
    # Nothing before v1: the API's 409 shows in the error toast, and nothing changes.
    head_button(page, f"Roll back {NAME}").click()
    page.get_by_role("dialog").get_by_role("button", name="Roll back").click()
    expect(page.locator(".toast.bad")).to_contain_text("no previous version to roll back to")
    assert client.deployment(NAME)["version"] == platform.v1
    assert errors_but(console, 409) == []


def test_a_canary_starts_and_stops_from_the_page(
    page: Page,
    platform: Platform,
    screenshots: Path,  # noqa: F811
) -> None:
    console = Console(page)
    client = platform.client
    client.wait(NAME, timeout=180)
    serving = client.deployment(NAME)["version"]
    candidate = platform.v2 if serving == platform.v1 else platform.v1
    open_tab(page, platform)
    head_button(page, f"Start a canary of {NAME}").click()
    dialog = page.get_by_role("dialog")
    dialog.get_by_label("Candidate version").select_option(candidate)
    dialog.get_by_label("Share of requests (%)").fill("25")
    dialog.get_by_label("Requests before deciding").fill("100000")  # no decision meanwhile
    dialog.get_by_label("Roll back at once when worse on the labelled reference data").uncheck()
    dialog.get_by_label("Roll back when its inputs drift").uncheck()
    shoot(page, screenshots / "canary-form.png")
    dialog.get_by_role("button", name="Start canary").click()
    expect(page.locator("#deployment-canary")).to_contain_text(
        f"Canary: v{candidate} on 25% of the traffic"
    )
    status = client.canary_status(NAME)
    assert status["active"] and status["candidate_version"] == candidate
    policy = status["policy"]
    assert status["percent"] == 25 and policy["min_requests"] == 100000
    assert policy["reference_margin"] is None and policy["max_drift"] is False
    assert policy["max_error_rate"] == 0.01  # left empty: the API's default
    shoot(page, screenshots / "deployment-canary.png")

    head_button(page, f"Stop the canary of {NAME}").click()
    confirm = page.get_by_role("dialog")
    expect(confirm).to_contain_text(f"v{serving} answers every request")
    confirm.get_by_role("button", name="Stop canary").click()
    expect(page.locator("#deployment-canary")).to_contain_text(f"Last canary: v{candidate} stopped")
    assert not client.canary_status(NAME)["active"]
    assert client.deployment(NAME)["version"] == serving
    assert console.take() == []


def test_a_deployment_is_deleted_after_confirming(page: Page, platform: Platform) -> None:
    console = Console(page)
    client = platform.client
    client.deploy("scratch", "iris", version=platform.v1, kind="batch")
    open_tab(page, platform, name="scratch")
    head_button(page, "Delete scratch").click()
    confirm = page.get_by_role("dialog")
    expect(confirm).to_contain_text("cannot be undone")
    confirm.get_by_role("button", name="Cancel").click()
    assert client.deployment("scratch")["name"] == "scratch"
    head_button(page, "Delete scratch").click()
    page.get_by_role("dialog").get_by_role("button", name="Delete deployment").click()
    page.wait_for_selector("body[data-view=deployments][data-state=ready]")
    expect(page.locator("#deployments")).not_to_contain_text("scratch")
    with pytest.raises(ApiError) as refused:
        client.deployment("scratch")
    assert refused.value.status_code == 404
    assert console.take() == []
