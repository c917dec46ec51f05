"""Ingest benchmark: tracked predictions and delayed metrics into SQLite and PostgreSQL.

What it measures, per store (a throwaway SQLite file, a throwaway PostgreSQL database)
    * predictions via writer: N predictions with 2 metrics each (``input``: 4 Iris features,
      ``output``: the class) written through one ``GroupWriter`` (the replicas' group commit)
      by ``--producers`` concurrent asyncio tasks, each awaiting its record's commit as a
      replica's request does; the process's GC is tuned as a replica's is (``tune_gc``).
    * predictions via journal (SQLite): the same through a journaling ``GroupWriter``, as a
      replica on a SQLite file records them: each record appended to the prediction journal
      (the acknowledgement), committed by the writer thread; timed until ``flush`` returns,
      every record committed.
    * predictions direct insert_predictions: the same N built and inserted by one thread with
      ``ModelMetrics.insert_predictions`` in chunks of 2000 (the ceiling without the queue).
    * delayed metrics: M ``track_delayed`` calls, one ``actual_result`` each.
    * read joined records: the writer's N records read back with ``iter_records`` (pages of
      5000), delayed metrics merged; wrong counts or values stop the run instead of a number.

    Target: >= 50,000 predictions/s through the writer into each store (on SQLite, both the
    group commit and the journal). A miss is reported as
    FAIL; the exit code is non-zero only when the benchmark cannot run.

How to run
    .venv/bin/python benchmarks/ingest.py
    .venv/bin/python benchmarks/ingest.py --predictions 20000 --delayed 1000 --skip-postgres
    .venv/bin/python benchmarks/ingest.py --predictions 50000 --delayed 200 --skip-sqlite

    ``--postgres-url`` is an admin URL: a database ``modeldeck_bench_<random>`` is created next
    to it and dropped at the end. Results are printed as a table and written as JSON (default
    ``benchmarks/results/ingest.json``). Progress goes to stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import secrets
import signal
import sqlite3
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from itertools import islice
from pathlib import Path
from typing import Any

import psycopg
import sqlalchemy
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from sqlalchemy.engine import make_url

from modeldeck.process import tune_gc
from modeldeck.records.journal import journal_dir
from modeldeck.records.model_metrics import (
    ModelMetrics,
    PredictionRecord,
    Target,
    new_prediction_id,
)
from modeldeck.records.writer import GroupWriter
from modeldeck.store import Store
from modeldeck.store.schema import DeploymentRow

TARGET_RATE = 50_000  # predictions/s through the writer, per store
CHUNK = 2000
READ_PAGE = 5000
IRIS = {"sepal_length": (4.3, 3.6), "sepal_width": (2.0, 2.4), "petal_length": (1.0, 5.9),
        "petal_width": (0.1, 2.4)}  # fmt: skip
MEASUREMENTS = {
    "writer": "predictions via writer",
    "journal": "predictions via journal",
    "direct": "predictions direct insert_predictions",
    "delayed": "delayed metrics (track_delayed, one call each)",
    "read": "read joined records",
}
DEFAULT_PG = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
DEFAULT_OUTPUT = Path(__file__).resolve().parent / "results" / "ingest.json"


class BenchError(Exception):
    """The benchmark cannot go on (no database, wrong data read back, ...)."""


def progress(console: Console, message: str) -> None:
    console.print(f"[dim]{time.strftime('%H:%M:%S')}[/dim] {message}", soft_wrap=True)


def make_records(deployment_id: str, count: int, seed: int) -> Iterator[PredictionRecord]:
    """``count`` predictions as a replica tracks them: inputs, output, timestamps."""
    rng = random.Random(seed)
    for _ in range(count):
        end = int(time.time() * 1000)
        yield PredictionRecord(
            new_prediction_id(), deployment_id, end - 1, end, model_version="1", replica=seed,
            metrics={
                "input": {f: round(lo + span * rng.random(), 1) for f, (lo, span) in IRIS.items()},
                "output": rng.randrange(3),
            },
        )  # fmt: skip


def add_deployment(store: Store, name: str) -> Target:
    with store.write() as session:
        session.add(
            DeploymentRow(
                id=f"id-{name}", name=name, crn=f"crn:{name}", model_name="bench_model",
                model_version="1", version_spec="1", model_uri="models:/bench_model/1",
                runtime="local", replicas=1, environment={}, auth_enabled=True,
                desired_state="running", status="deployed", status_message="",
            )
        )  # fmt: skip
    return Target(f"id-{name}", name, "bench_model", "1")


def bench_store(err: Console, label: str, url: str, n: int, m: int, p: int) -> list[dict[str, Any]]:
    """The four measurements on one store; returns one result dict per measurement."""
    results: list[dict[str, Any]] = []

    def note(key: str, count: int, seconds: float) -> None:
        rate = count / seconds if seconds > 0 else 0.0
        results.append(
            {"store": label, "key": key, "measurement": MEASUREMENTS[key], "count": count,
             "seconds": round(seconds, 3), "rate_per_s": round(rate, 1)}
        )  # fmt: skip
        progress(err, f"{label}: {MEASUREMENTS[key]}: {count:,} in {seconds:.2f}s = {rate:,.0f}/s")

    store = Store(url)
    try:
        store.migrate()
        metrics = ModelMetrics(store)
        via_writer, direct = add_deployment(store, "writer"), add_deployment(store, "direct")
        writer = GroupWriter(metrics)
        writer.start()

        async def produce() -> list[str]:
            # As in a replica: p requests in flight, each awaiting its record's commit.
            records = make_records(via_writer.deployment_id, n, 0)
            uuids: list[str] = []

            async def request() -> None:
                for record in records:
                    uuids.append(record.uuid)
                    await writer.write(record)

            await asyncio.gather(*(request() for _ in range(p)))
            return uuids

        progress(err, f"{label}: {n:,} predictions via the writer, {p} requests in flight")
        started = time.perf_counter()
        try:
            parts = [(asyncio.run(produce()), None)]
            seconds = time.perf_counter() - started
        finally:
            writer.stop()
        uuids = parts[0][0]
        if writer.committed != n or metrics.count(via_writer) != n:
            raise BenchError(f"{label}: the writer stored {metrics.count(via_writer)}, not {n}")
        note("writer", n, seconds)

        if store.dialect == "sqlite":
            journaled = add_deployment(store, "journal")
            writer = GroupWriter(metrics, journal=journal_dir(store), owner="bench")
            writer.start()

            async def journal() -> None:
                records = make_records(journaled.deployment_id, n, 0)

                async def request() -> None:
                    for record in records:
                        await writer.write(record)
                        await asyncio.sleep(0)  # as requests take turns on a replica's loop

                await asyncio.gather(*(request() for _ in range(p)))

            progress(err, f"{label}: {n:,} predictions via the journal, {p} requests in flight")
            started = time.perf_counter()
            try:
                asyncio.run(journal())
                writer.flush(timeout=600)
                seconds = time.perf_counter() - started
            finally:
                writer.stop()
            if writer.committed != n or metrics.count(journaled) != n:
                raise BenchError(f"{label}: the journal stored {metrics.count(journaled)}, not {n}")
            note("journal", n, seconds)

        started = time.perf_counter()
        records = make_records(direct.deployment_id, n, 0)
        while chunk := list(islice(records, CHUNK)):
            metrics.insert_predictions(chunk)
        seconds = time.perf_counter() - started
        if metrics.count(direct) != n:
            raise BenchError(f"{label}: direct inserts stored {metrics.count(direct)}, not {n}")
        note("direct", n, seconds)

        picked = {u: i % 3 for i, u in enumerate(random.Random(7).sample(uuids, m))}
        started = time.perf_counter()
        for u, actual in picked.items():
            metrics.track_delayed(via_writer, u, {"actual_result": actual})
        note("delayed", m, time.perf_counter() - started)  # checked by the read below

        started = time.perf_counter()
        read = list(metrics.iter_records(via_writer, start_ms=0, limit=READ_PAGE))
        seconds = time.perf_counter() - started
        joined = [r for r in read if "actual_result" in r["metrics"]]
        if len(read) != n or {r["predictionUuid"] for r in read} != set(uuids):
            raise BenchError(f"{label}: read back {len(read)} records, expected {n}")
        if len(joined) != m or any(
            picked.get(r["predictionUuid"]) != r["metrics"]["actual_result"] for r in joined
        ):
            raise BenchError(f"{label}: {len(joined)} records carry actual_result, expected {m}")
        note("read", n, seconds)
        return results
    finally:
        store.close()


@contextmanager
def postgres_database(err: Console, admin_url: str) -> Iterator[tuple[str, str]]:
    """A throwaway database next to ``admin_url``; yields its SQLAlchemy URL and server version."""
    admin = make_url(admin_url)
    conninfo = admin.set(drivername="postgresql").render_as_string(hide_password=False)
    name = f"modeldeck_bench_{secrets.token_hex(4)}"
    try:
        conn = psycopg.connect(conninfo, autocommit=True)
    except psycopg.Error as exc:
        raise BenchError(f"cannot connect to PostgreSQL at {admin_url}: {exc}") from exc
    with conn:
        version = str(conn.execute("SHOW server_version").fetchone()[0])  # type: ignore[index]
        conn.execute(f'CREATE DATABASE "{name}"')
        progress(err, f"created PostgreSQL database {name} (server {version})")
        try:
            yield admin.set(database=name).render_as_string(hide_password=False), version
        finally:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            progress(err, f"dropped PostgreSQL database {name}")


def target(rate: float) -> dict[str, Any]:
    return {"rate_per_s": rate, "threshold": TARGET_RATE, "met": rate >= TARGET_RATE}


def results_table(results: list[dict[str, Any]]) -> Table:
    table = Table(title=f"modeldeck ingest ({os.cpu_count()} CPUs)")
    for column in ("store", "measurement", "count", "seconds", "rate/s", "target"):
        table.add_column(column, justify="left" if column in ("store", "measurement") else "right")
    for r in results:
        verdict = "-"
        if r["key"] in ("writer", "journal"):
            met = target(r["rate_per_s"])["met"]
            verdict = f"{'[green]PASS' if met else '[red]FAIL'}[/] >= {TARGET_RATE:,}/s"
        table.add_row(
            r["store"], r["measurement"], f"{r['count']:,}", f"{r['seconds']:.2f}",
            f"{r['rate_per_s']:,.0f}", verdict,
        )  # fmt: skip
    return table


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Benchmark prediction and delayed-metric ingest.")
    parser.add_argument("--predictions", type=int, default=200_000, help="N (default 200000)")
    parser.add_argument("--delayed", type=int, default=5000, help="M track_delayed calls (5000)")
    parser.add_argument(
        "--producers", type=int, default=256, help="requests in flight in the writer phase (256)"
    )
    parser.add_argument("--postgres-url", default=DEFAULT_PG, help=f"admin URL ({DEFAULT_PG})")
    parser.add_argument("--skip-postgres", action="store_true", help="only benchmark SQLite")
    parser.add_argument("--skip-sqlite", action="store_true", help="only benchmark PostgreSQL")
    parser.add_argument(
        "--output", type=Path, default=DEFAULT_OUTPUT,
        help="JSON results file (default benchmarks/results/ingest.json)",
    )  # fmt: skip
    args = parser.parse_args(argv)
    if args.skip_sqlite and args.skip_postgres:
        parser.error("--skip-sqlite and --skip-postgres leave nothing to benchmark")
    if args.predictions < 1 or args.producers < 1 or not 0 <= args.delayed <= args.predictions:
        parser.error("need --predictions >= 1, --producers >= 1, 0 <= --delayed <= --predictions")
    return args


def run(args: argparse.Namespace, out: Console, err: Console) -> None:
    n, m, p = args.predictions, args.delayed, args.producers
    tune_gc()  # as the platform and its replicas do
    results: list[dict[str, Any]] = []
    machine: dict[str, Any] = {
        "cpu_count": os.cpu_count(), "python": platform.python_version(),
        "platform": platform.platform(), "sqlalchemy": sqlalchemy.__version__,
        "psycopg": psycopg.__version__, "sqlite": sqlite3.sqlite_version,
    }  # fmt: skip
    if not args.skip_sqlite:
        with tempfile.TemporaryDirectory(prefix="modeldeck-bench-") as tmp:
            url = f"sqlite:///{Path(tmp) / 'modeldeck.db'}"
            results += bench_store(err, "sqlite", url, n, m, p)
    if not args.skip_postgres:
        with postgres_database(err, args.postgres_url) as (url, version):
            machine["postgres_server"] = version
            results += bench_store(err, "postgres", url, n, m, p)
    out.print(results_table(results))
    report = {
        "timestamp": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine,
        "settings": {
            **{k: v for k, v in vars(args).items() if k not in ("output", "postgres_url")},
            "postgres_url": make_url(args.postgres_url).render_as_string(hide_password=True),
            "direct_chunk": CHUNK,
            "read_page": READ_PAGE,
        },
        "results": results,
        "targets": {
            f"{r['store']} {r['key']}": target(r["rate_per_s"])
            for r in results
            if r["key"] in ("writer", "journal")
        },
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2) + "\n")
    progress(err, f"results written to {args.output}")


def _raise_keyboard_interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def entry_point(
    parse: Callable[[list[str] | None], argparse.Namespace],
    run: Callable[[argparse.Namespace, Console, Console], None],
    *,
    width: int = 160,
) -> Callable[[list[str] | None], int]:
    """A benchmark's ``main``: parse, run, and turn failures and Ctrl-C into exit codes.

    SIGTERM behaves like Ctrl-C, so what a run created (databases, servers) is cleaned up on
    the way out either way. The other benchmarks share it.
    """

    def main(argv: list[str] | None = None) -> int:
        args = parse(argv)
        out, err = Console(), Console(stderr=True)
        if not out.is_terminal:
            out = Console(width=width)  # piped or redirected: do not squeeze tables to 80 columns
        signal.signal(signal.SIGTERM, _raise_keyboard_interrupt)
        try:
            run(args, out, err)
        except BenchError as exc:
            err.print(f"[red]benchmark failed:[/red] {escape(str(exc))}", highlight=False)
            return 1
        except KeyboardInterrupt:
            err.print("[yellow]interrupted[/yellow]")
            return 130
        return 0

    return main


main = entry_point(parse_args, run)


if __name__ == "__main__":
    sys.exit(main())
