"""The HTML report: self-contained, escaped, well formed, one chart per thing it shows.

The reports are built by hand in the shapes ``AnalysisService.drift`` and
``AnalysisService.performance`` return, so no platform is needed.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from html.parser import HTMLParser
from typing import Any

import numpy as np
import pytest

from modeldeck.errors import NotFound
from modeldeck.monitoring.report import DAY_MS, HOUR_MS, PLOTLY_JS, build_report, render_report
from modeldeck.monitoring.windows import MAX_WINDOWS, Window, fit_window
from modeldeck.records.model_metrics import now_ms

HOUR = 3_600_000
START = int(datetime(2024, 5, 1, tzinfo=UTC).timestamp() * 1000)
EVIL = "<script>alert(1)</script>"
GENERATED = datetime(2024, 5, 2, 8, 30, tzinfo=UTC)
BUNDLE_MARKER = "plotly.js (basic - minified) v"  # the vendored bundle's licence header
BUNDLE = PLOTLY_JS.read_text(encoding="utf-8")


def numeric_column(name: str, *, drifted: bool) -> dict[str, Any]:
    return {
        "column": name,
        "kind": "numeric",
        "method": "ks",
        "statistic": 0.001 if drifted else 0.43,
        "threshold": 0.05,
        "drifted": drifted,
        "reference_rows": 500,
        "current_rows": 300,
        "details": {
            "reference_missing": 0,
            "current_missing": 2,
            "out_of_range_share": 0.1 if drifted else 0.0,
            "distribution": {
                "bins": [0.0, 1.0, 2.0, 3.0],
                "reference": [0.5, 0.3, 0.2],
                "current": [0.2, 0.3, 0.5],
            },
        },
    }


def categorical_column(name: str, *, drifted: bool) -> dict[str, Any]:
    return {
        "column": name,
        "kind": "categorical",
        "method": "jensenshannon",
        "statistic": 0.2 if drifted else 0.01,
        "threshold": 0.1,
        "drifted": drifted,
        "reference_rows": 500,
        "current_rows": 300,
        "details": {
            "reference_missing": 0,
            "current_missing": 0,
            "unseen_share": 0.05,
            "reference_categories": 3,
            "categories_in_other": 1,
            "distribution": {
                "categories": ["red", "green", "__other__"],
                "reference": [0.6, 0.3, 0.1],
                "current": [0.3, 0.3, 0.4],
            },
        },
    }


def drift_report(
    columns: list[dict[str, Any]] | None = None, *, prediction: bool = True, binned: bool = True
) -> dict[str, Any]:
    columns = (
        columns
        if columns is not None
        else [
            numeric_column("petal_length", drifted=True),
            categorical_column("colour", drifted=False),
        ]
    )
    drifted = [c["column"] for c in columns if c["drifted"]]
    output = categorical_column("output", drifted=False)
    output["method"] = "chisquare"
    output["statistic"] = 0.6
    output["threshold"] = 0.05
    output["reference_column"] = "target"
    return {
        "deployment": "iris",
        "model_version": None,
        "start": START,
        "end": START + 24 * HOUR,
        "reference": {"source": "upload:iris.csv", "rows": 500, "model_version": None},
        "predictions": 1000,
        "mode": "binned" if binned else "raw",
        "current_rows": 300,
        "skipped_records": 0,
        "missing_columns": [],
        "dataset": {
            "drifted": len(drifted) >= len(columns) / 2,
            "drifted_share": len(drifted) / len(columns) if columns else 0.0,
            "threshold": 0.5,
            "drifted_columns": drifted,
            "columns": len(columns),
        },
        "columns": columns,
        "prediction": output if prediction else None,
    }


def classification_report(*, estimated: bool = True) -> dict[str, Any]:
    windows = []
    for i in range(4):
        for version in ("1", "2"):
            windows.append(
                {
                    "start": START + i * HOUR,
                    "end": START + (i + 1) * HOUR,
                    "model_version": version,
                    "predictions": 100,
                    "labelled": 40,
                    "label_coverage": 0.4,
                    "realised": {
                        "count": 40,
                        "accuracy": 0.9 - 0.05 * i,
                        "precision_macro": 0.81,
                        "recall_macro": 0.79,
                        "f1_macro": 0.8,
                        "per_class": {"a": {"precision": 0.8, "recall": 0.8, "f1": 0.8}},
                        "roc_auc": 0.93,
                        "log_loss": 0.31,
                    },
                    "estimated": {"count": 100, "accuracy": 0.87} if estimated else None,
                }
            )
    return {
        "deployment": "iris",
        "model_version": None,
        "task": "classification",
        "start": START,
        "end": START + 4 * HOUR,
        "step": HOUR,
        "windows": windows,
    }


def regression_report() -> dict[str, Any]:
    return {
        "deployment": "houses",
        "task": "regression",
        "start": START,
        "end": START + 2 * HOUR,
        "step": HOUR,
        "windows": [
            {
                "start": START + i * HOUR,
                "end": START + (i + 1) * HOUR,
                "model_version": "3",
                "predictions": 50,
                "labelled": 50,
                "label_coverage": 1.0,
                "realised": {"count": 50, "mae": 1.5, "rmse": 2.25, "mape": 0.12, "r2": 0.77},
                "estimated": None,
            }
            for i in range(2)
        ],
    }


def render(drift: Any, performance: Any, **kwargs: Any) -> str:
    return render_report(drift, performance, generated_at=GENERATED, **kwargs)


def charts(page: str) -> int:
    return page.count("Plotly.newPlot")


def outside_bundle(page: str) -> str:
    return page.replace(BUNDLE, "")


# -- self-contained ----------------------------------------------------------------------------


def test_the_page_loads_nothing_from_the_network() -> None:
    page = render(drift_report(), classification_report())
    lower = page.lower()
    assert "<script src" not in lower
    assert "<link" not in lower
    assert "@import" not in lower
    rest = outside_bundle(page).lower()
    assert "cdn" not in rest
    assert "http://" not in rest
    assert "https://" not in rest


def test_plotly_js_is_embedded_exactly_once() -> None:
    page = render(drift_report(), classification_report())
    assert page.count(BUNDLE) == 1
    assert page.count(BUNDLE_MARKER) == 1
    # in the head, before the first chart needs it
    assert page.index(BUNDLE_MARKER) < page.index("</head>") < page.index("Plotly.newPlot")


def test_a_small_report_is_a_small_file() -> None:
    """The basic bundle (scatter and bar) rather than all of Plotly.js: 4.8 MB became 1.2."""
    page = render(drift_report(), classification_report())
    assert len(page.encode()) < 1_500_000, len(page.encode())


def test_no_charts_means_no_bundle() -> None:
    page = render(None, None)
    assert charts(page) == 0
    assert BUNDLE_MARKER not in page
    assert len(page) < 20_000


# -- charts ------------------------------------------------------------------------------------


def test_one_chart_per_column_plus_prediction_plus_performance() -> None:
    columns = [
        numeric_column("petal_length", drifted=True),
        numeric_column("sepal_width", drifted=False),
        categorical_column("colour", drifted=False),
    ]
    page = render(drift_report(columns), classification_report())
    assert charts(page) == len(columns) + 1 + 1
    chart_ids = re.findall(r'<div id="(modeldeck-chart-\d+)"', page)
    assert len(chart_ids) == len(set(chart_ids)) == 5


def test_without_prediction_drift_there_is_no_prediction_chart() -> None:
    page = render(drift_report(prediction=False), None)
    assert charts(page) == 2
    assert "No prediction drift" in page


def test_numeric_distributions_are_plotted_at_bin_mid_points() -> None:
    columns = [numeric_column("petal_length", drifted=True)]
    page = render(drift_report(columns, prediction=False), None)
    assert '"x":[0.5,1.5,2.5]' in page
    assert '"y":[0.5,0.3,0.2]' in page  # reference shares
    assert '"y":[0.2,0.3,0.5]' in page  # current shares


def test_a_column_without_values_is_listed_but_not_charted() -> None:
    empty = numeric_column("weight", drifted=False)
    empty.update(statistic=None, current_rows=0)
    empty["details"] = {
        "reason": "no current values left after dropping missing values",
        "distribution": {"bins": [], "reference": [], "current": []},
    }
    page = render(drift_report([numeric_column("height", drifted=True), empty]), None)
    assert charts(page) == 1 + 1  # height and the prediction
    assert "weight" in page
    assert "Not tested" in page
    assert "no current values left after dropping missing values" in page


# -- content -----------------------------------------------------------------------------------


def test_header_names_the_deployment_window_reference_and_mode() -> None:
    page = render(drift_report(binned=True), classification_report())
    assert "<title>modeldeck report: iris</title>" in page
    assert "2024-05-01T00:00:00Z to 2024-05-02T00:00:00Z" in page
    assert "upload:iris.csv, 500 rows" in page
    assert "1,000, tested on five-minute summaries (binned)" in page
    assert "in steps of 1 h" in page
    assert "2024-05-02T08:30:00Z" in page

    unsampled = render(drift_report(binned=False), None, title="Weekly review")
    assert "1,000, every tracked value tested" in unsampled
    assert "<title>Weekly review</title>" in unsampled


def test_drift_table_lists_every_column_with_its_verdict() -> None:
    page = render(drift_report(), None)
    rows = re.findall(r"<tr( class=\"[a-z]+\")?><td>([^<]*)</td>.*?</tr>", page)
    by_name = {name: css for css, name in rows}
    assert by_name["petal_length"] == ' class="drifted"'
    assert by_name["colour"] == ""
    assert by_name["output (vs. reference column target)"] == ""
    assert page.count('<td class="status">Drift</td>') == 1
    assert page.count('<td class="status">No drift</td>') == 2
    for text in ("ks", "jensenshannon", "chisquare", "p &lt; 0.05", "&ge; 0.1", "0.001"):
        assert text in page
    assert "10.0% outside the reference range" in page
    assert "(other)" in page  # the folded top-k tail, in the chart labels


@pytest.mark.parametrize(
    ("drifted", "badge"),
    [(True, '<span class="badge bad">Dataset drift detected</span>'), (False, "badge ok")],
)
def test_dataset_verdict_badge(drifted: bool, badge: str) -> None:
    columns = [
        numeric_column("a", drifted=drifted),
        categorical_column("b", drifted=drifted),
    ]
    page = render(drift_report(columns), None)
    assert badge in page
    assert f"{2 if drifted else 0} of 2 columns drifted" in page


def test_drift_under_the_dataset_threshold_is_never_all_clear() -> None:
    """One drifted column of two, under a dataset threshold of 100 %: amber, not green."""
    columns = [numeric_column("a", drifted=True), categorical_column("b", drifted=False)]
    report = drift_report(columns)
    report["dataset"] = {**report["dataset"], "drifted": False, "threshold": 1.0}
    page = render(report, None)
    assert '<span class="badge warn">Drift in 1 column(s)</span>' in page
    assert "No dataset drift" not in page


def test_a_young_deployments_single_window_gets_a_readable_time_axis() -> None:
    """One window: the x-axis spans the window, not Plotly's millisecond around a point."""
    performance = classification_report()
    performance["windows"] = performance["windows"][:1]
    page = render(None, performance)
    # Half an hour-long window either side of the point at its start.
    assert '"range":["2024-04-30 23:30:00","2024-05-01 00:30:00"]' in page
    assert page.count("lines+markers") >= 2  # label coverage too: one point must show


