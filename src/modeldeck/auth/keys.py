"""Random keys, checked by hash in constant time.

Keys carry 160 bits of randomness, so a plain SHA-256 is enough to make a leaked store useless
to an attacker; a slow password hash would only slow down every request.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass

API_KEY_PREFIX = "mdk_"


@dataclass(frozen=True)
class NewKey:
    plaintext: str
    hash: str
    prefix: str


@dataclass(frozen=True)
class KeyHash:
    """What the store keeps of an access key: its hash, its first characters and, where it can
    be read back, a copy encrypted with the platform's secret (:mod:`modeldeck.auth.vault`)."""

    hash: str
    prefix: str
    encrypted: str | None = None


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()


def new_api_key() -> NewKey:
    """A control-plane API key, ``mdk_`` followed by 40 hex digits."""
    return _new(API_KEY_PREFIX + secrets.token_hex(20))


def new_access_key() -> NewKey:
    """A per-deployment access key: 40 lowercase hex digits."""
    return _new(secrets.token_hex(20))


def matches(key: str, expected_hash: str | None) -> bool:
    if not expected_hash:
        return False
    return hmac.compare_digest(hash_key(key), expected_hash)


def _new(plaintext: str) -> NewKey:
    return NewKey(plaintext=plaintext, hash=hash_key(plaintext), prefix=plaintext[:8])
