"""Monitoring settings, reference data, the window to show and the drift, performance and data
quality reports, as the API and the client show them.

The reports are large and free-form below their top level (per column, per window, per class):
the views type the fields every report has and keep the rest as JSON
(docs/drift-and-performance.md describes them).
"""

from __future__ import annotations

from typing import Any

from pydantic import Field

from modeldeck.views.base import View


class ColumnOverrideView(View):
    method: str | None = None
    threshold: float | None = None
    kind: str | None = None


class MonitoringConfigView(View):
    """How a deployment's tracked metrics map onto features, predictions and labels (as stored;
    ``MonitoringConfig`` checks the settings that are sent)."""

    input_key: str
    output_key: str
    output_column: str | None = None
    label_key: str
    probability_key: str | None = None
    task: str | None = None
    columns: list[str] | None = None
    overrides: dict[str, ColumnOverrideView] = Field(default_factory=dict)
    drift_share: float
    min_samples: int
    top_k: int
    max_rows: int


class ReferenceView(View):
    """A deployment's reference data: its summary, and the rows asked for (``head`` or
    ``sample``)."""

    model_version: str | None = None
    source: str
    rows: int
    columns: list[dict[str, Any]] = Field(description="Each column's name, kind and profile.")
    target_column: str | None = None
    prediction_column: str | None = None
    estimator: bool = Field(
        default=False, description="The version has a confidence estimator calibrated on it."
    )
    created_at: str | None = None
    head: list[dict[str, Any]] | None = None
    sample: list[dict[str, Any]] | None = None


class WindowView(View):
    """The range and step to show a deployment over."""

    start: int = Field(description="ms since the epoch.")
    end: int
    step: int = Field(description="ms per window.")
    span: int = Field(description="ms of range asked for or fitted.")
    preset: str | None = None
    first_prediction: int | None = None
    fitted: bool


class DriftSeries(View):
    """Every column's drift test in each window of a range (drift over time)."""

    deployment: str
    model_version: str | None = None
    start: int
    end: int
    step: int = Field(description="Each window's length, ms.")
    reference: dict[str, Any] | None = Field(
        default=None, description="The reference data's summary."
    )
    columns: list[str] = Field(default_factory=list, description="The columns tested.")
    windows: list[dict[str, Any]] = Field(
        default_factory=list,
        description="start, end, predictions, mode, verdict, dataset, and per column (and for "
        "the prediction) method, statistic, p_value, distance, threshold, drifted, current_rows.",
    )


class DriftReport(View):
    """Data drift per column, dataset drift and prediction drift over a window."""

    deployment: str
    model_version: str | None = None
    start: int
    end: int
    reference: dict[str, Any] = Field(description="The reference data's summary.")
    predictions: int
    mode: str | None = Field(default=None, description="raw or binned (five-minute summaries).")
    current_rows: int | None = None
    skipped_records: int | None = None
    missing_columns: list[str] = Field(
        default_factory=list, description="Features the tracked inputs lack."
    )
    unmonitored_columns: list[str] = Field(
        default_factory=list, description="Tracked inputs that are not features."
    )
    dataset: dict[str, Any] = Field(
        default_factory=dict,
        description="drifted, drifted_share, threshold, drifted_columns, columns.",
    )
    columns: list[dict[str, Any]] = Field(default_factory=list)
    prediction: dict[str, Any] | None = None
    verdict: dict[str, Any] = Field(default_factory=dict, description="level, message, ...")


class PerformanceReport(View):
    """Realised and estimated performance per window and model version."""

    deployment: str
    model_version: str | None = None
    task: str | None = None
    start: int
    end: int
    step: int
    label_key: str | None = None
    windows: list[dict[str, Any]] = Field(default_factory=list)


class QualityReport(View):
    """Data quality per input column, per window and over the whole range."""

    deployment: str
    model_version: str | None = None
    start: int
    end: int
    step: int
    mode: str | None = None
    reference: dict[str, Any] | None = None
    note: str | None = None
    windows: list[dict[str, Any]] = Field(default_factory=list)
    total: dict[str, Any] = Field(default_factory=dict)
