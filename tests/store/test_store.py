from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import func, select

from modeldeck.errors import ConfigurationError
from modeldeck.store import Store
from modeldeck.store.schema import ApiKeyRow
from tests.fixtures import schema_drift


def test_migrations_create_the_schema_and_are_idempotent(store_url: str) -> None:
    store = Store(store_url)
    store.migrate()
    store.migrate()
    assert {"deployments", "replicas", "api_keys", "alembic_version"} <= set(store.table_names())
    store.close()


def test_every_migration_together_creates_what_the_schema_declares(store_url: str) -> None:
    assert schema_drift(store_url) == []


def test_a_failed_write_leaves_the_store_as_it_was(store_url: str) -> None:
    store = Store(store_url)
    store.migrate()
    with store.write() as session:
        session.add(ApiKeyRow(id="k1", name="one", key_hash="h1", prefix="p"))
    with pytest.raises(RuntimeError), store.write() as session:
        session.add(ApiKeyRow(id="k2", name="two", key_hash="h2", prefix="p"))
        session.flush()
        raise RuntimeError("boom")
    with store.read() as session:
        assert session.scalar(select(func.count()).select_from(ApiKeyRow)) == 1
    store.close()


def test_sqlite_store_uses_wal(tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path / 'x.db'}")
    store.migrate()
    with store.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
    store.close()


def test_uncreatable_data_dir_is_a_clear_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(ConfigurationError, match=r"cannot create the store directory .*sub"):
        Store(f"sqlite:///{blocker / 'sub' / 'x.db'}")
