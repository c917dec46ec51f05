"""Serving benchmark per flavour: modeldeck against ``mlflow models serve`` and MLServer.

What it measures
    A small model of each flavour (``tests/flavours.py``: XGBoost, LightGBM, CatBoost with a
    text category, PyTorch with a tensor signature, a custom ``mlflow.pyfunc.PythonModel``
    answering three columns, a scikit-learn regression) is trained and registered once in a
    throwaway MLflow store, then served, one server at a time, by

    * ``modeldeck server``: one deployment per flavour, 2 replicas, model metrics on (every
      prediction's input and output committed before it is answered: the default);
    * ``mlflow models serve --workers 2`` (``POST /invocations``), one flavour at a time;
    * MLServer with ``mlserver-mlflow`` (``parallel_workers`` 2, ``POST /invocations``), one
      flavour at a time, from a venv of its own (``--mlserver-python``; left out without it);

    and loaded with ``wrk`` at c=1 and c=64 with the same one-row body (``dataframe_split``, or
    ``inputs`` rows for the tensor model). Each row of the table: requests/s and p50 per server
    and concurrency, and modeldeck's rps over the others' at c=64 and p50 at c=1. The
    ``path`` column says whether modeldeck calls the estimator directly (the scikit-learn fast
    path) or the pyfunc.

How to run
    make bench-flavours                      # builds .venv-mlserver once, then runs this
    .venv/bin/python benchmarks/serve.py --flavours --duration 5 \\
        --mlserver-python .venv-mlserver/bin/python

    Results go to ``benchmarks/results/serve-flavours.json`` (``--output``).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ingest import BenchError
from rich.console import Console
from rich.table import Table
from serve import DEFAULT_OUTPUT as SERVE_OUTPUT
from serve import (
    MLFLOW_WORKERS,
    WARMUP_CONCURRENCY,
    WARMUP_SECONDS,
    RunResult,
    Target,
    base_env,
    bench_mlflow,
    bench_modeldeck,
    check_prediction,
    fmt,
    free_port,
    machine_info,
    measure,
    median_runs,
    progress,
    ratio,
    server_process,
    wait_http_ok,
    write_json,
)

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUTPUT = Path(__file__).resolve().parent / "results" / "serve-flavours.json"
MLSERVER_WORKERS = 2


def _flavours(tracking_uri: str, work_dir: Path) -> dict[str, Any]:
    sys.path.insert(0, str(ROOT))  # tests/flavours.py trains the models
    from tests.flavours import register_flavours

    return register_flavours(tracking_uri, (work_dir / "mlartifacts").as_uri())


def _body(model: Any) -> dict[str, Any]:
    if model.tensor:
        return {"inputs": [model.rows[0]]}
    return {"dataframe_split": {"columns": model.columns, "data": [model.rows[0]]}}


def bench_mlserver(
    console: Console,
    wrk: str,
    python: Path,
    work_dir: Path,
    flavour: str,
    model_dir: Path,
    body: dict[str, Any],
    concurrencies: list[int],
    duration_s: int,
) -> tuple[dict[int, RunResult], float]:
    """Serve ``model_dir`` with MLServer's MLflow runtime, measure, stop."""
    root = work_dir / f"mlserver-{flavour}"
    (root / flavour).mkdir(parents=True)
    http_port, grpc_port, metrics_port = free_port(), free_port(), free_port()
    settings = {
        "http_port": http_port,
        "grpc_port": grpc_port,
        "metrics_port": metrics_port,
        "parallel_workers": MLSERVER_WORKERS,
        "host": "127.0.0.1",
    }
    (root / "settings.json").write_text(json.dumps(settings))
    model_settings = {
        "name": flavour,
        "implementation": "mlserver_mlflow.MLflowRuntime",
        "parameters": {"uri": str(model_dir)},
    }
    (root / flavour / "model-settings.json").write_text(json.dumps(model_settings))
    bin_dir = python.parent
    command = [str(bin_dir / "mlserver"), "start", str(root)]
    log_path = work_dir / f"mlserver-{flavour}.log"
    env = base_env(bin_dir, "")
    env.pop("MLFLOW_TRACKING_URI")
    with server_process(console, f"mlserver ({flavour})", command, env, log_path) as proc:
        base = f"http://127.0.0.1:{http_port}"
        startup = wait_http_ok(f"{base}/v2/models/{flavour}/ready", proc, log_path, "mlserver", 240)
        progress(console, f"mlserver ready after {startup:.1f}s")
        target = Target(
            f"mlserver-{flavour}", f"{base}/invocations", {"Content-Type": "application/json"}
        )
        check_prediction(target, body)
        results = measure(console, wrk, target, body, work_dir, concurrencies, duration_s)
    return results, startup


