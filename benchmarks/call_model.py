"""call_model benchmark: sequential ``cdsw.call_model`` calls against the endpoint's own rate.

What it measures
    The Iris model is trained and registered in a throwaway MLflow store and served by a
    ``modeldeck server`` as one deployment (one replica, model metrics on). Three loops of
    sequential ``POST /model`` calls with the deployment's access key then take turns, for
    ``--rounds`` rounds:

    * ``endpoint``: one ``httpx.Client`` reused for every call: the endpoint's own sequential
      rate, the practical limit of any client;
    * ``call_model``: ``modeldeck.compat.cml.call_model``, which ``cdsw.call_model`` and
      ``cml.models_v1.call_model`` are, through the process's one HTTP client;
    * ``client per call``: ``httpx.post`` for each call, as ``call_model`` sent them before it
      shared one client (``--slow-calls`` calls only, it is slow).

    Each figure is the median over rounds. The target: ``--calls`` (1,000) ``call_model`` calls
    in under 5 s.

How to run
    .venv/bin/python benchmarks/call_model.py
    .venv/bin/python benchmarks/call_model.py --calls 1000 --rounds 5

    Results are printed as a table and written as JSON (default
    ``benchmarks/results/call_model.json``). Progress goes to stderr.
"""

from __future__ import annotations

import argparse
import os
import secrets
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from ingest import BenchError, entry_point  # the benchmarks' shared helpers
from rich.console import Console
from rich.table import Table
from serve import (
    MODEL_NAME,
    base_env,
    deploy,
    free_port,
    machine_info,
    progress,
    server_process,
    wait_fork_server,
    wait_http_ok,
    write_json,
)

DEPLOYMENT = "bench-call-model"
TARGET_SECONDS = 5.0
DEFAULT_OUTPUT = Path(__file__).resolve().parent / "results" / "call_model.json"


def record() -> dict[str, float]:
    from modeldeck.demo.train import FEATURES

    return dict(zip(FEATURES, (5.1, 3.5, 1.4, 0.2), strict=True))


def timed(calls: int, call: Callable[[], dict[str, Any]]) -> float:
    """Seconds for ``calls`` sequential calls; every answer must be a success."""
    started = time.perf_counter()
    for _ in range(calls):
        answer = call()
        if answer.get("success") is not True:
            raise BenchError(f"a call failed: {str(answer)[:500]}")
    return time.perf_counter() - started


def run_rounds(base: str, key: str, args: argparse.Namespace, err: Console) -> dict[str, Any]:
    from modeldeck.compat import cml

    os.environ["MODELDECK_URL"] = base  # call_model's platform, as a script's environment sets
    body = {"accessKey": key, "request": record()}
    seconds: dict[str, list[float]] = {"endpoint": [], "call_model": [], "client_per_call": []}
    with httpx.Client(timeout=30.0) as reused:
        loops: dict[str, tuple[int, Callable[[], dict[str, Any]]]] = {
            "endpoint": (args.calls, lambda: reused.post(f"{base}/model", json=body).json()),
            "call_model": (args.calls, lambda: cml.call_model(key, record())),
            "client_per_call": (
                args.slow_calls,
                lambda: httpx.post(f"{base}/model", json=body, timeout=30.0).json(),
            ),
        }
        for _, call in loops.values():  # warm up: connections, the replica's caches
            timed(20, call)
        for round_no in range(args.rounds):
            order = list(loops) if round_no % 2 == 0 else list(loops)[::-1]
            for name in order:
                calls, call = loops[name]
                seconds[name].append(timed(calls, call))
            rates = ", ".join(
                f"{name} {loops[name][0] / seconds[name][-1]:.0f}/s" for name in loops
            )
            progress(err, f"round {round_no + 1} of {args.rounds}: {rates}")
    results = {}
    for name, (calls, _) in loops.items():
        median = statistics.median(seconds[name])
        results[name] = {
            "calls": calls,
            "seconds_median": round(median, 3),
            "calls_per_second": round(calls / median, 1),
            "rounds_seconds": [round(s, 3) for s in seconds[name]],
        }
    return results


