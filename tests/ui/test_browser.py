"""The dashboard in a real headless Chromium (Debian's ``chromium``, driven by Playwright)
against a real platform serving the registered Iris model with simulated traffic, ground truth,
reference data and alerts: every page and tab loads without console errors, every chart has
data points, the replica table adds up to the API's totals, stop and start work from the page,
and a wrong key is refused at the login form.

Screenshots of each page go to ``$MODELDECK_SCREENSHOTS`` when it is set (``make screenshots``
writes ``docs/screenshots/``), else to a temporary folder.
"""

from __future__ import annotations

import os
import random
import re
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx
import pytest
from playwright.sync_api import (
    Browser,
    ConsoleMessage,
    Page,
    Playwright,
    expect,
    sync_playwright,
)

from modeldeck.client import Client
from modeldeck.demo.train import FEATURES
from modeldeck.simulate import FeatureDrift, simulate
from tests.conftest import Registered, RunningPlatform, start_platform

pytestmark = pytest.mark.integration

NAME = "iris"
TIME_ZONE = "Europe/Berlin"
TABS = ["overview", "monitoring", "model-metrics", "drift", "alerts", "logs"]
CHARTS = {
    "monitoring": {"rps", "requests", "failures", "latency", "cpu", "memory", "sizes"},
    "model-metrics": {"predictions", "performance"},
}
VIEWPORT = {"width": 1280, "height": 800}


def chromium_path() -> str:
    path = os.environ.get("MODELDECK_TEST_CHROMIUM") or shutil.which("chromium") or ""
    if not path:
        message = "no chromium: install Debian's package (`apt-get install chromium`)"
        if os.environ.get("CI"):
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    return path


@dataclass
class Deployed:
    platform: RunningPlatform
    client: Client
    access_key: str


def _backfill(client: Client) -> None:
    """Six hours of recorded predictions (as batch inference records them) with their ground
    truth: accuracy and petal_length move in the last two hours, so the charts show a change;
    one in twelve lacks sepal_width."""
    rng = random.Random(6)
    reference = client.reference(NAME, rows=150, sample=True, seed=1)["sample"]
    now = int(time.time() * 1000)
    predictions, labels = [], []
    for i in range(360):
        end = now - (360 - i) * 60_000
        row = rng.choice(reference)
        target = int(row["target"])
        late = i >= 240
        features = {f: row[f] for f in FEATURES}
        if i % 12 == 0:  # a tracked field left out now and then: the data-quality table flags it
            del features["sepal_width"]
        if late:
            features["petal_length"] = round(features["petal_length"] + 1.5, 2)
        right = rng.random() < (0.65 if late else 0.95)
        output = target if right else rng.choice([c for c in (0, 1, 2) if c != target])
        top = 0.5 + 0.45 * rng.random()
        probabilities = {str(c): round(top if c == output else (1 - top) / 2, 4) for c in range(3)}
        predictions.append({
            "metrics": {"input": features, "output": output, "probabilities": probabilities},
            "start_timestamp_ms": end - 4, "end_timestamp_ms": end, "model_version": "1",
        })  # fmt: skip
        labels.append({"actual_result": target})
    uuids = client.record_predictions(NAME, predictions)
    client.track_delayed_metrics_batch(NAME, list(zip(uuids, labels, strict=True)))


