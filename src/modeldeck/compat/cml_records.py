"""Prediction records as Cloudera ML shows them, read by model, build and deployment CRN.

A CML model (``cmlapi``) serves as one modeldeck deployment, and each of its CML deployments
runs as that deployment in turn (a new one redeploys it). Records are stored under the modeldeck
deployment with the model version that made them and their time; here they read back with the
CRNs of the CML model, build and deployment that made them, the ones the ``cmlapi`` objects
show:

* a record belongs to the CML deployment that was live when it was made and ran its version:
  of the times the model's deployments became live (``live_since_ms``) up to the record's end,
  the latest whose build has the record's model version, else the latest one (so records of a
  version that kept serving while the next one rolled out stay with its own deployment);
* :meth:`CmlRecords.page` selects the modeldeck deployments that the CRNs given name, reads
  their records in the window and keeps those that carry every CRN given: a model CRN alone
  gives the records of every deployment of that model, as on Cloudera ML. A CRN of a modeldeck
  deployment itself (``/api/v1``'s ``crn``, which CML deployments showed before each had its own)
  selects all that deployment's records.

Records of modeldeck's own deployments keep their CRNs (:func:`~modeldeck.crn.identity`)
and are found by them. A registry deployment's predictions read back as Cloudera ML's generated
predict function records them: the model's output under ``prediction`` (modeldeck's own API
calls it ``output``) with the input alongside under ``input``; other metrics are unchanged.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from modeldeck.client import Client
from modeldeck.crn import BUILD_CRN, MODEL_CRN, build_crn, model_crn
from modeldeck.errors import BadRequest, NotFound, ValidationFailed
from modeldeck.records.model_metrics import DEFAULT_PAGE, ModelMetrics, now_ms
from modeldeck.records.sdk_backends import target_of
from modeldeck.store import Store
from modeldeck.store.schema import (
    CmlModelBuildRow,
    CmlModelDeploymentRow,
    CmlModelRow,
    DeploymentRow,
)

FIELDS = {
    "model_crn": "modelCrn",
    "model_build_crn": "modelBuildCrn",
    "model_deployment_crn": "modelDeploymentCrn",
}
"""``read_metrics``'s arguments, by the record field each one matches."""


@dataclass(frozen=True)
class Serving:
    """One time a CML deployment became its model's live one."""

    since_ms: int
    version: str  # its build's model version ("" for a file build)
    deployment_crn: str
    build_crn: str
    model_crn: str
    registry: bool  # a registered model version, not a Python file


def serving_at(servings: Sequence[Serving], version: str, at_ms: int) -> Serving | None:
    """The CML deployment a record of ``version`` that ended at ``at_ms`` belongs to."""
    if not servings:
        return None
    started = [s for s in servings if s.since_ms <= at_ms]
    if not started:  # made before the first one went live (clocks): the first one's
        return min(servings, key=lambda s: s.since_ms)
    same = [s for s in started if s.version == version]
    return max(same or started, key=lambda s: s.since_ms)


def load_servings(
    session: Session, deployment_ids: Iterable[str] | None = None
) -> dict[str, list[Serving]]:
    """The servings of CML deployments, by the modeldeck deployment they ran as."""
    query = select(CmlModelDeploymentRow, CmlModelBuildRow).join(
        CmlModelBuildRow, CmlModelBuildRow.id == CmlModelDeploymentRow.build_id
    )
    query = query.where(CmlModelDeploymentRow.deployment_id.is_not(None))
    if deployment_ids is not None:
        query = query.where(CmlModelDeploymentRow.deployment_id.in_(list(deployment_ids)))
    servings: dict[str, list[Serving]] = {}
    for deployment, build in session.execute(query).tuples():
        assert deployment.deployment_id is not None
        for since in deployment.live_since_ms or []:
            servings.setdefault(deployment.deployment_id, []).append(
                Serving(
                    since_ms=int(since),
                    version=build.model_version,
                    deployment_crn=deployment.crn,
                    build_crn=build_crn(build.id),
                    model_crn=model_crn(deployment.model_id),
                    registry=build.file_path is None,
                )
            )
    return servings


def as_cml(record: dict[str, Any], servings: Sequence[Serving], registry: bool) -> dict[str, Any]:
    """A stored record (modeldeck's shape) as Cloudera ML shows it."""
    serving = serving_at(servings, record["modelVersion"], record["endTimeStampMs"])
    if serving is not None:
        record = {
            **record,
            "modelDeploymentCrn": serving.deployment_crn,
            "modelBuildCrn": serving.build_crn,
            "modelCrn": serving.model_crn,
        }
        registry = serving.registry
    metrics = record["metrics"]
    prediction = bool(record["predictionUuid"])  # not an aggregate
    if registry and prediction and "output" in metrics and "prediction" not in metrics:
        shaped = {"prediction": metrics["output"]}
        shaped.update((k, v) for k, v in metrics.items() if k != "output")
        record = {**record, "metrics": shaped}
    return record


