// Drift: the dataset verdict, then every feature (and the prediction) against the reference,
// then each column's verdict window by window (drift over time), then the data quality of
// every feature (missing values, types, ranges, categories).

import { downloadButton } from "../actions.js";
import { api } from "../api.js";
import { chartBox, draw, miniDistribution, purge, timeLayout } from "../charts.js";
import { badge, clear, fmtInt, fmtNumber, fmtPercent, h, localTime, plotTime, VERDICT_TONES } from "../dom.js";
import { AUTO, rangePicker, remember, remembered, table, windowFor } from "../ui.js";

const P_VALUE_METHODS = new Set(["ks", "chisquare", "z"]);

function verdict(column, enough) {
  if (column.drifted === null || column.drifted === undefined) return badge("not tested", "off");
  if (!enough) return badge("not enough data", "info");
  return column.drifted ? badge("drift", "bad") : badge("no drift", "ok");
}

function rule(column) {
  if (column.threshold === null || column.threshold === undefined) return "—";
  return P_VALUE_METHODS.has(column.method) ? `p < ${column.threshold}` : `≥ ${column.threshold}`;
}

function extra(column) {
  const d = column.details || {};
  const notes = [];
  if (d.unseen_share) notes.push(`${fmtPercent(d.unseen_share)} unseen`);
  if (d.out_of_range_share) notes.push(`${fmtPercent(d.out_of_range_share)} out of range`);
  if (d.current_missing) notes.push(`${fmtInt(d.current_missing)} missing`);
  if (column.invalid_values) notes.push(`${fmtInt(column.invalid_values)} invalid`);
  return notes.join(", ");
}

// A share of rows with a problem: a red badge when above zero, "—" when it cannot be known.
function problemShare(value, problem) {
  if (value === null || value === undefined) return h("span", { class: "muted" }, "—");
  if (value > 0) return h("span", { class: "badge bad", dataset: { problem } }, fmtPercent(value));
  return fmtPercent(value);
}

function renderQuality(container, report) {
  const total = report.total;
  const rows = total.columns.map((c) => {
    const unseen = (c.top_new_categories || []).map((t) => t.value).join(", ");
    return [
      h("span", { dataset: { column: c.column, problems: c.problems.join(" ") } }, c.column),
      c.kind,
      problemShare(c.missing_share, "missing"),
      problemShare(c.type_violation_share, "type_violation"),
      problemShare(c.out_of_range_share, "out_of_range"),
      h("span", {}, problemShare(c.new_category_share, "new_category"), unseen ? ` ${unseen}` : ""),
      c.constant ? badge("constant", "bad") : "no",
    ];
  });
  const notes = [];
  if (report.note) notes.push(h("div", { class: "banner warn" }, report.note, "."));
  const schema = total.schema;
  if (schema.unexpected_columns.length) notes.push(h("p", { class: "muted" }, `Not in the reference: ${schema.unexpected_columns.join(", ")}.`));
  if (schema.absent_columns.length) notes.push(h("p", { class: "muted" }, `Never in the predictions: ${schema.absent_columns.join(", ")}.`));
  clear(container, ...notes, table({
    id: "quality-table",
    columns: [
      { label: "Column" }, { label: "Kind" }, { label: "Missing", num: true }, { label: "Wrong type", num: true },
      { label: "Out of range", num: true }, { label: "New categories" }, { label: "Constant" },
    ],
    rows,
    empty: "No monitored columns.",
  }), h("p", { class: "muted" },
    `${fmtInt(total.rows)} rows from ${fmtInt(total.predictions)} predictions`,
    report.mode === "binned" ? ", from five-minute summaries" : "", "."));
}

// Drift over time: one row per column, one square per window, coloured by the window's verdict.
const MARKS = [
  ["ok", "#009E73", "no drift"],
  ["drift", "#D55E00", "drift"],
  ["few", "#E69F00", "too few rows for a verdict"],
];

