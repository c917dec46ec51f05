"""The ``modeldeck`` command: a thin layer over the Python client (and, for ``server`` and
``demo``, over the platform itself)."""

from __future__ import annotations

import asyncio
import json
import logging
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click
from rich.panel import Panel
from rich.table import Table

from modeldeck import __version__
from modeldeck.cli import analysis, simulate
from modeldeck.cli.common import (
    ENV_MANAGERS,
    Column,
    Group,
    console,
    duration_seconds,
    err_console,
    fitted_table,
    fmt_duration,
    fmt_num,
    json_object,
    make_client,
    print_csv,
    print_json,
    since_ms,
    step_duration_seconds,
)
from modeldeck.client import Client
from modeldeck.config import ClientSettings, Settings
from modeldeck.datadir import DataDirLock


@click.group(cls=Group)
@click.version_option(__version__, prog_name="modeldeck")
@click.option("--url", envvar="MODELDECK_URL", help="Platform URL [env MODELDECK_URL].")
@click.option(
    "--api-key", envvar="MODELDECK_API_KEY", help="Control-plane API key [env MODELDECK_API_KEY]."
)
@click.option(
    "--timeout",
    type=click.FloatRange(min=0, min_open=True),
    help="Seconds to wait for each answer from the platform (default 60) "
    "[env MODELDECK_CLIENT_TIMEOUT_SECONDS].",
)
@click.pass_context
def main(ctx: click.Context, url: str | None, api_key: str | None, timeout: float | None) -> None:
    """Deploy registered MLflow models as REST endpoints and watch them in production."""
    ctx.ensure_object(dict).update(url=url, api_key=api_key, timeout=timeout)


# -- server ---------------------------------------------------------------------------------


def _configure_logging(level: str) -> None:
    logging.basicConfig(
        level=level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    for noisy in ("alembic", "mlflow", "httpx"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def _settings(**overrides: Any) -> Settings:
    values = {k: v for k, v in overrides.items() if v is not None}
    settings = Settings(**values)
    from modeldeck.store.db import ensure_writable_dir

    ensure_writable_dir(settings.data_dir)  # a clear one-line error, not a traceback
    return settings


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


@main.command()
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

    settings = _settings(host=host, port=port, data_dir=data_dir)
    lock = _lock_data_dir(settings)  # --stop-all too: never under a running platform
    if stop_all:
        from modeldeck.platform import stop_left_running

        stopped = stop_left_running(settings)
        console.print(f"stopped {stopped} replica process(es)")
        return
    _configure_logging(settings.log_level)
    _announce_initial_key(settings)
    from modeldeck import httpserver

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
    ).run()


@main.command()
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
@click.option("--exit-after-traffic", is_flag=True, help="Stop after the demo traffic (for tests).")
def demo(
    port: int | None, data_dir: Path | None, n_requests: int, exit_after_traffic: bool
) -> None:
    """Train, register, deploy and call the lab's Iris model, then keep serving."""
    from modeldeck.demo.run import run_demo

    settings = _settings(port=port, data_dir=data_dir)
    lock = _lock_data_dir(settings)
    _configure_logging("warning")
    api_key = _announce_initial_key(settings)
    asyncio.run(run_demo(settings, console, n_requests, exit_after_traffic, lock, api_key))


@main.command("settings")
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


# -- models ---------------------------------------------------------------------------------


@main.group()
def models() -> None:
    """Registered models, read from MLflow."""


@models.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.option("--csv", "as_csv", is_flag=True, help="Print CSV (every column).")
@click.pass_context
def models_list(ctx: click.Context, as_json: bool, as_csv: bool) -> None:
    """List registered models."""
    with make_client(ctx) as client:
        items = client.models()
    if as_json:
        print_json(items)
        return
    rows = [
        [
            m["name"],
            m["latest_version"] or "-",
            ", ".join(f"@{a}→{v}" for a, v in sorted(m["aliases"].items())),
            m["description"] or "",
        ]
        for m in items
    ]
    columns = [
        Column("name", fold=True),
        Column("latest", numeric=True),
        Column("aliases", priority=1, fold=True),
        Column("description", priority=2, fold=True, min_width=20),
    ]
    if as_csv:
        print_csv([c.header for c in columns], rows)
        return
    console.print(fitted_table(columns, rows))


@models.command("alias")
@click.argument("name")
@click.argument("alias")
@click.argument("version", type=int)
@click.pass_context
def models_alias(ctx: click.Context, name: str, alias: str, version: int) -> None:
    """Point NAME@ALIAS at VERSION in the MLflow registry (promotion)."""
    with make_client(ctx) as client:
        moved = client.set_alias(name, alias, version)
    before = moved["previous_version"] or "unset"
    console.print(f"{name}@{alias}: {before} -> {moved['version']}")


@models.command("show")
@click.argument("name")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def models_show(ctx: click.Context, name: str, as_json: bool) -> None:
    """Show a registered model and its versions with run metrics."""
    with make_client(ctx) as client:
        model = client.model(name)
    if as_json:
        print_json(model)
        return
    console.print(f"[bold]{model['name']}[/bold] {model['description']}")
    table = Table("version", "status", "aliases", "run", "metrics", "created")
    for v in model["versions"]:
        metrics = ", ".join(f"{k}={val:.4g}" for k, val in sorted(v["run_metrics"].items()))
        table.add_row(
            v["version"],
            v["status"],
            ", ".join(v["aliases"]),
            (v["run_id"] or "")[:12],
            metrics,
            v["created_at"] or "",
        )
    console.print(table)


# -- deployments ----------------------------------------------------------------------------


def _wait_with_progress(
    client: Client, name: str, timeout: float, version: str | None = None
) -> dict[str, Any]:
    from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    with Progress(
        SpinnerColumn(),
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total} replicas ready"),
        TimeElapsedColumn(),
        console=err_console,
        transient=True,
    ) as progress:
        task = progress.add_task(f"deploying {name}", total=1)

        def update(d: dict[str, Any]) -> None:
            progress.update(
                task,
                total=d["replicas"],
                completed=d["ready_replicas"],
                description=f"{name}: {d['status']}",
            )

        return client.wait(name, timeout=timeout, on_progress=update, version=version)


