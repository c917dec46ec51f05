"""``modeldeck server | demo | settings``: the commands that run the platform (or read
its settings) on this machine rather than call it."""

from __future__ import annotations

import asyncio
import logging
import sys
from pathlib import Path

import click
from rich.panel import Panel
from rich.table import Table

from modeldeck.cli.common import console, platform_settings
from modeldeck.config import Settings
from modeldeck.datadir import DataDirLock


def _configure_logging(level: str) -> None:
    logging.basicConfig(
        level=level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    for noisy in ("alembic", "mlflow", "httpx"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def _lock_data_dir(settings: Settings) -> DataDirLock:
    """The data directory's lock, taken before the store is touched: a second platform on it
    stops here with one line naming the running one (pid and URL). Held until exit."""
    lock = DataDirLock(settings.data_dir)
    lock.acquire(settings.resolved_public_url())
    return lock


def _announce_initial_key(settings: Settings) -> str | None:
    from modeldeck.auth.api_keys import ApiKeyService
    from modeldeck.store import Store

    store = Store(settings.resolved_store_url())
    try:
        store.migrate()
        created = ApiKeyService(settings, store).ensure_initial()
    finally:
        store.close()
    if created:
        console.print(
            Panel(
                f"[bold]{created.key}[/bold]\n\nThis control-plane API key is shown only once. "
                "Use it as MODELDECK_API_KEY for the CLI and client.",
                title="API key created",
                border_style="yellow",
            )
        )
        return created.key
    return None


@click.command()
@click.option("--host", help="Address to listen on [env MODELDECK_HOST].")
@click.option("--port", type=int, help="Port to listen on [env MODELDECK_PORT].")
@click.option(
    "--data-dir", type=click.Path(path_type=Path), help="Data directory [env MODELDECK_DATA_DIR]."
)
@click.option(
    "--stop-all",
    is_flag=True,
    help="Stop the replicas a stopped platform left running (see MODELDECK_KEEP_REPLICAS_ON_EXIT), "
    "then exit.",
)
def server(host: str | None, port: int | None, data_dir: Path | None, stop_all: bool) -> None:
    """Run the platform: control plane, model endpoints and supervisor.

    Local replicas outlive it (stopped, upgraded or crashed) and the next start adopts them;
    `--stop-all` stops them."""
    import uvicorn

    from modeldeck.api.app import create_app
    from modeldeck.platform import Platform

    settings = platform_settings(host=host, port=port, data_dir=data_dir)
    lock = _lock_data_dir(settings)  # --stop-all too: never under a running platform
    if stop_all:
        from modeldeck.platform import stop_left_running

        stopped = stop_left_running(settings)
        console.print(f"stopped {stopped} replica process(es)")
        return
    from modeldeck import httpserver

    # Bound before the store is touched or a key made: a taken port is one line, nothing done.
    sock = httpserver.listen(settings.host, settings.port)
    _configure_logging(settings.log_level)
    _announce_initial_key(settings)
    uvicorn.Server(
        httpserver.config(
            create_app(
                settings,
                platform=Platform(settings, detached=settings.keep_replicas_on_exit, lock=lock),
            ),
            header_timeout=settings.header_timeout_seconds,
            body_timeout=settings.body_timeout_seconds,
            host=settings.host,
            port=settings.port,
            log_level=settings.log_level,
            access_log=False,
            timeout_graceful_shutdown=15,
        )
    ).run(sockets=[sock])


@click.command()
@click.option("--port", type=int, help="Port to listen on [env MODELDECK_PORT].")
@click.option(
    "--data-dir", type=click.Path(path_type=Path), help="Data directory [env MODELDECK_DATA_DIR]."
)
@click.option(
    "--requests",
    "n_requests",
    default=20,
    show_default=True,
    help="Predictions to send once the demo is deployed.",
)
@click.option(
    "--story",
    is_flag=True,
    help="Once serving, send a few minutes of clean traffic with right labels, then traffic "
    "with petal_length shifted and wrong labels, so that drift and accuracy move "
    "(`make run` does).",
)
@click.option(
    "--story-minutes",
    type=click.FloatRange(min=0.1, max=120),
    default=3.0,
    show_default=True,
    help="How long the story runs.",
)
@click.option("--exit-after-traffic", is_flag=True, help="Stop after the demo traffic (for tests).")
def demo(
    port: int | None,
    data_dir: Path | None,
    n_requests: int,
    story: bool,
    story_minutes: float,
    exit_after_traffic: bool,
) -> None:
    """Train, register, deploy and call the lab's Iris model, then keep serving."""
    from modeldeck.demo.run import run_demo
    from modeldeck.demo.story import Story

    settings = platform_settings(port=port, data_dir=data_dir)
    from modeldeck import httpserver

    lock = _lock_data_dir(settings)
    sock = httpserver.listen(settings.host, settings.port)  # before the model is trained
    _configure_logging("warning")
    api_key = _announce_initial_key(settings)
    asyncio.run(
        run_demo(
            settings,
            console,
            n_requests,
            exit_after_traffic,
            lock,
            api_key,
            sock,
            story=Story(story_minutes) if story else None,
        )
    )


@click.command("settings")
@click.option("--markdown", is_flag=True, help="Print the settings reference as Markdown.")
def settings_cmd(markdown: bool) -> None:
    """List every MODELDECK_* setting with its default and meaning."""
    from modeldeck.cli.docs import settings_markdown, settings_rows

    if markdown:
        click.echo(settings_markdown())
        return
    table = Table("variable", "default", "meaning")
    for name, default, help_text in settings_rows():
        table.add_row(name, default, help_text)
    console.print(table)


COMMANDS: list[click.Command] = [server, demo, settings_cmd]
