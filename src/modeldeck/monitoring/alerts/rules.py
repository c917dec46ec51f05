"""Alert rules: what to watch, and when an alert fires and resolves.

A rule compares one metric of one deployment, aggregated over a trailing window, with a
threshold. Metric names form a small namespace, documented in :data:`METRIC_NAMES`:

- ``technical.<name>``: request counts, error rate, latency percentiles, CPU and memory;
- ``drift.dataset_share``, ``drift.dataset``, ``drift.column.<column>``, ``drift.prediction``:
  drift of the window's inputs and outputs from the reference data;
- ``performance.<metric>``: quality against ground-truth labels;
- ``estimated.<metric>``: quality estimated without labels (classification only);
- ``quality.<share>`` and ``quality.<share>.<column>``: data quality of the window's inputs
  (missing values, out-of-range values, new categories), the worst column's or one column's.

This module is pure: it validates rules and runs the firing/resolving state machine
(:func:`evaluate`); fetching values, storing state and sending events (webhook, Slack, Teams,
e-mail, PagerDuty: :mod:`~modeldeck.monitoring.alerts.channels`) happen elsewhere.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import AnyHttpUrl, BaseModel, ConfigDict, Field, field_validator, model_validator

from modeldeck.monitoring.alerts.channels import Channel, WebhookChannel
from modeldeck.validation import DEPLOYMENT_NAME_PATTERN, Text

Comparison = Literal["gt", "ge", "lt", "le"]
MetricSource = Literal["technical", "drift", "performance", "estimated", "quality"]
ProblemClass = Literal["classification", "regression"]

RULE_NAME_PATTERN = r"^[A-Za-z0-9_.-]{1,100}$"
MIN_WINDOW_SECONDS = 60
MAX_WINDOW_SECONDS = 30 * 86_400
COLUMN_PREFIX = "drift.column."
MAX_CHANNELS = 10

TECHNICAL_METRICS: dict[str, str] = {
    "requests": "Requests received.",
    "failures": "Requests that failed (4xx and 5xx responses).",
    "error_rate": "Failed requests / requests, from 0 to 1.",
    "p50_latency_ms": "Median request latency, in milliseconds.",
    "p95_latency_ms": "95th percentile request latency, in milliseconds.",
    "p99_latency_ms": "99th percentile request latency, in milliseconds.",
    "cpu_percent": "CPU use of the replicas, in percent of one core.",
    "memory_mb": "Resident memory of the replicas, in megabytes.",
}
PERFORMANCE_METRICS: dict[str, tuple[ProblemClass | None, str]] = {
    "accuracy": ("classification", "Share of correct predictions."),
    "precision_macro": ("classification", "Precision, averaged over classes."),
    "recall_macro": ("classification", "Recall, averaged over classes."),
    "f1_macro": ("classification", "F1 score, averaged over classes."),
    "roc_auc": ("classification", "Area under the ROC curve."),
    "log_loss": ("classification", "Logarithmic loss of the predicted probabilities."),
    "mae": ("regression", "Mean absolute error."),
    "rmse": ("regression", "Root mean squared error."),
    "mape": ("regression", "Mean absolute percentage error."),
    "r2": ("regression", "Coefficient of determination."),
    "label_coverage": (None, "Share of predictions that have a ground-truth label."),
}
ESTIMATED_METRICS = ("accuracy", "precision_macro", "recall_macro", "f1_macro")
QUALITY_METRICS: dict[str, str] = {
    "missing_share": "Share of the window's rows missing a value (null, NaN or absent)",
    "out_of_range_share": "Share of the window's rows outside the reference's [min, max]",
    "new_category_share": "Share of the window's rows holding a category the reference lacks",
}

METRIC_NAMES: dict[str, str] = {
    **{f"technical.{name}": doc for name, doc in TECHNICAL_METRICS.items()},
    "drift.dataset_share": "Share of the input columns that drifted, from 0 to 1.",
    "drift.dataset": "1.0 if the dataset drifted, else 0.0.",
    f"{COLUMN_PREFIX}<column>": "The drift statistic of the input column <column>.",
    "drift.prediction": "The drift statistic of the model's output.",
    **{f"performance.{name}": doc for name, (_, doc) in PERFORMANCE_METRICS.items()},
    **{
        f"estimated.{name}": f"{PERFORMANCE_METRICS[name][1]} Estimated without labels."
        for name in ESTIMATED_METRICS
    },
    **{f"quality.{name}": f"{doc}, in the worst column." for name, doc in QUALITY_METRICS.items()},
    **{
        f"quality.{name}.<column>": f"{doc}, in the input column <column>."
        for name, doc in QUALITY_METRICS.items()
    },
}
"""Every metric a rule can watch, with what it measures. ``<column>`` stands for a name."""
METRIC_FORMS = ", ".join(
    [
        f"technical.<{'|'.join(TECHNICAL_METRICS)}>",
        "drift.dataset_share",
        "drift.dataset",
        f"{COLUMN_PREFIX}<column>",
        "drift.prediction",
        f"performance.<{'|'.join(PERFORMANCE_METRICS)}>",
        f"estimated.<{'|'.join(ESTIMATED_METRICS)}>",
        f"quality.<{'|'.join(QUALITY_METRICS)}>[.<column>]",
    ]
)


@dataclass(frozen=True)
class MetricRef:
    """A parsed metric name.

    ``column`` is set for ``drift.column.<column>`` and ``quality.<share>.<column>`` only.
    ``cls`` is the problem class the metric needs (``"classification"`` or
    ``"regression"``), None if any model has it.
    """

    source: MetricSource
    name: str
    column: str | None = None
    cls: ProblemClass | None = None


# A rule's ``min_samples`` when it names none, by the metric's source (drift's own minimum
# sample size is the same, ``MonitoringConfig.min_samples``).
DEFAULT_MIN_SAMPLES: dict[str, int] = {
    "technical": 1,
    "drift": 30,
    "performance": 30,
    "estimated": 30,
    "quality": 30,
}


def parse_metric(name: str) -> MetricRef:
    """Parse a metric name; raises ValueError naming the valid forms if it is unknown."""
    if name.startswith(COLUMN_PREFIX) and len(name) > len(COLUMN_PREFIX):
        return MetricRef("drift", "column", column=name[len(COLUMN_PREFIX) :])
    source, _, rest = name.partition(".")
    if source == "quality":
        share, dot, column = rest.partition(".")
        if share in QUALITY_METRICS and (column or not dot):
            return MetricRef("quality", share, column=column or None)
    if name not in METRIC_NAMES:
        raise ValueError(f"unknown metric {name!r}; valid forms: {METRIC_FORMS}")
    if source == "technical":
        return MetricRef("technical", rest)
    if source == "drift":
        return MetricRef("drift", rest)
    if source == "performance":
        return MetricRef("performance", rest, cls=PERFORMANCE_METRICS[rest][0])
    return MetricRef("estimated", rest, cls="classification")


class AlertRuleSpec(BaseModel):
    """An alert rule as users write it."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=RULE_NAME_PATTERN, description="Rule name, unique per deployment.")
    deployment: str = Field(
        pattern=DEPLOYMENT_NAME_PATTERN, description="Name of the deployment watched."
    )
    metric: Annotated[str, Text(255)] = Field(
        description="Metric watched; see METRIC_NAMES for the valid forms."
    )
    comparison: Comparison = Field(
        description="The alert fires while `metric <comparison> threshold` holds."
    )
    threshold: float = Field(allow_inf_nan=False)
    window_seconds: int = Field(
        default=3600,
        ge=MIN_WINDOW_SECONDS,
        le=MAX_WINDOW_SECONDS,
        description="Trailing window the metric is aggregated over.",
    )
    min_samples: int = Field(
        default=1,
        ge=0,
        le=2**53,  # the store's integer column (and JSON's exact integers) end near here
        description=(
            "Fewer samples (requests, predictions, labels...) in the window: no decision. "
            f"Default: {DEFAULT_MIN_SAMPLES['technical']} for technical metrics, "
            f"{DEFAULT_MIN_SAMPLES['drift']} for drift, performance and quality ones."
        ),
    )
    cooldown_seconds: int = Field(
        default=900,
        ge=0,
        le=10 * 365 * 86_400,
        description="After firing, the rule does not fire again for this long, even if it "
        "resolved in between.",
    )
    webhook_url: AnyHttpUrl | None = Field(
        default=None, description="Where firing and resolved events are POSTed."
    )
    webhook_secret: Annotated[str, Text(1024, opaque=True)] | None = Field(
        default=None, repr=False, description="Key signing the webhook requests."
    )
    channels: list[Channel] = Field(
        default_factory=list,
        max_length=MAX_CHANNELS,
        description="Where events go besides webhook_url: webhook, slack, teams, email, "
        "pagerduty (see docs/alerts.md).",
    )
    enabled: bool = True
    description: Annotated[str, Text(4096, multiline=True)] = ""

    @model_validator(mode="before")
    @classmethod
    def _default_min_samples(cls, data: Any) -> Any:
        """Without ``min_samples``, one that suits the metric: an accuracy over a single label
        (or drift over three rows) would decide an alert on noise."""
        if isinstance(data, dict) and data.get("min_samples") is None:
            try:
                source = parse_metric(str(data.get("metric", ""))).source
            except ValueError:
                return data  # the metric's own check says why
            return {**data, "min_samples": DEFAULT_MIN_SAMPLES[source]}
        return data

    @field_validator("metric")
    @classmethod
    def _known_metric(cls, value: str) -> str:
        parse_metric(value)
        return value

    @property
    def metric_ref(self) -> MetricRef:
        return parse_metric(self.metric)

    def destinations(self) -> list[Channel]:
        """Every channel of the rule: ``webhook_url`` (as a webhook channel), then ``channels``."""
        legacy: list[Channel] = []
        if self.webhook_url is not None:
            legacy.append(WebhookChannel(url=self.webhook_url, secret=self.webhook_secret))
        return [*legacy, *self.channels]


