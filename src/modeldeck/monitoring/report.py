"""One self-contained HTML page from a drift report and a performance report.

:func:`render_report` takes the dicts that :meth:`AnalysisService.drift
<modeldeck.monitoring.analysis.AnalysisService.drift>` and :meth:`AnalysisService.performance
<modeldeck.monitoring.analysis.AnalysisService.performance>` return and renders:

* a header: deployment, windows in UTC, reference data, predictions and whether tested on summaries;
* data drift: the dataset verdict as a coloured badge, a table of the column verdicts (drifted
  rows highlighted) and, per column with a distribution, a small grouped-bar chart of reference
  and current shares; prediction drift the same way;
* performance: one line chart over time per model version (classification: realised accuracy,
  estimated accuracy dashed, label coverage on a second axis; regression: MAE and RMSE) and a
  table of the windows;
* data quality (when a quality report is given): per input column the shares of missing values,
  type violations, out-of-range values and new categories and constancy, columns with a
  problem highlighted, and the schema's surprises.

The page works offline: plotly.js (the dashboard's vendored basic bundle, about 1.2 MB: scatter
and bar traces are all the report draws) is embedded once in the ``<head>`` (only when there is
a chart), the figures reference it, and nothing is loaded from a CDN. Every string taken from the
reports is escaped, in the HTML and in the chart texts alike. Plotly is imported on first call.

:func:`build_report` reads both reports of a deployment from the analysis service and renders
them: what ``GET /api/v1/deployments/{name}/report`` answers (the dashboard's download).
"""

from __future__ import annotations

import functools
import html
import itertools
import math
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from modeldeck.errors import NotFound
from modeldeck.monitoring.jsonable import plain
from modeldeck.records.model_metrics import now_ms

if TYPE_CHECKING:
    from modeldeck.monitoring.analysis import AnalysisService

__all__ = ["build_report", "render_report"]

HOUR_MS = 3_600_000
DAY_MS = 24 * HOUR_MS

REFERENCE_COLOUR = "#94a3b8"
CURRENT_COLOUR = "#2563eb"
DRIFTED_COLOUR = "#dc2626"
COVERAGE_COLOUR = "#64748b"
VERSION_COLOURS = ("#2563eb", "#ea580c", "#16a34a", "#9333ea", "#0891b2", "#ca8a04", "#db2777")
DISTRIBUTION_HEIGHT = 240
PERFORMANCE_HEIGHT = 340
OTHER_CATEGORY = "__other__"  # modeldeck.monitoring.drift.stats.OTHER, the folded tail of top-k
PVALUE_METHODS = frozenset({"ks", "chisquare", "z"})  # the rest are distances
MISSING = "\N{EM DASH}"

CSS = """
:root { --ok: #15803d; --bad: #b91c1c; --muted: #64748b; --line: #e2e8f0; }
* { box-sizing: border-box; }
body { margin: 0; background: #f8fafc; color: #0f172a;
  font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; }
main { max-width: 1120px; margin: 0 auto; padding: 24px; }
h1 { font-size: 22px; margin: 0 0 4px; }
h2 { font-size: 18px; margin: 32px 0 12px; padding-bottom: 4px;
  border-bottom: 1px solid var(--line); }
h3 { font-size: 15px; margin: 20px 0 8px; }
dl.meta { display: grid; grid-template-columns: max-content 1fr; gap: 2px 16px; margin: 12px 0; }
dl.meta dt { color: var(--muted); }
dl.meta dd { margin: 0; }
.badge { display: inline-block; padding: 4px 14px; border-radius: 999px;
  color: #fff; font-weight: 600; }
.badge.ok { background: var(--ok); }
.badge.bad { background: var(--bad); }
.badge.warn { background: #b45309; }
.badge.none { background: var(--muted); }
.verdict { margin: 8px 0 16px; }
.verdict span.summary { margin-left: 12px; color: var(--muted); }
.table { overflow-x: auto; margin: 8px 0 16px; }
table { width: 100%; border-collapse: collapse; background: #fff; }
th, td { padding: 5px 8px; border-bottom: 1px solid var(--line);
  text-align: left; vertical-align: top; }
th { background: #f1f5f9; font-weight: 600; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
tr.drifted td { background: #fef2f2; }
tr.drifted td.status { color: var(--bad); font-weight: 600; }
td.status { color: var(--ok); }
tr.untested td.status { color: var(--muted); }
.charts { display: grid; grid-template-columns: repeat(auto-fill, minmax(340px, 1fr)); gap: 12px; }
.chart { background: #fff; border: 1px solid var(--line); border-radius: 6px; padding: 4px; }
.note { color: var(--muted); }
.warning { color: #92400e; }
footer { margin-top: 40px; color: var(--muted); font-size: 12px; }
"""


