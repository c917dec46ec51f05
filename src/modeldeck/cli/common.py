"""What every ``modeldeck`` command shares: the consoles, the client from the root options,
one-line errors, and the parsing of durations and JSON arguments."""

from __future__ import annotations

import json
import time
from typing import Any

import click
from pydantic import ValidationError
from rich.console import Console

from modeldeck.client import ApiError, Client
from modeldeck.errors import ModeldeckError

console = Console()
err_console = Console(stderr=True)
ENV_MANAGERS = ["local", "uv", "virtualenv"]


def make_client(ctx: click.Context) -> Client:
    obj = ctx.ensure_object(dict)
    try:
        return Client(obj.get("url"), obj.get("api_key"), timeout=obj.get("timeout"))
    except ValidationError as exc:  # a MODELDECK_* variable the client cannot use
        first = exc.errors()[0]
        name = "MODELDECK_" + "_".join(str(p) for p in first["loc"]).upper()
        raise click.ClickException(f"{name}: {first['msg']}") from None


def print_json(value: Any) -> None:
    click.echo(json.dumps(value, indent=2, default=str))


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
