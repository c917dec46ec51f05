"""The lab's scripts (``examples/lab``), each run as the docs say, in order, against a real
platform with its own MLflow store: what each prints and what it leaves in MLflow and modeldeck."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from tests.conftest import RunningPlatform, start_platform

# make test-slow: every script of the lab as a process of its own, a minute and more in all.
pytestmark = [pytest.mark.integration, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
LAB = ROOT / "examples" / "lab"
SCRIPTS = sorted(p.name for p in LAB.glob("[0-9][0-9]_*.py"))


@dataclass
class Lab:
    platform: RunningPlatform
    env: dict[str, str]
    dir: Path
    tracking_uri: str
    outputs: dict[str, str] = field(default_factory=dict)

    def run_through(self, script: str) -> str:
        """Run every script up to ``script`` that has not run yet; ``script``'s output."""
        for name in SCRIPTS[: SCRIPTS.index(script) + 1]:
            if name in self.outputs:
                continue
            done = subprocess.run(
                [sys.executable, str(LAB / name)],
                env=self.env,
                cwd=self.dir.parent,
                capture_output=True,
                text=True,
                timeout=240,
            )
            assert done.returncode == 0, f"{name} failed:\n{done.stdout}\n{done.stderr}"
            self.outputs[name] = done.stdout
        return self.outputs[script]

    def state(self) -> dict[str, Any]:
        return json.loads((self.dir / "state.json").read_text())  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    root = tmp_path_factory.mktemp("lab")
    tracking_uri = f"sqlite:///{root / 'mlflow.db'}"
    data_dir = root / "platform"
    running = start_platform(data_dir, f"sqlite:///{data_dir / 'modeldeck.db'}", tracking_uri)
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("MODELDECK_", "MLFLOW_", "LAB_"))
    }
    env |= {
        "MODELDECK_URL": running.url,
        "MODELDECK_API_KEY": running.api_key,
        "MLFLOW_TRACKING_URI": tracking_uri,
        "LAB_DIR": str(root / "lab"),
    }
    try:
        yield Lab(running, env, root / "lab", tracking_uri)
    finally:
        running.stop()


def test_the_scripts_are_numbered_steps_that_take_help() -> None:
    assert [s[:2] for s in SCRIPTS] == ["01", "02", "03", "04", "05", "06", "07"]
    for script in SCRIPTS:  # `--help` must print usage, never run the step
        assert ".parse_args()" in (LAB / script).read_text(), script


def _bash_blocks(markdown: str) -> list[str]:
    return re.findall(r"```bash\n(.*?)```", markdown, re.S)


@pytest.mark.parametrize("doc", ["README.md", "docs/lab.md"])
def test_the_walk_through_runs_every_script_in_order_and_real_commands(doc: str) -> None:
    from modeldeck.cli.main import main

    text = (ROOT / doc).read_text()
    if doc == "README.md":
        text = text[text.index("## Lab walk-through") :].split("\n## ")[0]
    lines = [line for block in _bash_blocks(text) for line in block.splitlines()]
    scripts = [m for line in lines for m in re.findall(r"examples/lab/(\d\d_\w+\.py)", line)]
    assert scripts == SCRIPTS
    for line in lines:
        if line.startswith(".venv/bin/modeldeck "):
            command = line.split()[1]
            assert command in main.commands, line


def test_01_tracks_several_runs_and_picks_the_most_accurate(lab: Lab) -> None:
    import mlflow

    output = lab.run_through("01_train.py")
    state = lab.state()
    client = mlflow.MlflowClient(tracking_uri=lab.tracking_uri)
    runs = client.search_runs(
        [state["experiment_id"]], filter_string=f"tags.lab_batch = '{state['batch']}'"
    )
    assert len(runs) == state["runs"] == 4
    assert {r.data.params["C"] for r in runs} == {"0.01", "0.1", "1.0", "10.0"}
    best = max(r.data.metrics["accuracy"] for r in runs)
    assert state["best_accuracy"] == best
    best_run = client.get_run(state["best_run_id"])
    assert best_run.data.metrics["accuracy"] == best
    assert "reference_data.parquet" in {a.path for a in client.list_artifacts(best_run.info.run_id)}
    assert f"best run\nrun {state['best_run_id']}" in output
    holdout = pd.read_csv(lab.dir / "holdout.csv")
    assert len(holdout) == 45 and "target" in holdout


