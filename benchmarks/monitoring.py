"""Monitoring benchmark: drift and windowed performance over stored predictions, vs Evidently.

What it measures, per store (a throwaway SQLite file, a throwaway PostgreSQL database)
    N predictions (default 1,000,000) of a binary classifier are stored as replicas track them:
    20 input features (16 numeric, 4 categorical with 3 to 10 categories), the predicted class
    ("0"/"1") and the class probabilities, spread evenly over 24 hours, with drift injected
    into the last 12 hours: f0 shifted by one standard deviation, f1 widened, f3 shifted a
    little (too little to count), f4's tail grown, f17 re-weighted, f19 given a category the
    reference never saw. The model sees the drifted inputs, the truth does not, so accuracy
    falls in the second half. Every prediction then gets its ground truth
    (``track_delayed_many``, 20,000 per call), and the reference is 50,000 rows of the
    undrifted distribution with a ``target`` column. That setup is timed and reported, but the
    targets are not about it.

    * building the summaries: the first drift and performance reports over the 24 hours
      build the five-minute summaries they are assembled from (in the platform a background
      task keeps them current as data arrives; reported, no target).
    * drift (default): ``AnalysisService.drift`` over the 24 hours with default settings: a
      window above ``max_rows`` predictions is tested on the five-minute summaries.
    * performance: ``AnalysisService.performance`` in 24 hourly windows (confusion matrices,
      log loss and ROC AUC), assembled from the summaries.
    * drift (exact) and performance (raw): the same from every stored record, without
      summaries (``exact=True``; a service with ``summaries=False``), run once, for comparison.
    * Evidently: ``Report([DataDriftPreset()])`` on the same reference against the same
      current values (the stored inputs, and the predicted class as a ``prediction`` column,
      held in a DataFrame; building it and reading it from a store are not timed), run once
      per process and compared with every store. Its import time is reported beside it.

    * over HTTP: the same drift (default) and performance reports asked of a real
      ``modeldeck server`` on the same store, as the CLI and users ask them (``GET
      /api/v1/deployments/bench/drift`` and ``.../performance?step=3600``): cold (the first
      call after the server started, with the summaries already stored, ``--repeat`` server
      starts) and warm (``--repeat`` calls more), with the server's resident memory after
      them. Each warm HTTP call follows the same report in process (``..._beside_http``),
      so that both are timed under the same load: their difference is what the server adds
      (HTTP, JSON, its own threads); the cold ones add reading the summaries back from the
      store after a start.
      ``--skip-http`` leaves them out.

    Each is timed ``--repeat`` times: the median counts, the minimum is shown beside it. The
    process's GC is tuned as the platform's is (``tune_gc``) once the data is set up.
    Targets: drift (default) < 2 s and >= 5x faster than Evidently; performance < 2 s (in
    process and over HTTP, warm and cold). A miss
    is reported as FAIL; the exit code is non-zero only when the benchmark cannot run.

    In the same run, modeldeck's exact per-column verdicts are cross-checked against
    Evidently's (method, statistic and verdict of each of the 21 columns: 20 features and the
    prediction), and the default (binned) report against the exact one; the performance from
    summaries must equal the raw aggregation. Disagreement in drift is reported, never failed.

How to run
    Evidently is a benchmark-only dependency (the ``bench`` extra). It needs plotly < 6 while
    the platform's environment has plotly 7, so it gets a virtual environment of its own:

        make bench-monitoring        # creates .venv-bench with '.[postgres,bench]' and runs it
        .venv-bench/bin/python benchmarks/monitoring.py --predictions 100000 --skip-postgres

    ``--skip-evidently`` runs without it (and without the comparisons), in the platform's own
    environment: ``.venv/bin/python benchmarks/monitoring.py --skip-evidently``.

    ``--postgres-url`` is an admin URL: a database ``modeldeck_bench_<random>`` is created next
    to it and dropped at the end. Results are printed as tables and written as JSON (default
    ``benchmarks/results/monitoring.json``). Progress goes to stderr.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import os
import platform
import secrets
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import numpy.typing as npt
import pandas as pd
from ingest import BenchError, entry_point, postgres_database, progress  # shared helpers
from rich.console import Console
from rich.table import Table
from sqlalchemy import text
from sqlalchemy.engine import make_url

from modeldeck.monitoring.analysis import AnalysisService
from modeldeck.monitoring.config import MonitoringConfig
from modeldeck.monitoring.drift import stats
from modeldeck.process import tune_gc
from modeldeck.records.model_metrics import ModelMetrics, PredictionRecord, new_prediction_id
from modeldeck.registry import Registry
from modeldeck.store import Store
from modeldeck.store.schema import DeploymentRow

DRIFT_SECONDS = 2.0  # drift (default) and performance, per store
SPEEDUP = 5.0  # drift (default) against Evidently's DataDriftPreset
HOUR_MS = 3_600_000
SPAN_MS = 24 * HOUR_MS
REFERENCE_ROWS = 50_000
INSERT_CHUNK = 10_000
DELAYED_CHUNK = 20_000
NAME = "bench"
NUMERIC = [f"f{i}" for i in range(16)]
CATEGORIES = {"f16": 4, "f17": 3, "f18": 7, "f19": 10}
CATEGORICAL = list(CATEGORIES)
FEATURES = NUMERIC + CATEGORICAL
PREDICTION = "prediction"  # Evidently's name for modeldeck's prediction drift (output vs target)
DRIFT_INJECTED = {
    "f0": "shifted by +1 std (+2.0)",
    "f1": "std x1.8",
    "f3": "shifted by +0.1 std (+1.5), too little to count",
    "f4": "log-normal sigma 0.5 -> 0.9",
    "f17": "category shares 0.6/0.3/0.1 -> 0.3/0.3/0.4",
    "f19": "8% an unseen category",
}
EVIDENTLY_METHODS = {  # Evidently's display names -> modeldeck's method names
    "K-S p_value": "ks",
    "chi-square p_value": "chisquare",
    "Z-test p_value": "z",
    "Wasserstein distance (normed)": "wasserstein",
    "Jensen-Shannon distance": "jensenshannon",
    "PSI": "psi",
    "Hellinger distance": "hellinger",
}
MEASUREMENTS = {
    "summaries": "building the summaries (first drift + performance)",
    "drift": "drift (default: from summaries)",
    "performance": "performance (24 hourly windows, from summaries)",
    "drift_exact": "drift (exact: every record)",
    "performance_raw": "performance (24 hourly windows, raw records)",
    "evidently": "Evidently DataDriftPreset",
    "http_drift_cold": "drift (default) over HTTP, first call after a server start",
    "http_performance_cold": "performance (24 hourly windows) over HTTP, first after a start",
    "http_drift": "drift (default) over HTTP, warm",
    "http_performance": "performance (24 hourly windows) over HTTP, warm",
    "drift_beside_http": "drift (default) in process, each run just before a warm HTTP one",
    "performance_beside_http": "performance in process, each run just before a warm HTTP one",
}
TARGETED = {"drift", "performance", "http_drift_cold", "http_performance_cold", "http_drift",
            "http_performance"}  # fmt: skip
PACKAGES = ("modeldeck", "evidently", "pandas", "numpy", "scipy", "scikit-learn", "sqlalchemy",
            "psycopg", "orjson", "plotly")  # fmt: skip
DEFAULT_PG = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
DEFAULT_OUTPUT = Path(__file__).resolve().parent / "results" / "monitoring.json"
FloatArray = npt.NDArray[np.float64]


# --- data --------------------------------------------------------------------------------------


@dataclass
class Data:
    """The current window as stored (features, outputs, truth, times) and the reference."""

    current: pd.DataFrame  # FEATURES, as stored
    p1: FloatArray  # the model's probability of class "1", as stored
    output: npt.NDArray[Any]  # the predicted class, "0" or "1"
    actual: npt.NDArray[Any]  # the ground truth, "0" or "1"
    end_ms: npt.NDArray[np.int64]
    reference: pd.DataFrame  # FEATURES + "target"
    start_ms: int
    stop_ms: int


def _categories(column: str) -> list[str]:
    return [f"{column}_c{k}" for k in range(CATEGORIES[column])]


def _undrifted(rng: np.random.Generator, n: int) -> dict[str, npt.NDArray[Any]]:
    cols: dict[str, npt.NDArray[Any]] = {
        "f0": rng.normal(10.0, 2.0, n),
        "f1": rng.normal(0.0, 1.0, n),
        "f2": rng.normal(-3.0, 0.5, n),
        "f3": rng.normal(100.0, 15.0, n),
        "f4": rng.lognormal(0.0, 0.5, n),
        "f5": rng.exponential(2.0, n),
        "f6": rng.uniform(0.0, 1.0, n),
        "f7": rng.poisson(8.0, n).astype(np.int64),  # a count: stored as JSON integers
    }
    for i in range(8, 16):
        cols[f"f{i}"] = rng.normal(float(i), 1.0 + i / 10, n)
    shares = {
        "f16": [0.4, 0.3, 0.2, 0.1],
        "f17": [0.6, 0.3, 0.1],
        "f18": [0.3, 0.2, 0.15, 0.12, 0.1, 0.08, 0.05],
        "f19": [0.1] * 10,
    }
    for column, p in shares.items():
        cols[column] = np.asarray(_categories(column), dtype=object)[rng.choice(len(p), n, p=p)]
    return cols


def _drift(rng: np.random.Generator, cols: dict[str, npt.NDArray[Any]]) -> None:
    """What the model sees in the last 12 hours (in place); the truth keeps the undrifted."""
    n = len(cols["f0"])
    cols["f0"] = cols["f0"] + 2.0
    cols["f1"] = cols["f1"] * 1.8
    cols["f3"] = cols["f3"] + 1.5
    cols["f4"] = cols["f4"] ** 1.8
    cols["f17"] = np.asarray(_categories("f17"), dtype=object)[rng.choice(3, n, p=[0.3, 0.3, 0.4])]
    unseen = rng.random(n) < 0.08
    cols["f19"] = np.where(unseen, "f19_new", cols["f19"]).astype(object)


def _p1(cols: dict[str, npt.NDArray[Any]]) -> FloatArray:
    logit = (
        0.75 * (cols["f0"] - 10.0)
        - 1.0 * cols["f1"]
        + 2.0 * (cols["f2"] + 3.0)
        + 0.8 * (cols["f17"] == "f17_c2")
        - 0.5 * (cols["f16"] == "f16_c0")
        + 0.3 * (cols["f4"] - 1.0)
        - 0.2
    ).astype(np.float64)
    return np.asarray(1.0 / (1.0 + np.exp(-logit)), dtype=np.float64)


def _rounded(cols: dict[str, npt.NDArray[Any]], decimals: int) -> dict[str, npt.NDArray[Any]]:
    return {
        c: np.round(v, decimals) if c in NUMERIC and v.dtype.kind == "f" else v
        for c, v in cols.items()
    }


def make_data(n: int, seed: int, decimals: int) -> Data:
    rng = np.random.default_rng(seed)
    stop_ms = (int(time.time() * 1000) // HOUR_MS) * HOUR_MS
    start_ms = stop_ms - SPAN_MS
    end_ms = np.sort(rng.integers(start_ms, stop_ms, n)).astype(np.int64)
    truth = _undrifted(rng, n)
    seen = {c: v.copy() for c, v in truth.items()}
    late = end_ms >= start_ms + SPAN_MS // 2
    drifted = {c: v[late] for c, v in seen.items()}
    _drift(rng, drifted)
    for c, v in drifted.items():
        seen[c][late] = v
    seen = _rounded(seen, decimals)
    p1 = np.round(_p1(seen), 4)
    actual = np.where(rng.random(n) < _p1(truth), "1", "0").astype(object)
    reference_cols = _rounded(_undrifted(rng, REFERENCE_ROWS), decimals)
    target = np.where(rng.random(REFERENCE_ROWS) < _p1(reference_cols), "1", "0")
    reference = pd.DataFrame({**reference_cols, "target": target.astype(object)})
    return Data(
        current=pd.DataFrame(seen)[FEATURES],
        p1=p1,
        output=np.where(p1 >= 0.5, "1", "0").astype(object),
        actual=actual,
        end_ms=end_ms,
        reference=reference[[*FEATURES, "target"]],
        start_ms=start_ms,
        stop_ms=stop_ms,
    )


def _records(data: Data, deployment_id: str, lo: int, hi: int) -> list[PredictionRecord]:
    columns = [data.current[c].to_numpy()[lo:hi].tolist() for c in FEATURES]
    p1 = data.p1[lo:hi].tolist()
    outputs = data.output[lo:hi].tolist()
    ends = data.end_ms[lo:hi].tolist()
    records = []
    for values, p, out, end in zip(zip(*columns, strict=True), p1, outputs, ends, strict=True):
        metrics = {
            "input": dict(zip(FEATURES, values, strict=True)),
            "output": out,
            "probabilities": {"0": round(1.0 - p, 4), "1": p},
        }
        records.append(
            PredictionRecord(new_prediction_id(), deployment_id, end - 5, end, metrics, "1", 0)
        )
    return records


# --- the store ---------------------------------------------------------------------------------


def _add_deployment(store: Store) -> str:
    """A batch deployment (predictions recorded, no endpoint): no MLflow lookup for reference
    data or an estimator, and no replica for the HTTP measurements' server to start."""
    with store.write() as session:
        session.add(
            DeploymentRow(
                id=f"id-{NAME}", name=NAME, crn=f"crn:{NAME}", model_name="bench_model",
                model_version="1", version_spec="1", model_uri="file:bench_model.py",
                runtime="none", replicas=0, environment={}, auth_enabled=True,
                desired_state="stopped", status="active", status_message="", source="file",
                file_path="bench_model.py", function_name="predict", kind="batch",
            )
        )  # fmt: skip
    return f"id-{NAME}"


