// Logs: the tail of each replica's stdout and stderr, following as it grows.

import { api } from "../api.js";
import { badge, clear, fmtBytes, h, localTime, statusTone } from "../dom.js";
import { keepFocus, remember, remembered, selectField } from "../ui.js";

export async function logsTab(root, ctx) {
  const enc = encodeURIComponent(ctx.name);
  let replica = remembered(`logs.replica.${ctx.name}`, "all");
  let lines = remembered("logs.lines", "200");
  const box = h("div", { id: "replica-logs" });
  const replicaBox = h("div");
  let shownIndexes = "";

  const renderControls = () => {
    const d = ctx.deployment();
    const indexes = [...new Set([...Array(d.replicas).keys(), ...d.replica_states.map((r) => r.index)])].sort((a, b) => a - b);
    if (JSON.stringify(indexes) === shownIndexes) return;
    shownIndexes = JSON.stringify(indexes);
    clear(replicaBox, selectField({
      id: "logs-replica",
      label: "Replica",
      options: [["all", "All replicas"], ...indexes.map((i) => [String(i), `Replica ${i}`])],
      value: replica,
      onChange: (value) => {
        replica = value;
        remember(`logs.replica.${ctx.name}`, value);
        refresh();
      },
    }));
  };

  async function refresh() {
    const report = await api(`/deployments/${enc}/logs`, {
      query: { replica: replica === "all" ? null : replica, lines },
    });
    const open = new Map([...box.querySelectorAll("pre.log")].map((pre) => [
      pre.dataset.replica,
      pre.scrollHeight - pre.scrollTop - pre.clientHeight < 8,
    ]));
    if (!report.replicas.length) {
      clear(box, h("p", { class: "muted" }, "This deployment has no replicas, so no logs."));
      return;
    }
    keepFocus(box, () => clear(box, report.replicas.map((r) => {
      const pre = h("pre", {
        class: "log", tabindex: "0", dataset: { replica: String(r.replica), focus: `log:${r.replica}` },
        "aria-label": `Log of replica ${r.replica}`,
      }, r.exists ? (r.lines.join("\n") || "(empty)") : "(no log file yet)");
      return h("section", { class: "panel log-panel", "aria-labelledby": `log-title-${r.replica}` },
        h("h2", { id: `log-title-${r.replica}` }, `Replica ${r.replica} `, badge(r.status, statusTone(r.status))),
        h("p", { class: "muted" }, r.exists
          ? `${r.lines.length} last lines${r.truncated ? " (older lines not shown)" : ""} · ${fmtBytes(r.size_bytes)} · written ${localTime(r.modified_ms)}`
          : "Nothing written yet."),
        pre);
    })));
    for (const pre of box.querySelectorAll("pre.log")) {
      if (open.get(pre.dataset.replica) !== false) pre.scrollTop = pre.scrollHeight;
    }
  }

  renderControls();
  clear(root,
    h("div", { class: "toolbar" },
      replicaBox,
      selectField({
        id: "logs-lines",
        label: "Lines",
        options: [["100", "100"], ["200", "200"], ["500", "500"], ["2000", "2,000"]],
        value: lines,
        onChange: (value) => {
          lines = value;
          remember("logs.lines", value);
          refresh();
        },
      })),
    box);
  await refresh();
  return { refresh, onDeployment: renderControls };
}
