"""The dashboard's downloads, in process: a range's predictions as CSV and the HTML report."""

from __future__ import annotations

import csv
import io
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from modeldeck.api.app import create_app
from modeldeck.client import Client
from modeldeck.config import Settings
from tests.api.test_error_shape import assert_error_shape
from tests.conftest import Registered

API_KEY = "mdk_downloads_test"
AUTH = {"Authorization": f"Bearer {API_KEY}"}
NAME = "batch"
FEATURES = {"sepal_length": 5.1, "sepal_width": 3.5, "petal_length": 1.4, "petal_width": 0.2}


@pytest.fixture(scope="module")
def api(
    mlflow_registry: Registered, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[TestClient, list[str]]]:
    data_dir: Path = tmp_path_factory.mktemp("downloads")
    settings = Settings(
        data_dir=data_dir, mlflow_tracking_uri=mlflow_registry.tracking_uri, api_key=API_KEY
    )
    with TestClient(create_app(settings), raise_server_exceptions=False) as http:
        client = Client("http://testserver", API_KEY, http=http)
        client.deploy(NAME, "iris", version=1, kind="batch")
        now = int(time.time() * 1000)
        uuids = client.record_predictions(
            NAME,
            [
                {
                    "metrics": {"input": {**FEATURES, "note": note}, "output": i % 3},
                    "start_timestamp_ms": now - 60_000 + i * 1000 - 5,
                    "end_timestamp_ms": now - 60_000 + i * 1000,
                    "model_version": "1",
                }
                for i, note in enumerate(["plain", "=HYPERLINK(1)", "-2", 'x, "quoted"'])
            ],
        )
        client.track_delayed_metrics({"actual_result": 0}, uuids[0], deployment=NAME)
        yield http, uuids


def _rows(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


def test_the_csv_has_a_row_per_prediction_and_a_column_per_tracked_field(
    api: tuple[TestClient, list[str]],
) -> None:
    http, uuids = api
    r = http.get(f"/api/v1/deployments/{NAME}/metrics/model/csv", headers=AUTH)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "text/csv; charset=utf-8"
    assert r.headers["content-disposition"] == f'attachment; filename="{NAME}-predictions.csv"'
    assert r.headers["x-modeldeck-rows"] == "4"
    assert r.headers["x-modeldeck-truncated"] == "false"
    rows = _rows(r.text)
    assert [row["prediction_uuid"] for row in rows] == uuids  # oldest first
    assert list(rows[0])[:4] == ["prediction_uuid", "start_ms", "end_ms", "model_version"]
    assert float(rows[0]["input.petal_length"]) == FEATURES["petal_length"]
    assert [row["output"] for row in rows] == ["0", "1", "2", "0"]
    # Ground truth that arrived later is in its prediction's row; the others have none.
    assert [row["actual_result"] for row in rows] == ["0", "", "", ""]
    # Text a spreadsheet would run as a formula is quoted; commas and quotes survive.
    assert [row["input.note"] for row in rows] == ["plain", "'=HYPERLINK(1)", "'-2", 'x, "quoted"']


def test_the_csv_is_cut_at_its_limit_and_says_so(api: tuple[TestClient, list[str]]) -> None:
    http, uuids = api
    r = http.get(f"/api/v1/deployments/{NAME}/metrics/model/csv", params={"limit": 3}, headers=AUTH)
    assert r.status_code == 200, r.text
    assert r.headers["x-modeldeck-truncated"] == "true"
    assert [row["prediction_uuid"] for row in _rows(r.text)] == uuids[:3]
    # A range with nothing in it: the header alone.
    r = http.get(
        f"/api/v1/deployments/{NAME}/metrics/model/csv", params={"end": 1000}, headers=AUTH
    )
    assert r.text == "prediction_uuid,start_ms,end_ms,model_version\n"
    assert r.headers["x-modeldeck-rows"] == "0"


def test_the_report_is_one_html_page_of_drift_and_performance(
    api: tuple[TestClient, list[str]],
) -> None:
    http, _ = api
    r = http.get(f"/api/v1/deployments/{NAME}/report", headers=AUTH)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "text/html; charset=utf-8"
    assert r.headers["content-disposition"] == f'attachment; filename="{NAME}-report.html"'
    assert r.text.startswith("<!DOCTYPE html>")
    assert f"modeldeck report: {NAME}" in r.text
    # The reference data logged with the model's run, fetched on first use, as the CLI gets it.
    assert "<h2>Data drift</h2>" in r.text and "No drift report" not in r.text
    assert "petal_length" in r.text
    assert "<h2>Performance</h2>" in r.text


def test_unknown_deployments_and_bad_ranges_answer_the_one_error_shape(
    api: tuple[TestClient, list[str]],
) -> None:
    http, _ = api
    for path in ("metrics/model/csv", "report"):
        r = http.get(f"/api/v1/deployments/nope/{path}", headers=AUTH)
        assert_error_shape(r, 404, "not_found")
        r = http.get(f"/api/v1/deployments/{NAME}/{path}", params={"end": -1}, headers=AUTH)
        assert_error_shape(r, 422)
        r = http.get(f"/api/v1/deployments/{NAME}/{path}")
        assert_error_shape(r, 401)
