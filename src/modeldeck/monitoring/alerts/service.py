"""Alert rules in the store, evaluated on a schedule; events stored and sent to their channels.

Each evaluation computes every enabled rule's metric over its trailing window (technical
metrics from the request rollups, drift and performance from
:class:`~modeldeck.monitoring.analysis.AnalysisService`), runs the firing/resolving state
machine (:func:`modeldeck.monitoring.alerts.rules.evaluate`), stores a ``firing`` or
``resolved`` event when the state changes and then sends it to each of the rule's channels
(webhook, Slack, Teams, e-mail, PagerDuty), recording how each delivery went. :meth:`test`
sends a test event to a rule's channels and stores nothing.
"""

from __future__ import annotations

import asyncio
import builtins
import logging
import math
import uuid as uuidlib
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

import httpx
from pydantic import TypeAdapter
from sqlalchemy import select

from modeldeck.errors import Conflict, ModeldeckError, NotFound, ValidationFailed
from modeldeck.monitoring.alerts import channels as channel_forms
from modeldeck.monitoring.alerts.deliver import ChannelDelivery, Retries, Smtp, channel_view, send
from modeldeck.monitoring.alerts.rules import AlertRuleSpec, MetricRef, RuleState, evaluate
from modeldeck.monitoring.technical import BUCKET_MS, TechnicalMetrics
from modeldeck.records.model_metrics import now_ms
from modeldeck.store import Store
from modeldeck.store.schema import AlertEventRow, AlertRuleRow, DeploymentRow

if TYPE_CHECKING:
    from modeldeck.monitoring.analysis import AnalysisService

log = logging.getLogger(__name__)

MAX_EVENTS = 1000
CHANNEL: TypeAdapter[channel_forms.Channel] = TypeAdapter(channel_forms.Channel)


def rule_view(row: AlertRuleRow) -> dict[str, Any]:
    spec = dict(row.spec)
    spec["webhook_secret"] = "***" if spec.get("webhook_secret") else None
    spec["channels"] = [channel_forms.mask(c) for c in spec.get("channels") or []]
    return {
        "id": row.id,
        **spec,
        "state": row.state or asdict(RuleState()),
        "created_at": row.created_at.isoformat() if row.created_at else None,
        "updated_at": row.updated_at.isoformat() if row.updated_at else None,
    }


def event_view(row: AlertEventRow) -> dict[str, Any]:
    return {
        "id": row.id,
        "rule_id": row.rule_id,
        "rule": row.rule_name,
        "deployment_id": row.deployment_id,
        "kind": row.kind,
        "metric": row.metric,
        "value": row.value,
        "samples": row.samples,
        "message": row.message,
        "ts": row.ts_ms,
        "delivery": row.delivery,
    }


