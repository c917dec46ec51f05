"""Alert rule validation and the firing/resolving state machine."""

from __future__ import annotations

import math
from typing import Any

import pytest
from pydantic import ValidationError

from modeldeck.monitoring.alerts.rules import (
    METRIC_NAMES,
    AlertRuleSpec,
    MetricRef,
    RuleState,
    Transition,
    evaluate,
    format_window,
    parse_metric,
)

MINUTE_MS = 60_000


BASE: dict[str, Any] = {
    "name": "accuracy-low",
    "deployment": "churn",
    "metric": "performance.accuracy",
    "comparison": "lt",
    "threshold": 0.8,
}


def _spec(**overrides: Any) -> AlertRuleSpec:
    """A rule deciding on any number of samples, unless told otherwise."""
    return AlertRuleSpec.model_validate({**BASE, "min_samples": 1, **overrides})


def _defaulted(**overrides: Any) -> AlertRuleSpec:
    return AlertRuleSpec.model_validate({**BASE, **overrides})


def test_defaults() -> None:
    spec = _defaulted()
    assert (spec.window_seconds, spec.min_samples, spec.cooldown_seconds) == (3600, 30, 900)
    assert (spec.webhook_url, spec.webhook_secret, spec.enabled, spec.description) == (
        None, None, True, ""
    )  # fmt: skip
    assert spec.metric_ref == MetricRef("performance", "accuracy", cls="classification")


def test_min_samples_defaults_by_the_metrics_source() -> None:
    """An accuracy over one label decided an alert: without ``min_samples``, drift and
    performance metrics need 30 samples, technical ones 1; a given value (0 too) wins."""
    assert _defaulted(metric="drift.prediction").min_samples == 30
    assert _defaulted(metric="estimated.accuracy").min_samples == 30
    assert _defaulted(metric="quality.missing_share.age").min_samples == 30
    assert _defaulted(metric="technical.error_rate", comparison="gt").min_samples == 1
    assert _defaulted(min_samples=None).min_samples == 30
    assert _defaulted(min_samples=0).min_samples == 0
    assert _defaulted(min_samples=5).min_samples == 5


def test_webhook_secret_stays_out_of_repr() -> None:
    spec = _spec(webhook_url="https://hooks.example.com/x", webhook_secret="hunter2")
    assert str(spec.webhook_url) == "https://hooks.example.com/x"
    assert "hunter2" not in repr(spec)


@pytest.mark.parametrize(
    ("metric", "ref"),
    [
        ("technical.requests", MetricRef("technical", "requests")),
        ("technical.p95_latency_ms", MetricRef("technical", "p95_latency_ms")),
        ("technical.memory_mb", MetricRef("technical", "memory_mb")),
        ("drift.dataset_share", MetricRef("drift", "dataset_share")),
        ("drift.dataset", MetricRef("drift", "dataset")),
        ("drift.prediction", MetricRef("drift", "prediction")),
        ("drift.column.age", MetricRef("drift", "column", column="age")),
        ("drift.column.income.usd", MetricRef("drift", "column", column="income.usd")),
        ("performance.rmse", MetricRef("performance", "rmse", cls="regression")),
        ("performance.roc_auc", MetricRef("performance", "roc_auc", cls="classification")),
        ("performance.label_coverage", MetricRef("performance", "label_coverage")),
        ("estimated.f1_macro", MetricRef("estimated", "f1_macro", cls="classification")),
        ("quality.missing_share", MetricRef("quality", "missing_share")),
        ("quality.missing_share.age", MetricRef("quality", "missing_share", column="age")),
        (
            "quality.out_of_range_share.a.b",
            MetricRef("quality", "out_of_range_share", column="a.b"),
        ),
        ("quality.new_category_share.c", MetricRef("quality", "new_category_share", column="c")),
    ],
)
def test_valid_metrics(metric: str, ref: MetricRef) -> None:
    assert parse_metric(metric) == ref
    assert _spec(metric=metric).metric == metric


