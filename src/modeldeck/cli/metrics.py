"""``modeldeck metrics``: model-metrics records, ground truth, aggregates and technical
metrics."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime

import click
from rich.table import Table

from modeldeck.cli.common import (
    Column,
    console,
    duration_seconds,
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


@click.group()
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
@click.option(
    "--csv",
    "as_csv",
    is_flag=True,
    help="Print the predictions as CSV, a column per tracked field (the dashboard's download).",
)
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
    as_csv: bool,
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
    if as_csv:
        from modeldeck.records.export import records_csv

        click.echo(records_csv(records), nl=False)
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
    cpu = {p["t"]: p for p in data.resources["all"]}
    if as_json:
        print_json(data)
        return
    if as_csv:
        print_csv(
            TECHNICAL_FIELDS,
            [
                [{**cpu.get(p["t"], {}), **p}.get(f) for f in TECHNICAL_FIELDS]
                for p in data.requests
            ],
        )
        return
    table = Table(
        "replica", "received", "success", "failed", title=f"{name}: requests in the last {since}"
    )
    for row in data.replicas:
        table.add_row(
            str(row["replica"]), str(row["received"]), str(row["success"]), str(row["failed"])
        )
    totals = data.totals
    table.add_row(
        "[bold]total[/bold]", str(totals["requests"]), str(totals["ok"]), str(totals["failed"])
    )
    console.print(table)
    shown = [p for p in data.requests if p["requests"] or p["t"] in cpu][-points:]
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
    title = f"every {fmt_duration(data.step // 1000)} (latest {points}, UTC)"
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
                for e in data.events[-points:]
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


COMMANDS: list[click.Command] = [metrics]
