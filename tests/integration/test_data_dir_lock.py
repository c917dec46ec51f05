"""A second platform on a data directory in use is refused before it touches the store."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.conftest import RunningPlatform, free_port

pytestmark = pytest.mark.integration

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

    for command in (("server",), ("demo", "--exit-after-traffic")):
        result = second(platform, *command)
        assert result.returncode != 0, result.stdout + result.stderr
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1, result.stderr  # one line, no traceback
        assert f"pid {platform.proc.pid}, {platform.url}" in lines[0]
        assert str(platform.data_dir) in lines[0]
        assert "API key created" not in result.stdout  # refused before the store was touched

    after = {d["name"]: {k: d[k] for k in WATCHED} for d in client.deployments()}
    assert after == before  # not rewritten to "deploying / restoring after restart"
    client.delete("held")
