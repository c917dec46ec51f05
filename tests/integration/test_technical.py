"""Technical monitoring on a real platform, both stores: exact counts, Prometheus, CPU."""

from __future__ import annotations

import os
import signal
import statistics
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from modeldeck.monitoring.technical import latency_bucket
from tests.conftest import RunningPlatform

pytestmark = pytest.mark.integration

FLAKY_MODEL = """
import time


def predict(args):
    x = args["x"]
    if x < 0:
        raise ValueError("negative input")
    if args.get("burn"):
        end = time.perf_counter() + args["burn"]
        while time.perf_counter() < end:
            pass
    return x * 2
"""


@pytest.fixture(scope="module")
def flaky(
    platform: RunningPlatform, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, str]]:
    path = tmp_path_factory.mktemp("flaky") / "flaky.py"
    path.write_text(FLAKY_MODEL)
    client = platform.client()
    created = client.deploy("flaky", file=str(path), replicas=2, track_metrics=False)
    client.wait("flaky", timeout=120)
    yield "flaky", created["access_key"]
    client.delete("flaky")


def _wait_ready(platform: RunningPlatform, name: str, old_pid: int) -> None:
    client = platform.client()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        states = client.deployment(name)["replica_states"]
        if all(r["status"] == "ready" for r in states) and states[0]["pid"] != old_pid:
            return
        time.sleep(0.2)
    raise AssertionError("replica 0 did not come back")


def test_counts_sizes_and_latency_are_exact_across_a_replica_restart(
    platform: RunningPlatform, flaky: tuple[str, str]
) -> None:
    name, key = flaky
    client = platform.client()
    start = int(time.time() * 1000) - 1
    url = f"{platform.url}/deployments/{name}/predict"
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    sent = received = 0
    statuses: list[int] = []
    latencies: list[float] = []
    bodies = (
        [b'{"x": 1}'] * 20 + [b'{"x": -1}'] * 6 + [b'{"x": '] * 4  # ok, model error, malformed
    )
    with httpx.Client(headers=headers, timeout=30) as http:
        for i in range(2):
            if i == 1:  # a replica restart in the middle must not reset anything
                pid = client.deployment(name)["replica_states"][0]["pid"]
                os.kill(pid, signal.SIGKILL)
                _wait_ready(platform, name, pid)
            for body in bodies:
                t0 = time.perf_counter()
                r = http.post(url, content=body)
                latencies.append((time.perf_counter() - t0) * 1000)
                statuses.append(r.status_code)
                sent += len(body)
                received += len(r.content)
        r = httpx.post(url, content=b'{"x": 1}', headers={"Authorization": "Bearer wrong"})
        statuses.append(r.status_code)
        sent += 8
        received += len(r.content)

    n, k = len(statuses), sum(s != 200 for s in statuses)
    assert (n, k) == (61, 21)
    data = client.technical_metrics(name, start_ms=start, step_seconds=5)
    totals = data["totals"]
    assert (totals["requests"], totals["failed"]) == (n, k)
    assert totals["failed_5xx"] == statuses.count(500) == 12
    assert totals["failed_4xx"] == statuses.count(400) + statuses.count(401) == 9
    assert totals["request_bytes"] == sent
    assert totals["response_bytes"] == received
    table = {row["replica"]: row for row in data["replicas"]}
    assert table["gateway"] == {"replica": "gateway", "received": 1, "success": 0, "failed": 1}
    assert table[0]["received"] > 0 and table[1]["received"] > 0
    assert sum(r["received"] for r in table.values()) == n
    assert sum(r["success"] for r in table.values()) == n - k
    assert sum(p["requests"] for p in data["requests"]) == n

    # The replica times a subset of what the client waits for (no connection, no client-side
    # parsing), so its median sits in the client's latency bucket or a lower one, never higher
    # than the next (the median is interpolated within its bucket).
    client_p50 = statistics.median(latencies)
    assert totals["latency_p50_ms"] > 0
    assert latency_bucket(totals["latency_p50_ms"]) <= latency_bucket(client_p50) + 1
    assert totals["latency_mean_ms"] <= statistics.mean(latencies)


