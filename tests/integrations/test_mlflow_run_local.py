"""``mlflow deployments run-local -t modeldeck``: a platform in the CLI's process serves the
model until Ctrl-C, and its replicas stop with it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psutil
import pytest

from tests.conftest import Registered, free_port

# make test-slow: each test starts, kills or restarts real platform processes.
pytestmark = [pytest.mark.integration, pytest.mark.slow]

MLFLOW = Path(sys.executable).parent / "mlflow"


def processes_of(data_dir: Path) -> list[psutil.Process]:
    """Processes whose command line names ``data_dir`` (the replicas' configuration does)."""
    found = []
    for proc in psutil.process_iter(["cmdline"]):
        if str(data_dir) in " ".join(proc.info["cmdline"] or ()):
            found.append(proc)
    return found


def test_run_local_serves_until_interrupted(mlflow_registry: Registered, tmp_path: Path) -> None:
    port = free_port()
    data_dir = tmp_path / "local"
    env = {
        **os.environ,
        "MLFLOW_TRACKING_URI": mlflow_registry.tracking_uri,
        "MODELDECK_HEALTH_INTERVAL_SECONDS": "0.25",
    }
    log = tmp_path / "run-local.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [str(MLFLOW), "deployments", "run-local", "-t", "modeldeck", "--name", "local-iris",
             "-m", "models:/iris@champion", "-C", f"port={port}", "-C", f"data_dir={data_dir}"],
            env=env, stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        deadline = time.monotonic() + 180
        key = None
        while key is None:
            assert proc.poll() is None, log.read_text()[-3000:]
            assert time.monotonic() < deadline, log.read_text()[-3000:]
            for line in log.read_text().splitlines():
                if line.strip().startswith("access key"):
                    key = line.split()[-1]
            time.sleep(0.2)
        r = httpx.post(
            f"http://127.0.0.1:{port}/deployments/local-iris/predict",
            json={"inputs": [[5.1, 3.5, 1.4, 0.2]]},
            headers={"Authorization": f"Bearer {key}"},
            timeout=30,
        )
        assert r.status_code == 200, r.text
        assert r.headers["x-modeldeck-version"] == mlflow_registry.versions[0]
        assert processes_of(data_dir)  # its replica runs
        proc.send_signal(signal.SIGINT)
        assert proc.wait(60) == 0, log.read_text()[-3000:]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    deadline = time.monotonic() + 30
    while processes_of(data_dir):
        assert time.monotonic() < deadline, "a replica outlived run-local"
        time.sleep(0.2)