DEPLOYMENT_COLUMNS = [
    Column("name", fold=True),
    Column("model", priority=2, fold=True),
    Column("version", priority=1),
    Column("status"),
    Column("replicas", numeric=True),
    Column("auth", priority=1),
    Column("endpoint", priority=3, fold=True, min_width=24),
]


def _deployment_rows(items: list[dict[str, Any]], *, plain: bool = False) -> list[list[str]]:
    rows = []
    for d in items:
        spec = d["version_spec"]
        version = (d["version"] or "") + (f" ({spec})" if spec != d["version"] else "")
        rows.append(
            [
                d["name"],
                d["model"] or "",
                version,
                d["status"] if plain else _status(d["status"]),
                f"{d['ready_replicas']}/{d['replicas']}",
                "on" if d["auth_enabled"] else ("off" if plain else "[red]off[/red]"),
                d["endpoint_url"],
            ]
        )
    return rows


def _deployment_table(items: list[dict[str, Any]]) -> Table:
    return fitted_table(DEPLOYMENT_COLUMNS, _deployment_rows(items))


def _warn_auth_disabled(items: list[dict[str, Any]]) -> None:
    """A warning line for each listed endpoint that anyone can call."""
    for d in items:
        if d.get("kind", "endpoint") == "endpoint" and not d["auth_enabled"]:
            err_console.print(
                f"[red]warning:[/red] {d['name']}: authentication is disabled, anyone who can "
                "reach the platform can call its endpoint"
            )


def _status(status: str) -> str:
    colour = {"deployed": "green", "failed": "red", "stopped": "dim"}.get(status, "yellow")
    return f"[{colour}]{status}[/{colour}]"


def _autoscale_options(command: Any) -> Any:
    """The autoscaling policy's options (``deploy`` and ``deployments scale``)."""
    options = [
        click.option(
            "--min-replicas", "--min", "min_replicas", type=click.IntRange(1, 32),
            help="Autoscale: fewest replicas (with --max-replicas).",
        ),
        click.option(
            "--max-replicas", "--max", "max_replicas", type=click.IntRange(1, 32),
            help="Autoscale between --min-replicas (default 1) and this many replicas on the "
            "requests in flight per replica.",
        ),
        click.option(
            "--target-inflight", type=float,
            help="Autoscale: requests in flight per replica to aim at (default 4).",
        ),
        click.option(
            "--scale-up-delay", type=float,
            help="Autoscale: seconds more replicas must be wanted before they start (default 5).",
        ),
        click.option(
            "--scale-down-delay", type=float,
            help="Autoscale: seconds fewer replicas must be wanted before some drain and stop "
            "(default 60).",
        ),
    ]  # fmt: skip
    for option in reversed(options):
        command = option(command)
    return command


def _autoscaling(
    min_replicas: int | None,
    max_replicas: int | None,
    target_inflight: float | None,
    scale_up_delay: float | None,
    scale_down_delay: float | None,
    current: dict[str, Any] | None = None,
) -> dict[str, Any] | None:
    """The policy the autoscaling options give: over ``current`` (a deployment's policy now,
    whose other fields they keep), or with the platform's defaults for the rest."""
    tuning = (target_inflight, scale_up_delay, scale_down_delay)
    if max_replicas is None and current is None:
        if min_replicas is not None or any(v is not None for v in tuning):
            raise click.UsageError("autoscaling needs --max-replicas")
        return None
    policy: dict[str, Any] = dict(current or {})
    for key, value in (
        ("max_replicas", max_replicas),
        ("min_replicas", min_replicas),
        ("target_inflight", target_inflight),
        ("scale_up_delay_seconds", scale_up_delay),
        ("scale_down_delay_seconds", scale_down_delay),
    ):
        if value is not None:
            policy[key] = value
    return policy


