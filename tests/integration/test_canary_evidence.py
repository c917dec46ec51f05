"""Canary decisions on evidence that can be trusted, on a real platform on each store.

Four versions of one iris model, with the same signature and the same logged reference data
(the training rows with their true labels): v1 good (the stable one), v2 better, v3 worse, and
v4 confidently wrong (trained on labels shifted by one class: it is almost always wrong, and
sure of it). Traffic is the held-out rows, in a fixed order; where it is labelled, with the true
labels, so realised accuracy is each version's real one.

* The confidently wrong candidate is rolled back by the sanity floor before any traffic, and,
  with the floor off and no labels, on estimated accuracy from its *own* calibration (the
  stable version's would call it as good as the stable one).
* A labelled canary rolls the worse candidate back and promotes the better one on realised
  accuracy; a labelled shadow of the worse one decides on realised accuracy too (its copies
  are labelled through the stable predictions they copy).
* Each decision's stored reasons and evidence name the kind of evidence of both sides.

About a minute and a half per store: marked slow (make test-slow).
"""

from __future__ import annotations

import os
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx
import pytest

from tests.conftest import (
    BACKENDS,
    RunningPlatform,
    platform_on,
)
from tests.fixtures import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.slow]

NAME = "trusted"
BASE = {"max_drift": False, "max_error_rate": 0.05}


@dataclass
class Versions:
    tracking_uri: str
    rows: list[list[float]]  # held-out inputs, a fixed order
    labels: list[int]  # their true labels