def test_no_tested_columns_is_neither_drift_nor_no_drift() -> None:
    page = render(drift_report([]), None)
    assert "badge none" in page
    assert "Dataset drift detected" not in page
    assert "No dataset drift" not in page


def test_classification_performance_table_and_chart() -> None:
    page = render(None, classification_report())
    for heading in ("Accuracy", "F1 (macro)", "ROC AUC", "Log loss", "Est. accuracy"):
        assert f"<th>{heading}</th>" in page
    assert "Est. F1 (macro)" not in page  # no window has it
    assert page.count("<td>version 1</td>") == 4
    assert page.count("<td>version 2</td>") == 4
    assert '<td class="num">40.0%</td>' in page  # label coverage
    assert "estimated accuracy · version 2" in page
    assert "label coverage · version 1" in page
    assert '"dash":"dash"' in page
    assert charts(page) == 1


def test_without_estimates_there_is_no_estimated_line() -> None:
    page = render(None, classification_report(estimated=False))
    assert "estimated accuracy" not in page
    assert "Est. accuracy" not in page


def test_regression_performance_shows_errors() -> None:
    page = render(None, regression_report())
    for heading in ("MAE", "RMSE", "MAPE", "R²"):
        assert f"<th>{heading}</th>" in page
    assert "MAE · version 3" in page
    assert "RMSE · version 3" in page
    assert "label coverage" not in page
    assert "modeldeck report: houses" in page
    assert charts(page) == 1


