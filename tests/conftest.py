"""Shared fixtures: stores on both backends, a real MLflow registry, a real running platform.

PostgreSQL runs when ``MODELDECK_TEST_POSTGRES_URL`` is set (``.ci/run`` sets it). In CI
(``CI`` set) a missing URL or an unreachable server fails the run instead of skipping.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest
from sqlalchemy.engine import make_url

from modeldeck.client import Client
from modeldeck.config import Settings
from modeldeck.platform import stop_left_running

POSTGRES_ENV = "MODELDECK_TEST_POSTGRES_URL"
BACKENDS = ["sqlite", "postgres"]


def _postgres_base_url() -> str | None:
    url = os.environ.get(POSTGRES_ENV)
    if not url:
        if os.environ.get("CI"):
            pytest.fail(f"{POSTGRES_ENV} is not set: CI requires PostgreSQL", pytrace=False)
        pytest.skip(f"{POSTGRES_ENV} is not set (PostgreSQL tests run in CI)")
    return url


@pytest.fixture(scope="session", autouse=True)
def no_replica_left_behind(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Replicas outlive the platforms that start them (the default settings). Each test stops
    what it started; should a teardown fail, this stops, at the end of the session, every
    process still running with a data directory of this session's (so that a failed test
    cannot leave replicas running on the machine)."""
    yield
    base = str(tmp_path_factory.getbasetemp())
    me = os.getpid()
    left = []
    for process in psutil.process_iter(["pid"]):
        if process.pid == me:
            continue
        try:
            if process.environ().get("MODELDECK_DATA_DIR", "").startswith(base):
                left.append(process)
        except psutil.Error:
            continue
    for process in left:
        with contextlib.suppress(psutil.Error):
            process.kill()
    psutil.wait_procs(left, timeout=10)


@pytest.fixture(scope="session")
def postgres_admin() -> Iterator[str]:
    """The base PostgreSQL URL, checked reachable once."""
    url = _postgres_base_url()
    assert url is not None
    import psycopg

    plain = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    try:
        with psycopg.connect(plain, connect_timeout=5):
            pass
    except psycopg.OperationalError as exc:
        pytest.fail(f"PostgreSQL at {POSTGRES_ENV} is unreachable: {exc}", pytrace=False)
    yield url


def new_postgres_database(base_url: str) -> tuple[str, str]:
    """A fresh database on the test server; returns (sqlalchemy url, database name)."""
    import psycopg

    name = f"modeldeck_t_{secrets.token_hex(6)}"
    plain = make_url(base_url).set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(plain, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return make_url(base_url).set(database=name).render_as_string(hide_password=False), name


def drop_postgres_database(base_url: str, name: str) -> None:
    import psycopg

    plain = make_url(base_url).set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(plain, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=BACKENDS)
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty store URL on each backend."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'store' / 'modeldeck.db'}"
        return
    base = request.getfixturevalue("postgres_admin")
    url, name = new_postgres_database(base)
    try:
        yield url
    finally:
        drop_postgres_database(base, name)


# -- MLflow -----------------------------------------------------------------------------------


@dataclass
class Registered:
    tracking_uri: str
    root: Path
    model: str = "iris"
    versions: list[str] = field(default_factory=list)
    broken_model: str = "broken"


@pytest.fixture(scope="session")
def mlflow_registry(tmp_path_factory: pytest.TempPathFactory) -> Registered:
    """A real MLflow store: ``iris`` v1 (alias champion) and v2, and a model that cannot load."""
    from modeldeck.demo.train import train_and_register

    root = tmp_path_factory.mktemp("mlflow")
    tracking_uri = f"sqlite:///{root / 'mlflow.db'}"
    artifacts = (root / "artifacts").as_uri()
    reg = Registered(tracking_uri=tracking_uri, root=root)
    v1 = train_and_register(tracking_uri, artifacts, "iris", c_values=(0.05,), alias="champion")
    v2 = train_and_register(tracking_uri, artifacts, "iris", c_values=(10.0,), alias=None)
    reg.versions = [v1.version, v2.version]
    _register_broken_model(tracking_uri, artifacts, reg.broken_model)
    return reg


def _register_broken_model(tracking_uri: str, artifacts: str, name: str) -> None:
    import mlflow
    import mlflow.pyfunc

    mlflow.set_tracking_uri(tracking_uri)
    mlflow.set_registry_uri(tracking_uri)
    # An experiment of its own: the default one would put artifacts under ./mlruns.
    experiment = mlflow.create_experiment("broken", artifact_location=f"{artifacts}/broken")
    with mlflow.start_run(experiment_id=experiment):
        info = mlflow.pyfunc.log_model(
            name="model",
            python_model=str(Path(__file__).parent / "models" / "broken_model.py"),
            pip_requirements=["mlflow"],  # not inferred: inference would import the model
        )
    mlflow.register_model(info.model_uri, name)


@pytest.fixture
def champion(mlflow_registry: Registered) -> Iterator[Any]:
    """The registry's client; ``iris@champion`` is back on version 1 afterwards."""
    from mlflow import MlflowClient

    uri = mlflow_registry.tracking_uri
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    first = mlflow_registry.versions[0]
    assert str(client.get_registered_model("iris").aliases["champion"]) == first
    try:
        yield client
    finally:
        client.set_registered_model_alias("iris", "champion", first)


# -- a real platform --------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class RunningPlatform:
    url: str
    api_key: str
    env: dict[str, str]
    data_dir: Path
    proc: subprocess.Popen[bytes] | None = None
    log_path: Path | None = None

    def client(self) -> Client:
        return Client(self.url, self.api_key)

    def start(self, timeout: float = 60.0) -> None:
        assert self.log_path is not None
        log = open(self.log_path, "ab")  # noqa: SIM115 - kept open for the child's lifetime
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "modeldeck.cli.main", "server"],
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"platform exited: {self.log_path.read_text()[-3000:]}")
            try:
                if httpx.get(self.url + "/health", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"platform did not start: {self.log_path.read_text()[-3000:]}")

    def stop(self, sig: int = signal.SIGTERM, *, keep_replicas: bool = False) -> None:
        """Stop the platform; its replicas outlive it (the default settings) and are stopped
        too unless ``keep_replicas`` (for a test of what a restart adopts)."""
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if not keep_replicas:
            self.stop_replicas()

    def stop_replicas(self) -> int:
        """What ``modeldeck server --stop-all`` does: stop every replica left running."""
        settings = Settings(data_dir=self.data_dir, store_url=self.env["MODELDECK_STORE_URL"])
        return stop_left_running(settings)

    def logs(self) -> str:
        return self.log_path.read_text() if self.log_path else ""


