"""Reference documentation generated from the code, so that it cannot drift."""

from __future__ import annotations

import click
from pydantic_settings import BaseSettings

from modeldeck.config import ClientSettings, Settings


def _env_name(cls: type[BaseSettings], field_name: str) -> str:
    field = cls.model_fields[field_name]
    alias = field.validation_alias
    choices = getattr(alias, "choices", None)
    if choices:
        return str(choices[0])
    return f"{cls.model_config.get('env_prefix', '')}{field_name}".upper()


def settings_rows() -> list[tuple[str, str, str]]:
    """(environment variable, default, help) for every setting of server and client."""
    rows = []
    seen = set()
    for cls in (Settings, ClientSettings):
        for name, field in cls.model_fields.items():
            env = _env_name(cls, name)
            if env in seen:
                continue
            seen.add(env)
            default = "" if field.default is None else str(field.default)
            help_text = " ".join((field.description or "").split())
            rows.append((env, default, help_text))
    return rows


def settings_markdown() -> str:
    lines = [
        "| variable | default | meaning |",
        "| --- | --- | --- |",
    ]
    for env, default, help_text in settings_rows():
        shown = f"`{default}`" if default else ""
        escaped = help_text.replace("|", "\\|")
        lines.append(f"| `{env}` | {shown} | {escaped} |")
    return "\n".join(lines)


def cli_markdown(main: click.Command) -> str:
    """Every command's ``--help`` under ``main`` (the ``modeldeck`` command), in command order,
    as Markdown."""

    sections: list[str] = []

    def walk(command: click.Command, path: list[str], parent: click.Context | None) -> None:
        ctx = click.Context(command, info_name=path[-1], parent=parent, terminal_width=100)
        sections.append(f"### `{' '.join(path)}`\n\n```text\n{command.get_help(ctx)}\n```\n")
        if isinstance(command, click.Group):
            for name in command.list_commands(ctx):
                sub = command.get_command(ctx, name)
                if sub is not None:
                    walk(sub, [*path, name], ctx)

    walk(main, ["modeldeck"], None)
    return "\n".join(sections)
