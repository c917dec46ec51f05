"""Autoscaling on a real platform: a --file deployment under a bounded concurrent load scales up,
says so in technical monitoring, and scales back down without failing a request; the events
outlive a restart of the platform."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from modeldeck.client import ApiError
from tests.conftest import RunningPlatform, start_platform
from tests.fixtures import wait_for

pytestmark = pytest.mark.integration

SLOW_MODEL = """
import time


def predict(args):
    time.sleep(0.05)
    return args["x"] * 2
"""

POLICY = {
    "min_replicas": 1,
    "max_replicas": 3,
    "target_inflight": 2,
    "scale_up_delay_seconds": 1,
    "scale_down_delay_seconds": 4,
}


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningPlatform]:
    """A platform of its own (SQLite; file deployments need no registry) sampling twice a
    second."""
    data_dir = tmp_path_factory.mktemp("autoscale")
    running = start_platform(
        data_dir,
        f"sqlite:///{data_dir / 'modeldeck.db'}",
        f"sqlite:///{data_dir / 'mlflow.db'}",
        MODELDECK_AUTOSCALE_INTERVAL_SECONDS="0.5",
    )
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture(scope="module")
def model_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("slow") / "slow.py"
    path.write_text(SLOW_MODEL)
    return path


class Load:
    """``workers`` threads, each sending one request after another until stopped."""

    def __init__(self, platform: RunningPlatform, name: str, key: str, workers: int) -> None:
        self.url = f"{platform.url}/deployments/{name}/predict"
        self.key = key
        self.statuses: Counter[int | str] = Counter()
        self.replicas: Counter[str] = Counter()
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run) for _ in range(workers)]

    def _run(self) -> None:
        headers = {"Authorization": f"Bearer {self.key}"}
        with httpx.Client(headers=headers, timeout=30) as http:
            while not self._stop.is_set():
                try:
                    r = http.post(self.url, json={"x": 21})
                except httpx.HTTPError as exc:
                    self.statuses[type(exc).__name__] += 1
                    continue
                self.statuses[r.status_code] += 1
                self.replicas[r.headers.get("x-modeldeck-replica", "?")] += 1

    def __enter__(self) -> Load:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(60)


def events(platform: RunningPlatform, name: str) -> list[dict[str, Any]]:
    return platform.client().technical_metrics(name)["events"]  # type: ignore[no-any-return]


def autoscaler_gauges(platform: RunningPlatform, name: str) -> dict[str, float]:
    found = {}
    for family in text_string_to_metric_families(httpx.get(f"{platform.url}/metrics").text):
        for sample in family.samples:
            if sample.name.startswith("modeldeck_autoscaler_") and (
                sample.labels.get("deployment") == name
            ):
                found[sample.name] = sample.value
    return found


def test_scales_up_under_load_and_back_down_without_a_failed_request(
    platform: RunningPlatform, model_file: Path
) -> None:
    client = platform.client()
    created = client.deploy("auto", file=str(model_file), autoscaling=POLICY, track_metrics=False)
    assert created["autoscaling"] == POLICY and created["replicas"] == 1
    client.wait("auto", timeout=120)
    key = created["access_key"]

    with Load(platform, "auto", key, workers=8) as busy:  # 8 in flight: 4 wanted, at most 3
        d = wait_for(
            lambda: (x := client.deployment("auto"))["ready_replicas"] == 3 and x, timeout=90
        )
        assert d["replicas"] == 3
        answered = sum(busy.replicas.values())
        wait_for(lambda: sum(busy.replicas.values()) > answered + 60, timeout=30)
        gauges = autoscaler_gauges(platform, "auto")
    assert set(busy.statuses) == {200}, busy.statuses
    assert len(busy.replicas) == 3, f"every replica answered: {busy.replicas}"
    assert gauges["modeldeck_autoscaler_replicas"] == 3
    assert gauges["modeldeck_autoscaler_desired_replicas"] == 3
    assert gauges["modeldeck_autoscaler_inflight_requests"] > 4

    ups = [e for e in events(platform, "auto") if e["kind"] == "scaled_up"]
    assert ups, "the scale-up is a replica event"
    assert ups[0]["replicas_before"] == 1 and ups[-1]["replicas_after"] == 3
    assert ups[0]["message"].startswith(f"scaled up 1 → {ups[0]['replicas_after']}: ")
    assert "in flight per replica > target 2 for 1 s" in ups[0]["message"]

    # One request at a time (at most 1 in flight: 1 replica wanted) while it scales down: the
    # replicas taken away finish what they have in flight.
    with Load(platform, "auto", key, workers=1) as light:
        d = wait_for(
            lambda: (
                (x := client.deployment("auto"))["replicas"] == 1
                and len(x["replica_states"]) == 1
                and x
            ),
            timeout=60,
        )
        answered = sum(light.replicas.values())
        wait_for(lambda: sum(light.replicas.values()) > answered + 10, timeout=30)
    assert set(light.statuses) == {200}, light.statuses
    assert d["replica_states"][0]["status"] == "ready"
    downs = [e for e in events(platform, "auto") if e["kind"] == "scaled_down"]
    assert downs and downs[-1]["replicas_after"] == 1
    assert downs[0]["message"].startswith("scaled down 3 → ")
    assert "in flight per replica < target 2 for 4 s" in downs[0]["message"]

    # The events are stored: the platform restarted answers them still.
    before_restart = events(platform, "auto")
    platform.stop()
    platform.start()
    assert events(platform, "auto") == before_restart

    # A fixed count ends autoscaling.
    d = client.scale("auto", 2)
    assert d["autoscaling"] is None and d["replicas"] == 2
    client.delete("auto")


def test_a_policy_with_max_below_min_is_refused_and_stores_nothing(
    platform: RunningPlatform, model_file: Path
) -> None:
    client = platform.client()
    bad = {"min_replicas": 3, "max_replicas": 2}
    headers = {"Authorization": f"Bearer {platform.api_key}"}
    r = httpx.post(
        f"{platform.url}/api/v1/deployments",
        json={"name": "bad-auto", "file": str(model_file), "autoscaling": bad},
        headers=headers,
    )
    assert r.status_code == 422, r.text
    error = r.json()["error"]
    assert set(r.json()) == {"error"} and set(error) == {"code", "message", "details"}
    assert "max_replicas (2) is below min_replicas (3)" in error["message"]
    with pytest.raises(ApiError) as missing:
        client.deployment("bad-auto")
    assert missing.value.status_code == 404

    client.deploy("fixed", file=str(model_file), replicas=2, track_metrics=False)
    r = httpx.post(
        f"{platform.url}/api/v1/deployments/fixed/scale",
        json={"autoscaling": bad},
        headers=headers,
    )
    assert r.status_code == 422 and set(r.json()["error"]) == {"code", "message", "details"}
    d = client.deployment("fixed")
    assert d["autoscaling"] is None and d["replicas"] == 2

    d = client.scale("fixed", autoscaling={"max_replicas": 4, "min_replicas": 3})
    assert d["replicas"] == 3, "brought into the bounds at once"
    assert d["autoscaling"]["target_inflight"] == 4 and d["autoscaling"]["min_replicas"] == 3
    client.delete("fixed")
