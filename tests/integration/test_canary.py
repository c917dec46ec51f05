"""Canaries on a real platform: under a bounded loop of labelled traffic, a worse candidate is
rolled back by the policy, a shadow answers nothing but is recorded, and a better candidate is
promoted (the deployment's alias moves in MLflow and the deployment serves it).

Ground truth goes through the delayed-metrics API right after each answer: correct labels for
one version's predictions, flipped ones for the other's, so "worse" and "better" are the
policy's realised accuracy. The policy runs every 0.5 s (``MODELDECK_CANARY_INTERVAL_SECONDS``).
Real replicas take about 10 s to load, so this runs on SQLite only; the decision function is
unit-tested per reason in tests/deployments/test_canary_policy.py. Last, the platform is killed
(SIGKILL) while a canary runs, and the restart resumes it.
"""

from __future__ import annotations

import signal
import threading
import time
from collections import Counter
from collections.abc import Iterator
from types import TracebackType
from typing import Any

import httpx
import pytest
from click.testing import CliRunner

from modeldeck.cli.main import main
from tests.conftest import Registered, RunningPlatform, start_platform
from tests.integration.test_deployments import ROW, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.slow]  # make test-slow (about 70 s)

NAME = "canary"
POLICY = {"min_requests": 15, "max_error_rate": 0.05, "performance_margin": 0.2}


@pytest.fixture(scope="module")
def platform(
    mlflow_registry: Registered, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningPlatform]:
    data_dir = tmp_path_factory.mktemp("canary")
    running = start_platform(
        data_dir,
        f"sqlite:///{data_dir / 'modeldeck.db'}",
        mlflow_registry.tracking_uri,
        MODELDECK_CANARY_INTERVAL_SECONDS="0.5",
    )
    try:
        yield running
    finally:
        running.stop()


class LabelledLoad:
    """Predict requests from a thread, each answer labelled at once: correctly for versions in
    ``right``, flipped for the others. Bounded by ``seconds`` and ``max_requests``."""

    def __init__(
        self,
        platform: RunningPlatform,
        key: str,
        right: set[str],
        seconds: float = 120,
        max_requests: int = 5_000,
    ) -> None:
        self.platform = platform
        self.key = key
        self.right = right
        self.seconds = seconds
        self.max_requests = max_requests
        self.versions: Counter[str] = Counter()
        self.failures: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        url = f"{self.platform.url}/deployments/{NAME}/predict"
        deadline = time.monotonic() + self.seconds
        control = self.platform.client()
        with httpx.Client(headers={"Authorization": f"Bearer {self.key}"}, timeout=30) as http:
            for _ in range(self.max_requests):
                if self._stop.is_set() or time.monotonic() > deadline:
                    return
                try:
                    r = http.post(url, json={"inputs": [ROW]})
                except httpx.HTTPError as exc:
                    self.failures.append(f"{type(exc).__name__}: {exc}")
                    continue
                if r.status_code != 200:
                    self.failures.append(f"{r.status_code}: {r.text[:300]}")
                    continue
                version = r.headers["x-modeldeck-version"]
                self.versions[version] += 1
                body = r.json()
                predicted = int(body["prediction"][0])
                label = predicted if version in self.right else (predicted + 1) % 3
                control.track_delayed_metrics({"actual_result": label}, body["uuid"], NAME)
                time.sleep(0.01)

    def __enter__(self) -> LabelledLoad:
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


def cli(platform: RunningPlatform, *args: str) -> str:
    result = CliRunner().invoke(
        main, ["--url", platform.url, "--api-key", platform.api_key, *args], catch_exceptions=False
    )
    assert result.exit_code == 0, result.output
    return result.output


def ended(client: Any) -> dict[str, Any] | None:
    view = client.canary_status(NAME)
    return None if view["active"] else view


