"""The data directory's lock: exclusive, names its holder, dies with the holding process."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from modeldeck.config import Settings
from modeldeck.datadir import DataDirInUse, DataDirLock
from modeldeck.errors import ConfigurationError

HOLD = """
import sys, time
from pathlib import Path
from modeldeck.datadir import DataDirLock
DataDirLock(Path(sys.argv[1])).acquire("http://127.0.0.1:8123")
print("held", flush=True)
time.sleep(600)
"""


def hold_in_child(data_dir: Path) -> subprocess.Popen[str]:
    child = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(data_dir)], stdout=subprocess.PIPE, text=True
    )
    assert child.stdout is not None
    assert child.stdout.readline().strip() == "held"
    return child


def test_a_held_lock_refuses_a_second_holder_naming_the_first(tmp_path: Path) -> None:
    child = hold_in_child(tmp_path)
    try:
        lock = DataDirLock(tmp_path)
        with pytest.raises(DataDirInUse) as refused:
            lock.acquire("http://127.0.0.1:9999")
        assert f"pid {child.pid}, http://127.0.0.1:8123" in refused.value.message
        assert str(tmp_path) in refused.value.message
        assert "\n" not in refused.value.message
        assert not lock.held
        assert json.loads((tmp_path / "modeldeck.lock").read_text())["pid"] == child.pid
    finally:
        child.kill()
        child.wait()


def test_the_lock_dies_with_its_process(tmp_path: Path) -> None:
    child = hold_in_child(tmp_path)
    child.send_signal(signal.SIGKILL)
    child.wait()
    with DataDirLock(tmp_path) as lock:  # the stale file does not block
        lock.acquire("http://127.0.0.1:9999")
        assert lock.held
        holder = json.loads((tmp_path / "modeldeck.lock").read_text())
        assert holder == {"pid": os.getpid(), "url": "http://127.0.0.1:9999"}
    assert not lock.held
    assert (tmp_path / "modeldeck.lock").read_text() == ""
    again = DataDirLock(tmp_path)
    again.acquire("http://127.0.0.1:9999")  # released: free again
    again.release()


def test_two_locks_in_one_process_exclude_each_other(tmp_path: Path) -> None:
    first = DataDirLock(tmp_path)
    first.acquire("http://a")
    try:
        with pytest.raises(DataDirInUse):
            DataDirLock(tmp_path).acquire("http://b")
    finally:
        first.release()


def test_a_platform_on_a_held_data_dir_does_not_start_nor_touch_the_store(
    tmp_path: Path,
) -> None:
    """``Platform.start`` takes the lock before migrating or restoring anything."""
    from modeldeck.platform import Platform

    child = hold_in_child(tmp_path)
    try:
        platform = Platform(Settings(data_dir=tmp_path))
        with pytest.raises(DataDirInUse, match=f"pid {child.pid}"):
            asyncio.run(platform.start())
        assert not (tmp_path / "modeldeck.db").exists()
    finally:
        child.kill()
        child.wait()


def test_deployments_are_not_restored_without_the_lock(tmp_path: Path) -> None:
    """The restore that rewrites every deployment to ``deploying`` needs the held lock."""
    from modeldeck.platform import Platform

    platform = Platform(Settings(data_dir=tmp_path))
    with pytest.raises(ConfigurationError, match="lock"):
        asyncio.run(platform.deployments.restore(DataDirLock(tmp_path)))
    assert not (tmp_path / "modeldeck.db").exists()


# -- the port: a second platform on another data directory -------------------------------------


def test_a_taken_port_is_one_error_naming_it(tmp_path: Path) -> None:
    from modeldeck.httpserver import PortInUse, listen

    taken = listen("127.0.0.1", 0)
    port = taken.getsockname()[1]
    try:
        with pytest.raises(PortInUse) as refused:
            listen("127.0.0.1", port)
        assert f"port {port} on 127.0.0.1 is in use" in refused.value.message
        assert "--port" in refused.value.message and "MODELDECK_PORT" in refused.value.message
    finally:
        taken.close()
    listen("127.0.0.1", port).close()  # free again once closed


def test_a_server_on_a_taken_port_stops_before_touching_anything(tmp_path: Path) -> None:
    """``modeldeck server`` on a port another program holds: one line naming the port, a
    failed exit, and no store, no key and no secret made (it used to start the whole platform,
    print a new API key, then fail with uvicorn's raw ``[Errno 98]``)."""
    from modeldeck.httpserver import listen

    taken = listen("127.0.0.1", 0)
    port = taken.getsockname()[1]
    data = tmp_path / "data"
    try:
        result = subprocess.run(
            [sys.executable, "-m", "modeldeck.cli.main", "server", "--port", str(port)],
            env={**os.environ, "MODELDECK_DATA_DIR": str(data), "MODELDECK_HOST": "127.0.0.1"},
            capture_output=True,
            text=True,
            timeout=120,
        )
    finally:
        taken.close()
    assert result.returncode != 0, result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and f"port {port} on 127.0.0.1 is in use" in lines[0], result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    assert "API key created" not in result.stdout
    assert not (data / "modeldeck.db").exists()
    assert not (data / "secret.key").exists()
