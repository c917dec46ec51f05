"""The README's commands, run as written, in order, from a checkout's root on port 8000: the
quickstart's platform (`make run`'s `modeldeck demo --story`, with a half-minute story), the CLI,
Python, curl and monitoring examples against it, then the lab walk-through as one shell script.

Only the shown-once keys are filled in (`mdk_…` with the API key the demo printed, `…` with
the access key `deploy` printed), as a reader would. A README example that no longer works, or
names a command, option or deployment that does not exist, fails here.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.slow]  # make test-slow

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()
PORT = 8000  # the README's URLs say so


def fenced(lang: str) -> list[str]:
    return re.findall(rf"^```{lang}\n(.*?)^```", README, flags=re.S | re.M)


def block(lang: str, starting: str) -> str:
    (found,) = [b for b in fenced(lang) if b.startswith(starting)]
    return found


def commands(text: str) -> list[str]:
    """A bash block's command lines, comments and blank lines left out."""
    return [line for line in text.splitlines() if line.strip() and not line.startswith("#")]


@pytest.fixture(scope="module")
def checkout(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory laid out as a checkout's root after `make run` installed `.venv`."""
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", PORT))
        except OSError:
            pytest.fail(f"port {PORT} is taken: the README's commands need it free")
    root = tmp_path_factory.mktemp("checkout")
    (root / ".venv").symlink_to(ROOT / ".venv")
    (root / "examples").symlink_to(ROOT / "examples")
    return root


def environment() -> dict[str, str]:
    """A reader's shell: none of the suite's own settings."""
    # MLflow's set_tracking_uri/set_registry_uri (the suite's fixtures) export MLFLOW_* too.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MODELDECK_", "MLFLOW_"))}
    return env | {"COLUMNS": "200", "PYTHONUNBUFFERED": "1"}


class Demo:
    def __init__(self, root: Path) -> None:
        self.proc = subprocess.Popen(
            [".venv/bin/modeldeck", "demo", "--story", "--story-minutes", "0.5"],
            cwd=root,
            env=environment(),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.lines: list[str] = []

    def read_until(self, pattern: str, timeout: float) -> str:
        assert self.proc.stdout is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if not line:
                break
            self.lines.append(line)
            if re.search(pattern, line):
                return line
        raise AssertionError(f"the demo never printed {pattern!r}:\n{''.join(self.lines)}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()


@pytest.fixture(scope="module")
def demo(checkout: Path) -> Iterator[Demo]:
    running = Demo(checkout)
    try:
        yield running
    finally:
        running.stop()


def sh(command: str, root: Path, env: dict[str, str], timeout: float = 300) -> str:
    """Run ``command`` with ``bash -e``; whatever it left running in the background (the lab's
    platform, should the test fail before its ``kill %1``) ends with it."""
    proc = subprocess.Popen(
        ["bash", "-e", "-c", command],
        cwd=root,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        out, err = proc.communicate(timeout=timeout)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
    assert proc.returncode == 0, f"{command}\nexited {proc.returncode}:\n{out}{err}"
    return out


@pytest.mark.timeout(900)
def test_the_readme_runs_as_written(checkout: Path, demo: Demo) -> None:
    demo.read_until(r"^curl -s ", timeout=300)
    output = "".join(demo.lines)
    api_key = re.search(r"\b(mdk_[0-9a-f]+)\b", output)
    assert api_key, output
    env = environment()

    # The quickstart's "Try it" line, as printed.
    printed = demo.lines[-1].strip()
    answer = json.loads(sh(printed, checkout, env))
    assert answer["prediction"] == [0] and len(answer["uuid"]) == 36

    # "Using it": the CLI, line by line, as a reader types it.
    iris_key = ""
    for line in commands(block("bash", "export MODELDECK_API_KEY")):
        line = line.replace("mdk_…", api_key.group(1)).replace(
            "--access-key …", f"--access-key {iris_key}"
        )
        if line.startswith("export "):
            name, _, value = line.split("#")[0].removeprefix("export ").strip().partition("=")
            env[name] = value
            continue
        out = sh(line, checkout, env)
        if " deploy " in line:
            found = re.search(r"access key:\s+(\w+)", out)
            assert found, out
            iris_key = found.group(1)
    assert iris_key

    # The Python and curl examples.
    for code in fenced("python"):
        code = code.replace('"mdk_…"', f'"{api_key.group(1)}"')
        code = code.replace('access_key="…"', f'access_key="{iris_key}"')
        sh(f".venv/bin/python - <<'EOF'\n{code}EOF", checkout, env)
    (curl,) = commands(block("bash", "curl -s http://127.0.0.1:8000/model"))
    answer = json.loads(
        sh(curl.replace('"accessKey": "…"', f'"accessKey": "{iris_key}"'), checkout, env)
    )
    assert answer["success"] is True and answer["response"]["prediction"] == [0], answer

    # "To watch them move", once the story is over.
    demo.read_until(r"^story over", timeout=300)
    watched = [
        sh(line, checkout, env) for line in commands(block("bash", ".venv/bin/modeldeck drift"))
    ]
    assert "petal_length" in watched[0] and "drift" in watched[0].lower(), watched[0]
    # accuracy 1.0 in the clean half, well below in the drifted one
    assert "acc" in watched[1] and "1.0000" in watched[1], watched[1]
    assert re.search(r"\b0\.[0-7]\d{3}\b", watched[1]), watched[1]
    assert (checkout / "report.html").stat().st_size > 100_000

    demo.stop()  # Ctrl-C, which the README says stops the platform and its replicas
    assert demo.proc.returncode == 0, "".join(demo.lines[-20:])
    left = sh(".venv/bin/modeldeck server --stop-all", checkout, environment())
    assert "stopped 0 replica process(es)" in left, left

    # The lab walk-through, as one shell script (it starts and stops its own platform).
    lab = block("bash", "mkdir -p .modeldeck/lab")
    out = sh(lab, checkout, environment(), timeout=600)
    assert "iris_classifier" in out and "stopped 2 replica process(es)" in out, out