def build_report(
    analysis: AnalysisService,
    name: str,
    *,
    start_ms: int | None = None,
    end_ms: int | None = None,
    step_ms: int | None = None,
    model_version: str | None = None,
) -> str:
    """The HTML report of deployment ``name`` over ``[start_ms, end_ms]``, performance in
    windows of ``step_ms``, as ``modeldeck report`` writes it. Without a start (and an end) the
    range is the one fitted to the data, as ``modeldeck report`` and the dashboard's Auto range
    get it (:meth:`AnalysisService.window`: from the first prediction to now, rounded up to a
    preset); without a step, the readable step that gives that range 12 to 60 windows (whole
    days for a range of years).

    Without reference data the drift section says why instead of failing the report; an
    unknown deployment raises :class:`NotFound`.
    """
    analysis.config(name)  # NotFound for an unknown deployment, before anything else
    if start_ms is None or step_ms is None:
        end = now_ms() + 1 if end_ms is None else end_ms
        fitted = analysis.window(
            name,
            span_ms=None if start_ms is None else max(1, end - start_ms),
            step_ms=step_ms,
        )
        step_ms = fitted.step
        if start_ms is None and end_ms is None:
            start, end = fitted.start, fitted.end
        elif start_ms is None:
            start = (end - fitted.span) // step_ms * step_ms
        else:
            start = start_ms
    else:
        start, end = start_ms, now_ms() if end_ms is None else end_ms
    drift: dict[str, Any] | None = None
    drift_reason = None
    try:
        drift = plain(analysis.drift(name, start_ms=start, end_ms=end, model_version=model_version))
    except NotFound as exc:  # no reference data: a report without its drift section
        drift_reason = exc.message
    performance = plain(
        analysis.performance(
            name, start_ms=start, end_ms=end, step_ms=step_ms, model_version=model_version
        )
    )
    quality = plain(analysis.quality(name, start_ms=start, end_ms=end, model_version=model_version))
    return render_report(drift, performance, drift_reason=drift_reason, quality=quality)


def render_report(
    drift: Mapping[str, Any] | None,
    performance: Mapping[str, Any] | None,
    *,
    title: str | None = None,
    generated_at: datetime | None = None,
    drift_reason: str | None = None,
    performance_reason: str | None = None,
    quality: Mapping[str, Any] | None = None,
) -> str:
    """A self-contained HTML document for a drift report and a performance report.

    Either report may be ``None``; its section then says so, with ``drift_reason`` or
    ``performance_reason`` (e.g. the error that prevented it) when given. ``generated_at``
    defaults to now; a naive datetime is taken as UTC.

    One chart per drift column that has a distribution in its ``details``, one for prediction
    drift when present, and one performance chart when the performance report has windows.
    A data-quality report (:meth:`AnalysisService.quality
    <modeldeck.monitoring.analysis.AnalysisService.quality>`) adds its section, over its total.
    """
    charts = _Charts()
    deployment = _first(drift, performance, "deployment")
    heading = title or (f"modeldeck report: {deployment}" if deployment else "modeldeck report")
    when = generated_at or datetime.now(UTC)
    when = when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)
    body = [
        "<header>",
        f"<h1>{_e(heading)}</h1>",
        _header(drift, performance, when),
        "</header>",
        _drift_section(drift, drift_reason, charts),
        _performance_section(performance, performance_reason, charts),
        _quality_section(quality) if quality is not None else "",
        f"<footer>Generated by modeldeck at {_e(_iso(when))}.</footer>",
    ]
    script = f"<script>{_plotly_js()}</script>" if charts.count else ""
    return "\n".join(
        [
            "<!DOCTYPE html>",
            '<html lang="en">',
            "<head>",
            '<meta charset="utf-8">',
            '<meta name="viewport" content="width=device-width, initial-scale=1">',
            f"<title>{_e(heading)}</title>",
            f"<style>{CSS}</style>",
            script,
            "</head>",
            "<body>",
            "<main>",
            *body,
            "</main>",
            "</body>",
            "</html>",
            "",
        ]
    )


