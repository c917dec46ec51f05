"""The app served from inside another program's event loop (``modeldeck demo``, MLflow's
``run-local``): started in the background, so the program can deploy and call once it listens."""

from __future__ import annotations

import asyncio

import uvicorn

from modeldeck import httpserver
from modeldeck.config import Settings
from modeldeck.platform import Platform

from .app import create_app


async def serve_in_background(
    settings: Settings, platform: Platform
) -> tuple[uvicorn.Server, asyncio.Task[None]] | None:
    """The server and its task once it listens on ``settings.host:port``; ``None`` when it
    ended before that without an error (an error is raised: why it could not start)."""
    server = uvicorn.Server(
        httpserver.config(
            create_app(settings, platform=platform),
            header_timeout=settings.header_timeout_seconds,
            body_timeout=settings.body_timeout_seconds,
            host=settings.host,
            port=settings.port,
            log_level="warning",
            access_log=False,
        )
    )
    serving = asyncio.create_task(server.serve())
    while not server.started:
        if serving.done():
            serving.result()  # re-raises why the server could not start
            return None
        await asyncio.sleep(0.05)
    return server, serving
