"""``create_app(settings)``: the control plane, model endpoints and OpenAPI in one ASGI app."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.responses import PlainTextResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from modeldeck import __version__
from modeldeck.config import Settings
from modeldeck.platform import Platform
from modeldeck.ui import apidocs
from modeldeck.ui import routes as dashboard

from . import (
    routes_alerts,
    routes_analysis,
    routes_cml,
    routes_control,
    routes_dashboard,
    routes_metrics,
    routes_oip,
    routes_serving,
)
from .errors import UnhandledErrorMiddleware, install_error_handlers
from .routing import StrictInputMiddleware, document_errors
from .security import SecurityMiddleware


def create_app(
    settings: Settings | None = None, platform: Platform | None = None, *, detached: bool = False
) -> FastAPI:
    """Wire routes, error handlers and the platform's lifespan. Does no work until started.
    ``detached``: replicas outlive the app (see :class:`Platform`)."""
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        running = platform or Platform(settings, detached=detached)
        await running.start()
        app.state.platform = running
        try:
            yield
        finally:
            await running.stop()

    app = FastAPI(
        title="modeldeck",
        version=__version__,
        description="Deploy registered MLflow models and watch them in production.",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
    )
    install_error_handlers(app)
    document_errors(app)
    app.include_router(routes_control.router, prefix="/api/v1")
    app.include_router(routes_control.keys_router, prefix="/api/v1")
    app.include_router(routes_metrics.router, prefix="/api/v1")
    app.include_router(routes_analysis.router, prefix="/api/v1")
    app.include_router(routes_alerts.router, prefix="/api/v1")
    app.include_router(routes_cml.router, prefix="/api/v2")
    app.include_router(routes_dashboard.router, prefix="/api/v1")
    app.include_router(dashboard.router)
    dashboard.mount(app)
    app.include_router(apidocs.router)
    app.include_router(routes_serving.router)
    app.include_router(routes_oip.router)
    app.add_middleware(routes_serving.ModelEndpointsMiddleware, infer=routes_oip.infer_response)
    # No NUL in any URL; control-plane bodies: no NUL, NaN, 1e400, deep nesting, nor more than
    # max_api_body_bytes.
    app.add_middleware(StrictInputMiddleware, limit=settings.max_api_body_bytes)
    # A bug's 500 in the JSON error shape, the connection kept (inside the security headers).
    app.add_middleware(UnhandledErrorMiddleware)
    # Added last, so outermost: its headers reach every answer, the model endpoints' too.
    app.add_middleware(SecurityMiddleware, public_url=settings.resolved_public_url())

    @app.get(
        "/metrics",
        tags=["platform"],
        summary="Prometheus metrics (text exposition format)",
        response_class=PlainTextResponse,
    )
    async def prometheus(request: Request) -> Response:
        registry = request.app.state.platform.prometheus
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    @app.get(
        "/api/v1",
        tags=["platform"],
        summary="Where the API, its documentation and the dashboard are",
    )
    async def api_index(request: Request) -> dict[str, Any]:
        """Answers without a key: what a browser or ``curl`` finds at the API's base URL."""
        base = str(request.base_url).rstrip("/")
        return {
            "name": "modeldeck",
            "version": __version__,
            "api": f"{base}/api/v1",
            "openapi": f"{base}/openapi.json",
            "docs": f"{base}/docs",
            "redoc": f"{base}/redoc",
            "dashboard": f"{base}/",
            "authentication": "Authorization: Bearer <API key> (MODELDECK_API_KEY)",
        }

    @app.get("/health", tags=["platform"], summary="Liveness of the platform")
    async def health(request: Request) -> dict[str, str]:
        # How replicas start now: forked in about a second once the fork server is ready,
        # as new interpreters (seconds of imports) while it warms up.
        runtime = request.app.state.platform.runtime
        return {
            "status": "ok",
            "version": __version__,
            "replica_fork_server": runtime.replica_fork_server,
        }

    return app
