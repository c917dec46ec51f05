"""Key scopes, rotation and revocation, auth-disabled warnings, file allow-list, headers, CSRF.

In process (``TestClient``) with a real store, registry and replicas.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from modeldeck.api.app import create_app
from modeldeck.config import Settings
from modeldeck.views.deployments import AUTH_DISABLED_WARNING
from tests.api.test_error_shape import assert_error_shape
from tests.conftest import Registered

ADMIN_KEY = "mdk_security_admin"
PREDICT_PY = "def predict(args):\n    return {'double': args['x'] * 2}\n"


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


ADMIN = bearer(ADMIN_KEY)


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("security-data")


@pytest.fixture(scope="module")
def client(mlflow_registry: Registered, files: Path) -> Iterator[TestClient]:
    allowed = files / "files"
    allowed.mkdir()
    (allowed / "double.py").write_text(PREDICT_PY)
    settings = Settings(
        data_dir=files,
        mlflow_tracking_uri=mlflow_registry.tracking_uri,
        api_key=ADMIN_KEY,
        allowed_file_dirs=[allowed],
        health_interval_seconds=0.25,
    )
    with TestClient(create_app(settings), raise_server_exceptions=False) as c:
        yield c


@pytest.fixture(scope="module")
def served(client: TestClient, files: Path) -> dict[str, Any]:
    """A file deployment ``double`` with a replica up, and a batch deployment ``batch``."""
    r = client.post(
        "/api/v1/deployments",
        json={"name": "double", "file": str(files / "files" / "double.py")},
        headers=ADMIN,
    )
    assert r.status_code == 201, r.text
    created: dict[str, Any] = r.json()
    deadline = time.monotonic() + 60
    while client.get("/api/v1/deployments/double", headers=ADMIN).json()["status"] != "deployed":
        assert time.monotonic() < deadline, "the replica did not come up"
        time.sleep(0.2)
    r = client.post("/api/v1/deployments", json={"name": "batch", "kind": "batch"}, headers=ADMIN)
    assert r.status_code == 201, r.text
    return created


def new_key(client: TestClient, scope: str, name: str | None = None) -> dict[str, Any]:
    r = client.post("/api/v1/api-keys", json={"name": name or scope, "scope": scope}, headers=ADMIN)
    assert r.status_code == 201, r.text
    body: dict[str, Any] = r.json()
    assert body["scope"] == scope and body["key"].startswith(body["prefix"])
    return body


def assert_forbidden(response: Any, needed: str) -> None:
    error = assert_error_shape(response, 403, "forbidden")
    assert error["details"]["needed_scope"] == needed
    assert repr(needed) in error["message"]


def predict(client: TestClient, key: str | None, name: str = "double") -> Any:
    headers = bearer(key) if key else {}
    return client.post(f"/deployments/{name}/predict", json={"x": 4}, headers=headers)


# -- scopes -----------------------------------------------------------------------------------


def test_the_configured_key_is_admin(client: TestClient) -> None:
    assert client.get("/api/v1/api-keys", headers=ADMIN).status_code == 200


def test_read_scope_reads_and_changes_nothing(client: TestClient, served: dict[str, Any]) -> None:
    key = bearer(new_key(client, "read")["key"])
    for path in (
        "/api/v1/deployments",
        "/api/v1/deployments/double",
        "/api/v1/deployments/batch/metrics/model",
        "/api/v1/deployments/double/metrics/technical",
        "/api/v1/models",
        "/api/v1/alerts/rules",
    ):
        assert client.get(path, headers=key).status_code == 200, path
    assert_forbidden(client.post("/api/v1/deployments/double/scale", json={"replicas": 2},
                                 headers=key), "deploy")  # fmt: skip
    assert_forbidden(client.delete("/api/v1/deployments/batch", headers=key), "deploy")
    assert_forbidden(client.post("/api/v1/deployments/double/access-key", headers=key), "deploy")
    assert_forbidden(
        client.post("/api/v1/deployments/batch/predictions",
                    json={"predictions": [{"metrics": {"a": 1}}]}, headers=key), "deploy",
    )  # fmt: skip
    assert_forbidden(client.get("/api/v1/api-keys", headers=key), "admin")
    assert_forbidden(predict(client, key["Authorization"].split()[1]), "predict:double")
    assert client.get("/api/v1/deployments/double", headers=ADMIN).json()["replicas"] == 1


def test_deploy_scope_deploys_but_manages_no_keys(
    client: TestClient, served: dict[str, Any], files: Path
) -> None:
    key = bearer(new_key(client, "deploy")["key"])
    r = client.post("/api/v1/deployments", json={"name": "b2", "kind": "batch"}, headers=key)
    assert r.status_code == 201, r.text
    r = client.post("/api/v1/deployments/b2/predictions",
                    json={"predictions": [{"metrics": {"a": 1}}]}, headers=key)  # fmt: skip
    assert r.status_code == 201, r.text
    assert client.get("/api/v1/deployments/b2", headers=key).status_code == 200
    assert client.delete("/api/v1/deployments/b2", headers=key).status_code == 204
    r = client.post("/api/v1/deployments/double/rollback", headers=key)
    assert r.status_code == 409  # allowed, but there is no earlier version
    assert_forbidden(client.get("/api/v1/api-keys", headers=key), "admin")
    assert_forbidden(client.post("/api/v1/api-keys", json={"name": "x"}, headers=key), "admin")
    assert_forbidden(client.post("/api/v1/api-keys/whatever/rotate", headers=key), "admin")
    assert_forbidden(client.delete("/api/v1/api-keys/whatever", headers=key), "admin")


def test_predict_scope_opens_only_its_deployments_endpoint(
    client: TestClient, served: dict[str, Any]
) -> None:
    mine = new_key(client, "predict:double")["key"]
    other = new_key(client, "predict:batch")["key"]
    r = predict(client, mine)
    assert r.status_code == 200, r.text
    assert r.json()["prediction"] == {"double": 8}
    assert predict(client, served["access_key"]).status_code == 200  # the access key still works
    assert_forbidden(predict(client, other), "predict:double")
    assert_forbidden(predict(client, ADMIN_KEY), "predict:double")
    assert_error_shape(predict(client, "mdk_" + "0" * 40), 401, "unauthorized")
    assert_error_shape(predict(client, None), 401, "unauthorized")
    # Cloudera ML's form takes the key as accessKey.
    r = client.post("/model", json={"accessKey": mine, "request": {"x": 1}})
    assert r.status_code == 200 and r.json()["response"]["prediction"] == {"double": 2}, r.text
    r = client.post("/model", json={"accessKey": ADMIN_KEY, "request": {"x": 1}})
    assert r.status_code == 401 and r.json()["success"] is False
    # ... and no control-plane call at all.
    assert_forbidden(client.get("/api/v1/deployments", headers=bearer(mine)), "read")
    assert_forbidden(client.get("/api/v2/models", headers=bearer(mine)), "read")


def test_a_predict_key_is_bound_to_its_deployment_not_its_name(
    client: TestClient, served: dict[str, Any], files: Path
) -> None:
    """Made for a deployment that exists; gone with it; never opens a later one of that name."""
    r = client.post("/api/v1/api-keys", json={"scope": "predict:later"}, headers=ADMIN)
    assert_error_shape(r, 404, "not_found")
    body = {"name": "later", "file": str(files / "files" / "double.py")}
    assert client.post("/api/v1/deployments", json=body, headers=ADMIN).status_code == 201
    key = new_key(client, "predict:later")
    assert client.delete("/api/v1/deployments/later", headers=ADMIN).status_code == 204
    listed = client.get("/api/v1/api-keys", headers=ADMIN).json()
    assert key["id"] not in {k["id"] for k in listed}, "the key outlived its deployment"
    assert client.post("/api/v1/deployments", json=body, headers=ADMIN).status_code == 201
    try:
        r = client.post("/deployments/later/predict", json={"x": 1}, headers=bearer(key["key"]))
        assert_error_shape(r, 401, "unauthorized")
        r = client.post("/model", json={"accessKey": key["key"], "request": {"x": 1}})
        assert r.status_code == 401 and r.json()["success"] is False
    finally:
        client.delete("/api/v1/deployments/later", headers=ADMIN)


@pytest.mark.parametrize("scope", ["", "root", "predict:", "predict:../x", "read,deploy", "ADMIN"])
def test_an_unknown_scope_is_refused(client: TestClient, scope: str) -> None:
    before = client.get("/api/v1/api-keys", headers=ADMIN).json()
    r = client.post("/api/v1/api-keys", json={"name": "bad", "scope": scope}, headers=ADMIN)
    assert_error_shape(r, 422, "validation_failed")
    assert client.get("/api/v1/api-keys", headers=ADMIN).json() == before


def test_rotation_and_revocation_end_the_old_key_at_once(client: TestClient) -> None:
    created = new_key(client, "read", "rotating")
    old = bearer(created["key"])
    assert client.get("/api/v1/deployments", headers=old).status_code == 200
    listed = {k["id"]: k for k in client.get("/api/v1/api-keys", headers=ADMIN).json()}
    assert listed[created["id"]]["last_used_at"] is not None
    assert all("key" not in k for k in listed.values())

    r = client.post(f"/api/v1/api-keys/{created['id']}/rotate", headers=ADMIN)
    assert r.status_code == 200, r.text
    rotated = r.json()
    assert (rotated["id"], rotated["name"], rotated["scope"]) == (created["id"], "rotating", "read")
    assert rotated["key"] != created["key"]
    assert_error_shape(client.get("/api/v1/deployments", headers=old), 401, "unauthorized")
    new = bearer(rotated["key"])
    assert client.get("/api/v1/deployments", headers=new).status_code == 200

    assert client.delete(f"/api/v1/api-keys/{created['id']}", headers=ADMIN).status_code == 204
    assert_error_shape(client.get("/api/v1/deployments", headers=new), 401, "unauthorized")
    r = client.post(f"/api/v1/api-keys/{created['id']}/rotate", headers=ADMIN)
    assert_error_shape(r, 404, "not_found")


def test_a_revoked_predict_key_stops_opening_the_endpoint(
    client: TestClient, served: dict[str, Any]
) -> None:
    created = new_key(client, "predict:double")
    assert predict(client, created["key"]).status_code == 200
    rotated = client.post(f"/api/v1/api-keys/{created['id']}/rotate", headers=ADMIN).json()
    assert_error_shape(predict(client, created["key"]), 401, "unauthorized")
    assert predict(client, rotated["key"]).status_code == 200
    client.delete(f"/api/v1/api-keys/{created['id']}", headers=ADMIN)
    assert_error_shape(predict(client, rotated["key"]), 401, "unauthorized")


def test_a_rotated_access_key_ends_the_old_one(client: TestClient, files: Path) -> None:
    r = client.post("/api/v1/deployments",
                    json={"name": "rot", "file": str(files / "files" / "double.py")},
                    headers=ADMIN)  # fmt: skip
    assert r.status_code == 201, r.text
    old = r.json()["access_key"]
    r = client.post("/api/v1/deployments/rot/access-key", headers=ADMIN)
    new = r.json()["access_key"]
    assert new != old
    assert_error_shape(predict(client, old, "rot"), 401, "unauthorized")
    assert predict(client, new, "rot").status_code in (200, 503)  # 503 while it starts
    client.delete("/api/v1/deployments/rot", headers=ADMIN)


# -- deployments with authentication off -------------------------------------------------------


def test_a_deployment_without_auth_carries_a_warning(
    client: TestClient, served: dict[str, Any], files: Path
) -> None:
    r = client.post(
        "/api/v1/deployments",
        json={"name": "open", "file": str(files / "files" / "double.py"), "auth_enabled": False},
        headers=ADMIN,
    )
    assert r.status_code == 201, r.text
    assert r.json()["warnings"] == [AUTH_DISABLED_WARNING]
    assert client.get("/api/v1/deployments/open", headers=ADMIN).json()["warnings"] == [
        AUTH_DISABLED_WARNING
    ]
    listed = {d["name"]: d for d in client.get("/api/v1/deployments", headers=ADMIN).json()}
    assert listed["open"]["warnings"] == [AUTH_DISABLED_WARNING]
    assert listed["double"]["warnings"] == [] and listed["batch"]["warnings"] == []
    client.delete("/api/v1/deployments/open", headers=ADMIN)


def test_a_cml_model_without_auth_carries_a_warning(client: TestClient) -> None:
    r = client.post(
        "/api/v2/projects/p/models",
        json={"project_id": "p", "name": "open-cml", "description": "",
              "disable_authentication": True},
        headers=ADMIN,
    )  # fmt: skip
    assert r.status_code == 201, r.text
    models = client.get("/api/v2/projects/p/models", headers=ADMIN).json()["models"]
    assert [m["warnings"] for m in models if m["name"] == "open-cml"] == [[AUTH_DISABLED_WARNING]]


# -- files of --file deployments ----------------------------------------------------------------


def test_files_outside_the_allowed_directories_are_refused(
    client: TestClient, files: Path, tmp_path: Path
) -> None:
    outside = tmp_path / "evil.py"
    outside.write_text(PREDICT_PY)
    link = files / "files" / "link.py"
    link.symlink_to(outside)
    (files / "files" / "sub").mkdir()
    before = client.get("/api/v1/deployments", headers=ADMIN).json()
    for path in (
        str(outside),
        f"{files}/files/../../{outside.relative_to(files.parent)}",  # traversal
        f"{files}/files/sub/../../{files.name}.py",
        str(link),  # a link that points outside
        "/etc/passwd",
    ):
        r = client.post("/api/v1/deployments", json={"name": "evil", "file": path}, headers=ADMIN)
        error = assert_error_shape(r, 422, "validation_failed")
        assert error["details"]["field"] == "file"
        assert "MODELDECK_ALLOWED_FILE_DIRS" in error["message"], path
    # the Cloudera-compatible build takes the same rule, before anything is stored
    r = client.post(
        "/api/v2/projects/p/models",
        json={"project_id": "p", "name": "evil-cml", "description": "",
              "auto_build_model": True, "auto_build_config": {"file_path": str(outside)}},
        headers=ADMIN,
    )  # fmt: skip
    assert_error_shape(r, 422, "validation_failed")
    assert client.get("/api/v1/deployments", headers=ADMIN).json() == before
    models = client.get("/api/v2/projects/p/models", headers=ADMIN).json()["models"]
    assert "evil-cml" not in [m["name"] for m in models]


def test_a_file_inside_the_allowed_directories_is_accepted_through_a_link(
    client: TestClient, files: Path
) -> None:
    inside = files / "files" / "alias.py"
    inside.symlink_to(files / "files" / "double.py")
    r = client.post("/api/v1/deployments",
                    json={"name": "inside", "file": str(inside), "kind": "endpoint"},
                    headers=ADMIN)  # fmt: skip
    assert r.status_code == 201, r.text
    assert r.json()["file_path"] == str(files / "files" / "double.py")
    client.delete("/api/v1/deployments/inside", headers=ADMIN)


def test_default_allowed_dirs_are_the_data_files_dir_and_the_working_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    settings = Settings(data_dir=tmp_path / "data")
    assert settings.resolved_allowed_file_dirs() == [tmp_path / "data" / "files", tmp_path]
    monkeypatch.setenv("MODELDECK_ALLOWED_FILE_DIRS", f"/srv/models:{tmp_path}/x")
    assert Settings().resolved_allowed_file_dirs() == [Path("/srv/models"), tmp_path / "x"]


# -- headers and cross-site requests -----------------------------------------------------------

EXPECTED = {
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "no-referrer",
}


def test_every_answer_carries_the_security_headers(
    client: TestClient, served: dict[str, Any]
) -> None:
    answers = {
        "health": client.get("/health"),
        "api": client.get("/api/v1/deployments", headers=ADMIN),
        "api 401": client.get("/api/v1/deployments"),
        "404": client.get("/no/such/route"),
        "metrics": client.get("/metrics"),
        "openapi": client.get("/openapi.json"),
        "predict": predict(client, served["access_key"]),
        "predict 401": predict(client, None),
        "model": client.post("/model", json={"accessKey": "x", "request": {}}),
        "dashboard": client.get("/"),
        "static": client.get("/dashboard/static/app.css"),
    }
    for what, r in answers.items():
        for name, value in EXPECTED.items():
            assert r.headers.get(name) == value, (what, name, dict(r.headers))
        csp = r.headers["content-security-policy"]
        assert "frame-ancestors 'none'" in csp, what
    assert answers["api"].headers["content-security-policy"].startswith("default-src 'none'")
    page_csp = answers["dashboard"].headers["content-security-policy"]
    assert "script-src 'self'" in page_csp and "unsafe-inline" not in page_csp.split("style")[0]


def test_cross_site_requests_cannot_change_state(
    mlflow_registry: Registered, tmp_path: Path
) -> None:
    settings = Settings(
        data_dir=tmp_path, mlflow_tracking_uri=mlflow_registry.tracking_uri, auth_enabled=False
    )
    with TestClient(create_app(settings), raise_server_exceptions=False) as c:
        evil = {"Origin": "https://evil.example"}
        r = c.post("/api/v1/deployments", json={"name": "x", "kind": "batch"}, headers=evil)
        error = assert_error_shape(r, 403, "forbidden")
        assert "evil.example" in error["message"]
        r = c.post("/api/v1/deployments", json={"name": "x", "kind": "batch"},
                   headers={"Sec-Fetch-Site": "cross-site"})  # fmt: skip
        assert_error_shape(r, 403, "forbidden")
        assert c.get("/api/v1/deployments", headers=evil).json() == []  # reading is no change
        own = {"Origin": "http://testserver"}
        r = c.post("/api/v1/deployments", json={"name": "x", "kind": "batch"}, headers=own)
        assert r.status_code == 201, r.text
        r = c.delete("/api/v1/deployments/x", headers={**evil, "Sec-Fetch-Site": "cross-site"})
        assert_error_shape(r, 403, "forbidden")
        assert c.post("/api/v1/deployments", json={"name": "y", "kind": "batch"}).status_code == 201
        assert [d["name"] for d in c.get("/api/v1/deployments").json()] == ["x", "y"]


def test_dashboard_routes_change_nothing(client: TestClient) -> None:
    """The dashboard's own routes only serve files; its actions go through /api/v1."""
    for path in ("/", "/dashboard/static/app.css", "/dashboard/vendor/plotly.min.js"):
        for method in ("POST", "PUT", "DELETE", "PATCH"):
            assert_error_shape(client.request(method, path), 405, "method_not_allowed")
