"""Cloudera ML's ``cmlapi`` client against a real platform (SQLite) and the registered Iris model.

Every call of the compatibility client, both deployment flows with status polling (model ->
build -> deployment, and one ``create_model`` with automatic build and deployment), build
failures with their reasons, stop/restart/redeploy, calling the deployed model with the
model's access key through ``cml.models_v1`` and ``cdsw``, and the one error shape.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType, SimpleNamespace
from typing import Any

import httpx
import pytest

import modeldeck.compat
from tests.conftest import Registered, RunningPlatform, start_platform

pytestmark = [pytest.mark.integration, pytest.mark.slow]  # make test-slow

PROJECT = "lab"
RECORD = {"sepal_length": 5.1, "sepal_width": 3.5, "petal_length": 1.4, "petal_width": 0.2}
TIMEOUT = 120.0


@pytest.fixture(scope="module")
def shims() -> Iterator[tuple[ModuleType, ModuleType, ModuleType]]:
    """``cmlapi``, ``cdsw`` and ``cml.models_v1`` imported under Cloudera's names."""
    names = ("cmlapi", "cmlapi.rest", "cdsw", "cml", "cml.models_v1", "cml.metrics_v1")
    sys.path.insert(0, modeldeck.compat.path())
    try:
        import cdsw
        import cml.models_v1
        import cmlapi

        assert cmlapi.__file__ and cmlapi.__file__.startswith(modeldeck.compat.path())
        yield cmlapi, cdsw, cml.models_v1
    finally:
        sys.path.remove(modeldeck.compat.path())
        for name in names:
            sys.modules.pop(name, None)


@pytest.fixture(scope="module")
def running(
    mlflow_registry: Registered, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningPlatform]:
    data_dir = tmp_path_factory.mktemp("cmlapi")
    platform = start_platform(
        data_dir, f"sqlite:///{data_dir / 'modeldeck.db'}", mlflow_registry.tracking_uri
    )
    try:
        yield platform
    finally:
        platform.stop()


@pytest.fixture()
def api(
    running: RunningPlatform,
    shims: tuple[ModuleType, ModuleType, ModuleType],
    monkeypatch: pytest.MonkeyPatch,
) -> Any:
    """A client from ``cmlapi.default_client``; ``call_model`` reaches the same platform."""
    monkeypatch.setenv("MODELDECK_URL", running.url)
    monkeypatch.setenv("MODELDECK_API_KEY", running.api_key)
    monkeypatch.delenv("CDSW_DOMAIN", raising=False)
    client = shims[0].default_client()
    assert client.url == running.url
    yield client
    client.close()


def wait_for(
    poll: Callable[[], Any], done: set[str], timeout: float = TIMEOUT
) -> tuple[Any, list[str]]:
    """Poll until ``status`` is one of ``done``; returns the object and every status seen."""
    seen: list[str] = []
    deadline = time.monotonic() + timeout
    while True:
        obj = poll()
        if not seen or seen[-1] != obj.status:
            seen.append(obj.status)
        if obj.status in done:
            return obj, seen
        assert time.monotonic() < deadline, f"still {obj.status!r} after {timeout} s: {obj}"
        time.sleep(0.25)


def latest_version_id(api: Any, name: str = "iris") -> str:
    found = api.list_registered_models(search_filter=json.dumps({"model_name": name}))
    model_id = found.models[0].model_id
    newest_first = api.get_registered_model(model_id, sort="-version_number")
    return str(newest_first.model_versions[0].model_version_id)


# -- registered models ------------------------------------------------------------------------


def test_registered_models_come_from_mlflow(api: Any, mlflow_registry: Registered) -> None:
    found = api.list_registered_models(search_filter=json.dumps({"model_name": "iris"}))
    assert [m.model_id for m in found.models] == ["iris"]
    assert found.to_dict()["models"][0]["name"] == "iris"
    assert api.list_registered_models(search_filter=json.dumps({"model_name": "nope"})).models == []
    every = {m.name for m in api.list_registered_models().models}
    assert {"iris", mlflow_registry.broken_model} <= every

    newest_first = api.get_registered_model("iris", sort="-version_number")
    numbers = [v.version_number for v in newest_first.model_versions]
    assert numbers == sorted((int(v) for v in mlflow_registry.versions), reverse=True)
    assert newest_first.model_versions[0].model_version_id == f"models:/iris/{numbers[0]}"
    assert "champion" in newest_first.model_versions[-1].aliases
    oldest_first = api.get_registered_model("iris", sort="version_number")
    assert [v.version_number for v in oldest_first.model_versions] == sorted(numbers)
    assert latest_version_id(api) == f"models:/iris/{numbers[0]}"


