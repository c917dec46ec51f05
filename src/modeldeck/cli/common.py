"""What every ``modeldeck`` command shares: the consoles, the client from the root options,
one-line errors, the parsing of durations and JSON arguments, and the platform's settings for
the commands that work on this machine's store."""

from __future__ import annotations

import csv
import io
import json
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import click
from pydantic import ValidationError
from pydantic_core import to_jsonable_python
from rich.console import Console
from rich.table import Table
from rich.text import Text

from modeldeck.client import ApiError, Client
from modeldeck.config import Settings
from modeldeck.errors import ModeldeckError

console = Console()
err_console = Console(stderr=True)
ENV_MANAGERS = ["local", "uv", "virtualenv"]


@dataclass(frozen=True)
class Column:
    """A column of a table that fits the terminal (:func:`fitted_table`).

    ``priority``: 0 is never dropped; when the table is too wide, the highest numbers go first.
    ``fold``: text that may wrap onto more lines (names, URLs) down to ``min_width``; other
    cells (numbers, times, statuses) are shown whole or not at all, never cut.
    """

    header: str
    priority: int = 0
    fold: bool = False
    numeric: bool = False
    min_width: int = 12


def fitted_table(
    columns: Sequence[Column],
    rows: Sequence[Sequence[str]],
    *,
    title: str | None = None,
    width: int | None = None,
) -> Table:
    """A rich table that fits ``width`` (the terminal's; ``COLUMNS`` when set) by folding text
    columns and then dropping whole columns by priority, never by cutting a number short. The
    caption names the columns left out; ``--json`` (and ``--csv``) print everything."""
    width = width or console.size.width
    needed = [
        max([Text.from_markup(c.header).cell_len] + [Text.from_markup(r[i]).cell_len for r in rows])
        for i, c in enumerate(columns)
    ]
    least = [
        min(n, max(c.min_width, Text.from_markup(c.header).cell_len)) if c.fold else n
        for c, n in zip(columns, needed, strict=True)
    ]
    kept = list(range(len(columns)))

    def too_wide() -> bool:
        return sum(least[i] for i in kept) + 3 * len(kept) + 1 > width

    while too_wide():
        droppable = [i for i in kept if columns[i].priority > 0]
        if not droppable:
            break
        kept.remove(max(droppable, key=lambda i: (columns[i].priority, i)))
    dropped = [columns[i].header for i in range(len(columns)) if i not in kept]
    caption = (
        f"not shown at this width: {', '.join(dropped)} (--json shows every column)"
        if dropped
        else None
    )
    table = Table(title=title, caption=caption, caption_justify="left")
    for i in kept:
        column = columns[i]
        table.add_column(
            column.header,
            justify="right" if column.numeric else "left",
            no_wrap=not column.fold,
            overflow="fold" if column.fold else "ignore",
            min_width=least[i],
        )
    for row in rows:
        table.add_row(*(row[i] for i in kept))
    return table


def make_client(ctx: click.Context) -> Client:
    obj = ctx.ensure_object(dict)
    try:
        return Client(obj.get("url"), obj.get("api_key"), timeout=obj.get("timeout"))
    except ValidationError as exc:  # a MODELDECK_* variable the client cannot use
        first = exc.errors()[0]
        name = "MODELDECK_" + "_".join(str(p) for p in first["loc"]).upper()
        raise click.ClickException(f"{name}: {first['msg']}") from None


def platform_settings(**overrides: Any) -> Settings:
    """The platform's settings (``MODELDECK_*``) with the options given, its data directory
    checked to be writable."""
    values = {k: v for k, v in overrides.items() if v is not None}
    settings = Settings(**values)
    from modeldeck.store.db import ensure_writable_dir

    ensure_writable_dir(settings.data_dir)  # a clear one-line error, not a traceback
    return settings


def print_json(value: Any) -> None:
    """``value`` as the API's JSON: views (and lists or dicts of them) as their answer."""
    click.echo(json.dumps(to_jsonable_python(value, fallback=str), indent=2))


def fail(exc: ModeldeckError) -> click.ClickException:
    return click.ClickException(str(exc) if isinstance(exc, ApiError) else exc.message)


class Group(click.Group):
    """Turns platform errors into one-line messages instead of tracebacks."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except ModeldeckError as exc:
            raise fail(exc) from None


def since_ms(since: str | None, start: int | None) -> int:
    if start is not None:
        return start
    if not since:
        return 0
    return int(time.time() * 1000) - int(duration_seconds(since) * 1000)


def step_duration_seconds(text: str) -> int:
    """A step as a duration (``30s``, ``5m``, ``1d``) or, as before, whole seconds (``60``)."""
    seconds = float(text) if text.isdigit() else duration_seconds(text)
    if seconds < 1 or seconds != int(seconds):
        raise click.BadParameter(f"expected a step of whole seconds like 30s, 5m, 1d; got {text!r}")
    return int(seconds)


def fmt_duration(seconds: int) -> str:
    """60 -> 1m, 86400 -> 1d, 90 -> 90s: the largest unit that divides evenly."""
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds and seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def print_csv(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
    """Every row, unformatted, as CSV on stdout (None is an empty cell)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(["" if v is None else v for v in row] for row in rows)
    click.echo(out.getvalue(), nl=False)


def duration_seconds(text: str) -> float:
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
    number, unit = text[:-1], text[-1:]
    if unit not in units or not number.replace(".", "", 1).isdigit():
        raise click.BadParameter(f"expected a duration like 30m, 1h, 7d; got {text!r}")
    return float(number) * units[unit]


def fmt_num(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def json_object(text: str, hint: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise click.BadParameter(f"not valid JSON: {exc}", param_hint=hint) from None
    if not isinstance(value, dict):
        raise click.BadParameter("expected a JSON object", param_hint=hint)
    return value
