"""What the lab's numbered scripts share: settings, the lab directory and its state file.

Connection settings come from the environment:

* ``MODELDECK_URL`` and ``MODELDECK_API_KEY``: the platform and a control-plane API key (read by
  ``modeldeck.Client()`` and ``modeldeck.metrics`` themselves);
* ``MLFLOW_TRACKING_URI``: the MLflow tracking and registry store the platform reads too;
* ``LAB_DIR`` (default ``.modeldeck/lab``): where the steps leave what the next ones need:
  ``state.json`` (run ids, the model version, the deployment's access key, time windows), the
  hold-out set and the reports;
* ``LAB_MODEL`` (default ``iris_classifier``) and ``LAB_DEPLOYMENT`` (default ``iris``): the
  registered model's and the deployment's names.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from modeldeck import Client

MODEL = os.environ.get("LAB_MODEL", "iris_classifier")
DEPLOYMENT = os.environ.get("LAB_DEPLOYMENT", "iris")
EXPERIMENT = os.environ.get("LAB_EXPERIMENT", "iris-lab")
FEATURES = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
LABEL = "actual_result"
"""The delayed-metric key of the ground truth: the one drift and performance read by default."""


def lab_dir() -> Path:
    path = Path(os.environ.get("LAB_DIR", ".modeldeck/lab")).resolve()
    path.mkdir(parents=True, exist_ok=True)
    return path


def state_path() -> Path:
    return lab_dir() / "state.json"


def load_state(*needed: str) -> dict[str, Any]:
    """The state left by earlier steps; exits with a hint when a needed key is missing."""
    path = state_path()
    state: dict[str, Any] = json.loads(path.read_text()) if path.exists() else {}
    missing = [key for key in needed if key not in state]
    if missing:
        sys.exit(f"{path} has no {', '.join(missing)}: run the earlier steps first")
    return state


def save_state(**updates: Any) -> dict[str, Any]:
    """Merge ``updates`` into the state file (kept private: it holds an access key)."""
    state = load_state()
    state.update(updates)
    path = state_path()
    path.write_text(json.dumps(state, indent=2) + "\n")
    path.chmod(0o600)
    return state


def tracking_uri() -> str:
    uri = os.environ.get("MLFLOW_TRACKING_URI")
    if not uri:
        sys.exit(
            "set MLFLOW_TRACKING_URI to the MLflow store the platform reads, "
            "e.g. sqlite:///$PWD/.modeldeck/lab/mlflow.db"
        )
    return uri


def artifact_location(uri: str) -> str | None:
    """For a local SQLite tracking store, artifacts beside it (as the platform's own default);
    for a tracking server, None: the server decides."""
    if not uri.startswith("sqlite:///"):
        return None
    return (Path(uri.removeprefix("sqlite:///")).resolve().parent / "mlartifacts").as_uri()


def client(timeout: float = 60.0) -> Client:
    """A client for ``MODELDECK_URL``, once the platform answers its health check."""
    platform = Client()
    deadline = time.monotonic() + timeout
    while True:
        try:
            if httpx.get(f"{platform.url}/health", timeout=2).status_code == 200:
                return platform
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            platform.close()
            sys.exit(f"modeldeck does not answer at {platform.url}: is `modeldeck server` running?")
        time.sleep(0.5)


def now_ms() -> int:
    return int(time.time() * 1000)


def heading(text: str) -> None:
    print(f"\n== {text}")