class CmlRecords:
    """``read_metrics`` of ``cml.metrics_v1`` / ``cdsw`` on the store."""

    def __init__(self, store: Store, metrics: ModelMetrics | None = None) -> None:
        self.store = store
        self.metrics = metrics or ModelMetrics(store)

    def iter(
        self,
        *,
        model_crn: str | None = None,
        model_build_crn: str | None = None,
        model_deployment_crn: str | None = None,
        start_ms: int = 0,
        end_ms: int | None = None,
    ) -> Iterator[dict[str, Any]]:
        """Every record in ``[start_ms, end_ms]`` (default: until now) carrying the CRNs."""
        end_ms = now_ms() if end_ms is None else end_ms
        cursor = None
        while True:
            records, cursor = self.page(
                model_crn=model_crn,
                model_build_crn=model_build_crn,
                model_deployment_crn=model_deployment_crn,
                start_ms=start_ms,
                end_ms=end_ms,
                cursor=cursor,
            )
            yield from records
            if cursor is None:
                return

    def page(
        self,
        *,
        model_crn: str | None = None,
        model_build_crn: str | None = None,
        model_deployment_crn: str | None = None,
        start_ms: int = 0,
        end_ms: int | None = None,
        limit: int = DEFAULT_PAGE,
        cursor: str | None = None,
    ) -> tuple[list[dict[str, Any]], str | None]:
        """A page of records, and the cursor of the next one (``None``: no more). Records come
        a deployment at a time, oldest first within each; a page may be empty while more
        follow. Pass one ``end_ms`` to every page of a read."""
        given = {
            "model_crn": model_crn,
            "model_build_crn": model_build_crn,
            "model_deployment_crn": model_deployment_crn,
        }
        for field, crn in given.items():
            _check_crn(field, crn)
        if not any(given.values()):
            raise BadRequest(
                "name what to read: model_crn, model_build_crn or model_deployment_crn",
                details={"field": "model_deployment_crn"},
            )
        end_ms = now_ms() if end_ms is None else end_ms
        after, inner = _parse_cursor(cursor)
        with self.store.read() as session:
            ids, wanted = self._select(session, given)
            todo = [i for i in sorted(ids) if after is None or i >= after]
            row = None
            while todo and row is None:
                if todo[0] != after:
                    inner = None  # the next deployment (or the cursor's is gone): from its start
                row = session.get(DeploymentRow, todo[0])
                if row is None:
                    todo.pop(0)
            if row is None:
                return [], None
            servings = load_servings(session, [row.id]).get(row.id, [])
        page = self.metrics.read(
            target_of(row), start_ms=start_ms, end_ms=end_ms, limit=limit, cursor=inner
        )
        records = [as_cml(r, servings, row.source == "registry") for r in page.metrics]
        records = [r for r in records if all(r[FIELDS[k]] == v for k, v in wanted.items())]
        if page.next_cursor is not None:
            return records, f"{row.id}|{page.next_cursor}"
        return records, (f"{todo[1]}|" if len(todo) > 1 else None)

    def track_aggregate(
        self, metrics: Any, start_ms: int, end_ms: int, model_deployment_crn: str
    ) -> None:
        """``track_aggregate_metrics`` for the deployment a CRN names, under the model version
        of the CML deployment it names (so the record reads back with that deployment)."""
        row, version = self.target_for(model_deployment_crn)
        self.metrics.track_aggregate(target_of(row), metrics, start_ms, end_ms, version or "")

    def target_for(self, model_deployment_crn: str) -> tuple[DeploymentRow, str | None]:
        """The modeldeck deployment a deployment CRN names, and the model version of the CML
        deployment it names (``None`` for a modeldeck deployment's own CRN)."""
        _check_crn("model_deployment_crn", model_deployment_crn)
        with self.store.read() as session:
            found = session.execute(
                select(CmlModelDeploymentRow, CmlModelBuildRow)
                .join(CmlModelBuildRow, CmlModelBuildRow.id == CmlModelDeploymentRow.build_id)
                .where(CmlModelDeploymentRow.crn == model_deployment_crn)
            ).first()
            if found is not None:
                deployment, build = found.tuple()
                row = (
                    session.get(DeploymentRow, deployment.deployment_id)
                    if deployment.deployment_id
                    else None
                )
                if row is None:
                    raise NotFound(
                        f"model deployment {model_deployment_crn!r} is not running: it never "
                        "started, or its model's deployment was deleted",
                        details={"model_deployment_crn": model_deployment_crn},
                    )
                return row, build.model_version
            row = session.scalars(
                select(DeploymentRow).where(DeploymentRow.crn == model_deployment_crn)
            ).first()
        if row is None:
            raise _unknown("model_deployment_crn", model_deployment_crn)
        return row, None

    # -- which deployments hold the records ---------------------------------------------------

    def _select(
        self, session: Session, given: dict[str, str | None]
    ) -> tuple[set[str], dict[str, str]]:
        """The modeldeck deployments whose records the CRNs select, and the record fields to
        match (every CRN but a modeldeck deployment's own, which takes all its records)."""
        chosen: set[str] | None = None
        wanted: dict[str, str] = {}
        for field, crn in given.items():
            if not crn:
                continue
            ids, match = _RESOLVERS[field](session, crn)
            chosen = ids if chosen is None else chosen & ids
            if match:
                wanted[field] = crn
        return chosen or set(), wanted