# -- charts ------------------------------------------------------------------------------------


class _Charts:
    """Turns Plotly figures into ``<div>`` + ``<script>`` fragments with stable element ids."""

    def __init__(self) -> None:
        self.count = 0

    def html(self, figure: Any, height: int) -> str:
        self.count += 1
        fragment = figure.to_html(
            full_html=False,
            include_plotlyjs=False,
            div_id=f"modeldeck-chart-{self.count}",
            default_height=f"{height}px",
            config={"displayModeBar": False, "responsive": True},
        )
        return f'<div class="chart">{fragment}</div>'


def _layout(title: str, height: int) -> dict[str, Any]:
    return {
        "template": "none",
        "height": height,
        "margin": {"l": 52, "r": 16, "t": 48, "b": 40},
        "title": {"text": _e(title), "x": 0.02, "xanchor": "left", "font": {"size": 13}},
        "font": {"family": "system-ui, sans-serif", "size": 11, "color": "#334155"},
        "legend": {"orientation": "h", "x": 1, "xanchor": "right", "y": 1.02, "yanchor": "bottom"},
        "paper_bgcolor": "#fff",
        "plot_bgcolor": "#fff",
        "hovermode": "x unified",
    }


def _distribution_figure(column: Mapping[str, Any]) -> Any | None:
    """Grouped bars of the reference and current shares, or None without a distribution."""
    import plotly.graph_objects as go

    shape = _distribution(column.get("details"))
    if shape is None:
        return None
    x, hover, reference, current, numeric = shape
    current_colour = DRIFTED_COLOUR if column.get("drifted") else CURRENT_COLOUR
    figure = go.Figure(
        [
            go.Bar(
                name="reference",
                x=x,
                y=reference,
                customdata=hover,
                hovertemplate="%{customdata}: %{y:.1%}<extra>reference</extra>",
                marker_color=REFERENCE_COLOUR,
            ),
            go.Bar(
                name="current",
                x=x,
                y=current,
                customdata=hover,
                hovertemplate="%{customdata}: %{y:.1%}<extra>current</extra>",
                marker_color=current_colour,
            ),
        ]
    )
    layout = _layout(str(column.get("column", "")), DISTRIBUTION_HEIGHT)
    layout.update(
        barmode="group",
        bargap=0.15,
        hovermode="closest",
        yaxis={"tickformat": ".0%", "rangemode": "tozero", "gridcolor": "#e2e8f0"},
        xaxis={"type": "linear" if numeric else "category", "automargin": True},
    )
    figure.update_layout(layout)
    return figure


def _distribution(
    details: Any,
) -> tuple[list[Any], list[str], list[float], list[float], bool] | None:
    """``(x, hover labels, reference shares, current shares, numeric)`` from column details.

    Numeric distributions have ``bins`` (edges, one more than the shares) and are plotted at the
    bin mid-points; categorical ones have ``categories``.
    """
    if not isinstance(details, Mapping):
        return None
    shape = details.get("distribution", details)
    if not isinstance(shape, Mapping):
        return None
    reference = _floats(shape.get("reference"))
    current = _floats(shape.get("current"))
    n = min(len(reference), len(current))
    if n == 0:
        return None
    reference, current = reference[:n], current[:n]
    edges = shape.get("bins")
    if isinstance(edges, Sequence) and len(edges) == n + 1:
        bounds = [_float(e) for e in edges]
        pairs = list(itertools.pairwise(bounds))
        x: list[Any] = [_midpoint(a, b) for a, b in pairs]
        hover = [f"[{_number(a)}, {_number(b)})" for a, b in pairs]
        return x, hover, reference, current, True
    categories = shape.get("categories")
    if isinstance(categories, Sequence) and not isinstance(categories, str):
        labels = [_category(c) for c in list(categories)[:n]]
        labels += [f"#{i + 1}" for i in range(len(labels), n)]
        return labels, labels, reference, current, False
    return None


