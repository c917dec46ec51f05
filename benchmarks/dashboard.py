"""Dashboard benchmark: every API call the deployment page makes, over a large store.

What it measures, per store (a throwaway SQLite file, a throwaway PostgreSQL database)
    The store holds one deployment (2 replicas) with N predictions (default 1,000,000) of an
    Iris-like classifier spread evenly over the last ``--days`` days (default 14), each with
    its ground truth, 150 reference rows, and ``--days`` days of technical monitoring as the
    platform keeps it: a 5-second request rollup and a CPU/memory sample per replica every
    5 seconds (2 x 17,280 rollups and samples a day). Two alert rules are evaluated once, so
    there are events; each replica has a 5 MB log file. Filling it is timed and reported, but
    the target is not about it.

    The platform then runs in process (``create_app`` with its lifespan and background work,
    alert evaluation on demand only) and each call the dashboard makes is sent through the
    ASGI app with the API key, as the browser sends it, ``--repeat`` times (default 5): the
    median counts, the first (cold) and the fastest are shown beside it. The calls are those
    of the deployment page's header and of each tab with the range it defaulted to before
    issue 25 (Monitoring 1 h, Model metrics and Drift 24 h), then the longer presets
    (Monitoring 24 h and 7 d, Model metrics and Drift 7 d), then what the Auto range (every
    tab's default now) asks over this store's 14 days (the fitted window, then performance and
    drift over 14 d), then the deployments list's.

    Target (issue 6): each call of the deployment page answers in < 300 ms. A miss is
    reported as FAIL; the exit code is non-zero only when the benchmark cannot run.

How to run
    .venv/bin/python benchmarks/dashboard.py                       # 1M predictions, both stores
    .venv/bin/python benchmarks/dashboard.py --predictions 100000 --skip-postgres

    ``--postgres-url`` is an admin URL: a database ``modeldeck_bench_<random>`` is created next
    to it and dropped at the end. Results are printed as a table and written as JSON (default
    ``benchmarks/results/dashboard.json``). Progress goes to stderr.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import sqlalchemy
from fastapi.testclient import TestClient
from ingest import BenchError, entry_point, postgres_database, progress  # shared helpers
from rich.console import Console
from rich.table import Table
from sqlalchemy import insert, text
from sqlalchemy.engine import make_url

from modeldeck.api.app import create_app
from modeldeck.config import Settings
from modeldeck.demo.train import FEATURES, iris_frame
from modeldeck.monitoring.analysis import AnalysisService
from modeldeck.monitoring.technical import BUCKET_MS, TechnicalMetrics
from modeldeck.process import tune_gc
from modeldeck.records.model_metrics import ModelMetrics, PredictionRecord, new_prediction_id
from modeldeck.registry import Registry
from modeldeck.store import Store
from modeldeck.store.schema import (
    LATENCY_BOUNDS_MS,
    DeploymentRow,
    ReplicaSampleRow,
    RollupRow,
)

TARGET_MS = 300.0
NAME = "bench"
API_KEY = "mdk_bench_dashboard"
REPLICAS = 2
HOUR_MS = 3_600_000
DAY_MS = 24 * HOUR_MS
INSERT_CHUNK = 10_000
DELAYED_CHUNK = 20_000
ROLLUP_CHUNK = 20_000
LOG_BYTES = 5 * 1024 * 1024
DEFAULT_PG = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
DEFAULT_OUTPUT = Path(__file__).resolve().parent / "results" / "dashboard.json"


@dataclass(frozen=True)
class Call:
    key: str
    where: str  # which part of the dashboard makes it
    path: str
    params: dict[str, Any]
    targeted: bool = True  # the deployment page's calls have the target


def calls(now: int) -> list[Call]:
    """The dashboard's calls, with the parameters its default ranges send (``now`` fixed)."""
    d = f"/api/v1/deployments/{NAME}"

    def last(ms: int) -> dict[str, Any]:
        return {"start": now - ms, "end": now}

    def windows(ms: int, step_s: int) -> dict[str, Any]:
        """As the Model metrics tab asks: the start on a whole step, ``step`` in seconds."""
        step_ms = step_s * 1000
        return {"start": (now - ms) // step_ms * step_ms, "end": now, "step": step_s}

    return [
        Call("deployment", "header (every tab)", d, {}),
        Call("recent_1", "Overview", f"{d}/metrics/model/recent", {"limit": 1}),
        Call("technical_1h", "Monitoring (1 h, default)", f"{d}/metrics/technical", last(HOUR_MS)),
        Call(
            "technical_1h_replica",
            "Monitoring (1 h, replica 1)",
            f"{d}/metrics/technical",
            {**last(HOUR_MS), "replica": 1},
        ),
        Call("monitoring_settings", "Model metrics", f"{d}/monitoring", {}),
        Call(
            "distribution_24h",
            "Model metrics (24 h, default)",
            f"{d}/metrics/model/distribution",
            windows(DAY_MS, 1800),
        ),
        Call(
            "performance_24h",
            "Model metrics (24 h, default)",
            f"{d}/performance",
            windows(DAY_MS, 1800),
        ),
        Call("recent_12", "Model metrics", f"{d}/metrics/model/recent", {"limit": 12}),
        Call("drift_24h", "Drift (24 h, default)", f"{d}/drift", last(DAY_MS)),
        Call("alert_rules", "Alerts", "/api/v1/alerts/rules", {"deployment": NAME}),
        Call("alert_events", "Alerts", "/api/v1/alerts/events", {"deployment": NAME, "limit": 100}),
        Call("logs", "Logs", f"{d}/logs", {"lines": 200}),
        Call("technical_24h", "Monitoring (24 h)", f"{d}/metrics/technical", last(DAY_MS)),
        Call("technical_7d", "Monitoring (7 d)", f"{d}/metrics/technical", last(7 * DAY_MS)),
        Call(
            "distribution_7d",
            "Model metrics (7 d)",
            f"{d}/metrics/model/distribution",
            windows(7 * DAY_MS, 21600),
        ),
        Call(
            "performance_7d",
            "Model metrics (7 d)",
            f"{d}/performance",
            windows(7 * DAY_MS, 21600),
        ),
        Call("drift_7d", "Drift (7 d)", f"{d}/drift", last(7 * DAY_MS)),
        # Auto, every tab's default since issue 25: the range fitted to the data, asked first.
        Call("window", "Auto range (every tab, each refresh)", f"{d}/window", {}),
        Call(
            "performance_14d",
            "Model metrics (Auto: 14 d of data)",
            f"{d}/performance",
            windows(14 * DAY_MS, 21600),
        ),
        Call("drift_14d", "Drift (Auto: 14 d of data)", f"{d}/drift", last(14 * DAY_MS)),
        Call("list", "Deployments list", "/api/v1/deployments", {}, targeted=False),
        Call("list_rules", "Deployments list", "/api/v1/alerts/rules", {}, targeted=False),
        Call(
            "list_technical",
            "Deployments list",
            f"{d}/metrics/technical",
            {**last(HOUR_MS), "step": 3600},
            targeted=False,
        ),
    ]


# --- filling the store -------------------------------------------------------------------------


def _add_deployment(store: Store) -> str:
    """A stopped deployment of a file model: the platform starts no replica for it and asks
    MLflow for nothing."""
    deployment_id = f"id-{NAME}"
    with store.write() as session:
        session.add(
            DeploymentRow(
                id=deployment_id,
                name=NAME,
                crn=f"crn:{NAME}",
                model_name="bench_model",
                model_version="1",
                version_spec="1",
                model_uri="file:bench_model.py",
                runtime="local",
                replicas=REPLICAS,
                environment={},
                auth_enabled=True,
                desired_state="stopped",
                status="stopped",
                status_message="",
                source="file",
                file_path="bench_model.py",
                function_name="predict",
            )
        )
    return deployment_id


def _predictions(
    rng: np.random.Generator, deployment_id: str, n: int, now: int, days: int
) -> Iterator[tuple[list[PredictionRecord], list[Any]]]:
    """Chunks of predictions (inputs, class, probabilities) and their true classes, oldest
    first, evenly over ``days`` days; accuracy and petal_length move in the last day."""
    X, y = iris_frame()
    features = X.to_numpy()
    labels = y.to_numpy()
    ends = np.sort(rng.integers(now - days * DAY_MS + 60_000, now - 1000, n))
    for lo in range(0, n, INSERT_CHUNK):
        hi = min(lo + INSERT_CHUNK, n)
        picks = rng.integers(0, len(features), hi - lo)
        noise = rng.normal(0.0, 0.1, (hi - lo, len(FEATURES)))
        rows = np.round(features[picks] + noise, 2)
        late = ends[lo:hi] >= now - DAY_MS
        rows[late, 2] += 1.0
        truth = labels[picks]
        right = rng.random(hi - lo) < np.where(late, 0.7, 0.95)
        wrong = (truth + rng.integers(1, 3, hi - lo)) % 3
        outputs = np.where(right, truth, wrong)
        top = np.round(0.5 + 0.45 * rng.random(hi - lo), 4).tolist()
        records = []
        for i in range(hi - lo):
            rest = round((1.0 - top[i]) / 2, 4)
            probabilities = {str(c): top[i] if c == outputs[i] else rest for c in range(3)}
            metrics = {
                "input": dict(zip(FEATURES, rows[i].tolist(), strict=True)),
                "output": int(outputs[i]),
                "probabilities": probabilities,
            }
            end = int(ends[lo + i])
            records.append(
                PredictionRecord(
                    new_prediction_id(),
                    deployment_id,
                    end - 3,
                    end,
                    metrics,
                    "1",
                    int(i % REPLICAS),
                )
            )
        yield records, truth.tolist()


def _rollups(
    rng: np.random.Generator, deployment_id: str, now: int, days: int
) -> Iterator[tuple[list[dict[str, Any]], list[dict[str, Any]]]]:
    """Rollups and resource samples per replica and 5-second bucket, a day at a time."""
    first = (now - days * DAY_MS) // BUCKET_MS * BUCKET_MS + HOUR_MS  # kept by retention
    last = now // BUCKET_MS * BUCKET_MS
    hist_keys = [f"lat_{i:02d}" for i in range(len(LATENCY_BOUNDS_MS) + 1)]
    for day_start in range(first, last, DAY_MS):
        buckets = np.arange(day_start, min(day_start + DAY_MS, last), BUCKET_MS, dtype=np.int64)
        rollups: list[dict[str, Any]] = []
        samples: list[dict[str, Any]] = []
        for replica in range(REPLICAS):
            requests = rng.poisson(4.0, len(buckets)) + 1
            failed_4xx = rng.binomial(requests, 0.01)
            failed_5xx = rng.binomial(requests - failed_4xx, 0.002)
            fast = rng.binomial(requests, 0.7)
            cpu = np.round(rng.gamma(2.0, 4.0, len(buckets)), 2)
            rss = (3.1e8 + rng.normal(0, 2e6, len(buckets))).astype(np.int64)
            for j, bucket in enumerate(buckets.tolist()):
                n = int(requests[j])
                row: dict[str, Any] = dict.fromkeys(hist_keys, 0)
                row.update(
                    deployment_id=deployment_id,
                    version="1",
                    replica=replica,
                    bucket_ms=bucket,
                    requests=n,
                    status_2xx=n - int(failed_4xx[j]) - int(failed_5xx[j]),
                    status_4xx=int(failed_4xx[j]),
                    status_5xx=int(failed_5xx[j]),
                    status_other=0,
                    latency_sum_ms=2.5 * n,
                    latency_max_ms=9.0,
                    req_bytes_sum=99 * n,
                    req_bytes_max=114,
                    resp_bytes_sum=64 * n,
                    resp_bytes_max=64,
                    lat_03=int(fast[j]),
                    lat_06=n - int(fast[j]),
                )
                rollups.append(row)
                samples.append(
                    {
                        "deployment_id": deployment_id,
                        "version": "1",
                        "replica": replica,
                        "ts_ms": bucket + 4000,
                        "cpu_percent": float(cpu[j]),
                        "rss_bytes": int(rss[j]),
                        "cpu_seconds": 0.05 * j,
                    }
                )
        yield rollups, samples


def fill(
    err: Console, label: str, store: Store, settings: Settings, n: int, days: int, now: int
) -> list[dict[str, Any]]:
    """The deployment, predictions, ground truth, reference, rollups and logs."""
    steps: list[dict[str, Any]] = []
    rng = np.random.default_rng(6)

    def step(key: str, rows: int, seconds: float) -> None:
        steps.append({"store": label, "step": key, "rows": rows, "seconds": round(seconds, 3)})
        progress(err, f"{label}: setup {key}: {rows:,} rows in {seconds:.1f}s")

    started = time.perf_counter()
    store.migrate()
    deployment_id = _add_deployment(store)
    step("schema and deployment", 1, time.perf_counter() - started)

    metrics = ModelMetrics(store)
    started = time.perf_counter()
    labelled: list[tuple[str, dict[str, Any]]] = []
    for records, truth in _predictions(rng, deployment_id, n, now, days):
        metrics.insert_predictions(records)
        labelled.extend((r.uuid, {"actual_result": t}) for r, t in zip(records, truth, strict=True))
    step("predictions (insert_predictions)", n, time.perf_counter() - started)

    started = time.perf_counter()
    for lo in range(0, len(labelled), DELAYED_CHUNK):
        metrics.track_delayed_many(None, labelled[lo : lo + DELAYED_CHUNK])
    step("ground truth (track_delayed_many)", len(labelled), time.perf_counter() - started)

    started = time.perf_counter()
    X, y = iris_frame()
    reference = pd.concat([X, y.rename("target")], axis=1)
    service = AnalysisService(store, Registry(settings.resolved_tracking_uri()))
    service.set_reference(NAME, reference, source="benchmark", target_column="target")
    step("reference (set_reference)", len(reference), time.perf_counter() - started)

    started = time.perf_counter()
    count = 0
    for rollups, samples in _rollups(rng, deployment_id, now, days):
        for lo in range(0, len(rollups), ROLLUP_CHUNK):
            with store.write() as session:
                session.execute(insert(RollupRow), rollups[lo : lo + ROLLUP_CHUNK])
                session.execute(insert(ReplicaSampleRow), samples[lo : lo + ROLLUP_CHUNK])
        count += len(rollups)
    step("rollups and samples", 2 * count, time.perf_counter() - started)

    # The platform's housekeeping compacts rollups older than eight hours as they age; a store
    # that has run for days holds them compacted, so the benchmark's does too.
    started = time.perf_counter()
    removed = TechnicalMetrics(store).compact()
    step("compaction (TechnicalMetrics.compact)", removed, time.perf_counter() - started)

    started = time.perf_counter()
    line = "2026-01-01 00:00:00,000 replica-0 INFO modeldeck.replica: served a request\n"
    for replica in range(REPLICAS):
        path = settings.logs_dir() / NAME / f"replica-{replica}.log"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(line * (LOG_BYTES // len(line)))
    step("replica logs", REPLICAS, time.perf_counter() - started)

    if store.dialect == "postgresql":
        # What autovacuum does within a minute or so of a bulk load; done now, so it does not
        # happen in the middle of a measurement.
        started = time.perf_counter()
        with store.engine.connect() as connection:
            connection.execution_options(isolation_level="AUTOCOMMIT").execute(
                text("VACUUM ANALYZE")
            )
        step("VACUUM ANALYZE", n, time.perf_counter() - started)
    return steps


# --- measurements ------------------------------------------------------------------------------


def measure(
    err: Console, label: str, client: TestClient, now: int, repeat: int
) -> list[dict[str, Any]]:
    headers = {"Authorization": f"Bearer {API_KEY}"}
    results = []
    for call in calls(now):
        seconds = []
        size = 0
        for _ in range(repeat):
            started = time.perf_counter()
            response = client.get(call.path, params=call.params, headers=headers)
            seconds.append(time.perf_counter() - started)
            if response.status_code != 200:
                raise BenchError(f"{call.path} answered {response.status_code}: {response.text}")
            size = len(response.content)
        median_ms = statistics.median(seconds) * 1000
        results.append(
            {
                "store": label,
                "key": call.key,
                "where": call.where,
                "path": call.path,
                "params": {k: v for k, v in call.params.items() if k not in ("start", "end")},
                "range_ms": call.params.get("end", 0) - call.params.get("start", 0) or None,
                "targeted": call.targeted,
                "median_ms": round(median_ms, 1),
                "first_ms": round(seconds[0] * 1000, 1),
                "min_ms": round(min(seconds) * 1000, 1),
                "runs_ms": [round(s * 1000, 1) for s in seconds],
                "response_bytes": size,
                "met": median_ms < TARGET_MS if call.targeted else None,
            }
        )
        progress(err, f"{label}: {call.key}: median {median_ms:.0f} ms")
    return results


def check(client: TestClient, n: int, days: int, now: int) -> None:
    """The store holds what the calls are meant to read (else the numbers mean nothing)."""
    headers = {"Authorization": f"Bearer {API_KEY}"}
    d = f"/api/v1/deployments/{NAME}"
    day = client.get(
        f"{d}/metrics/model/distribution",
        params={"start": now - DAY_MS, "end": now, "step": 1800},
        headers=headers,
    ).json()
    counted = sum(p["count"] for p in day["points"])
    expected = n / days
    if not 0.8 * expected <= counted <= 1.2 * expected:
        raise BenchError(f"the last 24 h hold {counted:,} predictions, not about {expected:,.0f}")
    technical = client.get(
        f"{d}/metrics/technical", params={"start": now - 7 * DAY_MS, "end": now}, headers=headers
    ).json()
    if len(technical["replicas"]) != REPLICAS or not technical["resources"]["all"]:
        raise BenchError("the last 7 days hold no rollups or samples for every replica")


def bench_store(
    err: Console, label: str, url: str, n: int, days: int, repeat: int
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    with tempfile.TemporaryDirectory(prefix="modeldeck-bench-") as tmp:
        settings = Settings(
            data_dir=Path(tmp),
            store_url=url,
            api_key=API_KEY,
            mlflow_tracking_uri=f"sqlite:///{Path(tmp) / 'mlflow.db'}",
            alert_interval_seconds=86_400,
        )
        now = int(time.time() * 1000)
        store = Store(url)
        try:
            steps = fill(err, label, store, settings, n, days, now)
        finally:
            store.close()
        tune_gc()  # as the platform does
        with TestClient(create_app(settings)) as client:
            headers = {"Authorization": f"Bearer {API_KEY}"}
            for name, metric, comparison, threshold in (
                ("p95", "technical.p95_latency_ms", "gt", 5.0),
                ("accuracy", "performance.accuracy", "lt", 0.9),
            ):
                client.post(
                    "/api/v1/alerts/rules",
                    headers=headers,
                    json={
                        "name": name,
                        "deployment": NAME,
                        "metric": metric,
                        "comparison": comparison,
                        "threshold": threshold,
                        "window_seconds": 3600,
                    },
                )
            started = time.perf_counter()
            events = client.post("/api/v1/alerts/evaluate", headers=headers).json()
            steps.append(
                {
                    "store": label,
                    "step": "alert evaluation",
                    "rows": len(events),
                    "seconds": round(time.perf_counter() - started, 3),
                }
            )
            check(client, n, days, now)
            return steps, measure(err, label, client, now, repeat)


def results_table(results: list[dict[str, Any]], title: str) -> Table:
    table = Table(title=title)
    for column in (
        "store",
        "call",
        "dashboard",
        "median ms",
        "first ms",
        "min ms",
        "KiB",
        "target",
    ):
        table.add_column(column, justify="right" if column.endswith(("ms", "KiB")) else "left")
    for r in results:
        if r["met"] is None:
            verdict = "-"
        else:
            verdict = f"{'[green]PASS' if r['met'] else '[red]FAIL'}[/] < {TARGET_MS:.0f} ms"
        query = ", ".join(f"{k}={v}" for k, v in r["params"].items())
        table.add_row(
            r["store"],
            f"GET {r['path']}" + (f" ({query})" if query else ""),
            r["where"],
            f"{r['median_ms']:.0f}",
            f"{r['first_ms']:.0f}",
            f"{r['min_ms']:.0f}",
            f"{r['response_bytes'] / 1024:.1f}",
            verdict,
        )
    return table


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Benchmark the dashboard's API calls.")
    parser.add_argument("--predictions", type=int, default=1_000_000, help="N (default 1000000)")
    parser.add_argument("--days", type=int, default=14, help="days of data (default 14)")
    parser.add_argument("--repeat", type=int, default=5, help="runs of each call (default 5)")
    parser.add_argument("--postgres-url", default=DEFAULT_PG, help=f"admin URL ({DEFAULT_PG})")
    parser.add_argument("--skip-postgres", action="store_true", help="only benchmark SQLite")
    parser.add_argument("--skip-sqlite", action="store_true", help="only benchmark PostgreSQL")
    parser.add_argument(
        "--output",
        type=Path,
        default=DEFAULT_OUTPUT,
        help="JSON results file (default benchmarks/results/dashboard.json)",
    )
    args = parser.parse_args(argv)
    if args.predictions < 1 or args.repeat < 1 or not 7 <= args.days <= 14:
        # 7 days for the 7 d presets; at most the 14 days that technical retention keeps
        parser.error("need --predictions >= 1, --repeat >= 1 and 7 <= --days <= 14")
    if args.skip_postgres and args.skip_sqlite:
        parser.error("--skip-postgres and --skip-sqlite leave nothing to measure")
    return args


def run(args: argparse.Namespace, out: Console, err: Console) -> None:
    import psycopg

    n, days, repeat = args.predictions, args.days, args.repeat
    machine: dict[str, Any] = {
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "sqlalchemy": sqlalchemy.__version__,
        "psycopg": psycopg.__version__,
        "sqlite": sqlite3.sqlite_version,
    }
    setup: list[dict[str, Any]] = []
    results: list[dict[str, Any]] = []
    if not args.skip_sqlite:
        with tempfile.TemporaryDirectory(prefix="modeldeck-bench-") as tmp:
            steps, found = bench_store(
                err, "sqlite", f"sqlite:///{Path(tmp) / 'modeldeck.db'}", n, days, repeat
            )
            setup += steps
            results += found
    if not args.skip_postgres:
        with postgres_database(err, args.postgres_url) as (url, version):
            machine["postgres_server"] = version
            steps, found = bench_store(err, "postgres", url, n, days, repeat)
            setup += steps
            results += found
    title = (
        f"modeldeck dashboard API: {n:,} predictions and {days} days of rollups "
        f"({os.cpu_count()} CPUs, median of {repeat})"
    )
    out.print(results_table(results, title))
    targeted = [r for r in results if r["targeted"]]
    report = {
        "timestamp": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine,
        "settings": {
            "predictions": n,
            "days": days,
            "repeat": repeat,
            "replicas": REPLICAS,
            "postgres_url": make_url(args.postgres_url).render_as_string(hide_password=True),
        },
        "setup": setup,
        "results": results,
        "target": {
            "median_ms_below": TARGET_MS,
            "met": all(r["met"] for r in targeted),
            "missed": [f"{r['store']}:{r['key']}" for r in targeted if not r["met"]],
        },
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2) + "\n")
    progress(err, f"results written to {args.output}")


main = entry_point(parse_args, run, width=180)


if __name__ == "__main__":
    sys.exit(main())