# -- flow 1: model -> build -> deployment, then stop, restart, redeploy -----------------------


def test_model_build_deployment_with_status_polling(
    api: Any, running: RunningPlatform, shims: tuple[ModuleType, ModuleType, ModuleType]
) -> None:
    cmlapi, cdsw, models_v1 = shims
    body = cmlapi.CreateModelRequest(
        project_id=PROJECT, name="Iris classifier", description="from the registry",
        registered_model_id="iris",
    )  # fmt: skip
    model = api.create_model(body, PROJECT)
    assert isinstance(model, cmlapi.Model)
    assert model.name == "Iris classifier" and model.project_id == PROJECT
    assert model.crn.endswith(f"/model/{model.id}")
    assert model.auth_enabled is True and len(model.access_key) == 40
    assert model.deployment_name == "Iris-classifier"
    key = model.access_key
    # an admin key reads the key back (a read-only key would not)
    again = api.get_model(PROJECT, model.id)
    assert again.access_key == key and again.access_key_prefix == key[:8]
    assert api.get_model(PROJECT, "Iris classifier").id == model.id  # by name too
    listed = api.list_models(PROJECT, search_filter=json.dumps({"name": "Iris classifier"}))
    assert [m.id for m in listed.models] == [model.id]
    assert model.id in {m.id for m in api.list_all_models().models}

    build = api.create_model_build(
        cmlapi.CreateModelBuildRequest(
            project_id=PROJECT, model_id=model.id, registered_model_version_id="models:/iris/1",
            comment="first build", runtime_identifier="docker.example/ml-runtime:2024",
            kernel="python3",
        ),
        PROJECT, model.id,
    )  # fmt: skip
    assert build.status in ("queued", "building")
    assert build.comment == "first build" and build.model_id == model.id
    build, seen = wait_for(
        lambda: api.get_model_build(PROJECT, model.id, build.id), {"built", "build failed"}
    )
    assert build.status == "built", build.status_message
    assert seen[-1] == "built" and len(seen) >= 2, seen  # polling saw it progress
    assert (build.model_name, build.model_version) == ("iris", "1")
    assert build.built_at is not None
    assert [b.id for b in api.list_model_builds(PROJECT, model.id).model_builds] == [build.id]

    deployment = api.create_model_deployment(
        cmlapi.CreateModelDeploymentRequest(
            project_id=PROJECT, model_id=model.id, build_id=build.id,
            cpu=1, memory=2, replicas=1, environment={"LAB": "1"},
        ),
        PROJECT, model.id, build.id,
    )  # fmt: skip
    assert deployment.status == "deploying"
    assert (deployment.cpu, deployment.memory, deployment.replicas) == (1, 2, 1)
    deployment, seen = wait_for(
        lambda: api.get_model_deployment(PROJECT, model.id, build.id, deployment.id),
        {"deployed", "failed", "stopped"},
    )
    assert deployment.status == "deployed", deployment.status_message
    assert seen[0] == "deploying", seen

    # The model answers through Cloudera's call_model with the model's access key, and the
    # CML deployment runs as the modeldeck deployment the v1 API shows.
    answer = models_v1.call_model(key, RECORD)
    assert answer["success"] is True, answer
    assert answer["response"]["prediction"] == [0]
    assert answer["response"]["model_deployment_crn"] == deployment.crn
    assert cdsw.call_model(key, RECORD)["success"] is True
    served = running.client().deployment(model.deployment_name)
    assert (served["version"], served["memory_mb"]) == ("1", 2048)
    assert served["environment"] == {"LAB": "1"}
    listed_deployments = api.list_model_deployments(PROJECT, model.id, build.id)
    assert [d.id for d in listed_deployments.model_deployments] == [deployment.id]

    stopped = api.stop_model_deployment(PROJECT, model.id, build.id, deployment.id)
    assert stopped.status == "stopped" and stopped.stopped_at is not None
    assert models_v1.call_model(key, RECORD)["success"] is False
    restarted = api.restart_model_deployment(PROJECT, model.id, build.id, deployment.id)
    assert restarted.status == "deploying"
    wait_for(
        lambda: api.get_model_deployment(PROJECT, model.id, build.id, deployment.id),
        {"deployed"},
    )
    assert models_v1.call_model(key, RECORD)["success"] is True

    # A second build (version 2, by number of the registered model) replaces the first
    # deployment: same deployment, same access key, new version.
    second = api.create_model_build({"registered_model_version_id": "2"}, PROJECT, model.id)
    second, _ = wait_for(
        lambda: api.get_model_build(PROJECT, model.id, second.id), {"built", "build failed"}
    )
    assert second.status == "built", second.status_message
    assert second.registered_model_version_id == "2" and second.model_version == "2"
    newer = api.create_model_deployment({"replicas": 1}, PROJECT, model.id, second.id)
    newer, seen = wait_for(
        lambda: api.get_model_deployment(PROJECT, model.id, second.id, newer.id), {"deployed"}
    )
    # Version 2 starts beside version 1 and is "deploying" until it takes the traffic.
    assert seen[0] == "deploying", seen
    old = api.get_model_deployment(PROJECT, model.id, build.id, deployment.id)
    assert old.status == "stopped" and newer.id in old.status_message
    assert running.client().deployment(model.deployment_name)["version"] == "2"
    assert newer.crn != deployment.crn  # a CRN of its own, on the same modeldeck deployment
    answer = models_v1.call_model(key, RECORD)
    assert answer["success"] is True and answer["response"]["model_deployment_crn"] == newer.crn


