"""The platform: the services wired together, started and stopped as one."""

from __future__ import annotations

import asyncio
import logging

from modeldeck.apikeys import ApiKeyService
from modeldeck.config import Settings
from modeldeck.deployments.local import LocalRuntime
from modeldeck.deployments.service import DeploymentService
from modeldeck.monitoring.model_metrics import ModelMetrics
from modeldeck.registry import Registry
from modeldeck.serving.gateway import Gateway
from modeldeck.store import Store

log = logging.getLogger("modeldeck")


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

    async def start(self) -> None:
        await asyncio.to_thread(self.store.migrate)
        await self.runtime.startup(self.deployments.on_runtime_event)
        await self.gateway.startup()
        await self.deployments.restore()
        log.info("modeldeck is serving on %s", self.settings.resolved_public_url())

    async def stop(self) -> None:
        await self.gateway.shutdown()
        await self.runtime.shutdown()
        self.store.close()
