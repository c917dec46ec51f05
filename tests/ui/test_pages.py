"""The dashboard's files as the platform serves them (in process): the page, its scripts,
Plotly.js from the installed package, security headers, and nothing outside its folder."""

from __future__ import annotations

import gzip
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
    files = sorted(p for p in STATIC.rglob("*") if p.is_file() and p.name != "index.html")
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


def test_plotly_comes_from_the_installed_package(client: TestClient) -> None:
    import plotly

    shipped = (Path(plotly.__file__).parent / "package_data" / "plotly.min.js").read_bytes()
    r = client.get("/dashboard/vendor/plotly.min.js", headers={"Accept-Encoding": "gzip"})
    assert r.status_code == 200
    assert r.content == shipped  # httpx undoes the gzip
    assert r.headers["content-encoding"] == "gzip"
    assert "max-age" in r.headers["cache-control"]
    raw = client.get("/dashboard/vendor/plotly.min.js", headers={"Accept-Encoding": "identity"})
    assert raw.content == shipped and "content-encoding" not in raw.headers
    assert gzip.decompress(gzip.compress(shipped)) == shipped


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