def start_platform(
    data_dir: Path, store_url: str, tracking_uri: str, **extra_env: str
) -> RunningPlatform:
    port = free_port()
    api_key = "mdk_test_" + secrets.token_hex(8)
    env = {
        **os.environ,
        "MODELDECK_DATA_DIR": str(data_dir),
        "MODELDECK_STORE_URL": store_url,
        "MLFLOW_TRACKING_URI": tracking_uri,
        "MODELDECK_API_KEY": api_key,
        "MODELDECK_PORT": str(port),
        "MODELDECK_LOG_LEVEL": "info",
        "MODELDECK_HEALTH_INTERVAL_SECONDS": "0.25",
        # Tests deploy --file models written under their tmp_path.
        "MODELDECK_ALLOWED_FILE_DIRS": tempfile.gettempdir(),
        **extra_env,
    }
    data_dir.mkdir(parents=True, exist_ok=True)
    platform = RunningPlatform(
        url=f"http://127.0.0.1:{port}",
        api_key=api_key,
        env=env,
        data_dir=data_dir,
        log_path=data_dir / "platform.log",
    )
    platform.start()
    return platform


@contextlib.contextmanager
def platform_on(
    request: pytest.FixtureRequest,
    backend: str,
    data_dir: Path,
    tracking_uri: str,
    **extra_env: str,
) -> Iterator[RunningPlatform]:
    """A real ``modeldeck server`` process on ``backend`` (``sqlite``, or a throwaway
    PostgreSQL database), stopped with its replicas afterwards; ``extra_env``: settings."""
    pg: tuple[str, str] | None = None
    if backend == "sqlite":
        url = f"sqlite:///{data_dir / 'modeldeck.db'}"
    else:
        pg = new_postgres_database(request.getfixturevalue("postgres_admin"))
        url = pg[0]
    running = start_platform(data_dir, url, tracking_uri, **extra_env)
    try:
        yield running
    finally:
        running.stop()
        if pg:
            drop_postgres_database(request.getfixturevalue("postgres_admin"), pg[1])


@pytest.fixture(scope="module", params=BACKENDS)
def platform(
    request: pytest.FixtureRequest,
    mlflow_registry: Registered,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[RunningPlatform]:
    """A real ``modeldeck server`` process on each backend, shared by a test module."""
    data_dir = tmp_path_factory.mktemp(f"platform-{request.param}")
    with platform_on(request, request.param, data_dir, mlflow_registry.tracking_uri) as running:
        yield running