def test_canary_rollback_shadow_and_promotion(platform: RunningPlatform, champion: Any) -> None:
    client = platform.client()
    created = client.deploy(NAME, "iris", alias="champion")
    key = str(created["access_key"])
    client.wait(NAME, timeout=120)
    started = int(time.time() * 1000)

    # A worse candidate: its predictions get flipped labels. The policy rolls it back.
    view = client.canary(NAME, version=2, percent=50, policy=POLICY)
    assert (view["active"], view["stable_version"], view["candidate_version"]) == (True, "1", "2")
    with LabelledLoad(platform, key, right={"1"}) as load:
        view = wait_for(lambda: ended(client), timeout=120)
    assert load.failures == []
    assert load.versions["1"] > 0 and load.versions["2"] >= POLICY["min_requests"]
    last = view["decisions"][0]
    assert last["decision"] == "rollback", view["decisions"]
    assert any("realised accuracy" in r for r in last["reasons"]), last
    assert [d["decision"] for d in view["decisions"]][-1] == "started"
    assert client.deployment(NAME)["version"] == "1"
    assert str(champion.get_registered_model("iris").aliases["champion"]) == "1"

    # Per version: technical metrics and prediction records are separate.
    end = int(time.time() * 1000)
    both = client.technical_metrics(NAME, start_ms=started, end_ms=end)["totals"]["requests"]
    per = {
        v: client.technical_metrics(NAME, start_ms=started, end_ms=end, version=v)["totals"]
        for v in ("1", "2")
    }
    assert per["1"]["requests"] >= load.versions["1"]
    assert per["2"]["requests"] == load.versions["2"]
    assert per["1"]["requests"] + per["2"]["requests"] == both
    records = {
        v: client.read_metrics(NAME, start_ms=started, model_version=v)["metrics"]
        for v in ("1", "2")
    }
    assert len(records["2"]) == load.versions["2"]
    assert {r["modelVersion"] for r in records["1"]} == {"1"}
    assert {r["modelVersion"] for r in records["2"]} == {"2"}

    out = cli(platform, "deployments", "canary-status", NAME)
    assert "no canary running" in out and "rollback" in out

    # A shadow (from the CLI): every answer is the stable version's; the candidate's copies are
    # recorded.
    shadow_start = int(time.time() * 1000)
    out = cli(
        platform, "deployments", "canary", NAME, "--version", "2", "--shadow",
        "--min-requests", "10000",
    )  # fmt: skip
    assert "version 2 (starting) gets a copy (shadow) beside version 1" in out
    wait_for(lambda: client.canary_status(NAME)["candidate_ready"], timeout=120)
    with LabelledLoad(platform, key, right={"1", "2"}, max_requests=40) as load:
        wait_for(lambda: sum(load.versions.values()) + len(load.failures) >= 40, timeout=60)
    assert load.failures == [] and set(load.versions) == {"1"}
    shadowed = wait_for(
        lambda: client.read_metrics(NAME, start_ms=shadow_start, model_version="2")["metrics"],
        timeout=10,
    )
    assert 0 < len(shadowed) <= 40
    assert "stopped by a user" in cli(platform, "deployments", "canary-stop", NAME)

    # A better candidate (both versions labelled correctly): promoted; the alias moves.
    client.canary(NAME, version=2, percent=50, policy=POLICY)
    with LabelledLoad(platform, key, right={"1", "2"}) as load:
        view = wait_for(lambda: ended(client), timeout=120)
        last = view["decisions"][0]
        assert last["decision"] == "promote", view["decisions"]
        assert any("alias champion of iris moved from 1 to 2" in r for r in last["reasons"])
        wait_for(lambda: client.deployment(NAME)["version"] == "2", timeout=120)
    assert load.failures == []
    assert str(champion.get_registered_model("iris").aliases["champion"]) == "2"
    d = client.deployment(NAME)
    assert (d["version_spec"], d["track_alias"]) == ("@champion", True)
    client.delete(NAME)


def test_a_canary_survives_a_sigkill_of_the_platform(platform: RunningPlatform) -> None:
    """kill -9 of the platform while a canary runs; the restart on the same data directory
    resumes it: same request and start, the candidate's replicas answer their share again, and
    the requests stored before the kill still count."""
    name = "canary-kill"
    client = platform.client()
    key = str(client.deploy(name, "iris", version=1)["access_key"])
    client.wait(name, timeout=120)
    started = int(time.time() * 1000)
    client.canary(name, version=2, percent=50, policy={"min_requests": 10_000})
    wait_for(lambda: client.canary_status(name)["candidate_ready"], timeout=120)
    url = f"{platform.url}/deployments/{name}/predict"
    headers = {"Authorization": f"Bearer {key}"}

    def answers(n: int) -> Counter[str]:
        versions: Counter[str] = Counter()
        for _ in range(n):
            r = httpx.post(url, json={"inputs": [ROW]}, headers=headers, timeout=30)
            assert r.status_code == 200, r.text
            versions[r.headers["x-modeldeck-version"]] += 1
        return versions

    assert answers(20) == {"1": 10, "2": 10}
    before = client.canary_status(name)

    def flushed() -> bool:  # the rollups of those requests are in the store
        end = int(time.time() * 1000) + 1
        totals = client.technical_metrics(name, start_ms=started, end_ms=end, version="2")
        return bool(totals["totals"]["requests"] == 10)

    wait_for(flushed, timeout=30, interval=0.5)
    assert platform.proc is not None
    platform.proc.send_signal(signal.SIGKILL)
    platform.proc.wait(10)

    platform.start()
    client = platform.client()
    view = client.canary_status(name)
    assert view["active"], view["decisions"]
    same = ("mode", "percent", "stable_version", "candidate_version", "started_at", "policy")
    assert {k: view[k] for k in same} == {k: before[k] for k in same}
    resumed = next(d for d in view["decisions"] if d["decision"] == "resumed")
    assert resumed["evidence"]["candidate"]["requests"] == 10, resumed
    client.wait(name, timeout=120)
    wait_for(lambda: client.canary_status(name)["candidate_ready"], timeout=120)
    assert answers(20) == {"1": 10, "2": 10}
    wait_for(
        lambda: (
            client.canary_status(name)["last"]["reasons"]
            == ["20 of 10000 candidate requests so far"]
        ),
        timeout=30,
    )
    assert client.stop_canary(name)["decisions"][0]["decision"] == "stopped"
    client.delete(name)