def test_a_performance_report_without_windows_has_no_chart() -> None:
    report = classification_report()
    report["windows"] = []
    page = render(None, report)
    assert "No predictions in this window" in page
    assert charts(page) == 0


# -- missing reports ---------------------------------------------------------------------------


def test_without_a_drift_report_the_reason_is_given() -> None:
    page = render(None, classification_report(), drift_reason="deployment 'iris' has no <ref>")
    assert "No drift report: deployment &#x27;iris&#x27; has no &lt;ref&gt;." in page
    assert charts(page) == 1
    assert page.count(BUNDLE_MARKER) == 1


def test_without_a_performance_report_the_reason_is_given() -> None:
    page = render(drift_report(), None)
    assert "No performance report: not provided." in page
    assert charts(page) == 2 + 1


def test_without_either_report() -> None:
    page = render(None, None, performance_reason="no labels")
    assert "No drift report: not provided." in page
    assert "No performance report: no labels." in page
    assert "<title>modeldeck report</title>" in page


# -- escaping ----------------------------------------------------------------------------------


def test_user_strings_are_escaped_everywhere() -> None:
    evil_column = numeric_column(EVIL, drifted=True)
    evil_column["details"]["reason"] = EVIL
    evil_category = categorical_column("colour", drifted=False)
    evil_category["details"]["distribution"]["categories"] = [EVIL, "green", "blue"]
    drift = drift_report([evil_column, evil_category])
    drift["deployment"] = EVIL
    drift["reference"]["source"] = EVIL
    drift["missing_columns"] = [EVIL]
    performance = classification_report()
    performance["windows"][0]["model_version"] = EVIL
    page = render(drift, performance)
    assert EVIL not in page
    assert "<script>alert" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    # chart texts are escaped too, then JSON-encoded with "<", ">" and "/" as \u escapes
    assert "alert(1)\\u003c" not in page