def run(args: argparse.Namespace, out: Console, err: Console, wrk: str) -> None:
    bin_dir = Path(sys.executable).parent
    concurrencies: list[int] = args.concurrency
    output = DEFAULT_OUTPUT if args.output == SERVE_OUTPUT else args.output
    results: dict[str, dict[str, dict[int, RunResult]]] = {}
    startup: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="modeldeck-bench-flavours-") as tmp:
        work_dir = Path(tmp)
        tracking_uri = f"sqlite:///{work_dir / 'mlflow.db'}"
        progress(err, f"training and registering a model of each flavour in {work_dir}")
        models = _flavours(tracking_uri, work_dir)
        bodies = {name: _body(m) for name, m in models.items()}
        served, startup["modeldeck"] = bench_modeldeck(
            err, wrk, bin_dir, work_dir, tracking_uri, {}, concurrencies, args.duration,
            args.replicas, deployments=tuple((name, True) for name in models),
            models={name: m.name for name, m in models.items()}, bodies=bodies,
        )  # fmt: skip
        for name in models:
            results[name] = {"modeldeck": median_runs(served[name])}
        for name, model in models.items():
            if not args.skip_mlflow:
                results[name]["mlflow"], startup[f"mlflow-{name}"] = bench_mlflow(
                    err, wrk, bin_dir, work_dir, tracking_uri, bodies[name], concurrencies,
                    args.duration, model_uri=f"models:/{model.name}/{model.version}",
                    name=f"mlflow-{name}",
                )  # fmt: skip
            if args.mlserver_python:
                import mlflow

                mlflow.set_tracking_uri(tracking_uri)
                local = mlflow.artifacts.download_artifacts(
                    artifact_uri=f"models:/{model.name}/{model.version}",
                    dst_path=str(work_dir / f"model-{name}"),
                )
                results[name]["mlserver"], startup[f"mlserver-{name}"] = bench_mlserver(
                    err, wrk, args.mlserver_python, work_dir, name, Path(local), bodies[name],
                    concurrencies, args.duration,
                )  # fmt: skip
    lo, hi = min(concurrencies), max(concurrencies)
    table = Table(title=f"per flavour: rps / p50 ms at c={lo} and c={hi}")
    servers = ["modeldeck", "mlflow", "mlserver"]
    table.add_column("flavour")
    table.add_column("modeldeck path")
    for server in servers:
        table.add_column(f"{server} c={lo}", justify="right")
        table.add_column(f"{server} c={hi}", justify="right")
    table.add_column(f"rps / mlflow c={hi}", justify="right")
    table.add_column(f"rps / mlserver c={hi}", justify="right")
    summary: dict[str, Any] = {}
    for name, by_server in results.items():
        cells = [name, "sklearn fast path" if models[name].fast_path else "pyfunc"]
        for server in servers:
            for c in (lo, hi):
                r = by_server.get(server, {}).get(c)
                cells.append(f"{r.rps:.0f} / {r.p50_ms:.1f}" if r else "-")
        md = by_server["modeldeck"].get(hi)
        ratios = {}
        for other in ("mlflow", "mlserver"):
            theirs = by_server.get(other, {}).get(hi)
            ratios[other] = ratio(md.rps, theirs.rps) if md and theirs else None
        cells += [fmt(ratios["mlflow"]), fmt(ratios["mlserver"])]
        table.add_row(*cells)
        summary[name] = {
            "path": "fast" if models[name].fast_path else "pyfunc",
            "rps_ratio_vs_mlflow": ratios["mlflow"],
            "rps_ratio_vs_mlserver": ratios["mlserver"],
            "results": {
                server: {str(c): {**vars(r), "errors": r.errors} for c, r in runs.items()}
                for server, runs in by_server.items()
            },
        }
    out.print(table)
    report = {
        "timestamp": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine_info(),
        "settings": {
            "duration_s": args.duration,
            "concurrency": concurrencies,
            "replicas": args.replicas,
            "mlflow_workers": MLFLOW_WORKERS,
            "mlserver_workers": MLSERVER_WORKERS if args.mlserver_python else None,
            "warmup": {"seconds": WARMUP_SECONDS, "concurrency": WARMUP_CONCURRENCY},
            "request_bodies": bodies,
        },
        "startup_s": startup,
        "flavours": summary,
    }
    write_json(output, report)
    progress(err, f"results written to {output}")
    if any(r.errors for s in results.values() for runs in s.values() for r in runs.values()):
        raise BenchError("some requests failed: see the errors in the results")