# -- flow 2: one create_model that builds and deploys -----------------------------------------


def test_create_model_builds_and_deploys_by_itself(
    api: Any, running: RunningPlatform, shims: tuple[ModuleType, ModuleType, ModuleType]
) -> None:
    _, cdsw, _ = shims
    version_id = latest_version_id(api)
    model = api.create_model(
        {
            "project_id": PROJECT,
            "name": "iris-auto",
            "description": "built and deployed in one call",
            "disable_authentication": True,
            "registered_model_id": "iris",
            "auto_build_model": True,
            "auto_build_config": {
                "registered_model_version_id": version_id,
                "runtime_identifier": "docker.example/ml-runtime:2024",
            },
            "auto_deploy_model": True,
            "auto_deploy_config": {"cpu": 1, "memory": 2, "replicas": 1},
        },
        PROJECT,
    )
    assert model.auth_enabled is False and model.access_key
    builds = api.list_model_builds(PROJECT, model.id).model_builds
    assert len(builds) == 1 and builds[0].registered_model_version_id == version_id
    build, _ = wait_for(
        lambda: api.get_model_build(PROJECT, model.id, builds[0].id), {"built", "build failed"}
    )
    assert build.status == "built", build.status_message

    def the_deployment() -> Any:
        found = api.list_model_deployments(PROJECT, model.id, build.id).model_deployments
        return found[0] if found else SimpleNamespace(status="none yet")

    deployment, _ = wait_for(the_deployment, {"deployed", "failed", "stopped"})
    assert deployment.status == "deployed", deployment.status_message
    assert (deployment.cpu, deployment.memory) == (1, 2)
    assert cdsw.call_model(model.access_key, RECORD)["success"] is True
    # authentication is off: the model endpoint answers without any key
    r = httpx.post(f"{model.endpoint_url}", json={"inputs": [list(RECORD.values())]})
    assert r.status_code == 200, r.text


# -- a build of a Python file, as most Cloudera scripts build ---------------------------------

PREDICT = textwrap.dedent(
    """
    import cml.models_v1 as models

    @models.cml_model(metrics=True)
    def predict(args):
        return {"long_petals": args["petal_length"] > 2.5}
    """
)


