"""The window a view shows when it is not told: fitted to the data present, on whole steps;
computed once on the server (``GET /deployments/{name}/window``) for the dashboard, the CLI and
the report alike."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from modeldeck.api.app import create_app
from modeldeck.config import Settings
from modeldeck.errors import ValidationFailed
from modeldeck.monitoring.windows import PRESETS, fit_window, preset_for, step_for
from modeldeck.records.model_metrics import ModelMetrics, PredictionRecord, now_ms
from tests.conftest import Registered
from tests.fixtures import add_deployment

NOW = 1_700_000_123_456  # not on a whole minute: alignment shows
MINUTE = 60_000
HOUR = 60 * MINUTE


def test_presets_run_from_five_minutes_to_fourteen_days() -> None:
    names = [name for name, _ in PRESETS]
    assert names[:2] == ["5m", "15m"] and names[-1] == "14d"
    assert [s for _, s in PRESETS] == sorted(s for _, s in PRESETS)


@pytest.mark.parametrize(
    ("age_ms", "preset", "step_ms"),
    [
        (90_000, "5m", 5_000),  # a deployment minutes old: windows of seconds
        (5 * MINUTE, "5m", 5_000),
        (5 * MINUTE + 1, "15m", 15_000),
        (40 * MINUTE, "1h", MINUTE),
        (5 * HOUR, "6h", 10 * MINUTE),
        (20 * HOUR, "24h", 30 * MINUTE),
        (3 * 24 * HOUR, "7d", 3 * HOUR),
        (60 * 24 * HOUR, "14d", 6 * HOUR),  # older data: the longest preset
    ],
)
def test_a_range_is_fitted_from_the_first_prediction(
    age_ms: int, preset: str, step_ms: int
) -> None:
    window = fit_window(NOW, NOW - age_ms)
    assert window.fitted and window.preset == preset and window.step == step_ms
    assert window.start <= max(NOW - age_ms, NOW - 14 * 24 * HOUR)  # the first one is inside
    assert window.start % window.step == 0  # windows start on whole steps
    assert window.end == NOW + 1
    assert 12 <= -(-(window.end - window.start) // window.step) <= 61


def test_every_preset_gets_12_to_60_windows_of_a_readable_step() -> None:
    for name, seconds in PRESETS:
        step = step_for(seconds * 1000)
        assert 12 <= seconds * 1000 // step <= 60, name
        assert preset_for(seconds * 1000) == (name, seconds * 1000)
    assert step_for(90 * 86_400_000) % 86_400_000 == 0  # beyond the table: whole days


def test_without_predictions_the_last_day() -> None:
    window = fit_window(NOW, None)
    assert window.preset == "24h" and window.step == 30 * MINUTE and window.fitted


def test_a_given_range_and_step_win_and_start_on_a_whole_step() -> None:
    """A 1 h step starts on the hour, not at now - 6 h (which falls at 22:15:23.456 here)."""
    window = fit_window(NOW, NOW - 60_000, span_ms=6 * HOUR, step_ms=HOUR)
    assert not window.fitted and window.preset == "6h" and window.step == HOUR
    assert window.start % HOUR == 0 and window.start <= NOW + 1 - 6 * HOUR
    assert window.start > NOW + 1 - 7 * HOUR
    only_span = fit_window(NOW, None, span_ms=15 * MINUTE)
    assert only_span.step == 15_000 and only_span.start % 15_000 == 0
    only_step = fit_window(NOW, NOW - 4 * MINUTE, step_ms=10_000)
    assert only_step.preset == "5m" and only_step.step == 10_000
    with pytest.raises(ValidationFailed):
        fit_window(NOW, None, step_ms=0)


@pytest.fixture
def api(mlflow_registry: Registered, tmp_path: Path) -> Iterator[TestClient]:
    settings = Settings(
        data_dir=tmp_path, mlflow_tracking_uri=mlflow_registry.tracking_uri, api_key="mdk_windows"
    )
    with TestClient(create_app(settings)) as client:
        client.headers["Authorization"] = "Bearer mdk_windows"
        yield client


def test_the_window_endpoint_fits_the_deployments_own_data(api: TestClient) -> None:
    store = api.app.state.platform.store  # type: ignore[attr-defined]
    add_deployment(store, "dep-w", "young", desired_state="stopped", status="stopped")
    url = "/api/v1/deployments/young/window"
    empty = api.get(url).json()
    assert empty["preset"] == "24h" and empty["first_prediction"] is None

    first = now_ms() - 2 * MINUTE  # a deployment two minutes old
    ModelMetrics(store).insert_predictions(
        [
            PredictionRecord(
                uuid=f"00000000-0000-4000-8000-{i:012x}",
                deployment_id="dep-w",
                start_ms=first + i * 1000,
                end_ms=first + i * 1000,
                model_version="1",
                metrics={"input": {"x": i}, "output": 0},
            )
            for i in range(3)
        ]
    )
    fitted = api.get(url).json()
    assert fitted["first_prediction"] == first
    assert fitted["preset"] == "5m" and fitted["step"] == 5_000 and fitted["fitted"] is True
    assert fitted["start"] <= first and fitted["start"] % 5_000 == 0

    given = api.get(url, params={"span": 6 * 3600, "step": 3600}).json()
    assert given["step"] == HOUR and given["start"] % HOUR == 0 and not given["fitted"]
    # The performance report over that window has windows on the hour.
    perf = api.get(
        "/api/v1/deployments/young/performance",
        params={"start": given["start"], "end": given["end"], "step": 3600},
    ).json()
    assert perf["windows"] and all(w["start"] % HOUR == 0 for w in perf["windows"])

    assert api.get("/api/v1/deployments/nobody/window").status_code == 404
    assert api.get(url, params={"step": 0}).status_code == 422
