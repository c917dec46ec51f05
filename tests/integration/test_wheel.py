"""The package as people install it: a wheel built from this tree, installed with pip into a
fresh virtual environment, runs ``modeldeck server`` with its dashboard, migrations and
compatibility modules; the dashboard signs in in Chromium and a registered model predicts.

Nothing here imports the tree under test: the server runs from the new environment, in a folder
of its own, with no ``PYTHONPATH``.
"""

from __future__ import annotations

import os
import secrets
import sqlite3
import subprocess
import sys
import venv
import zipfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import expect, sync_playwright

from modeldeck.client import Client
from tests.conftest import Registered, free_port
from tests.fixtures import wait_for
from tests.ui.test_browser import chromium_path

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(900)]

ROOT = Path(__file__).resolve().parents[2]


def _run(*args: str | Path, cwd: Path | None = None, timeout: float = 900) -> str:
    done = subprocess.run(
        [str(a) for a in args], cwd=cwd, capture_output=True, text=True, timeout=timeout
    )
    assert done.returncode == 0, f"{args} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done.stdout


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    _run(sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", out, ROOT)
    (built,) = out.glob("modeldeck-*.whl")
    return built


@pytest.fixture(scope="module")
def installed(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh virtual environment with the wheel and what it requires, from the package index
    (pip's cache makes a second run quick)."""
    env_dir = tmp_path_factory.mktemp("venv")
    venv.create(env_dir, with_pip=True, clear=True)
    python = env_dir / "bin" / "python"
    _run(python, "-m", "pip", "install", "--quiet", "--upgrade", "pip")
    _run(python, "-m", "pip", "install", "--quiet", wheel)
    return env_dir


def test_the_wheel_holds_every_file_of_the_package(wheel: Path) -> None:
    """Every file of ``src/modeldeck`` that git tracks is in the wheel (package data complete):
    migrations and their template, the dashboard's static files, the compatibility shims."""
    tracked = _run("git", "ls-files", "src/modeldeck", cwd=ROOT).split()
    wanted = {path.removeprefix("src/") for path in tracked}
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
    assert sorted(wanted - names) == []
    assert any(n.startswith("modeldeck/store/migrations/versions/") for n in names)
    assert "modeldeck/ui/pages/index.html" in names


@pytest.fixture(scope="module")
def server(
    installed: Path, mlflow_registry: Registered, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, str, Path]]:
    home = tmp_path_factory.mktemp("installed-platform")
    data_dir = home / "data"
    port = free_port()
    api_key = "mdk_wheel_" + secrets.token_hex(8)
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("MODELDECK_", "PYTHON", "VIRTUAL_ENV"))
    }
    env.update(
        {
            "PATH": f"{installed / 'bin'}:{env.get('PATH', '')}",
            "MODELDECK_DATA_DIR": str(data_dir),
            "MODELDECK_PORT": str(port),
            "MODELDECK_API_KEY": api_key,
            "MLFLOW_TRACKING_URI": mlflow_registry.tracking_uri,
            "MODELDECK_HEALTH_INTERVAL_SECONDS": "0.25",
        }
    )
    url = f"http://127.0.0.1:{port}"
    log_path = home / "server.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [str(installed / "bin" / "modeldeck"), "server"],
            cwd=home,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )

    def up() -> bool:
        assert proc.poll() is None, log_path.read_text()[-3000:]
        try:
            return httpx.get(f"{url}/health", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    try:
        wait_for(up, timeout=120)
        yield url, api_key, data_dir
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        subprocess.run(
            [str(installed / "bin" / "modeldeck"), "server", "--stop-all"],
            env=env,
            cwd=home,
            capture_output=True,
            timeout=60,
        )


def test_the_installed_server_runs_from_the_new_environment(
    server: tuple[str, str, Path], installed: Path
) -> None:
    url, api_key, data_dir = server
    # The package the new environment runs is its own, not this tree's.
    where = _run(
        installed / "bin" / "python",
        "-c",
        "import modeldeck, modeldeck.compat, modeldeck.store.migrations; print(modeldeck.__file__)",
        cwd=data_dir,
    )
    assert where.strip().startswith(str(installed))
    auth = {"Authorization": f"Bearer {api_key}"}
    assert httpx.get(f"{url}/api/v1/deployments", headers=auth, timeout=10).status_code == 200
    # The migrations ran: the store is at the newest revision the package ships.
    versions = installed.glob("lib/python*/site-packages/modeldeck/store/migrations/versions/*.py")
    revisions = {p.name.split("_")[0] for p in versions if p.name[0].isdigit()}
    with sqlite3.connect(data_dir / "modeldeck.db") as db:
        (current,) = db.execute("SELECT version_num FROM alembic_version").fetchone()
    assert current.split("_")[0] == max(revisions)
    index = httpx.get(f"{url}/", timeout=10)
    assert index.status_code == 200 and "text/html" in index.headers["content-type"]
    for asset in ("/dashboard/static/app.css", "/docs"):
        assert httpx.get(f"{url}{asset}", timeout=10).status_code == 200, asset


def test_sign_in_to_the_dashboard_deploy_and_predict(server: tuple[str, str, Path]) -> None:
    url, api_key, _ = server
    with Client(url, api_key) as client:
        created = client.deploy("wheel", "iris", version=1, replicas=1)
        client.wait("wheel", timeout=180)
    r = httpx.post(
        f"{url}/deployments/wheel/predict",
        json={"inputs": [[5.1, 3.5, 1.4, 0.2]]},
        headers={"Authorization": f"Bearer {created['access_key']}"},
        timeout=30,
    )
    assert r.status_code == 200, r.text
    assert r.json()["prediction"] == [0] and r.json()["uuid"]

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium_path(), args=["--no-sandbox"])
        try:
            page = browser.new_page()
            page.set_default_timeout(60_000)
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            page.goto(url + "/")
            expect(page.locator("body[data-view=login][data-state=ready]")).to_be_attached()
            page.get_by_label("API key").fill(api_key)
            page.get_by_role("button", name="Sign in").click()
            expect(page.locator("body[data-view=deployments][data-state=ready]")).to_be_attached()
            expect(page.locator("#deployments tbody tr", has_text="wheel")).to_contain_text(
                "deployed"
            )
            assert errors == []
        finally:
            browser.close()