@pytest.fixture(scope="module")
def deployed(
    mlflow_registry: Registered, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Deployed]:
    data_dir = tmp_path_factory.mktemp("dashboard")
    running = start_platform(
        data_dir, f"sqlite:///{data_dir / 'modeldeck.db'}", mlflow_registry.tracking_uri
    )
    client = running.client()
    try:
        created = client.deploy(NAME, "iris", version=1, replicas=2)
        key = created["access_key"]
        client.wait(NAME, timeout=180)
        client.reference_from_registry(NAME)
        _backfill(client)
        result = simulate(
            client, NAME, requests=160, rate=32, seed=11, concurrency=4, source="reference",
            labels="reference", drifts=[FeatureDrift("petal_length", shift=2.0)],
            drift_start=0.5, access_key=key,
        )  # fmt: skip
        assert result.ok == 160, result.errors
        predict = f"{running.url}/deployments/{NAME}/predict"
        for _ in range(3):  # refused at the gateway (401) and rejected by a replica (422)
            httpx.post(
                predict, json={"inputs": [[1, 2, 3, 4]]}, headers={"Authorization": "Bearer x"}
            )
            httpx.post(
                predict,
                json={"inputs": [["a", 2, 3, 4]]},
                headers={"Authorization": f"Bearer {key}"},
            )
        client.create_alert_rule(
            name="p95-latency", deployment=NAME, metric="technical.p95_latency_ms",
            comparison="gt", threshold=0.001, window_seconds=900,
        )  # fmt: skip
        client.create_alert_rule(
            name="accuracy-low", deployment=NAME, metric="performance.accuracy",
            comparison="lt", threshold=0.9, window_seconds=7200,
        )  # fmt: skip
        assert client.evaluate_alerts()
        deadline = time.monotonic() + 30  # CPU and memory are sampled every 5 s
        while time.monotonic() < deadline:
            per = client.technical_metrics(NAME)["resources"]["per_replica"]
            if len(per) == 2 and all(len(points) >= 2 for points in per.values()):
                break
            time.sleep(1)
        yield Deployed(running, client, key)
    finally:
        client.close()
        running.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    path = chromium_path()
    with sync_playwright() as playwright:
        browser = _launch(playwright, path)
        yield browser
        browser.close()


def _launch(playwright: Playwright, path: str) -> Browser:
    return playwright.chromium.launch(executable_path=path, args=["--no-sandbox"])


@pytest.fixture(scope="module")
def screenshots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    target = os.environ.get("MODELDECK_SCREENSHOTS")
    path = Path(target) if target else tmp_path_factory.mktemp("screenshots")
    path.mkdir(parents=True, exist_ok=True)
    return path


class Console:
    """Errors the page logs (console errors, uncaught exceptions, failed requests)."""

    def __init__(self, page: Page) -> None:
        self.errors: list[str] = []
        page.on("console", self._message)
        page.on("pageerror", lambda exc: self.errors.append(f"uncaught: {exc}"))

    def _message(self, message: ConsoleMessage) -> None:
        if message.type == "error":
            self.errors.append(f"{message.text} ({message.location.get('url', '')})")

    def take(self) -> list[str]:
        errors, self.errors = self.errors, []
        return errors


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport=VIEWPORT, timezone_id=TIME_ZONE)
    page = context.new_page()
    page.set_default_timeout(60_000)
    yield page
    context.close()


def sign_in(page: Page, deployed: Deployed, key: str | None = None) -> None:
    page.goto(deployed.platform.url + "/")
    page.wait_for_selector("body[data-view=login][data-state=ready]")
    page.get_by_label("API key").fill(key or deployed.platform.api_key)
    page.get_by_role("button", name="Sign in").click()


def open_tab(page: Page, deployed: Deployed, tab: str) -> None:
    page.goto(f"{deployed.platform.url}/#/deployments/{NAME}/{tab}")
    page.wait_for_selector(f"body[data-view='deployment:{tab}'][data-state=ready]")


def custom_range(page: Page, picker: str, minutes: int) -> None:
    """Pick the last ``minutes`` (to the next minute) as a custom range, in the page's zone."""
    zone = ZoneInfo(TIME_ZONE)
    end = datetime.now(zone).replace(second=0, microsecond=0) + timedelta(minutes=1)
    start = end - timedelta(minutes=minutes)
    shown = page.locator("#monitoring-shown").inner_text()
    page.locator(f"#{picker}").get_by_role("button", name="Custom").click()
    page.get_by_label("From", exact=True).fill(start.strftime("%Y-%m-%dT%H:%M"))
    page.get_by_label("To", exact=True).fill(end.strftime("%Y-%m-%dT%H:%M"))
    page.locator(f"#{picker}").get_by_role("button", name="Apply").click()
    page.wait_for_function(
        "shown => document.querySelector('#monitoring-shown').textContent !== shown", arg=shown
    )
    assert (
        page.locator("#monitoring-shown").inner_text().startswith(start.strftime("%Y-%m-%d %H:%M"))
    )


