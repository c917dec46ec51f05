"""Access keys kept encrypted at rest, so that authorised callers can read them back.

Cloudera ML shows a model's access key to those who may deploy it (``cmlapi``'s ``list_models``
and ``get_model`` return it), and scripts take it from there to call the model. modeldeck keeps
each access key twice: its SHA-256 hash, which the request path checks (:mod:`modeldeck.auth.keys`),
and a copy encrypted with the platform's secret, which only the control plane decrypts, for API
keys of scope ``deploy`` or ``admin``. Control-plane API keys are never kept but as hashes.

The secret is ``MODELDECK_SECRET_KEY`` when set (every platform sharing one PostgreSQL store
needs the same), else ``<data_dir>/secret.key``, made on first start (random, mode 0600) and
never overwritten. The encryption is ``cryptography``'s Fernet (AES-128-CBC with an
HMAC-SHA256, a random IV per value) under a key derived from the secret with HKDF-SHA256. A
value encrypted under another secret (the secret was changed or the file lost) reads back as
``None``, like keys made before keys were kept encrypted: rotating the key makes it readable.
"""

from __future__ import annotations

import base64
import contextlib
import logging
import os
import stat
import threading
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from modeldeck.config import Settings
from modeldeck.errors import ModeldeckError

log = logging.getLogger("modeldeck.auth.keys")

SECRET_FILE = "secret.key"
MIN_SECRET_LENGTH = 32  # characters of a generated secret's file; MODELDECK_SECRET_KEY's minimum
_INFO = b"modeldeck access keys v1"


class SecretUnavailable(ModeldeckError):
    """The platform's secret can be neither read nor made."""


class KeyVault:
    """Encrypts and decrypts access keys with the platform's secret, loaded on first use."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._fernet: Fernet | None = None
        self._lock = threading.Lock()

    @property
    def secret_path(self) -> Path:
        return self.settings.data_dir.resolve() / SECRET_FILE

    def load(self) -> None:
        """Read the secret, making ``secret.key`` first if there is none (the platform calls
        this at start, so that a data directory it cannot write is said then)."""
        self._cipher()

    def encrypt(self, plaintext: str) -> str:
        return self._cipher().encrypt(plaintext.encode()).decode("ascii")

    def decrypt(self, token: str | None) -> str | None:
        """The key, or ``None`` for none kept (made before keys were encrypted) or one
        encrypted under another secret."""
        if not token:
            return None
        try:
            return self._cipher().decrypt(token.encode("ascii")).decode()
        except (InvalidToken, ValueError):
            return None

    def _cipher(self) -> Fernet:
        with self._lock:
            if self._fernet is None:
                self._fernet = Fernet(_derive(self._secret()))
            return self._fernet

    def _secret(self) -> bytes:
        configured = self.settings.secret_key
        if configured is not None:
            value = configured.get_secret_value().encode()
            if len(value) < MIN_SECRET_LENGTH:
                raise SecretUnavailable(
                    f"MODELDECK_SECRET_KEY holds {len(value)} characters, fewer than "
                    f"{MIN_SECRET_LENGTH}: set a longer one (e.g. `openssl rand -hex 32`)"
                )
            return value
        path = self.secret_path
        try:
            secret = _read_or_create(path)
        except OSError as exc:
            raise SecretUnavailable(
                f"cannot read or create the platform's secret {path}: {exc.strerror or exc}; "
                "set MODELDECK_SECRET_KEY or make the data directory writable",
                details={"path": str(path)},
            ) from exc
        if len(secret) < MIN_SECRET_LENGTH:
            raise SecretUnavailable(
                f"the platform's secret {path} holds {len(secret)} characters, fewer than "
                f"{MIN_SECRET_LENGTH}: restore it, or set MODELDECK_SECRET_KEY",
                details={"path": str(path)},
            )
        return secret


def _derive(secret: bytes) -> bytes:
    key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_INFO).derive(secret)
    return base64.urlsafe_b64encode(key)


def _read_or_create(path: Path) -> bytes:
    """The secret in ``path``; a new random one when the file does not exist. Written to a
    private temporary file first and linked into place, so that two platforms starting at
    once on one data directory agree on one secret and nobody reads a half-written file."""
    try:
        return _read(path)
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(Fernet.generate_key() + b"\n")
        with contextlib.suppress(FileExistsError):  # another process made it first
            os.link(temporary, path)
            log.info("made the platform's secret %s (keep it with the store's backups)", path)
    finally:
        temporary.unlink(missing_ok=True)
    return _read(path)


def _read(path: Path) -> bytes:
    mode = path.stat().st_mode
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        log.warning("the platform's secret %s is readable by others: chmod 600 it", path)
    return path.read_bytes().strip()