function renderOverTime(container, found) {
  const prediction = (found.windows.find((w) => w.prediction) || {}).prediction;
  const rows = found.columns.map((c) => [c, (w) => w.columns[c]]);
  if (prediction) rows.push([`prediction (${prediction.column})`, (w) => w.prediction]);
  const traces = MARKS.map(([, color, name]) => ({
    type: "scatter", mode: "markers", name, x: [], y: [], text: [],
    marker: { symbol: "square", size: 11, color },
    hovertemplate: "%{y}<br>%{x}<br>%{text}<extra></extra>",
  }));
  const byKind = Object.fromEntries(MARKS.map(([kind], i) => [kind, traces[i]]));
  let drifted = 0;
  for (const w of found.windows) {
    for (const [label, testOf] of rows) {
      const test = testOf(w);
      if (!test || !test.current_rows) continue;
      const kind = w.verdict === "not_enough_data" ? "few" : test.drifted ? "drift" : "ok";
      if (kind === "drift") drifted += 1;
      const measured = test.p_value === null ? `distance ${fmtNumber(test.distance)}` : `p-value ${fmtNumber(test.p_value)}`;
      const trace = byKind[kind];
      trace.x.push(plotTime(w.start));
      trace.y.push(label);
      trace.text.push(`${test.method}: ${measured}, threshold ${fmtNumber(test.threshold)}; ${fmtInt(test.current_rows)} rows`);
    }
  }
  const chart = chartBox("drift-over-time", `Drift of each column per window: ${drifted} drifted column-windows`);
  Object.assign(chart.dataset, { drifted: String(drifted), start: found.start, end: found.end, step: found.step });
  clear(container, chart);
  const labels = rows.map(([label]) => label);
  return draw(chart, traces, timeLayout({
    title: `Each column per ${found.step % 60000 ? `${found.step / 1000} s` : `${found.step / 60000} min`} window`,
    yTitle: "",
    start: found.start,
    end: found.end,
    step: found.step / 1000,
    revision: `${found.start}-${found.step}`,
    extra: {
      height: 110 + 28 * labels.length,
      margin: { l: 150, r: 20, t: 38, b: 68 },
      yaxis: { type: "category", categoryorder: "array", categoryarray: [...labels].reverse(), automargin: true, gridcolor: "#eaeef2" },
      hovermode: "closest",
    },
  }));
}

