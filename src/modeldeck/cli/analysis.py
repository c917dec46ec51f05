"""``modeldeck reference | monitoring | drift | performance | quality | alerts | report``."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
from rich.table import Table

from modeldeck.cli.common import (
    Column,
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
    step_duration_seconds,
)
from modeldeck.monitoring.summaries.parts import BUCKET_MS

if TYPE_CHECKING:
    from modeldeck.client import Client
    from modeldeck.views import DriftReport, QualityReport, ReferenceView, WindowView


def _window(since: str) -> tuple[int, int]:
    """The last ``since``, starting on a five-minute boundary (where stored summaries start)."""
    end = int(time.time() * 1000) + 1
    start = end - int(duration_seconds(since) * 1000)
    return start - start % BUCKET_MS, end


def _fitted(client: Client, name: str, since: str | None, step: str | None = None) -> WindowView:
    """The platform's window for NAME: ``since`` and ``step`` as given, the rest fitted to the
    data present (from the first prediction to now, rounded up to a preset; 12 to 60 windows),
    starting on a whole step. The dashboard and the report ask the same."""
    return client.window(
        name,
        span_seconds=None if since is None else max(1, int(duration_seconds(since))),
        step_seconds=None if step is None else step_duration_seconds(step),
    )


def _span_text(window: WindowView, since: str | None) -> str:
    return since or window.preset or fmt_duration(window.span // 1000)


def _time(ms: int, step_ms: int = 60_000) -> str:
    """A window's start; with its seconds when windows are not whole minutes."""
    shape = "%m-%d %H:%M:%S" if step_ms % 60_000 else "%m-%d %H:%M"
    return datetime.fromtimestamp(ms / 1000, UTC).strftime(shape)


def _verdict(drifted: bool) -> str:
    return "[red]drift[/red]" if drifted else "[green]ok[/green]"


# -- reference data -------------------------------------------------------------------------


@click.group()
def reference() -> None:
    """Reference data: the baseline that drift is measured against."""


def _print_reference(summary: ReferenceView) -> None:
    console.print(
        f"reference of [bold]{summary.model_version or 'all versions'}[/bold]: "
        f"{summary.rows:,} rows from {summary.source}"
    )
    table = Table("column", "kind", "dtype", "role")
    for column in summary.columns:
        role = (
            "target"
            if column["name"] == summary.target_column
            else "prediction"
            if column["name"] == summary.prediction_column
            else "feature"
        )
        table.add_row(column["name"], column["kind"], column["dtype"], role)
    console.print(table)
    if summary.estimator:
        console.print(
            "performance estimation: calibrated on the reference (used for predictions that "
            "track class probabilities)"
        )


@reference.command("set")
@click.argument("name")
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--version", default="", help="Model version it belongs to (default: all).")
@click.option("--target-column", help="The label column, if the file has one.")
@click.option("--prediction-column", help="The model's output column, if the file has one.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def reference_set(
    ctx: click.Context,
    name: str,
    path: Path,
    version: str,
    target_column: str | None,
    prediction_column: str | None,
    as_json: bool,
) -> None:
    """Upload PATH (.parquet or .csv) as deployment NAME's reference data."""
    with make_client(ctx) as client, console.status(f"uploading {path.name}"):
        summary = client.set_reference(
            name,
            path,
            model_version=version,
            target_column=target_column,
            prediction_column=prediction_column,
        )
    if as_json:
        print_json(summary)
        return
    _print_reference(summary)


@reference.command("from-registry")
@click.argument("name")
@click.option("--version", help="Model version (default: the deployed one).")
@click.pass_context
def reference_from_registry(ctx: click.Context, name: str, version: str | None) -> None:
    """Take NAME's reference data from what was logged with the model's MLflow run."""
    with make_client(ctx) as client:
        _print_reference(client.reference_from_registry(name, version))


