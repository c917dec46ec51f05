"""Control-plane API keys: created, listed, revoked, verified. Stored only as hashes."""

from __future__ import annotations

import hmac
import uuid
from datetime import datetime

from pydantic import BaseModel
from sqlalchemy import func, select

from modeldeck.config import Settings
from modeldeck.errors import NotFound
from modeldeck.keys import hash_key, new_api_key
from modeldeck.store import Store
from modeldeck.store.schema import ApiKeyRow


class ApiKeyView(BaseModel):
    id: str
    name: str
    prefix: str
    created_at: datetime


class ApiKeyCreated(ApiKeyView):
    key: str


class ApiKeyService:
    def __init__(self, settings: Settings, store: Store) -> None:
        self.settings = settings
        self.store = store

    def ensure_initial(self) -> ApiKeyCreated | None:
        """Create the first key when none exists and none is configured; else ``None``."""
        if self.settings.api_key is not None:
            return None
        with self.store.read() as session:
            if session.scalar(select(func.count()).select_from(ApiKeyRow)):
                return None
        return self.create("default")

    def create(self, name: str) -> ApiKeyCreated:
        key = new_api_key()
        row = ApiKeyRow(id=str(uuid.uuid4()), name=name, key_hash=key.hash, prefix=key.prefix)
        with self.store.write() as session:
            session.add(row)
        with self.store.read() as session:
            stored = session.get(ApiKeyRow, row.id)
            assert stored is not None
            return ApiKeyCreated(**_view(stored).model_dump(), key=key.plaintext)

    def list(self) -> list[ApiKeyView]:
        with self.store.read() as session:
            rows = session.scalars(select(ApiKeyRow).order_by(ApiKeyRow.created_at))
            return [_view(r) for r in rows]

    def revoke(self, key_id: str) -> None:
        with self.store.write() as session:
            row = session.get(ApiKeyRow, key_id)
            if row is None:
                raise NotFound(f"API key {key_id!r} not found", details={"key_id": key_id})
            session.delete(row)

    def verify(self, key: str) -> bool:
        digest = hash_key(key)
        configured = self.settings.api_key
        if configured is not None and hmac.compare_digest(
            digest, hash_key(configured.get_secret_value())
        ):
            return True
        with self.store.read() as session:
            stored = session.scalar(select(ApiKeyRow.key_hash).where(ApiKeyRow.key_hash == digest))
        return stored is not None and hmac.compare_digest(stored, digest)


def _view(row: ApiKeyRow) -> ApiKeyView:
    return ApiKeyView(id=row.id, name=row.name, prefix=row.prefix, created_at=row.created_at)
