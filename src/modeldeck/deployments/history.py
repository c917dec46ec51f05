"""Rollout history: the versions a deployment served (``deployment_history``), so a rollback
can return to the previous one, and the rollout under way that will add the next.

A redeploy of a deployment that serves is a rollout: the new version starts beside the serving
one, and its entry is ``rolling out`` until the runtime reports that it took the traffic (then
it is ``serving`` and the one it replaced ``retired``, or ``rolled back`` from) or that it never
did (``failed``). At most ``HISTORY_LIMIT`` entries are kept per deployment. Imports nothing of
the lifecycle.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from modeldeck.deployments.rows import VERSION_COLUMNS, select_deployments, version_values
from modeldeck.store import Store
from modeldeck.store.schema import DeploymentHistoryRow, DeploymentRow, utcnow

HISTORY_LIMIT = 20  # history entries kept per deployment


@dataclass
class Rollout:
    """A version starting beside the serving one: what the deployment row becomes once the
    runtime reports that it took the traffic."""

    version: str
    previous_version: str
    values: dict[str, object]  # VERSION_COLUMNS and SETTING_COLUMNS
    entry_id: int  # its history entry: a new one, or for a rollback the entry returned to
    rollback: bool


class RolloutHistory:
    """The history entries of every deployment, in the store."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def begin(
        self, current: DeploymentRow, values: dict[str, object], reason: str = "redeploy"
    ) -> int:
        """The history entry of a version rolling out (and of the serving one, for deployments
        older than the history)."""
        with self.store.write() as session:
            if _serving_entry(session, current.id) is None:
                session.add(new_entry(current.id, version_values(current), "deploy", "serving"))
            entry = new_entry(current.id, values, reason, "rolling out")
            session.add(entry)
            session.flush()
            return entry.id

    def replace(self, name: str, values: dict[str, object], rollback_to: int | None) -> None:
        """Nothing serves: the row takes the new version now, and the history says so."""
        with self.store.write() as session:
            row = session.scalars(select_deployments().where(DeploymentRow.name == name)).one()
            before = row.status
            for key, value in values.items():
                setattr(row, key, value)
            row.desired_state, row.status, row.status_message = "running", "deploying", ""
            row.updated_at = utcnow()
            old = _serving_entry(session, row.id)
            if rollback_to is not None:
                entry = session.get(DeploymentHistoryRow, rollback_to)
                if entry is not None:
                    entry.status, entry.served_from, entry.served_until = "serving", utcnow(), None
                if old is not None and old is not entry:
                    _end(old, "rolled back")
            else:
                session.add(new_entry(row.id, values, "redeploy", "serving"))
                if old is not None:
                    _end(old, "failed" if before == "failed" else "retired")
            session.flush()
            _trim_history(session, row.id)

    def end_rollout(self, rollout: Rollout, message: str) -> None:
        if rollout.rollback:
            return  # its entry is a version that served: it stays a rollback target
        with self.store.write() as session:
            end_entry(session, rollout.entry_id, "failed", message)

    def rollback_target(self, deployment_id: str) -> DeploymentHistoryRow | None:
        with self.store.read() as session:
            return session.scalars(
                select(DeploymentHistoryRow)
                .where(
                    DeploymentHistoryRow.deployment_id == deployment_id,
                    DeploymentHistoryRow.status == "retired",
                )
                .order_by(DeploymentHistoryRow.id.desc())
                .limit(1)
            ).one_or_none()

    def fail_unfinished(self) -> None:
        with self.store.write() as session:
            for entry in session.scalars(
                select(DeploymentHistoryRow).where(DeploymentHistoryRow.status == "rolling out")
            ):
                entry.status = "failed"
                entry.message = "the platform stopped during the rollout"


def new_entry(
    deployment_id: str, values: dict[str, object], reason: str, status: str
) -> DeploymentHistoryRow:
    entry = DeploymentHistoryRow(
        deployment_id=deployment_id, reason=reason, status=status, message=""
    )
    for column in VERSION_COLUMNS:
        setattr(entry, column, values[column])
    if status == "serving":
        entry.served_from = utcnow()
    return entry


def _end(entry: DeploymentHistoryRow, status: str, message: str = "") -> None:
    entry.status, entry.message = status, message or entry.message
    if entry.served_from is not None and entry.served_until is None:
        entry.served_until = utcnow()


def end_entry(session: Session, entry_id: int, status: str, message: str) -> None:
    entry = session.get(DeploymentHistoryRow, entry_id)
    if entry is not None and entry.status == "rolling out":
        _end(entry, status, message)


def _serving_entry(session: Session, deployment_id: str) -> DeploymentHistoryRow | None:
    return session.scalars(
        select(DeploymentHistoryRow)
        .where(
            DeploymentHistoryRow.deployment_id == deployment_id,
            DeploymentHistoryRow.status == "serving",
        )
        .order_by(DeploymentHistoryRow.id.desc())
        .limit(1)
    ).one_or_none()


def complete_entries(session: Session, deployment_id: str, rollout: Rollout) -> None:
    """The rolled-out version serves: its entry says so, the one it replaced ends."""
    old = _serving_entry(session, deployment_id)
    new = session.get(DeploymentHistoryRow, rollout.entry_id)
    if new is not None:
        new.status, new.served_from, new.served_until = "serving", utcnow(), None
    if old is not None and old is not new:
        same = all(getattr(old, c) == rollout.values[c] for c in VERSION_COLUMNS[:-1])
        if rollout.rollback:
            _end(old, "rolled back")
        elif same:
            session.delete(old)  # the same version again: one entry is enough
        else:
            _end(old, "retired")
    session.flush()
    _trim_history(session, deployment_id)


def _trim_history(session: Session, deployment_id: str) -> None:
    stale = session.scalars(
        select(DeploymentHistoryRow.id)
        .where(DeploymentHistoryRow.deployment_id == deployment_id)
        .order_by(DeploymentHistoryRow.id.desc())
        .offset(HISTORY_LIMIT)
    ).all()
    if stale:
        session.execute(delete(DeploymentHistoryRow).where(DeploymentHistoryRow.id.in_(stale)))