@main.command()
@click.argument("model", required=False)
@click.option("--name", help="Deployment name (default: the model's or the file's name).")
@click.option("--version", help="Version number, or 'latest' (default).")
@click.option("--alias", help="Registry alias, e.g. champion.")
@click.option(
    "--no-follow",
    is_flag=True,
    help="With --alias: serve the version it points at now; do not roll out the versions it "
    "moves to.",
)
@click.option(
    "--file",
    "file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Deploy custom predict code from this Python file instead of a registered model.",
)
@click.option(
    "--function", default="predict", show_default=True, help="Predict function in --file."
)
@click.option(
    "--batch",
    is_flag=True,
    help="Create a batch deployment: no endpoint, a name for batch jobs' predictions.",
)
@click.option(
    "--replicas",
    default=1,
    show_default=True,
    type=click.IntRange(1, 32),
    help="Replica processes.",
)
@click.option("--cpu", type=float, help="CPU hint per replica (cores).")
@click.option("--memory-mb", type=int, help="Memory limit per replica (MB).")
@click.option("--env", "env", multiple=True, metavar="KEY=VALUE", help="Replica environment.")
@click.option("--no-auth", is_flag=True, help="Serve without an access key (not recommended).")
@click.option(
    "--no-metrics", is_flag=True, help="Do not record each prediction's input and output."
)
@click.option(
    "--env-manager",
    type=click.Choice(ENV_MANAGERS),
    help="Replicas run in the platform's environment (local, the default) or in an isolated "
    "one built from the model's logged requirements (uv, virtualenv).",
)
@click.option(
    "--runtime",
    type=click.Choice(["local", "ray"]),
    help="Run the replicas as local processes or as a Ray Serve application (needs "
    "modeldeck[ray]). Default: the platform's MODELDECK_DEFAULT_RUNTIME.",
)
@_autoscale_options
@click.option("--wait/--no-wait", default=True, show_default=True, help="Wait until deployed.")
@click.option("--timeout", default=300.0, show_default=True, help="Seconds to wait.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def deploy(
    ctx: click.Context,
    model: str | None,
    name: str | None,
    version: str | None,
    alias: str | None,
    no_follow: bool,
    file: Path | None,
    function: str,
    batch: bool,
    replicas: int,
    cpu: float | None,
    memory_mb: int | None,
    env: tuple[str, ...],
    no_auth: bool,
    no_metrics: bool,
    env_manager: str | None,
    runtime: str | None,
    min_replicas: int | None,
    max_replicas: int | None,
    target_inflight: float | None,
    scale_up_delay: float | None,
    scale_down_delay: float | None,
    wait: bool,
    timeout: float,
    as_json: bool,
) -> None:
    """Deploy registered MODEL (a version, an alias or the latest), or --file, as an endpoint.

    With --max-replicas the replicas autoscale between --min-replicas and --max-replicas on
    the requests in flight per replica (see docs/deployments.md, "Autoscaling")."""
    autoscaling = _autoscaling(
        min_replicas, max_replicas, target_inflight, scale_up_delay, scale_down_delay
    )
    if file is None and model is None and not (batch and name):
        raise click.UsageError("give a registered MODEL or --file (or --batch --name NAME)")
    environment = {}
    for item in env:
        key, sep, value = item.partition("=")
        if not sep:
            raise click.BadParameter(f"expected KEY=VALUE, got {item!r}", param_hint="--env")
        environment[key] = value
    deployment_name = name or model or (file.stem if file else "")
    with make_client(ctx) as client:
        created = client.deploy(
            deployment_name,
            model,
            file=str(file.resolve()) if file else None,
            function=function if file else None,
            kind="batch" if batch else "endpoint",
            track_metrics=not no_metrics,
            version=version,
            alias=alias,
            track_alias=not no_follow,
            replicas=replicas,
            cpu=cpu,
            memory_mb=memory_mb,
            environment=environment,
            auth_enabled=not no_auth,
            env_manager=env_manager,
            runtime=runtime,
            autoscaling=autoscaling,
        )
        result = created
        if wait and not batch:
            try:
                waited = _wait_with_progress(client, created["name"], timeout)
            except BaseException:
                # The deployment exists: its shown-once key must not be lost with the wait.
                if created["access_key"]:
                    err_console.print(
                        f"access key of {created['name']}: [bold]{created['access_key']}[/bold] "
                        "(shown once; the deployment exists, waiting for it failed)"
                    )
                raise
            result = {**waited, "access_key": created["access_key"]}
    if as_json:
        print_json(result)
        return
    console.print(_deployment_table([result]))
    if batch:
        return
    if no_auth:
        err_console.print("[red]warning:[/red] authentication is disabled for this deployment")
    console.print(
        Panel(
            f"endpoint:   {result['endpoint_url']}\naccess key: [bold]{created['access_key']}"
            "[/bold]  (shown once)",
            title=f"{result['name']} v{result['version']}",
        )
    )


@main.group()
def deployments() -> None:
    """List and manage deployments."""


@deployments.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.option("--csv", "as_csv", is_flag=True, help="Print CSV (every column).")
@click.pass_context
def deployments_list(ctx: click.Context, as_json: bool, as_csv: bool) -> None:
    """List deployments."""
    with make_client(ctx) as client:
        items = client.deployments()
    if as_json:
        print_json(items)
    elif as_csv:
        print_csv([c.header for c in DEPLOYMENT_COLUMNS], _deployment_rows(items, plain=True))
    else:
        console.print(_deployment_table(items))
        _warn_auth_disabled(items)


