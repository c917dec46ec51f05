"""``modeldeck grafana`` and ``modeldeck prometheus``: the dashboard and alerting rules the
package ships, printed (or their paths, for provisioning). They need no running platform."""

from __future__ import annotations

from pathlib import Path

import click

from modeldeck.monitoring.assets import GRAFANA_DASHBOARD, PROMETHEUS_RULES


def _print(path: Path, only_path: bool) -> None:
    click.echo(str(path) if only_path else path.read_text(encoding="utf-8"), nl=only_path)


@click.group()
def grafana() -> None:
    """The Grafana dashboard for modeldeck's /metrics."""


@grafana.command("dashboard")
@click.option("--path", "only_path", is_flag=True, help="Print the installed file's path.")
def grafana_dashboard(only_path: bool) -> None:
    """Print the dashboard JSON (import it in Grafana, or provision it from a file)."""
    _print(GRAFANA_DASHBOARD, only_path)


@click.group()
def prometheus() -> None:
    """Prometheus alerting rules for modeldeck's /metrics."""


@prometheus.command("rules")
@click.option("--path", "only_path", is_flag=True, help="Print the installed file's path.")
def prometheus_rules(only_path: bool) -> None:
    """Print the alerting rules (a rule file for Prometheus's rule_files)."""
    _print(PROMETHEUS_RULES, only_path)


COMMANDS: list[click.Command] = [grafana, prometheus]
"""The top-level commands this module adds to ``modeldeck``."""
