"""The dashboard's files as the platform serves them (in process): the page, its scripts,
Plotly.js from the installed package, security headers, and nothing outside its folder."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from modeldeck.api.app import create_app
from modeldeck.config import Settings
from modeldeck.ui.routes import STATIC
from tests.conftest import Registered


@pytest.fixture(scope="module")
def client(
    mlflow_registry: Registered, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[TestClient]:
    settings = Settings(
        data_dir=tmp_path_factory.mktemp("pages"),
        mlflow_tracking_uri=mlflow_registry.tracking_uri,
        api_key="mdk_pages_test",
    )
    with TestClient(create_app(settings)) as c:
        yield c


def test_the_page_needs_no_key_and_fetches_nothing_from_elsewhere(client: TestClient) -> None:
    r = client.get("/")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/html")
    csp = r.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "connect-src 'self'" in csp
    assert r.headers["x-content-type-options"] == "nosniff"
    assert 'data-auth-required="true"' in r.text
    assert not re.search(r"(src|href)=\"(https?:)?//", r.text)  # no other host


def test_every_script_and_stylesheet_is_served(client: TestClient) -> None:
    files = sorted(p for p in STATIC.rglob("*") if p.is_file())
    assert sum(p.suffix == ".js" for p in files) >= 10
    for path in files:
        r = client.get(f"/dashboard/static/{path.relative_to(STATIC).as_posix()}")
        assert r.status_code == 200, path
        assert r.content == path.read_bytes()
        if path.suffix == ".js":
            assert r.headers["content-type"].startswith("text/javascript")
            # Modules import siblings only: nothing from a CDN.
            imports = re.findall(r'^import .* from "([^"]+)";$', path.read_text(), re.MULTILINE)
            for target in imports:
                assert target.startswith("."), (path, target)


def test_plotly_is_the_vendored_basic_bundle(client: TestClient) -> None:
    from modeldeck.ui.routes import PLOTLY_JS

    shipped = PLOTLY_JS.read_bytes()
    assert b"plotly.js (basic - minified)" in shipped[:200]
    assert (PLOTLY_JS.parent / "LICENSE-plotly.js.txt").is_file()
    url = "/dashboard/vendor/plotly.min.js"
    r = client.get(url, headers={"Accept-Encoding": "gzip"})
    assert r.status_code == 200
    assert r.content == shipped  # httpx undoes the gzip
    assert r.headers["content-encoding"] == "gzip"
    assert "max-age" in r.headers["cache-control"]
    raw = client.get(url, headers={"Accept-Encoding": "identity"})
    assert raw.content == shipped and "content-encoding" not in raw.headers


def test_an_unchanged_file_is_not_sent_again(client: TestClient) -> None:
    first = client.get("/dashboard/static/js/ui.js")
    assert first.status_code == 200 and first.headers["cache-control"] == "no-cache"
    again = client.get(
        "/dashboard/static/js/ui.js", headers={"If-None-Match": first.headers["etag"]}
    )
    assert again.status_code == 304 and again.content == b""


@pytest.mark.parametrize(
    "path",
    [
        "/dashboard/static/../routes.py",
        "/dashboard/static/%2e%2e/routes.py",
        "/dashboard/static/js/nothing.js",
        "/dashboard/static/index.html",
        "/dashboard/static/",
    ],
)
def test_nothing_else_is_served(client: TestClient, path: str) -> None:
    r = client.get(path)
    assert r.status_code == 404
    assert set(r.json()) == {"error"}


def test_the_page_says_when_authentication_is_off(
    mlflow_registry: Registered, tmp_path: Path
) -> None:
    settings = Settings(
        data_dir=tmp_path, mlflow_tracking_uri=mlflow_registry.tracking_uri, auth_enabled=False
    )
    with TestClient(create_app(settings)) as c:
        assert 'data-auth-required="false"' in c.get("/").text


# -- the API's documentation and the serving box ------------------------------------------------


@pytest.mark.parametrize(("page", "assets"), [
    ("/docs", ["swagger-ui.css", "swagger-ui-bundle.js", "swagger-init.js"]),
    ("/redoc", ["redoc.standalone.js"]),
])  # fmt: skip
def test_swagger_ui_and_redoc_are_served_from_packaged_files(
    client: TestClient, page: str, assets: list[str]
) -> None:
    r = client.get(page)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    assert not re.search(r"(src|href)=\"(https?:)?//", r.text)  # no other host
    assert "<script>" not in r.text  # no inline script: the CSP allows none
    csp = r.headers["content-security-policy"]
    assert "script-src 'self';" in csp and "connect-src 'self'" in csp
    referenced = re.findall(r'(?:src|href)="/docs/assets/([^"]+)"', r.text)
    assert sorted(referenced) == sorted(assets)
    for name in referenced:
        asset = client.get(f"/docs/assets/{name}")
        assert asset.status_code == 200, name
        assert len(asset.content) > 100 or name == "swagger-init.js"
        assert b"cdn.redoc.ly" not in asset.content  # ReDoc's logo is the platform's
    assert client.get("/openapi.json").status_code == 200


def test_docs_assets_serve_nothing_else(client: TestClient) -> None:
    for name in ("core.py", "..%2F__init__.py", "favicon.png", "docs.html"):
        r = client.get(f"/docs/assets/{name}")
        assert r.status_code == 404, name
        assert r.json()["error"]["code"] == "not_found"


def test_the_api_base_url_answers_without_a_key_and_links_the_docs(client: TestClient) -> None:
    r = client.get("/api/v1")
    assert r.status_code == 200, r.text
    index = r.json()
    assert index["name"] == "modeldeck"
    for link in ("openapi", "docs", "redoc", "dashboard"):
        path = index[link].removeprefix("http://testserver")
        assert client.get(path).status_code == 200, link


def test_every_url_in_the_serving_box_answers_and_it_names_the_sign_in_key(
    client: TestClient,
) -> None:
    from rich.console import Console

    from modeldeck.demo.run import serving_box

    settings = Settings(data_dir=Path("/nonexistent"))
    for api_key, said in (
        ("mdk_created_now", "sign in with mdk_created_now (the API key created above)"),
        (None, "sign in with the API key printed at the first start (MODELDECK_API_KEY)"),
    ):
        console = Console(record=True, width=120)
        console.print(serving_box(settings, "acc_key_123", api_key))
        text = console.export_text()
        assert said in text
        assert "not the access key" in text
    base = settings.resolved_public_url()
    urls = re.findall(re.escape(base) + r"[^\s),]*", text)
    assert {f"{base}/api/v1", f"{base}/docs", f"{base}/redoc", f"{base}/"} <= set(urls)
    for url in urls:
        path = url.removeprefix(base) or "/"
        if path.endswith("/predict"):
            continue  # the model endpoint: POST with the access key (test_demo calls it)
        assert client.get(path).status_code == 200, url


def test_a_missing_api_key_says_to_set_modeldeck_api_key(client: TestClient) -> None:
    r = client.get("/api/v1/deployments")
    assert r.status_code == 401
    assert "set MODELDECK_API_KEY" in r.json()["error"]["message"]