def test_prometheus_metrics_parse_with_the_right_types_and_labels(
    platform: RunningPlatform, flaky: tuple[str, str]
) -> None:
    name, key = flaky
    for x in (1, 2, -1):
        httpx.post(
            f"{platform.url}/deployments/{name}/predict",
            json={"x": x},
            headers={"Authorization": f"Bearer {key}"},
        )
    text = httpx.get(f"{platform.url}/metrics").text
    families = {f.name: f for f in text_string_to_metric_families(text)}
    expected = {
        "modeldeck_requests": "counter",
        "modeldeck_request_duration_seconds": "histogram",
        "modeldeck_request_size_bytes": "histogram",
        "modeldeck_response_size_bytes": "histogram",
        "modeldeck_replica_cpu_seconds": "counter",
        "modeldeck_replica_resident_memory_bytes": "gauge",
        "modeldeck_replicas": "gauge",
    }
    for family, kind in expected.items():
        assert families[family].type == kind, family
    for sample in families["modeldeck_requests"].samples:
        if sample.name.endswith("_total"):
            assert set(sample.labels) == {"deployment", "version", "replica", "code"}
    mine = [
        s
        for s in families["modeldeck_replica_resident_memory_bytes"].samples
        if s.labels["deployment"] == name
    ]
    assert sorted(s.labels["replica"] for s in mine) == ["0", "1"]
    assert all(s.value > 10_000_000 for s in mine)
    ready = [
        s.value
        for s in families["modeldeck_replicas"].samples
        if s.labels == {"deployment": name, "state": "ready"}
    ]
    assert ready == [2.0]
    errors = sum(
        s.value
        for s in families["modeldeck_requests"].samples
        if s.name == "modeldeck_requests_total"
        and s.labels["deployment"] == name
        and s.labels["code"] == "500"
    )
    assert errors >= 1
    assert all("uuid" not in s.labels for f in families.values() for s in f.samples)


@pytest.mark.slow  # make test-slow
def test_cpu_and_memory_series_exist_per_replica_and_move_under_load(
    platform: RunningPlatform, flaky: tuple[str, str]
) -> None:
    name, key = flaky
    client = platform.client()
    idle_start = int(time.time() * 1000)
    # Three idle samples: the window ends a step before the load, and a replica restarted by
    # an earlier test has no sample on its first one (it primes the CPU counter), so with two
    # a loaded machine could leave the window empty.
    time.sleep(16)
    load_start = int(time.time() * 1000)
    stop = threading.Event()

    def burn() -> None:
        with httpx.Client(headers={"Authorization": f"Bearer {key}"}, timeout=30) as http:
            while not stop.is_set():
                http.post(f"{platform.url}/deployments/{name}/predict", json={"x": 1, "burn": 0.05})

    threads = [threading.Thread(target=burn) for _ in range(4)]
    for t in threads:
        t.start()
    time.sleep(12)
    stop.set()
    for t in threads:
        t.join()

    def cpu(data: dict[str, Any], replica: str) -> list[float]:
        return [p["cpu_percent"] for p in data["resources"]["per_replica"][replica]]

    # The idle window stops a whole step before the load: the step the load started in belongs
    # to neither. Its quietest sample is the floor (an earlier test's load may linger at its
    # start); on two cores shared with another test worker a busy replica may get only a
    # third of a core, so the margin is 20 points over that floor.
    idle = client.technical_metrics(
        name, start_ms=idle_start, end_ms=load_start - 5000, step_seconds=5
    )
    busy = client.technical_metrics(name, start_ms=load_start, step_seconds=5)
    for replica in ("0", "1"):
        assert cpu(idle, replica), idle
        assert max(cpu(busy, replica)) > min(cpu(idle, replica)) + 20, (idle, busy)
        assert all(p["rss_bytes"] > 10_000_000 for p in busy["resources"]["per_replica"][replica])
    assert max(p["cpu_percent"] for p in busy["resources"]["all"]) > 40