def _performance_figure(task: str | None, windows: Sequence[Mapping[str, Any]]) -> Any:
    """Metrics over time, one colour per model version."""
    from plotly.subplots import make_subplots

    regression = task == "regression"
    figure = make_subplots(specs=[[{"secondary_y": not regression}]])
    versions = _versions(windows)
    for index, version in enumerate(versions):
        colour = VERSION_COLOURS[index % len(VERSION_COLOURS)]
        rows = sorted(
            (w for w in windows if (w.get("model_version") or "") == version),
            key=lambda w: _int(w.get("start")),
        )
        x = [_chart_time(w.get("start")) for w in rows]
        label = _e(_version_label(version))
        if regression:
            series = [("MAE", "realised", "mae", "solid"), ("RMSE", "realised", "rmse", "dash")]
        else:
            series = [("accuracy", "realised", "accuracy", "solid")]
            if any(isinstance(w.get("estimated"), Mapping) for w in rows):
                series.append(("estimated accuracy", "estimated", "accuracy", "dash"))
        for name, part, metric, dash in series:
            y = [_metric(w, part, metric) for w in rows]
            figure.add_trace(
                _line(f"{name} · {label}", x, y, colour, dash, "lines+markers"),
                secondary_y=False,
            )
        if not regression:
            coverage = [_float(w.get("label_coverage")) for w in rows]
            # With markers: a window of its own (a young deployment) is a point, not a
            # line too short to see.
            trace = _line(f"label coverage · {label}", x, coverage, colour, "dot", "lines+markers")
            trace.update(opacity=0.5, line_width=1.5)
            figure.add_trace(trace, secondary_y=True)
    title = "MAE and RMSE" if regression else "Accuracy and label coverage"
    layout = _layout(f"{title} per window (UTC)", PERFORMANCE_HEIGHT)
    layout["margin"] = {"l": 56, "r": 56, "t": 72, "b": 40}
    layout["legend"].update(y=1.08)
    figure.update_layout(layout)
    figure.update_xaxes(type="date", gridcolor="#e2e8f0", range=_time_range(windows))
    if regression:
        figure.update_yaxes(rangemode="tozero", gridcolor="#e2e8f0", title_text="error")
    else:
        percent = {"tickformat": ".0%", "range": [0, 1.02]}
        figure.update_yaxes(
            title_text="accuracy", gridcolor="#e2e8f0", secondary_y=False, **percent
        )
        figure.update_yaxes(
            title_text="label coverage", showgrid=False, secondary_y=True, **percent
        )
    return figure


def _time_range(windows: Sequence[Mapping[str, Any]]) -> list[str] | None:
    """The x-axis from half a window before the first window's start to half one after the
    last's (points sit at window starts). Plotly's own range around a single point is a
    millisecond wide (ticks reading 03:54:59.999 to 03:55:00.001)."""
    starts = [_int(w.get("start")) for w in windows if w.get("start") is not None]
    if not starts:
        return None
    widths = [_int(w.get("end")) - _int(w.get("start")) for w in windows if w.get("end")]
    half = max(max(widths, default=0), 60_000) // 2
    return [_chart_time(min(starts) - half), _chart_time(max(starts) + half)]


def _line(name: str, x: list[str], y: list[float | None], colour: str, dash: str, mode: str) -> Any:
    import plotly.graph_objects as go

    return go.Scatter(
        name=name,
        x=x,
        y=y,
        mode=mode,
        line={"color": colour, "dash": dash, "width": 2},
        connectgaps=False,
        hovertemplate="%{y:.4g}",
    )


# -- header ------------------------------------------------------------------------------------