def set_up(
    err: Console, label: str, store: Store, service: AnalysisService, data: Data
) -> list[dict[str, Any]]:
    """Schema, deployment, predictions, ground truth and reference; one dict per step."""
    steps: list[dict[str, Any]] = []
    n = len(data.end_ms)

    def step(key: str, rows: int, seconds: float) -> None:
        steps.append({"store": label, "step": key, "rows": rows, "seconds": round(seconds, 3)})
        progress(err, f"{label}: setup {key}: {rows:,} rows in {seconds:.1f}s")

    started = time.perf_counter()
    store.migrate()
    deployment_id = _add_deployment(store)
    step("schema and deployment", 1, time.perf_counter() - started)

    metrics = ModelMetrics(store)
    uuids: list[str] = []
    started = time.perf_counter()
    for lo in range(0, n, INSERT_CHUNK):
        records = _records(data, deployment_id, lo, min(lo + INSERT_CHUNK, n))
        uuids.extend(r.uuid for r in records)
        metrics.insert_predictions(records)
    step("predictions (insert_predictions)", n, time.perf_counter() - started)

    started = time.perf_counter()
    actual = data.actual.tolist()
    for lo in range(0, n, DELAYED_CHUNK):
        entries = [
            (u, {"actual_result": a})
            for u, a in zip(
                uuids[lo : lo + DELAYED_CHUNK], actual[lo : lo + DELAYED_CHUNK], strict=True
            )
        ]
        metrics.track_delayed_many(None, entries)
    step("ground truth (track_delayed_many)", n, time.perf_counter() - started)

    started = time.perf_counter()
    service.set_reference(NAME, data.reference, source="benchmark", target_column="target")
    step("reference (set_reference)", len(data.reference), time.perf_counter() - started)

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


