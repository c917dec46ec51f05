"""Control-plane API keys: created, listed, rotated, revoked, verified. Stored only as hashes.

Every key has a scope, which decides what it may do:

* ``admin``: everything, including managing API keys;
* ``deploy``: create, change, roll back and delete deployments, record metrics, set up
  monitoring and alerts, and everything ``read`` may;
* ``read``: read-only calls (``GET``): deployments, models, metrics, analysis, alerts, logs;
* ``predict:<deployment>``: only that deployment's model endpoint, like its access key; no
  control-plane call. The key is bound to the deployment (its id), made only for one that
  exists, and deleted with it: it never opens a later deployment of the same name.

The key configured as ``MODELDECK_API_KEY`` is an ``admin`` key.
"""

from __future__ import annotations

import hmac
import threading
import time
import uuid
from dataclasses import dataclass

from sqlalchemy import func, select, update

from modeldeck.auth.keys import API_KEY_PREFIX, hash_key, new_api_key
from modeldeck.config import Settings
from modeldeck.errors import NotFound
from modeldeck.store import Store
from modeldeck.store.schema import ApiKeyRow, DeploymentRow, utcnow
from modeldeck.validation import DEPLOYMENT_NAME_PATTERN
from modeldeck.views.keys import ApiKeyCreated, ApiKeyView

ADMIN = "admin"
DEPLOY = "deploy"
READ = "read"
PREDICT = "predict:"
SCOPE_PATTERN = rf"^(admin|deploy|read|predict:{DEPLOYMENT_NAME_PATTERN[1:-1]})$"
LAST_USED_INTERVAL_SECONDS = 60.0  # last_used_at is written at most this often per key


def grants(scope: str, needed: str) -> bool:
    """Whether a key of ``scope`` may do what needs ``needed``."""
    if scope == ADMIN:
        return True
    if scope == DEPLOY:
        return needed in (DEPLOY, READ)
    return scope == needed  # read needs read; predict:<name> only opens that deployment


def predict_scope(deployment: str) -> str:
    return PREDICT + deployment


@dataclass(frozen=True)
class Caller:
    """Who an API key belongs to: its id (``None`` for ``MODELDECK_API_KEY``), name and scope;
    for a ``predict:`` key, the id of the deployment it opens."""

    key_id: str | None
    name: str
    scope: str
    deployment_id: str | None = None

    def opens(self, deployment_id: str) -> bool:
        """Whether this is a ``predict:`` key of the deployment with that id."""
        return self.scope.startswith(PREDICT) and self.deployment_id == deployment_id


class ApiKeyService:
    def __init__(self, settings: Settings, store: Store) -> None:
        self.settings = settings
        self.store = store
        self._touched: dict[str, float] = {}  # key id -> monotonic time last_used_at was written
        self._touch_lock = threading.Lock()

    def ensure_initial(self) -> ApiKeyCreated | None:
        """Create the first key when none exists and none is configured; else ``None``."""
        if self.settings.api_key is not None:
            return None
        with self.store.read() as session:
            if session.scalar(select(func.count()).select_from(ApiKeyRow)):
                return None
        return self.create("default")

    def create(self, name: str, scope: str = ADMIN) -> ApiKeyCreated:
        """A new key; a ``predict:<deployment>`` key needs that deployment to exist (404)."""
        key = new_api_key()
        row = ApiKeyRow(
            id=str(uuid.uuid4()), name=name, key_hash=key.hash, prefix=key.prefix, scope=scope
        )
        with self.store.write() as session:
            if scope.startswith(PREDICT):
                deployment = scope.removeprefix(PREDICT)
                row.deployment_id = session.scalar(
                    select(DeploymentRow.id).where(DeploymentRow.name == deployment)
                )
                if row.deployment_id is None:
                    raise NotFound(
                        f"deployment {deployment!r} not found: a predict key opens a deployment "
                        "that exists",
                        details={"deployment": deployment, "field": "scope"},
                    )
            session.add(row)
        return ApiKeyCreated(**self._get(row.id).model_dump(), key=key.plaintext)

    def list(self) -> list[ApiKeyView]:
        with self.store.read() as session:
            rows = session.scalars(select(ApiKeyRow).order_by(ApiKeyRow.created_at))
            return [_view(r) for r in rows]

    def rotate(self, key_id: str) -> ApiKeyCreated:
        """A new secret for the key (same id, name and scope); the old one stops working now."""
        key = new_api_key()
        with self.store.write() as session:
            row = session.get(ApiKeyRow, key_id)
            if row is None:
                raise NotFound(f"API key {key_id!r} not found", details={"key_id": key_id})
            row.key_hash = key.hash
            row.prefix = key.prefix
            row.last_used_at = None
        return ApiKeyCreated(**self._get(key_id).model_dump(), key=key.plaintext)

    def revoke(self, key_id: str) -> None:
        with self.store.write() as session:
            row = session.get(ApiKeyRow, key_id)
            if row is None:
                raise NotFound(f"API key {key_id!r} not found", details={"key_id": key_id})
            session.delete(row)

    def authenticate(self, key: str) -> Caller | None:
        """Whose key this is, or ``None`` for a key the platform does not know."""
        digest = hash_key(key)
        configured = self.settings.api_key
        if configured is not None and hmac.compare_digest(
            digest, hash_key(configured.get_secret_value())
        ):
            return Caller(key_id=None, name="MODELDECK_API_KEY", scope=ADMIN)
        if not key.startswith(API_KEY_PREFIX):
            return None  # not a key this platform issued: no store lookup
        with self.store.read() as session:
            row = session.scalars(select(ApiKeyRow).where(ApiKeyRow.key_hash == digest)).first()
            if row is None or not hmac.compare_digest(row.key_hash, digest):
                return None
            caller = Caller(
                key_id=row.id, name=row.name, scope=row.scope, deployment_id=row.deployment_id
            )
        self._touch(caller.key_id)
        return caller

    def _touch(self, key_id: str | None) -> None:
        if key_id is None:
            return
        now = time.monotonic()
        with self._touch_lock:
            last = self._touched.get(key_id)
            if last is not None and now - last < LAST_USED_INTERVAL_SECONDS:
                return
            self._touched[key_id] = now
        with self.store.write() as session:
            session.execute(
                update(ApiKeyRow).where(ApiKeyRow.id == key_id).values(last_used_at=utcnow())
            )

    def _get(self, key_id: str) -> ApiKeyView:
        with self.store.read() as session:
            stored = session.get(ApiKeyRow, key_id)
            assert stored is not None
            return _view(stored)


def _view(row: ApiKeyRow) -> ApiKeyView:
    return ApiKeyView(
        id=row.id,
        name=row.name,
        scope=row.scope,
        prefix=row.prefix,
        created_at=row.created_at,
        last_used_at=row.last_used_at,
    )