def chart_points(page: Page) -> dict[str, int]:
    """Data points (non-null y values) drawn in each chart of the page."""
    found: dict[str, int] = page.evaluate(
        """() => Object.fromEntries([...document.querySelectorAll('[data-chart]')].map(el =>
            [el.dataset.chart, (el.data || []).reduce((n, trace) =>
                n + (trace.y || []).filter(v => v !== null && v !== undefined).length, 0)]))"""
    )
    return found


def shoot(page: Page, path: Path) -> None:
    page.wait_for_timeout(300)  # let Plotly finish its transitions
    page.screenshot(path=str(path), full_page=True)


def test_an_invalid_key_shows_a_login_error(
    page: Page, deployed: Deployed, screenshots: Path
) -> None:
    sign_in(page, deployed, key="mdk_not_a_key")
    error = page.get_by_role("alert")
    error.wait_for()
    assert "not accepted" in error.inner_text()
    assert page.evaluate("document.body.dataset.view") == "login"
    assert page.evaluate("sessionStorage.getItem('modeldeck.apiKey')") is None
    # The access key `make run` prints is refused with a hint at the key that signs in.
    sign_in(page, deployed, key=deployed.access_key)
    # A locator assertion, not wait_for_function: a string expression is eval'd in the page,
    # which the dashboard's Content-Security-Policy (script-src 'self') rightly refuses.
    expect(error).to_contain_text("access key")
    assert "Sign in with the control-plane API key" in error.inner_text()
    page.get_by_label("API key").fill("")
    shoot(page, screenshots / "login.png")