def timed(fn: Callable[[], Any], repeat: int) -> tuple[list[float], Any]:
    """``fn`` run ``repeat`` times: the seconds of each run and the last result."""
    seconds: list[float] = []
    result = None
    for _ in range(repeat):
        started = time.perf_counter()
        result = fn()
        seconds.append(time.perf_counter() - started)
    return seconds, result


def summary(key: str, label: str, rows: int, seconds: list[float]) -> dict[str, Any]:
    return {
        "store": label, "key": key, "measurement": MEASUREMENTS[key], "rows": rows,
        "median_s": round(statistics.median(seconds), 4), "min_s": round(min(seconds), 4),
        "runs_s": [round(s, 4) for s in seconds],
    }  # fmt: skip


def check_drift(report: dict[str, Any], n: int, *, exact: bool) -> None:
    if report["predictions"] != n or report["current_rows"] != n:
        raise BenchError(
            f"drift counted {report['predictions']:,} predictions and "
            f"{report['current_rows']:,} rows, not {n:,}"
        )
    if report["mode"] != ("raw" if exact else "binned"):
        raise BenchError(f"drift mode {report['mode']} with exact={exact}")
    if len(report["columns"]) != len(FEATURES) or report["prediction"] is None:
        raise BenchError("drift did not report every feature and the prediction")