@pytest.fixture(scope="module")
def versions(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Versions]:
    """``iris`` v1 good (C=0.05), v2 better (C=10), v3 worse (C=0.002), v4 confidently wrong,
    in an MLflow store of this module's own (global MLflow state put back afterwards)."""
    import mlflow

    root = tmp_path_factory.mktemp("mlflow-evidence")
    tracking_uri = f"sqlite:///{root / 'mlflow.db'}"
    saved_env = {k: os.environ.get(k) for k in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")}
    saved_uris = (mlflow.get_tracking_uri(), mlflow.get_registry_uri())
    try:
        yield _train(tracking_uri, (root / "artifacts").as_uri())
    finally:
        mlflow.set_tracking_uri(saved_uris[0])
        mlflow.set_registry_uri(saved_uris[1])
        for key, value in saved_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _train(tracking_uri: str, artifacts: str) -> Versions:
    import mlflow
    from mlflow.models import infer_signature
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import train_test_split

    from modeldeck.demo.train import EXPERIMENT, iris_frame, train_and_register

    for c in (0.05, 10.0, 0.002):  # v1, v2, v3: the demo's training and logged reference
        train_and_register(tracking_uri, artifacts, "iris", c_values=(c,), alias=None)
    X, y = iris_frame()
    X_train, X_test, y_train, y_test = train_test_split(
        X, y, test_size=0.3, random_state=42, stratify=y
    )
    shifted = LogisticRegression(C=10.0, max_iter=500).fit(X_train, (y_train + 1) % 3)
    experiment = mlflow.get_experiment_by_name(EXPERIMENT)  # its artifacts under ``artifacts``
    assert experiment is not None
    with mlflow.start_run(experiment_id=experiment.experiment_id, run_name="shifted-labels"):
        info = mlflow.sklearn.log_model(
            shifted,
            name="model",
            signature=infer_signature(X_train, shifted.predict(X_train)),
            input_example=X_train.head(3),
            pip_requirements=mlflow.sklearn.get_default_pip_requirements(include_skops=True),
        )
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "reference_data.parquet"
            X_train.assign(target=y_train.to_numpy()).to_parquet(path, index=False)
            mlflow.log_artifact(str(path))
    assert str(mlflow.register_model(info.model_uri, "iris").version) == "4"
    return Versions(tracking_uri, X_test.to_numpy().tolist(), y_test.tolist())


@pytest.fixture(scope="module", params=BACKENDS)
def platform(
    request: pytest.FixtureRequest,
    versions: Versions,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[RunningPlatform]:
    data_dir = tmp_path_factory.mktemp(f"evidence-{request.param}")
    with platform_on(
        request,
        request.param,
        data_dir,
        versions.tracking_uri,
        MODELDECK_CANARY_INTERVAL_SECONDS="0.5",
    ) as running:
        yield running


class Load:
    """Held-out rows sent in order from a thread (bounded in time and count); with
    ``labelled``, each answer gets its row's true label at once."""

    def __init__(
        self, platform: RunningPlatform, key: str, versions: Versions, *, labelled: bool
    ) -> None:
        self.platform = platform
        self.key = key
        self.data = versions
        self.labelled = labelled
        self.answered: Counter[str] = Counter()
        self.failures: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        url = f"{self.platform.url}/deployments/{NAME}/predict"
        deadline = time.monotonic() + 90
        control = self.platform.client()
        with httpx.Client(headers={"Authorization": f"Bearer {self.key}"}, timeout=30) as http:
            for i in range(2_000):
                if self._stop.is_set() or time.monotonic() > deadline:
                    return
                row = i % len(self.data.rows)
                try:
                    r = http.post(url, json={"inputs": [self.data.rows[row]]})
                except httpx.HTTPError as exc:
                    self.failures.append(f"{type(exc).__name__}: {exc}")
                    continue
                if r.status_code != 200:
                    self.failures.append(f"{r.status_code}: {r.text[:300]}")
                    continue
                self.answered[r.headers["x-modeldeck-version"]] += 1
                if self.labelled:
                    label = {"actual_result": self.data.labels[row]}
                    control.track_delayed_metrics(label, r.json()["uuid"], NAME)

    def __enter__(self) -> Load:
        self._thread.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop.set()
        self._thread.join(60)
        assert not self._thread.is_alive()


def _ended(client: Any) -> dict[str, Any] | None:
    view = client.canary_status(NAME)
    return None if view["active"] else view["decisions"][0]


def _run(
    platform: RunningPlatform,
    key: str,
    versions: Versions,
    candidate: str,
    policy: dict[str, Any],
    *,
    labelled: bool | None,
    mode: str = "canary",
) -> dict[str, Any]:
    """Start a canary of ``candidate``, send traffic (none when ``labelled`` is None) until it
    ends, and return its last decision."""
    client = platform.client()
    client.canary(NAME, version=candidate, percent=50, mode=mode, policy={**BASE, **policy})
    if labelled is None:
        decision = wait_for(lambda: _ended(client), timeout=120)
    else:
        with Load(platform, key, versions, labelled=labelled) as load:
            decision = wait_for(lambda: _ended(client), timeout=120)
        assert load.failures == []
    assert decision["candidate_version"] == candidate
    return decision  # type: ignore[no-any-return]


def test_decisions_need_evidence_of_the_same_kind(
    platform: RunningPlatform, versions: Versions
) -> None:
    client = platform.client()
    key = str(client.deploy(NAME, "iris", version=1)["access_key"])
    client.wait(NAME, timeout=120)
    client.reference_from_registry(NAME)  # the training rows, labelled: v1 scored on them

    # The confidently wrong candidate: rolled back by the floor, without any traffic.
    last = _run(platform, key, versions, "4", {"min_requests": 30}, labelled=None)
    assert last["decision"] == "rollback", last
    assert last["reasons"][0].startswith("accuracy on the labelled reference data "), last
    evidence = last["evidence"]
    assert evidence["candidate"]["reference"] < 0.1 < 0.9 < evidence["stable"]["reference"]
    assert evidence["candidate"]["requests"] == 0

    # Floor off, no labels: judged on its own estimate, never the stable version's.
    policy = {"min_requests": 30, "reference_margin": None}
    last = _run(platform, key, versions, "4", policy, labelled=False)
    assert last["decision"] == "rollback", last
    candidate, stable = last["evidence"]["candidate"], last["evidence"]["stable"]
    assert (candidate["performance_kind"], stable["performance_kind"]) == ("estimated",) * 2
    assert candidate["performance"] < 0.6 and stable["performance"] > 0.8
    assert any(
        r.startswith("estimated accuracy") and "against estimated" in r for r in last["reasons"]
    ), last

    # Labelled: the worse candidate is rolled back on realised accuracy (the floor passed it).
    last = _run(platform, key, versions, "3", {"min_requests": 45}, labelled=True)
    assert last["decision"] == "rollback", last
    _realised_on_both_sides(last)

    # A labelled shadow of the worse one decides on realised accuracy too: its copies get the
    # stable answers' labels.
    last = _run(platform, key, versions, "3", {"min_requests": 45}, labelled=True, mode="shadow")
    assert last["decision"] == "rollback", last
    assert last["mode"] == "shadow"
    _realised_on_both_sides(last)
    assert last["evidence"]["candidate"]["labelled"] > 0

    # Labelled: the better candidate is promoted on realised accuracy.
    last = _run(platform, key, versions, "2", {"min_requests": 45}, labelled=True)
    assert last["decision"] == "promote", last
    _realised_on_both_sides(last)
    assert any(r.startswith("accuracy on the labelled reference data") for r in last["reasons"])
    wait_for(lambda: client.deployment(NAME)["version"] == "2", timeout=120)
    client.delete(NAME)


def _realised_on_both_sides(decision: dict[str, Any]) -> None:
    candidate, stable = decision["evidence"]["candidate"], decision["evidence"]["stable"]
    assert (candidate["performance_kind"], stable["performance_kind"]) == ("realised",) * 2
    assert any(
        r.startswith("realised accuracy") and "against realised" in r for r in decision["reasons"]
    ), decision
