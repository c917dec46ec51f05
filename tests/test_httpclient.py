"""One HTTP client per process (``httpclient.py``), reused by ``cml``/``cdsw``'s ``call_model``,
``cmlapi`` and the metrics SDK: calls share its open connections, from any thread, and it is
closed at exit. Against a real HTTP server that counts the connections it is sent."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from modeldeck import httpclient
from modeldeck.client import Client
from modeldeck.compat import cml, cmlapi


class CountingServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.connections: set[tuple[str, int]] = set()
        self.lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive
    server: CountingServer

    def _answer(self, body: object) -> None:
        with self.server.lock:
            self.server.connections.add(self.client_address)
        data = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self) -> None:
        payload = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self._answer({"success": True, "response": {"echo": payload["request"]}})

    def do_GET(self) -> None:
        self._answer({"models": [], "next_page_token": "", "auth": self.headers["Authorization"]})

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture()
def server(monkeypatch: pytest.MonkeyPatch) -> Iterator[CountingServer]:
    running = CountingServer()
    thread = threading.Thread(target=running.serve_forever, daemon=True)
    thread.start()
    monkeypatch.setenv("MODELDECK_URL", running.url)
    httpclient.close()  # a fresh client: its connections are this server's alone
    try:
        yield running
    finally:
        httpclient.close()
        running.shutdown()
        running.server_close()


def test_calls_reuse_one_client_and_its_connection(server: CountingServer) -> None:
    answers = [cml.call_model("key", {"n": n}) for n in range(50)]
    assert [a["response"]["echo"]["n"] for a in answers] == list(range(50))
    assert len(server.connections) == 1
    api = cmlapi.default_client(url=server.url, cml_api_key="k1")
    other = cmlapi.CMLServiceApi(server.url, "k2")
    assert api.list_models("p").to_dict()["auth"] == "Bearer k1"  # each client's own key
    assert other.list_models("p").to_dict()["auth"] == "Bearer k2"
    client = Client(server.url, "k3", http=httpclient.shared())
    assert client.request("GET", "/api/v1/anything")["auth"] == "Bearer k3"
    client.close()  # a client that was handed the shared one leaves it open
    assert not httpclient.shared().is_closed
    assert len(server.connections) == 1
    assert httpclient.shared() is httpclient.shared()


def test_threads_share_the_client(server: CountingServer) -> None:
    with ThreadPoolExecutor(4) as pool:
        answers = list(pool.map(lambda n: cml.call_model("key", {"n": n}), range(200)))
    assert all(a["success"] for a in answers)
    assert 1 <= len(server.connections) <= 4  # a connection per thread at most, reused


def test_a_forked_process_builds_its_own(monkeypatch: pytest.MonkeyPatch) -> None:
    parent = httpclient.shared()
    monkeypatch.setattr(httpclient, "_owner_pid", -1)  # as seen from a forked child
    child = httpclient.shared()
    assert child is not parent and not parent.is_closed


def test_the_client_is_closed_at_exit() -> None:
    script = (
        "import atexit\n"
        "seen = {}\n"
        "atexit.register(lambda: print('closed' if seen['client'].is_closed else 'open'))\n"
        "from modeldeck import httpclient\n"  # registers its own handler, which runs first
        "seen['client'] = httpclient.shared()\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "closed"