@dataclass
class RuleState:
    """What :func:`evaluate` remembers of a rule between evaluations."""

    firing: bool = False
    last_fired_ms: int | None = None
    last_value: float | None = None


@dataclass(frozen=True)
class Transition:
    """The rule started firing, or stopped."""

    kind: Literal["firing", "resolved"]
    value: float
    samples: int
    message: str


_COMPARE: dict[Comparison, tuple[Callable[[float, float], bool], str]] = {
    "gt": (operator.gt, ">"),
    "ge": (operator.ge, ">="),
    "lt": (operator.lt, "<"),
    "le": (operator.le, "<="),
}
_NEGATION: dict[Comparison, Comparison] = {"gt": "le", "ge": "lt", "lt": "ge", "le": "gt"}


def format_window(seconds: int) -> str:
    """``3600`` -> ``"1h"``; the largest of d, h, m, s that divides ``seconds``."""
    for unit, size in (("d", 86_400), ("h", 3600), ("m", 60)):
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def _number(x: float) -> str:
    """Four significant digits, but whole numbers from 1000 up: 0.7123, 12.5, 1234."""
    return f"{x:.0f}" if abs(x) >= 1000 else f"{x:.4g}"


def _message(spec: AlertRuleSpec, kind: str, value: float, samples: int) -> str:
    comparison = spec.comparison if kind == "firing" else _NEGATION[spec.comparison]
    symbol = _COMPARE[comparison][1]
    plural = "" if samples == 1 else "s"
    return (
        f"{spec.metric} = {_number(value)} {symbol} {_number(spec.threshold)} over the last "
        f"{format_window(spec.window_seconds)} ({samples} sample{plural})"
    )


