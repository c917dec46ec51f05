"""The dashboard shows hostile names as text and runs none of them, and flags open endpoints.

A real platform and headless Chromium (as ``test_browser.py``): a file deployment whose model
name (its file's stem) is an ``<img onerror>`` tag, with authentication off, and a batch
deployment whose recorded predictions carry ``<script>`` and ``<img>`` as metric keys, outputs
and delayed metrics. Every page that shows them must show the literal text, create no element
from it and run no script (each payload would set ``window.__xss`` or open a dialog).
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, Page, sync_playwright

from modeldeck.client import Client
from tests.conftest import Registered, RunningPlatform, start_platform
from tests.ui.test_browser import Console, chromium_path

pytestmark = pytest.mark.integration

IMG = "<img src=x onerror=window.__xss=1;alert(1)>"
SCRIPT = "<script>window.__xss=2;alert(2)</script>"
SVG = '<svg onload="window.__xss=3">'
# Plotly renders <a href> in legends; the & checks that escaping shows it as typed.
LINK = '<a href="javascript:window.__xss=4">R&amp;D</a>'


@pytest.fixture(scope="module")
def hostile(
    mlflow_registry: Registered, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningPlatform]:
    data_dir = tmp_path_factory.mktemp("dashboard-xss")
    running = start_platform(
        data_dir, f"sqlite:///{data_dir / 'modeldeck.db'}", mlflow_registry.tracking_uri
    )
    model = tmp_path_factory.mktemp("xss-model") / f"{IMG}.py"
    model.write_text("def predict(args):\n    return 1\n")
    try:
        with Client(running.url, running.api_key) as client:
            client.deploy("open", file=str(model), auth_enabled=False)
            client.deploy("batch", kind="batch")
            now = int(time.time() * 1000)
            uuids = client.record_predictions(
                "batch",
                [
                    {"metrics": {"input": {SCRIPT: 1, SVG: 2}, "output": [IMG, LINK][i % 2],
                                 SCRIPT: SVG},
                     "start_timestamp_ms": now - 60_000 + i, "end_timestamp_ms": now - 60_000 + i}
                    for i in range(3)
                ],
            )  # fmt: skip
            client.track_delayed_metrics({SVG: SCRIPT}, uuids[0], "batch")
        yield running
    finally:
        running.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    path = chromium_path()
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=path, args=["--no-sandbox"])
        yield browser
        browser.close()


@pytest.fixture
def page(browser: Browser, hostile: RunningPlatform) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    page = context.new_page()
    page.set_default_timeout(60_000)
    page.goto(hostile.url + "/")
    page.wait_for_selector("body[data-view=login][data-state=ready]")
    page.get_by_label("API key").fill(hostile.api_key)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_selector("body[data-view=deployments][data-state=ready]")
    yield page
    context.close()


def assert_inert(page: Page, dialogs: list[str]) -> None:
    assert page.evaluate("window.__xss") is None
    assert dialogs == []
    injected = page.evaluate(
        """() => [...document.querySelectorAll(
                'img[src="x"], svg[onload], script, a[href*="__xss"]')]
              .filter(el => el.tagName !== 'SCRIPT' || !el.src).length"""
    )
    assert injected == 0


def test_hostile_names_show_as_text_and_run_nothing(page: Page, hostile: RunningPlatform) -> None:
    dialogs: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    console = Console(page)
    row = page.locator("#deployments tbody tr", has_text="open")
    assert IMG in row.inner_text()
    assert_inert(page, dialogs)

    page.goto(f"{hostile.url}/#/deployments/batch/model-metrics")
    page.wait_for_selector("body[data-view='deployment:model-metrics'][data-state=ready]")
    page.wait_for_selector("#recent-records-table tbody tr")
    text = page.locator("#recent-records-table").inner_text()
    for payload in (IMG, SCRIPT, SVG):
        assert payload in text, payload
    page.wait_for_selector("[data-chart=predictions] .legend .traces")
    legend = page.locator("[data-chart=predictions] .legend").text_content() or ""
    assert LINK in legend and IMG in legend, legend  # shown as text, not made links
    assert_inert(page, dialogs)

    page.goto(f"{hostile.url}/#/deployments/open/overview")
    page.wait_for_selector("body[data-view='deployment:overview'][data-state=ready]")
    assert IMG in page.locator("main").inner_text()
    assert_inert(page, dialogs)
    assert [e for e in console.take() if "__xss" in e or "alert" in e] == []


def test_an_open_endpoint_has_a_badge_in_the_list_and_on_its_page(
    page: Page, hostile: RunningPlatform
) -> None:
    badges = page.locator("#deployments tbody tr [data-warning=auth-disabled]")
    assert badges.count() == 1
    flagged = page.locator(
        "#deployments tbody tr", has=page.locator("[data-warning=auth-disabled]")
    )
    assert flagged.count() == 1 and "open" in flagged.inner_text()
    assert "anyone who can reach the platform" in (badges.get_attribute("title") or "")
    page.goto(f"{hostile.url}/#/deployments/open/overview")
    page.wait_for_selector("body[data-view='deployment:overview'][data-state=ready]")
    assert page.locator("h1 [data-warning=auth-disabled]").inner_text() == "no auth"
    page.goto(f"{hostile.url}/#/deployments/batch/model-metrics")
    page.wait_for_selector("body[data-view='deployment:model-metrics'][data-state=ready]")
    assert page.locator("h1 [data-warning=auth-disabled]").count() == 0


def test_the_key_is_in_no_url_and_no_cookie(page: Page, hostile: RunningPlatform) -> None:
    urls: list[str] = []
    page.on("request", lambda r: urls.append(r.url))
    page.goto(f"{hostile.url}/#/deployments/open/overview")
    page.wait_for_selector("body[data-view='deployment:overview'][data-state=ready]")
    assert urls and all(hostile.api_key not in u for u in urls)
    assert hostile.api_key not in page.url
    assert page.context.cookies() == []
    assert page.evaluate("document.referrer") == ""