def test_every_page_and_tab_loads_without_console_errors_and_charts_have_data(
    page: Page, deployed: Deployed, screenshots: Path
) -> None:
    console = Console(page)
    sign_in(page, deployed)
    page.wait_for_selector("body[data-view=deployments][data-state=ready]")
    row = page.locator("#deployments tbody tr", has_text=NAME)
    assert "deployed" in row.inner_text()
    page.wait_for_selector("#deployments .badge[data-verdict]")  # verdicts fill in
    verdict = deployed.client.drift(NAME, start_ms=int(time.time() * 1000) - 86_400_000)["verdict"]
    cell = row.locator(".badge[data-verdict]")
    assert cell.get_attribute("data-verdict") == verdict["level"]
    # petal_length drifted, under half of the columns: not a green "no drift" any more, but
    # coloured by the worst (yellow for some columns, red for dataset or prediction drift).
    assert verdict["drifted_columns"] >= 1 and verdict["level"] in ("warn", "drift")
    tone = {"warn": "warn", "drift": "bad"}[verdict["level"]]
    assert tone in (cell.get_attribute("class") or "").split()
    assert f"{verdict['drifted_columns']}/{verdict['columns']} columns" in cell.inner_text()
    assert ("prediction" in cell.inner_text()) == bool(verdict["prediction_drifted"])
    assert page.locator("#timezone").inner_text() == f"Times in {TIME_ZONE}"
    assert console.take() == []
    shoot(page, screenshots / "deployments.png")

    for tab in TABS:
        open_tab(page, deployed, tab)
        if tab == "monitoring":  # the minutes with traffic, as a custom range
            custom_range(page, "monitoring-range", minutes=3)
        points = chart_points(page)
        expected = CHARTS.get(tab, set())
        assert expected <= set(points), (tab, points)
        if tab == "drift":
            assert {f"drift-{f}" for f in FEATURES} <= set(points)
        empty = [name for name, n in points.items() if n == 0]
        assert not empty, f"{tab}: charts without data points: {empty}"
        assert console.take() == [], tab
        shoot(page, screenshots / f"{tab}.png")

    # What the tabs show is the API's.
    open_tab(page, deployed, "drift")
    drift = deployed.client.drift(NAME)
    banner = page.locator("#dataset-verdict")
    assert banner.get_attribute("data-drifted") == str(drift["dataset"]["drifted"]).lower()
    # The banner hides nothing: the worst verdict's colour, the drifted columns, the prediction.
    v = drift["verdict"]
    assert banner.get_attribute("data-verdict") == v["level"]
    assert v["drifted_columns"] >= 1 and v["level"] in ("warn", "drift")
    assert {"warn": "warn", "drift": "bad"}[v["level"]] in (banner.get_attribute("class") or "")
    said = banner.inner_text()
    assert f"{v['drifted_columns']} of {v['columns']} columns drifted" in said
    prediction = "the prediction drifted" if v["prediction_drifted"] else "did not drift"
    assert prediction in said
    headers = page.locator("#drift-table thead").inner_text()
    assert "Statistic" in headers and "p-value" in headers
    # Drift over time: the API's verdict per window and column, the shifted column red.
    chart = page.locator("[data-chart=drift-over-time]")
    shown = {k: int(chart.get_attribute(f"data-{k}") or 0) for k in ("start", "end", "step")}
    series = deployed.client.drift_series(
        NAME, start_ms=shown["start"], end_ms=shown["end"], step_seconds=shown["step"] // 1000
    )
    red = sum(
        bool(test and test["current_rows"] and test["drifted"])
        for w in series.windows
        if w["verdict"] != "not_enough_data"
        for test in [*w["columns"].values(), w["prediction"]]
    )
    assert chart.get_attribute("data-drifted") == str(red)
    marked = chart.evaluate("el => el.data.find(t => t.name === 'drift').y")
    assert "petal_length" in marked and not {"sepal_length", "sepal_width"} & set(marked)
    # Data quality: the column with missing values is flagged, with the API's share.
    window = deployed.client.window(NAME)
    quality = deployed.client.quality(NAME, start_ms=window["start"], end_ms=window["end"])
    by_name = {c["column"]: c for c in quality["total"]["columns"]}
    assert by_name["sepal_width"]["missing_share"] > 0 and by_name["sepal_length"]["missing"] == 0
    name = page.locator("#quality-table [data-column='sepal_width']")
    assert "missing" in (name.get_attribute("data-problems") or "").split()
    row = page.locator("#quality-table tbody tr").filter(
        has=page.locator("[data-column='sepal_width']")  # relative to the row
    )
    flagged = row.locator("[data-problem='missing']")
    expect(flagged).to_have_class(re.compile(r"\bbad\b"))
    assert flagged.inner_text() == f"{by_name['sepal_width']['missing_share'] * 100:.1f} %"
    clean = page.locator("#quality-table tbody tr").filter(
        has=page.locator("[data-column='sepal_length']")
    )
    assert clean.locator("[data-problem='missing']").count() == 0
    open_tab(page, deployed, "model-metrics")
    latest = httpx.get(
        f"{deployed.platform.url}/api/v1/deployments/{NAME}/metrics/model/recent?limit=1",
        headers={"Authorization": f"Bearer {deployed.platform.api_key}"},
    )
    record = latest.json()["records"][0]
    first = page.locator("#recent-records-table tbody tr").first
    assert record["uuid"] in first.inner_text()
    local = datetime.fromtimestamp(record["end_ms"] / 1000, ZoneInfo(TIME_ZONE))
    assert first.locator(".record-time").inner_text() == local.strftime("%Y-%m-%d %H:%M:%S")
    open_tab(page, deployed, "alerts")
    assert page.locator("#alert-rules-table tbody tr").count() == 2
    assert "firing" in page.locator("#alert-events-table").inner_text()
    open_tab(page, deployed, "logs")
    assert "loaded models:/iris/1" in page.locator("pre.log[data-replica='0']").inner_text()
    assert console.take() == []


