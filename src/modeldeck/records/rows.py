"""Prediction rows as the hot path and the prediction journal insert them (SQLite).

Below :mod:`modeldeck.records.model_metrics` and :mod:`modeldeck.records.journal`, which both
insert rows this way: a row is ``(uuid, deployment_id, model_version, replica, start_ms,
end_ms, metrics as JSON)``.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

from modeldeck.store import Store

COLUMNS = "uuid, deployment_id, model_version, replica, start_ms, end_ms, metrics"
_ROWS_PER_STATEMENT = 256


@functools.cache
def _insert_statement(rows: int, new_only: bool = False) -> str:
    values = ", ".join(["(?, ?, ?, ?, ?, ?, ?)"] * rows)
    statement = f"INSERT INTO predictions ({COLUMNS}) VALUES {values}"
    return statement + " ON CONFLICT (uuid) DO NOTHING" if new_only else statement


def insert_sqlite(cursor: Any, rows: Sequence[tuple[Any, ...]], *, new_only: bool = False) -> None:
    # Multi-row statements: sqlite3 releases and re-takes the GIL at every step of
    # executemany, which stalls the writer thread behind a busy event loop.
    full, rest = divmod(len(rows), _ROWS_PER_STATEMENT)
    if full:
        statement = _insert_statement(_ROWS_PER_STATEMENT, new_only)
        for i in range(full):
            chunk = rows[i * _ROWS_PER_STATEMENT : (i + 1) * _ROWS_PER_STATEMENT]
            cursor.execute(statement, [v for row in chunk for v in row])
    if rest:
        tail = rows[full * _ROWS_PER_STATEMENT :]
        cursor.execute(_insert_statement(rest, new_only), [v for row in tail for v in row])


def insert_new_rows(store: Store, rows: Sequence[tuple[Any, ...]], *, wait: bool = True) -> int:
    """SQLite: commit the rows whose UUIDs the store does not hold yet; returns how many.

    How the prediction journal's records reach the store (:mod:`modeldeck.records.journal`):
    its writer commits them, and readers fold in what the writer has not, so the same row may
    come twice. Rows of deployments that no longer exist are dropped (deleting a deployment
    deletes its records). With ``wait=False`` it returns ``-1`` when another writer holds the
    store.
    """
    if not rows:
        return 0
    with store.sqlite_transaction(wait=wait) as cursor:
        if cursor is None:
            if wait:
                raise RuntimeError("the prediction journal needs a SQLite file store")
            return -1
        deployments = {row[1] for row in rows}
        marks = ", ".join("?" * len(deployments))
        known = {
            found for (found,) in cursor.execute(
                f"SELECT id FROM deployments WHERE id IN ({marks})", list(deployments)
            )
        }  # fmt: skip
        if known != deployments:
            rows = [row for row in rows if row[1] in known]
        before = cursor.connection.total_changes
        insert_sqlite(cursor, rows, new_only=True)
        return cursor.connection.total_changes - before