def test_a_file_and_function_build_deploys_the_function(
    api: Any, tmp_path: Path, shims: tuple[ModuleType, ModuleType, ModuleType]
) -> None:
    cmlapi, _, models_v1 = shims
    script = tmp_path / "predict.py"
    script.write_text(PREDICT)
    model = api.create_model(cmlapi.CreateModelRequest(name="petals"), PROJECT)
    build = api.create_model_build(
        cmlapi.CreateModelBuildRequest(
            file_path=str(script), function_name="predict", kernel="python3"
        ),
        PROJECT,
        model.id,
    )
    build, _ = wait_for(
        lambda: api.get_model_build(PROJECT, model.id, build.id), {"built", "build failed"}
    )
    assert build.status == "built", build.status_message
    assert (build.file_path, build.function_name) == (str(script), "predict")
    deployment = api.create_model_deployment({}, PROJECT, model.id, build.id)
    deployment, _ = wait_for(
        lambda: api.get_model_deployment(PROJECT, model.id, build.id, deployment.id),
        {"deployed", "failed"},
    )
    assert deployment.status == "deployed", deployment.status_message
    answer = models_v1.call_model(model.access_key, RECORD)
    assert answer["success"] is True, answer
    assert answer["response"]["prediction"] == {"long_petals": False}
    assert answer["response"]["model_deployment_crn"] == deployment.crn

    missing = api.create_model_build(
        {"file_path": str(script), "function_name": "nope"}, PROJECT, model.id
    )
    missing, _ = wait_for(
        lambda: api.get_model_build(PROJECT, model.id, missing.id), {"built", "build failed"}
    )
    assert missing.status == "build failed" and "no function 'nope'" in missing.status_message


# -- builds that fail -------------------------------------------------------------------------


def test_a_build_that_cannot_load_ends_build_failed_with_the_reason(
    api: Any, mlflow_registry: Registered
) -> None:
    model = api.create_model({"name": "fails"}, PROJECT)
    unknown = api.create_model_build(
        {"registered_model_version_id": "models:/iris/99"}, PROJECT, model.id
    )
    broken = api.create_model_build(
        {"registered_model_version_id": f"models:/{mlflow_registry.broken_model}/1"},
        PROJECT,
        model.id,
    )
    unknown, _ = wait_for(
        lambda: api.get_model_build(PROJECT, model.id, unknown.id), {"built", "build failed"}
    )
    assert unknown.status == "build failed"
    assert "no version 99" in unknown.status_message
    broken, seen = wait_for(
        lambda: api.get_model_build(PROJECT, model.id, broken.id), {"built", "build failed"}
    )
    assert broken.status == "build failed" and "building" in seen
    assert "fails to load on purpose" in broken.status_message

    cmlapi = sys.modules["cmlapi"]
    with pytest.raises(cmlapi.rest.ApiException) as caught:
        api.create_model_deployment({}, PROJECT, model.id, broken.id)
    assert caught.value.status == 409
    assert caught.value.error["code"] == "conflict"
    assert "build failed" in caught.value.error["message"]


# -- bad input --------------------------------------------------------------------------------


def test_bad_input_gets_the_one_error_shape(
    api: Any, running: RunningPlatform, shims: tuple[ModuleType, ModuleType, ModuleType]
) -> None:
    cmlapi = shims[0]

    def error(call: Callable[[], Any], status: int, code: str, field: str | None = None) -> None:
        with pytest.raises(cmlapi.rest.ApiException) as caught:
            call()
        assert caught.value.status == status, caught.value
        body = json.loads(caught.value.body)
        assert set(body) == {"error"} and set(body["error"]) == {"code", "message", "details"}
        assert body["error"]["code"] == code, body
        if field is not None:
            assert body["error"]["details"]["field"] == field, body

    create, build = api.create_model, api.create_model_build
    error(lambda: create({"description": "no name"}, PROJECT), 422, "validation_failed", "name")
    error(
        lambda: create({"name": "x", "surprise": 1}, PROJECT), 422, "validation_failed", "surprise"
    )
    error(
        lambda: create({"name": "x", "project_id": "y"}, PROJECT), 400, "bad_request", "project_id"
    )
    error(lambda: create({"name": "x", "registered_model_id": "nope"}, PROJECT), 404, "not_found")
    error(
        lambda: create({"name": "x", "auto_deploy_model": True}, PROJECT), 422, "validation_failed"
    )

    model = create({"name": "taken"}, PROJECT)
    error(lambda: create({"name": "taken"}, PROJECT), 409, "conflict")
    other_project = create({"name": "taken"}, "another-project")  # project_id is a namespace
    assert other_project.id != model.id
    assert other_project.deployment_name != model.deployment_name
    error(lambda: api.get_model("another-project", model.id), 404, "not_found")
    error(lambda: api.get_model_build(PROJECT, model.id, "nope"), 404, "not_found")
    error(lambda: api.get_model_deployment(PROJECT, model.id, "b", "d"), 404, "not_found")
    error(lambda: api.get_registered_model("nope"), 404, "not_found")

    field = "registered_model_version_id"
    error(lambda: build({"comment": "what?"}, PROJECT, model.id), 422, "validation_failed", field)
    error(lambda: build({field: "iris/1"}, PROJECT, model.id), 422, "validation_failed", field)
    relative = {"file_path": "relative.py"}
    error(lambda: build(relative, PROJECT, model.id), 422, "validation_failed", "file_path")

    listing = api.list_models
    error(lambda: listing(PROJECT, search_filter="{bad"), 400, "bad_request", "search_filter")
    error(lambda: listing(PROJECT, search_filter='{"owner": 1}'), 400, "bad_request")
    error(lambda: listing(PROJECT, sort="-nope"), 400, "bad_request", "sort")

    wrong_key = cmlapi.default_client(url=running.url, cml_api_key="wrong")
    error(lambda: wrong_key.list_models(PROJECT), 401, "unauthorized")
    with pytest.raises(TypeError, match="surprise"):
        cmlapi.CreateModelRequest(name="x", surprise=1)
    with pytest.raises(TypeError, match="surprise"):
        api.list_models(PROJECT, surprise=1)