class RestCmlRecords:
    """:class:`CmlRecords` through a platform's ``/api/v2/metrics`` routes."""

    def __init__(self, client: Client) -> None:
        self.client = client

    def iter(
        self,
        *,
        model_crn: str | None = None,
        model_build_crn: str | None = None,
        model_deployment_crn: str | None = None,
        start_ms: int = 0,
        end_ms: int | None = None,
    ) -> Iterator[dict[str, Any]]:
        params: dict[str, Any] = {
            "model_crn": model_crn,
            "model_build_crn": model_build_crn,
            "model_deployment_crn": model_deployment_crn,
            "start_timestamp_ms": start_ms,
            "end_timestamp_ms": now_ms() if end_ms is None else end_ms,
        }
        params = {k: v for k, v in params.items() if v is not None}
        cursor = None
        while True:
            query = {**params, "cursor": cursor} if cursor else params
            page = self.client.request("GET", "/api/v2/metrics", params=query)
            yield from page["metrics"]
            cursor = page.get("next_cursor")
            if not cursor:
                return

    def track_aggregate(
        self, metrics: Any, start_ms: int, end_ms: int, model_deployment_crn: str
    ) -> None:
        body = {
            "metrics": metrics,
            "start_timestamp_ms": start_ms,
            "end_timestamp_ms": end_ms,
            "model_deployment_crn": model_deployment_crn,
        }
        self.client.request("POST", "/api/v2/metrics/aggregate", json=body)


def _by_deployment(session: Session, crn: str) -> tuple[set[str], bool]:
    row = session.scalars(
        select(CmlModelDeploymentRow).where(CmlModelDeploymentRow.crn == crn)
    ).first()
    if row is not None:
        return ({row.deployment_id} if row.deployment_id else set()), True
    own = session.scalars(select(DeploymentRow.id).where(DeploymentRow.crn == crn)).first()
    if own is not None:
        return {own}, False
    raise _unknown("model_deployment_crn", crn)


def _by_build(session: Session, crn: str) -> tuple[set[str], bool]:
    if crn.startswith(BUILD_CRN):
        rest = crn[len(BUILD_CRN) :]
        build = session.get(CmlModelBuildRow, rest)
        if build is not None:
            return _served_as(session, CmlModelDeploymentRow.build_id == build.id), True
        deployment_id, slash, _ = rest.partition("/")  # a modeldeck deployment's: <id>/v<n>
        if slash and session.get(DeploymentRow, deployment_id) is not None:
            return {deployment_id}, True
    raise _unknown("model_build_crn", crn)


def _by_model(session: Session, crn: str) -> tuple[set[str], bool]:
    if crn.startswith(MODEL_CRN):
        rest = crn[len(MODEL_CRN) :]
        model = session.get(CmlModelRow, rest)
        if model is not None:
            return _served_as(session, CmlModelDeploymentRow.model_id == model.id), True
        # modeldeck's own deployments: .../model/<registered model name>
        query = select(DeploymentRow.id).where(DeploymentRow.model_name == rest)
        named = set(session.scalars(query))
        if named:
            return named, True
    raise _unknown("model_crn", crn)


def _served_as(session: Session, where: Any) -> set[str]:
    query = select(CmlModelDeploymentRow.deployment_id).where(where)
    return {d for d in session.scalars(query) if d}


_RESOLVERS = {
    "model_crn": _by_model,
    "model_build_crn": _by_build,
    "model_deployment_crn": _by_deployment,
}


def _check_crn(field: str, crn: str | None) -> None:
    """A CRN fit for every store: PostgreSQL cannot compare text holding NUL."""
    if crn is not None and "\x00" in crn:
        raise ValidationFailed(f"{field} holds a NUL character", details={"field": field})


def _unknown(field: str, crn: str) -> NotFound:
    kind = field.removesuffix("_crn").replace("_", " ")
    return NotFound(f"no {kind} has the CRN {crn!r}", details={field: crn})


def _parse_cursor(cursor: str | None) -> tuple[str | None, str | None]:
    if not cursor:
        return None, None
    deployment_id, sep, inner = cursor.partition("|")
    if not sep or not deployment_id or "\x00" in cursor:
        raise ValidationFailed("invalid cursor", details={"field": "cursor"})
    return deployment_id, inner or None


__all__ = ["CmlRecords", "RestCmlRecords", "Serving", "as_cml", "load_servings", "serving_at"]
