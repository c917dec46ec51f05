"""Serving benchmark: modeldeck against ``mlflow models serve`` on the same registered model.

What it measures
    One scikit-learn model (logistic regression on Iris, ``modeldeck.demo.train``) is trained and
    registered once in a throwaway MLflow SQLite store. It is then served, one target at a time
    (never both under load at once), by

    * ``mlflow models serve --workers 2`` (``POST /invocations``), and
    * ``modeldeck server`` with a deployment of 2 replicas (``POST /deployments/bench/predict``),
      once with model metrics on (every prediction's input and output committed before it is
      answered: the default), once with them off, and once on a second server with technical
      monitoring off too (the floor: what monitoring costs is the difference),

    and each target is loaded with ``wrk`` on 127.0.0.1 at concurrency 1, 8 and 64 with the same
    one-row ``dataframe_split`` body. After an unrecorded warm-up, every run reports requests/s,
    the p50 and p99 latency, and errors (non-2xx responses and socket errors); a modeldeck run
    also the CPU time its server's processes spent per request. With ``--rounds N`` the
    metrics cost is the median of the rounds' paired on/off ratios, with a 90 % bootstrap
    interval (``--control``: the same with metrics off on both, the benchmark's own spread).

    The acceptance targets are: modeldeck's throughput >= 3x mlflow's at c=64, and modeldeck's
    p50 <= 1/2 of mlflow's at c=1; and model metrics add at most 5 % to p50 at c=8. A missed
    target is reported as FAIL but does not change the
    exit code; the exit code is non-zero only when the benchmark itself cannot run (a server that
    does not start, a deployment that fails, wrk missing).

How to run
    make bench                                   # runs: python benchmarks/serve.py
    .venv/bin/python benchmarks/serve.py --duration 3
    .venv/bin/python benchmarks/serve.py --concurrency 1,8,64 --replicas 2 --skip-mlflow
    .venv/bin/python benchmarks/serve.py --concurrency 8 --skip-mlflow --rounds 5  # interleaved
    .venv/bin/python benchmarks/serve.py --concurrency 8 --skip-mlflow --rounds 5 --control  # A/A

    Needs ``wrk`` (``apt-get install wrk``). Results are printed as a table and written as JSON
    (default ``benchmarks/results/serve.json``). Progress goes to stderr.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from ingest import BenchError, entry_point  # the benchmarks' shared helpers
from rich.console import Console
from rich.markup import escape
from rich.table import Table

MODEL_NAME = "bench_model"
DEPLOYMENT_NAME = "bench"
UNTRACKED_NAME = "bench-untracked"
BARE_NAME = "bench-bare"
OVERHEAD_TARGET = 0.05  # model metrics may add at most 5 % to p50 at c=8
ROW = [5.1, 3.5, 1.4, 0.2]
WARMUP_SECONDS = 3
WARMUP_CONCURRENCY = 8
MLFLOW_WORKERS = 2
RPS_TARGET = 3.0  # modeldeck rps / mlflow rps at c=64 must be at least this
P50_TARGET = 0.5  # modeldeck p50 / mlflow p50 at c=1 must be at most this
DEFAULT_OUTPUT = Path(__file__).resolve().parent / "results" / "serve.json"

_UNIT_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0, "h": 3_600_000.0}


@dataclass(frozen=True)
class Target:
    """One HTTP endpoint to load: where to POST, and the headers to send."""

    name: str
    url: str
    headers: dict[str, str]


@dataclass(frozen=True)
class RunResult:
    """What one wrk run reported."""

    concurrency: int
    duration_s: float
    requests: int
    rps: float
    p50_ms: float
    p99_ms: float
    non_2xx: int
    socket_errors: dict[str, int] = field(default_factory=dict)
    # CPU time of the server's processes (platform, replicas, fork server) per request during
    # the run; wrk's own is not in it. None where it is not measured (mlflow).
    server_cpu_us: float | None = None

    @property
    def errors(self) -> int:
        """Non-2xx responses plus socket errors (connect, read, write, timeout)."""
        return self.non_2xx + sum(self.socket_errors.values())


# -- helpers ---------------------------------------------------------------------------------


def progress(console: Console, message: str) -> None:
    """Tell the person at the terminal what is happening (on stderr)."""
    console.print(f"[dim]{time.strftime('%H:%M:%S')}[/dim] {message}")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def request_body() -> dict[str, Any]:
    """The prediction request both servers get: one Iris row in ``dataframe_split`` form."""
    from modeldeck.demo.train import FEATURES

    return {"dataframe_split": {"columns": list(FEATURES), "data": [ROW]}}


def tail(path: Path, lines: int = 30) -> str:
    """The last lines of a log file, for error messages."""
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


@contextmanager
def server_process(
    console: Console, name: str, command: list[str], env: dict[str, str], log_path: Path
) -> Iterator[subprocess.Popen[bytes]]:
    """Run ``command`` in its own process group; on exit stop it and everything it started.

    The leader gets SIGTERM first so it can shut down its own children (mlflow's uvicorn,
    modeldeck's replicas); whatever is left of the group then gets SIGTERM and finally SIGKILL.
    """
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(
            command,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    progress(console, f"started {name} (pid {proc.pid}), log: {log_path}")
    try:
        yield proc
    finally:
        progress(console, f"stopping {name}")
        stop_process_group(proc)


def stop_process_group(proc: subprocess.Popen[bytes], grace_s: float = 5.0) -> None:
    """Terminate ``proc``, then whatever is left of its process group, then kill survivors."""
    if proc.poll() is None:
        proc.terminate()
        with suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=grace_s)
    for sig in (signal.SIGTERM, signal.SIGKILL):
        proc.poll()
        if not group_alive(proc.pid):
            break
        with suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, sig)
        deadline = time.monotonic() + 3.0
        while group_alive(proc.pid) and time.monotonic() < deadline:
            proc.poll()  # reap the leader, or its zombie keeps the group "alive"
            time.sleep(0.1)
    if proc.poll() is None:
        proc.kill()
        proc.wait()


def group_alive(pgid: int) -> bool:
    """Whether any process of the group ``pgid`` is still around."""
    try:
        os.killpg(pgid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    return True


def wait_http_ok(
    url: str, proc: subprocess.Popen[bytes], log_path: Path, name: str, timeout_s: float
) -> float:
    """Poll ``GET url`` until 200; return the seconds it took. Fail if ``proc`` exits."""
    started = time.monotonic()
    deadline = started + timeout_s
    with httpx.Client(timeout=2.0) as client:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise BenchError(
                    f"{name} exited with code {proc.returncode} before it was ready:\n"
                    f"{tail(log_path)}"
                )
            try:
                if client.get(url).status_code == 200:
                    return time.monotonic() - started
            except httpx.HTTPError:
                pass
            time.sleep(0.25)
    raise BenchError(f"{name} not ready at {url} after {timeout_s:.0f}s:\n{tail(log_path)}")


def check_prediction(target: Target, body: dict[str, Any]) -> Any:
    """Send one request and fail loudly unless it answers 200 (wrk only counts statuses)."""
    response = httpx.post(target.url, json=body, headers=target.headers, timeout=30.0)
    if response.status_code != 200:
        raise BenchError(
            f"{target.name}: sanity request got {response.status_code}: {response.text[:500]}"
        )
    return response.json()


# -- wrk -------------------------------------------------------------------------------------


def write_lua_script(path: Path, body: dict[str, Any], headers: dict[str, str]) -> Path:
    """A wrk script that POSTs ``body`` as JSON with ``headers``."""
    payload = json.dumps(body, separators=(",", ":"))
    if "]==]" in payload:
        raise ValueError("body cannot be written as a Lua long string")
    lines = ['wrk.method = "POST"', f"wrk.body = [==[{payload}]==]"]
    lines += [f"wrk.headers[{json.dumps(k)}] = {json.dumps(v)}" for k, v in headers.items()]
    path.write_text("\n".join(lines) + "\n")
    return path


def to_ms(value: str, unit: str) -> float:
    """A wrk duration (``812.00us``, ``1.23ms``, ``2.01s``) in milliseconds."""
    return float(value) * _UNIT_MS[unit]


def parse_wrk(output: str, concurrency: int, duration_s: float) -> RunResult:
    """Requests/s, p50/p99 and errors out of ``wrk --latency`` output."""

    def percentile(pct: str) -> float:
        match = re.search(rf"^\s+{pct}%\s+([\d.]+)(us|ms|s|m|h)\s*$", output, re.MULTILINE)
        return to_ms(*match.groups()) if match else float("nan")

    rps = re.search(r"^Requests/sec:\s+([\d.]+)", output, re.MULTILINE)
    total = re.search(r"^\s+(\d+) requests in", output, re.MULTILINE)
    if rps is None or total is None:
        raise BenchError(f"cannot parse wrk output:\n{output}")
    non_2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", output)
    sockets = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output
    )
    socket_errors = (
        dict(zip(("connect", "read", "write", "timeout"), map(int, sockets.groups()), strict=True))
        if sockets
        else {}
    )
    return RunResult(
        concurrency=concurrency,
        duration_s=duration_s,
        requests=int(total.group(1)),
        rps=float(rps.group(1)),
        p50_ms=percentile("50"),
        p99_ms=percentile("99"),
        non_2xx=int(non_2xx.group(1)) if non_2xx else 0,
        socket_errors=socket_errors,
    )


def run_wrk(wrk: str, target: Target, script: Path, concurrency: int, duration_s: int) -> str:
    """One wrk run; returns its stdout."""
    threads = 1 if concurrency < 2 else 2
    command = [
        wrk, "-t", str(threads), "-c", str(concurrency), "-d", f"{duration_s}s",
        "--timeout", "10s", "--latency", "-s", str(script), target.url,
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=duration_s + 60)
    if done.returncode != 0:
        raise BenchError(f"wrk failed ({done.returncode}): {done.stderr or done.stdout}")
    return done.stdout


def measure(
    console: Console,
    wrk: str,
    target: Target,
    body: dict[str, Any],
    work_dir: Path,
    concurrencies: list[int],
    duration_s: int,
    warmup_s: int = WARMUP_SECONDS,
    cpu_seconds: Callable[[], float] | None = None,
) -> dict[int, RunResult]:
    """Warm ``target`` up, then one recorded wrk run per concurrency; with ``cpu_seconds``
    (the server's CPU time so far), each run also says what CPU its requests took."""
    script = write_lua_script(work_dir / f"{target.name}.lua", body, target.headers)
    progress(console, f"{target.name}: warm-up {warmup_s}s at c={WARMUP_CONCURRENCY}")
    run_wrk(wrk, target, script, WARMUP_CONCURRENCY, warmup_s)
    results: dict[int, RunResult] = {}
    for concurrency in concurrencies:
        progress(console, f"{target.name}: c={concurrency} for {duration_s}s")
        cpu_before = cpu_seconds() if cpu_seconds else 0.0
        result = parse_wrk(
            run_wrk(wrk, target, script, concurrency, duration_s), concurrency, duration_s
        )
        if cpu_seconds and result.requests:
            used = cpu_seconds() - cpu_before
            result = replace(result, server_cpu_us=used / result.requests * 1e6)
        results[concurrency] = result
        note = f", [red]{result.errors} errors[/red]" if result.errors else ""
        progress(
            console,
            f"{target.name}: c={concurrency}: {result.rps:.0f} rps, "
            f"p50 {result.p50_ms:.2f} ms, p99 {result.p99_ms:.2f} ms{note}",
        )
    return results


def server_cpu(pid: int) -> Callable[[], float]:
    """The CPU seconds (user + system) that process ``pid`` and its descendants have used,
    those alive now; a replica that exits mid-run takes its share with it."""
    import psutil

    def total() -> float:
        used = 0.0
        try:
            root = psutil.Process(pid)
            processes = [root, *root.children(recursive=True)]
        except psutil.Error:
            return used
        for process in processes:
            with suppress(psutil.Error):
                times = process.cpu_times()
                used += times.user + times.system
        return used

    return total


def paired_cost(
    on: list[dict[int, RunResult]],
    off: list[dict[int, RunResult]],
    concurrency: int,
    value: Callable[[RunResult], float | None] = lambda r: r.p50_ms,
) -> dict[str, Any] | None:
    """The ratio on/off of ``value`` (p50) in each round (both ran one after the other, so a
    machine that slows down weighs on both sides of a ratio alike), their median, and a 90 %
    bootstrap interval of that median: how far the rounds let the benchmark resolve a cost
    (``None`` with fewer than three rounds)."""
    ratios = []
    for a, b in zip(on, off, strict=True):
        if concurrency in a and concurrency in b:
            numerator, denominator = value(a[concurrency]), value(b[concurrency])
            if numerator is not None and denominator:
                ratios.append(numerator / denominator)
    return median_interval(ratios) if ratios else None


def median_interval(ratios: list[float]) -> dict[str, Any]:
    """The median of paired rounds' ratios and a 90 % bootstrap interval of it (``None``
    with fewer than three rounds); :func:`paired_summary` prints it."""
    import numpy as np

    values = np.asarray(ratios)
    interval = None
    if len(values) >= 3:
        rng = np.random.default_rng(0)
        medians = np.median(rng.choice(values, size=(10_000, len(values))), axis=1)
        interval = [float(x) for x in np.percentile(medians, [5, 95])]
    return {
        "rounds": len(ratios),
        "ratios": [round(float(r), 4) for r in ratios],
        "median": float(np.median(values)),
        "interval_90": interval,
    }


def paired_summary(pair: dict[str, Any]) -> str:
    """``+23.1 % (median of 12 paired rounds; 90 % interval +13.6 to +33.6 %)``."""
    rounds = f"median of {pair['rounds']} paired round{'s' if pair['rounds'] > 1 else ''}"
    if pair["interval_90"] is not None:
        low, high = pair["interval_90"]
        rounds += f"; 90 % interval {(low - 1) * 100:+.1f} to {(high - 1) * 100:+.1f} %"
    return f"{(pair['median'] - 1) * 100:+.1f} % ({rounds})"


def median_runs(runs: list[dict[int, RunResult]]) -> dict[int, RunResult]:
    """Per concurrency, the run of median p50 (of an odd count; the lower middle of an even)."""
    merged: dict[int, RunResult] = {}
    for concurrency in runs[0]:
        ordered = sorted((r[concurrency] for r in runs), key=lambda r: r.p50_ms)
        merged[concurrency] = ordered[(len(ordered) - 1) // 2]
    return merged


# -- the two targets -------------------------------------------------------------------------


def base_env(bin_dir: Path, tracking_uri: str) -> dict[str, str]:
    """The environment for both servers: the venv first on PATH, the MLflow store."""
    return {
        **os.environ,
        "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
        "MLFLOW_TRACKING_URI": tracking_uri,
        "PYTHONUNBUFFERED": "1",
    }


def bench_mlflow(
    console: Console,
    wrk: str,
    bin_dir: Path,
    work_dir: Path,
    tracking_uri: str,
    body: dict[str, Any],
    concurrencies: list[int],
    duration_s: int,
    model_uri: str = f"models:/{MODEL_NAME}/1",
    name: str = "mlflow",
) -> tuple[dict[int, RunResult], float]:
    """Serve with ``mlflow models serve``, measure, stop. Returns results and startup seconds."""
    port = free_port()
    command = [
        str(bin_dir / "mlflow"), "models", "serve", "-m", model_uri,
        "--workers", str(MLFLOW_WORKERS), "--port", str(port), "--host", "127.0.0.1",
        "--env-manager", "local",
    ]  # fmt: skip
    log_path = work_dir / f"{name}-serve.log"
    env = base_env(bin_dir, tracking_uri)
    with server_process(console, "mlflow models serve", command, env, log_path) as proc:
        base = f"http://127.0.0.1:{port}"
        startup = wait_http_ok(f"{base}/ping", proc, log_path, "mlflow models serve", 180)
        progress(console, f"mlflow models serve ready after {startup:.1f}s")
        target = Target(name, f"{base}/invocations", {"Content-Type": "application/json"})
        answer = check_prediction(target, body)
        progress(console, f"mlflow sanity check: {escape(str(answer))}")
        results = measure(console, wrk, target, body, work_dir, concurrencies, duration_s)
    return results, startup


def wait_fork_server(base: str, timeout_s: float) -> str:
    """Wait while the platform's replica fork server warms up; returns its final state."""
    deadline = time.monotonic() + timeout_s
    while True:
        state = str(httpx.get(f"{base}/health", timeout=5).json().get("replica_fork_server"))
        if state != "warming":
            return state
        if time.monotonic() > deadline:
            raise BenchError(f"the replica fork server still warms up after {timeout_s:.0f}s")
        time.sleep(0.2)


def deploy(
    base: str,
    api_key: str,
    replicas: int,
    timeout_s: float,
    name: str,
    track_metrics: bool,
    model: str = MODEL_NAME,
) -> tuple[str, float]:
    """Create a deployment of version 1 of ``model`` and wait until it is deployed; returns
    its access key and seconds."""
    headers = {"Authorization": f"Bearer {api_key}"}
    spec = {
        "name": name,
        "model": model,
        "version": "1",
        "replicas": replicas,
        "track_metrics": track_metrics,
    }
    started = time.monotonic()
    with httpx.Client(base_url=base, headers=headers, timeout=30.0) as client:
        created = client.post("/api/v1/deployments", json=spec)
        if created.status_code != 201:
            raise BenchError(f"deploy failed ({created.status_code}): {created.text[:500]}")
        access_key = created.json().get("access_key")
        if not access_key:
            raise BenchError(f"deploy answered without an access_key: {created.text[:500]}")
        deadline = started + timeout_s
        while time.monotonic() < deadline:
            view = client.get(f"/api/v1/deployments/{name}").json()
            if view.get("status") == "deployed":
                return str(access_key), time.monotonic() - started
            if view.get("status") == "failed":
                raise BenchError(f"deployment failed: {view.get('status_message')}")
            time.sleep(0.5)
    raise BenchError(f"deployment not deployed after {timeout_s:.0f}s")


def bench_modeldeck(
    console: Console,
    wrk: str,
    bin_dir: Path,
    work_dir: Path,
    tracking_uri: str,
    body: dict[str, Any],
    concurrencies: list[int],
    duration_s: int,
    replicas: int,
    deployments: tuple[tuple[str, bool], ...] = ((DEPLOYMENT_NAME, True), (UNTRACKED_NAME, False)),
    extra_env: dict[str, str] | None = None,
    rounds: int = 1,
    models: dict[str, str] | None = None,
    bodies: dict[str, dict[str, Any]] | None = None,
) -> tuple[dict[str, list[dict[int, RunResult]]], dict[str, Any]]:
    """Serve with ``modeldeck server`` and one deployment per (name, model metrics on/off);
    measure each in turn (``rounds`` times, taking turns), stop. Returns every round's runs
    per deployment, and startup times. ``models`` and ``bodies``: a deployment's registered
    model and request body where they are not ``MODEL_NAME`` and ``body``."""
    port = free_port()
    api_key = secrets.token_urlsafe(24)
    env = {
        **base_env(bin_dir, tracking_uri),
        "MODELDECK_HOST": "127.0.0.1",
        "MODELDECK_PORT": str(port),
        "MODELDECK_API_KEY": api_key,
        "MODELDECK_LOG_LEVEL": "warning",
        "MODELDECK_DATA_DIR": str(work_dir / f"modeldeck-{port}"),
        # Replicas outlive a stopped platform by default (to be adopted by the next start):
        # here they would run on, unowned, after the benchmark.
        "MODELDECK_KEEP_REPLICAS_ON_EXIT": "false",
        **(extra_env or {}),
    }
    log_path = work_dir / f"modeldeck-server-{port}.log"
    command = [str(bin_dir / "modeldeck"), "server"]
    with server_process(console, "modeldeck server", command, env, log_path) as proc:
        base = f"http://127.0.0.1:{port}"
        startup = wait_http_ok(f"{base}/health", proc, log_path, "modeldeck server", 120)
        # Deploy once replicas are forked: a deployment started while the fork server still
        # imports gets interpreters, and its paired rounds would compare start methods too.
        forks = wait_fork_server(base, 120)
        progress(
            console,
            f"modeldeck server ready after {startup:.1f}s (replica fork server {forks}); "
            f"deploying {replicas}",
        )
        cpu_seconds = server_cpu(proc.pid)
        deploy_times: dict[str, float] = {}
        targets: list[Target] = []
        for name, track in deployments:
            access_key, deploy_times[name] = deploy(
                base,
                api_key,
                replicas,
                timeout_s=300,
                name=name,
                track_metrics=track,
                model=(models or {}).get(name, MODEL_NAME),
            )
            progress(console, f"deployment {name!r} deployed after {deploy_times[name]:.1f}s")
            target = Target(
                name,
                f"{base}/deployments/{name}/predict",
                {"Content-Type": "application/json", "Authorization": f"Bearer {access_key}"},
            )
            answer = check_prediction(target, (bodies or {}).get(name, body))
            progress(console, f"{target.name} sanity check: {escape(str(answer))}")
            targets.append(target)
        # Rounds take turns between the deployments, so that a machine that slows down or
        # speeds up meanwhile weighs on each alike; each run's median round is reported.
        runs: dict[str, list[dict[int, RunResult]]] = {t.name: [] for t in targets}
        for round_no in range(rounds):
            if rounds > 1:
                progress(console, f"round {round_no + 1} of {rounds}")
            # Every other round the other deployment goes first: whoever runs first (after
            # the previous one's aftermath, say) must not be the same one every time.
            # Later rounds warm up briefly: the deployment served a moment ago.
            warmup_s = WARMUP_SECONDS if round_no == 0 else 1
            for target in targets if round_no % 2 == 0 else targets[::-1]:
                runs[target.name].append(
                    measure(
                        console,
                        wrk,
                        target,
                        (bodies or {}).get(target.name, body),
                        work_dir,
                        concurrencies,
                        duration_s,
                        warmup_s,
                        cpu_seconds,
                    )
                )
    first = deployments[0][0]
    return runs, {
        "server_ready_s": round(startup, 2),
        "deploy_s": round(deploy_times[first], 2),
        "replica_fork_server": forks,
    }


def overhead_table(
    concurrencies: list[int],
    tracked: dict[int, RunResult],
    untracked: dict[int, RunResult],
    bare: dict[int, RunResult],
    paired: dict[int, dict[str, Any] | None],
) -> Table:
    """What monitoring costs: everything on, model metrics off, and all monitoring off. The
    model-metrics cost is the median of the rounds' paired ratios (``paired``); the technical
    one, whose floor ran on a server of its own, the ratio of the median runs."""
    table = Table(title="modeldeck: what monitoring costs (p50 ms / rps)")
    for column in (
        "c", "all on", "model metrics off", "all monitoring off",
        "model metrics p50 cost", "technical p50 cost", "server CPU µs/request on / off",
    ):  # fmt: skip
        table.add_column(column, justify="right")
    for c in concurrencies:
        on, off, floor = tracked.get(c), untracked.get(c), bare.get(c)
        if not on or not off or not floor:
            continue
        pair = paired.get(c)
        metrics_cost = pair["median"] if pair else None
        technical_cost = ratio(off.p50_ms, floor.p50_ms)
        table.add_row(
            str(c),
            f"{fmt(on.p50_ms)} / {fmt(on.rps, 0)}",
            f"{fmt(off.p50_ms)} / {fmt(off.rps, 0)}",
            f"{fmt(floor.p50_ms)} / {fmt(floor.rps, 0)}",
            f"{(metrics_cost - 1) * 100:+.1f} %" if metrics_cost else "-",
            f"{(technical_cost - 1) * 100:+.1f} %" if technical_cost else "-",
            f"{fmt(on.server_cpu_us, 0)} / {fmt(off.server_cpu_us, 0)}",
        )
    return table


# -- report ----------------------------------------------------------------------------------


def ratio(numerator: float | None, denominator: float | None) -> float | None:
    """``numerator / denominator``, or None when either side is missing or zero."""
    if numerator is None or not denominator:
        return None
    return numerator / denominator


def compute_ratios(
    mlflow: dict[int, RunResult], modeldeck: dict[int, RunResult]
) -> dict[int, dict[str, float | None]]:
    """Per concurrency: modeldeck rps / mlflow rps, and modeldeck p50 / mlflow p50."""
    out: dict[int, dict[str, float | None]] = {}
    for c, md in modeldeck.items():
        ml = mlflow.get(c)
        out[c] = {
            "rps": ratio(md.rps, ml.rps if ml else None),
            "p50": ratio(md.p50_ms, ml.p50_ms if ml else None),
        }
    return out


def evaluate_targets(
    ratios: dict[int, dict[str, float | None]], modeldeck: dict[int, RunResult]
) -> dict[str, dict[str, Any]]:
    """The two acceptance targets; ``met`` is None when they could not be measured.

    A run with errors does not meet its target: its numbers are not comparable.
    """

    def check(c: int, key: str, threshold: float, at_least: bool) -> dict[str, Any]:
        value = ratios.get(c, {}).get(key)
        errors = modeldeck[c].errors if c in modeldeck else 0
        met = None
        if value is not None:
            met = (value >= threshold if at_least else value <= threshold) and errors == 0
        return {
            "concurrency": c,
            "ratio": value,
            "threshold": threshold,
            "comparison": ">=" if at_least else "<=",
            "modeldeck_errors": errors,
            "met": met,
        }

    return {
        "rps_ratio_c64": check(64, "rps", RPS_TARGET, at_least=True),
        "p50_ratio_c1": check(1, "p50", P50_TARGET, at_least=False),
    }


def fmt(value: float | None, digits: int = 2) -> str:
    """A number for the table, or a dash."""
    return "-" if value is None or value != value else f"{value:,.{digits}f}"


def results_table(
    concurrencies: list[int],
    mlflow: dict[int, RunResult],
    modeldeck: dict[int, RunResult],
    ratios: dict[int, dict[str, float | None]],
) -> Table:
    """The side-by-side table, one row per concurrency."""
    table = Table(title="modeldeck vs mlflow models serve (127.0.0.1, wrk)")
    for column in (
        "c", "mlflow rps", "mlflow p50 ms", "mlflow p99 ms",
        "modeldeck rps", "modeldeck p50 ms", "modeldeck p99 ms",
        "rps ratio", "p50 ratio", "errors",
    ):  # fmt: skip
        table.add_column(column, justify="right")
    for c in concurrencies:
        ml, md = mlflow.get(c), modeldeck.get(c)
        errors = [f"{name}: {r.errors}" for name, r in (("mlflow", ml), ("modeldeck", md)) if r]
        any_errors = any(r.errors for r in (ml, md) if r)
        table.add_row(
            str(c),
            fmt(ml.rps if ml else None, 0),
            fmt(ml.p50_ms if ml else None),
            fmt(ml.p99_ms if ml else None),
            fmt(md.rps if md else None, 0),
            fmt(md.p50_ms if md else None),
            fmt(md.p99_ms if md else None),
            fmt(ratios.get(c, {}).get("rps")),
            fmt(ratios.get(c, {}).get("p50")),
            f"[red]{', '.join(errors)}[/red]" if any_errors else "0",
        )
    return table


def target_line(label: str, target: dict[str, Any]) -> str:
    """``PASS``/``FAIL``/``N/A`` and the numbers behind it."""
    if target["met"] is None:
        return f"[yellow]N/A [/yellow] {label}: not measured"
    verdict = "[green]PASS[/green]" if target["met"] else "[red]FAIL[/red]"
    note = f" ({target['modeldeck_errors']} modeldeck errors)" if target["modeldeck_errors"] else ""
    return (
        f"{verdict} {label}: {target['ratio']:.2f} {target['comparison']} "
        f"{target['threshold']}{note}"
    )


def machine_info() -> dict[str, Any]:
    """Where the numbers come from."""
    import mlflow

    wrk = shutil.which("wrk")
    wrk_version = None
    if wrk:
        out = subprocess.run([wrk, "--version"], capture_output=True, text=True)
        wrk_version = (out.stdout or out.stderr).splitlines()[0].strip()
    return {
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "mlflow": mlflow.__version__,
        "modeldeck": _modeldeck_version(),
        "platform": platform.platform(),
        "wrk": wrk_version,
    }


def _modeldeck_version() -> str:
    from modeldeck import __version__

    return str(__version__)


def write_json(path: Path, report: dict[str, Any]) -> None:
    """Write the report, creating the directory."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2) + "\n")


# -- main ------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Benchmark modeldeck against `mlflow models serve` with wrk."
    )
    parser.add_argument("--duration", type=int, default=10, help="seconds per run (default 10)")
    parser.add_argument(
        "--concurrency", default="1,8,64", help="comma-separated connection counts (1,8,64)"
    )
    parser.add_argument("--replicas", type=int, default=2, help="modeldeck replicas (default 2)")
    parser.add_argument(
        "--output", type=Path, default=DEFAULT_OUTPUT,
        help="JSON results file (default benchmarks/results/serve.json)",
    )  # fmt: skip
    parser.add_argument("--skip-mlflow", action="store_true", help="only benchmark modeldeck")
    parser.add_argument(
        "--rounds", type=int, default=1,
        help="modeldeck runs per deployment, taking turns; the median run is reported, and "
        "the metrics cost is the median of the rounds' paired ratios (default 1)",
    )  # fmt: skip
    parser.add_argument(
        "--control", action="store_true",
        help="A/A check of the benchmark itself: the 'metrics on' deployment has them off too, "
        "so its 'cost' shows what taking turns on this machine adds by itself",
    )  # fmt: skip
    parser.add_argument(
        "--flavours", action="store_true",
        help="every flavour (XGBoost, LightGBM, CatBoost, PyTorch, a custom pyfunc, a "
        "regression) at c=1 and c=64 against `mlflow models serve` and MLServer "
        "(benchmarks/flavours.py); --concurrency defaults to 1,64 there",
    )  # fmt: skip
    parser.add_argument(
        "--mlserver-python", type=Path, default=None,
        help="--flavours: the Python of a venv with mlserver and mlserver-mlflow "
        "(`make bench-flavours` makes .venv-mlserver); MLServer is left out without it",
    )  # fmt: skip
    args = parser.parse_args(argv)
    if args.flavours and args.concurrency == "1,8,64":
        args.concurrency = "1,64"
    try:
        args.concurrency = sorted({int(c) for c in args.concurrency.split(",") if c.strip()})
    except ValueError:
        parser.error(f"--concurrency must be comma-separated integers, got {args.concurrency!r}")
    if not args.concurrency or min(args.concurrency) < 1:
        parser.error("--concurrency needs at least one value, all >= 1")
    if args.duration < 1 or args.replicas < 1 or args.rounds < 1:
        parser.error("--duration, --replicas and --rounds must be >= 1")
    return args


def run(args: argparse.Namespace, out: Console, err: Console) -> None:
    """The whole benchmark: train, serve with each target in turn, report."""
    wrk = shutil.which("wrk")
    if wrk is None:
        raise BenchError("wrk is not installed: run `apt-get install wrk` (or `make bench`)")
    if args.flavours:
        import flavours

        return flavours.run(args, out, err, wrk)
    bin_dir = Path(sys.executable).parent  # the venv's bin (do not resolve the symlink)
    body = request_body()
    with tempfile.TemporaryDirectory(prefix="modeldeck-bench-") as tmp:
        work_dir = Path(tmp)
        tracking_uri = f"sqlite:///{work_dir / 'mlflow.db'}"
        progress(err, f"training and registering {MODEL_NAME!r} in {work_dir}")
        from modeldeck.demo.train import train_and_register

        model = train_and_register(
            tracking_uri,
            (work_dir / "mlartifacts").as_uri(),
            model_name=MODEL_NAME,
            c_values=(1.0,),
            alias=None,
        )
        if model.version != "1":
            raise BenchError(f"expected version 1 of {MODEL_NAME}, got {model.version}")

        mlflow_results: dict[int, RunResult] = {}
        startup: dict[str, Any] = {}
        if not args.skip_mlflow:
            mlflow_results, startup["mlflow_ready_s"] = bench_mlflow(
                err, wrk, bin_dir, work_dir, tracking_uri, body, args.concurrency, args.duration
            )
        served, startup["modeldeck"] = bench_modeldeck(
            err, wrk, bin_dir, work_dir, tracking_uri, body,
            args.concurrency, args.duration, args.replicas, rounds=args.rounds,
            deployments=((DEPLOYMENT_NAME, not args.control), (UNTRACKED_NAME, False)),
        )  # fmt: skip
        modeldeck_results = median_runs(served[DEPLOYMENT_NAME])
        untracked_results = median_runs(served[UNTRACKED_NAME])
        paired = {
            c: paired_cost(served[DEPLOYMENT_NAME], served[UNTRACKED_NAME], c)
            for c in args.concurrency
        }
        paired_cpu = paired_cost(
            served[DEPLOYMENT_NAME], served[UNTRACKED_NAME], 8, lambda r: r.server_cpu_us
        )
        progress(err, "a second server with technical monitoring off too (the bare floor)")
        bare, _ = bench_modeldeck(
            err, wrk, bin_dir, work_dir, tracking_uri, body,
            args.concurrency, args.duration, args.replicas,
            deployments=((BARE_NAME, False),),
            extra_env={"MODELDECK_TECHNICAL_MONITORING": "false"},
            rounds=args.rounds,
        )  # fmt: skip
        bare_results = median_runs(bare[BARE_NAME])

    ratios = compute_ratios(mlflow_results, modeldeck_results)
    targets = evaluate_targets(ratios, modeldeck_results)
    out.print(results_table(args.concurrency, mlflow_results, modeldeck_results, ratios))
    rps_label = f"modeldeck rps >= {RPS_TARGET:g}x mlflow at c=64"
    p50_label = f"modeldeck p50 <= {P50_TARGET:g}x mlflow at c=1"
    out.print(target_line(rps_label, targets["rps_ratio_c64"]))
    out.print(target_line(p50_label, targets["p50_ratio_c1"]))
    out.print(
        overhead_table(args.concurrency, modeldeck_results, untracked_results, bare_results, paired)
    )
    # The target is judged on the median of the rounds' paired ratios (with one round, the
    # ratio of its two runs).
    paired_p50 = paired.get(8)
    overhead = paired_p50["median"] if paired_p50 else None
    targets["metrics_overhead_p50_c8"] = {
        "concurrency": 8,
        "ratio": overhead,
        "paired": paired_p50,
        "paired_server_cpu": paired_cpu,
        "threshold": 1 + OVERHEAD_TARGET,
        "comparison": "<=",
        "modeldeck_errors": modeldeck_results[8].errors if 8 in modeldeck_results else 0,
        "met": None if overhead is None else overhead <= 1 + OVERHEAD_TARGET,
    }
    who = "A/A control (metrics off on both)" if args.control else "model metrics"
    for what, pair in (("p50", paired_p50), ("server CPU per request", paired_cpu)):
        if pair is not None:
            out.print(f"{who}: {what} cost at c=8 {paired_summary(pair)}")
    if args.control:
        # Both deployments had metrics off: no target is judged, the ratio is the bench's own.
        targets["metrics_overhead_p50_c8"]["met"] = None
    else:
        out.print(
            target_line(
                f"p50 with metrics on <= {1 + OVERHEAD_TARGET:g}x off at c=8",
                targets["metrics_overhead_p50_c8"],
            )
        )

    report = {
        "timestamp": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine_info(),
        "settings": {
            "duration_s": args.duration,
            "concurrency": args.concurrency,
            "replicas": args.replicas,
            "mlflow_workers": MLFLOW_WORKERS,
            "warmup": {"seconds": WARMUP_SECONDS, "concurrency": WARMUP_CONCURRENCY},
            "wrk_threads": "1 at c=1, else 2",
            "host": "127.0.0.1",
            "request_body": body,
            "skip_mlflow": args.skip_mlflow,
            "rounds": args.rounds,
            "control": args.control,
        },
        "startup_s": startup,
        "results": {
            name: {str(c): {**asdict(r), "errors": r.errors} for c, r in results.items()}
            for name, results in (
                ("mlflow", mlflow_results),
                ("modeldeck", modeldeck_results),
                ("modeldeck_metrics_off", untracked_results),
                ("modeldeck_monitoring_off", bare_results),
            )
            if results
        },
        "ratios": {str(c): r for c, r in ratios.items()},
        "targets": targets,
    }
    write_json(args.output, report)
    progress(err, f"results written to {args.output}")


main = entry_point(parse_args, run)


if __name__ == "__main__":
    sys.exit(main())
