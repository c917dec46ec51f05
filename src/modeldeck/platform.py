"""The platform: the services wired together, started and stopped as one."""

from __future__ import annotations

import asyncio
import logging

from modeldeck.apikeys import ApiKeyService
from modeldeck.config import Settings
from modeldeck.deployments.local import LocalRuntime
from modeldeck.deployments.service import DeploymentService
from modeldeck.monitoring.model_metrics import ModelMetrics, now_ms
from modeldeck.registry import Registry
from modeldeck.serving.gateway import Gateway
from modeldeck.store import Store

log = logging.getLogger("modeldeck")

PRUNE_INTERVAL_SECONDS = 3600


class Platform:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.store = Store(settings.resolved_store_url())
        self.registry = Registry(settings.resolved_tracking_uri())
        self.runtime = LocalRuntime(settings, settings.resolved_tracking_uri())
        self.deployments = DeploymentService(settings, self.store, self.registry, self.runtime)
        self.api_keys = ApiKeyService(settings, self.store)
        self.model_metrics = ModelMetrics(self.store)
        self.gateway = Gateway(settings, self.deployments, self.runtime)
        self._housekeeping: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await asyncio.to_thread(self.store.migrate)
        await self.runtime.startup(self.deployments.on_runtime_event)
        await self.gateway.startup()
        await self.deployments.restore()
        self._housekeeping = asyncio.get_running_loop().create_task(self._prune_forever())
        log.info("modeldeck is serving on %s", self.settings.resolved_public_url())

    async def prune(self) -> int:
        """Delete raw prediction records past the retention period; returns how many."""
        cutoff = now_ms() - int(self.settings.prediction_retention_days * 86_400_000)
        pruned = await asyncio.to_thread(self.model_metrics.prune, cutoff)
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
        if self._housekeeping:
            self._housekeeping.cancel()
        await self.gateway.shutdown()
        await self.runtime.shutdown()
        self.store.close()
