"""Replica benchmark: the event loop's CPU per prediction, metrics off against on, in process.

What it measures
    The Iris model is trained and registered in a throwaway MLflow store, then served by three
    replica apps (``create_replica_app``) in this one process, on one event loop:

    * ``off``: metrics off;
    * ``on``: metrics on, journaling into a throwaway SQLite store, as a replica on the
      embedded store records them (input, output and class probabilities);
    * ``on, no probabilities``: the same without the class probabilities, which tells their
      share of the cost.

    Each round sends ``--requests`` predictions of one Iris row to each app in turn, called as
    ASGI apps (no sockets, no HTTP parsing, no gateway), and takes the event loop thread's CPU
    time per request. A cost is the median over rounds of the paired ratio with ``off`` from the
    same round, with a 90 % bootstrap interval: the part of ``benchmarks/serve.py``'s metrics
    cost that the replica's own work explains, resolved in about a minute instead of minutes of
    HTTP load, and free of the other processes' noise.

How to run
    .venv/bin/python benchmarks/replica.py
    .venv/bin/python benchmarks/replica.py --rounds 20 --requests 2000

    Results are printed as a table and written as JSON (default
    ``benchmarks/results/replica.json``). Progress goes to stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import sys
import tempfile
import time
import warnings
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
from ingest import BenchError, add_deployment, entry_point, progress  # shared helpers
from rich.console import Console
from rich.table import Table
from serve import ROW, median_interval, paired_summary

from modeldeck.process import tune_gc
from modeldeck.records.journal import journal_dir
from modeldeck.records.model_metrics import ModelMetrics
from modeldeck.records.writer import GroupWriter
from modeldeck.replica.app import ReplicaConfig, create_replica_app
from modeldeck.replica.model import MlflowModel
from modeldeck.store import Store

MODEL_NAME = "bench-replica"
DEFAULT_OUTPUT = Path(__file__).resolve().parent / "results" / "replica.json"
VARIANTS = {"off": "metrics off", "on": "metrics on", "no_proba": "on, no probabilities"}


class AsgiDriver:
    """Calls one ASGI app's ``POST /predict`` directly, after running its lifespan start-up."""

    def __init__(self, app: Any, body: bytes) -> None:
        self.app = app
        self.body = body
        self.statuses: set[int] = set()
        self._scope = {
            "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
            "method": "POST", "scheme": "http", "path": "/predict", "raw_path": b"/predict",
            "query_string": b"", "root_path": "", "client": ("127.0.0.1", 1),
            "server": ("127.0.0.1", 2),
            "headers": [(b"content-type", b"application/json"),
                        (b"content-length", str(len(body)).encode())],
        }  # fmt: skip
        self._lifespan: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        started = asyncio.Event()

        async def send(message: dict[str, Any]) -> None:
            if message["type"] == "lifespan.startup.complete":
                started.set()
            elif message["type"] == "lifespan.startup.failed":
                raise BenchError(f"the replica app did not start: {message.get('message')}")

        await self._lifespan.put({"type": "lifespan.startup"})
        scope = {"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}
        self._task = asyncio.create_task(self.app(scope, self._lifespan.get, send))
        await asyncio.wait_for(started.wait(), 30)

    async def stop(self) -> None:
        await self._lifespan.put({"type": "lifespan.shutdown"})
        if self._task is not None:
            await self._task

    async def predict(self, count: int) -> float:
        """Send ``count`` predictions; the loop thread's CPU seconds per request."""

        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": self.body, "more_body": False}

        async def send(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                self.statuses.add(message["status"])

        began = time.thread_time()
        for _ in range(count):
            await self.app(dict(self._scope), receive, send)
        used = (time.thread_time() - began) / count
        if self.statuses != {200}:
            raise BenchError(f"the replica answered {sorted(self.statuses)}, not only 200")
        return used


def paired(on: list[float], off: list[float]) -> dict[str, Any]:
    """``median_interval`` of the rounds' on/off ratios, and the median CPU time added."""
    pairs = list(zip(on, off, strict=True))
    return {
        **median_interval([a / b for a, b in pairs]),
        "added_us": statistics.median((a - b) * 1e6 for a, b in pairs),
    }


async def measure(apps: dict[str, Any], body: bytes, args: argparse.Namespace, err: Console):
    drivers = {key: AsgiDriver(app, body) for key, app in apps.items()}
    for driver in drivers.values():
        await driver.start()
        await driver.predict(args.warmup)
    cpu: dict[str, list[float]] = {key: [] for key in drivers}
    for number in range(args.rounds):
        for key, driver in drivers.items():
            cpu[key].append(await driver.predict(args.requests))
        progress(err, f"round {number + 1}/{args.rounds}: " + ", ".join(
            f"{key} {values[-1] * 1e6:.0f} µs" for key, values in cpu.items()
        ))  # fmt: skip
    for driver in drivers.values():
        await driver.stop()
    return cpu


def results_table(cpu: dict[str, list[float]], costs: dict[str, dict[str, Any]]) -> Table:
    table = Table(title=f"replica event loop, CPU per prediction ({os.cpu_count()} CPUs)")
    for column in ("variant", "median µs", "added µs", "paired cost"):
        table.add_column(column, justify="left" if column == "variant" else "right")
    for key, label in VARIANTS.items():
        cost = costs.get(key)
        table.add_row(
            label,
            f"{statistics.median(cpu[key]) * 1e6:.1f}",
            "-" if cost is None else f"{cost['added_us']:+.1f}",
            "-" if cost is None else paired_summary(cost),
        )
    return table


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Benchmark a replica's event-loop CPU per prediction, metrics off and on."
    )
    parser.add_argument("--rounds", type=int, default=12, help="paired rounds (default 12)")
    parser.add_argument(
        "--requests", type=int, default=1000, help="predictions per app per round (1000)"
    )
    parser.add_argument("--warmup", type=int, default=200, help="predictions per app first (200)")
    parser.add_argument(
        "--output", type=Path, default=DEFAULT_OUTPUT,
        help="JSON results file (default benchmarks/results/replica.json)",
    )  # fmt: skip
    args = parser.parse_args(argv)
    if args.rounds < 3 or args.requests < 1 or args.warmup < 0:
        parser.error("need --rounds >= 3, --requests >= 1, --warmup >= 0")
    return args


def run(args: argparse.Namespace, out: Console, err: Console) -> None:
    from modeldeck.demo.train import FEATURES, train_and_register

    # As a replica does: the estimator, fitted on a DataFrame, is called with arrays.
    warnings.filterwarnings("ignore", message="X does not have valid feature names")
    body = orjson.dumps({"dataframe_split": {"columns": list(FEATURES), "data": [ROW]}})
    with tempfile.TemporaryDirectory(prefix="modeldeck-bench-") as tmp:
        work = Path(tmp)
        tracking_uri = f"sqlite:///{work / 'mlflow.db'}"
        progress(err, f"training and registering {MODEL_NAME!r} in {work}")
        version = train_and_register(
            tracking_uri, (work / "mlartifacts").as_uri(), model_name=MODEL_NAME,
            c_values=(1.0,), alias=None,
        ).version  # fmt: skip
        model_uri = f"models:/{MODEL_NAME}/{version}"
        store_url = f"sqlite:///{work / 'modeldeck.db'}"
        store = Store(store_url)
        store.migrate()
        deployment_id = add_deployment(store, "bench").deployment_id
        writer = GroupWriter(ModelMetrics(store), journal=journal_dir(store), owner="bench-0")
        writer.start()
        try:
            apps = {}
            for key in VARIANTS:
                model = MlflowModel(model_uri, tracking_uri)
                model.load()
                if key == "no_proba":
                    model.classes = None  # the replica then predicts labels only
                config = ReplicaConfig(
                    deployment="bench", replica=0, model_uri=model_uri, model_version=version,
                    deployment_id=deployment_id, store_url=store_url, track_metrics=key != "off",
                )  # fmt: skip
                apps[key] = create_replica_app(config, model, None if key == "off" else writer)
            tune_gc()  # as a replica does once its model is loaded
            cpu = asyncio.run(measure(apps, body, args, err))
        finally:
            writer.stop()
    costs = {key: paired(cpu[key], cpu["off"]) for key in VARIANTS if key != "off"}
    out.print(results_table(cpu, costs))
    report = {
        "timestamp": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"cpu_count": os.cpu_count(), "python": platform.python_version(),
                    "platform": platform.platform()},
        "settings": {k: v for k, v in vars(args).items() if k != "output"},
        "cpu_us_per_prediction": {k: [round(v * 1e6, 1) for v in vs] for k, vs in cpu.items()},
        "costs": costs,
    }  # fmt: skip
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2) + "\n")
    progress(err, f"results written to {args.output}")


main = entry_point(parse_args, run)


if __name__ == "__main__":
    sys.exit(main())
