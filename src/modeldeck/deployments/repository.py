"""Deployment rows in the store: read, inserted, updated, deleted, and what the runtime reports
about their replicas recorded (at a rollout's end, the row's flip to the new version).

Writes go through ``Store.write``; the lifecycle (``service``) calls these from a worker thread.
Imports nothing of the lifecycle.
"""

from __future__ import annotations

from collections.abc import Mapping

from sqlalchemy import select

from modeldeck.deployments.aliases import holds
from modeldeck.deployments.history import Rollout, complete_entries, end_entry, new_entry
from modeldeck.deployments.rows import select_deployments, version_values
from modeldeck.errors import NotFound
from modeldeck.runtimes.base import RuntimeEvent
from modeldeck.store import Store
from modeldeck.store.schema import DeploymentRow, ReplicaRow, utcnow


class DeploymentRepository:
    """Reads and writes of deployment rows and their replica rows."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def find(self, name: str) -> DeploymentRow | None:
        with self.store.read() as session:
            return session.scalars(
                select_deployments().where(DeploymentRow.name == name)
            ).one_or_none()

    def require(self, name: str) -> DeploymentRow:
        row = self.find(name)
        if row is None:
            raise NotFound(f"deployment {name!r} not found", details={"deployment": name})
        return row

    def all_rows(self) -> list[DeploymentRow]:
        with self.store.read() as session:
            return list(session.scalars(select_deployments().order_by(DeploymentRow.created_at)))

    def insert(self, row: DeploymentRow) -> None:
        with self.store.write() as session:
            session.add(row)
            if row.kind == "endpoint":
                session.flush()
                session.add(new_entry(row.id, version_values(row), "deploy", "serving"))

    def delete(self, name: str) -> None:
        with self.store.write() as session:
            row = session.scalars(select(DeploymentRow).where(DeploymentRow.name == name)).one()
            session.delete(row)

    def update(self, name: str, values: dict[str, object]) -> None:
        with self.store.write() as session:
            row = session.scalars(select(DeploymentRow).where(DeploymentRow.name == name)).one()
            for key, value in values.items():
                setattr(row, key, value)
            row.updated_at = utcnow()

    def mark_replicas(self, name: str, status: str) -> None:
        with self.store.write() as session:
            row = session.scalars(select_deployments().where(DeploymentRow.name == name)).one()
            for rep in row.replica_rows:
                rep.status = status
                rep.pid = None

    def trim_replicas(self, name: str, replicas: int) -> None:
        with self.store.write() as session:
            row = session.scalars(select_deployments().where(DeploymentRow.name == name)).one()
            for rep in list(row.replica_rows):
                if rep.index >= replicas:
                    row.replica_rows.remove(rep)

    def record_event(
        self, event: RuntimeEvent, rollout: Rollout | None, rollouts: Mapping[str, Rollout]
    ) -> DeploymentRow | None:
        """Record what the runtime reports; with ``rollout`` (the one that just ended), flip
        the row to the new version or say why it never took traffic. ``rollouts``: those under
        way. Returns the row."""
        with self.store.write() as session:
            row = session.scalars(
                select_deployments().where(DeploymentRow.name == event.deployment)
            ).one_or_none()
            if row is None:
                return None
            status, message = event.status, event.message
            if rollout is not None and event.rollout == "completed":
                for key, value in rollout.values.items():
                    setattr(row, key, value)
                complete_entries(session, row.id, rollout)
            elif rollout is not None and event.rollout == "failed":
                verb = "rollback to" if rollout.rollback else "rollout of"
                message = (
                    f"{verb} {rollout.values['model_name']} version {rollout.version} failed: "
                    f"it never took traffic and was stopped; {row.model_name} version "
                    f"{row.model_version} keeps serving. {event.message}"
                )
                if not rollout.rollback:
                    end_entry(session, rollout.entry_id, "failed", event.message)
                if holds(row, str(rollout.values["version_spec"]), rollout.rollback):
                    row.alias_held_version = rollout.version  # not retried at the next poll
            elif event.rollout is None and rollouts.get(row.name) and status == "deployed":
                status = None  # the serving version settled; the rollout still runs
            if status is not None and not (row.desired_state == "stopped" and status != "stopped"):
                row.status = status
                row.status_message = message
                row.updated_at = utcnow()
            existing = {r.index: r for r in row.replica_rows}
            live = {state.index for state in event.replicas}
            for gone in list(row.replica_rows):
                if gone.index not in live and row.desired_state == "running":
                    row.replica_rows.remove(gone)  # replaced (a rollout) or scaled away
            for state in event.replicas:
                rep = existing.get(state.index)
                if rep is None:
                    rep = ReplicaRow(deployment_id=row.id, index=state.index)
                    row.replica_rows.append(rep)
                rep.status = state.status
                rep.pid = state.pid
                rep.port = state.port
                rep.restarts = state.restarts
                rep.last_error = state.last_error
                rep.version = state.version
                rep.process_started = state.process_started
                rep.fingerprint = state.fingerprint
                rep.updated_at = utcnow()
            return row
