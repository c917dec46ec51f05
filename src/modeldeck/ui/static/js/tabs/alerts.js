// Alerts: the deployment's rules with their state, and the history of their events.

import { api } from "../api.js";
import { badge, clear, fmtDuration, fmtInt, fmtNumber, h, localTime, timeText } from "../dom.js";
import { showError, table, toast } from "../ui.js";

const SYMBOLS = { gt: ">", ge: "≥", lt: "<", le: "≤" };

function delivery(event) {
  const d = event.delivery;
  if (!d) return h("span", { class: "muted" }, "no webhook");
  const ok = d.status === "delivered";
  const textValue = [d.status, d.status_code ? `HTTP ${d.status_code}` : null, d.attempts ? `${d.attempts} attempt(s)` : null]
    .filter(Boolean).join(", ");
  const tone = ok ? "ok" : d.status === "pending" ? "warn" : "bad";
  return h("span", { title: d.error || "" }, badge(textValue || "unknown", tone));
}

export async function alertsTab(root, ctx) {
  const rules = h("div", { id: "alert-rules" });
  const events = h("div", { id: "alert-events" });
  const evaluate = h("button", { type: "button", class: "button", id: "evaluate-alerts" }, "Evaluate now");

  async function refresh() {
    const [ruleList, eventList] = await Promise.all([
      api("/alerts/rules", { query: { deployment: ctx.name } }),
      api("/alerts/events", { query: { deployment: ctx.name, limit: 100 } }),
    ]);
    clear(rules, table({
      id: "alert-rules-table",
      columns: [
        { label: "Rule" }, { label: "Metric" }, { label: "Fires when" }, { label: "State" },
        { label: "Last value", num: true }, { label: "Samples", num: true }, { label: "Last evaluated" }, { label: "Webhook" },
      ],
      rows: ruleList.map((r) => {
        const s = r.state || {};
        const state = !r.enabled ? badge("disabled", "off") : s.firing ? badge("firing", "bad") : badge("ok", "ok");
        return [
          h("span", {}, h("strong", {}, r.name), r.description ? h("div", { class: "muted" }, r.description) : null),
          h("code", {}, r.metric),
          `${SYMBOLS[r.comparison] || r.comparison} ${fmtNumber(r.threshold)} over ${fmtDuration(r.window_seconds)}` +
            (r.min_samples > 1 ? ` (≥ ${fmtInt(r.min_samples)} samples)` : ""),
          state,
          fmtNumber(s.last_value),
          s.last_samples === undefined ? "—" : fmtInt(s.last_samples),
          s.last_evaluated_ms ? localTime(s.last_evaluated_ms) : "never",
          r.webhook_url ? h("code", {}, r.webhook_url) : h("span", { class: "muted" }, "none"),
        ];
      }),
      empty: h("span", {}, "No alert rules for this deployment. Create one with ",
        h("code", {}, `modeldeck alerts create ${ctx.name} NAME --metric … --when gt --threshold …`), "."),
    }));
    clear(events, table({
      id: "alert-events-table",
      columns: [
        { label: "Time" }, { label: "Rule" }, { label: "Event" }, { label: "Value", num: true },
        { label: "Samples", num: true }, { label: "Message" }, { label: "Webhook delivery" },
      ],
      rows: eventList.map((e) => [
        timeText(e.ts), e.rule, badge(e.kind, e.kind === "firing" ? "bad" : "ok"), fmtNumber(e.value),
        fmtInt(e.samples), e.message, delivery(e),
      ]),
      empty: "No alert has fired or resolved yet.",
    }));
  }

  evaluate.addEventListener("click", async () => {
    evaluate.disabled = true;
    try {
      const produced = await api("/alerts/evaluate", { method: "POST" });
      toast(produced.length ? `${produced.length} new event(s)` : "Evaluated: no rule changed state");
      await refresh();
    } catch (exc) {
      if (exc.status !== 401) showError(exc);
    } finally {
      evaluate.disabled = false;
    }
  });

  clear(root,
    h("section", { class: "panel", "aria-labelledby": "rules-title" },
      h("div", { class: "page-head" }, h("h2", { id: "rules-title" }, "Alert rules"),
        h("div", { class: "actions" }, evaluate)),
      h("p", { class: "muted" }, "Rules are evaluated on the platform's schedule; each change of state is an event below, sent to the rule's webhook."),
      rules),
    h("section", { class: "panel", "aria-labelledby": "events-title" },
      h("h2", { id: "events-title" }, "Event history"),
      events));
  await refresh();
  return { refresh };
}
