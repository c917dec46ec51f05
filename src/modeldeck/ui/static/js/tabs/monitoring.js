// Monitoring: the seven technical charts on one time axis, and requests per replica.

import { api } from "../api.js";
import { chartBox, draw, linkTimeAxes, series, timeLayout } from "../charts.js";
import { clear, fmtDuration, fmtInt, fmtPercent, h, localTime, plotTime } from "../dom.js";
import { AUTO, rangePicker, remember, remembered, selectField, table, windowFor } from "../ui.js";

const CHARTS = [
  ["rps", "Requests per second"],
  ["requests", "Total requests"],
  ["failures", "Failed requests"],
  ["latency", "Response time"],
  ["cpu", "CPU per replica"],
  ["memory", "Memory per replica"],
  ["sizes", "Request and response sizes"],
];
const MIB = 1024 * 1024;
// Latency and sizes have no value where there were no requests: markers show lone points.
const GAPPY = { type: "scatter", mode: "lines+markers", marker: { size: 4 }, connectgaps: false };

function replicaLabel(replica) {
  return replica === "gateway" ? "Gateway (refused)" : `Replica ${replica}`;
}

function resourceTraces(resources, key, scale, selected) {
  const traces = Object.entries(resources.per_replica).map(([index, points]) => ({
    type: "scatter",
    mode: "lines+markers",
    marker: { size: 3 },
    name: `replica ${index}`,
    x: points.map((p) => plotTime(p.t)),
    y: points.map((p) => p[key] / scale),
  }));
  if (selected === "all" && traces.length > 1) {
    traces.push({
      type: "scatter",
      mode: "lines",
      name: "all replicas",
      line: { dash: "dot", color: "#424a53" },
      x: resources.all.map((p) => plotTime(p.t)),
      y: resources.all.map((p) => p[key] / scale),
    });
  }
  return traces;
}

