"""``modeldeck simulate``: synthetic traffic and delayed ground truth, over
:mod:`modeldeck.simulate`."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
from click.core import ParameterSource
from rich.table import Table

from modeldeck.cli.common import console, duration_seconds, err_console, make_client, print_json

if TYPE_CHECKING:
    from modeldeck.simulate import Progress, Result


@click.command()
@click.argument("name")
@click.option("--requests", "n_requests", type=click.IntRange(min=1), help="Requests to send.")
@click.option(
    "--duration", help="Or send for this long: 30s, 5m ... (with --requests: whichever ends first)."
)
@click.option(
    "--rate",
    type=click.FloatRange(min=0, min_open=True),
    help="Target requests per second (default: as fast as --concurrency allows).",
)
@click.option(
    "--concurrency",
    default=4,
    show_default=True,
    type=click.IntRange(1, 256),
    help="Requests in flight at most.",
)
@click.option(
    "--seed",
    type=click.IntRange(min=0),
    help="Same seed, same requests and labels (default: a random seed, printed).",
)
@click.option(
    "--source",
    type=click.Choice(["uniform", "reference", "file"]),
    default="uniform",
    show_default=True,
    help="uniform: each feature uniform within its reference range; reference: reference rows "
    "drawn with replacement; file: the rows of --file in order, cycling.",
)
@click.option(
    "--file",
    "file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="CSV or Parquet file for --source file.",
)
@click.option(
    "--drift",
    "drifts",
    multiple=True,
    metavar="COLUMN:SPEC",
    help="Drift one feature (repeatable): 'petal_length:shift=2', 'age:scale=1.5,shift=-3', "
    "'colour:weights=red=3,blue=1'; 'age:missing=0.2' sends a share of its values as null "
    "(a data-quality fault).",
)
@click.option(
    "--drift-start",
    default="0",
    show_default=True,
    help="Request from which --drift applies: an index (500) or a share of the run (0.5, 50%).",
)
@click.option(
    "--labels",
    help="Ground truth to send: reference (the reference row's target), model (the deployed "
    "model, loaded here from MLFLOW_TRACKING_URI), file:COLUMN, or rule:EXPR, e.g. "
    "'rule:petal_length > 2.45' (default: none).",
)
@click.option(
    "--label-noise",
    type=click.FloatRange(0, 1),
    default=0.0,
    show_default=True,
    help="Share of labels replaced by another class (regression: gaussian noise of this many "
    "label standard deviations).",
)
@click.option(
    "--flip-after",
    help="Request from which every label moves to the next class (concept drift): an index "
    "or a share of the run.",
)
@click.option(
    "--label-delay",
    default="0s",
    show_default=True,
    help="Send each label this long after its prediction's answer: 0s, 30s, 5m ...",
)
@click.option(
    "--label-key",
    default="actual_result",
    show_default=True,
    help="Delayed-metric key of the labels.",
)
@click.option(
    "--access-key",
    envvar="MODELDECK_ACCESS_KEY",
    help="Deployment access key [env MODELDECK_ACCESS_KEY].",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON (and no progress bar).")
@click.pass_context
def simulate(
    ctx: click.Context,
    name: str,
    n_requests: int | None,
    duration: str | None,
    rate: float | None,
    concurrency: int,
    seed: int | None,
    source: str,
    file: Path | None,
    drifts: tuple[str, ...],
    drift_start: str,
    labels: str | None,
    label_noise: float,
    flip_after: str | None,
    label_delay: str,
    label_key: str,
    access_key: str | None,
    as_json: bool,
) -> None:
    """Send synthetic traffic to deployment NAME, and its ground truth after a delay.

    Runs --requests requests or for --duration, at --rate, and waits until the last label is
    sent. Then prints what was sent and how the endpoint answered.
    """
    from modeldeck import simulate as sim

    if n_requests is None and duration is None:
        raise click.UsageError("give --requests N or --duration (e.g. 60s)")
    if file is not None and ctx.get_parameter_source("source") == ParameterSource.DEFAULT:
        source = "file"
    seconds = duration_seconds(duration) if duration else None
    delay = duration_seconds(label_delay) if label_delay.strip() not in ("0", "") else 0.0
    drift_specs = [sim.FeatureDrift.parse(d) for d in drifts]
    drift_from = sim.parse_position(drift_start)
    flip_from = sim.parse_position(flip_after) if flip_after else None

    with make_client(ctx) as client:

        def run(on_progress: Callable[[Progress], None] | None) -> Result:
            return sim.simulate(
                client,
                name,
                requests=n_requests,
                duration=seconds,
                rate=rate,
                concurrency=concurrency,
                seed=seed,
                source=source,  # type: ignore[arg-type]
                file=file,
                drifts=drift_specs,
                drift_start=drift_from,
                labels=labels,
                label_noise=label_noise,
                flip_after=flip_from,
                label_delay=delay,
                label_key=label_key,
                access_key=access_key,
                on_progress=on_progress,
            )

        if as_json:
            print_json(run(None).to_dict())
            return
        with _ProgressBar(name) as bar:
            result = run(bar.update)
    _print_summary(result)


class _ProgressBar:
    """A rich progress bar on stderr: requests (or seconds) sent, then labels delivered."""

    def __init__(self, name: str) -> None:
        from rich.progress import (
            BarColumn,
            Progress,
            SpinnerColumn,
            TextColumn,
            TimeElapsedColumn,
        )

        self.name = name
        self.progress = Progress(
            SpinnerColumn(),
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            TextColumn("{task.fields[detail]}"),
            TimeElapsedColumn(),
            console=err_console,
            transient=True,
        )
        self.traffic = self.progress.add_task(f"{name}: requests", total=None, detail="")
        self.labels: Any = None

    def __enter__(self) -> _ProgressBar:
        self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()

    def update(self, p: Progress) -> None:
        failed = f", [red]{p.failed} failed[/red]" if p.failed else ""
        detail = f"{p.ok} ok{failed}"
        if p.planned is not None:
            self.progress.update(
                self.traffic, total=p.planned, completed=p.sent, detail=f"{p.sent} sent, {detail}"
            )
        elif p.duration is not None:
            self.progress.update(
                self.traffic,
                total=p.duration,
                completed=min(p.elapsed, p.duration),
                detail=f"{p.sent} sent, {detail}",
            )
        if p.phase == "traffic" and not p.labels_pending and not p.labels_sent:
            return
        total = p.labels_sent + p.labels_pending
        due = f", next in {p.next_label_in:.0f} s" if p.next_label_in else ""
        label_detail = f"{p.labels_sent}/{total} sent{due}"
        if self.labels is None:
            self.labels = self.progress.add_task(
                f"{self.name}: ground truth", total=total, detail=label_detail
            )
        self.progress.update(self.labels, total=total, completed=p.labels_sent, detail=label_detail)
        if p.phase != "traffic":
            self.progress.update(self.traffic, completed=p.sent, total=p.sent or 1)


def _print_summary(result: Result) -> None:
    latency = result.latency_ms
    table = Table(
        "sent",
        "ok",
        "failed",
        "rps",
        "p50 ms",
        "p95 ms",
        "p99 ms",
        "labels",
        title=f"{result.deployment}: {result.source} traffic, seed {result.seed}",
    )
    failed = f"[red]{result.failed}[/red]" if result.failed else "0"
    labels = f"{result.labels_sent}" + (
        f" ([red]{result.labels_failed} failed[/red])" if result.labels_failed else ""
    )
    table.add_row(
        f"{result.sent:,}",
        f"{result.ok:,}",
        failed,
        f"{result.rps:.1f}",
        *(_ms(latency[p]) for p in ("p50", "p95", "p99")),
        labels,
    )
    console.print(table)
    notes = []
    if result.drift_start is not None:
        notes.append(f"drift from request {result.drift_start}")
    if result.flip_after is not None:
        notes.append(f"labels flipped from request {result.flip_after}")
    if result.labels_sent:
        when = f"{result.label_delay:g} s after" if result.label_delay else "right after"
        notes.append(f"ground truth as {result.label_key!r}, {when} each answer")
    if notes:
        console.print("; ".join(notes))
    if result.failures:
        by_kind = ", ".join(f"{k}: {n}" for k, n in sorted(result.failures.items()))
        err_console.print(f"[red]failed requests[/red] {by_kind}")
    for error in result.errors:
        err_console.print(f"[dim]{error}[/dim]")
    console.print(f"[dim]repeat with --seed {result.seed}[/dim]")


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


COMMANDS: list[click.Command] = [simulate]
"""The top-level commands this module adds to ``modeldeck``."""