def _header(
    drift: Mapping[str, Any] | None, performance: Mapping[str, Any] | None, when: datetime
) -> str:
    items: list[tuple[str, str]] = []
    deployment = _first(drift, performance, "deployment")
    if deployment:
        items.append(("Deployment", _e(deployment)))
    version = _first(drift, performance, "model_version")
    items.append(("Model version", _e(version) if version else "all versions"))
    if drift is not None:
        items.append(("Drift window", _window(drift)))
        reference = drift.get("reference")
        if isinstance(reference, Mapping):
            source = _e(reference.get("source") or "unknown source")
            text = f"{source}, {_count(reference.get('rows'))} rows"
            if reference.get("model_version"):
                text += f", model version {_e(reference['model_version'])}"
            items.append(("Reference data", text))
        total = _int(drift.get("predictions"))
        if drift.get("mode") == "binned":
            text = f"{_count(total)}, tested on five-minute summaries (binned)"
        else:
            text = f"{_count(total)}, every tracked value tested"
        items.append(("Predictions", text))
        rows = f"{_count(drift.get('current_rows'))}"
        if _int(drift.get("skipped_records")):
            rows += f" ({_count(drift.get('skipped_records'))} records of another shape skipped)"
        items.append(("Current rows", rows))
    if performance is not None:
        text = _window(performance)
        if performance.get("step"):
            text += f", in steps of {_duration(_int(performance['step']))}"
        items.append(("Performance window", text))
    items.append(("Generated", _e(_iso(when))))
    rows_html = "".join(f"<dt>{k}</dt><dd>{v}</dd>" for k, v in items)
    return f'<dl class="meta">{rows_html}</dl>'


# -- drift -------------------------------------------------------------------------------------


def _drift_section(drift: Mapping[str, Any] | None, reason: str | None, charts: _Charts) -> str:
    parts = ['<section id="drift">', "<h2>Data drift</h2>"]
    if drift is None:
        parts.append(f'<p class="note">No drift report: {_e(reason or "not provided")}.</p>')
        parts.append("</section>")
        return "\n".join(parts)
    prediction = drift.get("prediction")
    prediction_drifted = isinstance(prediction, Mapping) and bool(prediction.get("drifted"))
    parts.append(_dataset_verdict(drift.get("dataset"), prediction_drifted))
    missing = [str(c) for c in drift.get("missing_columns") or []]
    if missing:
        parts.append(
            '<p class="warning">Columns missing from the tracked inputs: '
            f"{_e(', '.join(missing))}.</p>"
        )
    columns = [c for c in drift.get("columns") or [] if isinstance(c, Mapping)]
    if columns:
        parts.append(_drift_table(columns))
        figures = [f for f in (_distribution_figure(c) for c in columns) if f is not None]
        if figures:
            parts.append("<h3>Distributions: reference and current shares</h3>")
            parts.append(_chart_grid(charts.html(f, DISTRIBUTION_HEIGHT) for f in figures))
    else:
        parts.append('<p class="note">No columns were tested.</p>')
    parts.append("<h3>Prediction drift</h3>")
    if isinstance(prediction, Mapping):
        parts.append(_drift_table([prediction], prediction=True))
        figure = _distribution_figure(prediction)
        if figure is not None:
            parts.append(_chart_grid([charts.html(figure, DISTRIBUTION_HEIGHT)]))
    else:
        parts.append(
            '<p class="note">No prediction drift: no scalar outputs were tracked in this window, '
            "or the reference data has no prediction or target column.</p>"
        )
    parts.append("</section>")
    return "\n".join(parts)


def _dataset_verdict(dataset: Any, prediction_drifted: bool = False) -> str:
    """The dataset's verdict as a badge: red when the dataset drifted; amber when it did not
    but columns or the prediction did (a green "no drift" would hide them); green else."""
    if not isinstance(dataset, Mapping) or not _int(dataset.get("columns")):
        badge = '<span class="badge none">Dataset drift not tested</span>'
        return (
            f'<p class="verdict">{badge}<span class="summary">no column had current data</span></p>'
        )
    drifted = bool(dataset.get("drifted"))
    names = [str(c) for c in dataset.get("drifted_columns") or []]
    summary = (
        f"{len(names)} of {_count(dataset.get('columns'))} columns drifted "
        f"({_percent(dataset.get('drifted_share'))}; dataset drift at "
        f"{_percent(dataset.get('threshold'))} or more)"
    )
    if names:
        summary += f": {_e(', '.join(names))}"
    if prediction_drifted:
        summary += "; the prediction drifted"
    if drifted:
        badge = '<span class="badge bad">Dataset drift detected</span>'
    elif names or prediction_drifted:  # under the dataset's threshold: never shown as clear
        what = f"{len(names)} column(s)" if names else "the prediction"
        badge = f'<span class="badge warn">Drift in {what}</span>'
    else:
        badge = '<span class="badge ok">No dataset drift</span>'

    return f'<p class="verdict">{badge}<span class="summary">{summary}</span></p>'


