"""The shipped Grafana dashboard and Prometheus rules against what ``/metrics`` really exposes.

A real platform (on each store) serves the registered Iris model, takes simulated traffic with
ground truth, and refreshes its drift and performance gauges; every metric a dashboard panel,
a template variable or an alerting rule queries must then be a series on ``/metrics``, with the
labels the query uses, and a sample for the deployment. ``promtool check rules`` checks the
rules, and the panels' expressions as recording rules (CI installs Debian's ``prometheus``).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from click.testing import CliRunner
from prometheus_client.parser import text_string_to_metric_families

from modeldeck.cli.main import main
from modeldeck.monitoring.assets import GRAFANA_DASHBOARD, PROMETHEUS_RULES
from modeldeck.monitoring.gauges import QualityView
from modeldeck.monitoring.prometheus import QualityCollector
from modeldeck.simulate import simulate
from tests.conftest import BACKENDS, Registered, platform_on
from tests.fixtures import wait_for

pytestmark = pytest.mark.integration

NAME = "graf"
SELECTOR = re.compile(r"\b(modeldeck_\w+|up)\b(?:\{([^}]*)\})?")
MATCHER = re.compile(r"(\w+)\s*(?:=~|!~|!=|=)")
GROUPING = re.compile(r"\b(?:by|on|without|ignoring)\s*\(([^)]*)\)")
PROMETHEUS_OWN = {"up"}  # made by Prometheus itself, never on /metrics
GAUGES = (
    "modeldeck_model_performance",
    "modeldeck_model_estimated_performance",
    "modeldeck_drift_columns_drifted_ratio",
    "modeldeck_label_lag_seconds",
    "modeldeck_data_quality_ratio",
)


@pytest.fixture(scope="module", params=BACKENDS)
def exposed(
    request: pytest.FixtureRequest,
    mlflow_registry: Registered,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[dict[str, dict[frozenset[str], set[str]]]]:
    """``/metrics`` of a platform whose deployment had traffic and labels: for each sample
    name, the label-name sets it comes with, and the deployments it has samples for."""
    data_dir = tmp_path_factory.mktemp(f"graf-{request.param}")
    settings = {
        "MODELDECK_QUALITY_GAUGES_INTERVAL_SECONDS": "0.5",
        "MODELDECK_SUMMARY_INTERVAL_SECONDS": "1",
    }
    with platform_on(
        request, request.param, data_dir, mlflow_registry.tracking_uri, **settings
    ) as running:
        client = running.client()
        key = client.deploy(NAME, "iris", version=1, replicas=1)["access_key"]
        client.wait(NAME, timeout=120)
        result = simulate(
            client, NAME, requests=80, seed=1, source="reference", labels="reference",
            access_key=key,
        )  # fmt: skip
        assert result.ok == 80, result.errors
        # A refused request: the failure panels' status codes exist too.
        bad = httpx.post(f"{running.url}/deployments/{NAME}/predict", json={"inputs": "x"},
                         headers={"Authorization": f"Bearer {key}"})  # fmt: skip
        assert bad.status_code >= 400

        def gauges() -> str | None:
            text = httpx.get(f"{running.url}/metrics").text
            lines = text.splitlines()
            complete = all(
                any(line.startswith(f"{g}{{") and f'deployment="{NAME}"' in line for line in lines)
                for g in GAUGES
            )
            return text if complete else None

        yield _series(wait_for(gauges, timeout=120))


def _series(text: str) -> dict[str, dict[frozenset[str], set[str]]]:
    out: dict[str, dict[frozenset[str], set[str]]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            by_labels = out.setdefault(sample.name, {})
            by_labels.setdefault(frozenset(sample.labels), set()).add(
                sample.labels.get("deployment", "")
            )
    return out


def _dashboard() -> dict[str, Any]:
    return json.loads(GRAFANA_DASHBOARD.read_text())


def _panel_exprs(dashboard: dict[str, Any]) -> list[tuple[str, str]]:
    return [
        (panel["title"], target["expr"])
        for panel in dashboard["panels"]
        for target in panel.get("targets", [])
    ]


def _rule_exprs() -> list[tuple[str, str]]:
    rules = yaml.safe_load(PROMETHEUS_RULES.read_text())
    return [(r["alert"], r["expr"]) for g in rules["groups"] for r in g["rules"]]


def _problems(
    where: str, expr: str, exposed: dict[str, dict[frozenset[str], set[str]]]
) -> list[str]:
    """What ``expr`` queries that ``/metrics`` does not have."""
    problems = []
    used: set[str] = set()
    names = []
    for match in SELECTOR.finditer(expr):
        name, matchers = match.group(1), match.group(2) or ""
        if name in PROMETHEUS_OWN:
            continue
        names.append(name)
        if name not in exposed:
            problems.append(f"{where}: no series {name}")
            continue
        labels = set().union(*exposed[name])
        wanted = set(MATCHER.findall(matchers))
        used |= wanted
        if not wanted <= labels:
            problems.append(f"{where}: {name} has no label {sorted(wanted - labels)}")
        if not any(NAME in deployments for deployments in exposed[name].values()):
            problems.append(f"{where}: {name} has no sample for deployment {NAME!r}")
    if not names:
        return problems
    # Labels grouped or joined on are those of the series queried (le: of the buckets).
    known = set().union(*(set().union(*exposed.get(n, {frozenset(): set()})) for n in names))
    for grouping in GROUPING.findall(expr):
        for label in filter(None, (x.strip() for x in grouping.split(","))):
            if label not in known:
                problems.append(f"{where}: no queried series has label {label!r}")
    return problems


def test_every_panel_queries_series_that_metrics_exposes(
    exposed: dict[str, dict[frozenset[str], set[str]]],
) -> None:
    dashboard = _dashboard()
    exprs = _panel_exprs(dashboard)
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    for name in ("deployment", "replica"):
        query = variables[name]["query"]["query"]
        inner = re.fullmatch(r"label_values\((.+), (\w+)\)", query)
        assert inner is not None, query
        exprs.append((f"variable {name}", inner.group(1)))
    problems = [p for where, expr in exprs for p in _problems(where, expr, exposed)]
    assert problems == []


def test_every_rule_queries_series_that_metrics_exposes(
    exposed: dict[str, dict[frozenset[str], set[str]]],
) -> None:
    problems = [p for alert, expr in _rule_exprs() for p in _problems(alert, expr, exposed)]
    assert problems == []


def test_the_checks_catch_a_series_that_does_not_exist(
    exposed: dict[str, dict[frozenset[str], set[str]]],
) -> None:
    assert _problems("p", "rate(modeldeck_request_total[5m])", exposed) == [
        "p: no series modeldeck_request_total"
    ]
    assert _problems("p", 'modeldeck_replicas{code="500"}', exposed) == [
        "p: modeldeck_replicas has no label ['code']"
    ]
    assert _problems("p", "sum by (metric) (modeldeck_label_lag_seconds)", exposed) == [
        "p: no queried series has label 'metric'"
    ]


def test_the_dashboard_has_the_technical_charts_and_the_gauges() -> None:
    dashboard = _dashboard()
    titles = {p["title"] for p in dashboard["panels"]}
    technical = {
        "Requests per second", "Total requests", "Failed requests per second", "Response time",
        "CPU per replica", "Memory per replica", "Request size", "Response size",
    }  # fmt: skip
    assert technical <= titles
    assert {"Drifted columns", "Realised performance", "Estimated performance"} <= titles
    assert "Data quality (worst column)" in titles
    types = {p["title"]: p["type"] for p in dashboard["panels"]}
    assert types["Drifted columns"] == types["Realised performance"] == "gauge"
    names = [v["name"] for v in dashboard["templating"]["list"]]
    assert names == ["datasource", "deployment", "replica"]
    for panel in dashboard["panels"]:
        if panel["type"] != "row":
            assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
            assert all('deployment=~"$deployment"' in t["expr"] for t in panel["targets"])
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))


def test_promtool_accepts_the_rules_and_the_panels(tmp_path: Path) -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        message = "no promtool: install Debian's package (`apt-get install prometheus`)"
        if os.environ.get("CI"):
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    checked = subprocess.run(
        [promtool, "check", "rules", str(PROMETHEUS_RULES)], capture_output=True, text=True
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert f"SUCCESS: {len(_rule_exprs())} rules found" in checked.stdout
    # The panels' PromQL, with Grafana's variables filled in, as recording rules.
    grafana = {"$__rate_interval": "1m", "$__range": "6h", "$deployment": ".*", "$replica": ".*"}
    rules = []
    for i, (_, expr) in enumerate(_panel_exprs(_dashboard())):
        for variable, value in grafana.items():
            expr = expr.replace(variable, value)
        rules.append({"record": f"modeldeck:panel_{i}", "expr": expr})
    path = tmp_path / "panels.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "panels", "rules": rules}]}))
    checked = subprocess.run(
        [promtool, "check", "rules", str(path)], capture_output=True, text=True
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_the_cli_prints_the_shipped_files() -> None:
    runner = CliRunner()
    dashboard = runner.invoke(main, ["grafana", "dashboard"])
    assert dashboard.exit_code == 0, dashboard.output
    assert json.loads(dashboard.output) == _dashboard()
    rules = runner.invoke(main, ["prometheus", "rules"])
    assert rules.exit_code == 0 and yaml.safe_load(rules.output)["groups"]
    path = runner.invoke(main, ["prometheus", "rules", "--path"])
    assert Path(path.output.strip()) == PROMETHEUS_RULES and PROMETHEUS_RULES.is_file()


def test_data_quality_is_exported_per_column_and_problem(
    exposed: dict[str, dict[frozenset[str], set[str]]],
) -> None:
    series = exposed["modeldeck_data_quality_ratio"]
    assert set(series) == {frozenset({"deployment", "column", "problem"})}
    assert NAME in next(iter(series.values()))
    assert NAME in exposed["modeldeck_data_quality_unexpected_columns"][frozenset({"deployment"})]


def test_the_quality_collector_reads_the_snapshot() -> None:
    view = QualityView(
        "d", computed_at_ms=1_000, window_ms=60_000, predictions=4,
        quality={("colour", "new_category"): 0.25, ("width", "missing"): 0.0},
        unexpected_columns=1,
    )  # fmt: skip
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in QualityCollector(lambda: [view]).collect()
        for s in family.samples
    }
    labels = (("column", "colour"), ("deployment", "d"), ("problem", "new_category"))
    assert samples[("modeldeck_data_quality_ratio", labels)] == 0.25
    labels = (("column", "width"), ("deployment", "d"), ("problem", "missing"))
    assert samples[("modeldeck_data_quality_ratio", labels)] == 0.0
    assert samples[("modeldeck_data_quality_unexpected_columns", (("deployment", "d"),))] == 1
