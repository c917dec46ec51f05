"""``modeldeck keys``: the control plane's API keys."""

from __future__ import annotations

import click
from rich.table import Table

from modeldeck.cli.common import console, make_client, platform_settings, print_json


@click.group()
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

        settings = platform_settings()
        store = Store(settings.resolved_store_url())
        store.migrate()
        created = ApiKeyService(settings, store).create(key_name, scope)
        store.close()
        click.echo(created.key)
        return
    with make_client(ctx) as client:
        click.echo(client.create_api_key(key_name, scope).key)


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
            k.id,
            k.name,
            k.scope,
            k.prefix + "…",
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
        click.echo(client.rotate_api_key(key_id).key)


@keys.command("revoke")
@click.argument("key_id")
@click.pass_context
def keys_revoke(ctx: click.Context, key_id: str) -> None:
    """Revoke an API key by its id."""
    with make_client(ctx) as client:
        client.revoke_api_key(key_id)
    console.print(f"revoked {key_id}")


COMMANDS: list[click.Command] = [keys]