def _drift_table(columns: Sequence[Mapping[str, Any]], *, prediction: bool = False) -> str:
    head = ["Column", "Kind", "Method", "Drift score", "Threshold", "Reference rows"]
    head += ["Current rows"]
    head += ["Verdict", "Notes"]
    rows = []
    for column in columns:
        tested = column.get("statistic") is not None
        drifted = bool(column.get("drifted"))
        css = "drifted" if drifted else ("" if tested else "untested")
        verdict = "Drift" if drifted else ("No drift" if tested else "Not tested")
        name = str(column.get("column", ""))
        if prediction and column.get("reference_column"):
            name += f" (vs. reference column {column['reference_column']})"
        cells = [
            f"<td>{_e(name)}</td>",
            f"<td>{_e(column.get('kind', ''))}</td>",
            f"<td>{_e(column.get('method', ''))}</td>",
            f'<td class="num">{_number(column.get("statistic"))}</td>',
            f'<td class="num">{_threshold(column)}</td>',
            f'<td class="num">{_count(column.get("reference_rows"))}</td>',
            f'<td class="num">{_count(column.get("current_rows"))}</td>',
            f'<td class="status">{verdict}</td>',
            f"<td>{_notes(column.get('details'))}</td>",
        ]
        rows.append(
            f'<tr class="{css}">{"".join(cells)}</tr>' if css else f"<tr>{''.join(cells)}</tr>"
        )
    header = "".join(f"<th>{h}</th>" for h in head)
    return (
        f'<div class="table"><table><thead><tr>{header}</tr></thead>'
        f"<tbody>{''.join(rows)}</tbody></table></div>"
    )


def _threshold(column: Mapping[str, Any]) -> str:
    """The threshold with its direction: p-values drift below it, distances at or above it."""
    value = _number(column.get("threshold"))
    if column.get("threshold") is None:
        return value
    if column.get("method") in PVALUE_METHODS:
        return f"p &lt; {value}"
    return f"&ge; {value}"


def _notes(details: Any) -> str:
    if not isinstance(details, Mapping):
        return ""
    notes = []
    if details.get("reason"):
        notes.append(_e(details["reason"]))
    if _float(details.get("out_of_range_share")):
        notes.append(f"{_percent(details['out_of_range_share'])} outside the reference range")
    if _float(details.get("unseen_share")):
        notes.append(f"{_percent(details['unseen_share'])} values unseen in the reference")
    missing = _int(details.get("current_missing"))
    if missing:
        notes.append(f"{_count(missing)} missing")
    return "; ".join(notes)


# -- performance -------------------------------------------------------------------------------


def _performance_section(
    performance: Mapping[str, Any] | None, reason: str | None, charts: _Charts
) -> str:
    parts = ['<section id="performance">', "<h2>Performance</h2>"]
    if performance is None:
        parts.append(f'<p class="note">No performance report: {_e(reason or "not provided")}.</p>')
        parts.append("</section>")
        return "\n".join(parts)
    task = performance.get("task")
    windows = [w for w in performance.get("windows") or [] if isinstance(w, Mapping)]
    parts.append(f'<p class="note">Task: {_e(task or "unknown (no labels yet)")}.</p>')
    if not windows:
        parts.append('<p class="note">No predictions in this window.</p>')
        parts.append("</section>")
        return "\n".join(parts)
    figure = _performance_figure(task, windows)
    parts.append(charts.html(figure, PERFORMANCE_HEIGHT))
    parts.append(_performance_table(task, windows))
    parts.append("</section>")
    return "\n".join(parts)