# -- well-formed -------------------------------------------------------------------------------


VOID = {"meta", "link", "br", "hr", "img", "input", "col", "area", "base", "source", "wbr"}


class TagChecker(HTMLParser):
    """Fails on an end tag that does not close the innermost open element."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []
        self.seen: list[str] = []
        self.doctype = ""

    def handle_decl(self, decl: str) -> None:
        self.doctype = decl

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.seen.append(tag)
        if tag not in VOID:
            self.stack.append(tag)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.seen.append(tag)

    def handle_endtag(self, tag: str) -> None:
        assert self.stack, f"</{tag}> closes nothing"
        assert self.stack[-1] == tag, f"</{tag}> closes <{self.stack[-1]}>"
        self.stack.pop()


@pytest.mark.parametrize(
    ("drift", "performance"),
    [
        (drift_report(), classification_report()),
        (drift_report(prediction=False), regression_report()),
        (None, None),
    ],
    ids=["classification", "regression", "empty"],
)
def test_the_html_is_well_formed(drift: Any, performance: Any) -> None:
    page = render(drift, performance)
    checker = TagChecker()
    checker.feed(page)
    checker.close()
    assert checker.doctype.lower() == "doctype html"
    assert checker.stack == []
    assert checker.seen[:3] == ["html", "head", "meta"]
    assert checker.seen.count("body") == 1
    body = checker.seen[checker.seen.index("body") :]
    assert body.count("script") == charts(page)  # one per chart; the bundle is in the head


class FakeAnalysis:
    """What build_report asks of the analysis service, with NumPy values in its reports."""

    def __init__(self, *, reference: bool, first: int | None = None) -> None:
        self.reference = reference
        self.first = first  # when the first prediction was recorded
        self.asked: list[tuple[str, dict[str, Any]]] = []

    def window(self, name: str, **kwargs: Any) -> Window:
        return fit_window(now_ms(), self.first, **kwargs)

    def config(self, name: str) -> None:
        if name != "iris":
            raise NotFound(f"deployment {name!r} not found")

    def drift(self, name: str, **kwargs: Any) -> dict[str, Any]:
        self.asked.append(("drift", kwargs))
        if not self.reference:
            raise NotFound(f"deployment {name!r} has no reference data")
        report = drift_report()
        report["dataset"]["drifted"] = np.bool_(report["dataset"]["drifted"])
        return report

    def performance(self, name: str, **kwargs: Any) -> dict[str, Any]:
        self.asked.append(("performance", kwargs))
        report = classification_report()
        report["windows"][0]["label_coverage"] = np.float64(report["windows"][0]["label_coverage"])
        return report

    def quality(self, name: str, **kwargs: Any) -> dict[str, Any]:
        self.asked.append(("quality", kwargs))
        report = quality_report(reference=self.reference)
        report["total"]["columns"][0]["missing_share"] = np.float64(0.25)
        return report


def quality_report(*, reference: bool = True) -> dict[str, Any]:
    def column(name: str, **given: Any) -> dict[str, Any]:
        found = {
            "column": name, "kind": "numeric", "count": 90, "missing_share": 0.0,
            "type_violation_share": 0.0, "out_of_range_share": 0.0, "new_category_share": None,
            "top_new_categories": [], "constant": False, "problems": [],
        }  # fmt: skip
        return {**found, **given}

    total = {
        "predictions": 120,
        "rows": 120,
        "schema": {"unexpected_columns": ["<surprise>"], "absent_columns": []},
        "columns": [
            column("petal_length", missing_share=0.25, problems=["missing"]),
            column(
                "colour", kind="categorical", new_category_share=0.1, problems=["new_category"],
                top_new_categories=[{"value": "<b>pink</b>", "count": 12}], out_of_range_share=None,
            ),
            column("sepal_width"),
        ],
    }  # fmt: skip
    return {
        "deployment": "iris",
        "mode": "binned",
        "note": None if reference else "no reference data: ...",
        "windows": [],
        "total": total,
    }


def test_data_quality_section_highlights_columns_with_problems() -> None:
    page = render_report(None, None, quality=quality_report())
    section = page[page.index('<section id="quality">') :]
    assert "<h2>Data quality</h2>" in section and "from five-minute summaries" in section
    rows = re.findall(r"<tr( class=\"drifted\")?><td>([^<]*)</td>", section)
    assert [(bool(css), name) for css, name in rows] == [
        (True, "petal_length"), (True, "colour"), (False, "sepal_width"),
    ]  # fmt: skip
    assert "25.0%" in section and "&lt;b&gt;pink&lt;/b&gt;: 12" in section
    assert "not in the reference: &lt;surprise&gt;" in section
    assert '<section id="quality">' not in render_report(None, None)


def test_build_report_reads_both_reports_over_the_window_fitted_to_the_data() -> None:
    """As `modeldeck report` without --since/--step and the dashboard's Auto range: three days
    of data are a week in 3-hour windows, a few minutes of data five minutes in 5-second ones
    (it was a week in daily windows, one point)."""
    analysis = FakeAnalysis(reference=True, first=now_ms() - 3 * DAY_MS)
    page = build_report(analysis, "iris")  # type: ignore[arg-type]
    (_, drift), (_, performance), (_, quality) = analysis.asked
    assert (quality["start_ms"], quality["end_ms"]) == (drift["start_ms"], drift["end_ms"])
    assert performance["step_ms"] == 3 * HOUR_MS and performance["start_ms"] % (3 * HOUR_MS) == 0
    assert performance["end_ms"] - performance["start_ms"] >= 7 * DAY_MS
    assert drift["start_ms"] == performance["start_ms"] and drift["end_ms"] == performance["end_ms"]
    assert "No drift report" not in page and charts(page) > 1
    analysis = FakeAnalysis(reference=True, first=now_ms() - 120_000)
    build_report(analysis, "iris")  # type: ignore[arg-type]
    young = analysis.asked[1][1]
    assert young["step_ms"] == 5_000 and young["end_ms"] - young["start_ms"] <= 305_000
    end = START + 10 * DAY_MS
    analysis = FakeAnalysis(reference=True)
    build_report(analysis, "iris", start_ms=end - DAY_MS, end_ms=end)  # type: ignore[arg-type]
    assert analysis.asked[1][1]["step_ms"] == 30 * 60_000  # a given day: 48 windows
    assert analysis.asked[1][1]["start_ms"] == end - DAY_MS  # a given start is kept
    analysis = FakeAnalysis(reference=True)
    build_report(analysis, "iris", start_ms=0, end_ms=end)  # type: ignore[arg-type]
    step = analysis.asked[1][1]["step_ms"]  # decades: whole days, few enough windows
    assert step % DAY_MS == 0 and end / step <= MAX_WINDOWS
    analysis = FakeAnalysis(reference=True)
    build_report(analysis, "iris", start_ms=0, end_ms=end, step_ms=DAY_MS)  # type: ignore[arg-type]
    assert analysis.asked[1][1]["step_ms"] == DAY_MS  # a given step wins


def test_build_report_without_reference_data_says_why_and_keeps_performance() -> None:
    page = build_report(FakeAnalysis(reference=False), "iris")  # type: ignore[arg-type]
    assert "No drift report: deployment &#x27;iris&#x27; has no reference data." in page
    assert "<h2>Performance</h2>" in page
    assert "<h2>Data quality</h2>" in page and "no reference data" in page
    with pytest.raises(NotFound):
        build_report(FakeAnalysis(reference=True), "nope")  # type: ignore[arg-type]
