"""A second platform on a data directory in use is refused before it touches the store."""

from __future__ import annotations

import signal
import subprocess
import sys

import pytest

from tests.conftest import RunningPlatform, free_port

# make test-slow: each test starts, kills or restarts real platform processes.
pytestmark = [pytest.mark.integration, pytest.mark.slow]

WATCHED = ("status", "status_message", "ready_replicas", "updated_at", "version")


def second(platform: RunningPlatform, *command: str) -> subprocess.CompletedProcess[str]:
    """``modeldeck COMMAND`` on the running platform's data directory, on another port."""
    env = {**platform.env, "MODELDECK_PORT": str(free_port())}
    return subprocess.run(
        [sys.executable, "-m", "modeldeck.cli.main", *command],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_a_second_server_on_the_data_dir_is_refused_and_changes_nothing(
    platform: RunningPlatform,
) -> None:
    client = platform.client()
    client.deploy("held", "iris", version=1, replicas=1)
    client.wait("held", timeout=120)
    before = {d["name"]: {k: d[k] for k in WATCHED} for d in client.deployments()}
    assert before["held"]["status"] == "deployed"
    assert platform.proc is not None

    # --stop-all would stop the running platform's replicas: refused the same way.
    for command in (("server",), ("demo", "--exit-after-traffic"), ("server", "--stop-all")):
        result = second(platform, *command)
        assert result.returncode != 0, result.stdout + result.stderr
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1, result.stderr  # one line, no traceback
        assert f"pid {platform.proc.pid}, {platform.url}" in lines[0]
        assert str(platform.data_dir) in lines[0]
        assert "API key created" not in result.stdout  # refused before the store was touched
        assert "stopped" not in result.stdout

    after = {d["name"]: {k: d[k] for k in WATCHED} for d in client.deployments()}
    assert after == before  # not rewritten to "deploying / restoring after restart"
    client.delete("held")


def test_a_platform_killed_with_sigkill_leaves_no_lock_behind(platform: RunningPlatform) -> None:
    """The lock dies with its process, and the replicas that outlive it do not hold it: the
    next start on the data directory is not refused, and adopts them."""
    client = platform.client()
    client.deploy("survivor", "iris", version=1, replicas=1)
    pids = [r["pid"] for r in client.wait("survivor", timeout=120)["replica_states"]]
    platform.stop(signal.SIGKILL, keep_replicas=True)
    assert (platform.data_dir / "modeldeck.lock").exists()  # stale, and harmless
    platform.start()
    restored = platform.client().wait("survivor", timeout=120)
    assert restored["status"] == "deployed"
    assert [r["pid"] for r in restored["replica_states"]] == pids  # adopted, not restarted
    assert platform.proc is not None
    assert f'"pid": {platform.proc.pid}' in (platform.data_dir / "modeldeck.lock").read_text()
    platform.client().delete("survivor")
