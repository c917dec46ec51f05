"""``modeldeck builds | envs``: a deployment's isolated-environment builds and the cache of
built environments."""

from __future__ import annotations

from datetime import UTC, datetime

import click
from rich.table import Table

from modeldeck.cli.common import console, fmt_num, make_client, print_json


def _size(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


@click.command("builds")
@click.argument("name")
@click.option("--id", "build_id", help="Show one build: its packages and its log.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def builds_cmd(ctx: click.Context, name: str, build_id: str | None, as_json: bool) -> None:
    """List deployment NAME's builds (newest first), or show one with --id."""
    with make_client(ctx) as client:
        if build_id:
            found = [b for b in client.builds(name) if b.id.startswith(build_id)]
            if len(found) != 1:
                raise click.ClickException(
                    f"{len(found)} builds of {name!r} have an id starting {build_id!r}"
                )
            build = client.build(name, found[0].id)
            items = [build]
        else:
            items = client.builds(name)
    if as_json:
        print_json(items[0] if build_id else items)
        return
    table = Table("build", "reason", "version", "env", "status", "cache", "python", "seconds")
    for b in items:
        status = b.status
        colour = {"built": "green", "build failed": "red"}.get(status, "yellow")
        table.add_row(
            b.id[:8],
            b.reason,
            b.version,
            b.env_manager,
            f"[{colour}]{status}[/{colour}]",
            "hit" if b.cache_hit else ("miss" if status == "built" else "-"),
            b.python_version or "-",
            fmt_num(b.duration_seconds, 1),
        )
    console.print(table)
    if not build_id:
        return
    b = items[0]
    if b.status_message:
        console.print(b.status_message, markup=False)
    if b.model_packages:
        console.print(
            "model packages: "
            + ", ".join(f"{k}=={v}" for k, v in sorted(b.model_packages.items())),
            markup=False,
        )
    if b.environment_path:
        console.print(f"environment: {b.environment_path}", markup=False)
    if b.log:
        console.rule("log")
        console.print(b.log, markup=False, highlight=False)


@click.group()
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
        used = datetime.fromtimestamp(e.last_used_at, UTC).strftime("%Y-%m-%d %H:%M")
        table.add_row(
            e.key[:12],
            e.env_manager,
            e.python_version,
            _size(e.size_bytes),
            used,
            "yes" if e.in_use else "no",
        )
    console.print(table)


@envs.command("prune")
@click.pass_context
def envs_prune(ctx: click.Context) -> None:
    """Remove every cached environment (and downloaded model) no running replica uses."""
    with make_client(ctx) as client:
        result = client.prune_environments()
    console.print(
        f"removed {len(result.removed)} environments ({_size(result.freed_bytes)}) "
        f"and {result.models_removed} downloaded models"
    )


COMMANDS: list[click.Command] = [builds_cmd, envs]
