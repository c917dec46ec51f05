"""The views the client returns: typed, tolerant of a newer server, and still answering the
dict-style access of the dict-returning client."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from modeldeck.client import Client
from modeldeck.views import DeploymentView, DriftReport, ReferenceView, RegisteredModelView

DEPLOYMENT: dict[str, Any] = {
    "id": "d1",
    "name": "iris",
    "crn": "crn:cdp:ml:local:modeldeck:workspace/modeldeck/deployment:d1",
    "model": "sklearn_model",
    "version": "3",
    "version_spec": "@champion",
    "model_uri": "models:/sklearn_model/3",
    "runtime": "local",
    "status": "deployed",
    "status_message": "",
    "desired_state": "running",
    "replicas": 2,
    "ready_replicas": 2,
    "replica_states": [{"index": 0, "status": "ready", "pid": 12, "port": 9000}],
    "autoscaling": None,
    "cpu": None,
    "memory_mb": None,
    "environment": {},
    "auth_enabled": False,
    "access_key_prefix": "mdk",
    "access_key": None,
    "endpoint_url": "http://127.0.0.1:8000/deployments/iris/predict",
    "kind": "endpoint",
    "source": "registry",
    "file_path": None,
    "function_name": None,
    "track_metrics": True,
    "signature": None,
    "env_manager": "local",
    "track_alias": True,
    "alias_held_version": None,
    "rollout": {"version": "4", "previous_version": "3", "rollback": False},
    "warnings": ["authentication is disabled"],
    "created_at": "2026-12-07T10:00:00Z",
    "updated_at": "2026-12-07T10:05:00Z",
}


def test_a_view_answers_dict_style_access_as_the_dict_did() -> None:
    view = DeploymentView.model_validate(DEPLOYMENT)

    assert view.status == "deployed"
    assert view.created_at == datetime(2026, 12, 7, 10, 0, tzinfo=UTC)
    assert view.rollout is not None and view.rollout.version == "4"
    # What code written against the dict-returning client reads: the JSON values.
    assert view["status"] == "deployed"
    assert view["created_at"] == "2026-12-07T10:00:00Z"
    assert view["rollout"]["version"] == "4"
    assert view["replica_states"][0]["port"] == 9000
    assert view.get("autoscaling") is None
    assert view.get("no_such_field", "default") == "default"
    assert "crn" in view and "no_such_field" not in view
    with pytest.raises(KeyError):
        view["no_such_field"]
    assert dict(view) == {**view} == json.loads(view.model_dump_json())
    assert view["warnings"] == ["authentication is disabled"]  # the server's, not recomputed


def test_a_field_the_answer_left_out_is_not_in_it() -> None:
    """A reference asked for a sample has no ``head``: not "in" the view, as not in the dict."""
    answer = {"source": "upload", "rows": 2, "columns": [], "sample": [{"x": 1}]}
    view = ReferenceView.model_validate(answer)
    assert "sample" in view and "head" not in view
    assert view.head is None and view.get("head") is None
    assert dict(view) == answer


def test_fields_a_newer_server_adds_do_not_break_parsing() -> None:
    answer = {
        **DEPLOYMENT,
        "gpu": {"count": 1},
        "replica_states": [{**DEPLOYMENT["replica_states"][0], "node": "n1"}],
        "rollout": {**DEPLOYMENT["rollout"], "progress": 0.5},
    }

    view = DeploymentView.model_validate(answer)

    assert view.name == "iris"
    assert view["gpu"] == {"count": 1} and view.model_extra == {"gpu": {"count": 1}}
    assert view.replica_states[0]["node"] == "n1"
    assert view["rollout"]["progress"] == 0.5
    assert "gpu" in view
    assert json.loads(view.model_dump_json())["gpu"] == {"count": 1}


def test_a_free_form_report_keeps_its_top_level_typed_and_the_rest_as_json() -> None:
    report = DriftReport.model_validate(
        {
            "deployment": "iris",
            "start": 0,
            "end": 10,
            "reference": {"rows": 150},
            "predictions": 42,
            "dataset": {"drifted": True},
            "columns": [{"column": "petal_length", "drifted": True}],
            "verdict": {"level": "drift"},
            "a_new_section": [1, 2],
        }
    )

    assert report.predictions == 42 and report.dataset["drifted"] is True
    assert report["columns"][0]["column"] == "petal_length"
    assert report["a_new_section"] == [1, 2]


def test_the_client_returns_views_and_lists_of_views() -> None:
    model = {
        "name": "sklearn_model",
        "description": "",
        "aliases": {"champion": "3"},
        "tags": {},
        "latest_version": "3",
        "created_at": None,
        "updated_at": None,
        "versions": [],
        "owner": "someone",  # a field this client does not know
    }

    def answer(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/api/v1/models":
            return httpx.Response(200, json=[model])
        return httpx.Response(200, json=DEPLOYMENT)

    with (
        httpx.Client(transport=httpx.MockTransport(answer)) as http,
        Client("http://modeldeck.test", "mdk_x", http=http) as client,
    ):
        models = client.models()
        deployment = client.deployment("iris")

    assert [type(m) for m in models] == [RegisteredModelView]
    assert models[0].aliases == {"champion": "3"} and models[0]["owner"] == "someone"
    assert isinstance(deployment, DeploymentView) and deployment.ready_replicas == 2
