// Alerts: the deployment's rules with their state (created and deleted here, as with
// `modeldeck alerts create / delete`), and the history of their events.

import { api } from "../api.js";
import { badge, clear, fmtDuration, fmtInt, fmtNumber, h, localTime, timeText } from "../dom.js";
import { confirmAction, formDialog, showError, table, toast } from "../ui.js";

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

const UNITS = { s: 1, m: 60, h: 3600, d: 86400 };

/** "90s", "15m", "1h", "7d" or plain seconds, as the CLI takes them; null if not one. */
export function durationSeconds(text) {
  const m = /^\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*$/.exec(text);
  return m ? Math.round(Number(m[1]) * UNITS[m[2] || "s"]) : null;
}

/** A rule as `modeldeck alerts create` takes it: the metric, when, threshold, window, minimum
 * samples, cool-down and channels; resolves with the created rule, or null when cancelled. */
async function createRuleDialog(deployment) {
  let metrics = {};
  try {
    metrics = await api("/alerts/metrics");
  } catch (exc) {
    if (exc.status !== 401) showError(exc);
    return null;
  }
  const input = (id, field, attrs = {}) => h("input", { type: "text", id, dataset: { field }, ...attrs });
  const name = input("rule-name", "name", { required: true, pattern: "[A-Za-z0-9_.\\-]{1,100}", placeholder: "accuracy-low" });
  const metric = input("rule-metric", "metric", { required: true, list: "rule-metric-names", placeholder: "performance.accuracy", autocomplete: "off" });
  const names = h("datalist", { id: "rule-metric-names" }, Object.keys(metrics).map((m) => h("option", { value: m })));
  const meaning = h("span", { class: "hint", id: "rule-metric-meaning" }, "Type or pick one; drift.column.<column> takes an input column's name.");
  metric.addEventListener("input", () => {
    meaning.textContent = metrics[metric.value] || "Type or pick one; drift.column.<column> takes an input column's name.";
  });
  const comparison = h("select", { id: "rule-when", dataset: { field: "comparison" } },
    Object.entries(SYMBOLS).map(([value, symbol]) => h("option", { value }, `${symbol} (${value})`)));
  const threshold = input("rule-threshold", "threshold", { type: "number", step: "any", required: true });
  const windowInput = input("rule-window", "window_seconds", { value: "1h", required: true });
  const minSamples = input("rule-min-samples", "min_samples", { type: "number", min: 0, step: 1, placeholder: "1 technical, 30 drift, performance, quality" });
  const cooldown = input("rule-cooldown", "cooldown_seconds", { value: "15m", required: true });
  const webhook = input("rule-webhook", "webhook_url", { type: "url", placeholder: "https://…" });
  const secret = input("rule-secret", "webhook_secret", { type: "password", autocomplete: "off" });
  const slack = input("rule-slack", "slack", { type: "url", placeholder: "https://hooks.slack.com/services/…" });
  const teams = input("rule-teams", "teams", { type: "url" });
  const emails = input("rule-email", "email", { placeholder: "ops@example.com, ml@example.com" });
  const pagerduty = input("rule-pagerduty", "pagerduty", { autocomplete: "off", placeholder: "32-character routing key" });
  const severity = h("select", { id: "rule-severity", dataset: { field: "pagerduty-severity" } },
    ["critical", "error", "warning", "info"].map((v) => h("option", { value: v, selected: v === "error" }, v)));
  const field = (id, label, control, hint) =>
    h("div", { class: "field" }, h("label", { for: id }, label), control, hint ? (hint instanceof Node ? hint : h("span", { class: "hint" }, hint)) : null);
  const fields = h("div", { class: "form-fields" },
    names,
    h("div", { class: "grid-fields" },
      field("rule-name", "Rule name", name),
      field("rule-metric", "Metric", metric, meaning),
      field("rule-when", "Fires when the metric is", comparison),
      field("rule-threshold", "Threshold", threshold),
      field("rule-window", "Window", windowInput, "Trailing, e.g. 15m, 1h, 7d."),
      field("rule-min-samples", "Minimum samples", minSamples, "Fewer in the window: no decision."),
      field("rule-cooldown", "Cool-down", cooldown, "Quiet time after firing.")),
    h("fieldset", {},
      h("legend", {}, "Channels (optional; events show on this tab either way)"),
      h("div", { class: "grid-fields" },
        field("rule-webhook", "Webhook URL", webhook, "Receives firing and resolved events (JSON POST)."),
        field("rule-secret", "Webhook secret", secret, "Signs the webhook's requests."),
        field("rule-slack", "Slack incoming-webhook URL", slack),
        field("rule-teams", "Teams (or Workflows) webhook URL", teams),
        field("rule-email", "E-mail recipients", emails, "Comma-separated; needs MODELDECK_SMTP_HOST."),
        field("rule-pagerduty", "PagerDuty routing key", pagerduty),
        field("rule-severity", "PagerDuty severity", severity))));
  return formDialog({
    title: `New alert rule on ${deployment}`,
    fields,
    submitLabel: "Create rule",
    wide: true,
    focus: () => name,
    collect: () => {
      for (const el of [name, metric, threshold, minSamples, webhook, slack, teams]) {
        if (!el.reportValidity()) throw new Error("Fix the highlighted field.");
      }
      const seconds = {};
      for (const [key, el] of [["window_seconds", windowInput], ["cooldown_seconds", cooldown]]) {
        seconds[key] = durationSeconds(el.value);
        if (seconds[key] === null) {
          throw Object.assign(new Error(`${key}: a duration such as 90s, 15m, 1h or 7d`), { details: { field: key } });
        }
      }
      const channels = [];
      for (const [el, base] of [[slack, "slack"], [teams, "teams"], [emails, "email"], [pagerduty, "pagerduty"]]) el.dataset.field = base;
      const add = (el, channel) => {
        el.dataset.field = `channels.${channels.length}`;
        channels.push(channel);
      };
      if (slack.value.trim()) add(slack, { type: "slack", url: slack.value.trim() });
      if (teams.value.trim()) add(teams, { type: "teams", url: teams.value.trim() });
      const to = emails.value.split(",").map((e) => e.trim()).filter(Boolean);
      if (to.length) add(emails, { type: "email", to });
      if (pagerduty.value.trim()) add(pagerduty, { type: "pagerduty", routing_key: pagerduty.value.trim(), severity: severity.value });
      return api("/alerts/rules", {
        method: "POST",
        body: {
          name: name.value.trim(),
          deployment,
          metric: metric.value.trim(),
          comparison: comparison.value,
          threshold: Number(threshold.value),
          ...seconds,
          min_samples: minSamples.value === "" ? null : Number(minSamples.value),
          webhook_url: webhook.value.trim() || null,
          webhook_secret: secret.value || null,
          channels,
        },
      });
    },
  });
}

