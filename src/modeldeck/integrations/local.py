"""``mlflow deployments run-local -t modeldeck``: a platform in this process serving one model.

The platform is embedded (its replicas stop with it) and runs on the usual settings
(``MODELDECK_*``, ``MLFLOW_TRACKING_URI``); ``config`` may set ``host``, ``port`` and
``data_dir``. Deployment ``name`` is created, or rolled out to the model asked for when it
exists from an earlier run, and served until Ctrl-C.
"""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path
from typing import Any

from modeldeck.api.embedded import serve_in_background
from modeldeck.config import Settings
from modeldeck.deployments.schemas import DeploymentCreate, RedeployRequest
from modeldeck.errors import NotFound
from modeldeck.platform import Platform


def serve_locally(
    name: str, model: str, version: str | None, alias: str | None, options: dict[str, Any]
) -> None:
    overrides: dict[str, Any] = {k: options.pop(k) for k in ("host", "port") if k in options}
    if "data_dir" in options:
        overrides["data_dir"] = Path(options.pop("data_dir"))
    settings = Settings(**overrides)
    # Ctrl-C: uvicorn stops the platform (and the replicas) first, then re-raises it.
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(settings, name, model, version, alias, options))


async def _serve(
    settings: Settings,
    name: str,
    model: str,
    version: str | None,
    alias: str | None,
    options: dict[str, Any],
) -> None:
    platform = Platform(settings)
    started = await serve_in_background(settings, platform)
    if started is None:
        return
    server, serving = started
    try:
        access_key = await _deploy(platform, name, model, version, alias, options)
        await _wait(platform, name)
    except BaseException:
        server.should_exit = True
        with contextlib.suppress(asyncio.CancelledError):
            await serving
        raise
    base = settings.resolved_public_url()
    print(f"modeldeck is serving {model} as {name!r} on {base}", flush=True)
    print(f"  endpoint    {base}/deployments/{name}/predict", flush=True)
    print(f"  OIP         {base}/v2/models/{name}/infer", flush=True)
    print(f"  access key  {access_key}", flush=True)
    print("Ctrl-C stops it (and its replicas).", flush=True)
    with contextlib.suppress(asyncio.CancelledError):
        await serving


async def _deploy(
    platform: Platform,
    name: str,
    model: str,
    version: str | None,
    alias: str | None,
    options: dict[str, Any],
) -> str:
    """The deployment's access key: created, or an earlier run's rolled out to this model."""
    try:
        existing = await platform.deployments.get(name)
    except NotFound:
        request = DeploymentCreate(name=name, model=model, version=version, alias=alias, **options)
        created = await platform.deployments.create(request)
        assert created.access_key is not None
        return created.access_key
    if existing.desired_state != "running":
        await platform.deployments.start(name)
    await platform.deployments.redeploy_version(
        name, RedeployRequest(model=model, version=version, alias=alias)
    )
    return (await platform.deployments.rotate_key(name)).access_key


async def _wait(platform: Platform, name: str, timeout: float = 300) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        d = await platform.deployments.get(name)
        if d.status == "deployed" and d.rollout is None:
            return
        if d.status == "failed" or loop.time() > deadline:
            raise RuntimeError(f"deployment {name!r} did not come up: {d.status_message}")
        await asyncio.sleep(0.3)
