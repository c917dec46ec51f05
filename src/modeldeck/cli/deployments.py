"""``modeldeck deploy | deployments | rollback | predict``: deployments, their lifecycle,
rollouts and canaries, and a call to a model endpoint."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import click
from rich.panel import Panel
from rich.table import Table

from modeldeck.cli.common import (
    ENV_MANAGERS,
    Column,
    console,
    err_console,
    fitted_table,
    make_client,
    print_csv,
    print_json,
)
from modeldeck.client import Client
from modeldeck.views import AutoscalingView, CanaryView, DeploymentView


def _wait_with_progress(
    client: Client, name: str, timeout: float, version: str | None = None
) -> DeploymentView:
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

        def update(d: DeploymentView) -> None:
            progress.update(
                task,
                total=d.replicas,
                completed=d.ready_replicas,
                description=f"{name}: {d.status}",
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


def _deployment_rows(items: list[DeploymentView], *, plain: bool = False) -> list[list[str]]:
    rows = []
    for d in items:
        spec = d.version_spec
        version = (d.version or "") + (f" ({spec})" if spec != d.version else "")
        rows.append(
            [
                d.name,
                d.model or "",
                version,
                d.status if plain else _status(d.status),
                f"{d.ready_replicas}/{d.replicas}",
                "on" if d.auth_enabled else ("off" if plain else "[red]off[/red]"),
                d.endpoint_url,
            ]
        )
    return rows


def _deployment_table(items: list[DeploymentView]) -> Table:
    return fitted_table(DEPLOYMENT_COLUMNS, _deployment_rows(items))


def _warn_auth_disabled(items: list[DeploymentView]) -> None:
    """A warning line for each listed endpoint that anyone can call."""
    for d in items:
        if d.kind == "endpoint" and not d.auth_enabled:
            err_console.print(
                f"[red]warning:[/red] {d.name}: authentication is disabled, anyone who can "
                "reach the platform can call its endpoint"
            )


def _status(status: str) -> str:
    colour = {"deployed": "green", "failed": "red", "unavailable": "red", "stopped": "dim"}.get(
        status, "yellow"
    )
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
    current: AutoscalingView | None = None,
) -> dict[str, Any] | None:
    """The policy the autoscaling options give: over ``current`` (a deployment's policy now,
    whose other fields they keep), or with the platform's defaults for the rest."""
    tuning = (target_inflight, scale_up_delay, scale_down_delay)
    if max_replicas is None and current is None:
        if min_replicas is not None or any(v is not None for v in tuning):
            raise click.UsageError("autoscaling needs --max-replicas")
        return None
    policy: dict[str, Any] = current.model_dump() if current is not None else {}
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


@click.command()
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
        result: DeploymentView = created
        if wait and not batch:
            try:
                waited = _wait_with_progress(client, created.name, timeout)
            except BaseException:
                # The deployment exists: its shown-once key must not be lost with the wait.
                if created.access_key:
                    err_console.print(
                        f"access key of {created.name}: [bold]{created.access_key}[/bold] "
                        "(shown once; the deployment exists, waiting for it failed)"
                    )
                raise
            result = waited.model_copy(update={"access_key": created.access_key})
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
            f"endpoint:   {result.endpoint_url}\naccess key: [bold]{created.access_key}"
            "[/bold]  (shown once)",
            title=f"{result.name} v{result.version}",
        )
    )


@click.group()
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
    if d.status_message:
        console.print(f"[dim]{d.status_message}[/dim]")
    if policy := d.autoscaling:
        console.print(
            f"autoscaling: {policy.min_replicas}-{policy.max_replicas} replicas, target "
            f"{policy.target_inflight:g} in flight per replica, up after "
            f"{policy.scale_up_delay_seconds:g} s, down after "
            f"{policy.scale_down_delay_seconds:g} s"
        )
    table = Table("replica", "status", "pid", "port", "restarts", "last error")
    for r in d.replica_states:
        table.add_row(
            str(r.index),
            r.status,
            str(r.pid or "-"),
            str(r.port or "-"),
            str(r.restarts),
            r.last_error,
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
            current = client.deployment(name).autoscaling
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
    client: Client, name: str, answer: DeploymentView, timeout: float
) -> DeploymentView:
    """Wait until the version a redeploy or rollback answered with serves (or never will)."""
    target: str | None = None
    if answer.status == "building":
        target = client.wait_build(name, timeout=timeout).version
    elif answer.rollout is not None:
        target = answer.rollout.version
    return _wait_with_progress(client, name, timeout, version=target)


def _show(d: DeploymentView, as_json: bool) -> None:
    if as_json:
        print_json(d)
    else:
        console.print(_deployment_table([d]))


@click.command()
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


def _show_canary(view: CanaryView, as_json: bool) -> None:
    if as_json:
        print_json(view)
        return
    if view.active:
        share = f"{view.percent or 0:g}%" if view.mode == "canary" else "a copy (shadow)"
        ready = "ready" if view.candidate_ready else "starting"
        console.print(
            f"{view.deployment}: version {view.candidate_version} ({ready}) gets {share} "
            f"beside version {view.stable_version}"
        )
        if last := view.last:
            console.print(f"last evaluation: {last.decision}: {'; '.join(last.reasons)}")
    else:
        console.print(f"{view.deployment}: no canary running")
    table = Table("at", "decision", "stable", "candidate", "reasons", title="decisions")
    for d in view.decisions:
        at = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(d.at / 1000))
        table.add_row(at, d.decision, d.stable_version, d.candidate_version, "; ".join(d.reasons))
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


@click.command()
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


COMMANDS: list[click.Command] = [deploy, deployments, rollback, predict]
