"""The app served from inside another program's event loop (``modeldeck demo``, MLflow's
``run-local``): started in the background, so the program can deploy and call once it listens."""

from __future__ import annotations

import asyncio
import socket

import uvicorn

from modeldeck import httpserver
from modeldeck.config import Settings
from modeldeck.platform import Platform

from .app import create_app


async def serve_in_background(
    settings: Settings, platform: Platform, sock: socket.socket | None = None
) -> tuple[uvicorn.Server, asyncio.Task[None]] | None:
    """The server and its task once it listens on ``settings.host:port`` (or on ``sock``,
    bound earlier by :func:`httpserver.listen`); ``None`` when it ended before that without an
    error (an error is raised: why it could not start)."""
    if sock is None:
        sock = httpserver.listen(settings.host, settings.port)  # a taken port: PortInUse, now
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
    serving = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:
        if serving.done():
            serving.result()  # re-raises why the server could not start
            return None
        await asyncio.sleep(0.05)
    return server, serving
