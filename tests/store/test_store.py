from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from modeldeck.errors import ConfigurationError, ValidationFailed
from modeldeck.store import Store
from modeldeck.store.db import describe_error
from modeldeck.store.schema import ApiKeyRow, DeploymentRow
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


def test_the_guard_refuses_alike_what_one_store_would_keep(store_url: str) -> None:
    """NUL, a string past its VARCHAR, an integer past INTEGER: a 422 naming the column on
    both stores, where SQLite would have stored them and PostgreSQL answered a 500."""
    store = Store(store_url)
    store.migrate()
    rows = [
        (ApiKeyRow(id="a", name="n\x00", key_hash="h1", prefix="p"), "api_keys.name"),
        (ApiKeyRow(id="b", name="n" * 256, key_hash="h2", prefix="p"), "api_keys.name"),
        (ApiKeyRow(id="c", name="n", key_hash="h3", prefix="p", scope="s" * 81), "api_keys.scope"),
        (
            DeploymentRow(
                id="d",
                name="d",
                crn="c",
                model_name="m",
                model_version="1",
                version_spec="1",
                model_uri="u",
                memory_mb=2**31,
                environment={},
            ),
            "deployments.memory_mb",
        ),
        (
            DeploymentRow(
                id="e",
                name="e",
                crn="c",
                model_name="m",
                model_version="1",
                version_spec="1",
                model_uri="u",
                environment={"A": "x\x00"},
            ),
            "deployments.environment",
        ),
    ]
    for row, field in rows:
        with pytest.raises(ValidationFailed) as refused, store.write() as session:
            session.add(row)
        assert refused.value.details == {"field": field}
    with store.read() as session:
        assert session.scalar(select(func.count()).select_from(ApiKeyRow)) == 0
        assert session.scalar(select(func.count()).select_from(DeploymentRow)) == 0
    store.close()


def test_database_errors_are_described_without_their_values(store_url: str) -> None:
    """A failed statement's parameters are hidden, and what the API's handler logs of it
    (``describe_error``) quotes no value: PostgreSQL's DETAIL echoes the row's."""
    store = Store(store_url)
    store.migrate()
    secret = "s3cret-webhook-key-0123456789"
    with store.write() as session:
        session.add(ApiKeyRow(id="k1", name="one", key_hash=secret, prefix="p"))
    with pytest.raises(IntegrityError) as failed, store.write() as session:
        session.add(ApiKeyRow(id="k2", name="two", key_hash=secret, prefix="p"))  # unique hash
    assert "SQL parameters hidden" in str(failed.value)
    described = describe_error(failed.value)
    assert secret not in described
    assert "key_hash" in described or "unique" in described.lower(), described
    store.close()