def run(args: argparse.Namespace, out: Console, err: Console) -> None:
    bin_dir = Path(sys.executable).parent  # the venv's bin (do not resolve the symlink)
    with tempfile.TemporaryDirectory(prefix="modeldeck-bench-") as tmp:
        work_dir = Path(tmp)
        tracking_uri = f"sqlite:///{work_dir / 'mlflow.db'}"
        progress(err, f"training and registering {MODEL_NAME!r} in {work_dir}")
        from modeldeck.demo.train import train_and_register

        train_and_register(
            tracking_uri,
            (work_dir / "mlartifacts").as_uri(),
            model_name=MODEL_NAME,
            c_values=(1.0,),
            alias=None,
        )
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
        log_path = work_dir / "modeldeck-server.log"
        command = [str(bin_dir / "modeldeck"), "server"]
        with server_process(err, "modeldeck server", command, env, log_path) as proc:
            base = f"http://127.0.0.1:{port}"
            wait_http_ok(f"{base}/health", proc, log_path, "modeldeck server", 120)
            wait_fork_server(base, 120)
            key, deploy_s = deploy(
                base, api_key, 1, timeout_s=300, name=DEPLOYMENT, track_metrics=True
            )
            progress(err, f"deployment {DEPLOYMENT!r} deployed after {deploy_s:.1f}s")
            results = run_rounds(base, key, args, err)

    call_model = results["call_model"]
    seconds_for_target = call_model["seconds_median"] * 1000 / call_model["calls"]
    ratio = call_model["calls_per_second"] / results["endpoint"]["calls_per_second"]
    table = Table(title=f"sequential POST /model calls (median of {args.rounds} rounds)")
    for column in ("client", "calls", "seconds", "calls/s", "vs endpoint"):
        table.add_column(column, justify="left" if column == "client" else "right")
    endpoint_rate = results["endpoint"]["calls_per_second"]
    for name, result in results.items():
        table.add_row(
            name.replace("_", " "),
            str(result["calls"]),
            f"{result['seconds_median']:.2f}",
            f"{result['calls_per_second']:.0f}",
            f"{result['calls_per_second'] / endpoint_rate:.2f}",
        )
    out.print(table)
    verdict = "PASS" if seconds_for_target < TARGET_SECONDS else "FAIL"
    out.print(
        f"{verdict} 1,000 call_model calls in {seconds_for_target:.2f} s "
        f"(target < {TARGET_SECONDS:g} s); {ratio:.2f} of the endpoint's own rate"
    )
    report = {
        "benchmark": "call_model",
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine_info(),
        "rounds": args.rounds,
        "results": results,
        "target": {
            "seconds_for_1000_calls": round(seconds_for_target, 3),
            "threshold_seconds": TARGET_SECONDS,
            "met": seconds_for_target < TARGET_SECONDS,
            "ratio_to_endpoint": round(ratio, 3),
        },
    }
    write_json(args.output, report)
    progress(err, f"results written to {args.output}")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Sequential call_model calls against the /model endpoint's own rate."
    )
    parser.add_argument("--calls", type=int, default=1000, help="calls per loop (default 1000)")
    parser.add_argument(
        "--slow-calls", type=int, default=100, help="calls of the client-per-call loop (100)"
    )
    parser.add_argument("--rounds", type=int, default=3, help="rounds, taking turns (default 3)")
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT, help="JSON results file")
    args = parser.parse_args(argv)
    if args.calls < 1 or args.slow_calls < 1 or args.rounds < 1:
        parser.error("--calls, --slow-calls and --rounds must be at least 1")
    return args


main = entry_point(parse_args, run)

if __name__ == "__main__":
    sys.exit(main())
