"""The platform: the services wired together, started and stopped as one."""

from __future__ import annotations

import asyncio
import functools
import logging

import psutil
from prometheus_client import CollectorRegistry

from modeldeck.auth.api_keys import ApiKeyService
from modeldeck.auth.vault import KeyVault
from modeldeck.compat.cmlapi_service import CmlService
from modeldeck.config import Settings
from modeldeck.datadir import DataDirLock
from modeldeck.deployments.autoscale import Autoscaler
from modeldeck.deployments.canary import CanaryService
from modeldeck.deployments.service import DeploymentService
from modeldeck.errors import NotFound
from modeldeck.gateway.forward import Gateway
from modeldeck.gateway.routes import RouteEntry
from modeldeck.monitoring.alerts.deliver import Smtp
from modeldeck.monitoring.alerts.service import AlertService
from modeldeck.monitoring.analysis import AnalysisService
from modeldeck.monitoring.gauges import QualityGauges
from modeldeck.monitoring.prometheus import (
    AutoscaleCollector,
    PlatformCollector,
    QualityCollector,
    ReplicaView,
    RequestMetrics,
)
from modeldeck.monitoring.technical import BUCKET_MS, ReplicaSample, TechnicalMetrics
from modeldeck.process import tune_gc
from modeldeck.records.journal import absorb
from modeldeck.records.model_metrics import ModelMetrics, ShadowLinks, now_ms
from modeldeck.registry import Registry
from modeldeck.runtimes.router import Runtimes
from modeldeck.store import Store

log = logging.getLogger("modeldeck")

PRUNE_INTERVAL_SECONDS = 3600