export async function driftTab(root, ctx) {
  const enc = encodeURIComponent(ctx.name);
  let range = remembered("range.drift", AUTO);
  const summary = h("div", { id: "drift-summary" });
  const columns = h("div", { id: "drift-columns" });
  const shown = h("p", { class: "muted", id: "drift-shown" });
  const quality = h("div", { id: "drift-quality" });
  const overTime = h("div", { id: "drift-over-time" });

  async function refreshOverTime(start, end, step) {
    try {
      const found = await api(`/deployments/${enc}/drift/series`, { query: { start, end, step } });
      await renderOverTime(overTime, found);
    } catch (exc) {
      if (exc.status === 401) throw exc;
      purge(overTime);
      clear(overTime, h("p", { class: "muted" }, exc.message));
    }
  }

  async function refreshQuality(start, end) {
    try {
      renderQuality(quality, await api(`/deployments/${enc}/quality`, { query: { start, end } }));
    } catch (exc) {
      if (exc.status === 401) throw exc;
      clear(quality, h("div", { class: "banner warn", role: "alert" }, exc.message));
    }
  }

  async function refresh() {
    let report;
    let overTimeDrawn = Promise.resolve();
    try {
      // The platform's window: for "auto", from the first prediction to now.
      const { start, end, step } = await windowFor(ctx.name, range);
      // Data quality needs no reference data: shown whatever the drift report says.
      const measured = refreshQuality(start, end);
      // A drift test per window: the slowest part, drawn when it comes.
      overTimeDrawn = refreshOverTime(start, end, step);
      report = await api(`/deployments/${enc}/drift`, { query: { start, end } });
      await measured;
    } catch (exc) {
      if (exc.status === 401) throw exc;
      clear(summary, h("div", { class: "banner warn", role: "alert" }, exc.message,
        " Reference data comes from the MLflow run (reference_data.parquet) or ",
        h("code", {}, `modeldeck reference set ${ctx.name} FILE`), "."));
      clear(columns);
      await overTimeDrawn; // says why there is nothing to draw
      return;
    }
    shown.textContent = `${localTime(report.start)} → ${localTime(report.end)}`;
    renderSummary(report);
    await renderColumns(report);
    await overTimeDrawn;
  }

  function renderSummary(report) {
    const ds = report.dataset;
    const v = report.verdict;
    const tone = VERDICT_TONES[v.level];
    const headline = v.level === "no_data"
      ? "No predictions in this window."
      : v.level === "not_enough_data"
        ? `Not enough data for a verdict: ${fmtInt(v.current_rows)} rows, ${fmtInt(v.min_samples)} needed.`
        : `${v.level === "ok" ? "No drift" : v.level === "warn" ? "Some drift" : "Drift detected"}: ` +
          `${v.drifted_columns} of ${v.columns} columns drifted` +
          (ds.drifted ? ` (dataset drift, threshold ${fmtPercent(ds.threshold, 0)})` : ` (dataset drift from ${fmtPercent(ds.threshold, 0)})`) +
          (v.prediction_drifted === null ? "." : v.prediction_drifted ? "; the prediction drifted." : "; the prediction did not drift.");
    const ref = report.reference || {};
    clear(summary,
      h("div", { class: `banner ${tone}`, id: "dataset-verdict", dataset: { drifted: String(Boolean(ds.drifted)), verdict: v.level } }, headline),
      h("p", { class: "muted" },
        `Reference: ${ref.source || "—"} (${fmtInt(ref.rows)} rows). `,
        `Current: ${fmtInt(report.current_rows)} rows from ${fmtInt(report.predictions)} predictions`,
        report.mode === "binned" ? ", tested on five-minute summaries (binned)" : "",
        ".",
        report.missing_columns && report.missing_columns.length ? ` Not in the predictions: ${report.missing_columns.join(", ")}.` : ""));
  }

  function renderColumns(report) {
    const all = [...report.columns];
    if (report.prediction) all.push({ ...report.prediction, column: `prediction (${report.prediction.column})`, isPrediction: true });
    const charts = [];
    purge(columns);
    const rows = all.map((c) => {
      const distribution = c.details && c.details.distribution;
      const chart = distribution
        ? h("div", { class: "mini-chart", dataset: { chart: `drift-${c.column}` }, role: "img", "aria-label": `Distribution of ${c.column}: reference in grey, current in blue` })
        : h("span", { class: "muted" }, "—");
      if (distribution) charts.push([chart, distribution]);
      return [
        c.isPrediction ? h("strong", {}, c.column) : c.column,
        c.kind,
        c.method || "—",
        // A test's own statistic (KS's D, chi-square, z) or the distance; then the p-value.
        h("span", { class: "mono" }, fmtNumber(c.p_value === null ? c.distance : c.test_statistic)),
        h("span", { class: "mono" }, fmtNumber(c.p_value)),
        rule(c),
        verdict(c, report.verdict.current_rows >= report.verdict.min_samples),
        `${fmtInt(c.reference_rows)} / ${fmtInt(c.current_rows)}`,
        extra(c),
        chart,
      ];
    });
    clear(columns, table({
      id: "drift-table",
      columns: [
        { label: "Column" }, { label: "Kind" }, { label: "Method" }, { label: "Statistic", num: true }, { label: "p-value", num: true },
        { label: "Drifts when" }, { label: "Verdict" }, { label: "Rows (ref / current)", num: true },
        { label: "Notes" }, { label: "Distribution (reference grey, current blue)" },
      ],
      rows,
      empty: "No monitored columns.",
    }));
    return Promise.all(charts.map(([el, distribution]) => miniDistribution(el, distribution)));
  }

  clear(root,
    h("div", { class: "toolbar" },
      rangePicker({
        id: "drift-range",
        label: "Window",
        value: range,
        onChange: (value) => {
          range = value;
          remember("range.drift", value);
          refresh();
        },
      }),
      h("div", { class: "spacer" }),
      shown,
      downloadButton({
        id: "download-report",
        label: "Download report",
        path: `/deployments/${enc}/report`,
        query: async () => {
          // The window shown, in the windows the Model metrics tab draws.
          const { start, end, step } = await windowFor(ctx.name, range);
          return { start, end, step };
        },
        saved: "Saved the drift, performance and data-quality report of this window (HTML).",
      })),
    summary,
    h("section", { class: "panel", "aria-labelledby": "drift-title" },
      h("h2", { id: "drift-title" }, "Per column"),
      columns),
    h("section", { class: "panel", "aria-labelledby": "drift-time-title" },
      h("h2", { id: "drift-time-title" }, "Over time"),
      overTime),
    h("section", { class: "panel", "aria-labelledby": "quality-title" },
      h("h2", { id: "quality-title" }, "Data quality"),
      quality));
  await refresh();
  return { refresh };
}