def _performance_table(task: str | None, windows: Sequence[Mapping[str, Any]]) -> str:
    metrics: list[tuple[str, str, str]]  # (heading, "realised" | "estimated", key)
    if task == "regression":
        metrics = [
            ("MAE", "realised", "mae"),
            ("RMSE", "realised", "rmse"),
            ("MAPE", "realised", "mape"),
            ("R²", "realised", "r2"),
        ]
    else:
        metrics = [
            ("Accuracy", "realised", "accuracy"),
            ("Precision (macro)", "realised", "precision_macro"),
            ("Recall (macro)", "realised", "recall_macro"),
            ("F1 (macro)", "realised", "f1_macro"),
            ("ROC AUC", "realised", "roc_auc"),
            ("Log loss", "realised", "log_loss"),
            ("Est. accuracy", "estimated", "accuracy"),
            ("Est. F1 (macro)", "estimated", "f1_macro"),
        ]
        metrics = [m for m in metrics if any(_has(w, m[1], m[2]) for w in windows)]
    head = ["Start (UTC)", "End (UTC)", "Version", "Predictions", "Labelled", "Coverage"]
    head += [m[0] for m in metrics]
    rows = []
    for w in sorted(windows, key=lambda w: (_int(w.get("start")), w.get("model_version") or "")):
        cells = [
            f"<td>{_e(_ms_iso(w.get('start')))}</td>",
            f"<td>{_e(_ms_iso(w.get('end')))}</td>",
            f"<td>{_e(_version_label(w.get('model_version') or ''))}</td>",
            f'<td class="num">{_count(w.get("predictions"))}</td>',
            f'<td class="num">{_count(w.get("labelled"))}</td>',
            f'<td class="num">{_percent(w.get("label_coverage"))}</td>',
        ]
        cells += [f'<td class="num">{_number(_metric(w, p, k))}</td>' for _, p, k in metrics]
        rows.append(f"<tr>{''.join(cells)}</tr>")
    header = "".join(f"<th>{_e(h)}</th>" for h in head)
    return (
        f'<div class="table"><table><thead><tr>{header}</tr></thead>'
        f"<tbody>{''.join(rows)}</tbody></table></div>"
    )


def _metric(window: Mapping[str, Any], part: str, key: str) -> float | None:
    values = window.get(part)
    return _float(values.get(key)) if isinstance(values, Mapping) else None


def _has(window: Mapping[str, Any], part: str, key: str) -> bool:
    return _metric(window, part, key) is not None


def _versions(windows: Iterable[Mapping[str, Any]]) -> list[str]:
    return sorted({str(w.get("model_version") or "") for w in windows})


def _version_label(version: Any) -> str:
    return f"version {version}" if version else "all versions"


# -- formatting --------------------------------------------------------------------------------


# The one copy of Plotly.js in the package, the dashboard's (package data, read not imported).
PLOTLY_JS = Path(__file__).resolve().parents[1] / "ui" / "vendor" / "plotly-basic.min.js"


@functools.cache
def _plotly_js() -> str:
    return PLOTLY_JS.read_text(encoding="utf-8")


# -- data quality ------------------------------------------------------------------------------