@deployments.command("show")
@click.argument("name")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def deployments_show(ctx: click.Context, name: str, as_json: bool) -> None:
    """Show a deployment and its replicas."""
    with make_client(ctx) as client:
        d = client.deployment(name)
    if as_json:
        print_json(d)
        return
    console.print(_deployment_table([d]))
    _warn_auth_disabled([d])
    if d["status_message"]:
        console.print(f"[dim]{d['status_message']}[/dim]")
    if policy := d.get("autoscaling"):
        console.print(
            f"autoscaling: {policy['min_replicas']}-{policy['max_replicas']} replicas, target "
            f"{policy['target_inflight']:g} in flight per replica, up after "
            f"{policy['scale_up_delay_seconds']:g} s, down after "
            f"{policy['scale_down_delay_seconds']:g} s"
        )
    table = Table("replica", "status", "pid", "port", "restarts", "last error")
    for r in d["replica_states"]:
        table.add_row(
            str(r["index"]),
            r["status"],
            str(r["pid"] or "-"),
            str(r["port"] or "-"),
            str(r["restarts"]),
            r["last_error"],
        )
    console.print(table)


def _lifecycle(command: str) -> Any:
    @click.argument("name")
    @click.option("--json", "as_json", is_flag=True, help="Print JSON.")
    @click.pass_context
    def run(ctx: click.Context, /, name: str, as_json: bool, **kwargs: Any) -> None:
        with make_client(ctx) as client:
            d = getattr(client, command)(name, **kwargs)
            if command == "start" and kwargs.get("wait", True):
                d = _wait_with_progress(client, name, 300)
        if as_json:
            print_json(d)
        else:
            console.print(_deployment_table([d]))

    return run


deployments.command("stop", help="Stop a deployment's replicas (it keeps its key).")(
    _lifecycle("stop")
)
deployments.command("start", help="Start a stopped or failed deployment.")(_lifecycle("start"))


@deployments.command("scale")
@click.argument("name")
@click.option("--replicas", type=click.IntRange(1, 32), help="A fixed count (ends autoscaling).")
@_autoscale_options
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def deployments_scale(
    ctx: click.Context,
    name: str,
    replicas: int | None,
    min_replicas: int | None,
    max_replicas: int | None,
    target_inflight: float | None,
    scale_up_delay: float | None,
    scale_down_delay: float | None,
    as_json: bool,
) -> None:
    """Set a fixed replica count (--replicas) or autoscaling between --min and --max.

    On a deployment that autoscales already, the options given change its policy and the
    others keep their values (--scale-down-delay 120 alone changes only that).
    """
    options = (min_replicas, max_replicas, target_inflight, scale_up_delay, scale_down_delay)
    with make_client(ctx) as client:
        current = None
        if replicas is None and any(v is not None for v in options):
            current = client.deployment(name).get("autoscaling")
        autoscaling = _autoscaling(*options, current=current)
        if (replicas is None) == (autoscaling is None):
            raise click.UsageError("give either --replicas or --max (with --min) to autoscale")
        d = client.scale(name, replicas, autoscaling=autoscaling)
    if as_json:
        print_json(d)
    else:
        console.print(_deployment_table([d]))


@deployments.command("redeploy")
@click.argument("name")
@click.option("--model", help="Registered model (default: the one the deployment serves).")
@click.option("--version", help="Version number, or 'latest' (default).")
@click.option("--alias", help="Registry alias, e.g. champion.")
@click.option(
    "--no-follow",
    is_flag=True,
    help="With --alias: serve the version it points at now; do not follow the alias.",
)
@click.option(
    "--env-manager", type=click.Choice(ENV_MANAGERS), help="Default: the deployment's own."
)
@click.option(
    "--wait/--no-wait", default=True, show_default=True, help="Wait for the build and replicas."
)
@click.option("--timeout", default=900.0, show_default=True, help="Seconds to wait.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def deployments_redeploy(
    ctx: click.Context,
    name: str,
    model: str | None,
    version: str | None,
    alias: str | None,
    no_follow: bool,
    env_manager: str | None,
    wait: bool,
    timeout: float,
    as_json: bool,
) -> None:
    """Serve another version under NAME without downtime: the new version starts beside the
    current one, which serves until every new replica is healthy, and keeps serving if the new
    one fails to start (exit code 1 with the reason). With an isolated environment the build
    comes first."""
    with make_client(ctx) as client:
        d = client.redeploy(
            name,
            model,
            version=version,
            alias=alias,
            env_manager=env_manager,
            track_alias=not no_follow,
        )
        if wait:
            d = _wait_for_version(client, name, d, timeout)
    _show(d, as_json)


def _wait_for_version(
    client: Client, name: str, answer: dict[str, Any], timeout: float
) -> dict[str, Any]:
    """Wait until the version a redeploy or rollback answered with serves (or never will)."""
    target: str | None = None
    if answer["status"] == "building":
        target = str(client.wait_build(name, timeout=timeout)["version"])
    elif answer.get("rollout"):
        target = str(answer["rollout"]["version"])
    return _wait_with_progress(client, name, timeout, version=target)


