"""``make run``: the lab's model trained, registered, deployed, called, and kept serving."""

from __future__ import annotations

import asyncio
import contextlib
import random
import socket
import threading
from typing import TYPE_CHECKING, Any

import httpx
from rich.console import Console
from rich.panel import Panel

from modeldeck.api.embedded import serve_in_background
from modeldeck.config import Settings
from modeldeck.datadir import DataDirLock
from modeldeck.deployments.schemas import DeploymentCreate
from modeldeck.errors import NotFound
from modeldeck.platform import Platform

if TYPE_CHECKING:
    from modeldeck.demo.story import Story

MODEL = "sklearn_model"
DEPLOYMENT = "sklearn_model"
REPLICAS = 2


async def run_demo(
    settings: Settings,
    console: Console,
    n_requests: int,
    exit_after_traffic: bool,
    lock: DataDirLock | None = None,
    api_key: str | None = None,
    sock: socket.socket | None = None,
    story: Story | None = None,
) -> None:
    """``api_key``: the control-plane key created by this start (shown in the box), if any;
    ``sock``: the listening socket, bound by the caller (else bound here); ``story``: the
    traffic played once serving (:mod:`modeldeck.demo.story`), if any."""
    platform = Platform(settings, lock=lock)
    await _ensure_model(platform, settings, console)
    started = await serve_in_background(settings, platform, sock)
    if started is None:
        return
    server, serving = started
    access_key = await _ensure_deployment(platform, console)
    await _wait_deployed(platform, console)
    await _send_traffic(settings, access_key, n_requests, console)
    endpoint = f"{settings.resolved_public_url()}/deployments/{DEPLOYMENT}/predict"
    console.print(serving_box(settings, access_key, api_key))
    console.print("Try it:", style="bold")
    console.print(
        f"curl -s {endpoint} -H 'Authorization: Bearer {access_key}' "
        "-d '{\"inputs\": [[5.1, 3.5, 1.4, 0.2]]}'",
        soft_wrap=True,
        highlight=False,
    )
    stop = threading.Event()
    told = (
        asyncio.create_task(_tell_story(platform, settings, access_key, story, console, stop))
        if story is not None
        else None
    )
    if exit_after_traffic:
        if told is not None:
            await told
        server.should_exit = True
    try:
        with contextlib.suppress(asyncio.CancelledError):
            await serving
    finally:
        if told is not None:
            stop.set()  # the platform stopped: the story's threads end with it
            with contextlib.suppress(asyncio.CancelledError):
                await told


async def _tell_story(
    platform: Platform,
    settings: Settings,
    access_key: str,
    story: Story,
    console: Console,
    stop: threading.Event,
) -> None:
    """Play the story with a control-plane key of its own (deploy scope: it sends ground
    truth), revoked when it ends. A failing story is a line, not a stopped platform."""
    from modeldeck.auth.api_keys import DEPLOY
    from modeldeck.client import Client
    from modeldeck.demo.story import StoryStopped, run_story

    key = await asyncio.to_thread(platform.api_keys.create, "demo story", DEPLOY)

    def play() -> None:
        with Client(settings.resolved_public_url(), api_key=key.key) as client:
            run_story(
                client,
                DEPLOYMENT,
                story,
                access_key=access_key,
                say=lambda line: console.print(line, highlight=False),
                stop=stop,
            )

    try:
        await asyncio.to_thread(play)
    except StoryStopped:
        pass
    except Exception as exc:  # the platform keeps serving whatever the story met
        console.print(f"[yellow]the story stopped: {exc}[/yellow]")
    finally:
        with contextlib.suppress(Exception):
            await asyncio.to_thread(platform.api_keys.revoke, key.id)


