"""MLflow's deployments API against a real platform, both stores: the ``mlflow deployments`` CLI
(a subprocess, as a user types it) and ``mlflow.deployments.get_deploy_client``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from mlflow.deployments import PredictionsResponse, get_deploy_client
from mlflow.exceptions import MlflowException

from modeldeck.demo.train import FEATURES, iris_frame
from modeldeck.integrations.mlflow_deployments import parse_config, parse_model_uri, platform_url
from tests.conftest import Registered, RunningPlatform

pytestmark = pytest.mark.integration

MLFLOW = Path(sys.executable).parent / "mlflow"


def target(platform: RunningPlatform) -> str:
    return "modeldeck://" + platform.url.removeprefix("http://")


def mlflow_cli(platform: RunningPlatform, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "MODELDECK_API_KEY": platform.api_key}
    env.pop("MODELDECK_ACCESS_KEY", None)
    return subprocess.run(
        [str(MLFLOW), "deployments", *args],
        capture_output=True, text=True, env=env, timeout=240,
    )  # fmt: skip


def records(n: int) -> list[dict[str, float]]:
    X, _ = iris_frame()
    return [{f: float(X.iloc[i][f]) for f in FEATURES} for i in range(n)]


@pytest.mark.slow  # eight `mlflow` processes and a rollout: about a minute per store
def test_the_cli_creates_lists_gets_predicts_updates_and_deletes(
    platform: RunningPlatform, mlflow_registry: Registered, tmp_path: Path
) -> None:
    v1, v2 = mlflow_registry.versions[:2]
    t = target(platform)
    created = mlflow_cli(platform, "create", "-t", t, "-m", f"models:/iris/{v1}", "--name", "mlf")
    assert created.returncode == 0, created.stderr
    assert "python_function deployment mlf is created" in created.stdout

    listed = mlflow_cli(platform, "list", "-t", t)
    assert listed.returncode == 0 and "'mlf'" in listed.stdout, listed.stdout + listed.stderr

    got = mlflow_cli(platform, "get", "-t", t, "--name", "mlf")
    assert got.returncode == 0, got.stderr
    assert "status: deployed" in got.stdout and f"version: {v1}" in got.stdout

    rows = records(3)
    (tmp_path / "input.json").write_text(json.dumps(rows))
    predicted = mlflow_cli(
        platform, "predict", "-t", t, "--name", "mlf", "--input-path", str(tmp_path / "input.json")
    )
    assert predicted.returncode == 0, predicted.stderr
    answer = json.loads(predicted.stdout.strip().splitlines()[-1])
    direct = platform.client()
    key = direct.deployment("mlf")["access_key"]
    assert answer["predictions"] == direct.predict("mlf", {"inputs": rows}, key)["prediction"]
    [record] = direct.read_metrics_page("mlf", uuids=[answer["uuid"]])["metrics"]
    assert record["metrics"]["input"] == rows  # recorded like any prediction

    updated = mlflow_cli(
        platform, "update", "-t", t, "--name", "mlf", "-m", f"models:/iris/{v2}",
        "-C", "replicas=2",
    )  # fmt: skip
    assert updated.returncode == 0, updated.stderr
    assert "Deployment mlf is updated (with flavor python_function)" in updated.stdout
    now = direct.deployment("mlf")
    assert now["version"] == v2 and now["replicas"] == 2

    deleted = mlflow_cli(platform, "delete", "-t", t, "--name", "mlf")
    assert deleted.returncode == 0 and "Deployment mlf is deleted" in deleted.stdout
    assert "mlf" not in [d["name"] for d in direct.deployments()]
    gone = mlflow_cli(platform, "get", "-t", t, "--name", "mlf")
    assert gone.returncode != 0 and "not found" in gone.stderr


def test_get_deploy_client(platform: RunningPlatform, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MODELDECK_API_KEY", platform.api_key)
    monkeypatch.delenv("MODELDECK_ACCESS_KEY", raising=False)
    client = get_deploy_client(target(platform))
    created = client.create_deployment(
        "mlf-py", "models:/iris/latest", config={"replicas": "1", "track_metrics": "true"}
    )
    try:
        assert created["name"] == "mlf-py" and created["status"] == "deployed"
        assert created["access_key"]
        assert client.get_deployment("mlf-py")["flavor"] == "python_function"
        assert "mlf-py" in [d["name"] for d in client.list_deployments()]

        frame = pd.DataFrame(records(4))
        answer = client.predict("mlf-py", frame)
        assert isinstance(answer, PredictionsResponse)
        labels = answer.get_predictions(predictions_format="ndarray").tolist()
        assert labels == client.predict("mlf-py", frame.to_numpy())["predictions"]
        assert answer["uuid"] != client.predict("mlf-py", frame)["uuid"]

        with pytest.raises(MlflowException, match="already exists") as exists:
            client.create_deployment("mlf-py", "models:/iris/1")
        assert exists.value.error_code == "RESOURCE_ALREADY_EXISTS"
    finally:
        client.delete_deployment("mlf-py")
    client.delete_deployment("mlf-py")  # deleting what is gone is fine
    with pytest.raises(MlflowException) as missing:
        client.get_deployment("mlf-py")
    assert missing.value.error_code == "RESOURCE_DOES_NOT_EXIST"

    monkeypatch.setenv("MODELDECK_API_KEY", "mdk_wrong")
    with pytest.raises(MlflowException) as refused:
        get_deploy_client(target(platform)).list_deployments()
    assert refused.value.error_code == "UNAUTHENTICATED"


def test_what_modeldeck_cannot_deploy_is_refused_before_any_request() -> None:
    client = get_deploy_client("modeldeck://127.0.0.1:9")  # nothing listens there
    with pytest.raises(MlflowException, match="registered models") as runs:
        client.create_deployment("x", "runs:/abc/model")
    assert runs.value.error_code == "INVALID_PARAMETER_VALUE"
    with pytest.raises(MlflowException, match="unknown config 'gpus'"):
        client.create_deployment("x", "models:/iris/1", config={"gpus": "1"})
    with pytest.raises(MlflowException, match="flavor 'sklearn'"):
        client.create_deployment("x", "models:/iris/1", flavor="sklearn")


def test_uris_and_config() -> None:
    assert platform_url("modeldeck://h:8000") == "http://h:8000"
    assert platform_url("modeldeck+https://h:443/md/") == "https://h:443/md"
    assert platform_url("modeldeck") is None  # MODELDECK_URL
    with pytest.raises(MlflowException):
        platform_url("modeldeck+ftp://h")
    assert parse_model_uri("models:/iris/3") == ("iris", "3", None)
    assert parse_model_uri("models:/iris/latest") == ("iris", "latest", None)
    assert parse_model_uri("models:/iris@champion") == ("iris", None, "champion")
    for bad in ("models:/iris", "models:/a/b/c", "s3://bucket/model"):
        with pytest.raises(MlflowException):
            parse_model_uri(bad)
    assert parse_config({"replicas": "2", "auth_enabled": "false"}, {
        "replicas": (int, ""), "auth_enabled": (bool, "")
    }, "create") == {"replicas": 2, "auth_enabled": False}  # fmt: skip
    with pytest.raises(MlflowException, match="must be int"):
        parse_config({"replicas": "two"}, {"replicas": (int, "")}, "create")


def test_target_help_from_the_cli() -> None:
    shown = subprocess.run(
        [str(MLFLOW), "deployments", "help", "-t", "modeldeck"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert shown.returncode == 0, shown.stderr
    assert "modeldeck://HOST:PORT" in shown.stdout and "MODELDECK_API_KEY" in shown.stdout