class AlertService:
    def __init__(
        self,
        store: Store,
        analysis: AnalysisService,
        technical: TechnicalMetrics,
        *,
        webhook_attempts: int = 5,
        webhook_backoff_s: float = 1.0,
        smtp: Smtp | None = None,
    ) -> None:
        self.store = store
        self.analysis = analysis
        self.technical = technical
        self.retries = Retries(attempts=webhook_attempts, backoff_s=webhook_backoff_s)
        self.smtp = smtp or Smtp()
        self._evaluating = asyncio.Lock()

    def _checked(self, spec: AlertRuleSpec, stored: dict[str, Any] | None) -> AlertRuleSpec:
        """``spec`` with the secrets it shows masked taken from ``stored`` (the rule it
        replaces); refused (422, nothing stored) if a channel cannot work."""
        old = (stored or {}).get("channels") or []
        restored = [channel_forms.unmask(c.model_dump(mode="json"), old) for c in spec.channels]
        for i, channel in enumerate(restored):
            masked = channel_forms.masked_fields(channel)
            if masked:
                field = f"channels.{i}.{masked[0]}"
                raise ValidationFailed(
                    f"{field}: give the {channel['type']} channel's {masked[0]} itself "
                    "(the masked value matches no stored channel)",
                    details={"field": field},
                )
            if channel["type"] == "email" and not self.smtp.host:
                field = f"channels.{i}"
                raise ValidationFailed(
                    f"{field}: an email channel needs the platform's SMTP server "
                    "(MODELDECK_SMTP_HOST is not set)",
                    details={"field": field},
                )
        return spec.model_copy(update={"channels": [CHANNEL.validate_python(c) for c in restored]})

    # -- rules --------------------------------------------------------------------------------

    def create(self, spec: AlertRuleSpec) -> dict[str, Any]:
        spec = self._checked(spec, None)
        with self.store.write() as session:
            deployment = _deployment(session, spec.deployment)
            exists = session.scalars(
                select(AlertRuleRow).where(
                    AlertRuleRow.deployment_id == deployment.id, AlertRuleRow.name == spec.name
                )
            ).one_or_none()
            if exists is not None:
                raise Conflict(
                    f"deployment {spec.deployment!r} already has an alert rule {spec.name!r}",
                    details={"rule": spec.name},
                )
            row = AlertRuleRow(
                id=str(uuidlib.uuid4()),
                deployment_id=deployment.id,
                name=spec.name,
                spec=spec.model_dump(mode="json"),
                state=asdict(RuleState()),
            )
            session.add(row)
            session.flush()
            session.refresh(row)
            return rule_view(row)

    def replace(self, deployment: str, name: str, spec: AlertRuleSpec) -> dict[str, Any]:
        with self.store.write() as session:
            row = _rule(session, deployment, name)
            if spec.webhook_secret == "***":  # what a GET shows: keep the stored secret
                spec = spec.model_copy(update={"webhook_secret": row.spec.get("webhook_secret")})
            spec = self._checked(spec, row.spec)
            row.spec = spec.model_dump(mode="json")
            row.name = spec.name
            session.flush()
            session.refresh(row)
            return rule_view(row)

    def get(self, deployment: str, name: str) -> dict[str, Any]:
        with self.store.read() as session:
            return rule_view(_rule(session, deployment, name))

    def list(self, deployment: str | None = None) -> builtins.list[dict[str, Any]]:
        query = select(AlertRuleRow).order_by(AlertRuleRow.created_at)
        with self.store.read() as session:
            if deployment is not None:
                query = query.where(
                    AlertRuleRow.deployment_id == _deployment(session, deployment).id
                )
            return [rule_view(r) for r in session.scalars(query)]

    def delete(self, deployment: str, name: str) -> None:
        with self.store.write() as session:
            session.delete(_rule(session, deployment, name))

    def events(
        self, deployment: str | None = None, since_ms: int = 0, limit: int = 100
    ) -> builtins.list[dict[str, Any]]:
        """Events newest first."""
        query = (
            select(AlertEventRow)
            .where(AlertEventRow.ts_ms >= since_ms)
            .order_by(AlertEventRow.ts_ms.desc(), AlertEventRow.id.desc())
            .limit(max(1, min(limit, MAX_EVENTS)))
        )
        with self.store.read() as session:
            if deployment is not None:
                query = query.where(
                    AlertEventRow.deployment_id == _deployment(session, deployment).id
                )
            return [event_view(r) for r in session.scalars(query)]

    # -- evaluation ---------------------------------------------------------------------------

    async def evaluate_all(self) -> builtins.list[dict[str, Any]]:
        """Evaluate every enabled rule now; returns the events it produced (after delivery)."""
        async with self._evaluating:
            pending = await asyncio.to_thread(self._evaluate_sync)
            if not pending:
                return []
            async with httpx.AsyncClient() as client:
                await asyncio.gather(
                    *(self._deliver(client, event, spec) for event, spec in pending)
                )
            return [event for event, _ in pending]

    def _evaluate_sync(self) -> builtins.list[tuple[dict[str, Any], AlertRuleSpec]]:
        with self.store.read() as session:
            rules = [
                (row.id, AlertRuleSpec.model_validate(row.spec), dict(row.state or {}))
                for row in session.scalars(select(AlertRuleRow))
            ]
        produced = []
        for rule_id, spec, saved in rules:
            if not spec.enabled:
                continue
            now = now_ms()
            try:
                value, samples = self.measure(spec, now)
            except ModeldeckError as exc:  # no reference yet, deployment gone...
                log.info("alert rule %s/%s: no value (%s)", spec.deployment, spec.name, exc)
                value, samples = None, 0
            except Exception:
                log.exception("alert rule %s/%s could not be measured", spec.deployment, spec.name)
                value, samples = None, 0
            state = RuleState(
                **{k: saved[k] for k in ("firing", "last_fired_ms", "last_value") if k in saved}
            )
            transition = evaluate(spec, state, value, samples, now)
            with self.store.write() as session:
                row = session.get(AlertRuleRow, rule_id)
                if row is None:  # deleted meanwhile
                    continue
                row.state = {**asdict(state), "last_evaluated_ms": now, "last_samples": samples}
                if transition is None:
                    continue
                event = AlertEventRow(
                    rule_id=rule_id,
                    deployment_id=row.deployment_id,
                    rule_name=spec.name,
                    kind=transition.kind,
                    metric=spec.metric,
                    value=transition.value,
                    samples=transition.samples,
                    message=transition.message,
                    ts_ms=now,
                    delivery={"status": "pending"} if spec.destinations() else None,
                )
                session.add(event)
                session.flush()
                view = event_view(event)
            log.warning(
                "alert %s: %s/%s %s",
                transition.kind,
                spec.deployment,
                spec.name,
                transition.message,
            )
            produced.append(({**view, "deployment": spec.deployment}, spec))
        return produced

    async def _send_all(
        self, client: httpx.AsyncClient, event: dict[str, Any], spec: AlertRuleSpec
    ) -> builtins.list[ChannelDelivery]:
        payload = {
            "type": f"alert.{event['kind']}",
            **event,
            "threshold": spec.threshold,
            "comparison": spec.comparison,
            "window_seconds": spec.window_seconds,
        }
        return builtins.list(
            await asyncio.gather(
                *(
                    send(client, channel, payload, smtp=self.smtp, retries=self.retries)
                    for channel in spec.destinations()
                )
            )
        )

    async def _deliver(
        self, client: httpx.AsyncClient, event: dict[str, Any], spec: AlertRuleSpec
    ) -> None:
        results = await self._send_all(client, event, spec)
        if not results:
            return
        # The first failed channel (else the first) speaks for the event; each has its line.
        lead = next((r for r in results if r.status == "failed"), results[0])
        delivery = {
            "status": lead.status,
            "attempts": lead.attempts,
            "status_code": lead.status_code,
            "error": lead.error,
            "delivery_id": lead.delivery_id,
            "channels": [channel_view(r) for r in results],
        }
        event["delivery"] = delivery

        def save() -> None:
            with self.store.write() as session:
                row = session.get(AlertEventRow, event["id"])
                if row is not None:
                    row.delivery = delivery

        await asyncio.to_thread(save)

    async def test(self, deployment: str, name: str) -> builtins.list[dict[str, Any]]:
        """Send a test event to each channel of rule ``name`` now; store nothing. Returns
        each channel's delivery."""
        with self.store.read() as session:
            row = _rule(session, deployment, name)
            spec = AlertRuleSpec.model_validate(row.spec)
        if not spec.destinations():
            raise ValidationFailed(
                f"alert rule {name!r} has no channel to test: give it webhook_url or channels",
                details={"field": "channels"},
            )
        now = now_ms()
        event = {
            "id": None,
            "rule_id": row.id,
            "rule": spec.name,
            "deployment": spec.deployment,
            "kind": "test",
            "metric": spec.metric,
            "value": (row.state or {}).get("last_value"),
            "samples": (row.state or {}).get("last_samples", 0),
            "message": f"A test of alert rule {spec.name!r}: its channels are reachable.",
            "ts": now,
        }
        async with httpx.AsyncClient() as client:
            results = await self._send_all(client, event, spec)
        return [channel_view(r) for r in results]

    def measure(self, spec: AlertRuleSpec, now: int) -> tuple[float | None, int]:
        """The rule's metric over its trailing window, and how many samples it rests on."""
        ref: MetricRef = spec.metric_ref
        start = now - spec.window_seconds * 1000
        if ref.source == "technical":
            return self._technical(spec.deployment, ref.name, start, now)
        if ref.source == "drift":
            report = self.analysis.drift(spec.deployment, start_ms=start, end_ms=now)
            samples = int(report["current_rows"])
            if ref.name == "dataset_share":
                return float(report["dataset"]["drifted_share"]), samples
            if ref.name == "dataset":
                return float(report["dataset"]["drifted"]), samples
            if ref.name == "prediction":
                prediction = report.get("prediction")
                return (float(prediction["statistic"]) if prediction else None), samples
            for column in report["columns"]:
                if column["column"] == ref.column:
                    return _finite(column["statistic"]), samples
            raise NotFound(f"column {ref.column!r} is not monitored")
        if ref.source == "quality":
            total = self.analysis.quality(spec.deployment, start_ms=start, end_ms=now)["total"]
            samples = int(total["rows"])
            if ref.column is None:
                return _finite(total[ref.name]), samples
            for column in total["columns"]:
                if column["column"] == ref.column:
                    return _finite(column[ref.name]), samples
            raise NotFound(f"column {ref.column!r} is not monitored")
        result = self.analysis.performance(
            spec.deployment, start_ms=start, end_ms=now, by_version=False
        )
        windows = result["windows"]
        if not windows:
            return None, 0
        window = windows[0]
        if ref.source == "estimated":
            estimated = window.get("estimated") or {}
            return _finite(estimated.get(ref.name)), int(window["predictions"])
        if ref.name == "label_coverage":
            return _finite(window.get("label_coverage")), int(window["predictions"])
        realised = window.get("realised") or {}
        return _finite(realised.get(ref.name)), int(window["labelled"])

    def _technical(
        self, deployment: str, name: str, start: int, end: int
    ) -> tuple[float | None, int]:
        with self.store.read() as session:
            row = _deployment(session, deployment)
        self.technical.flush(everything=True)
        span = max(BUCKET_MS, -(-(end - start) // BUCKET_MS) * BUCKET_MS)
        series = self.technical.series(row.id, end - span, end, span + BUCKET_MS)
        totals = series["totals"]
        requests = int(totals["requests"])
        if name == "requests":
            return float(requests), requests
        if name == "failures":
            return float(totals["failed"]), requests
        if name == "error_rate":
            return (totals["failed"] / requests if requests else None), requests
        if name in ("p50_latency_ms", "p95_latency_ms", "p99_latency_ms"):
            return _finite(totals[f"latency_{name[:3]}_ms"]), requests
        points = series["resources"]["all"]
        if not points:
            return None, 0
        if name == "cpu_percent":
            return sum(p["cpu_percent"] for p in points) / len(points), len(points)
        return sum(p["rss_bytes"] for p in points) / len(points) / 1e6, len(points)


def _finite(value: Any) -> float | None:
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def _deployment(session: Any, name: str) -> DeploymentRow:
    row = session.scalars(select(DeploymentRow).where(DeploymentRow.name == name)).one_or_none()
    if row is None:
        raise NotFound(f"deployment {name!r} not found", details={"deployment": name})
    return row  # type: ignore[no-any-return]


def _rule(session: Any, deployment: str, name: str) -> AlertRuleRow:
    dep = _deployment(session, deployment)
    row = session.scalars(
        select(AlertRuleRow).where(AlertRuleRow.deployment_id == dep.id, AlertRuleRow.name == name)
    ).one_or_none()
    if row is None:
        raise NotFound(
            f"deployment {deployment!r} has no alert rule {name!r}",
            details={"deployment": deployment, "rule": name},
        )
    return row  # type: ignore[no-any-return]
