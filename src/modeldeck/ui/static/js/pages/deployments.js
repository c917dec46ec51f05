// Every deployment at a glance: status, replicas, the last hour's traffic, drift and alerts.

import { api } from "../api.js";
import {
  autoscaled,
  badge,
  clear,
  fmtInt,
  fmtMs,
  fmtPercent,
  h,
  noAuthBadge,
  statusTone,
  VERDICT_TONES,
} from "../dom.js";
import { deploymentActions, deployDialog } from "../actions.js";
import { keepFocus, showError, table } from "../ui.js";

const HOUR = 3600e3;
const DAY = 24 * HOUR;
const DRIFT_EVERY = 5 * 60e3; // drift is heavier: at most every five minutes per deployment

function versionText(d) {
  if (d.source === "file") return `${d.function_name} in ${d.file_path}`;
  const spec = d.version_spec && d.version_spec !== d.version ? ` (${d.version_spec})` : "";
  return d.version ? `v${d.version}${spec}` : "—";
}

function driftCell(entry) {
  if (!entry) return h("span", { class: "muted" }, "…");
  if (entry.error) return h("span", { class: "muted", title: entry.error }, "n/a");
  const { verdict } = entry.report;
  if (verdict.level === "no_data") return h("span", { class: "muted" }, "no data");
  if (verdict.level === "not_enough_data") {
    return h("span", { class: `badge ${VERDICT_TONES.not_enough_data}`, title: verdict.text, dataset: { verdict: verdict.level } }, "not enough data");
  }
  const prediction = verdict.prediction_drifted ? ", prediction" : "";
  const said = verdict.level === "ok"
    ? "no drift"
    : `${verdict.drifted_columns}/${verdict.columns} columns${prediction}`;
  return h("span", { class: `badge ${VERDICT_TONES[verdict.level]}`, title: verdict.text, dataset: { verdict: verdict.level } }, said);
}

export async function deploymentsPage(root) {
  const drift = new Map(); // name -> {at, report | error}
  const rows = h("div", { id: "deployments-table" });
  const deploy = h("button", { type: "button", class: "button primary", id: "deploy-button" }, "Deploy a model…");
  clear(
    root,
    h("div", { class: "page-head" },
      h("div", {}, h("h1", {}, "Deployments"),
        h("p", { class: "subtitle" }, "Requests, errors and latency over the last hour; drift over the last 24 hours.")),
      h("div", { class: "actions" }, deploy)),
    h("section", { class: "panel", "aria-label": "Deployments" }, rows),
  );

  async function driftOf(name) {
    const known = drift.get(name);
    if (known && Date.now() - known.at < DRIFT_EVERY) return;
    try {
      const report = await api(`/deployments/${encodeURIComponent(name)}/drift`, {
        query: { start: Date.now() - DAY },
      });
      drift.set(name, { at: Date.now(), report });
    } catch (exc) {
      if (exc.status === 401) throw exc;
      drift.set(name, { at: Date.now(), error: exc.message });
    }
  }

  async function refresh() {
    const [deployments, rules] = await Promise.all([api("/deployments"), api("/alerts/rules")]);
    const end = Date.now();
    const technical = await Promise.all(
      deployments.map((d) =>
        d.kind === "endpoint"
          ? api(`/deployments/${encodeURIComponent(d.name)}/metrics/technical`, {
              query: { start: end - HOUR, end, step: 3600 },
            }).catch((exc) => ({ error: exc.message }))
          : null,
      ),
    );
    const firing = new Map();
    for (const rule of rules) {
      if (rule.enabled && rule.state && rule.state.firing) firing.set(rule.deployment, (firing.get(rule.deployment) || 0) + 1);
    }
    render(deployments, technical, firing);
    // Drift verdicts fill in as they arrive.
    Promise.all(deployments.map((d) => driftOf(d.name)))
      .then(() => render(deployments, technical, firing))
      .catch((exc) => {
        if (exc.status !== 401) showError(exc);
      });
  }

  function render(deployments, technical, firing) {
    const columns = [
      { label: "Name" }, { label: "Model" }, { label: "Version" }, { label: "Status" },
      { label: "Ready", num: true }, { label: "Requests 1 h", num: true },
      { label: "Errors", num: true }, { label: "p95", num: true },
      { label: "Drift 24 h" }, { label: "Alerts", num: true }, { label: "Actions" },
    ];
    const body = deployments.map((d, i) => {
      const totals = technical[i] && technical[i].totals;
      const alerts = firing.get(d.name) || 0;
      return [
        h("span", {},
          h("a", { href: `#/deployments/${encodeURIComponent(d.name)}`, class: "deployment-link", dataset: { focus: `link:${d.name}` } }, d.name),
          " ", noAuthBadge(d)),
        d.model,
        versionText(d),
        h("span", { dataset: { status: d.status } }, badge(d.status, statusTone(d.status))),
        d.kind === "endpoint" ? `${d.ready_replicas}/${d.replicas}${autoscaled(d)}` : "batch",
        totals ? fmtInt(totals.requests) : "—",
        totals && totals.requests ? fmtPercent(totals.failed / totals.requests) : "—",
        totals ? fmtMs(totals.latency_p95_ms) : "—",
        driftCell(drift.get(d.name)),
        alerts ? badge(`${alerts} firing`, "bad") : h("span", { class: "muted" }, "none"),
        d.kind === "endpoint" ? deploymentActions(d, refresh, { compact: true }) : "",
      ];
    });
    keepFocus(rows, () => clear(rows, table({
      id: "deployments",
      columns,
      rows: body,
      empty: h("span", {}, "No deployments yet. Deploy a registered model with the button above or ",
        h("code", {}, "modeldeck deploy MODEL --name NAME"), "."),
    })));
  }

  deploy.addEventListener("click", () => deployDialog());
  await refresh();
  return { refresh };
}
