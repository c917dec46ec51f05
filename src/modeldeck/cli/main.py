"""The ``modeldeck`` command: a thin layer over the Python client (and, for ``server`` and
``demo``, over the platform itself). This module only assembles it: the root group and its
options here, each command group from a module of its own (``common`` holds what they share).
"""

from __future__ import annotations

import click

from modeldeck import __version__
from modeldeck.cli import (
    analysis,
    builds,
    deployments,
    exports,
    keys,
    metrics,
    models,
    server,
    simulate,
)
from modeldeck.cli.common import Group
from modeldeck.config import ClientSettings


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


for module in (server, models, deployments, metrics, keys, builds, analysis, simulate, exports):
    for command in module.COMMANDS:
        main.add_command(command)

__all__ = ["ClientSettings", "main"]


if __name__ == "__main__":
    main()