def test_ranges_run_from_five_minutes_to_fourteen_days_and_accuracy_keeps_a_unit_axis(
    page: Page, deployed: Deployed
) -> None:
    """Auto is the default and is the platform's fitted window (six hours of data: 12h); the
    5m preset gives windows of seconds whose times keep their seconds; the accuracy axis is
    [0, 1] whatever the values, so a small dip does not fill the chart."""
    console = Console(page)
    sign_in(page, deployed)
    page.wait_for_selector("body[data-view=deployments][data-state=ready]")
    open_tab(page, deployed, "model-metrics")
    picker = page.locator("#model-range")
    presets = [b.get_attribute("data-preset") for b in picker.locator("button[data-preset]").all()]
    assert presets == ["auto", "5m", "15m", "1h", "2h", "6h", "12h", "24h", "7d", "14d", "custom"]
    assert picker.locator("[data-preset=auto]").get_attribute("aria-pressed") == "true"
    fitted = deployed.client.window(NAME)
    assert fitted["preset"] == "12h" and fitted["fitted"]
    shown = page.locator("#model-shown").inner_text()
    assert shown.endswith(f"windows of {fitted['step'] // 60_000}m"), shown
    chart = page.locator("[data-chart=performance]")
    assert chart.evaluate("el => el._fullLayout.yaxis.range") == [0, 1]
    assert "%S" not in chart.evaluate("el => el.layout.xaxis.hoverformat")

    picker.locator("[data-preset='5m']").click()
    page.wait_for_function(
        "() => document.querySelector('#model-shown').textContent.endsWith('windows of 5s')"
    )
    assert chart.evaluate("el => el.layout.xaxis.hoverformat").endswith("%H:%M:%S")
    start = page.locator("#model-shown").inner_text().split(" → ")[0]
    assert int(start[-2:]) % 5 == 0, start  # windows start on whole steps
    assert chart.evaluate("el => el._fullLayout.yaxis.range") == [0, 1]
    assert console.take() == []


def _number(text: str) -> int:
    return int(text.replace(",", ""))


def test_replica_table_totals_equal_the_api(page: Page, deployed: Deployed) -> None:
    sign_in(page, deployed)
    page.wait_for_selector("body[data-view=deployments][data-state=ready]")
    open_tab(page, deployed, "monitoring")
    page.get_by_role("button", name="6h", exact=True).click()
    page.wait_for_function(
        "() => document.querySelector('#monitoring-shown').textContent.includes('5m')"
    )
    api = deployed.client.technical_metrics(NAME, start_ms=int(time.time() * 1000) - 6 * 3600_000)
    totals = api["totals"]
    shown = {
        key: _number(page.locator(f"#replica-table-data [data-total={key}]").inner_text())
        for key in ("received", "success", "failed")
    }
    assert shown == {
        "received": totals["requests"],
        "success": totals["ok"],
        "failed": totals["failed"],
    }
    assert totals["failed"] == 6 and totals["requests"] == 166
    rows = page.locator("#replica-table-data tbody tr").all_inner_texts()
    assert len(rows) == len(api["replicas"]) == 3  # the gateway and both replicas
    for text, replica in zip(rows, api["replicas"], strict=True):
        cells = text.split("\t")
        assert [_number(c) for c in cells[1:4]] == [
            replica["received"],
            replica["success"],
            replica["failed"],
        ]

    # One replica: the charts redraw for it alone, the table still shows every replica.
    page.get_by_label("Replica", exact=True).select_option("1")
    page.wait_for_function("() => document.querySelector('[data-chart=cpu]').data.length === 1")
    assert _number(page.locator("#replica-table-data [data-total=received]").inner_text()) == 166


def test_redeploy_asks_which_version_first(
    page: Page, deployed: Deployed, mlflow_registry: Registered
) -> None:
    sign_in(page, deployed)
    page.wait_for_selector("body[data-view=deployments][data-state=ready]")
    open_tab(page, deployed, "overview")
    page.locator("#deployment-head").get_by_role("button", name=f"Redeploy {NAME}").click()
    dialog = page.get_by_role("dialog")
    dialog.wait_for()
    options = dialog.get_by_label("Version").locator("option").all_inner_texts()
    v1, v2 = mlflow_registry.versions
    assert options[:2] == ["latest", "@champion"]
    assert sorted(options[2:]) == [f"version {v1} (serving now)", f"version {v2}"]
    page.keyboard.press("Escape")  # cancelling changes nothing
    dialog.wait_for(state="detached")
    assert deployed.client.deployment(NAME)["version"] == v1


