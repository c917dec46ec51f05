"""The CI/CD examples (``examples/ci``): both pipelines run the same stage commands, and those
commands, taken from the GitLab file and run as a CI runner would (in order, stopping at the
first failure, cleanup always), against a real platform: an impossible accuracy threshold or
failed requests stop the pipeline at the gate, a model that passes it is promoted."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import yaml

from tests.conftest import RunningPlatform, start_platform

ROOT = Path(__file__).resolve().parents[2]
CI = ROOT / "examples" / "ci"
pytestmark = [pytest.mark.integration, pytest.mark.slow]  # make test-slow

STAGES = ["train", "register", "deploy", "smoke", "gate", "promote", "cleanup"]


def gitlab_commands() -> list[tuple[str, str]]:
    """(stage, command) of every job, in the order GitLab runs them."""
    config = yaml.safe_load((CI / ".gitlab-ci.yml").read_text())
    order = [".pre", *config["stages"], ".post"]
    jobs = [job for job in config.values() if isinstance(job, dict) and "script" in job]
    jobs.sort(key=lambda job: order.index(job.get("stage", "test")))
    return [(job["stage"], command) for job in jobs for command in job["script"]]


def github_commands() -> list[str]:
    config = yaml.safe_load((CI / "github-actions.yml").read_text())
    assert set(config[True]) == {"push", "pull_request", "workflow_dispatch"}  # YAML 1.1 'on'
    steps = config["jobs"]["model"]["steps"]
    return [s["run"] for s in steps if "pipeline.py" in s.get("run", "")]


def test_both_pipelines_run_the_same_stage_commands() -> None:
    gitlab = gitlab_commands()
    assert [stage for stage, _ in gitlab] == [*STAGES[:-1], ".post"]
    expected = [f"python examples/ci/pipeline.py {stage}" for stage in STAGES]
    assert [command for _, command in gitlab] == expected
    assert github_commands() == expected
    sys.path.insert(0, str(CI))
    try:
        import pipeline

        assert list(pipeline.STAGES) == STAGES
    finally:
        sys.path.remove(str(CI))


# -- against a real platform ------------------------------------------------------------------


@dataclass
class Ci:
    platform: RunningPlatform
    env: dict[str, str]
    tracking_uri: str

    def run(
        self, stages: list[str], state_dir: Path, **variables: str
    ) -> dict[str, subprocess.CompletedProcess[str]]:
        """Run the GitLab jobs of ``stages`` in order, as a runner does: stop at the first
        failure, but run the ``when: always`` cleanup anyway."""
        env = {**self.env, "PIPELINE_STATE_DIR": str(state_dir), **variables}
        ran: dict[str, subprocess.CompletedProcess[str]] = {}
        failed = False
        for stage, command in gitlab_commands():
            name = command.split()[-1]
            if name not in stages or (failed and stage != ".post"):
                continue
            ran[name] = done = subprocess.run(
                ["bash", "-c", command],
                env=env,
                cwd=ROOT,
                capture_output=True,
                text=True,
                timeout=240,
            )
            failed = failed or done.returncode != 0
        return ran

    def champion(self) -> str | None:
        import mlflow

        # registry_uri too: another test may have set a process-wide one.
        registry = mlflow.MlflowClient(
            tracking_uri=self.tracking_uri, registry_uri=self.tracking_uri
        )
        version = registry.get_registered_model("iris_classifier").aliases.get("champion")
        return None if version is None else str(version)


@pytest.fixture(scope="module")
def ci(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Ci]:
    root = tmp_path_factory.mktemp("ci")
    tracking_uri = f"sqlite:///{root / 'mlflow.db'}"
    data_dir = root / "platform"
    running = start_platform(data_dir, f"sqlite:///{data_dir / 'modeldeck.db'}", tracking_uri)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MODELDECK_", "MLFLOW_"))}
    env |= {
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",
        "MODELDECK_URL": running.url,
        "MODELDECK_API_KEY": running.api_key,
        "MLFLOW_TRACKING_URI": tracking_uri,
        "MLFLOW_EXPERIMENT": "iris-ci",
    }
    try:
        yield Ci(running, env, tracking_uri)
    finally:
        running.stop()


def outcome(ran: dict[str, subprocess.CompletedProcess[str]]) -> dict[str, int]:
    return {stage: done.returncode for stage, done in ran.items()}


def logs(ran: dict[str, subprocess.CompletedProcess[str]]) -> str:
    return "\n".join(f"## {s}\n{d.stdout}\n{d.stderr}" for s, d in ran.items())


@pytest.mark.integration
def test_only_a_model_that_passes_the_gate_is_promoted(ci: Ci, tmp_path: Path) -> None:
    state = tmp_path / "state"
    # An accuracy threshold no model can meet: the pipeline stops at the gate, before promote.
    ran = ci.run(STAGES[:-1], state, GATE_MIN_ACCURACY="1.01")
    stopped = {"train": 0, "register": 0, "deploy": 0, "smoke": 0, "gate": 1}
    assert outcome(ran) == stopped, logs(ran)
    assert "smoke test passed: 3 predictions answered and recorded" in ran["smoke"].stdout
    gate = ran["gate"].stdout
    assert re.search(r"hold-out accuracy +0\.\d{4}  >= 1\.01 +FAIL  45 of 45 hold-out rows", gate)
    assert "FAILED: the gate did not pass: hold-out accuracy" in ran["gate"].stderr
    assert ci.champion() is None
    registered = ran["register"].stdout.split("version ")[1].split()[0]

    # The gate job retried with the pipeline's own thresholds passes; promote moves the alias.
    ran = ci.run(["gate", "promote"], state)
    assert outcome(ran) == {"gate": 0, "promote": 0}, logs(ran)
    assert "gate passed" in ran["gate"].stdout
    assert ci.champion() == registered
    assert f"iris_classifier@champion: unset -> {registered}" in ran["promote"].stdout

    # Requests the candidate refuses (422) count as failures: the same gate now fails.
    with ci.platform.client() as client:
        name = next(d["name"] for d in client.deployments() if "candidate" in d["name"])
        key = client.rotate_access_key(name)
    for _ in range(5):
        r = httpx.post(
            f"{ci.platform.url}/deployments/{name}/predict",
            json={"inputs": [["not", "a", "number", "!"]]},
            headers={"Authorization": f"Bearer {key}"},
        )
        assert r.status_code == 422, r.text
    ran = ci.run(["gate", "promote", "cleanup"], state)
    assert outcome(ran) == {"gate": 1, "cleanup": 0}, logs(ran)
    assert re.search(
        r"live error rate +0\.\d{4}  <= 0\.01 +FAIL  5 of \d+ requests failed", ran["gate"].stdout
    )
    assert "FAILED: the gate did not pass: live error rate" in ran["gate"].stderr
    assert f"deleted {name}" in ran["cleanup"].stdout
    with ci.platform.client() as client:
        assert not [d for d in client.deployments() if "candidate" in d["name"]]
