"""Where the metrics SDK sends its calls: the store directly, or the platform's REST API."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from sqlalchemy import select

from modeldeck.config import Settings
from modeldeck.crn import DEV
from modeldeck.errors import NotFound
from modeldeck.records.model_metrics import ModelMetrics, PredictionRecord, Target
from modeldeck.store import Store
from modeldeck.store.schema import DeploymentRow

DEV_DEPLOYMENT_ID = "dev"


def find_target(store: Store, ref: str) -> Target:
    """A deployment by name or by CRN, as a metrics target; 404 when there is none."""
    column = DeploymentRow.crn if ref.startswith("crn:") else DeploymentRow.name
    with store.read() as session:
        row = session.scalars(select(DeploymentRow).where(column == ref)).one_or_none()
    if row is None:
        raise NotFound(f"deployment {ref!r} not found", details={"deployment": ref})
    return target_of(row)


def target_of(row: DeploymentRow) -> Target:
    return Target(
        deployment_id=row.id,
        name=row.name,
        model_name=row.model_name,
        model_version=row.model_version,
        dev=row.id == DEV_DEPLOYMENT_ID,
    )


def dev_store(settings: Settings) -> Store:
    """The local store of dev mode, with its one fixed deployment."""
    store = Store(f"sqlite:///{settings.data_dir.resolve() / 'dev-metrics.db'}")
    store.migrate()
    with store.write() as session:
        if session.get(DeploymentRow, DEV_DEPLOYMENT_ID) is None:
            session.add(
                DeploymentRow(
                    id=DEV_DEPLOYMENT_ID,
                    name="dev",
                    crn=DEV.deployment,
                    model_name="dev",
                    model_version="",
                    version_spec="",
                    model_uri="",
                    runtime="none",
                    replicas=0,
                    environment={},
                    auth_enabled=False,
                    desired_state="stopped",
                    status="dev",
                    status_message="",
                    kind="batch",
                    source="file",
                )
            )
    return store


class StoreSink:
    """Records a decorated function's predictions straight into a store (dev or batch)."""

    def __init__(self, metrics: ModelMetrics, target: Target) -> None:
        self.metrics = metrics
        self.target = target
        self.crn = target.identity(target.model_version).deployment

    def record(self, record: PredictionRecord) -> None:
        record.deployment_id = self.target.deployment_id
        record.model_version = record.model_version or self.target.model_version
        self.metrics.insert_predictions([record])


class LocalBackend:
    def __init__(self, settings: Settings, *, dev: bool) -> None:
        self.dev = dev
        self.store = dev_store(settings) if dev else Store(settings.resolved_store_url())
        if not dev:
            self.store.migrate()
        self.metrics = ModelMetrics(self.store)

    def _target(self, ref: str | None) -> Target | None:
        if self.dev:
            return find_target(self.store, "dev")
        return find_target(self.store, ref) if ref else None

    def sink(self, ref: str) -> StoreSink:
        target = self._target(ref)
        assert target is not None
        return StoreSink(self.metrics, target)

    def track_delayed(self, metrics: Any, prediction_uuid: str, ref: str | None) -> None:
        self.metrics.track_delayed(self._target(ref), prediction_uuid, metrics)

    def track_aggregate(
        self, metrics: Any, start_ms: int, end_ms: int, ref: str, version: str | None
    ) -> None:
        target = self._target(ref)
        assert target is not None
        self.metrics.track_aggregate(target, metrics, start_ms, end_ms, version or "")

    def iter_records(self, ref: str, **kwargs: Any) -> Iterator[dict[str, Any]]:
        target = self._target(ref)
        assert target is not None
        return self.metrics.iter_records(target, **kwargs)


class RestSink:
    def __init__(self, backend: RestBackend, ref: str) -> None:
        self.backend = backend
        self.ref = ref
        self.crn = backend.client.deployment(ref).crn

    def record(self, record: PredictionRecord) -> None:
        self.backend.client.record_predictions(
            self.ref,
            [
                {
                    "uuid": record.uuid,
                    "start_timestamp_ms": record.start_ms,
                    "end_timestamp_ms": record.end_ms,
                    "metrics": record.metrics,
                }
            ],
        )


class RestBackend:
    def __init__(self, url: str, api_key: str | None) -> None:
        from modeldeck import httpclient
        from modeldeck.client import Client

        self.client = Client(url, api_key, http=httpclient.shared())
        self._names: dict[str, str] = {}

    def name(self, ref: str) -> str:
        """The deployment's name, from its name or its CRN (the REST paths take names)."""
        if not ref.startswith("crn:"):
            return ref
        if ref not in self._names:
            self._names.update({d.crn: d.name for d in self.client.deployments()})
        if ref not in self._names:
            raise NotFound(f"deployment {ref!r} not found", details={"deployment": ref})
        return self._names[ref]

    def sink(self, ref: str) -> RestSink:
        return RestSink(self, self.name(ref))

    def track_delayed(self, metrics: Any, prediction_uuid: str, ref: str | None) -> None:
        deployment = self.name(ref) if ref else None
        self.client.track_delayed_metrics(metrics, prediction_uuid, deployment=deployment)

    def track_aggregate(
        self, metrics: Any, start_ms: int, end_ms: int, ref: str, version: str | None
    ) -> None:
        self.client.track_aggregate_metrics(
            self.name(ref), metrics, start_ms, end_ms, model_version=version
        )

    def iter_records(self, ref: str, **kwargs: Any) -> Iterator[dict[str, Any]]:
        return self.client.iter_metrics(self.name(ref), **kwargs)
