"""The README's story on screen: after ``modeldeck demo --story``'s traffic (shortened here to
about half a minute), the dashboard's default (Auto) window shows the change: on the Drift tab
the shifted column is red and the others are not, and on Model metrics accuracy falls on a
fixed [0, 1] axis, in windows of seconds."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Page, sync_playwright

from modeldeck.client import Client
from modeldeck.demo.story import DRIFT, Story, run_story
from modeldeck.demo.train import FEATURES
from tests.conftest import Registered, RunningPlatform, start_platform
from tests.ui.test_browser import Console, chromium_path

pytestmark = [pytest.mark.integration, pytest.mark.slow]

NAME = "story"


@pytest.fixture(scope="module")
def told(
    mlflow_registry: Registered, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[RunningPlatform, Client]]:
    data_dir = tmp_path_factory.mktemp("story")
    running = start_platform(
        data_dir, f"sqlite:///{data_dir / 'modeldeck.db'}", mlflow_registry.tracking_uri
    )
    client = running.client()
    try:
        created = client.deploy(NAME, "iris", version=1, replicas=1)
        client.wait(NAME, timeout=180)
        client.reference_from_registry(NAME)
        said: list[str] = []
        result = run_story(
            client,
            NAME,
            Story(minutes=0.4, rate=5, label_delay=0.5),
            access_key=created["access_key"],
            say=said.append,
        )
        assert result.ok == result.sent == 120 and result.labels_sent == 120, result.errors
        assert any("labels wrong" in line for line in said), said
        yield running, client
    finally:
        client.close()
        running.stop()


@pytest.fixture
def page(told: tuple[RunningPlatform, Client]) -> Iterator[Page]:
    running, _ = told
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium_path(), args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1280, "height": 800})
        page.set_default_timeout(60_000)
        page.goto(running.url + "/")
        page.wait_for_selector("body[data-view=login][data-state=ready]")
        page.get_by_label("API key").fill(running.api_key)
        page.get_by_role("button", name="Sign in").click()
        page.wait_for_selector("body[data-view=deployments][data-state=ready]")
        yield page
        browser.close()


def _open(page: Page, running: RunningPlatform, tab: str) -> None:
    page.goto(f"{running.url}/#/deployments/{NAME}/{tab}")
    page.wait_for_selector(f"body[data-view='deployment:{tab}'][data-state=ready]")


def test_the_story_shows_drift_in_red_and_accuracy_falling(
    page: Page, told: tuple[RunningPlatform, Client], tmp_path: Path
) -> None:
    running, client = told
    console = Console(page)

    _open(page, running, "drift")
    picker = page.locator("#drift-range")
    assert picker.locator("button[data-preset=auto]").get_attribute("aria-pressed") == "true"
    assert picker.locator("button[data-preset='5m']").count() == 1
    assert picker.locator("button[data-preset='15m']").count() == 1
    assert picker.locator("button[data-preset='14d']").count() == 1
    verdicts = {
        row.locator("td").first.inner_text(): row.locator(".badge").first
        for row in page.locator("#drift-table tbody tr").all()
    }
    shifted = verdicts[DRIFT.column]
    assert shifted.inner_text() == "drift" and "bad" in (shifted.get_attribute("class") or "")
    red = page.evaluate(
        "el => getComputedStyle(el).color", shifted.element_handle()
    )  # the page's red, not just a class name
    for other in (f for f in FEATURES if f != DRIFT.column):
        assert verdicts[other].inner_text() == "no drift", other
        assert (
            page.evaluate("el => getComputedStyle(el).color", verdicts[other].element_handle())
            != red
        )

    shots = Path(os.environ.get("MODELDECK_SCREENSHOTS") or tmp_path)  # make screenshots
    page.screenshot(path=str(shots / "story-drift.png"), full_page=True)

    _open(page, running, "model-metrics")
    assert "windows of 5s" in page.locator("#model-shown").inner_text()
    chart = page.locator("[data-chart=performance]")
    realised: list[float | None] = chart.evaluate(
        "el => el.data.find(t => t.name.endsWith('realised')).y"
    )
    values = [v for v in realised if v is not None]
    assert len(values) >= 4, realised
    # Clean windows first (the model is right on reference rows), then wrong labels.
    assert values[0] >= 0.9 and values[1] >= 0.9, values
    assert min(values[len(values) // 2 :]) < 0.8 and values[-1] < values[0] - 0.2, values
    assert chart.evaluate("el => el._fullLayout.yaxis.range") == [0, 1]
    # The platform agrees (the CLI and the report read the same window).
    window = client.window(NAME)
    assert window["preset"] == "5m" and window["step"] == 5_000
    assert console.errors == []
    page.screenshot(path=str(shots / "story-model-metrics.png"), full_page=True)