def test_every_documented_metric_parses() -> None:
    assert len(METRIC_NAMES) == 33
    for name, doc in METRIC_NAMES.items():
        assert doc
        parse_metric(name.replace("<column>", "x"))


@pytest.mark.parametrize(
    "metric",
    [
        "accuracy",
        "technical.latency",
        "drift.column.",
        "drift.columns.age",
        "performance.auc",
        "estimated.rmse",  # label-free estimates exist for classification only
        "estimated.label_coverage",
        "quality.missing_share.",
        "quality.missing",
        "quality.constant.x",
        "Technical.requests",
        "",
    ],
)
def test_unknown_metrics_name_the_valid_forms(metric: str) -> None:
    with pytest.raises(ValidationError) as caught:
        _spec(metric=metric)
    [error] = caught.value.errors()
    assert error["loc"] == ("metric",)
    assert "valid forms" in error["msg"]
    assert "drift.column.<column>" in error["msg"] and "performance.<accuracy|" in error["msg"]
    with pytest.raises(ValueError, match="unknown metric"):
        parse_metric(metric)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("name", ""),
        ("name", "has space"),
        ("name", "slash/no"),
        ("name", "x" * 101),
        ("deployment", ""),
        ("comparison", "eq"),
        ("threshold", math.nan),
        ("threshold", math.inf),
        ("threshold", -math.inf),
        ("window_seconds", 59),
        ("window_seconds", 30 * 86_400 + 1),
        ("min_samples", -1),
        ("cooldown_seconds", -1),
        ("webhook_url", "ftp://example.com/hook"),
        ("webhook_url", "not a url"),
        ("severity", "high"),  # extra fields are refused
    ],
)
def test_invalid_specs(field: str, value: Any) -> None:
    with pytest.raises(ValidationError) as caught:
        _spec(**{field: value})
    assert [e["loc"] for e in caught.value.errors()] == [(field,)]


def test_boundaries_are_accepted() -> None:
    assert _spec(name="a").name == "a"
    assert _spec(name="A-z_0.9" + "x" * 93).name.endswith("x")
    assert _spec(window_seconds=60).window_seconds == 60
    assert _spec(window_seconds=30 * 86_400).window_seconds == 30 * 86_400
    assert _spec(min_samples=0, cooldown_seconds=0).min_samples == 0


def test_format_window() -> None:
    assert [format_window(s) for s in (60, 90, 3600, 5400, 86_400, 30 * 86_400)] == [
        "1m", "90s", "1h", "90m", "1d", "30d"
    ]  # fmt: skip


def test_fires_then_resolves() -> None:
    spec = _spec(cooldown_seconds=0)
    state = RuleState()

    assert evaluate(spec, state, 0.9, 500, 0) is None  # fine
    assert state == RuleState(firing=False, last_fired_ms=None, last_value=0.9)

    fired = evaluate(spec, state, 0.71, 412, MINUTE_MS)
    assert fired == Transition(
        "firing", 0.71, 412, "performance.accuracy = 0.71 < 0.8 over the last 1h (412 samples)"
    )
    assert state == RuleState(firing=True, last_fired_ms=MINUTE_MS, last_value=0.71)

    assert evaluate(spec, state, 0.5, 400, 2 * MINUTE_MS) is None  # still firing: no repeat
    assert state.firing and state.last_fired_ms == MINUTE_MS and state.last_value == 0.5

    resolved = evaluate(spec, state, 0.85, 1, 3 * MINUTE_MS)
    assert resolved == Transition(
        "resolved", 0.85, 1, "performance.accuracy = 0.85 >= 0.8 over the last 1h (1 sample)"
    )
    assert state == RuleState(firing=False, last_fired_ms=MINUTE_MS, last_value=0.85)

    assert evaluate(spec, state, 0.9, 1, 4 * MINUTE_MS) is None  # still fine