def _show(d: dict[str, Any], as_json: bool) -> None:
    if as_json:
        print_json(d)
    else:
        console.print(_deployment_table([d]))


@main.command()
@click.argument("name")
@click.option(
    "--wait/--no-wait", default=True, show_default=True, help="Wait until it serves again."
)
@click.option("--timeout", default=900.0, show_default=True, help="Seconds to wait.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def rollback(ctx: click.Context, name: str, wait: bool, timeout: float, as_json: bool) -> None:
    """Return deployment NAME to the version it served before its current one, without
    downtime (as a redeploy goes). Fails when there is no previous version; rolling back again
    goes one version further back."""
    with make_client(ctx) as client:
        d = client.rollback(name)
        if wait:
            d = _wait_for_version(client, name, d, timeout)
    _show(d, as_json)


@deployments.command("canary")
@click.argument("name")
@click.option("--version", help="Candidate version number.")
@click.option("--alias", help="Candidate alias, e.g. challenger.")
@click.option(
    "--percent", default=10.0, show_default=True, help="Share of requests the candidate answers."
)
@click.option("--shadow", is_flag=True, help="Send the candidate a copy of every request instead.")
@click.option("--replicas", default=1, show_default=True, help="Replicas of the candidate.")
@click.option("--min-requests", type=int, help="Candidate requests before deciding (100).")
@click.option("--max-error-rate", type=float, help="Largest failed share, 0-1 (0.01).")
@click.option("--max-p95-ms", type=float, help="Largest p95 latency in ms (not checked).")
@click.option(
    "--performance-margin",
    type=float,
    help="How much worse the candidate's metric may be (0.05).",
)
@click.option("--metric", help="Performance metric compared (accuracy).")
@click.option(
    "--allow-estimated",
    is_flag=True,
    help="Promote on estimated performance alone (default: needs the candidate's realised).",
)
@click.option(
    "--reference-margin",
    type=float,
    help="Roll back at once when the candidate's metric on the labelled reference data is "
    "worse than the stable version's by more than this (0.2).",
)
@click.option("--no-reference-check", is_flag=True, help="Do not compare on the reference data.")
@click.option("--no-drift-check", is_flag=True, help="Do not compare drift verdicts.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def deployments_canary(
    ctx: click.Context,
    name: str,
    version: str | None,
    alias: str | None,
    percent: float,
    shadow: bool,
    replicas: int,
    min_requests: int | None,
    max_error_rate: float | None,
    max_p95_ms: float | None,
    performance_margin: float | None,
    metric: str | None,
    allow_estimated: bool,
    reference_margin: float | None,
    no_reference_check: bool,
    no_drift_check: bool,
    as_json: bool,
) -> None:
    """Run another version of NAME's model beside the serving one, on --percent of the
    requests (or --shadow: on a copy of each); the policy promotes it (a redeploy, and the
    deployment's alias moves to it) or rolls it back. See `canary-status`."""
    policy: dict[str, Any] = {
        k: v
        for k, v in (
            ("min_requests", min_requests),
            ("max_error_rate", max_error_rate),
            ("max_p95_ms", max_p95_ms),
            ("performance_margin", performance_margin),
            ("metric", metric),
            ("reference_margin", reference_margin),
        )
        if v is not None
    }
    if allow_estimated:
        policy["allow_estimated"] = True
    if no_reference_check:
        policy["reference_margin"] = None
    if no_drift_check:
        policy["max_drift"] = False
    with make_client(ctx) as client:
        view = client.canary(
            name,
            version=version,
            alias=alias,
            percent=percent,
            mode="shadow" if shadow else "canary",
            replicas=replicas,
            policy=policy,
        )
    _show_canary(view, as_json)


@deployments.command("canary-status")
@click.argument("name")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def deployments_canary_status(ctx: click.Context, name: str, as_json: bool) -> None:
    """NAME's canary (versions, share, the last evaluation) and its decisions with reasons."""
    with make_client(ctx) as client:
        _show_canary(client.canary_status(name), as_json)


@deployments.command("canary-stop")
@click.argument("name")
@click.pass_context
def deployments_canary_stop(ctx: click.Context, name: str) -> None:
    """Stop NAME's canary: the candidate's replicas stop, the stable version serves all."""
    with make_client(ctx) as client:
        _show_canary(client.stop_canary(name), False)


def _show_canary(view: dict[str, Any], as_json: bool) -> None:
    if as_json:
        print_json(view)
        return
    if view["active"]:
        share = f"{view['percent']:g}%" if view["mode"] == "canary" else "a copy (shadow)"
        ready = "ready" if view["candidate_ready"] else "starting"
        console.print(
            f"{view['deployment']}: version {view['candidate_version']} ({ready}) gets {share} "
            f"beside version {view['stable_version']}"
        )
        if view["last"]:
            last = view["last"]
            console.print(f"last evaluation: {last['decision']}: {'; '.join(last['reasons'])}")
    else:
        console.print(f"{view['deployment']}: no canary running")
    table = Table("at", "decision", "stable", "candidate", "reasons", title="decisions")
    for d in view["decisions"]:
        at = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(d["at"] / 1000))
        table.add_row(
            at, d["decision"], d["stable_version"], d["candidate_version"], "; ".join(d["reasons"])
        )
    console.print(table)


