"""How long the CLI and the client wait for an answer: ``--timeout``, the setting, and the
message when the wait runs out, against a real HTTP server that answers slowly."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from click.testing import CliRunner

from modeldeck.cli.main import main
from modeldeck.client import ApiError, Client

DELAY_SECONDS = 2.0


class SlowServer(ThreadingHTTPServer):
    """Answers every request with an empty list, ``DELAY_SECONDS`` after it arrives (sooner
    once ``release`` is set, so that the test does not wait for answers nobody reads)."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.release = threading.Event()
        self.requests = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _Handler(BaseHTTPRequestHandler):
    server: SlowServer

    def do_GET(self) -> None:
        self.server.requests += 1
        self.server.release.wait(DELAY_SECONDS)
        data = json.dumps([]).encode()
        try:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        except OSError:  # the client gave up and closed the connection
            pass

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def slow() -> Iterator[SlowServer]:
    server = SlowServer()
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.release.set()
        server.shutdown()
        server.server_close()


def _run(slow: SlowServer, *args: str, env: dict[str, str] | None = None) -> tuple[int, str]:
    result = CliRunner().invoke(
        main, ["--url", slow.url, "--api-key", "k", *args], env=env or {}, catch_exceptions=False
    )
    return result.exit_code, result.output


def _says_it_timed_out(output: str, seconds: str) -> None:
    assert f"timed out after {seconds} s waiting for an answer" in output, output
    assert "--timeout" in output and "MODELDECK_CLIENT_TIMEOUT_SECONDS" in output
    assert "cannot reach" not in output and "unreachable" not in output


def test_the_cli_gives_up_after_its_timeout_and_says_so(slow: SlowServer) -> None:
    code, out = _run(slow, "--timeout", "0.3", "deployments", "list", "--json")
    assert code == 1
    _says_it_timed_out(out, "0.3")
    assert slow.requests == 1  # it reached the server: no retry, no second piece of work


def test_the_setting_sets_the_cli_timeout_and_the_option_wins(slow: SlowServer) -> None:
    env = {"MODELDECK_CLIENT_TIMEOUT_SECONDS": "0.3"}
    code, out = _run(slow, "deployments", "list", "--json", env=env)
    assert code == 1
    _says_it_timed_out(out, "0.3")
    # Long enough for the slow answer: the option overrides the setting.
    code, out = _run(slow, "--timeout", "30", "deployments", "list", "--json", env=env)
    assert code == 0, out
    assert json.loads(out) == []


def test_bad_timeouts_are_one_line_errors(slow: SlowServer) -> None:
    code, out = _run(slow, "--timeout", "0", "deployments", "list")
    assert code == 2 and "--timeout" in out
    env = {"MODELDECK_CLIENT_TIMEOUT_SECONDS": "soon"}
    code, out = _run(slow, "deployments", "list", env=env)
    assert code == 1 and "MODELDECK_CLIENT_TIMEOUT_SECONDS" in out and "Traceback" not in out
    assert slow.requests == 0


def test_the_python_client_takes_the_setting_and_its_own_timeout(
    slow: SlowServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MODELDECK_CLIENT_TIMEOUT_SECONDS", "0.3")
    with Client(slow.url, "k") as client, pytest.raises(ApiError) as info:
        client.deployments()
    assert (info.value.status_code, info.value.code) == (504, "timeout")
    assert info.value.details == {"timeout_seconds": 0.3}
    _says_it_timed_out(str(info.value), "0.3")
    with Client(slow.url, "k", timeout=30) as client:
        assert client.deployments() == []
    with pytest.raises(ValueError, match="timeout must be a positive number"):
        Client(slow.url, "k", timeout=0)
