// Alerts: the deployment's rules with their state, and the history of their events.

import { api } from "../api.js";
import { badge, clear, fmtDuration, fmtInt, fmtNumber, h, localTime, timeText } from "../dom.js";
import { showError, table, toast } from "../ui.js";

const SYMBOLS = { gt: ">", ge: "≥", lt: "<", le: "≤" };

function delivery(event) {
  const d = event.delivery;
  if (!d) return h("span", { class: "muted" }, "no channel");
  const ok = d.status === "delivered";
  const textValue = [d.status, d.status_code ? `HTTP ${d.status_code}` : null, d.attempts ? `${d.attempts} attempt(s)` : null]
    .filter(Boolean).join(", ");
  const tone = ok ? "ok" : d.status === "pending" ? "warn" : "bad";
  const each = (d.channels || []).map((c) => `${c.channel}: ${c.status}${c.error ? ` (${c.error})` : ""}`);
  return h("span", { title: each.join("\n") || d.error || "" }, badge(textValue || "unknown", tone));
}

/** The rule's channels as "webhook, slack, email"; the legacy webhook_url counts as a webhook. */
function channelNames(rule) {
  const names = (rule.channels || []).map((c) => c.type);
  if (rule.webhook_url) names.unshift("webhook");
  return names;
}

/** "Send test": a test event to each of the rule's channels; the result as a toast. */
function testButton(rule, ctx) {
  const button = h("button", { type: "button", class: "button small", "data-test-rule": rule.name }, "Send test");
  button.addEventListener("click", async () => {
    button.disabled = true;
    try {
      const results = await api(`/alerts/rules/${encodeURIComponent(ctx.name)}/${encodeURIComponent(rule.name)}/test`, { method: "POST" });
      const failed = results.filter((r) => r.status !== "delivered");
      const said = results.map((r) => `${r.channel}: ${r.status}${r.error ? ` (${r.error})` : ""}`).join("; ");
      toast(`Test of ${rule.name}: ${said}`, failed.length ? "bad" : "");
    } catch (exc) {
      if (exc.status !== 401) showError(exc);
    } finally {
      button.disabled = false;
    }
  });
  return button;
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
        { label: "Last value", num: true }, { label: "Samples", num: true }, { label: "Last evaluated" }, { label: "Channels" },
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
          channelNames(r).length
            ? h("span", { class: "channels" }, h("code", {}, channelNames(r).join(", ")), " ", testButton(r, ctx))
            : h("span", { class: "muted" }, "none"),
        ];
      }),
      empty: h("span", {}, "No alert rules for this deployment. Create one with ",
        h("code", {}, `modeldeck alerts create ${ctx.name} NAME --metric … --when gt --threshold …`), "."),
    }));
    clear(events, table({
      id: "alert-events-table",
      columns: [
        { label: "Time" }, { label: "Rule" }, { label: "Event" }, { label: "Value", num: true },
        { label: "Samples", num: true }, { label: "Message" }, { label: "Delivery" },
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
      h("p", { class: "muted" }, "Rules are evaluated on the platform's schedule; each change of state is an event below, sent to the rule's channels (webhook, Slack, Teams, e-mail, PagerDuty). “Send test” checks a rule's channels now."),
      rules),
    h("section", { class: "panel", "aria-labelledby": "events-title" },
      h("h2", { id: "events-title" }, "Event history"),
      events));
  await refresh();
  return { refresh };
}