def test_02_registers_the_best_run_and_modeldeck_sees_it(lab: Lab) -> None:
    output = lab.run_through("02_register.py")
    state = lab.state()
    assert (state["model"], state["version"]) == ("iris_classifier", "1")
    assert "registered iris_classifier version 1" in output
    with lab.platform.client() as client:
        version = client.model_version("iris_classifier", 1)
    assert version["run_id"] == state["best_run_id"]
    assert version["run_metrics"]["accuracy"] == state["best_accuracy"]


def test_03_deploys_from_the_registry_and_the_endpoint_answers(lab: Lab) -> None:
    output = lab.run_through("03_deploy.py")
    state = lab.state()
    with lab.platform.client() as client:
        deployment = client.deployment("iris")
        assert (deployment["status"], deployment["ready_replicas"]) == ("deployed", 2)
        assert (deployment["model"], deployment["version"]) == ("iris_classifier", "1")
        answer = client.predict(
            "iris", {"inputs": [[5.1, 3.5, 1.4, 0.2]]}, access_key=state["access_key"]
        )
    assert answer["prediction"] == [0]
    assert "deployed: 2/2 replicas ready" in output
    assert f"endpoint {deployment['endpoint_url']}" in output


def test_04_simulates_clean_then_drifted_traffic_with_delayed_labels(lab: Lab) -> None:
    output = lab.run_through("04_simulate.py")
    assert "clean: sent 200, ok 200, failed 0" in output
    assert "drifted: sent 200, ok 200, failed 0" in output
    windows = lab.state()["windows"]
    with lab.platform.client() as client:
        clean, drifted = (
            client.read_metrics("iris", start_ms=windows[w][0], end_ms=windows[w][1])["metrics"]
            for w in ("clean", "drifted")
        )
    assert len(clean) == len(drifted) == 200
    assert all("actual_result" in r["metrics"] for r in [*clean, *drifted])

    def mean(records: list[dict[str, Any]], feature: str) -> float:
        return sum(float(r["metrics"]["input"][feature]) for r in records) / len(records)

    assert mean(drifted, "petal_length") > mean(clean, "petal_length") + 1.5


def test_05_tracks_predictions_and_their_ground_truth(lab: Lab) -> None:
    output = lab.run_through("05_predict_and_track.py")
    state = lab.state()
    start, end = state["windows"]["holdout"]
    with lab.platform.client() as client:
        records = client.read_metrics("iris", start_ms=start, end_ms=end)["metrics"]
    holdout = pd.read_csv(lab.dir / "holdout.csv")
    assert len(records) == len(holdout) == 45
    assert sorted(r["metrics"]["actual_result"] for r in records) == sorted(holdout["target"])
    assert '"predictionUuid"' in output and '"actual_result"' in output
    # The endpoint serves the model that was trained: the same hold-out accuracy.
    assert state["holdout_accuracy"] == pytest.approx(state["best_accuracy"])


def test_06_computes_accuracy_over_time_as_the_platform_does(lab: Lab) -> None:
    output = lab.run_through("06_accuracy_over_time.py")
    assert "445 predictions since the lab started, 445 with ground truth" in output
    assert "pandas and the platform agree on every window" in output
    accuracy = {
        line.split()[0]: float(line.split()[-1])
        for line in output.splitlines()
        if line.split()[:1] in (["clean"], ["drifted"], ["holdout"])
    }
    assert accuracy["clean"] > 0.9 and accuracy["drifted"] < accuracy["clean"] - 0.2
    with lab.platform.client() as client:
        records = client.read_metrics("iris")["metrics"]
    aggregates = [r for r in records if r["predictionUuid"] == ""]
    assert aggregates and all("accuracy" in r["metrics"] for r in aggregates)


def test_07_finds_drift_in_the_drifted_stretch_only(lab: Lab) -> None:
    output = lab.run_through("07_drift.py")
    reports = json.loads((lab.dir / "drift.json").read_text())
    assert not reports["clean"]["dataset"]["drifted"]
    drifted = reports["drifted"]["dataset"]
    assert drifted["drifted"]
    assert {"petal_length", "sepal_width"} <= set(drifted["drifted_columns"])
    assert reports["drifted"]["reference"]["source"].startswith("mlflow run ")
    assert "dataset: DRIFTED" in output and "dataset: no drift" in output
