// One deployment: its header (status, actions) and tabs as Cloudera ML's model pages have them.

import { deploymentActions, lifecycleActions } from "../actions.js";
import { api } from "../api.js";
import { autoscaled, badge, clear, h, noAuthBadge, statusTone } from "../dom.js";
import { keepFocus } from "../ui.js";
import { alertsTab } from "../tabs/alerts.js";
import { driftTab } from "../tabs/drift.js";
import { logsTab } from "../tabs/logs.js";
import { modelMetricsTab } from "../tabs/model-metrics.js";
import { monitoringTab } from "../tabs/monitoring.js";
import { overviewTab } from "../tabs/overview.js";

const TABS = [
  ["overview", "Overview", overviewTab],
  ["monitoring", "Monitoring", monitoringTab],
  ["model-metrics", "Model metrics", modelMetricsTab],
  ["drift", "Drift", driftTab],
  ["alerts", "Alerts", alertsTab],
  ["logs", "Logs", logsTab],
];

export async function deploymentPage(root, name, tab) {
  const entry = TABS.find(([key]) => key === tab);
  if (!entry) {
    clear(root, h("div", { class: "banner warn", role: "alert" }, `No tab "${tab}". `,
      h("a", { href: `#/deployments/${encodeURIComponent(name)}` }, "Back to the overview")));
    return {};
  }
  const base = `#/deployments/${encodeURIComponent(name)}`;
  let deployment = await api(`/deployments/${encodeURIComponent(name)}`);
  let canary = await loadCanary();
  let view = {};
  const head = h("div", { class: "page-head", id: "deployment-head" });
  const body = h("section", { id: `tab-${tab}`, "aria-labelledby": `tab-link-${tab}` });
  const nav = h("nav", { class: "tabs", "aria-label": "Deployment sections" },
    TABS.map(([key, label]) => h("a", {
      href: key === "overview" ? base : `${base}/${key}`,
      id: `tab-link-${key}`,
      "aria-current": key === tab ? "page" : null,
    }, label)));

  const renderHead = () => keepFocus(head, () => {
    const d = deployment;
    const version = d.source === "file"
      ? `${d.function_name}() in ${d.file_path}`
      : `${d.model} v${d.version}${d.version_spec && d.version_spec !== d.version ? ` (${d.version_spec})` : ""}`;
    clear(head,
      h("div", {},
        h("div", { class: "breadcrumbs" }, h("a", { href: "#/" }, "Deployments"), " / ", d.name),
        h("h1", {}, d.name, " ", h("span", { id: "deployment-status", dataset: { status: d.status } }, badge(d.status, statusTone(d.status))), " ", noAuthBadge(d)),
        h("p", { class: "subtitle" }, version,
          d.kind === "endpoint"
            ? ` · ${d.ready_replicas}/${d.replicas} replicas ready${autoscaled(d)}`
            : " · batch",
          d.status_message ? ` · ${d.status_message.split("\n")[0]}` : ""),
        canaryLine(canary)),
      h("div", { class: "head-actions" },
        d.kind === "endpoint" ? deploymentActions(d, reload) : null,
        lifecycleActions(d, canary, reload)));
  });

  async function loadCanary() {
    if (deployment.kind !== "endpoint") return null;
    try {
      return await api(`/deployments/${encodeURIComponent(name)}/canary`);
    } catch {
      return null;  // the header shows the deployment without it
    }
  }

  async function reload() {
    deployment = await api(`/deployments/${encodeURIComponent(name)}`);
    canary = await loadCanary();
    renderHead();
    if (view.onDeployment) view.onDeployment(deployment);
  }

  clear(root, head, nav, body);
  renderHead();
  view = (await entry[2](body, { name, deployment: () => deployment })) || {};
  return {
    async refresh() {
      await reload();
      if (view.refresh) await view.refresh();
    },
    destroy() {
      if (view.destroy) view.destroy();
    },
  };
}

// One line on the deployment's canary: the running one and its latest evaluation, or how the
// last one ended.
function canaryLine(c) {
  if (!c) return null;
  const why = (d) => (d && d.reasons.length ? `: ${d.reasons[0]}` : "");
  let text = null;
  if (c.active) {
    const share = c.mode === "shadow" ? "a copy of the traffic (shadow)" : `${c.percent}% of the traffic`;
    text = `Canary: v${c.candidate_version} on ${share}` +
      (c.last ? ` · ${c.last.decision}${why(c.last)}` : "");
  } else {
    const end = c.decisions.find((d) => ["promote", "rollback", "stopped"].includes(d.decision));
    if (end) text = `Last canary: v${end.candidate_version} ${end.decision}${why(end)}`;
  }
  return text ? h("p", { class: "subtitle", id: "deployment-canary" }, text) : null;
}
