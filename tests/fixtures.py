"""Tiny models and helpers for tests (real MLflow models are used in the integration tests)."""

from __future__ import annotations

import time
from typing import Any

from modeldeck.replica.codecs import ColumnSpec, dataframe


class SumModel:
    """Predicts the sum of each row; counts its calls and the rows it saw per call."""

    def __init__(self, columns: list[str] | None = ("a", "b")) -> None:  # type: ignore[assignment]
        self.ready = False
        self.input_columns = (
            [ColumnSpec(c, "double") for c in columns] if columns is not None else None
        )
        self.input_tensor = None
        self.calls: list[int] = []

    def load(self) -> None:
        self.ready = True

    def make_input(self, columns: list[str] | None, rows: list[list[Any]]) -> Any:
        return dataframe(columns, rows, self.input_columns)

    def predict(self, data: Any) -> Any:
        self.calls.append(len(data))
        if (data < 0).any().any():
            raise ValueError("negative input")
        return data.sum(axis=1).to_numpy()

    def unload(self) -> None:
        self.ready = False


def add_deployment(store: Any, deployment_id: str, name: str, **overrides: Any) -> None:
    """A deployment row straight into a store, for tests of what hangs off deployments."""
    from modeldeck.store.schema import DeploymentRow

    values: dict[str, Any] = {
        "id": deployment_id, "name": name, "crn": f"crn:{name}", "model_name": "m",
        "model_version": "1", "version_spec": "1", "model_uri": "models:/m/1",
        "runtime": "local", "replicas": 1, "environment": {}, "auth_enabled": True,
        "desired_state": "running", "status": "deployed", "status_message": "",
    }  # fmt: skip
    values.update(overrides)
    with store.write() as session:
        session.add(DeploymentRow(**values))


def schema_drift(url: str) -> list[Any]:
    """What the migrated store at ``url`` lacks or has beyond ``schema.Base`` (alembic's diff).

    Left out: the latency-histogram columns of ``technical_rollups``, which the first migration
    made NOT NULL while the model leaves them nullable (they always get a value).
    """
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext
    from sqlalchemy import create_engine

    from modeldeck.store import Store
    from modeldeck.store.schema import Base

    store = Store(url)
    store.migrate()
    store.close()
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    finally:
        engine.dispose()

    def known(op: Any) -> bool:
        return (
            isinstance(op, tuple)
            and op[0] == "modify_nullable"
            and op[2] == "technical_rollups"
            and str(op[3]).startswith("lat_")
        )

    # Column changes come as lists of operations, table and index changes as one tuple.
    return [d for d in diff if not (all(map(known, d)) if isinstance(d, list) else known(d))]


def wait_for(predicate: Any, timeout: float = 90.0, interval: float = 0.2) -> Any:
    """Poll ``predicate`` until it returns something true, and return that; fail after
    ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"condition not met within {timeout} s")
