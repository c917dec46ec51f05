"""Drift, performance and ``modeldeck report`` over windows past a deployment's summary threshold
(``max_rows``), with the default methods, through a real server on each store: the path a user
takes (HTTP, the client, the CLI), where the reports are assembled from stored summaries.

The threshold is lowered to 1,000 predictions so that a few thousand make a binned window; the
3,000-row reference makes the default numeric method Wasserstein (references over 1,000 rows),
whose binned form once answered NumPy scalars that the API could not serialise (a 500)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from sqlalchemy import select

from modeldeck.cli.main import main
from modeldeck.store import Store
from modeldeck.store.schema import AnalysisSummaryRow
from tests.conftest import RunningPlatform

pytestmark = pytest.mark.integration

CLASSES = ["a", "b", "c"]
MINUTE = 60_000
PREDICTIONS = 2400


def _reference(rng: np.random.Generator) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "x": rng.normal(0.0, 1.0, 3000),
            "y": rng.lognormal(0.0, 0.5, 3000),
            "colour": rng.choice(["red", "green", "blue"], 3000),
            "target": rng.choice(CLASSES, 3000),
        }
    )


def _predictions(rng: np.random.Generator, now: int) -> list[dict[str, Any]]:
    """Three hours of predictions ending ten minutes ago; ``x`` moved by one std."""
    out = []
    for i in range(PREDICTIONS):
        probs = np.round(rng.dirichlet([2, 2, 2]), 3)
        at = now - 10 * MINUTE - i * (3 * 60 * MINUTE // PREDICTIONS)
        out.append(
            {
                "end_timestamp_ms": at,
                "start_timestamp_ms": at,
                "metrics": {
                    "input": {
                        "x": float(rng.normal(1.0, 1.0)),
                        "y": float(rng.lognormal(0.0, 0.5)),
                        "colour": str(rng.choice(["red", "green", "blue"])),
                    },
                    "output": CLASSES[int(probs.argmax())],
                    "probabilities": dict(zip(CLASSES, probs.tolist(), strict=True)),
                },
            }
        )
    return out


def _summaries(platform: RunningPlatform) -> set[tuple[str, int, str]]:
    """The stored summaries: (kind, bucket, version)."""
    store = Store(platform.env["MODELDECK_STORE_URL"])
    try:
        with store.read() as session:
            return {
                (kind, bucket, version)
                for kind, bucket, version in session.execute(
                    select(
                        AnalysisSummaryRow.kind,
                        AnalysisSummaryRow.bucket_ms,
                        AnalysisSummaryRow.model_version,
                    )
                )
            }
    finally:
        store.close()


def _cli(platform: RunningPlatform, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, ["--url", platform.url, "--api-key", platform.api_key, *args])
    return result.exit_code, result.output


def test_reports_past_the_summary_threshold_answer_through_http_and_the_cli(
    platform: RunningPlatform, tmp_path: Path
) -> None:
    client = platform.client()
    client.deploy("wide", kind="batch")
    try:
        rng = np.random.default_rng(29)
        csv = tmp_path / "reference.csv"
        _reference(rng).to_csv(csv, index=False)
        client.set_reference("wide", csv, target_column="target")
        client.set_monitoring("wide", max_rows=1000)  # defaults otherwise: wasserstein, JS
        now = int(time.time() * 1000)
        predictions = _predictions(rng, now)
        uuids: list[str] = []
        for lo in range(0, PREDICTIONS, 1000):
            uuids += client.record_predictions("wide", predictions[lo : lo + 1000])
        labels = [(u, {"actual_result": CLASSES[int(rng.integers(3))]}) for u in uuids[::2]]
        client.track_delayed_metrics_batch("wide", labels)
        start = (now - 4 * 60 * MINUTE) // (5 * MINUTE) * (5 * MINUTE)
        window = {"start": start, "end": now}

        with httpx.Client(
            base_url=platform.url,
            headers={"Authorization": f"Bearer {platform.api_key}"},
            timeout=120,  # the first report builds the summaries, on a machine shared with others
        ) as http:
            answer = http.get("/api/v1/deployments/wide/drift", params=window)
            assert answer.status_code == 200, answer.text
            drift = answer.json()
            assert drift["mode"] == "binned" and drift["predictions"] == PREDICTIONS
            columns = {c["column"]: c for c in drift["columns"]}
            assert columns["x"]["method"] == columns["y"]["method"] == "wasserstein"
            assert columns["colour"]["method"] == "jensenshannon"
            assert columns["x"]["drifted"] is True and columns["y"]["drifted"] is False
            assert isinstance(columns["x"]["statistic"], float)
            assert drift["prediction"]["method"] == "jensenshannon"

            answer = http.get(
                "/api/v1/deployments/wide/performance", params={**window, "step": 3600}
            )
            assert answer.status_code == 200, answer.text
            windows = answer.json()["windows"]
            assert sum(w["predictions"] for w in windows) == PREDICTIONS
            assert sum(w["labelled"] for w in windows) == len(labels)
            assert all(0 <= w["realised"]["accuracy"] <= 1 for w in windows if w["labelled"])
        # Both reports came from stored summaries.
        stored = _summaries(platform)
        kinds = {kind for kind, *_ in stored}
        assert "performance" in kinds and any(k.startswith("drift/") for k in kinds)

        # A threshold applies when the report is read: changing it keeps every summary.
        code, out = _cli(
            platform,
            "monitoring",
            "set",
            "wide",
            '{"max_rows": 1000, "overrides": {"x": {"threshold": 5}}}',
        )
        assert code == 0, out
        assert _summaries(platform) >= stored  # none dropped (the background may add some)
        relaxed = client.drift("wide", start_ms=start, end_ms=now)
        x = next(c for c in relaxed["columns"] if c["column"] == "x")
        assert relaxed["mode"] == "binned" and x["threshold"] == 5 and x["drifted"] is False

        code, out = _cli(platform, "drift", "wide", "--since", "6h", "--json")
        assert code == 0, out
        assert json.loads(out)["mode"] == "binned"
        report = tmp_path / "report.html"
        code, out = _cli(platform, "report", "wide", "--since", "6h", "-o", str(report))
        assert code == 0, out
        html = report.read_text()
        assert "wasserstein" in html and "binned" in html
    finally:
        client.delete("wide")