@deployments.command("delete")
@click.argument("name")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@click.pass_context
def deployments_delete(ctx: click.Context, name: str, yes: bool) -> None:
    """Stop and delete a deployment."""
    if not yes:
        click.confirm(f"Delete deployment {name!r}?", abort=True)
    with make_client(ctx) as client:
        client.delete(name)
    console.print(f"deleted {name}")


@deployments.command("rotate-key")
@click.argument("name")
@click.pass_context
def deployments_rotate_key(ctx: click.Context, name: str) -> None:
    """Replace a deployment's access key and print the new one."""
    with make_client(ctx) as client:
        click.echo(client.rotate_access_key(name))


@main.command()
@click.argument("name")
@click.option(
    "--data",
    "-d",
    required=True,
    help="JSON body, or @file. Example: '{\"inputs\": [[5.1, 3.5, 1.4, 0.2]]}'",
)
@click.option(
    "--access-key",
    envvar="MODELDECK_ACCESS_KEY",
    help="Deployment access key [env MODELDECK_ACCESS_KEY].",
)
@click.pass_context
def predict(ctx: click.Context, name: str, data: str, access_key: str | None) -> None:
    """Call deployment NAME's model endpoint and print the answer."""
    text = Path(data[1:]).read_text() if data.startswith("@") else data
    try:
        payload = json.loads(text)
    except json.JSONDecodeError as exc:
        raise click.BadParameter(f"not valid JSON: {exc}", param_hint="--data") from None
    with make_client(ctx) as client:
        print_json(client.predict(name, payload, access_key))


# -- metrics --------------------------------------------------------------------------------


@main.group()
def metrics() -> None:
    """Model metrics: read records, attach ground truth, track aggregates."""


@metrics.command("model")
@click.argument("name")
@click.option("--since", help="Only the last 30m / 1h / 7d ...")
@click.option("--start", type=int, help="Start, ms since the epoch.")
@click.option("--end", type=int, help="End, ms since the epoch (default: now).")
@click.option("--uuid", "uuids", multiple=True, help="Only these predictions.")
@click.option("--version", help="Only this model version.")
@click.option("--limit", default=20, show_default=True, help="Rows to show (table only).")
@click.option("--json", "as_json", is_flag=True, help="Print every record as JSON.")
@click.pass_context
def metrics_model(
    ctx: click.Context,
    name: str,
    since: str | None,
    start: int | None,
    end: int | None,
    uuids: tuple[str, ...],
    version: str | None,
    limit: int,
    as_json: bool,
) -> None:
    """Read deployment NAME's model-metrics records (newest last)."""
    with make_client(ctx) as client:
        records = client.read_metrics(
            name,
            start_ms=since_ms(since, start),
            end_ms=end,
            uuids=list(uuids) or None,
            model_version=version,
        )["metrics"]
    if as_json:
        print_json({"metrics": records})
        return
    table = Table(
        "end time", "prediction uuid", "version", "metrics", title=f"{len(records)} records"
    )
    for rec in records[-limit:]:
        when = datetime.fromtimestamp(rec["endTimeStampMs"] / 1000, UTC).isoformat(
            timespec="seconds"
        )
        table.add_row(
            when,
            rec["predictionUuid"] or "(aggregate)",
            rec["modelVersion"],
            json.dumps(rec["metrics"])[:90],
        )
    console.print(table)


TECHNICAL_COLUMNS = [
    Column("time"),
    Column("rps", numeric=True),
    Column("failed", priority=1, numeric=True),
    Column("p50 ms", priority=2, numeric=True),
    Column("p95 ms", priority=1, numeric=True),
    Column("p99 ms", priority=3, numeric=True),
    Column("mean ms", priority=4, numeric=True),
    Column("req B", priority=6, numeric=True),
    Column("resp B", priority=6, numeric=True),
    Column("cpu %", priority=3, numeric=True),
    Column("rss MB", priority=5, numeric=True),
]
TECHNICAL_FIELDS = [
    "t", "requests", "rps", "failed", "latency_p50_ms", "latency_p95_ms", "latency_p99_ms",
    "latency_mean_ms", "request_bytes_mean", "response_bytes_mean", "cpu_percent", "rss_bytes",
]  # fmt: skip