def test_lists_page_and_sort(api: Any) -> None:
    for name in ("page-b", "page-a", "page-c"):
        api.create_model({"name": name}, "paging")
    first = api.list_models("paging", sort="name", page_size=2)
    assert [m.name for m in first.models] == ["page-a", "page-b"] and first.next_page_token
    rest = api.list_models("paging", sort="name", page_size=2, page_token=first.next_page_token)
    assert [m.name for m in rest.models] == ["page-c"] and rest.next_page_token == ""
    assert api.list_models("paging", sort="-name").models[0].name == "page-c"


# -- a Cloudera script, unchanged, with only its connection settings set ----------------------

SCRIPT = textwrap.dedent(
    """
    import json, os, time
    import cdsw, cmlapi

    client = cmlapi.default_client(url=f"https://{os.getenv('CDSW_DOMAIN')}")
    project_id = os.environ["CDSW_PROJECT_ID"]
    found = client.list_registered_models(search_filter=json.dumps({"model_name": "iris"}))
    model_id = found.to_dict()["models"][0]["model_id"]
    registered = client.get_registered_model(model_id, sort="-version_number")
    version_id = registered.model_versions[0].model_version_id

    model = client.create_model({"project_id": project_id, "name": "script-model",
        "description": "deployed by a Cloudera script", "disable_authentication": False,
        "registered_model_id": model_id}, project_id)
    build = client.create_model_build({"registered_model_version_id": version_id,
        "comment": "Invoking model build", "runtime_identifier": "docker.example/rt:1",
        "model_id": model.id}, project_id, model.id)
    while build.status not in ["built", "build failed"]:
        time.sleep(0.5)
        build = client.get_model_build(project_id, model.id, build.id)
    assert build.status == "built", build
    deployment = client.create_model_deployment({"project_id": project_id, "model_id": model.id,
        "model_build_id": build.id, "cpu": 1, "memory": 2}, project_id, model.id, build.id)
    while deployment.status not in ["stopped", "failed", "deployed"]:
        time.sleep(0.5)
        deployment = client.get_model_deployment(project_id, model.id, build.id, deployment.id)
    assert deployment.status == "deployed", deployment
    answer = cdsw.call_model(model.access_key, {"sepal_length": 5.1, "sepal_width": 3.5,
        "petal_length": 1.4, "petal_width": 0.2})
    assert answer["success"], answer
    records = cdsw.read_metrics(model_deployment_crn=deployment.crn)["metrics"]
    assert [r["predictionUuid"] for r in records] == [answer["response"]["uuid"]], records
    print("deployed", deployment.crn)
    """
)


def test_a_cloudera_deployment_script_runs_unchanged(
    running: RunningPlatform, tmp_path: Path
) -> None:
    script = tmp_path / "deploy.py"
    script.write_text(SCRIPT)
    env = {
        **os.environ,
        "PYTHONPATH": modeldeck.compat.path(),
        # what a Cloudera session sets, and the two settings that point it at modeldeck
        "CDSW_DOMAIN": "ml-workspace.example.com",
        "CDSW_PROJECT_ID": "script-project",
        "CDSW_APIV2_KEY": running.api_key,
        "MODELDECK_URL": running.url,
        "MODELDECK_API_KEY": running.api_key,  # for read_metrics
        "MODELDECK_DATA_DIR": str(tmp_path / "data"),
    }
    done = subprocess.run(
        [sys.executable, str(script)], env=env, capture_output=True, text=True, timeout=240
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "deployed crn:" in done.stdout
