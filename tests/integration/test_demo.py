"""``make run``'s command: train, register, deploy, call, print; a second run reuses the data."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.conftest import free_port

pytestmark = [pytest.mark.integration, pytest.mark.slow]  # make test-slow


def run_demo_until_serving(data_dir: Path, port: int) -> tuple[subprocess.Popen[str], str]:
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    env |= {"MODELDECK_DATA_DIR": str(data_dir), "MODELDECK_PORT": str(port), "COLUMNS": "200"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "modeldeck.cli.main", "demo"],
        env=env,
        cwd=data_dir.parent,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert proc.stdout is not None
    lines: list[str] = []
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        lines.append(line)
        if line.startswith("curl -s "):
            return proc, "".join(lines)
    proc.kill()
    raise AssertionError("demo never printed its curl line:\n" + "".join(lines))


def call_printed_curl(output: str) -> dict[str, object]:
    match = re.search(r"curl -s (\S+) -H 'Authorization: Bearer (\w+)' -d '(.+)'", output)
    assert match, output
    url, key, body = match.groups()
    r = httpx.post(url, content=body, headers={"Authorization": f"Bearer {key}"}, timeout=30)
    assert r.status_code == 200, r.text
    return r.json()  # type: ignore[no-any-return]


def stop(proc: subprocess.Popen[str]) -> None:
    proc.send_signal(signal.SIGINT)
    try:
        assert proc.wait(60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()


def test_demo_serves_and_a_second_run_reuses_the_data_dir(tmp_path: Path) -> None:
    data_dir = tmp_path / ".modeldeck"
    port = free_port()

    proc, output = run_demo_until_serving(data_dir, port)
    try:
        assert "API key created" in output
        assert "registered sklearn_model version 1" in output
        assert "sent 20 predictions" in output
        answer = call_printed_curl(output)
        assert answer["prediction"] == [0] and len(str(answer["uuid"])) == 36
    finally:
        stop(proc)
    assert (data_dir / "modeldeck.db").exists() and (data_dir / "mlflow.db").exists()
    assert not (tmp_path / "mlruns").exists(), "artifacts belong in the data directory"

    proc, output = run_demo_until_serving(data_dir, port)
    try:
        assert "reusing registered model sklearn_model" in output
        assert "reusing deployment sklearn_model" in output
        assert "API key created" not in output
        assert call_printed_curl(output)["prediction"] == [0]
    finally:
        stop(proc)


def test_make_run_plays_the_story_and_leaves_no_key_behind(tmp_path: Path) -> None:
    """``make run`` is ``modeldeck demo --story``: once serving, clean traffic then drifted
    traffic with wrong labels (shortened here), a progress line at a time; the story's own
    control-plane key is revoked when it ends."""
    makefile = (Path(__file__).parents[2] / "Makefile").read_text()
    assert re.search(r"^run: .*\n\t\$\(BIN\)/modeldeck demo --story$", makefile, re.M)
    data_dir = tmp_path / ".modeldeck"
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    env |= {"MODELDECK_DATA_DIR": str(data_dir), "MODELDECK_PORT": str(free_port())}
    env |= {"COLUMNS": "200"}
    story = ["--story", "--story-minutes", "0.2", "--exit-after-traffic"]
    done = subprocess.run(
        [sys.executable, "-m", "modeldeck.cli.main", "demo", *story],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=280,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    lines = output.splitlines()
    said = [line for line in lines if line.startswith("story ")]
    assert any("clean traffic, labels right" in line for line in said), output
    assert any("petal_length shifted by +2, labels wrong" in line for line in said), output
    over = next(line for line in lines if line.startswith("story over:"))
    assert over.startswith("story over: 60 predictions (0 failed), 60 labels"), output

    from sqlalchemy import select

    from modeldeck.store import Store
    from modeldeck.store.schema import ApiKeyRow

    store = Store(f"sqlite:///{data_dir / 'modeldeck.db'}")
    try:
        with store.read() as session:
            names = list(session.scalars(select(ApiKeyRow.name)))
    finally:
        store.close()
    assert names == ["default"]


@pytest.mark.timeout(900)
def test_make_run_on_a_fresh_clone_serves_with_no_warning(tmp_path: Path) -> None:
    """The README's quickstart on a fresh clone: ``make run`` creates ``.venv``, installs what
    running needs (none of the dev tools), and serves; nothing it prints is a warning or a
    traceback (but pip's own about this machine's configured package locations)."""
    clone = tmp_path / "modeldeck"
    root = Path(__file__).parents[2]
    subprocess.run(["git", "clone", "--quiet", str(root), str(clone)], check=True, timeout=120)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MODELDECK_", "MLFLOW_"))}
    env.pop("VIRTUAL_ENV", None)
    env |= {"MODELDECK_PORT": str(free_port()), "COLUMNS": "200"}
    started = time.monotonic()
    proc = subprocess.Popen(
        ["make", "run"],
        cwd=clone,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    assert proc.stdout is not None
    lines: list[str] = []
    try:
        deadline = time.monotonic() + 840
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            lines.append(line)
            if line.startswith("curl -s "):
                break
        serving_after = time.monotonic() - started
        output = "".join(lines)
        assert lines and lines[-1].startswith("curl -s "), output
        assert call_printed_curl(output)["prediction"] == [0]
    finally:
        os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C in the terminal: make and the demo
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
    print(f"make run on a fresh clone: serving after {serving_after:.0f} s")
    installed = next(line for line in lines if line.startswith("Successfully installed "))
    assert "mlflow" in installed and "uvicorn" in installed
    for dev_tool in ("playwright", "mypy", "schemathesis", "pytest", "kserve", "ruff"):
        assert f" {dev_tool}-" not in installed, f"make run installed {dev_tool}"
    noise = [
        line
        for line in lines
        if re.search(r"warning|traceback", line, re.I)
        and not line.startswith("WARNING: Location 'file:")  # this machine's pip settings
    ]
    assert noise == [], "".join(noise)