def _quality_section(quality: Mapping[str, Any]) -> str:
    found = quality.get("total")
    total: Mapping[str, Any] = found if isinstance(found, Mapping) else {}
    parts = ['<section id="quality">', "<h2>Data quality</h2>"]
    modes = {"binned": "from five-minute summaries", "scan": "from the records, read in chunks"}
    parts.append(
        f'<p class="note">{_count(total.get("predictions"))} predictions, '
        f"{_count(total.get('rows'))} rows"
        + (f", {modes[quality['mode']]}" if quality.get("mode") in modes else "")
        + ".</p>"
    )
    if quality.get("note"):
        parts.append(f'<p class="warning">{_e(quality["note"])}.</p>')
    given = total.get("schema")
    schema: Mapping[str, Any] = given if isinstance(given, Mapping) else {}
    for key, text in (
        ("unexpected_columns", "In the requests but not in the reference"),
        ("absent_columns", "In the reference but never in the requests"),
    ):
        names = [str(c) for c in schema.get(key) or []]
        if names:
            parts.append(f'<p class="warning">{text}: {_e(", ".join(names))}.</p>')
    head = ["Column", "Kind", "Values", "Missing", "Wrong type", "Out of range"]
    head += ["New categories", "Constant"]
    rows = []
    for column in total.get("columns") or []:
        if not isinstance(column, Mapping):
            continue
        new = _percent(column.get("new_category_share"))
        top = [t for t in column.get("top_new_categories") or [] if isinstance(t, Mapping)]
        if top:
            new += " (" + ", ".join(f"{_e(t.get('value'))}: {_count(t.get('count'))}" for t in top)
            new += ")"
        cells = [
            f"<td>{_e(column.get('column', ''))}</td>",
            f"<td>{_e(column.get('kind', ''))}</td>",
            f'<td class="num">{_count(column.get("count"))}</td>',
            f'<td class="num">{_percent(column.get("missing_share"))}</td>',
            f'<td class="num">{_percent(column.get("type_violation_share"))}</td>',
            f'<td class="num">{_percent(column.get("out_of_range_share"))}</td>',
            f"<td>{new}</td>",
            f'<td class="status">{"Constant" if column.get("constant") else "No"}</td>',
        ]
        css = ' class="drifted"' if column.get("problems") else ""
        rows.append(f"<tr{css}>{''.join(cells)}</tr>")
    header = "".join(f"<th>{h}</th>" for h in head)
    parts.append(
        f'<div class="table"><table><thead><tr>{header}</tr></thead>'
        f"<tbody>{''.join(rows)}</tbody></table></div>"
    )
    parts.append("</section>")
    return "\n".join(parts)


def _e(value: Any) -> str:
    return html.escape(str(value))


def _first(a: Mapping[str, Any] | None, b: Mapping[str, Any] | None, key: str) -> Any:
    for report in (a, b):
        if report is not None and report.get(key):
            return report[key]
    return None


def _chart_grid(fragments: Iterable[str]) -> str:
    return f'<div class="charts">{"".join(fragments)}</div>'


def _float(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def _floats(values: Any) -> list[float]:
    if not isinstance(values, Sequence) or isinstance(values, str):
        return []
    return [_float(v) or 0.0 for v in values]


def _int(value: Any) -> int:
    number = _float(value)
    return int(number) if number is not None else 0


def _midpoint(a: float | None, b: float | None) -> float:
    if a is not None and b is not None:
        return (a + b) / 2
    return a if a is not None else (b if b is not None else 0.0)


def _category(value: Any) -> str:
    return "(other)" if value == OTHER_CATEGORY else _e(value)


def _number(value: Any) -> str:
    number = _float(value)
    if number is None:
        return MISSING
    if isinstance(value, int):
        return f"{value:,}"
    return f"{number:.4g}"


def _count(value: Any) -> str:
    number = _float(value)
    return MISSING if number is None else f"{int(number):,}"


def _percent(value: Any) -> str:
    number = _float(value)
    return MISSING if number is None else f"{number:.1%}"


def _iso(when: datetime) -> str:
    return when.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _ms_iso(ms: Any) -> str:
    number = _float(ms)
    return MISSING if number is None else _iso(datetime.fromtimestamp(number / 1000, tz=UTC))


def _chart_time(ms: Any) -> str:
    """A UTC time as Plotly reads it without shifting it to the browser's time zone."""
    number = _float(ms) or 0.0
    return datetime.fromtimestamp(number / 1000, tz=UTC).strftime("%Y-%m-%d %H:%M:%S")


def _window(report: Mapping[str, Any]) -> str:
    return f"{_e(_ms_iso(report.get('start')))} to {_e(_ms_iso(report.get('end')))}"


def _duration(ms: int) -> str:
    for unit, size in (("d", 86_400_000), ("h", 3_600_000), ("min", 60_000), ("s", 1000)):
        if ms >= size and ms % size == 0:
            return f"{ms // size} {unit}"
    return f"{ms} ms"
