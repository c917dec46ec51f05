"""The ``cmlapi`` client's objects and connection settings, and the CML objects in the store on
both backends (in process). The deployment flows against a real platform are in
``tests/integration/test_cmlapi.py``."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from modeldeck.api.app import create_app
from modeldeck.compat import cmlapi
from modeldeck.compat.cmlapi_service import CmlService
from modeldeck.config import Settings
from modeldeck.store import Store
from modeldeck.store.schema import CmlModelBuildRow, CmlModelRow
from tests.conftest import Registered

# -- the client -------------------------------------------------------------------------------


@pytest.fixture()
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in ("MODELDECK_URL", "MODELDECK_API_KEY", "CDSW_DOMAIN", "CDSW_APIV2_KEY"):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def _auth(client: cmlapi.CMLServiceApi) -> str | None:
    return client.headers.get("Authorization")


def test_connection_settings_come_from_the_environment(clean_env: pytest.MonkeyPatch) -> None:
    assert cmlapi.default_client().url == "http://127.0.0.1:8000"
    clean_env.setenv("CDSW_DOMAIN", "ml.example.com")
    clean_env.setenv("CDSW_APIV2_KEY", "cdsw-key")
    client = cmlapi.default_client()
    assert client.url == "https://ml.example.com" and _auth(client) == "Bearer cdsw-key"
    clean_env.setenv("MODELDECK_URL", "http://10.0.0.5:8000/")
    clean_env.setenv("MODELDECK_API_KEY", "mdk_key")
    client = cmlapi.default_client()
    assert client.url == "http://10.0.0.5:8000" and _auth(client) == "Bearer mdk_key"
    # the https URL a Cloudera script builds from CDSW_DOMAIN gives way to MODELDECK_URL ...
    built = cmlapi.default_client(url="https://ml.example.com")
    assert built.url == "http://10.0.0.5:8000"
    # ... any other URL and key given as arguments win
    given = cmlapi.default_client(url="http://other:9000", cml_api_key="given")
    assert given.url == "http://other:9000" and _auth(given) == "Bearer given"


def test_objects_allow_attribute_access_and_to_dict() -> None:
    answer = {
        "models": [
            {"model_id": "iris", "model_versions": [{"model_version_id": "models:/iris/2"}]}
        ],
        "next_page_token": "",
    }
    listed = cmlapi.ListRegisteredModelsResponse(answer)
    model = listed.models[0]
    assert isinstance(model, cmlapi.RegisteredModel)
    assert isinstance(model.model_versions[0], cmlapi.RegisteredModelVersion)
    assert model.model_versions[0].model_version_id == "models:/iris/2"
    assert listed.to_dict() == answer
    assert "models:/iris/2" in repr(listed)
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        _ = model.nope
    deployment = cmlapi.ModelDeployment({"status": "deployed", "environment": {"A": "1"}})
    assert deployment.environment == {"A": "1"}  # plain dicts stay dicts
    deployment.status = "stopped"
    assert deployment.to_dict()["status"] == "stopped"


def test_request_objects_take_cloudera_fields_only() -> None:
    body = cmlapi.CreateModelRequest(name="m", project_id="p", description=None)
    assert body.to_dict() == {"name": "m", "project_id": "p"}
    with pytest.raises(TypeError, match="unexpected keyword argument 'colour'"):
        cmlapi.CreateModelBuildRequest(colour="red")
    build = cmlapi.CreateModelBuildRequest(registered_model_version_id="models:/m/1", kernel="x")
    assert build.registered_model_version_id == "models:/m/1"
    deploy = cmlapi.CreateModelDeploymentRequest(cpu=1, memory=2, replicas=2)
    assert deploy.to_dict() == {"cpu": 1, "memory": 2, "replicas": 2}


def test_errors_carry_status_reason_and_the_json_error() -> None:
    body = {"error": {"code": "not_found", "message": "model 'x' not found", "details": {}}}
    response = httpx.Response(404, json=body)
    exc = cmlapi.ApiException(http_resp=response)
    assert (exc.status, exc.reason) == (404, "Not Found")
    assert exc.error["code"] == "not_found"
    assert "model 'x' not found" in str(exc)
    unreachable = cmlapi.default_client(url="http://127.0.0.1:9", cml_api_key="k")
    with pytest.raises(cmlapi.ApiException, match="cannot reach"):
        unreachable.list_models("p")


# -- the service on both store backends (in process) ------------------------------------------

API_KEY = "mdk_cmlapi_test"
AUTH = {"Authorization": f"Bearer {API_KEY}"}


@pytest.fixture()
def app_client(store_url: str, mlflow_registry: Registered, tmp_path: Path) -> Iterator[TestClient]:
    settings = Settings(
        data_dir=tmp_path,
        store_url=store_url,
        mlflow_tracking_uri=mlflow_registry.tracking_uri,
        api_key=API_KEY,
    )
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        yield client


def _poll_build(client: TestClient, path: str) -> dict[str, Any]:
    deadline = time.monotonic() + 60
    while True:
        build: dict[str, Any] = client.get(path, headers=AUTH).json()
        if build["status"] in ("built", "build failed") or time.monotonic() > deadline:
            return build
        time.sleep(0.2)


def test_models_and_builds_are_kept_in_the_store(app_client: TestClient) -> None:
    base = "/api/v2/projects/p1/models"
    created = app_client.post(base, headers=AUTH, json={"name": "My model!", "description": "d"})
    assert created.status_code == 201, created.text
    model = created.json()
    assert model["deployment_name"] == "My-model" and model["access_key"]
    assert app_client.post(base, headers=AUTH, json={"name": "My model!"}).status_code == 409
    # the same name in another project is another model, with another deployment name
    other = app_client.post(
        "/api/v2/projects/p2/models", headers=AUTH, json={"name": "My model!"}
    ).json()
    assert other["deployment_name"] == f"My-model-{other['id'][:8]}"
    found = app_client.get(
        base, headers=AUTH, params={"search_filter": json.dumps({"name": "My model!"})}
    ).json()
    assert [m["id"] for m in found["models"]] == [model["id"]]
    assert found["models"][0]["access_key"] == model["access_key"]  # an admin key reads it

    builds = f"{base}/{model['id']}/builds"
    queued = app_client.post(
        builds, headers=AUTH, json={"registered_model_version_id": "models:/iris/42"}
    )
    assert queued.status_code == 201, queued.text
    build = _poll_build(app_client, f"{builds}/{queued.json()['id']}")
    assert build["status"] == "build failed"
    assert "has no version 42" in build["status_message"]
    listed = app_client.get(builds, headers=AUTH).json()["model_builds"]
    assert [b["id"] for b in listed] == [build["id"]]
    deployments = f"{builds}/{build['id']}/deployments"
    refused = app_client.post(deployments, headers=AUTH, json={"cpu": 1, "memory": 2})
    assert refused.status_code == 409 and refused.json()["error"]["code"] == "conflict"
    gpu = app_client.post(deployments, headers=AUTH, json={"nvidia_gpus": 1})
    assert gpu.status_code == 422 and gpu.json()["error"]["details"]["field"] == "nvidia_gpus"
    assert app_client.get(deployments, headers=AUTH).json() == {
        "model_deployments": [],
        "next_page_token": "",
    }


def test_builds_the_platform_was_running_when_it_stopped_end_failed(
    store_url: str, mlflow_registry: Registered, tmp_path: Path
) -> None:
    store = Store(store_url)
    store.migrate()
    with store.write() as session:
        session.add(
            CmlModelRow(
                id="m1", project_id="p", name="m", description="", deployment_name="m",
                auth_enabled=True,
            )
        )  # fmt: skip
        session.flush()
        session.add(
            CmlModelBuildRow(
                id="b1", model_id="m1", project_id="p", model_name="iris", model_version="1",
                model_uri="", status="building", status_message="",
            )
        )  # fmt: skip
    settings = Settings(data_dir=tmp_path, mlflow_tracking_uri=mlflow_registry.tracking_uri)
    service = CmlService(settings, store, None, None)  # type: ignore[arg-type]
    asyncio.run(service.restore())
    with store.read() as session:
        build = session.get_one(CmlModelBuildRow, "b1")
    assert build.status == "build failed" and "platform stopped" in build.status_message
    store.close()


def test_access_keys_read_back_for_deploy_and_admin_keys_only(
    app_client: TestClient, store_url: str
) -> None:
    """As on Cloudera ML, those who may deploy read a model's access key back from
    ``list_models`` and ``get_model``; a read-only key sees null. The store never holds it in
    plain text."""
    created = app_client.post("/api/v2/projects/p/models", headers=AUTH, json={"name": "keyed"})
    assert created.status_code == 201, created.text
    model = created.json()
    key = model["access_key"]
    scoped = {}
    for scope in ("read", "deploy", "admin"):
        made = app_client.post(
            "/api/v1/api-keys", headers=AUTH, json={"name": scope, "scope": scope}
        )
        assert made.status_code == 201, made.text
        scoped[scope] = {"Authorization": f"Bearer {made.json()['key']}"}
    one = f"/api/v2/projects/p/models/{model['id']}"
    for scope, expected in (("read", None), ("deploy", key), ("admin", key)):
        headers = scoped[scope]
        listed = app_client.get("/api/v2/projects/p/models", headers=headers).json()
        assert [m["access_key"] for m in listed["models"]] == [expected], scope
        every = app_client.get("/api/v2/models", headers=headers).json()
        assert [m["access_key"] for m in every["models"]] == [expected], scope
        got = app_client.get(one, headers=headers).json()
        assert (got["access_key"], got["access_key_prefix"]) == (expected, key[:8]), scope
    store = Store(store_url)
    with store.read() as session:
        row = session.get_one(CmlModelRow, model["id"])
        stored = [str(getattr(row, column.key)) for column in CmlModelRow.__table__.columns]
    store.close()
    assert not any(key in value for value in stored)
    assert row.access_key_encrypted and row.access_key_hash