/** "Delete": asks first, as `modeldeck alerts delete` does; the rule's events go with it. */
function deleteButton(rule, ctx, refresh) {
  const button = h("button", {
    type: "button", class: "button small danger", "data-delete-rule": rule.name, "aria-label": `Delete rule ${rule.name}`,
  }, "Delete");
  button.addEventListener("click", async () => {
    const ok = await confirmAction({
      title: `Delete alert rule ${rule.name}?`,
      message: `It stops watching ${rule.metric} on ${ctx.name}, and its events are deleted with it.`,
      confirmLabel: "Delete rule",
    });
    if (!ok) return;
    try {
      await api(`/alerts/rules/${encodeURIComponent(ctx.name)}/${encodeURIComponent(rule.name)}`, { method: "DELETE" });
      toast(`deleted alert rule ${rule.name}`);
    } catch (exc) {
      if (exc.status !== 401) showError(exc);
    }
    await refresh();
  });
  return button;
}

export async function alertsTab(root, ctx) {
  const rules = h("div", { id: "alert-rules" });
  const events = h("div", { id: "alert-events" });
  const evaluate = h("button", { type: "button", class: "button", id: "evaluate-alerts" }, "Evaluate now");
  const create = h("button", { type: "button", class: "button primary", id: "create-rule" }, "New rule…");

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
        { label: "" },
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
          deleteButton(r, ctx, refresh),
        ];
      }),
      empty: h("span", {}, "No alert rules for this deployment. Create one with “New rule…” or ",
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

  create.addEventListener("click", async () => {
    const rule = await createRuleDialog(ctx.name);
    if (!rule) return;
    toast(`created alert rule ${rule.name} on ${rule.deployment}`);
    await refresh();
  });

  clear(root,
    h("section", { class: "panel", "aria-labelledby": "rules-title" },
      h("div", { class: "page-head" }, h("h2", { id: "rules-title" }, "Alert rules"),
        h("div", { class: "actions" }, evaluate, create)),
      h("p", { class: "muted" }, "Rules are evaluated on the platform's schedule; each change of state is an event below, sent to the rule's channels (webhook, Slack, Teams, e-mail, PagerDuty). “Send test” checks a rule's channels now."),
      rules),
    h("section", { class: "panel", "aria-labelledby": "events-title" },
      h("h2", { id: "events-title" }, "Event history"),
      events));
  await refresh();
  return { refresh };
}