class Platform:
    """``detached``: local replicas outlive this process and are adopted by the next one
    (what ``modeldeck server`` does); embedded, a platform's replicas die with it.

    ``lock``: the data directory's, when the caller took it before doing work there (the CLI
    does); otherwise :meth:`start` takes it. :meth:`stop` releases it."""

    def __init__(
        self, settings: Settings, *, detached: bool = False, lock: DataDirLock | None = None
    ) -> None:
        self.settings = settings
        self.detached = detached
        self.lock = lock or DataDirLock(settings.data_dir)
        self.store = Store(settings.resolved_store_url())
        self.registry = Registry(settings.resolved_tracking_uri())
        self.runtime = Runtimes(settings, settings.resolved_tracking_uri(), detached=detached)
        self.vault = KeyVault(settings)
        self.deployments = DeploymentService(
            settings, self.store, self.registry, self.runtime, self.vault
        )
        self.api_keys = ApiKeyService(settings, self.store)
        self.cml = CmlService(settings, self.store, self.registry, self.deployments, self.vault)
        self.shadow_links = ShadowLinks(self.store)
        self.model_metrics = ModelMetrics(self.store, self.shadow_links)
        self.analysis = AnalysisService(self.store, self.registry)
        self.canaries = CanaryService(
            settings, self.store, self.registry, self.deployments, self.runtime, self.analysis
        )
        self.gateway = Gateway(
            settings, self.deployments, self.runtime, self.canaries, self._observe_shadow,
            self.shadow_links.add,
        )  # fmt: skip
        self.technical = TechnicalMetrics(self.store)
        self.alerts = AlertService(
            self.store,
            self.analysis,
            self.technical,
            webhook_attempts=settings.webhook_attempts,
            smtp=Smtp(
                host=settings.smtp_host,
                port=settings.smtp_port,
                starttls=settings.smtp_starttls,
                ssl=settings.smtp_ssl,
                username=settings.smtp_username,
                password=settings.smtp_password.get_secret_value()
                if settings.smtp_password
                else None,
                sender=settings.smtp_from,
                ca_file=settings.smtp_ca_file,
                timeout_s=settings.smtp_timeout_seconds,
            ),
        )
        self.prometheus = CollectorRegistry()
        self.request_metrics = RequestMetrics(self.prometheus)
        self.prometheus.register(PlatformCollector(self._replica_views))
        self.autoscaler = Autoscaler(
            self.deployments, self.runtime, self.gateway, self.technical.events,
            settings.autoscale_interval_seconds,
        )  # fmt: skip
        self.prometheus.register(AutoscaleCollector(self.autoscaler.views))
        self.quality = QualityGauges(
            self.store, self.analysis, settings.quality_gauges_window_seconds
        )
        self.prometheus.register(QualityCollector(self.quality.views))
        self._gauging: asyncio.Task[None] | None = None
        self._autoscaling: asyncio.Task[None] | None = None
        self._housekeeping: asyncio.Task[None] | None = None
        self._monitor: asyncio.Task[None] | None = None
        self._alerting: asyncio.Task[None] | None = None
        self._summarising: asyncio.Task[None] | None = None
        self._following: asyncio.Task[None] | None = None
        self._canarying: asyncio.Task[None] | None = None
        self._processes: dict[int, psutil.Process] = {}

    async def start(self) -> None:
        # Before anything touches the store: a second platform on this data directory is
        # refused here (DataDirInUse) instead of restoring the running one's deployments.
        self.lock.acquire(self.settings.resolved_public_url())
        await asyncio.to_thread(self.store.migrate)
        await asyncio.to_thread(self.vault.load)  # made on first start; unusable: said now
        # Predictions journaled by replicas that were killed with the platform.
        await asyncio.to_thread(absorb, self.store, live=False)
        await self.runtime.startup(self.deployments.on_runtime_event)
        await self.gateway.startup()
        await self.deployments.restore(self.lock)
        await self.cml.restore()
        await self.canaries.resume()  # beside the restored deployments' replicas
        loop = asyncio.get_running_loop()
        self._housekeeping = loop.create_task(self._prune_forever())
        self._monitor = loop.create_task(self._monitor_forever())
        self._alerting = loop.create_task(self._alert_forever())
        if self.settings.summary_interval_seconds > 0:
            self._summarising = loop.create_task(self._summarise_forever())
        if self.settings.quality_gauges_interval_seconds > 0:
            self._gauging = loop.create_task(self._gauge_forever())
        if self.settings.alias_poll_seconds > 0:
            self._following = loop.create_task(self._follow_aliases_forever())
        self._canarying = loop.create_task(self._evaluate_canaries_forever())
        self._autoscaling = loop.create_task(self.autoscaler.run_forever())
        tune_gc()
        log.info("modeldeck is serving on %s", self.settings.resolved_public_url())

    def observe_request(
        self,
        route: RouteEntry,
        replica: int | None,
        status: int,
        seconds: float,
        request_bytes: int,
        response_bytes: int,
        *,
        version: str | None = None,
    ) -> None:
        """Count one model-endpoint request (rollups for the store, Prometheus for scrapers).

        ``version`` is the answering replica's (during a rollout it can be ahead of the
        route's for a moment); requests no replica saw count under the route's.
        """
        version = version or route.version
        self.canaries.observe(route.name, version, status, seconds)
        if not self.settings.technical_monitoring:
            return
        self.technical.rollups.record(
            route.deployment_id, version, replica, status, seconds,
            request_bytes, response_bytes,
        )  # fmt: skip
        self.request_metrics.observe(
            route.name, version, "gateway" if replica is None else str(replica),
            status, seconds, request_bytes, response_bytes,
        )  # fmt: skip

    def _observe_shadow(
        self,
        route: RouteEntry,
        replica: int,
        status: int,
        seconds: float,
        request_bytes: int,
        response_bytes: int,
        version: str,
    ) -> None:
        self.observe_request(
            route, replica, status, seconds, request_bytes, response_bytes, version=version
        )

    def _replica_views(self) -> list[ReplicaView]:
        return [
            ReplicaView(spec.name, spec.model_version, state.index, state.status, state.pid)
            for spec, state in self.runtime.all_replicas()
        ]

    def sample_replicas(self) -> list[ReplicaSample]:
        """CPU (percent of one core since the last sample) and RSS of every live replica."""
        samples = []
        ts = now_ms()
        live = set()
        for spec, state in self.runtime.all_replicas():
            if state.pid is None:
                continue
            live.add(state.pid)
            proc = self._processes.get(state.pid)
            try:
                if proc is None:
                    proc = self._processes[state.pid] = psutil.Process(state.pid)
                    proc.cpu_percent(None)  # primes the counter; the first value is 0
                    continue
                with proc.oneshot():
                    cpu = proc.cpu_percent(None)
                    times = proc.cpu_times()
                    rss = proc.memory_info().rss
            except psutil.Error:
                continue
            samples.append(
                ReplicaSample(
                    spec.deployment_id,
                    spec.model_version,
                    state.index,
                    ts,
                    cpu,
                    rss,
                    times.user + times.system,
                )
            )
        for pid in set(self._processes) - live:
            del self._processes[pid]
        return samples

    async def _monitor_forever(self) -> None:
        while True:
            await asyncio.sleep(BUCKET_MS / 1000)
            try:
                await asyncio.to_thread(self.technical.flush, self.sample_replicas())
            except Exception:
                log.exception("flushing technical metrics failed")
            try:  # the journals of replicas that died (their live ones commit themselves)
                await asyncio.to_thread(absorb, self.store, live=False)
            except Exception:
                log.exception("absorbing the prediction journals of stopped replicas failed")
            try:
                await asyncio.to_thread(self.shadow_links.flush)
            except Exception:
                log.exception("linking shadow copies to their stable predictions failed")

    async def _alert_forever(self) -> None:
        while True:
            await asyncio.sleep(self.settings.alert_interval_seconds)
            try:
                await self.alerts.evaluate_all()
            except Exception:  # never let alerting take the platform down
                log.exception("evaluating alert rules failed")

    async def _summarise_forever(self) -> None:
        while True:
            await asyncio.sleep(self.settings.summary_interval_seconds)
            for deployment in await self.deployments.list():
                oldest = now_ms() - int(self.settings.prediction_retention_days * 86_400_000)
                try:
                    await asyncio.to_thread(
                        functools.partial(
                            self.analysis.refresh_summaries,
                            deployment.name,
                            backfill_hours=self.settings.summary_backfill_hours,
                            oldest_ms=oldest,
                        )
                    )
                except NotFound:
                    continue  # deleted meanwhile
                except Exception:  # a cache: reports build what is missing themselves
                    log.exception("summarising %s failed", deployment.name)

    async def _gauge_forever(self) -> None:
        while True:
            await asyncio.sleep(self.settings.quality_gauges_interval_seconds)
            deployments = [(d.name, d.id) for d in await self.deployments.list()]
            try:
                await asyncio.to_thread(self.quality.refresh, deployments)
            except Exception:  # never let the gauges take the platform down
                log.exception("refreshing the monitoring gauges failed")

    async def _follow_aliases_forever(self) -> None:
        while True:
            await asyncio.sleep(self.settings.alias_poll_seconds)
            try:
                await self.deployments.follow_aliases()
            except Exception:  # the registry may be down: serving goes on, the next poll retries
                log.exception("checking the aliases of deployments failed")

    async def _evaluate_canaries_forever(self) -> None:
        while True:
            await asyncio.sleep(self.settings.canary_interval_seconds)
            try:  # a shadow's copies are labelled once linked: link them before judging
                await asyncio.to_thread(self.shadow_links.flush)
            except Exception:
                log.exception("linking shadow copies to their stable predictions failed")
            await self.canaries.evaluate_all()  # logs (and survives) each canary's failure

    async def prune(self) -> int:
        """Delete records past their retention periods and compact old technical rollups;
        returns the prediction records pruned. Replica events are kept as long as raw
        predictions (``prediction_retention_days``)."""
        technical_cutoff = now_ms() - int(self.settings.technical_retention_days * 86_400_000)
        await asyncio.to_thread(self.technical.prune, technical_cutoff)
        compacted = await asyncio.to_thread(self.technical.compact)
        if compacted:
            log.info("compacted %d technical-metric rows into five-minute rows", compacted)
        cutoff = now_ms() - int(self.settings.prediction_retention_days * 86_400_000)
        pruned = await asyncio.to_thread(self.model_metrics.prune, cutoff)
        await asyncio.to_thread(self.technical.events.prune, cutoff)
        if pruned:
            log.info("pruned %d prediction records older than the retention period", pruned)
        return pruned

    async def _prune_forever(self) -> None:
        while True:
            try:
                await self.prune()
            except Exception:  # never let housekeeping take the platform down
                log.exception("pruning prediction records failed")
            await asyncio.sleep(PRUNE_INTERVAL_SECONDS)

    async def stop(self) -> None:
        if self._autoscaling:
            self._autoscaling.cancel()
        tasks = (
            self._housekeeping, self._monitor, self._alerting, self._summarising, self._following,
            self._canarying, self._gauging,
        )  # fmt: skip
        for task in tasks:
            if task:
                task.cancel()
        await self.cml.shutdown()
        await self.deployments.shutdown()
        await self.gateway.shutdown()
        try:
            await asyncio.to_thread(self.shadow_links.flush)
        except Exception:
            log.exception("linking shadow copies at shutdown failed")
        try:
            await asyncio.to_thread(self.technical.flush, (), everything=True)
        except Exception:
            log.exception("flushing technical metrics at shutdown failed")
        await self.runtime.shutdown(detach=self.detached)
        self.store.close()
        self.lock.release()


def stop_left_running(settings: Settings) -> int:
    """Stop every local replica process the store records as running (``modeldeck server
    --stop-all``, once no platform runs); returns how many were stopped."""
    from sqlalchemy import select
    from sqlalchemy.orm import selectinload

    from modeldeck.deployments.service import recorded_replicas
    from modeldeck.runtimes.local import reap
    from modeldeck.store.schema import DeploymentRow

    store = Store(settings.resolved_store_url())
    try:
        store.migrate()
        with store.read() as session:
            rows = session.scalars(
                select(DeploymentRow).options(selectinload(DeploymentRow.replica_rows))
            )
            recorded = [r for row in rows for r in recorded_replicas(row)]
    finally:
        store.close()
    return reap(recorded)