@reference.command("show")
@click.argument("name")
@click.option("--version", help="Model version.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def reference_show(ctx: click.Context, name: str, version: str | None, as_json: bool) -> None:
    """Describe deployment NAME's reference data."""
    with make_client(ctx) as client:
        summary = client.reference(name, version)
    if as_json:
        print_json(summary)
        return
    _print_reference(summary)


# -- monitoring settings --------------------------------------------------------------------


@click.group()
def monitoring() -> None:
    """How tracked metrics map onto features, predictions and labels."""


@monitoring.command("show")
@click.argument("name")
@click.pass_context
def monitoring_show(ctx: click.Context, name: str) -> None:
    """Print deployment NAME's monitoring settings as JSON."""
    with make_client(ctx) as client:
        print_json(client.monitoring(name))


@monitoring.command("set")
@click.argument("name")
@click.argument("settings_json", metavar="SETTINGS")
@click.pass_context
def monitoring_set(ctx: click.Context, name: str, settings_json: str) -> None:
    """Replace NAME's monitoring settings with SETTINGS, a JSON object, e.g.
    '{"label_key": "label", "overrides": {"age": {"method": "psi"}}}'."""
    with make_client(ctx) as client:
        print_json(client.set_monitoring(name, **json_object(settings_json, "SETTINGS")))


# -- drift and performance ------------------------------------------------------------------


_since_option = click.option(
    "--since",
    help="Range: the last 5m / 1h / 24h / 7d ... (default: since the first prediction, "
    "rounded up to 5m, 15m, 1h, 2h, 6h, 12h, 24h, 7d or 14d).",
)
_step_option = click.option(
    "--step",
    help="Window size: 10s / 1h / 1d ... (default: a readable step giving 12 to 60 windows). "
    "Windows start on whole steps: a 1h step on the hour (UTC).",
)


@click.command()
@click.argument("name")
@click.option(
    "--since",
    help="Window: the last 5m / 1h / 24h / 7d (default: since the first prediction, rounded "
    "up to 5m, 15m, 1h, 2h, 6h, 12h, 24h, 7d or 14d).",
)
@click.option("--version", help="Only this model version.")
@click.option("--column", "columns", multiple=True, help="Only these columns.")
@click.option(
    "--exact",
    is_flag=True,
    help="Test every tracked value, however many (slower than five-minute summaries).",
)
@click.option(
    "--over-time",
    is_flag=True,
    help="Each column's verdict window by window (see --step), to see when drift began.",
)
@_step_option
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.option(
    "--fail-on-drift", is_flag=True, help="Exit with status 1 when the dataset drifted (for CI)."
)
@click.pass_context
def drift(
    ctx: click.Context,
    name: str,
    since: str | None,
    version: str | None,
    columns: tuple[str, ...],
    exact: bool,
    over_time: bool,
    step: str | None,
    as_json: bool,
    fail_on_drift: bool,
) -> None:
    """Data drift of deployment NAME's inputs and outputs against its reference data."""
    if over_time:
        if exact:
            raise click.UsageError("--exact tests one window; --over-time reads summaries")
        _drift_over_time(ctx, name, since, step, version, list(columns) or None, as_json)
        return
    if step is not None:
        raise click.UsageError("--step needs --over-time (a drift report is one window)")
    with make_client(ctx) as client, console.status("measuring drift"):
        window = _fitted(client, name, since)
        report = client.drift(
            name,
            start_ms=window.start,
            end_ms=window.end,
            model_version=version,
            columns=list(columns) or None,
            exact=exact,
        )
    if as_json:
        print_json(report)
    else:
        _print_drift(report, _span_text(window, since))
    if fail_on_drift and report.dataset["drifted"]:
        raise SystemExit(1)


def _drift_over_time(
    ctx: click.Context,
    name: str,
    since: str | None,
    step: str | None,
    version: str | None,
    columns: list[str] | None,
    as_json: bool,
) -> None:
    with make_client(ctx) as client, console.status("measuring drift window by window"):
        window = _fitted(client, name, since, step)
        found = client.drift_series(
            name,
            start_ms=window["start"],
            end_ms=window["end"],
            step_seconds=window["step"] // 1000,
            model_version=version,
            columns=columns,
        )
    if as_json:
        print_json(found)
        return
    windows = found.windows
    step_ms: int = found.step
    tests: list[tuple[str, Any]] = [(c, lambda w, c=c: w["columns"].get(c)) for c in found.columns]
    prediction = next((w["prediction"]["column"] for w in windows if w["prediction"]), None)
    if prediction:
        tests.append((f"{prediction} (prediction)", lambda w: w["prediction"]))
    rows = []
    for column, test_of in tests:
        marks, drifted = [], []
        for w in windows:
            test = test_of(w)
            if not test or not test["current_rows"]:
                marks.append("[dim].[/dim]")
            elif w["verdict"] == "not_enough_data":
                marks.append("[yellow]?[/yellow]")
            elif test["drifted"]:
                marks.append("[red]X[/red]")
                drifted.append(w["start"])
            else:
                marks.append("[green]o[/green]")
        first = _time(drifted[0], step_ms) if drifted else "-"
        rows.append([column, "".join(marks), f"{len(drifted)} of {len(windows)}", first])
    title = (
        f"{name}: drift per {fmt_duration(step_ms // 1000)} over the last "
        f"{_span_text(window, since)}, from {_time(found.start, step_ms)} UTC, a mark per window"
    )
    console.print(fitted_table(SERIES_COLUMNS, rows, title=title))
    console.print(
        "[green]o[/green] no drift  [red]X[/red] drift  [yellow]?[/yellow] too few rows for a "
        "verdict  [dim].[/dim] no predictions"
    )


SERIES_COLUMNS = [
    Column("column", fold=True),
    Column("windows, oldest first"),
    Column("drifted", numeric=True, priority=1),
    Column("first drift", priority=2),
]


def _p_value(value: float | None) -> str:
    """Small p-values stay readable (4.9e-57, not 0.0000)."""
    if value is None:
        return "-"
    return f"{value:.4f}" if value >= 0.001 or value == 0 else f"{value:.1e}"


DRIFT_COLUMNS = [
    Column("column", fold=True),
    Column("kind", priority=3),
    Column("method", priority=2),
    Column("statistic", numeric=True, priority=1),
    Column("p-value", numeric=True),
    Column("threshold", numeric=True, priority=2),
    Column("verdict"),
]
LEVEL_STYLES = {
    "drift": "red",
    "warn": "yellow",
    "ok": "green",
    "not_enough_data": "yellow",
    "no_data": "dim",
}


def _print_drift(report: DriftReport, since: str) -> None:
    binned = ", on five-minute summaries" if report.mode == "binned" else ""
    title = (
        f"{report.deployment}: drift over the last {since} "
        f"({report.predictions:,} predictions{binned}; reference "
        f"{report.reference['rows']:,} rows)"
    )
    verdict = report.verdict
    enough = verdict["level"] not in ("not_enough_data", "no_data")
    rows = []
    tested = list(report.columns)
    if prediction := report.prediction:
        tested.append({**prediction, "column": f"{prediction['column']} (prediction)"})
    for c in tested:
        if not c["current_rows"]:
            said = "[dim]no data[/dim]"
        elif not enough:
            said = "[yellow]not enough data[/yellow]"
        else:
            said = _verdict(c["drifted"])
        rows.append(
            [
                c["column"],
                c["kind"],
                c["method"],
                # A test's own statistic (D, chi-square, z) or the distance; then the p-value.
                fmt_num(
                    c.get("distance") if c.get("p_value") is None else c.get("test_statistic"), 4
                ),
                _p_value(c.get("p_value")),
                fmt_num(c["threshold"], 3),
                said,
            ]
        )
    console.print(fitted_table(DRIFT_COLUMNS, rows, title=title))
    style = LEVEL_STYLES[verdict["level"]]
    dataset = report.dataset
    console.print(
        f"verdict: [{style}]{verdict['text']}[/{style}] (dataset drift when a share of "
        f"{dataset['threshold']:.2f} of the columns drift; at least {verdict['min_samples']} "
        "rows for a verdict)"
    )
    if report.missing_columns:
        err_console.print(
            "[yellow]not in the tracked inputs:[/yellow] " + ", ".join(report.missing_columns)
        )


@click.command()
@click.argument("name")
@_since_option
@_step_option
@click.option("--version", help="Only this model version.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def performance(
    ctx: click.Context,
    name: str,
    since: str | None,
    step: str | None,
    version: str | None,
    as_json: bool,
) -> None:
    """Realised (and estimated) performance of deployment NAME per window and version."""
    with make_client(ctx) as client:
        window = _fitted(client, name, since, step)
        report = client.performance(
            name,
            start_ms=window.start,
            end_ms=window.end,
            step_seconds=window.step // 1000,
            model_version=version,
        )
    if as_json:
        print_json(report)
        return
    regression = report.task == "regression"
    metrics = ["mae", "rmse", "mape", "r2"] if regression else ["accuracy", "f1_macro", "roc_auc"]
    short = {"accuracy": "acc", "f1_macro": "f1", "roc_auc": "auc"}
    headers = [
        "window (UTC)",
        "ver",
        "preds",
        "labels",
        "cover",
        *(short.get(m, m) for m in metrics),
    ]
    if not regression:
        headers.append("est. acc")
    title = (
        f"{name}: {report.task or 'no labels yet'}, the last {_span_text(window, since)} "
        f"in windows of {fmt_duration(report.step // 1000)}"
    )
    table = Table(*headers, title=title)
    table.columns[0].no_wrap = True  # a window's start stays on one line, seconds included
    for w in report.windows:
        realised = w.get("realised") or {}
        estimated = w.get("estimated") or {}
        row = [
            _time(w["start"], report.step),
            w["model_version"] or "all",
            f"{w['predictions']:,}",
            f"{w['labelled']:,}",
            fmt_num(w["label_coverage"], 2),
            *(fmt_num(realised.get(m), 4) for m in metrics),
        ]
        if not regression:
            row.append(fmt_num(estimated.get("accuracy"), 4))
        table.add_row(*row)
    console.print(table)


# -- data quality ---------------------------------------------------------------------------


@click.command()
@click.argument("name")
@_since_option
@_step_option
@click.option("--version", help="Only this model version.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.option("--csv", "as_csv", is_flag=True, help="Print CSV: one row per window and column.")
@click.pass_context
def quality(
    ctx: click.Context,
    name: str,
    since: str | None,
    step: str | None,
    version: str | None,
    as_json: bool,
    as_csv: bool,
) -> None:
    """Data quality of deployment NAME's inputs: missing values, type violations, values out
    of the reference's range, new categories, constant columns and schema, per window."""
    with make_client(ctx) as client, console.status("measuring data quality"):
        window = _fitted(client, name, since, step)
        report = client.quality(
            name,
            start_ms=window.start,
            end_ms=window.end,
            step_seconds=window.step // 1000,
            model_version=version,
        )
    if as_json:
        print_json(report)
    elif as_csv:
        print_csv(QUALITY_CSV, _quality_csv_rows(report))
    else:
        _print_quality(report, _span_text(window, since))


QUALITY_FIELDS = [
    "missing_share",
    "type_violation_share",
    "out_of_range_share",
    "new_category_share",
    "constant",
]
QUALITY_CSV = ["window_start", "window_end", "column", "kind", "count", *QUALITY_FIELDS]
QUALITY_COLUMNS = [
    Column("column", fold=True),
    Column("kind", priority=3),
    Column("values", numeric=True, priority=2),
    Column("missing", numeric=True),
    Column("bad type", numeric=True, priority=1),
    Column("out of range", numeric=True),
    Column("new categories", fold=True, min_width=10, priority=1),
    Column("constant", priority=1),
]
QUALITY_WINDOW_COLUMNS = [
    Column("window (UTC)"),
    Column("preds", numeric=True),
    Column("missing", numeric=True),
    Column("out of range", numeric=True),
    Column("new cat.", numeric=True),
    Column("problems", numeric=True, priority=1),
]


def _quality_csv_rows(report: QualityReport) -> list[list[Any]]:
    rows = []
    for w in report.windows:
        for c in w["columns"]:
            values = ["" if c[f] is None else c[f] for f in QUALITY_FIELDS]
            rows.append([w["start"], w["end"], c["column"], c["kind"], c["count"], *values])
    return rows


def _share(value: float | None) -> str:
    """A share as a percentage, red when above zero; "-" when it cannot be known."""
    if value is None:
        return "-"
    text = f"{value:.1%}" if value >= 0.001 or value == 0 else f"{value:.2%}"
    return f"[red]{text}[/red]" if value > 0 else text


def _print_quality(report: QualityReport, since: str) -> None:
    modes = {"binned": ", on five-minute summaries", "scan": ", read in chunks"}
    total = report.total
    reference = report.reference
    title = (
        f"{report.deployment}: data quality over the last {since} "
        f"({total['predictions']:,} predictions{modes.get(report.mode or '', '')}; "
        + (f"reference {reference['rows']:,} rows)" if reference else "no reference data)")
    )
    rows = []
    for c in total["columns"]:
        new = _share(c["new_category_share"])
        if c["top_new_categories"]:
            new += " " + ", ".join(str(t["value"]) for t in c["top_new_categories"][:3])
        rows.append(
            [
                c["column"],
                c["kind"],
                f"{c['count']:,}",
                _share(c["missing_share"]),
                _share(c["type_violation_share"]),
                _share(c["out_of_range_share"]),
                new,
                "[red]yes[/red]" if c["constant"] else "no",
            ]
        )
    console.print(fitted_table(QUALITY_COLUMNS, rows, title=title))
    if len(report.windows) > 1:
        window_rows = [
            [
                _time(w["start"], report.step),
                f"{w['predictions']:,}",
                _share(w["missing_share"]),
                _share(w["out_of_range_share"]),
                _share(w["new_category_share"]),
                str(w["problems"]),
            ]
            for w in report.windows
        ]
        step = fmt_duration(report.step // 1000)
        console.print(
            fitted_table(
                QUALITY_WINDOW_COLUMNS, window_rows, title=f"worst column per {step} window"
            )
        )
    schema = total["schema"]
    if schema["unexpected_columns"]:
        err_console.print(
            "[yellow]not in the reference:[/yellow] " + ", ".join(schema["unexpected_columns"])
        )
    if schema["absent_columns"]:
        err_console.print(
            "[yellow]never in the tracked inputs:[/yellow] " + ", ".join(schema["absent_columns"])
        )
    if report.note:
        err_console.print(f"[yellow]{report.note}[/yellow]")


# -- alerts ---------------------------------------------------------------------------------


@click.group()
def alerts() -> None:
    """Alert rules on technical, drift and performance metrics; their events."""


@alerts.command("create")
@click.argument("deployment")
@click.argument("rule_name", metavar="NAME")
@click.option("--metric", required=True, help="e.g. performance.accuracy (see 'alerts metrics').")
@click.option(
    "--when",
    "comparison",
    type=click.Choice(["gt", "ge", "lt", "le"]),
    required=True,
    help="Fire while metric <when> threshold.",
)
@click.option("--threshold", type=float, required=True)
@click.option("--window", default="1h", show_default=True, help="Trailing window.")
@click.option(
    "--min-samples",
    type=int,
    help="Fewer samples in the window decide nothing. Default: 1 for technical metrics, "
    "30 for drift, performance and quality ones.",
)
@click.option("--cooldown", default="15m", show_default=True, help="Quiet time after firing.")
@click.option("--webhook", help="URL that receives firing and resolved events (JSON POST).")
@click.option("--secret", envvar="MODELDECK_WEBHOOK_SECRET", help="Key signing the webhook.")
@click.option("--slack", "slack_url", help="Slack incoming-webhook URL.")
@click.option("--teams", "teams_url", help="Microsoft Teams (or Workflows) webhook URL.")
@click.option(
    "--email",
    "emails",
    multiple=True,
    help="E-mail recipient (repeatable; needs MODELDECK_SMTP_HOST).",
)
@click.option(
    "--pagerduty",
    "routing_key",
    envvar="MODELDECK_PAGERDUTY_ROUTING_KEY",
    help="PagerDuty Events API v2 integration (routing) key.",
)
@click.option(
    "--pagerduty-severity",
    type=click.Choice(["critical", "error", "warning", "info"]),
    default="error",
    show_default=True,
)
@click.pass_context
def alerts_create(
    ctx: click.Context,
    deployment: str,
    rule_name: str,
    metric: str,
    comparison: str,
    threshold: float,
    window: str,
    min_samples: int | None,
    cooldown: str,
    webhook: str | None,
    secret: str | None,
    slack_url: str | None,
    teams_url: str | None,
    emails: tuple[str, ...],
    routing_key: str | None,
    pagerduty_severity: str,
) -> None:
    """Create alert rule NAME on DEPLOYMENT, sending its events to the channels given."""
    channels: list[dict[str, Any]] = []
    if slack_url:
        channels.append({"type": "slack", "url": slack_url})
    if teams_url:
        channels.append({"type": "teams", "url": teams_url})
    if emails:
        channels.append({"type": "email", "to": list(emails)})
    if routing_key:
        channels.append(
            {"type": "pagerduty", "routing_key": routing_key, "severity": pagerduty_severity}
        )
    with make_client(ctx) as client:
        rule = client.create_alert_rule(
            name=rule_name,
            deployment=deployment,
            metric=metric,
            comparison=comparison,
            threshold=threshold,
            window_seconds=int(duration_seconds(window)),
            min_samples=min_samples,
            cooldown_seconds=int(duration_seconds(cooldown)),
            webhook_url=webhook,
            webhook_secret=secret,
            channels=channels,
        )
    console.print(f"created alert rule {rule['name']} on {rule['deployment']}")


@alerts.command("test")
@click.argument("deployment")
@click.argument("rule_name", metavar="NAME")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def alerts_test(ctx: click.Context, deployment: str, rule_name: str, as_json: bool) -> None:
    """Send a test event to each channel of alert rule NAME now (exit 1 if one fails)."""
    with make_client(ctx) as client:
        results = client.test_alert_rule(deployment, rule_name)
    if as_json:
        print_json(results)
    else:
        table = Table("channel", "target", "result", "attempts", "error")
        for r in results:
            ok = r.status == "delivered"
            table.add_row(
                r.channel,
                r.target,
                "[green]delivered[/green]" if ok else "[red]failed[/red]",
                str(r.attempts),
                r.error or "",
            )
        console.print(table)
    if any(r.status != "delivered" for r in results):
        raise SystemExit(1)


def _deployment_argument(command: Any) -> Any:
    """An optional DEPLOYMENT argument, as ``alerts create`` takes it, and the ``--deployment``
    option these commands took before (still accepted)."""
    command = click.argument("deployment", required=False)(command)
    return click.option(
        "--deployment", "deployment_option", help="Same as the DEPLOYMENT argument.", hidden=True
    )(command)


def _one_deployment(argument: str | None, option: str | None) -> str | None:
    if argument and option and argument != option:
        raise click.UsageError(f"two deployments given: {argument!r} and --deployment {option!r}")
    return argument or option


@alerts.command("list")
@_deployment_argument
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def alerts_list(
    ctx: click.Context, deployment: str | None, deployment_option: str | None, as_json: bool
) -> None:
    """List alert rules and whether they are firing (of DEPLOYMENT only, when given)."""
    deployment = _one_deployment(deployment, deployment_option)
    with make_client(ctx) as client:
        rules = client.alert_rules(deployment)
    if as_json:
        print_json(rules)
        return
    table = Table("deployment", "name", "condition", "window", "state", "last value")
    symbols = {"gt": ">", "ge": ">=", "lt": "<", "le": "<="}
    for r in rules:
        state = r.state
        table.add_row(
            r.deployment,
            r.name,
            f"{r.metric} {symbols[r.comparison]} {r.threshold:g}",
            f"{r.window_seconds} s",
            "[red]firing[/red]" if state.get("firing") else "ok",
            fmt_num(state.get("last_value"), 4),
        )
    console.print(table)


@alerts.command("delete")
@click.argument("deployment")
@click.argument("rule_name", metavar="NAME")
@click.pass_context
def alerts_delete(ctx: click.Context, deployment: str, rule_name: str) -> None:
    """Delete alert rule NAME of DEPLOYMENT (and its events)."""
    with make_client(ctx) as client:
        client.delete_alert_rule(deployment, rule_name)
    console.print(f"deleted alert rule {rule_name}")


@alerts.command("events")
@_deployment_argument
@click.option("--since", default="7d", show_default=True)
@click.option("--limit", default=50, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def alerts_events(
    ctx: click.Context,
    deployment: str | None,
    deployment_option: str | None,
    since: str,
    limit: int,
    as_json: bool,
) -> None:
    """Alert events, newest first (of DEPLOYMENT only, when given)."""
    deployment = _one_deployment(deployment, deployment_option)
    start, _ = _window(since)
    with make_client(ctx) as client:
        events = client.alert_events(deployment, start, limit)
    if as_json:
        print_json(events)
        return
    table = Table("time", "rule", "event", "message", "webhook")
    for e in events:
        delivery = e.delivery or {}
        table.add_row(
            _time(e.ts),
            e.rule,
            "[red]firing[/red]" if e.kind == "firing" else "[green]resolved[/green]",
            e.message,
            delivery.get("status", "-"),
        )
    console.print(table)


@alerts.command("evaluate")
@click.pass_context
def alerts_evaluate(ctx: click.Context) -> None:
    """Evaluate every rule now (instead of waiting for the schedule)."""
    with make_client(ctx) as client:
        events = client.evaluate_alerts()
    for e in events:
        console.print(f"{e.kind}: {e.rule}: {e.message}")
    if not events:
        console.print("no rule changed state")


@alerts.command("metrics")
def alerts_metrics() -> None:
    """The metrics a rule can watch."""
    from modeldeck.monitoring.alerts.rules import METRIC_NAMES

    table = Table("metric", "meaning")
    for name, doc in METRIC_NAMES.items():
        table.add_row(name, doc)
    console.print(table)


# -- report ---------------------------------------------------------------------------------


@click.command()
@click.argument("name")
@_since_option
@click.option(
    "--step",
    help="Performance window size (default: a readable step giving 12 to 60 windows).",
)
@click.option("--version", help="Only this model version.")
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, writable=True, path_type=Path),
    default=Path("report.html"),
    show_default=True,
)
@click.pass_context
def report(
    ctx: click.Context,
    name: str,
    since: str | None,
    step: str | None,
    version: str | None,
    output: Path,
) -> None:
    """Write a self-contained HTML report of NAME's drift, performance and data quality."""
    from modeldeck.client import ApiError
    from modeldeck.monitoring.report import render_report

    with make_client(ctx) as client, console.status("building the report"):
        window = _fitted(client, name, since, step)
        start, end = window.start, window.end
        try:
            drift_report: dict[str, Any] | None = client.drift(
                name, start_ms=start, end_ms=end, model_version=version
            ).model_dump(mode="json")
        except ApiError as exc:
            if exc.status_code != 404 or "reference" not in str(exc):
                raise
            err_console.print(f"[yellow]no drift section:[/yellow] {exc.message}")
            drift_report = None
        perf = client.performance(
            name,
            start_ms=start,
            end_ms=end,
            step_seconds=window.step // 1000,
            model_version=version,
        )
        quality_report = client.quality(name, start_ms=start, end_ms=end, model_version=version)
    output.write_text(
        render_report(
            drift_report,
            perf.model_dump(mode="json"),
            quality=quality_report.model_dump(mode="json"),
        ),
        encoding="utf-8",
    )
    console.print(f"wrote {output} ({output.stat().st_size / 1e6:.1f} MB)")


# -- Cloudera ML compatibility --------------------------------------------------------------


@click.group()
def compat() -> None:
    """Cloudera ML compatibility modules (cdsw, cml.metrics_v1, cml.models_v1, cmlapi)."""


@compat.command("path")
def compat_path() -> None:
    """Print the directory to put on PYTHONPATH so that `import cdsw` finds modeldeck's."""
    import modeldeck.compat

    click.echo(modeldeck.compat.path())


COMMANDS: list[click.Command] = [
    reference,
    monitoring,
    drift,
    performance,
    quality,
    alerts,
    report,
    compat,
]
"""The top-level commands this module adds to ``modeldeck``."""
