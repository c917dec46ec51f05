"""Soak benchmark: a fixed request rate for a fixed time against 2 deployments with metrics on.

What it measures
    One ``modeldeck server`` (a throwaway data directory and MLflow store, the Iris model of
    ``modeldeck.demo.train``) serves two deployments of the model, each with model metrics on (every
    prediction's input and output committed before it is answered). An open-loop load generator
    (httpx, asyncio) sends ``--rate`` requests per second, alternating between the two
    deployments, for ``--duration`` seconds after an unrecorded warm-up. Sends are scheduled
    wrk2-style: request *i* is due at ``start + i / rate`` whatever happened to the ones before,
    and its latency runs from when it was due, so a stalled server shows up as latency instead
    of as fewer requests (no coordinated omission). A send that finds ``--max-in-flight``
    requests outstanding is not made and counts as *missed*; one made more than 10 ms after it
    was due counts as *late*.

    Reported: errors by status (and by exception for requests that got no answer), p50/p95/p99
    latency per ``--slice`` seconds, the RSS of every process (the platform, each replica) at
    the start (after the warm-up) and at the end (and sampled each slice, with the machine's
    load average, to tell a leak from a high-water mark), replica restarts, and whether every
    prediction answered 200 is in the store. The memory bound: a process passes when its RSS
    grew by at most ``max(50 MB, 20 % of its start)``; the run passes when every process does,
    no replica restarted, there were no 5xx and no missed sends, and every 200 was recorded.
    A FAIL does not change the exit code; only a benchmark that cannot run does.

    Each replica's growth is also given per 10,000 requests it answered: from start to end,
    and as the slope over the second half of the run (a least-squares line through the
    per-slice readings), which leaves out what a process takes once while it warms up.

How to run
    .venv/bin/python benchmarks/soak.py                       # 50 rps for 60 s, SQLite
    .venv/bin/python benchmarks/soak.py --rate 100 --duration 300
    .venv/bin/python benchmarks/soak.py --store postgres      # a throwaway database on
                                                              # --postgres-url's server

    Results are printed as tables and written as JSON (default ``benchmarks/results/soak.json``).
    Progress goes to stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import psutil
from ingest import (  # the benchmarks' shared helpers
    DEFAULT_PG,
    BenchError,
    entry_point,
    postgres_database,
    progress,
)
from rich.console import Console
from rich.table import Table
from serve import (
    MODEL_NAME,
    base_env,
    deploy,
    free_port,
    machine_info,
    request_body,
    server_process,
    wait_http_ok,
    write_json,
)

DEFAULT_OUTPUT = Path(__file__).resolve().parent / "results" / "soak.json"
DEPLOYMENTS = ("soak-a", "soak-b")
LATE_S = 0.010
GROWTH_MB = 50.0  # a process may grow by max(GROWTH_MB, GROWTH_SHARE x its start RSS)
GROWTH_SHARE = 0.20
MB = 1024 * 1024


@dataclass
class Sample:
    due: float  # seconds since the recorded start
    latency_ms: float
    outcome: str  # the status code, or the exception's class name


@dataclass
class Load:
    samples: list[Sample] = field(default_factory=list)
    missed: int = 0
    late: int = 0
    max_in_flight_seen: int = 0


async def generate(
    base: str,
    keys: dict[str, str],
    body: dict[str, Any],
    rate: float,
    duration_s: float,
    max_in_flight: int,
    record: bool,
) -> Load:
    """Send ``rate`` requests/s for ``duration_s``, open loop, round robin over ``keys``."""
    load = Load()
    names = list(keys)
    limits = httpx.Limits(max_connections=max_in_flight, max_keepalive_connections=max_in_flight)
    in_flight = 0
    tasks: set[asyncio.Task[None]] = set()
    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=60.0) as client:

        async def one(name: str, due: float, started: float) -> None:
            nonlocal in_flight
            try:
                response = await client.post(
                    f"/deployments/{name}/predict",
                    json=body,
                    headers={"Authorization": f"Bearer {keys[name]}"},
                )
                outcome = str(response.status_code)
            except httpx.HTTPError as exc:
                outcome = type(exc).__name__
            finally:
                in_flight -= 1
            if record:
                latency = (time.perf_counter() - (started + due)) * 1000
                load.samples.append(Sample(round(due, 4), latency, outcome))

        started = time.perf_counter()
        total = int(rate * duration_s)
        for i in range(total):
            due = i / rate
            delay = started + due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            elif -delay > LATE_S:
                load.late += 1
            if in_flight >= max_in_flight:
                load.missed += 1
                continue
            in_flight += 1
            load.max_in_flight_seen = max(load.max_in_flight_seen, in_flight)
            task = asyncio.create_task(one(names[i % len(names)], due, started))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        if tasks:
            await asyncio.gather(*tasks)
    return load


async def soak(
    base: str,
    keys: dict[str, str],
    body: dict[str, Any],
    args: argparse.Namespace,
    pids: dict[str, int],
) -> tuple[Load, list[dict[str, Any]]]:
    """The recorded run, sampling the machine's load and every process's RSS each slice."""
    readings: list[dict[str, Any]] = []
    started = time.perf_counter()

    async def sample_forever() -> None:
        while True:
            readings.append(
                {
                    "t_s": round(time.perf_counter() - started, 1),
                    "load1": round(os.getloadavg()[0], 2),
                    "rss_mb": rss_mb(pids),
                }
            )
            await asyncio.sleep(args.slice)

    sampler = asyncio.create_task(sample_forever())
    try:
        load = await generate(
            base, keys, body, args.rate, args.duration, args.max_in_flight, record=True
        )
    finally:
        sampler.cancel()
    return load, readings


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * len(ordered) + 0.5) - 1))
    return round(ordered[index], 2)


def slices(samples: list[Sample], slice_s: float, duration_s: float) -> list[dict[str, Any]]:
    out = []
    count = max(1, int(-(-duration_s // slice_s)))
    for k in range(count):
        lo, hi = k * slice_s, (k + 1) * slice_s
        inside = [s for s in samples if lo <= s.due < hi]
        latencies = [s.latency_ms for s in inside if s.outcome == "200"]
        out.append(
            {
                "from_s": lo,
                "to_s": min(hi, duration_s),
                "sent": len(inside),
                "ok": len(latencies),
                "errors": len(inside) - len(latencies),
                "p50_ms": percentile(latencies, 50),
                "p95_ms": percentile(latencies, 95),
                "p99_ms": percentile(latencies, 99),
            }
        )
    return out


def processes(base: str, api_key: str, platform_pid: int) -> dict[str, int]:
    """Label -> pid: the platform and every replica of the soak deployments."""
    found = {"platform": platform_pid}
    with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {api_key}"}) as client:
        for name in DEPLOYMENTS:
            view = client.get(f"/api/v1/deployments/{name}").json()
            for replica in view["replica_states"]:
                found[f"{name}/replica-{replica['index']}"] = int(replica["pid"])
    return found


def rss_mb(pids: dict[str, int]) -> dict[str, float | None]:
    out: dict[str, float | None] = {}
    for label, pid in pids.items():
        try:
            out[label] = round(psutil.Process(pid).memory_info().rss / MB, 1)
        except psutil.NoSuchProcess:
            out[label] = None
    return out


def recorded(base: str, api_key: str, name: str, start_ms: int, end_ms: int) -> int:
    """How many predictions of ``name`` the store holds in ``[start_ms, end_ms]``."""
    count, cursor = 0, None
    with httpx.Client(
        base_url=base, headers={"Authorization": f"Bearer {api_key}"}, timeout=120.0
    ) as client:
        while True:
            params: dict[str, Any] = {"start": start_ms, "end": end_ms, "limit": 10_000}
            if cursor:
                params["cursor"] = cursor
            page = client.get(f"/api/v1/deployments/{name}/metrics/model", params=params)
            if page.status_code != 200:
                raise BenchError(f"reading metrics failed ({page.status_code}): {page.text}")
            data = page.json()
            count += sum(1 for r in data["metrics"] if r["predictionUuid"])
            cursor = data["next_cursor"]
            if not cursor:
                return count


def memory_verdicts(
    start: dict[str, float | None], end: dict[str, float | None], start_pids: dict[str, int],
    end_pids: dict[str, int],
) -> dict[str, dict[str, Any]]:  # fmt: skip
    out = {}
    for label, before in start.items():
        after = end.get(label)
        restarted = end_pids.get(label) != start_pids[label]
        if before is None or after is None or restarted:
            out[label] = {"start_mb": before, "end_mb": after, "growth_mb": None,
                          "bound_mb": None, "restarted": restarted, "met": False}  # fmt: skip
            continue
        bound = max(GROWTH_MB, GROWTH_SHARE * before)
        growth = round(after - before, 1)
        out[label] = {
            "start_mb": before,
            "end_mb": after,
            "growth_mb": growth,
            "bound_mb": round(bound, 1),
            "restarted": False,
            "met": growth <= bound,
        }
    return out


def growth_per_10k(
    readings: list[dict[str, Any]], label: str, rate_per_process: float, duration_s: float
) -> dict[str, float | None]:
    """KB of RSS a process gained per 10,000 requests it answered: start to end, and the
    least-squares slope over the second half of the readings."""
    points = [(r["t_s"], r["rss_mb"].get(label)) for r in readings]
    points = [(t, m) for t, m in points if m is not None]
    if len(points) < 2 or rate_per_process <= 0:
        return {"start_to_end": None, "second_half_slope": None}
    requests = rate_per_process * duration_s
    whole = (points[-1][1] - points[0][1]) * 1024 / (requests / 10_000)
    half = [p for p in points if p[0] >= duration_s / 2]
    slope = None
    if len(half) >= 3:
        n = len(half)
        mean_t = sum(t for t, _ in half) / n
        mean_m = sum(m for _, m in half) / n
        var = sum((t - mean_t) ** 2 for t, _ in half)
        if var > 0:
            mb_per_s = sum((t - mean_t) * (m - mean_m) for t, m in half) / var
            slope = mb_per_s * 1024 * 10_000 / rate_per_process
    return {
        "start_to_end": round(whole, 2),
        "second_half_slope": None if slope is None else round(slope, 2),
    }


def fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:g}"


def slice_table(rows: list[dict[str, Any]]) -> Table:
    table = Table(title="Latency per time slice (200s only; from when each request was due)")
    columns = ("window (s)", "sent", "ok", "errors", "p50 ms", "p95 ms", "p99 ms",
               "load avg", "platform RSS MB")  # fmt: skip
    for column in columns:
        table.add_column(column, justify="right")
    for r in rows:
        table.add_row(
            f"{r['from_s']:g}-{r['to_s']:g}", str(r["sent"]), str(r["ok"]), str(r["errors"]),
            fmt(r["p50_ms"]), fmt(r["p95_ms"]), fmt(r["p99_ms"]), fmt(r.get("load1")),
            fmt(r.get("platform_rss_mb")),
        )  # fmt: skip
    return table


def memory_table(verdicts: dict[str, dict[str, Any]]) -> Table:
    bound = f"growth <= max({GROWTH_MB:g} MB, {GROWTH_SHARE:.0%} of start)"
    table = Table(title=f"RSS of every process, start and end ({bound})")
    columns = ("process", "start MB", "end MB", "growth MB", "KB / 10k req", "KB / 10k (2nd half)",
               "bound MB", "verdict")  # fmt: skip
    for column in columns:
        table.add_column(column, justify="right" if column != "process" else "left")
    for label, v in verdicts.items():
        verdict = "[green]PASS[/green]" if v["met"] else "[red]FAIL[/red]"
        if v["restarted"]:
            verdict += " (restarted)"
        per = v.get("growth_kb_per_10k_requests") or {}
        table.add_row(
            label, fmt(v["start_mb"]), fmt(v["end_mb"]), fmt(v["growth_mb"]),
            fmt(per.get("start_to_end")), fmt(per.get("second_half_slope")), fmt(v["bound_mb"]),
            verdict,
        )  # fmt: skip
    return table


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Hold a fixed request rate against 2 deployments; report errors, latency "
        "over time and memory of every process."
    )
    parser.add_argument("--rate", type=float, default=50.0, help="requests/s in all (50)")
    parser.add_argument("--duration", type=float, default=60.0, help="recorded seconds (60)")
    parser.add_argument("--warmup", type=float, default=10.0, help="unrecorded seconds (10)")
    parser.add_argument("--slice", type=float, default=10.0, help="seconds per slice (10)")
    parser.add_argument("--replicas", type=int, default=1, help="replicas per deployment (1)")
    parser.add_argument(
        "--max-in-flight", type=int, default=256, help="outstanding requests at most (256)"
    )
    parser.add_argument(
        "--store", choices=("sqlite", "postgres"), default="sqlite",
        help="the platform's store: a SQLite file (default) or a throwaway PostgreSQL database",
    )  # fmt: skip
    parser.add_argument("--postgres-url", default=DEFAULT_PG, help=f"admin URL ({DEFAULT_PG})")
    parser.add_argument(
        "--output", type=Path, default=DEFAULT_OUTPUT,
        help="JSON results file (default benchmarks/results/soak.json)",
    )  # fmt: skip
    args = parser.parse_args(argv)
    if args.rate <= 0 or args.duration <= 0 or args.slice <= 0 or args.warmup < 0:
        parser.error("--rate, --duration and --slice must be > 0, --warmup >= 0")
    if args.replicas < 1 or args.max_in_flight < 1:
        parser.error("--replicas and --max-in-flight must be >= 1")
    return args


def run(args: argparse.Namespace, out: Console, err: Console) -> None:
    if args.store == "postgres":
        with postgres_database(err, args.postgres_url) as (url, _version):
            run_on(args, out, err, url)
    else:
        run_on(args, out, err, None)


def run_on(args: argparse.Namespace, out: Console, err: Console, store_url: str | None) -> None:
    bin_dir = Path(sys.executable).parent  # the venv's bin (do not resolve the symlink)
    body = request_body()
    with tempfile.TemporaryDirectory(prefix="modeldeck-soak-") as tmp:
        work_dir = Path(tmp)
        tracking_uri = f"sqlite:///{work_dir / 'mlflow.db'}"
        progress(err, f"training and registering {MODEL_NAME!r} in {work_dir}")
        from modeldeck.demo.train import train_and_register

        train_and_register(
            tracking_uri, (work_dir / "mlartifacts").as_uri(), model_name=MODEL_NAME,
            c_values=(1.0,), alias=None,
        )  # fmt: skip
        port = free_port()
        api_key = secrets.token_urlsafe(24)
        env = {
            **base_env(bin_dir, tracking_uri),
            "MODELDECK_HOST": "127.0.0.1",
            "MODELDECK_PORT": str(port),
            "MODELDECK_API_KEY": api_key,
            "MODELDECK_LOG_LEVEL": "warning",
            "MODELDECK_DATA_DIR": str(work_dir / "modeldeck"),
        }
        if store_url:
            env["MODELDECK_STORE_URL"] = store_url
        log_path = work_dir / "modeldeck-server.log"
        command = [str(bin_dir / "modeldeck"), "server"]
        with server_process(err, "modeldeck server", command, env, log_path) as proc:
            base = f"http://127.0.0.1:{port}"
            wait_http_ok(f"{base}/health", proc, log_path, "modeldeck server", 120)
            keys = {}
            for name in DEPLOYMENTS:
                keys[name], seconds = deploy(
                    base, api_key, args.replicas, timeout_s=300, name=name, track_metrics=True
                )
                progress(err, f"deployment {name!r} deployed after {seconds:.1f}s")
            if args.warmup:
                progress(err, f"warm-up: {args.rate:g} rps for {args.warmup:g}s")
                asyncio.run(generate(base, keys, body, args.rate, args.warmup, 256, False))
            pids = processes(base, api_key, proc.pid)
            rss_start = rss_mb(pids)
            progress(err, f"soak: {args.rate:g} rps for {args.duration:g}s; RSS {rss_start}")
            start_ms = int(time.time() * 1000)
            load, readings = asyncio.run(soak(base, keys, body, args, pids))
            end_ms = int(time.time() * 1000)
            end_pids = processes(base, api_key, proc.pid)
            rss_end = rss_mb(pids)
            progress(err, f"soak done; RSS {rss_end}; counting recorded predictions")
            time.sleep(1.0)
            stored = sum(recorded(base, api_key, n, start_ms, end_ms + 1000) for n in DEPLOYMENTS)

    outcomes = Counter(s.outcome for s in load.samples)
    ok = outcomes.get("200", 0)
    rows = slices(load.samples, args.slice, args.duration)
    for row, reading in zip(rows, readings[1:] + readings[-1:], strict=False):
        row["load1"] = reading["load1"]
        row["platform_rss_mb"] = reading["rss_mb"].get("platform")
    verdicts = memory_verdicts(rss_start, rss_end, pids, end_pids)
    per_replica_rate = args.rate / len(DEPLOYMENTS) / args.replicas
    for label, verdict in verdicts.items():
        rate = args.rate if label == "platform" else per_replica_rate
        verdict["growth_kb_per_10k_requests"] = growth_per_10k(readings, label, rate, args.duration)
    all_latencies = [s.latency_ms for s in load.samples if s.outcome == "200"]
    server_errors = sum(n for o, n in outcomes.items() if not o.isdigit() or int(o) >= 500)
    checks = {
        "memory_within_bound": all(v["met"] for v in verdicts.values()),
        "no_replica_restarts": not any(v["restarted"] for v in verdicts.values()),
        "no_5xx_or_failed_requests": server_errors == 0,
        "no_missed_sends": load.missed == 0,
        "every_200_recorded": stored == ok,
    }
    out.print(slice_table(rows))
    out.print(memory_table(verdicts))
    summary = Table(title="Soak summary")
    summary.add_column("")
    summary.add_column("value", justify="right")
    summary.add_row("scheduled", str(int(args.rate * args.duration)))
    summary.add_row("answered by status / exception", ", ".join(
        f"{o}: {n}" for o, n in sorted(outcomes.items())))  # fmt: skip
    summary.add_row("missed sends (in flight at the cap)", str(load.missed))
    summary.add_row(f"late sends (> {LATE_S * 1000:g} ms after due)", str(load.late))
    summary.add_row("most in flight", str(load.max_in_flight_seen))
    summary.add_row("p50 / p95 / p99 ms (all 200s)", " / ".join(
        fmt(percentile(all_latencies, q)) for q in (50, 95, 99)))  # fmt: skip
    summary.add_row("predictions answered 200 / in the store", f"{ok} / {stored}")
    for name, met in checks.items():
        summary.add_row(name.replace("_", " "), "[green]PASS[/green]" if met else "[red]FAIL[/red]")
    out.print(summary)

    report = {
        "timestamp": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine_info(),
        "settings": {
            "rate_rps": args.rate,
            "duration_s": args.duration,
            "warmup_s": args.warmup,
            "slice_s": args.slice,
            "replicas_per_deployment": args.replicas,
            "deployments": list(DEPLOYMENTS),
            "track_metrics": True,
            "store": args.store,
            "max_in_flight": args.max_in_flight,
            "host": "127.0.0.1",
            "request_body": body,
            "memory_bound": {"growth_mb": GROWTH_MB, "growth_share": GROWTH_SHARE},
        },
        "scheduled": int(args.rate * args.duration),
        "outcomes": dict(outcomes),
        "missed_sends": load.missed,
        "late_sends": load.late,
        "max_in_flight_seen": load.max_in_flight_seen,
        "latency_ms": {f"p{q}": percentile(all_latencies, q) for q in (50, 95, 99)},
        "slices": rows,
        "memory": verdicts,
        "readings": readings,
        "recorded_predictions": stored,
        "checks": checks,
        "passed": all(checks.values()),
    }
    write_json(args.output, report)
    progress(err, f"results written to {args.output}")


main = entry_point(parse_args, run)


if __name__ == "__main__":
    sys.exit(main())
