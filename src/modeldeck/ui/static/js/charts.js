// Plotly.js (served by the platform from the installed plotly package) with one look.

import { h, plotTime } from "./dom.js";

// Okabe-Ito: distinguishable with the common colour-vision deficiencies.
export const COLORS = ["#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000", "#F0E442"];

const CONFIG = {
  displaylogo: false,
  responsive: true,
  modeBarButtonsToRemove: ["lasso2d", "select2d", "autoScale2d"],
};

export function plotly() {
  if (!window.Plotly) throw new Error("Plotly.js did not load");
  return window.Plotly;
}

/** A chart's container: `key` names it for tests and screenshots (data-chart). */
export function chartBox(key, label) {
  return h("div", { class: "chart", dataset: { chart: key }, role: "img", "aria-label": label });
}

// Metrics that live in [0, 1]: their axis is fixed there, so a one-point dip reads as one.
export const UNIT_METRICS = new Set(["accuracy", "f1_macro", "precision_macro", "recall_macro", "roc_auc"]);

/** How a time under the pointer reads: to the second when windows are shorter than a minute
 * (`step` in seconds), else to the minute. */
export function hoverFormat(step) {
  return step && step % 60 ? "%Y-%m-%d %H:%M:%S" : "%Y-%m-%d %H:%M";
}

export function timeLayout({ title, yTitle, start, end, revision, step, extra = {} }) {
  return {
    title: { text: title, font: { size: 14 }, x: 0.01, xanchor: "left" },
    height: 286,
    margin: { l: 60, r: 20, t: 38, b: 68 },
    xaxis: { type: "date", range: [plotTime(start), plotTime(end)], showgrid: true, gridcolor: "#eaeef2", hoverformat: hoverFormat(step) },
    yaxis: { title: { text: yTitle }, rangemode: "tozero", gridcolor: "#eaeef2", zeroline: true, zerolinecolor: "#d0d7de" },
    legend: { orientation: "h", x: 0, y: -0.27, yanchor: "top", font: { size: 11 } },
    hovermode: "x unified",
    paper_bgcolor: "#ffffff",
    plot_bgcolor: "#ffffff",
    font: { family: "system-ui, -apple-system, Segoe UI, Roboto, DejaVu Sans, sans-serif", size: 12, color: "#1f2328" },
    colorway: COLORS,
    uirevision: revision,
    ...extra,
  };
}

export function draw(el, traces, layout, config = {}) {
  return plotly().react(el, traces, layout, { ...CONFIG, ...config });
}

export function series(points, key) {
  return {
    x: points.map((p) => plotTime(p.t)),
    y: points.map((p) => (p[key] === undefined ? null : p[key])),
  };
}

/** Zooming one chart zooms the others: the monitoring charts share one time axis. */
export function linkTimeAxes(elements) {
  let busy = false;
  for (const el of elements) {
    el.on("plotly_relayout", (change) => {
      if (busy) return;
      const update = {};
      if (change["xaxis.autorange"]) update["xaxis.autorange"] = true;
      else if (change["xaxis.range[0]"] !== undefined) {
        update["xaxis.range"] = [change["xaxis.range[0]"], change["xaxis.range[1]"]];
      } else if (Array.isArray(change["xaxis.range"])) update["xaxis.range"] = change["xaxis.range"];
      else return;
      busy = true;
      Promise.all(elements.filter((other) => other !== el && other.data).map((other) => plotly().relayout(other, update)))
        .finally(() => {
          busy = false;
        });
    });
  }
}

const PLOT_ENTITIES = { "&": "&amp;", "<": "&lt;", ">": "&gt;" };

/**
 * Text from data (a predicted class, a category, a metric key) made safe for a chart: Plotly
 * renders trace names, titles and tick labels as a subset of HTML (links included), so markup
 * in a value must show as text.
 */
export function plotText(value) {
  return String(value).replace(/[&<>]/g, (c) => PLOT_ENTITIES[c]);
}

/** A small static chart comparing reference and current shares (drift table). */
export function miniDistribution(el, distribution) {
  let x;
  if (distribution.categories) x = distribution.categories.map(plotText);
  else {
    const bins = distribution.bins || [];
    x = bins.slice(0, -1).map((lo, i) => Number(((lo + bins[i + 1]) / 2).toPrecision(3)));
  }
  const traces = [
    { type: "bar", name: "reference", x, y: distribution.reference, marker: { color: "#8c959f" } },
    { type: "bar", name: "current", x, y: distribution.current, marker: { color: COLORS[0] } },
  ];
  const layout = {
    width: 260,
    height: 86,
    margin: { l: 4, r: 4, t: 4, b: 18 },
    barmode: "group",
    bargap: 0.15,
    showlegend: false,
    xaxis: { type: distribution.categories ? "category" : "linear", tickfont: { size: 9 }, fixedrange: true },
    yaxis: { visible: false, fixedrange: true },
    paper_bgcolor: "#ffffff",
    plot_bgcolor: "#ffffff",
  };
  return plotly().react(el, traces, layout, { staticPlot: true });
}

export function purge(root) {
  if (!window.Plotly || !root) return;
  for (const el of root.querySelectorAll(".js-plotly-plot")) window.Plotly.purge(el);
}
