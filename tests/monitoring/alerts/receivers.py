"""Local receivers for alert deliveries: an HTTP server recording JSON POSTs, and an aiosmtpd
SMTP server on loopback with STARTTLS (a self-signed certificate made here) and AUTH."""

from __future__ import annotations

import datetime as dt
import ipaddress
import ssl
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email import message_from_bytes
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import orjson
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

from tests.conftest import free_port

SMTP_USER = "alerts"
SMTP_PASSWORD = "smtp-pw-1"


@dataclass
class Posted:
    path: str
    headers: dict[str, str]
    body: Any


@dataclass
class HttpReceiver:
    """Records each POST's path, headers and JSON body; answers the scripted statuses in turn
    (then 200 or 202 for paths under ``/pagerduty``)."""

    url: str = ""
    script: list[int] = field(default_factory=list)
    posted: list[Posted] = field(default_factory=list)

    def at(self, path: str) -> list[Posted]:
        return [p for p in self.posted if p.path == path]


@contextmanager
def http_receiver() -> Iterator[HttpReceiver]:
    state = HttpReceiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            raw = self.rfile.read(int(self.headers["Content-Length"]))
            state.posted.append(Posted(self.path, dict(self.headers.items()), orjson.loads(raw)))
            pagerduty = self.path.startswith("/pagerduty")
            status = state.script.pop(0) if state.script else (202 if pagerduty else 200)
            payload = b'{"status": "success", "message": "Event processed"}' if pagerduty else b"ok"
            if status >= 400:
                payload = b'{"error": "scripted"}'
            self.send_response(status)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, args=(0.01,), daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def self_signed(directory: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 (and localhost) and its key, as PEM files."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "modeldeck test SMTP")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "smtp.crt", directory / "smtp.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


@dataclass
class SmtpReceiver:
    host: str
    port: int
    ca_file: Path
    messages: list[tuple[Envelope, Message]] = field(default_factory=list)
    logins: list[str] = field(default_factory=list)  # user names that authenticated


@contextmanager
def smtp_receiver(directory: Path, *, starttls: bool = True) -> Iterator[SmtpReceiver]:
    """aiosmtpd on 127.0.0.1; with ``starttls`` it requires STARTTLS before AUTH and MAIL,
    and accepts ``SMTP_USER`` / ``SMTP_PASSWORD`` only."""
    cert, key = self_signed(directory)
    state = SmtpReceiver("127.0.0.1", free_port(), cert)

    class Handler:
        async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
            content = envelope.content
            raw = content if isinstance(content, bytes) else str(content).encode()
            state.messages.append((envelope, message_from_bytes(raw)))
            return "250 Message accepted for delivery"

    def authenticator(
        server: SMTP, session: Session, envelope: Envelope, mechanism: str, auth_data: Any
    ) -> AuthResult:
        ok = (
            isinstance(auth_data, LoginPassword)
            and auth_data.login == SMTP_USER.encode()
            and auth_data.password == SMTP_PASSWORD.encode()
        )
        if ok:
            state.logins.append(SMTP_USER)
        return AuthResult(success=ok, handled=False)  # aiosmtpd answers 535 itself

    options: dict[str, Any] = {}
    if starttls:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(cert, key)
        options = {
            "tls_context": context,
            "require_starttls": True,
            "authenticator": authenticator,
            "auth_require_tls": True,
        }
    controller = Controller(Handler(), hostname=state.host, port=state.port, **options)
    controller.start()
    try:
        yield state
    finally:
        controller.stop()