def test_send_test_from_the_alerts_tab_reaches_the_channel(page: Page, deployed: Deployed) -> None:
    from tests.monitoring.alerts.receivers import http_receiver

    with http_receiver() as receiver:
        deployed.client.create_alert_rule(
            name="to-slack", deployment=NAME, metric="technical.requests", comparison="gt",
            threshold=1e12, channels=[{"type": "slack", "url": f"{receiver.url}/slack/x"}],
        )  # fmt: skip
        try:
            console = Console(page)
            sign_in(page, deployed)
            page.wait_for_selector("body[data-view=deployments][data-state=ready]")
            open_tab(page, deployed, "alerts")
            row = page.locator("#alert-rules-table tbody tr", has_text="to-slack")
            assert "slack" in row.inner_text()
            row.get_by_role("button", name="Send test").click()
            page.locator(".toast", has_text="Test of to-slack: slack: delivered").wait_for()
            (posted,) = receiver.at("/slack/x")
            assert posted.body["text"].startswith(f"Test: {NAME}/to-slack")
            # Rules without a channel offer no test.
            other = page.locator("#alert-rules-table tbody tr", has_text="p95-latency")
            assert other.get_by_role("button", name="Send test").count() == 0
            assert console.take() == []
        finally:
            deployed.client.delete_alert_rule(NAME, "to-slack")


def test_stop_and_start_from_the_page(page: Page, deployed: Deployed) -> None:
    console = Console(page)
    sign_in(page, deployed)
    page.wait_for_selector("body[data-view=deployments][data-state=ready]")
    page.get_by_label("Auto-refresh").select_option("5")
    row = page.locator("#deployments tbody tr", has_text=NAME)

    row.get_by_role("button", name=f"Stop {NAME}").click()
    dialog = page.get_by_role("dialog")
    assert f"Stop {NAME}?" in dialog.inner_text()
    dialog.get_by_role("button", name="Cancel").click()  # cancelling changes nothing
    assert deployed.client.deployment(NAME)["status"] == "deployed"

    row.get_by_role("button", name=f"Stop {NAME}").click()
    page.get_by_role("dialog").get_by_role("button", name="Stop deployment").click()
    row.locator("[data-status=stopped]").wait_for()
    assert deployed.client.deployment(NAME)["status"] == "stopped"

    # Start with the keyboard alone.
    start = row.get_by_role("button", name=f"Start {NAME}")
    start.focus()
    page.keyboard.press("Enter")
    row.locator("[data-status=deployed]").wait_for(timeout=180_000)
    assert deployed.client.deployment(NAME)["status"] == "deployed"
    assert console.take() == []


def test_an_autoscaled_deployment_says_so_and_scaling_it_warns(
    page: Page, deployed: Deployed
) -> None:
    console = Console(page)
    # Bounds that keep the module's two replicas: the other tests count on them.
    policy = {"min_replicas": 2, "max_replicas": 3, "scale_down_delay_seconds": 3600}
    deployed.client.scale(NAME, autoscaling=policy)
    try:
        sign_in(page, deployed)
        page.wait_for_selector("body[data-view=deployments][data-state=ready]")
        row = page.locator("#deployments tbody tr", has_text=NAME)
        assert "(autoscaled 2\u20133)" in row.inner_text()
        row.get_by_role("button", name=f"Scale {NAME}").click()
        dialog = page.get_by_role("dialog")
        dialog.wait_for()
        assert "A fixed count ends autoscaling" in dialog.inner_text()
        page.keyboard.press("Escape")  # cancelling changes nothing
        dialog.wait_for(state="detached")
        assert deployed.client.deployment(NAME)["autoscaling"]["max_replicas"] == 3
        open_tab(page, deployed, "overview")
        head = page.locator("#deployment-head").inner_text()
        assert "replicas ready (autoscaled 2\u20133)" in head
        assert console.take() == []
    finally:
        deployed.client.scale(NAME, replicas=2)
    assert deployed.client.deployment(NAME)["autoscaling"] is None


def test_swagger_ui_and_redoc_render_with_no_other_host(page: Page, deployed: Deployed) -> None:
    """The API docs render in Chromium under their CSP, from the platform's files only."""
    console = Console(page)
    base = deployed.platform.url
    hosts: set[str] = set()
    page.on("request", lambda request: hosts.add(request.url.split("/")[2]))
    page.goto(f"{base}/docs")
    page.wait_for_selector(".swagger-ui .info .title:has-text('modeldeck')")
    assert page.locator(".opblock-tag-section").count() >= 5  # the API's tags, drawn
    page.goto(f"{base}/redoc")
    page.wait_for_selector("h1:has-text('modeldeck')")
    assert hosts == {base.split("/")[2]}
    assert console.take() == []