def check_performance(report: dict[str, Any], n: int) -> None:
    windows = report["windows"]
    predictions = sum(w["predictions"] for w in windows)
    labelled = sum(w["labelled"] for w in windows)
    if len(windows) != 24 or predictions != n or labelled != n:
        raise BenchError(
            f"performance: {len(windows)} windows, {predictions:,} predictions, {labelled:,} "
            f"labelled; expected 24, {n:,}, {n:,}"
        )
    if any(w["realised"] is None or w["realised"].get("roc_auc") is None for w in windows):
        raise BenchError("performance: a window has no realised metrics or ROC AUC")


def same_performance(summarised: dict[str, Any], raw: dict[str, Any]) -> None:
    """The windows from summaries must be those of the raw aggregation (floats to 1e-9)."""
    for a, b in zip(summarised["windows"], raw["windows"], strict=True):
        for key in ("start", "predictions", "labelled"):
            if a[key] != b[key]:
                raise BenchError(f"performance from summaries differs: {key} {a[key]} != {b[key]}")
        for metric, value in (b["realised"] or {}).items():
            mine = (a["realised"] or {}).get(metric)
            if isinstance(value, float) and not math.isclose(mine, value, rel_tol=1e-9):
                raise BenchError(f"performance from summaries differs: {metric} {mine} != {value}")


# --- over HTTP ----------------------------------------------------------------------------------


