// Model metrics: predictions over time, realised and estimated performance with label
// coverage, and the latest tracked records with their delayed metrics.

import { downloadButton } from "../actions.js";
import { api } from "../api.js";
import { COLORS, UNIT_METRICS, chartBox, draw, plotText, timeLayout } from "../charts.js";
import { clear, compactJson, fmtDuration, h, localTime, plotTime, timeText } from "../dom.js";
import { AUTO, rangePicker, remember, remembered, selectField, table, windowFor } from "../ui.js";

const METRICS = {
  classification: ["accuracy", "f1_macro", "precision_macro", "recall_macro", "roc_auc", "log_loss"],
  regression: ["rmse", "mae", "mape", "r2"],
};
const ESTIMATED = new Set(["accuracy", "f1_macro", "precision_macro", "recall_macro"]);
const OTHER = "__other__";
const RECENT = 12;
const MISSING = "__missing__";

function valueName(value) {
  if (value === OTHER) return "other";
  if (value === MISSING) return "(none)";
  return plotText(value);
}

export async function modelMetricsTab(root, ctx) {
  const enc = encodeURIComponent(ctx.name);
  let range = remembered("range.model", AUTO);
  let metric = remembered(`metric.${ctx.name}`, null);
  const config = await api(`/deployments/${enc}/monitoring`);
  const predictionsChart = chartBox("predictions", "Predictions over time by predicted value");
  const performanceChart = chartBox("performance", "Realised and estimated performance over time");
  const metricBox = h("div");
  const shown = h("p", { class: "muted", id: "model-shown" });
  const note = h("p", { class: "muted", id: "performance-note" });
  const records = h("div", { id: "recent-records" });

  function metricSelect(task) {
    const names = METRICS[task] || METRICS.classification;
    if (!names.includes(metric)) metric = names[0];
    clear(metricBox, selectField({
      id: "performance-metric",
      label: "Performance metric",
      options: names.map((n) => [n, n.replace("_", " ")]),
      value: metric,
      onChange: (value) => {
        metric = value;
        remember(`metric.${ctx.name}`, value);
        refresh();
      },
    }));
  }

  async function refresh() {
    // The platform's window (as the CLI and the report get it): fitted to the data for
    // "auto", windows on whole steps; steps of five minutes or more are assembled from its
    // five-minute summaries instead of reading every prediction.
    const { start, end, step } = await windowFor(ctx.name, range);
    const window = { start, end, step };
    const [distribution, performance, recent] = await Promise.all([
      api(`/deployments/${enc}/metrics/model/distribution`, { query: window }),
      api(`/deployments/${enc}/performance`, { query: window }),
      api(`/deployments/${enc}/metrics/model/recent`, { query: { limit: RECENT } }),
    ]);
    const revision = `${range.preset}|${range.start || ""}|${range.end || ""}`;
    shown.textContent = `${localTime(window.start)} → ${localTime(window.end)}, windows of ${fmtDuration(step)}`;
    drawDistribution(distribution, window, revision);
    if (!metricBox.firstChild || performance.task) metricSelect(performance.task || "classification");
    drawPerformance(performance, window, revision);
    renderRecords(recent.records);
  }

  function drawDistribution(report, window, revision) {
    const x = report.points.map((p) => plotTime(p.t + report.step / 2));
    let traces;
    if (report.kind === "numeric") {
      traces = [
        { type: "scatter", mode: "lines", name: "min", line: { width: 0 }, x, y: report.points.map((p) => p.min), showlegend: false },
        { type: "scatter", mode: "lines", name: "min–max", fill: "tonexty", fillcolor: "rgba(0,114,178,0.15)", line: { width: 0 }, x, y: report.points.map((p) => p.max) },
        { type: "scatter", mode: "lines+markers", name: "mean", x, y: report.points.map((p) => p.mean) },
      ];
    } else {
      traces = report.values.map((value, i) => ({
        type: "bar",
        name: valueName(value),
        marker: { color: COLORS[i % COLORS.length] },
        x,
        y: report.points.map((p) => p.counts[value] || 0),
      }));
    }
    const layout = timeLayout({
      title: `Predictions (${plotText(report.key)}) per ${fmtDuration(report.step / 1000)}` +
        (report.sampled ? " — shares from a sample" : ""),
      yTitle: report.kind === "numeric" ? plotText(report.key) : "predictions",
      start: window.start, end: window.end, revision, step: window.step,
      extra: { barmode: "stack", bargap: 0.1 },
    });
    return draw(predictionsChart, traces, layout);
  }

  function drawPerformance(report, window, revision) {
    const byVersion = new Map();
    for (const w of report.windows) {
      if (!byVersion.has(w.model_version)) byVersion.set(w.model_version, []);
      byVersion.get(w.model_version).push(w);
    }
    const traces = [];
    let i = 0;
    let labelled = 0;
    for (const [version, windows] of byVersion) {
      const color = COLORS[i % COLORS.length];
      const x = windows.map((w) => plotTime((w.start + w.end) / 2));
      const realised = windows.map((w) => (w.realised ? w.realised[metric] ?? null : null));
      labelled += realised.filter((v) => v !== null).length;
      traces.push({ type: "scatter", mode: "lines+markers", name: `v${version} realised`, line: { color }, cliponaxis: false, x, y: realised });
      if (ESTIMATED.has(metric) && windows.some((w) => w.estimated)) {
        traces.push({
          type: "scatter", mode: "lines+markers", name: `v${version} estimated`, cliponaxis: false,
          line: { color, dash: "dash" }, marker: { symbol: "diamond-open" }, x,
          y: windows.map((w) => (w.estimated ? w.estimated[metric] ?? null : null)),
        });
      }
      traces.push({
        type: "bar", name: `v${version} label coverage`, yaxis: "y2", opacity: 0.25,
        marker: { color }, x, y: windows.map((w) => w.label_coverage),
        hovertemplate: "%{y:.0%} labelled<extra></extra>",
      });
      i += 1;
    }
    note.textContent = report.windows.length && !labelled
      ? "No ground truth has arrived in this range yet: the estimate (dashed) is all there is."
      : "Solid: realised (from delayed ground truth). Dashed: estimated from the model's confidence. Bars: share of predictions labelled (right axis).";
    const layout = timeLayout({
      title: `Performance: ${metric.replace("_", " ")}${report.task ? ` (${report.task})` : ""}`,
      yTitle: metric, start: window.start, end: window.end, revision, step: window.step,
      extra: {
        yaxis2: { title: { text: "label coverage" }, overlaying: "y", side: "right", range: [0, 1], tickmode: "array", tickvals: [0, 0.25, 0.5, 0.75, 1], tickformat: ".0%", showgrid: false },
        margin: { l: 60, r: 60, t: 38, b: 68 },
      },
    });
    // Accuracy and its kin live in [0, 1]: a fixed axis, so that a dip of one point does not
    // fill the chart as a crash would. The others (log loss, errors, R²) fit their values.
    if (UNIT_METRICS.has(metric)) Object.assign(layout.yaxis, { range: [0, 1], autorange: false, tickformat: ".0%" });
    else layout.yaxis.rangemode = "normal";
    return draw(performanceChart, traces, layout);
  }

  function renderRecords(rows) {
    const known = new Set([config.input_key, config.output_key]);
    clear(records, table({
      id: "recent-records-table",
      columns: [
        { label: "Time" }, { label: "Prediction UUID" }, { label: "Version" },
        { label: "Input", cls: "json" }, { label: "Output", cls: "json" }, { label: "Other tracked", cls: "json" },
        { label: "Delayed metrics", cls: "json" }, { label: "Arrived" },
      ],
      rows: rows.map((r) => {
        const other = Object.fromEntries(Object.entries(r.metrics || {}).filter(([k]) => !known.has(k)));
        return [
          timeText(r.end_ms, "record-time"),
          h("code", { class: "uuid" }, r.uuid),
          r.model_version || "—",
          h("span", { class: "mono" }, compactJson(r.metrics[config.input_key])),
          h("span", { class: "mono" }, compactJson(r.metrics[config.output_key])),
          Object.keys(other).length ? h("span", { class: "mono" }, compactJson(other)) : "",
          Object.keys(r.delayed).length ? h("span", { class: "mono" }, compactJson(r.delayed)) : h("span", { class: "muted" }, "none yet"),
          timeText(r.delayed_at),
        ];
      }),
      empty: "No predictions recorded yet.",
    }));
  }

  clear(root,
    h("div", { class: "toolbar" },
      rangePicker({
        id: "model-range",
        value: range,
        onChange: (value) => {
          range = value;
          remember("range.model", value);
          refresh();
        },
      }),
      metricBox,
      h("div", { class: "spacer" }),
      shown),
    h("div", { class: "charts" }, predictionsChart, h("div", {}, performanceChart, note)),
    h("section", { class: "panel", "aria-labelledby": "records-title" },
      h("div", { class: "page-head" },
        h("h2", { id: "records-title" }, "Latest predictions"),
        h("div", { class: "actions" }, downloadButton({
          id: "download-csv",
          label: "Download CSV",
          path: `/deployments/${enc}/metrics/model/csv`,
          query: async () => {
            const { start, end } = await windowFor(ctx.name, range);
            return { start, end };
          },
          saved: "Saved the range's predictions as CSV",
          said: (headers) => {
            const rows = Number(headers.get("X-Modeldeck-Rows") || 0).toLocaleString("en-US");
            return headers.get("X-Modeldeck-Truncated") === "true"
              ? `(the first ${rows}; narrow the range for the rest).`
              : `(${rows} rows).`;
          },
        }))),
      h("p", { class: "muted" }, `The ${RECENT} most recent tracked records; delayed metrics (ground truth under "${config.label_key}") are joined by the prediction's UUID.`),
      records));
  await refresh();
  return { refresh };
}