def evaluate(
    spec: AlertRuleSpec, state: RuleState, value: float | None, samples: int, now_ms: int
) -> Transition | None:
    """Decide whether the rule starts firing or resolves, updating ``state`` in place.

    ``value`` is the metric over the rule's window at ``now_ms`` and ``samples`` how many
    observations it rests on.

    - No decision (None returned, only ``state.last_value`` updated) when the rule is
      disabled, ``value`` is None or NaN, or ``samples < spec.min_samples``. A firing rule
      stays firing until a value says otherwise.
    - Condition true while not firing: ``"firing"``, unless the last firing was less than
      ``cooldown_seconds`` ago; then nothing, and the next evaluation after the cooldown fires.
    - Condition false while firing: ``"resolved"``. The cooldown still counts from the last
      firing, so a flapping metric notifies at most once per cooldown.
    - Otherwise (still firing, still fine): nothing.

    ``state.last_value`` is ``value`` (None for NaN) after every call.
    """
    if value is not None and math.isnan(value):
        value = None
    state.last_value = value
    if value is None or not spec.enabled or samples < spec.min_samples:
        return None
    holds = _COMPARE[spec.comparison][0](value, spec.threshold)
    if holds and not state.firing:
        cooldown_ms = spec.cooldown_seconds * 1000
        if state.last_fired_ms is not None and now_ms - state.last_fired_ms < cooldown_ms:
            return None
        state.firing, state.last_fired_ms = True, now_ms
        return Transition("firing", value, samples, _message(spec, "firing", value, samples))
    if not holds and state.firing:
        state.firing = False
        return Transition("resolved", value, samples, _message(spec, "resolved", value, samples))
    return None