class Server:
    """A real ``modeldeck server`` process on ``store_url`` (no background summarising, so
    that nothing but the measured calls runs in it)."""

    def __init__(self, store_url: str, tmp: Path, label: str) -> None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = int(s.getsockname()[1])
        self.url = f"http://127.0.0.1:{port}"
        self.api_key = "mdk_bench_" + secrets.token_hex(8)
        data_dir = tmp / f"server-{label}"
        data_dir.mkdir(exist_ok=True)
        env = {
            **os.environ,
            "MODELDECK_DATA_DIR": str(data_dir),
            "MODELDECK_STORE_URL": store_url,
            "MLFLOW_TRACKING_URI": f"sqlite:///{data_dir / 'mlflow.db'}",
            "MODELDECK_API_KEY": self.api_key,
            "MODELDECK_PORT": str(port),
            "MODELDECK_LOG_LEVEL": "warning",
            "MODELDECK_SUMMARY_INTERVAL_SECONDS": "0",
        }
        self.log = data_dir / "server.log"
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "modeldeck.cli.main", "server"],
                env=env, stdout=log, stderr=subprocess.STDOUT,
            )  # fmt: skip
        self.http = httpx.Client(
            base_url=self.url, headers={"Authorization": f"Bearer {self.api_key}"}, timeout=600
        )
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise BenchError(f"the server exited: {self.log.read_text()[-2000:]}")
            try:
                if self.http.get("/health", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        self.stop()
        raise BenchError(f"the server did not start: {self.log.read_text()[-2000:]}")

    def get(self, path: str, params: dict[str, Any]) -> dict[str, Any]:
        answer = self.http.get(path, params=params)
        if answer.status_code != 200:
            raise BenchError(f"GET {path}: {answer.status_code} {answer.text[:500]}")
        return answer.json()  # type: ignore[no-any-return]

    def rss_mb(self) -> float:
        import psutil

        return round(psutil.Process(self.proc.pid).memory_info().rss / 1e6, 1)

    def stop(self) -> None:
        self.http.close()
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def bench_http(
    err: Console,
    label: str,
    url: str,
    data: Data,
    repeat: int,
    tmp: Path,
    service: AnalysisService,
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Drift and performance through a real server on the store the in-process runs filled:
    the first call after each of ``repeat`` starts (cold), then ``repeat`` calls (warm), each
    warm one just after the same report in process (``service``), so that the two are timed
    under the same load of the machine and their difference is what the server adds."""
    n = len(data.end_ms)
    window = {"start": data.start_ms, "end": data.stop_ms}
    drift_path = f"/api/v1/deployments/{NAME}/drift"
    performance_path = f"/api/v1/deployments/{NAME}/performance"
    keys = [k for k in MEASUREMENTS if k.startswith("http_") or k.endswith("_beside_http")]
    runs: dict[str, list[float]] = {key: [] for key in keys}
    last: dict[str, Any] = {}
    memory: dict[str, Any] = {}

    def call(key: str, path: str, params: dict[str, Any]) -> None:
        started = time.perf_counter()
        last[key] = server.get(path, params)
        runs[key].append(time.perf_counter() - started)

    def in_process(key: str, report: Callable[[], Any]) -> None:
        started = time.perf_counter()
        report()
        runs[key].append(time.perf_counter() - started)

    for attempt in range(repeat):
        server = Server(url, tmp, label)
        try:
            memory["rss_mb_after_start"] = server.rss_mb()
            call("http_drift_cold", drift_path, window)
            call("http_performance_cold", performance_path, {**window, "step": 3600})
            if attempt == repeat - 1:
                for _ in range(repeat):
                    in_process(
                        "drift_beside_http",
                        lambda: service.drift(NAME, start_ms=data.start_ms, end_ms=data.stop_ms),
                    )
                    call("http_drift", drift_path, window)
                    in_process(
                        "performance_beside_http",
                        lambda: service.performance(
                            NAME, start_ms=data.start_ms, end_ms=data.stop_ms, step_ms=HOUR_MS
                        ),
                    )
                    call("http_performance", performance_path, {**window, "step": 3600})
                memory["rss_mb_after_reports"] = server.rss_mb()
        finally:
            server.stop()
    check_drift(last["http_drift"], n, exact=False)
    check_performance(last["http_performance"], n)
    results = [summary(key, label, n, seconds) for key, seconds in runs.items()]
    for r in results:
        runs_text = ", ".join(f"{s:.2f}" for s in r["runs_s"])
        progress(err, f"{label}: {r['measurement']}: runs {runs_text} s")
    return results, {"store": label, **memory}


def bench_store(
    err: Console, label: str, url: str, data: Data, repeat: int, tmp: Path, *, http: bool = True
) -> dict[str, Any]:
    n = len(data.end_ms)
    store = Store(url)
    try:
        registry = Registry(f"sqlite:///{tmp / 'mlflow-unused.db'}")
        service = AnalysisService(store, registry)
        raw_service = AnalysisService(store, registry, summaries=False)
        setup = set_up(err, label, store, service, data)
        tune_gc()  # as the platform does
        start, end = data.start_ms, data.stop_ms
        results: list[dict[str, Any]] = []

        def note(key: str, rows: int, seconds: list[float]) -> None:
            results.append(summary(key, label, rows, seconds))
            runs = ", ".join(f"{s:.2f}" for s in seconds)
            progress(err, f"{label}: {MEASUREMENTS[key]}: {rows:,} rows, runs {runs} s")

        def drift() -> Any:
            return service.drift(NAME, start_ms=start, end_ms=end)

        def performance() -> Any:
            return service.performance(NAME, start_ms=start, end_ms=end, step_ms=HOUR_MS)

        started = time.perf_counter()
        drift()
        performance()
        note("summaries", n, [time.perf_counter() - started])
        seconds, binned = timed(drift, repeat)
        check_drift(binned, n, exact=False)
        note("drift", n, seconds)
        seconds, perf = timed(performance, repeat)
        check_performance(perf, n)
        note("performance", n, seconds)
        seconds, full = timed(
            lambda: service.drift(NAME, start_ms=start, end_ms=end, exact=True), 1
        )
        check_drift(full, n, exact=True)
        note("drift_exact", n, seconds)
        seconds, raw = timed(
            lambda: raw_service.performance(NAME, start_ms=start, end_ms=end, step_ms=HOUR_MS), 1
        )
        same_performance(perf, raw)
        note("performance_raw", n, seconds)
        server: dict[str, Any] | None = None
        if http:
            over_http, server = bench_http(err, label, url, data, repeat, tmp, service)
            results.extend(over_http)
        return {
            "setup": setup,
            "results": results,
            "server": server,
            "reports": {"binned": binned, "full": full, "performance": perf},
        }
    finally:
        store.close()


# --- Evidently ---------------------------------------------------------------------------------


def evidently_frames(data: Data, rows: int, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Reference and current as Evidently takes them: the features and a prediction column."""
    reference = data.reference[FEATURES].assign(**{PREDICTION: data.reference["target"]})
    current = data.current.assign(**{PREDICTION: data.output})
    if rows < len(current):
        current = current.sample(rows, random_state=seed).reset_index(drop=True)
    return reference, current


def import_seconds_fresh() -> float | None:
    """Evidently's import time in a new interpreter (pandas, scipy and the rest included)."""
    code = (
        "import time; t = time.perf_counter(); import evidently; from evidently import Report; "
        "from evidently.presets import DataDriftPreset; print(time.perf_counter() - t)"
    )
    found = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    try:
        return float(found.stdout.strip().splitlines()[-1])
    except (IndexError, ValueError):
        return None


def bench_evidently(
    err: Console, data: Data, rows: int, repeat: int, seed: int
) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    """Time ``Report([DataDriftPreset()]).run``; returns the timings and per-column results."""
    started = time.perf_counter()
    try:
        import evidently
        from evidently import DataDefinition, Dataset, Report
        from evidently.presets import DataDriftPreset
    except ImportError as exc:
        raise BenchError(
            f"Evidently is not installed for {sys.executable} ({exc}); it is a benchmark-only "
            "dependency: run 'make bench-monitoring', or .venv-bench/bin/python"
        ) from exc
    import_s = time.perf_counter() - started
    progress(err, f"Evidently {evidently.__version__} imported in {import_s:.1f}s")

    started = time.perf_counter()
    reference, current = evidently_frames(data, rows, seed)
    frame_s = time.perf_counter() - started
    definition = DataDefinition(
        numerical_columns=NUMERIC, categorical_columns=[*CATEGORICAL, PREDICTION]
    )
    wrap_s: list[float] = []

    def run() -> Any:
        begun = time.perf_counter()
        current_ds = Dataset.from_pandas(current, data_definition=definition)
        reference_ds = Dataset.from_pandas(reference, data_definition=definition)
        wrap_s.append(time.perf_counter() - begun)
        return Report([DataDriftPreset()]).run(current_ds, reference_ds)

    progress(err, f"Evidently DataDriftPreset: {len(current):,} current rows, {repeat} runs")
    seconds, snapshot = timed(run, repeat)
    runs = ", ".join(f"{s:.1f}" for s in seconds)
    progress(err, f"Evidently DataDriftPreset: {len(current):,} rows, runs {runs} s")
    columns: dict[str, dict[str, Any]] = {}
    for metric in snapshot.dict()["metrics"]:
        config = metric["config"]
        if not config.get("type", "").endswith("ValueDrift"):
            continue
        method = EVIDENTLY_METHODS.get(config["method"], config["method"])
        value = float(metric["value"])
        kind = stats.METHODS[method].kind if method in stats.METHODS else "distance"
        drifted = value < config["threshold"] if kind == "pvalue" else value >= config["threshold"]
        columns[config["column"]] = {
            "method": method, "statistic": value, "threshold": config["threshold"],
            "drifted": drifted,
        }  # fmt: skip
    timing = {
        **summary("evidently", "-", len(current), seconds),
        "version": evidently.__version__,
        "import_s": round(import_s, 3),
        "import_fresh_process_s": import_seconds_fresh(),
        "frame_s": round(frame_s, 4),
        "dataset_wrap_s": [round(s, 4) for s in wrap_s],
        "reference_rows": len(reference),
        "columns": len(reference.columns),
    }
    return timing, columns


# --- cross-check -------------------------------------------------------------------------------


def cross_check(full: dict[str, Any], evidently: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """modeldeck's verdicts on every row against Evidently's, column by column."""
    ours = {c["column"]: c for c in full["columns"]}
    ours[PREDICTION] = full["prediction"]
    rows = []
    for column in [*FEATURES, PREDICTION]:
        mine, theirs = ours[column], evidently.get(column)
        row: dict[str, Any] = {
            "column": column, "kind": mine["kind"], "modeldeck_method": mine["method"],
            "modeldeck_statistic": mine["statistic"], "modeldeck_drifted": mine["drifted"],
        }  # fmt: skip
        if theirs is not None:
            row |= {
                "evidently_method": theirs["method"], "evidently_statistic": theirs["statistic"],
                "evidently_drifted": theirs["drifted"],
                "same_method": theirs["method"] == mine["method"],
                "same_verdict": theirs["drifted"] == mine["drifted"],
            }  # fmt: skip
            if row["same_method"] and mine["statistic"] is not None:
                row["abs_difference"] = abs(mine["statistic"] - theirs["statistic"])
        rows.append(row)
    compared = [r for r in rows if "evidently_method" in r]
    differences = [r["abs_difference"] for r in rows if "abs_difference" in r]
    return {
        "columns": rows,
        "compared": len(compared),
        "same_method": sum(r["same_method"] for r in compared),
        "same_verdict": sum(r["same_verdict"] for r in compared),
        "max_abs_statistic_difference": max(differences) if differences else None,
        "modeldeck_drifted": [r["column"] for r in rows if r["modeldeck_drifted"]],
        "evidently_drifted": [r["column"] for r in compared if r["evidently_drifted"]],
    }


def binned_check(binned: dict[str, Any], full: dict[str, Any]) -> dict[str, Any]:
    """How the default (binned) report's verdicts compare with the exact one."""
    pairs = list(zip(binned["columns"], full["columns"], strict=True))
    differences = [
        abs(s["statistic"] - f["statistic"])
        for s, f in pairs
        if s["statistic"] is not None and f["statistic"] is not None
    ]
    return {
        "same_verdict": sum(s["drifted"] == f["drifted"] for s, f in pairs),
        "columns": len(pairs),
        "max_abs_statistic_difference": max(differences) if differences else None,
    }


# --- output ------------------------------------------------------------------------------------


def verdicts(result: dict[str, Any], evidently_s: float | None) -> dict[str, Any] | None:
    """The target of one measurement, or None when it has none (without Evidently, the
    speed-up is not judged)."""
    seconds = result["median_s"]
    if result["key"] == "drift" and evidently_s is not None:
        speedup = evidently_s / seconds if seconds > 0 else math.inf
        met = seconds < DRIFT_SECONDS and speedup >= SPEEDUP
        return {
            "median_s": seconds, "threshold_s": DRIFT_SECONDS, "speedup": round(speedup, 2),
            "min_speedup": SPEEDUP, "met": met,
        }  # fmt: skip
    if result["key"] in TARGETED:
        return {"median_s": seconds, "threshold_s": DRIFT_SECONDS, "met": seconds < DRIFT_SECONDS}
    return None


def results_table(results: list[dict[str, Any]], evidently_s: float | None, n: int) -> Table:
    table = Table(title=f"modeldeck monitoring: {n:,} stored predictions ({os.cpu_count()} CPUs)")
    for column in ("store", "measurement", "rows", "median s", "min s", "vs Evidently", "target"):
        table.add_column(column, justify="left" if column in ("store", "measurement") else "right")
    for r in results:
        target = verdicts(r, evidently_s)
        text_ = "-"
        if target is not None:
            mark = "[green]PASS" if target["met"] else "[red]FAIL"
            goal = f"< {DRIFT_SECONDS:g} s" + (f", >= {SPEEDUP:g}x" if "speedup" in target else "")
            text_ = f"{mark}[/] {goal}"
        table.add_row(
            r["store"], r["measurement"], f"{r['rows']:,}", f"{r['median_s']:.3f}",
            f"{r['min_s']:.3f}", _relative(r, evidently_s), text_,
        )  # fmt: skip
    return table


def setup_table(setup: list[dict[str, Any]]) -> Table:
    table = Table(title="setup (not measured against a target)")
    for column in ("store", "what", "rows", "seconds"):
        table.add_column(column, justify="left" if column in ("store", "what") else "right")
    for s in setup:
        table.add_row(s["store"], f"setup: {s['step']}", f"{s['rows']:,}", f"{s['seconds']:.1f}")
    return table


def cross_table(check: dict[str, Any], evidently_rows: int, n: int) -> Table:
    title = (
        f"cross-check, every row: {check['same_verdict']}/{check['compared']} verdicts agree, "
        f"{check['same_method']}/{check['compared']} methods agree, max |statistic difference| "
        f"{_number(check['max_abs_statistic_difference'])}"
    )
    if evidently_rows < n:
        title += f" (Evidently on {evidently_rows:,} of {n:,} rows)"
    table = Table(title=title)
    for column in ("column", "kind", "modeldeck", "statistic", "drift", "Evidently", "statistic",
                   "drift", "agree"):  # fmt: skip
        table.add_column(column, justify="right" if column == "statistic" else "left")
    for r in check["columns"]:
        table.add_row(
            r["column"], r["kind"], r["modeldeck_method"], _number(r["modeldeck_statistic"]),
            _yes(r["modeldeck_drifted"]), r.get("evidently_method", "-"),
            _number(r.get("evidently_statistic")), _yes(r.get("evidently_drifted")),
            _yes(r.get("same_verdict")),
        )  # fmt: skip
    return table


def _relative(result: dict[str, Any], evidently_s: float | None) -> str:
    if evidently_s is None:
        return "-"
    if result["key"] == "evidently":
        return "1x"
    speedup = evidently_s / result["median_s"] if result["median_s"] > 0 else math.inf
    return f"{speedup:.1f}x faster" if speedup >= 1 else f"{1 / speedup:.1f}x slower"


def _number(value: float | None) -> str:
    return "-" if value is None else f"{value:.4g}"


def _yes(value: bool | None) -> str:
    return "-" if value is None else ("yes" if value else "no")


def _version(package: str) -> str | None:
    try:
        return version(package)
    except PackageNotFoundError:
        return None


# --- main --------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Benchmark drift and windowed performance over stored predictions."
    )
    parser.add_argument(
        "--predictions", type=int, default=1_000_000, help="stored predictions (1000000)"
    )
    parser.add_argument("--repeat", type=int, default=3, help="timed runs of each (3)")
    parser.add_argument(
        "--evidently-rows", type=int, default=None,
        help="current rows given to Evidently (default: all of --predictions)",
    )  # fmt: skip
    parser.add_argument(
        "--decimals", type=int, default=4, help="decimals of the float features as stored (4)"
    )
    parser.add_argument("--seed", type=int, default=0, help="random seed of the data (0)")
    parser.add_argument("--postgres-url", default=DEFAULT_PG, help=f"admin URL ({DEFAULT_PG})")
    parser.add_argument("--skip-postgres", action="store_true", help="only benchmark SQLite")
    parser.add_argument(
        "--skip-evidently", action="store_true",
        help="no Evidently timing or cross-check (runs in the platform's own environment)",
    )  # fmt: skip
    parser.add_argument(
        "--skip-http", action="store_true", help="no measurements through a real server"
    )
    parser.add_argument(
        "--output", type=Path, default=DEFAULT_OUTPUT,
        help="JSON results file (default benchmarks/results/monitoring.json)",
    )  # fmt: skip
    args = parser.parse_args(argv)
    if args.evidently_rows is None:
        args.evidently_rows = args.predictions
    if args.predictions < 1000 or args.repeat < 1 or args.evidently_rows < 1:
        parser.error("need --predictions >= 1000, --repeat >= 1, --evidently-rows >= 1")
    args.evidently_rows = min(args.evidently_rows, args.predictions)
    return args


def run(args: argparse.Namespace, out: Console, err: Console) -> None:
    n = args.predictions
    if not args.skip_evidently and importlib.util.find_spec("evidently") is None:
        raise BenchError(
            f"Evidently is not installed for {sys.executable}; it is a benchmark-only "
            "dependency: run 'make bench-monitoring', or .venv-bench/bin/python (or pass "
            "--skip-evidently)"
        )
    load_before = os.getloadavg()
    progress(err, f"making {n:,} predictions and {REFERENCE_ROWS:,} reference rows")
    started = time.perf_counter()
    data = make_data(n, args.seed, args.decimals)
    progress(err, f"data made in {time.perf_counter() - started:.1f}s")
    machine: dict[str, Any] = {
        "cpu_count": os.cpu_count(), "python": platform.python_version(),
        "platform": platform.platform(), "load_average_at_start": load_before,
        "sqlite": sqlite3.sqlite_version,
    }  # fmt: skip
    versions = {p: _version(p) for p in PACKAGES}
    stores: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="modeldeck-bench-") as tmp:
        url = f"sqlite:///{Path(tmp) / 'modeldeck.db'}"
        http = not args.skip_http
        stores.append(bench_store(err, "sqlite", url, data, args.repeat, Path(tmp), http=http))
        if not args.skip_postgres:
            with postgres_database(err, args.postgres_url) as (pg_url, server):
                machine["postgres_server"] = server
                stores.append(
                    bench_store(err, "postgres", pg_url, data, args.repeat, Path(tmp), http=http)
                )
    evidently_timing: dict[str, Any] | None = None
    evidently_columns: dict[str, dict[str, Any]] = {}
    if not args.skip_evidently:
        evidently_timing, evidently_columns = bench_evidently(
            err, data, args.evidently_rows, args.repeat, args.seed
        )
    machine["load_average_at_end"] = os.getloadavg()

    results = [r for s in stores for r in s["results"]]
    evidently_s = None
    if evidently_timing is not None:
        results.append(evidently_timing)
        evidently_s = evidently_timing["median_s"]
    checks: dict[str, dict[str, Any]] = {
        s["results"][0]["store"]: {
            "evidently": cross_check(s["reports"]["full"], evidently_columns)
            if evidently_timing is not None
            else None,
            "binned_vs_exact": binned_check(s["reports"]["binned"], s["reports"]["full"]),
        }
        for s in stores
    }
    setup = [row for s in stores for row in s["setup"]]
    out.print(results_table(results, evidently_s, n))
    out.print(setup_table(setup))
    first = next(iter(checks.values()))
    if first["evidently"] is not None:
        out.print(cross_table(first["evidently"], args.evidently_rows, n))
    for label, check in checks.items():
        binned = check["binned_vs_exact"]
        ev = check["evidently"]
        versus = (
            f"all rows vs Evidently: {ev['same_verdict']}/{ev['compared']} verdicts, "
            f"{ev['same_method']}/{ev['compared']} methods, max |diff| "
            f"{_number(ev['max_abs_statistic_difference'])}; "
            if ev is not None
            else ""
        )
        out.print(
            f"{label}: {versus}binned vs exact: "
            f"{binned['same_verdict']}/{binned['columns']} verdicts, max |diff| "
            f"{_number(binned['max_abs_statistic_difference'])}",
            highlight=False,
        )
    for s in stores:
        if s["server"] is not None:
            memory = s["server"]
            out.print(
                f"{memory['store']}: server resident memory {memory['rss_mb_after_start']:,} MB "
                f"after its start, {memory['rss_mb_after_reports']:,} MB after the reports",
                highlight=False,
            )
    report = {
        "timestamp": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine,
        "versions": versions,
        "settings": {
            **{k: v for k, v in vars(args).items() if k not in ("output", "postgres_url")},
            "postgres_url": make_url(args.postgres_url).render_as_string(hide_password=True),
            "features": {"numeric": NUMERIC, "categorical": CATEGORIES},
            "drift_injected_in_last_12h": DRIFT_INJECTED,
            "reference_rows": REFERENCE_ROWS,
            "window_ms": [data.start_ms, data.stop_ms],
            "performance_step_ms": HOUR_MS,
            "max_rows": MonitoringConfig().max_rows,
            "insert_chunk": INSERT_CHUNK,
            "delayed_chunk": DELAYED_CHUNK,
        },
        "setup": setup,
        "results": results,
        "server_memory": [s["server"] for s in stores if s["server"] is not None],
        "evidently": evidently_timing,
        "cross_check": checks,
        "drift_report_exact": {
            s["results"][0]["store"]: {
                "dataset": s["reports"]["full"]["dataset"],
                "prediction": s["reports"]["full"]["prediction"],
            }
            for s in stores
        },
        "performance_windows": {
            s["results"][0]["store"]: [
                {"start": w["start"], "predictions": w["predictions"], **(w["realised"] or {})}
                for w in s["reports"]["performance"]["windows"]
            ]
            for s in stores
        },
        "targets": {
            f"{r['store']}: {r['key']}": target
            for r in results
            if (target := verdicts(r, evidently_s)) is not None
        },
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2, default=str) + "\n")
    progress(err, f"results written to {args.output}")


main = entry_point(parse_args, run)


if __name__ == "__main__":
    sys.exit(main())