@metrics.command("technical")
@click.argument("name")
@click.option("--since", default="1h", show_default=True, help="Range: the last 30m / 1h / 7d.")
@click.option(
    "--step",
    help="Time per point: 30s, 5m, 1h, 1d (or seconds, 60). Default: about 120 points.",
)
@click.option("--replica", type=int, help="Only this replica.")
@click.option("--version", help="Only this model version (a canary's candidate, say).")
@click.option("--points", default=12, show_default=True, help="Latest points to show.")
@click.option("--json", "as_json", is_flag=True, help="Print the full series as JSON.")
@click.option("--csv", "as_csv", is_flag=True, help="Print the full series as CSV.")
@click.pass_context
def metrics_technical(
    ctx: click.Context,
    name: str,
    since: str,
    step: str | None,
    replica: int | None,
    version: str | None,
    points: int,
    as_json: bool,
    as_csv: bool,
) -> None:
    """Requests, failures, latency, sizes, CPU and memory of deployment NAME."""
    end = int(time.time() * 1000)
    step_seconds = None if step is None else step_duration_seconds(step)
    with make_client(ctx) as client:
        data = client.technical_metrics(
            name,
            start_ms=end - int(duration_seconds(since) * 1000),
            end_ms=end,
            step_seconds=step_seconds,
            replica=replica,
            version=version,
        )
    cpu = {p["t"]: p for p in data["resources"]["all"]}
    if as_json:
        print_json(data)
        return
    if as_csv:
        print_csv(
            TECHNICAL_FIELDS,
            [
                [{**cpu.get(p["t"], {}), **p}.get(f) for f in TECHNICAL_FIELDS]
                for p in data["requests"]
            ],
        )
        return
    table = Table(
        "replica", "received", "success", "failed", title=f"{name}: requests in the last {since}"
    )
    for row in data["replicas"]:
        table.add_row(
            str(row["replica"]), str(row["received"]), str(row["success"]), str(row["failed"])
        )
    totals = data["totals"]
    table.add_row(
        "[bold]total[/bold]", str(totals["requests"]), str(totals["ok"]), str(totals["failed"])
    )
    console.print(table)
    shown = [p for p in data["requests"] if p["requests"] or p["t"] in cpu][-points:]
    rows = []
    for p in shown:
        res = cpu.get(p["t"], {})
        rows.append(
            [
                datetime.fromtimestamp(p["t"] / 1000, UTC).strftime("%H:%M:%S"),
                f"{p['rps']:.2f}",
                str(p["failed"]),
                fmt_num(p["latency_p50_ms"]),
                fmt_num(p["latency_p95_ms"]),
                fmt_num(p["latency_p99_ms"]),
                fmt_num(p["latency_mean_ms"]),
                fmt_num(p["request_bytes_mean"], 0),
                fmt_num(p["response_bytes_mean"], 0),
                fmt_num(res.get("cpu_percent"), 1),
                fmt_num(res["rss_bytes"] / 1e6 if res.get("rss_bytes") else None, 0),
            ]
        )
    title = f"every {fmt_duration(data['step'] // 1000)} (latest {points}, UTC)"
    console.print(fitted_table(TECHNICAL_COLUMNS, rows, title=title))
    if data.get("events"):
        events = fitted_table(
            [Column("time"), Column("event"), Column("message", fold=True, min_width=20)],
            [
                [
                    datetime.fromtimestamp(e["t"] / 1000, UTC).strftime("%H:%M:%S"),
                    e["kind"],
                    e["message"],
                ]
                for e in data["events"][-points:]
            ],
            title="replica events",
        )
        console.print(events)


@metrics.command("delayed")
@click.argument("prediction_uuid")
@click.argument("metrics_json", metavar="METRICS")
@click.option("--deployment", help="Check that the prediction belongs to this deployment.")
@click.pass_context
def metrics_delayed(
    ctx: click.Context, prediction_uuid: str, metrics_json: str, deployment: str | None
) -> None:
    """Attach METRICS (a JSON object, e.g. '{"actual_result": 1}') to a prediction."""
    with make_client(ctx) as client:
        client.track_delayed_metrics(
            json_object(metrics_json, "METRICS"), prediction_uuid, deployment=deployment
        )
    console.print(f"recorded for {prediction_uuid}")


@metrics.command("aggregate")
@click.argument("name")
@click.argument("metrics_json", metavar="METRICS")
@click.option("--start", type=int, required=True, help="Window start, ms since the epoch.")
@click.option("--end", type=int, required=True, help="Window end, ms since the epoch.")
@click.option("--version", help="Model version the window belongs to.")
@click.pass_context
def metrics_aggregate(
    ctx: click.Context, name: str, metrics_json: str, start: int, end: int, version: str | None
) -> None:
    """Track window-level METRICS (a JSON object) for deployment NAME."""
    with make_client(ctx) as client:
        client.track_aggregate_metrics(
            name, json_object(metrics_json, "METRICS"), start, end, model_version=version
        )
    console.print(f"recorded for {name}")


# -- API keys -------------------------------------------------------------------------------


@main.group()
def keys() -> None:
    """Control-plane API keys."""


def _check_scope(ctx: click.Context, param: click.Parameter, value: str) -> str:
    import re

    from modeldeck.auth.api_keys import SCOPE_PATTERN

    if not re.match(SCOPE_PATTERN, value):
        raise click.BadParameter("expected admin, deploy, read or predict:<deployment>")
    return value


