"""Reference uploads through the CLI, and alert rules evaluated by the platform's own schedule
(a real platform on SQLite with a one-second alert interval)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pandas as pd
import pytest
from click.testing import CliRunner

from modeldeck.cli.main import main
from modeldeck.client import ApiError
from tests.conftest import Registered, RunningPlatform, start_platform

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def fast_alerts(
    mlflow_registry: Registered, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningPlatform]:
    data_dir = tmp_path_factory.mktemp("alerts-platform")
    running = start_platform(
        data_dir,
        f"sqlite:///{data_dir / 'modeldeck.db'}",
        mlflow_registry.tracking_uri,
        MODELDECK_ALERT_INTERVAL_SECONDS="1",
        MODELDECK_WEBHOOK_ATTEMPTS="2",
    )
    yield running
    running.stop()


def _cli(platform: RunningPlatform, *args: str) -> tuple[int, str]:
    env = {"MODELDECK_URL": platform.url, "MODELDECK_API_KEY": platform.api_key}
    result = CliRunner().invoke(main, list(args), env=env)
    return result.exit_code, result.output


def test_reference_upload_and_bad_files(fast_alerts: RunningPlatform, tmp_path: Path) -> None:
    client = fast_alerts.client()
    client.deploy("uploads", "iris", version=1, replicas=1)
    client.wait("uploads", timeout=120)
    try:
        frame = pd.DataFrame(
            {
                "sepal_length": [5.1, 4.9, 6.2, 5.9] * 50,
                "sepal_width": [3.5, 3.0, 2.9, 3.0] * 50,
                "petal_length": [1.4, 1.4, 4.3, 5.1] * 50,
                "petal_width": [0.2, 0.2, 1.3, 1.8] * 50,
                "species": ["setosa", "setosa", "versicolor", "virginica"] * 50,
            }
        )
        csv = tmp_path / "train.csv"
        frame.to_csv(csv, index=False)
        code, out = _cli(
            fast_alerts, "reference", "set", "uploads", str(csv), "--target-column", "species",
            "--json",
        )  # fmt: skip
        assert code == 0, out
        summary = json.loads(out)
        assert summary["rows"] == 200 and summary["source"] == "upload train.csv"
        assert summary["target_column"] == "species"
        assert {c["name"]: c["kind"] for c in summary["columns"]}["species"] == "categorical"

        # Bad files get one clear error and leave the stored reference as it was.
        bad = tmp_path / "broken.parquet"
        bad.write_bytes(b"not parquet at all")
        code, out = _cli(fast_alerts, "reference", "set", "uploads", str(bad))
        assert code == 1 and "could not read 'broken.parquet' as parquet" in out
        text = tmp_path / "notes.txt"
        text.write_text("a,b\n1,2\n")
        code, out = _cli(fast_alerts, "reference", "set", "uploads", str(text))
        assert code == 1 and "must be a .parquet or .csv file" in out
        code, out = _cli(
            fast_alerts, "reference", "set", "uploads", str(csv), "--target-column", "nope"
        )
        assert code == 1 and "target_column 'nope' is not a column" in out
        empty = tmp_path / "empty.csv"
        empty.write_text("a,b\n")
        code, out = _cli(fast_alerts, "reference", "set", "uploads", str(empty))
        assert code == 1 and "no rows" in out
        assert client.reference("uploads")["source"] == "upload train.csv"

        with pytest.raises(ApiError) as info:
            client.set_monitoring("uploads", overrides={"sepal_length": {"method": "magic"}})
        assert (
            info.value.status_code == 422 and "unknown drift method 'magic'" in info.value.message
        )
        with pytest.raises(ApiError) as info:
            client.set_monitoring("uploads", label_key="label", surprise=1)
        assert info.value.status_code == 422
        assert client.monitoring("uploads")["label_key"] == "actual_result"
        client.set_monitoring("uploads", label_key="species_true")
        assert client.monitoring("uploads")["label_key"] == "species_true"
    finally:
        client.delete("uploads")


def test_rules_fire_and_resolve_on_the_schedule(fast_alerts: RunningPlatform) -> None:
    client = fast_alerts.client()
    created = client.deploy("busy", "iris", version=1, replicas=1)
    client.wait("busy", timeout=120)
    try:
        with pytest.raises(ApiError) as info:
            client.create_alert_rule(
                name="bad", deployment="busy", metric="technical.nonsense", comparison="gt",
                threshold=1,
            )  # fmt: skip
        assert info.value.status_code == 422 and "technical.nonsense" in info.value.message
        client.create_alert_rule(
            name="traffic",
            deployment="busy",
            metric="technical.requests",
            comparison="ge",
            threshold=5,
            window_seconds=60,
            cooldown_seconds=0,
            webhook_url="http://127.0.0.1:9/nothing-listens-here",
        )
        with pytest.raises(ApiError) as info:
            client.create_alert_rule(
                name="traffic", deployment="busy", metric="technical.requests",
                comparison="ge", threshold=5,
            )  # fmt: skip
        assert info.value.status_code == 409
        headers = {"Authorization": f"Bearer {created['access_key']}"}
        for _ in range(6):
            r = httpx.post(
                f"{fast_alerts.url}/deployments/busy/predict",
                json={"inputs": [[5.1, 3.5, 1.4, 0.2]]},
                headers=headers,
            )
            assert r.status_code == 200
        deadline = time.monotonic() + 30
        events: list[dict[str, object]] = []
        while time.monotonic() < deadline:
            events = client.alert_events("busy")
            if events and (events[0].get("delivery") or {}).get("status") == "failed":
                break
            time.sleep(0.5)
        assert [e["kind"] for e in events] == ["firing"], events
        delivery = events[0]["delivery"]
        assert isinstance(delivery, dict)
        # Nothing listens on the webhook's port: recorded as failed after the attempts.
        assert delivery["status"] == "failed" and delivery["attempts"] == 2
        assert "connect" in str(delivery["error"]).lower()
        rules = client.alert_rules("busy")
        assert (
            rules[0]["state"]["firing"] is True and rules[0]["state"]["last_value"] >= 5
        )  # fired at the threshold

        # Raise the bar: the next scheduled evaluation resolves it.
        rule = {k: rules[0][k] for k in ("name", "deployment", "metric", "comparison")}
        client._request(
            "PUT",
            "/api/v1/alerts/rules/busy/traffic",
            json={**rule, "threshold": 1000, "window_seconds": 60, "cooldown_seconds": 0},
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            events = client.alert_events("busy")
            if events[0]["kind"] == "resolved":
                break
            time.sleep(0.5)
        assert [e["kind"] for e in events] == ["resolved", "firing"]
        code, out = _cli(fast_alerts, "alerts", "events", "--deployment", "busy")
        assert code == 0 and "resolved" in out and "firing" in out
        client.delete_alert_rule("busy", "traffic")
        assert client.alert_rules("busy") == []
        assert client.alert_events("busy") == []  # events go with their rule
    finally:
        client.delete("busy")
