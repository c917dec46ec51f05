"""Builds with real uv, real PyPI packages and real replicas, on both stores.

Two models pinned to different scikit-learn versions (1.5.2 and the one installed here) serve
side by side, each from its own environment; a second deployment and a restart reuse the
cached environment; an unresolvable pin ends ``build failed`` with the resolver's words while
the previous version keeps serving.

uv keeps its downloads in ``UV_CACHE_DIR`` (``~/.cache/modeldeck-test-uv`` unless set), so
only the first run on a fresh machine downloads the packages.

The module runs on one store, to stay within a few minutes on two cores: PostgreSQL when
``MODELDECK_TEST_POSTGRES_URL`` is set (always in CI) -- the demanding case, where the replicas
write their prediction records through a psycopg installed into each environment -- and SQLite
otherwise.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from modeldeck.client import ApiError, Client
from tests.conftest import (
    POSTGRES_ENV,
    RunningPlatform,
    platform_on,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow]  # make test-slow

OLD_SKLEARN = "1.5.2"
SETOSA = [5.1, 3.5, 1.4, 0.2]
VIRGINICA = [6.7, 3.0, 5.2, 2.3]
UNRESOLVABLE = "scikit-learn==0.0.999"


@dataclass
class Models:
    tracking_uri: str
    new_sklearn: str


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> Models:
    """``sk_old`` v1 (scikit-learn 1.5.2), ``sk_new`` v1 (this one) and v2 (unresolvable)."""
    import mlflow
    import mlflow.sklearn

    root = tmp_path_factory.mktemp("mlflow-builds")
    tracking_uri = f"sqlite:///{root / 'mlflow.db'}"
    # MLflow's set_*_uri also set MLFLOW_TRACKING_URI / MLFLOW_REGISTRY_URI in os.environ, which
    # every platform and CLI run started later inherits: put all of it back when done.
    saved_env = {k: os.environ.get(k) for k in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")}
    saved_uris = (mlflow.get_tracking_uri(), mlflow.get_registry_uri())
    mlflow.set_tracking_uri(tracking_uri)
    mlflow.set_registry_uri(tracking_uri)
    try:
        return _log_models(tracking_uri)
    finally:
        mlflow.set_tracking_uri(saved_uris[0])
        mlflow.set_registry_uri(saved_uris[1])
        for key, value in saved_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _log_models(tracking_uri: str) -> Models:
    import mlflow
    import mlflow.sklearn
    import sklearn
    from mlflow.models import infer_signature
    from sklearn.linear_model import LogisticRegression
    from sklearn.naive_bayes import GaussianNB

    from modeldeck.demo.train import iris_frame

    # An artifact location of its own: the default one is ./mlruns in the working directory.
    artifacts = Path(tracking_uri.removeprefix("sqlite:///")).parent / "artifacts"
    mlflow.set_experiment(
        experiment_id=mlflow.create_experiment("builds", artifact_location=artifacts.as_uri())
    )
    X, y = iris_frame()
    pinned_mlflow = f"mlflow=={mlflow.__version__}"

    def log(model: Any, name: str, requirements: list[str]) -> None:
        with mlflow.start_run():
            mlflow.sklearn.log_model(
                model.fit(X, y),
                name="model",
                signature=infer_signature(X, model.predict(X)),
                pip_requirements=requirements,
                registered_model_name=name,
            )

    # GaussianNB keeps only plain arrays, so one fitted here loads in 1.5.2 as it is (a
    # LogisticRegression fitted by a recent release lacks attributes 1.5.2 reads).
    log(GaussianNB(), "sk_old", [pinned_mlflow, f"scikit-learn=={OLD_SKLEARN}"])
    current = [pinned_mlflow, f"scikit-learn=={sklearn.__version__}"]
    log(LogisticRegression(max_iter=500), "sk_new", current)
    log(LogisticRegression(max_iter=500), "sk_new", [pinned_mlflow, UNRESOLVABLE])
    return Models(tracking_uri, sklearn.__version__)


@pytest.fixture(scope="module", params=["postgres" if os.environ.get(POSTGRES_ENV) else "sqlite"])
def platform(
    request: pytest.FixtureRequest, models: Models, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningPlatform]:
    data_dir = tmp_path_factory.mktemp(f"builds-{request.param}")
    uv_cache = os.environ.get("UV_CACHE_DIR") or str(Path.home() / ".cache" / "modeldeck-test-uv")
    with platform_on(
        request, request.param, data_dir, models.tracking_uri, UV_CACHE_DIR=uv_cache
    ) as running:
        yield running


def predict(platform: RunningPlatform, name: str, key: str, rows: list[list[float]]) -> Any:
    r = httpx.post(
        f"{platform.url}/deployments/{name}/predict",
        json={"inputs": rows},
        headers={"Authorization": f"Bearer {key}"},
        timeout=30,
    )
    assert r.status_code == 200, r.text
    return r.json()


def replica_health(deployment: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        httpx.get(f"http://127.0.0.1:{r['port']}/health", timeout=5).json()
        for r in deployment["replica_states"]
    ]


@pytest.fixture(scope="module")
def keys(platform: RunningPlatform) -> dict[str, str]:
    """``sk-old`` and ``sk-new`` deployed at the same time, each with env_manager uv."""
    client = platform.client()
    created = {
        "sk-old": client.deploy("sk-old", "sk_old", env_manager="uv"),
        "sk-new": client.deploy("sk-new", "sk_new", version=1, env_manager="uv"),
    }
    for answer in created.values():
        assert answer["env_manager"] == "uv"
        assert answer["status"] == "building", answer
    for name in created:
        try:
            client.wait(name, timeout=420)
        except ApiError:
            builds = client.builds(name)
            log = client.build(name, builds[0]["id"])["log"] if builds else ""
            pytest.fail(f"{name} did not deploy: {client.deployment(name)}\n{log[-3000:]}")
    return {name: str(answer["access_key"]) for name, answer in created.items()}


def test_two_scikit_learn_versions_serve_side_by_side(
    platform: RunningPlatform, models: Models, keys: dict[str, str]
) -> None:
    client = platform.client()
    expected = {"sk-old": OLD_SKLEARN, "sk-new": models.new_sklearn}
    for name, version in expected.items():
        (build,) = client.builds(name)
        assert build["status"] == "built" and build["reason"] == "deploy"
        assert not build["cache_hit"]
        assert build["model_packages"]["scikit-learn"] == version
        assert f"scikit-learn=={version}" in build["packages"]
        assert build["duration_seconds"] > 0 and build["cache_key"]
        detail = client.build(name, build["id"])
        assert "uv pip install" in detail["log"]
        for health in replica_health(client.deployment(name)):
            env = health["environment"]
            assert env["packages"]["scikit-learn"] == version
            assert env["executable"].startswith(build["environment_path"])
    assert client.builds("sk-old")[0]["cache_key"] != client.builds("sk-new")[0]["cache_key"]

    answers: dict[str, list[Any]] = {"sk-old": [], "sk-new": []}

    def traffic(name: str) -> None:
        for _ in range(10):
            answers[name].append(predict(platform, name, keys[name], [SETOSA, VIRGINICA]))

    threads = [threading.Thread(target=traffic, args=(n,)) for n in answers for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for name, got in answers.items():
        assert len(got) == 20
        assert all(a["prediction"] == [0, 2] for a in got), (name, got[:2])

    # Model metrics are written from inside the isolated environment, as from any replica.
    records = {r["predictionUuid"]: r for r in client.read_metrics("sk-old")["metrics"]}
    for answer in answers["sk-old"]:
        assert records[answer["uuid"]]["metrics"]["output"] == [0, 2]


def test_second_deployment_and_restart_reuse_the_cached_environment(
    platform: RunningPlatform, keys: dict[str, str]
) -> None:
    client = platform.client()
    first = client.builds("sk-old")[-1]
    created = client.deploy("sk-old-2", "sk_old", env_manager="uv")
    build = client.wait_build("sk-old-2", timeout=60)
    assert build["cache_hit"] and build["cache_key"] == first["cache_key"]
    assert build["environment_path"] == first["environment_path"]
    assert build["duration_seconds"] < 5, build
    assert "cache hit" in client.build("sk-old-2", build["id"])["log"]
    client.wait("sk-old-2", timeout=180)
    assert predict(platform, "sk-old-2", created["access_key"], [SETOSA])["prediction"] == [0]

    client.stop("sk-old-2")
    client.start("sk-old-2")
    restart = client.wait_build("sk-old-2", timeout=60)
    assert restart["reason"] == "start" and restart["cache_hit"]
    assert restart["duration_seconds"] < 5
    client.wait("sk-old-2", timeout=180)
    assert predict(platform, "sk-old-2", created["access_key"], [SETOSA])["prediction"] == [0]
    client.delete("sk-old-2")

    # The environment is still in use by sk-old: listed as such, and pruning keeps it.
    envs = {e["key"]: e for e in client.environments()}
    assert envs[first["cache_key"]]["in_use"]
    client.prune_environments()
    assert first["cache_key"] in {e["key"] for e in client.environments()}


def test_unresolvable_requirements_fail_and_the_previous_version_keeps_serving(
    platform: RunningPlatform, keys: dict[str, str]
) -> None:
    client = platform.client()
    key = keys["sk-new"]
    answer = client.redeploy("sk-new", version=2)
    assert answer["status"] == "building" and answer["version"] == "1"
    assert predict(platform, "sk-new", key, [VIRGINICA])["prediction"] == [2]
    with pytest.raises(ApiError) as failed:
        client.wait_build("sk-new", timeout=180)
    assert failed.value.code == "build_failed"
    build = client.builds("sk-new")[0]
    assert build["status"] == "build failed" and build["version"] == "2"
    assert "scikit-learn" in build["status_message"]
    assert "0.0.999" in build["status_message"]
    assert "no version" in build["status_message"].lower()

    d = client.deployment("sk-new")
    assert d["status"] == "deployed" and d["version"] == "1", d
    assert "keeps serving" in d["status_message"]
    assert predict(platform, "sk-new", key, [VIRGINICA])["prediction"] == [2]

    # A new deployment of that version fails with the same reason; the platform carries on.
    client.deploy("sk-bad", "sk_new", version=2, env_manager="uv")
    with pytest.raises(ApiError) as not_deployed:
        client.wait("sk-bad", timeout=180)
    assert "0.0.999" in not_deployed.value.message
    assert client.deployment("sk-bad")["status"] == "failed"
    assert httpx.get(platform.url + "/health", timeout=5).status_code == 200
    client.delete("sk-bad")


def test_cli_lists_builds_and_one_build(platform: RunningPlatform, keys: dict[str, str]) -> None:
    from click.testing import CliRunner

    from modeldeck.cli.main import main

    runner = CliRunner()
    base = ["--url", platform.url, "--api-key", platform.api_key]
    listed = runner.invoke(main, [*base, "builds", "sk-old"])
    assert listed.exit_code == 0, listed.output
    assert "built" in listed.output and "uv" in listed.output
    build_id = Client(platform.url, platform.api_key).builds("sk-old")[0]["id"]
    shown = runner.invoke(main, [*base, "builds", "sk-old", "--id", build_id[:8]])
    assert shown.exit_code == 0, shown.output
    assert f"scikit-learn=={OLD_SKLEARN}" in shown.output
    assert "uv pip install" in shown.output


def test_unknown_deployments_and_builds_are_404(platform: RunningPlatform) -> None:
    client = platform.client()
    with pytest.raises(ApiError) as missing:
        client.builds("no-such-deployment")
    assert missing.value.status_code == 404
    with pytest.raises(ApiError) as missing_build:
        client.build("sk-old", "no-such-build")
    assert missing_build.value.status_code == 404


def test_cml_build_of_an_isolated_deployment_builds_its_environment(
    platform: RunningPlatform, keys: dict[str, str]
) -> None:
    """A Cloudera-style build of a model whose deployment runs in a uv environment checks the
    version in that environment (a deployment build, here a cache hit) before it is built."""
    http = httpx.Client(
        base_url=platform.url + "/api/v2/projects/lab",
        headers={"Authorization": f"Bearer {platform.api_key}"},
        timeout=30,
    )
    model = http.post("/models", json={"name": "cml-old", "registered_model_id": "sk_old"})
    assert model.is_success, model.text
    model_id = model.json()["id"]
    deployment = model.json()["deployment_name"]

    def build() -> dict[str, Any]:
        r = http.post(f"/models/{model_id}/builds", json={"registered_model_version_id": "1"})
        assert r.is_success, r.text
        build_id = r.json()["id"]
        for _ in range(300):
            b = http.get(f"/models/{model_id}/builds/{build_id}").json()
            if b["status"] in ("built", "build failed"):
                return dict(b)
            time.sleep(0.2)
        raise AssertionError("the build did not finish")

    first = build()
    assert first["status"] == "built", first
    r = http.post(f"/models/{model_id}/builds/{first['id']}/deployments", json={})
    assert r.is_success, r.text
    client = platform.client()
    client.redeploy(deployment, env_manager="uv")  # the model's deployment goes isolated
    assert client.wait_build(deployment, timeout=60)["cache_hit"]
    assert client.wait(deployment, timeout=180)["env_manager"] == "uv"
    second = build()
    assert second["status"] == "built", second
    assert "uv environment" in second["status_message"]
    assert "cache hit" in second["status_message"]
    reasons = [b["reason"] for b in client.builds(deployment)]
    assert "cml" in reasons and "redeploy" in reasons
    assert client.builds(deployment)[0]["model_packages"]["scikit-learn"] == OLD_SKLEARN
    client.delete(deployment)
    http.close()