@keys.command("create")
@click.argument("name", required=False)
@click.option("--name", "name_option", help="The key's name (or give it as NAME).")
@click.option(
    "--scope",
    default="admin",
    show_default=True,
    callback=_check_scope,
    help="admin (everything), deploy (deployments, metrics, monitoring; no keys), read "
    "(read-only) or predict:<deployment> (only that deployment's model endpoint).",
)
@click.option(
    "--local",
    is_flag=True,
    help="Write to this machine's store directly (when no API key is at hand).",
)
@click.pass_context
def keys_create(
    ctx: click.Context, name: str | None, name_option: str | None, scope: str, local: bool
) -> None:
    """Create an API key named NAME and print it (shown once)."""
    key_name = name or name_option or "cli"
    if local:
        from modeldeck.auth.api_keys import ApiKeyService
        from modeldeck.store import Store

        settings = _settings()
        store = Store(settings.resolved_store_url())
        store.migrate()
        created = ApiKeyService(settings, store).create(key_name, scope)
        store.close()
        click.echo(created.key)
        return
    with make_client(ctx) as client:
        click.echo(client.create_api_key(key_name, scope)["key"])


@keys.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def keys_list(ctx: click.Context, as_json: bool) -> None:
    """List API keys: id, name, scope, prefix, created and last used (never the keys)."""
    with make_client(ctx) as client:
        items = client.api_keys()
    if as_json:
        print_json(items)
        return
    table = Table("id", "name", "scope", "prefix", "created", "last used")
    for k in items:
        table.add_row(
            k["id"],
            k["name"],
            k["scope"],
            k["prefix"] + "…",
            str(k["created_at"]),
            str(k["last_used_at"] or "never"),
        )
    console.print(table)


@keys.command("rotate")
@click.argument("key_id")
@click.pass_context
def keys_rotate(ctx: click.Context, key_id: str) -> None:
    """Give API key KEY_ID a new secret and print it (shown once); the old one stops working."""
    with make_client(ctx) as client:
        click.echo(client.rotate_api_key(key_id)["key"])


@keys.command("revoke")
@click.argument("key_id")
@click.pass_context
def keys_revoke(ctx: click.Context, key_id: str) -> None:
    """Revoke an API key by its id."""
    with make_client(ctx) as client:
        client.revoke_api_key(key_id)
    console.print(f"revoked {key_id}")


# -- builds ---------------------------------------------------------------------------------


def _size(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


@main.command("builds")
@click.argument("name")
@click.option("--id", "build_id", help="Show one build: its packages and its log.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def builds_cmd(ctx: click.Context, name: str, build_id: str | None, as_json: bool) -> None:
    """List deployment NAME's builds (newest first), or show one with --id."""
    with make_client(ctx) as client:
        if build_id:
            found = [b for b in client.builds(name) if b["id"].startswith(build_id)]
            if len(found) != 1:
                raise click.ClickException(
                    f"{len(found)} builds of {name!r} have an id starting {build_id!r}"
                )
            build = client.build(name, found[0]["id"])
            items = [build]
        else:
            items = client.builds(name)
    if as_json:
        print_json(items[0] if build_id else items)
        return
    table = Table("build", "reason", "version", "env", "status", "cache", "python", "seconds")
    for b in items:
        status = b["status"]
        colour = {"built": "green", "build failed": "red"}.get(status, "yellow")
        table.add_row(
            b["id"][:8],
            b["reason"],
            b["version"],
            b["env_manager"],
            f"[{colour}]{status}[/{colour}]",
            "hit" if b["cache_hit"] else ("miss" if status == "built" else "-"),
            b["python_version"] or "-",
            fmt_num(b["duration_seconds"], 1),
        )
    console.print(table)
    if not build_id:
        return
    b = items[0]
    if b["status_message"]:
        console.print(b["status_message"], markup=False)
    if b["model_packages"]:
        console.print(
            "model packages: "
            + ", ".join(f"{k}=={v}" for k, v in sorted(b["model_packages"].items())),
            markup=False,
        )
    if b["environment_path"]:
        console.print(f"environment: {b['environment_path']}", markup=False)
    if b.get("log"):
        console.rule("log")
        console.print(b["log"], markup=False, highlight=False)


@main.group()
def envs() -> None:
    """The cache of isolated build environments."""


@envs.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def envs_list(ctx: click.Context, as_json: bool) -> None:
    """Cached environments, most recently used first."""
    with make_client(ctx) as client:
        items = client.environments()
    if as_json:
        print_json(items)
        return
    table = Table("key", "env", "python", "size", "last used", "in use")
    for e in items:
        used = datetime.fromtimestamp(e["last_used_at"], UTC).strftime("%Y-%m-%d %H:%M")
        table.add_row(
            e["key"][:12],
            e["env_manager"],
            e["python_version"],
            _size(e["size_bytes"]),
            used,
            "yes" if e["in_use"] else "no",
        )
    console.print(table)


@envs.command("prune")
@click.pass_context
def envs_prune(ctx: click.Context) -> None:
    """Remove every cached environment (and downloaded model) no running replica uses."""
    with make_client(ctx) as client:
        result = client.prune_environments()
    console.print(
        f"removed {len(result['removed'])} environments ({_size(result['freed_bytes'])}) "
        f"and {result['models_removed']} downloaded models"
    )


# The analysis commands (reference, monitoring, drift, performance, alerts, report) and
# ``simulate`` live in their own modules; importing them registers them on ``main``.
for command in (*analysis.COMMANDS, *simulate.COMMANDS):
    main.add_command(command)

__all__ = ["ClientSettings", "main"]


if __name__ == "__main__":
    main()
