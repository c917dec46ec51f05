"""``modeldeck models``: registered models, read from MLflow through the platform."""

from __future__ import annotations

import click
from rich.table import Table

from modeldeck.cli.common import Column, console, fitted_table, make_client, print_csv, print_json


@click.group()
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
            m.name,
            m.latest_version or "-",
            ", ".join(f"@{a}→{v}" for a, v in sorted(m.aliases.items())),
            m.description or "",
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
    before = moved.previous_version or "unset"
    console.print(f"{name}@{alias}: {before} -> {moved.version}")


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
    console.print(f"[bold]{model.name}[/bold] {model.description}")
    table = Table("version", "status", "aliases", "run", "metrics", "created")
    for v in model.versions:
        metrics = ", ".join(f"{k}={val:.4g}" for k, val in sorted(v.run_metrics.items()))
        table.add_row(
            v.version,
            v.status,
            ", ".join(v.aliases),
            (v.run_id or "")[:12],
            metrics,
            v.created_at or "",
        )
    console.print(table)


COMMANDS: list[click.Command] = [models]