export async function monitoringTab(root, ctx) {
  const path = `/deployments/${encodeURIComponent(ctx.name)}/metrics/technical`;
  let range = remembered("range.monitoring", AUTO);
  let replica = remembered(`replica.${ctx.name}`, "all");
  const charts = Object.fromEntries(CHARTS.map(([key, label]) => [key, chartBox(key, label)]));
  const tableBox = h("div", { id: "replica-table" });
  const shown = h("p", { class: "muted", id: "monitoring-shown" });
  const replicaBox = h("div");
  let linked = false;
  let shownOptions = "";

  const renderReplicaSelect = () => {
    const d = ctx.deployment();
    const indexes = new Set([...Array(d.replicas).keys(), ...d.replica_states.map((r) => r.index)]);
    const options = [
      ["all", "All replicas"],
      ...[...indexes].sort((a, b) => a - b).map((i) => [String(i), `Replica ${i}`]),
      ["-1", "Gateway (refused)"],
    ];
    if (!options.some(([v]) => v === String(replica))) replica = "all";
    if (JSON.stringify(options) === shownOptions) return;
    shownOptions = JSON.stringify(options);
    clear(replicaBox, selectField({
      id: "replica-select",
      label: "Replica",
      options,
      value: replica,
      onChange: (value) => {
        replica = value;
        remember(`replica.${ctx.name}`, value);
        refresh();
      },
    }));
  };

  async function refresh() {
    // The range as the platform fits it ("auto": since the first prediction); the technical
    // series picks its own step (whole five-second buckets).
    const { start, end } = await windowFor(ctx.name, range);
    const data = await api(path, {
      query: { start, end, replica: replica === "all" ? null : replica },
    });
    const revision = `${range.preset}|${range.start || ""}|${range.end || ""}|${replica}`;
    const layout = (title, yTitle, extra) =>
      timeLayout({ title, yTitle, start: data.start, end: data.end, revision, step: data.step / 1000, extra });
    const points = data.requests;
    const totals = data.totals;
    shown.textContent = `${localTime(data.start)} → ${localTime(data.end)}, one point per ${fmtDuration(data.step / 1000)}`;

    await draw(charts.rps, [{ type: "scatter", mode: "lines", name: "requests/s", ...series(points, "rps") }],
      layout("Requests per second", "requests/s"));
    let running = 0;
    const cumulative = points.map((p) => (running += p.requests));
    await draw(charts.requests,
      [{ type: "scatter", mode: "lines", name: "total", fill: "tozeroy", x: points.map((p) => plotTime(p.t)), y: cumulative }],
      layout(`Total requests: ${fmtInt(totals.requests)}`, "requests"));
    const failedShare = totals.requests ? ` (${fmtPercent(totals.failed / totals.requests)})` : "";
    await draw(charts.failures, [
      { type: "bar", name: "4xx", marker: { color: "#E69F00" }, ...series(points, "failed_4xx") },
      { type: "bar", name: "5xx", marker: { color: "#D55E00" }, ...series(points, "failed_5xx") },
      { type: "bar", name: "other", marker: { color: "#CC79A7" }, ...series(points, "failed_other") },
    ], layout(`Failed requests: ${fmtInt(totals.failed)}${failedShare}`, "requests", { barmode: "stack" }));
    await draw(charts.latency, [
      { ...GAPPY, name: "p50", ...series(points, "latency_p50_ms") },
      { ...GAPPY, name: "p95", ...series(points, "latency_p95_ms") },
      { ...GAPPY, name: "p99", ...series(points, "latency_p99_ms") },
      { ...GAPPY, name: "mean", line: { dash: "dot" }, ...series(points, "latency_mean_ms") },
      { ...GAPPY, name: "max", line: { dash: "dash", width: 1 }, visible: "legendonly", ...series(points, "latency_max_ms") },
    ], layout("Response time", "ms"));
    await draw(charts.cpu, resourceTraces(data.resources, "cpu_percent", 1, replica),
      layout("CPU", "% of one core"));
    await draw(charts.memory, resourceTraces(data.resources, "rss_bytes", MIB, replica),
      layout("Memory (resident)", "MiB"));
    await draw(charts.sizes, [
      { ...GAPPY, name: "request (mean)", ...series(points, "request_bytes_mean") },
      { ...GAPPY, name: "response (mean)", ...series(points, "response_bytes_mean") },
      { ...GAPPY, name: "request (max)", line: { dash: "dot" }, visible: "legendonly", ...series(points, "request_bytes_max") },
      { ...GAPPY, name: "response (max)", line: { dash: "dot" }, visible: "legendonly", ...series(points, "response_bytes_max") },
    ], layout("Request and response sizes", "bytes"));
    if (!linked) {
      linkTimeAxes(Object.values(charts));
      linked = true;
    }
    renderTable(data.replicas);
  }

  function renderTable(replicas) {
    const sum = (key) => replicas.reduce((n, r) => n + r[key], 0);
    const received = sum("received");
    const failed = sum("failed");
    const cell = (key, value) => h("span", { dataset: { total: key } }, fmtInt(value));
    clear(tableBox, table({
      id: "replica-table-data",
      columns: [
        { label: "Replica" }, { label: "Received", num: true }, { label: "Success", num: true },
        { label: "Failed", num: true }, { label: "Failure rate", num: true },
      ],
      rows: replicas.map((r) => [
        replicaLabel(r.replica), fmtInt(r.received), fmtInt(r.success), fmtInt(r.failed),
        r.received ? fmtPercent(r.failed / r.received) : "—",
      ]),
      foot: ["Total", cell("received", received), cell("success", sum("success")), cell("failed", failed),
        received ? fmtPercent(failed / received) : "—"],
      empty: "No requests in this range.",
    }));
  }

  renderReplicaSelect();
  clear(root,
    h("div", { class: "toolbar" },
      rangePicker({
        id: "monitoring-range",
        value: range,
        onChange: (value) => {
          range = value;
          remember("range.monitoring", value);
          refresh();
        },
      }),
      replicaBox,
      h("div", { class: "spacer" }),
      shown),
    h("div", { class: "charts", id: "monitoring-charts" }, Object.values(charts)),
    h("section", { class: "panel", "aria-labelledby": "replica-table-title" },
      h("h2", { id: "replica-table-title" }, "Requests per replica"),
      h("p", { class: "muted" }, "Every replica over the chosen range; the gateway row counts requests refused before reaching a replica (wrong key, body too large, no ready replica)."),
      tableBox));
  await refresh();
  return { refresh, onDeployment: renderReplicaSelect };
}
