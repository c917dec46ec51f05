"""Migration 0010: API keys made before scopes existed become admin keys, as they behaved."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import create_engine, inspect, text

from modeldeck.auth.api_keys import ApiKeyService
from modeldeck.auth.keys import new_api_key
from modeldeck.config import Settings
from modeldeck.store import Store
from modeldeck.store.db import MIGRATIONS_DIR


def _alembic(url: str, action: str, revision: str) -> None:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            config.attributes["connection"] = connection
            getattr(command, action)(config, revision)
            connection.commit()
    finally:
        engine.dispose()


def test_keys_from_before_scopes_become_admin_and_keep_working(store_url: str) -> None:
    if store_url.startswith("sqlite"):
        Path(store_url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    _alembic(store_url, "upgrade", "0009")
    key = new_api_key()
    engine = create_engine(store_url)
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO api_keys (id, name, key_hash, prefix, created_at) "
                "VALUES ('old', 'old', :hash, :prefix, :at)"
            ),
            {"hash": key.hash, "prefix": key.prefix, "at": datetime.now(UTC)},
        )
    engine.dispose()

    store = Store(store_url)
    store.migrate()
    service = ApiKeyService(Settings(), store)
    [view] = service.list()
    assert (view.id, view.scope, view.last_used_at) == ("old", "admin", None)
    caller = service.authenticate(key.plaintext)
    assert caller is not None and caller.scope == "admin"
    assert service.list()[0].last_used_at is not None
    store.close()

    _alembic(store_url, "downgrade", "0009")
    engine = create_engine(store_url)
    columns = {c["name"] for c in inspect(engine).get_columns("api_keys")}
    engine.dispose()
    assert "scope" not in columns and "last_used_at" not in columns
    _alembic(store_url, "upgrade", "head")