def serving_box(settings: Settings, access_key: str, api_key: str | None) -> Panel:
    """What ``make run`` prints once serving: every URL in it answers, and it says which key
    is for what (the access key calls the endpoint; the API key signs in and drives the CLI)."""
    base = settings.resolved_public_url()
    if api_key is not None:
        sign_in = f"[bold]{api_key}[/bold] (the API key created above)"
    elif settings.api_key is not None:
        sign_in = "the API key in MODELDECK_API_KEY"
    else:
        sign_in = "the API key printed at the first start (MODELDECK_API_KEY)"
    return Panel(
        f"endpoint     {base}/deployments/{DEPLOYMENT}/predict\n"
        f"access key   [bold]{access_key}[/bold]  (calls the endpoint; shown once)\n"
        f"API          {base}/api/v1\n"
        f"API docs     {base}/docs  (ReDoc: {base}/redoc)\n"
        f"dashboard    {base}/\n"
        f"sign in with {sign_in}; not the access key\n"
        "\n[dim]Ctrl-C stops the platform; the next `make run` reuses the data directory "
        "and prints a fresh access key.[/dim]",
        title="modeldeck is serving",
        border_style="green",
    )


async def _ensure_model(platform: Platform, settings: Settings, console: Console) -> None:
    from modeldeck.demo.train import train_and_register

    try:
        await asyncio.to_thread(platform.registry.resolve, MODEL, "latest")
        console.print(f"[dim]reusing registered model {MODEL}[/dim]")
        return
    except NotFound:
        pass
    with console.status("training 3 logistic-regression runs on Iris and registering the best"):
        trained = await asyncio.to_thread(
            train_and_register,
            settings.resolved_tracking_uri(),
            None if settings.mlflow_tracking_uri else settings.artifact_root(),
            MODEL,
        )
    console.print(
        f"registered [bold]{trained.name}[/bold] version {trained.version} "
        f"(C={trained.params['C']}, accuracy {trained.accuracy:.3f})"
    )


async def _ensure_deployment(platform: Platform, console: Console) -> str:
    try:
        existing = await platform.deployments.get(DEPLOYMENT)
    except NotFound:
        created = await platform.deployments.create(
            DeploymentCreate(name=DEPLOYMENT, model=MODEL, version="latest", replicas=REPLICAS)
        )
        assert created.access_key is not None
        return created.access_key
    if existing.desired_state != "running":
        await platform.deployments.start(DEPLOYMENT)
    console.print(f"[dim]reusing deployment {DEPLOYMENT}; its access key is replaced[/dim]")
    return (await platform.deployments.rotate_key(DEPLOYMENT)).access_key


async def _wait_deployed(platform: Platform, console: Console, timeout: float = 300) -> None:
    with console.status(f"starting {REPLICAS} replicas of {DEPLOYMENT}") as status:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            d = await platform.deployments.get(DEPLOYMENT)
            status.update(
                f"{DEPLOYMENT}: {d.status}, {d.ready_replicas}/{d.replicas} replicas ready"
            )
            if d.status == "deployed":
                return
            if d.status == "failed" or loop.time() > deadline:
                raise RuntimeError(f"demo deployment did not come up: {d.status_message}")
            await asyncio.sleep(0.3)


async def _send_traffic(settings: Settings, key: str, n: int, console: Console) -> None:
    from modeldeck.demo.train import FEATURES, iris_frame

    X, _ = iris_frame()
    rng = random.Random(7)
    url = f"{settings.resolved_public_url()}/deployments/{DEPLOYMENT}/predict"
    counts: dict[Any, int] = {}
    async with httpx.AsyncClient(headers={"Authorization": f"Bearer {key}"}) as http:
        for _ in range(n):
            row = X.iloc[rng.randrange(len(X))]
            r = await http.post(url, json={"inputs": [[float(row[c]) for c in FEATURES]]})
            r.raise_for_status()
            pred = r.json()["prediction"][0]
            counts[pred] = counts.get(pred, 0) + 1
    console.print(f"sent {n} predictions, classes predicted: {dict(sorted(counts.items()))}")