@pytest.mark.parametrize(
    ("comparison", "fires_at", "quiet_at", "symbol"),
    [
        ("gt", 10.5, 10.0, ">"),
        ("ge", 10.0, 9.5, ">="),
        ("lt", 9.5, 10.0, "<"),
        ("le", 10.0, 10.5, "<="),
    ],
)
def test_comparisons(comparison: str, fires_at: float, quiet_at: float, symbol: str) -> None:
    spec = _spec(metric="technical.p95_latency_ms", comparison=comparison, threshold=10)
    state = RuleState()
    assert evaluate(spec, state, quiet_at, 5, 0) is None
    fired = evaluate(spec, state, fires_at, 5, 1)
    assert fired is not None and fired.kind == "firing"
    assert f" {symbol} 10 " in fired.message


def test_large_values_read_as_whole_numbers() -> None:
    spec = _spec(metric="technical.p99_latency_ms", comparison="gt", threshold=1500,
                 window_seconds=300)  # fmt: skip
    fired = evaluate(spec, RuleState(), 12345.6, 30, 0)
    assert fired is not None
    assert fired.message == "technical.p99_latency_ms = 12346 > 1500 over the last 5m (30 samples)"


def test_too_few_samples_decides_nothing() -> None:
    spec = _spec(min_samples=100)
    state = RuleState()
    assert evaluate(spec, state, 0.1, 99, 0) is None
    assert state == RuleState(last_value=0.1)
    fired = evaluate(spec, state, 0.1, 100, MINUTE_MS)
    assert fired is not None and fired.kind == "firing"
    # A firing rule short of samples keeps firing rather than resolving.
    assert evaluate(spec, state, 0.99, 3, 2 * MINUTE_MS) is None
    assert state.firing and state.last_value == 0.99


def test_zero_min_samples_decides_on_no_samples() -> None:
    spec = _spec(metric="technical.requests", comparison="lt", threshold=1, min_samples=0)
    fired = evaluate(spec, RuleState(), 0.0, 0, 0)
    assert fired is not None and fired.message.endswith("(0 samples)")


def test_missing_and_nan_values_decide_nothing() -> None:
    spec = _spec()
    state = RuleState(firing=True, last_fired_ms=0, last_value=0.5)
    assert evaluate(spec, state, None, 10, MINUTE_MS) is None
    assert state == RuleState(firing=True, last_fired_ms=0, last_value=None)
    assert evaluate(spec, state, math.nan, 10, MINUTE_MS) is None
    assert state == RuleState(firing=True, last_fired_ms=0, last_value=None)

    quiet = RuleState()
    assert evaluate(spec, quiet, math.nan, 10, MINUTE_MS) is None
    assert quiet == RuleState()


def test_cooldown_suppresses_refiring() -> None:
    spec = _spec(cooldown_seconds=600)
    state = RuleState()
    assert evaluate(spec, state, 0.5, 10, 0) is not None  # fires at t=0
    resolved = evaluate(spec, state, 0.9, 10, MINUTE_MS)
    assert resolved is not None and resolved.kind == "resolved"

    assert evaluate(spec, state, 0.5, 10, 2 * MINUTE_MS) is None  # within 10 minutes of t=0
    assert evaluate(spec, state, 0.5, 10, 10 * MINUTE_MS - 1) is None
    assert state == RuleState(firing=False, last_fired_ms=0, last_value=0.5)

    fired = evaluate(spec, state, 0.5, 10, 10 * MINUTE_MS)  # the cooldown is over
    assert fired is not None and fired.kind == "firing"
    assert state == RuleState(firing=True, last_fired_ms=10 * MINUTE_MS, last_value=0.5)


def test_disabled_rule_decides_nothing() -> None:
    spec = _spec(enabled=False)
    state = RuleState()
    assert evaluate(spec, state, 0.1, 10, 0) is None
    assert state == RuleState(last_value=0.1)


def test_infinite_values_compare() -> None:
    spec = _spec(metric="performance.log_loss", comparison="gt", threshold=2)
    fired = evaluate(spec, RuleState(), math.inf, 10, 0)
    assert fired is not None and "= inf > 2 " in fired.message
