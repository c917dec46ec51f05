// Deployment actions (stop, start, scale, redeploy, roll back, canary, rotate the access key,
// delete, deploy), each confirmed before it changes what serves; and downloads.

import { api, download } from "./api.js";
import { h } from "./dom.js";
import { askNumber, confirmAction, formDialog, infoDialog, showError, toast } from "./ui.js";

const MAX_REPLICAS = 32;

function path(name, suffix = "") {
  return `/deployments/${encodeURIComponent(name)}${suffix}`;
}

async function run(work, done, success) {
  try {
    await work();
    toast(success);
  } catch (exc) {
    if (exc.status !== 401) showError(exc);
  }
  await done();
}

export async function stopDeployment(d, done) {
  const ok = await confirmAction({
    title: `Stop ${d.name}?`,
    message: `Its ${d.replicas} replica(s) stop and its endpoint answers 503 until it is started again. Recorded metrics are kept.`,
    confirmLabel: "Stop deployment",
  });
  if (ok) await run(() => api(path(d.name, "/stop"), { method: "POST" }), done, `${d.name} stopped`);
}

export async function startDeployment(d, done) {
  await run(() => api(path(d.name, "/start"), { method: "POST" }), done, `${d.name} is starting`);
}

export async function scaleDeployment(d, done) {
  const replicas = await askNumber({
    title: `Scale ${d.name}`,
    label: "Replicas",
    value: d.replicas,
    min: 1,
    max: MAX_REPLICAS,
    hint: d.autoscaling
      ? `Now ${d.replicas}, autoscaled between ${d.autoscaling.min_replicas} and ${d.autoscaling.max_replicas}. A fixed count ends autoscaling (the CLI's scale --min/--max sets it again).`
      : `Now ${d.replicas}. Fewer replicas stop the highest-numbered ones.`,
    submitLabel: "Scale",
  });
  if (replicas === null || (replicas === d.replicas && !d.autoscaling)) return;
  if (replicas < d.replicas) {
    const ok = await confirmAction({
      title: `Scale ${d.name} down to ${replicas}?`,
      message: `${d.replicas - replicas} replica(s) leave the rotation, finish the requests they have in flight, then stop.`,
      confirmLabel: "Scale down",
    });
    if (!ok) return;
  }
  await run(
    () => api(path(d.name, "/scale"), { method: "POST", body: { replicas } }),
    done,
    `${d.name} scaled to ${replicas} replica(s)`,
  );
}

/** The versions a registered model can be deployed as: latest, its aliases, its numbers. */
async function versionOptions(model, current) {
  const detail = await api(`/models/${encodeURIComponent(model)}`);
  const options = [h("option", { value: "latest" }, "latest")];
  const aliases = new Set();
  for (const v of detail.versions || []) for (const a of v.aliases || []) aliases.add(a);
  for (const a of aliases) options.push(h("option", { value: `@${a}` }, `@${a}`));
  for (const v of detail.versions || []) {
    const mark = String(v.version) === String(current) ? " (serving now)" : "";
    options.push(h("option", { value: String(v.version) }, `version ${v.version}${mark}`));
  }
  return options;
}

export async function redeployDeployment(d, done) {
  let options;
  try {
    options = await versionOptions(d.model, d.version);
  } catch (exc) {
    if (exc.status !== 401) showError(exc);
    return;
  }
  const version = h("select", { id: "redeploy-version" }, options);
  const fields = h("div", { class: "form-fields" },
    h("p", {}, `${d.name} serves ${d.model} v${d.version}. The platform starts the chosen version's replicas and reports its progress on the Overview; the access key stays the same.`),
    h("div", { class: "field" }, h("label", { for: "redeploy-version" }, "Version"), version));
  const answer = await formDialog({
    title: `Redeploy ${d.name}`,
    fields,
    submitLabel: "Redeploy",
    focus: () => version,
    collect: () => api(path(d.name, "/redeploy"), { method: "POST", body: { version: version.value } }),
  });
  if (answer) {
    toast(`${d.name} is redeploying ${d.model} ${version.value}`);
    await done();
  }
}

export async function rollbackDeployment(d, done) {
  const ok = await confirmAction({
    title: `Roll ${d.name} back?`,
    message: `It returns to the version it served before v${d.version}, the way a redeploy goes: v${d.version} keeps serving until that version is healthy. Rolling back again goes one version further back.`,
    confirmLabel: "Roll back",
  });
  if (ok) await run(() => api(path(d.name, "/rollback"), { method: "POST" }), done, `${d.name} is rolling back`);
}

export async function rotateAccessKey(d, done) {
  const ok = await confirmAction({
    title: `Replace ${d.name}'s access key?`,
    message: "The current key stops working at once: callers that use it get 401 until they use the new one, which is shown only once.",
    confirmLabel: "Replace the key",
  });
  if (!ok) return;
  let answer;
  try {
    answer = await api(path(d.name, "/access-key"), { method: "POST" });
  } catch (exc) {
    if (exc.status !== 401) showError(exc);
    await done();
    return;
  }
  await infoDialog({
    title: "New access key",
    body: h("div", {},
      h("p", {}, `${d.name}'s new access key, shown only this once:`),
      h("pre", { class: "mono", id: "new-access-key" }, answer.access_key)),
  });
  await done();
}

export async function deleteDeployment(d) {
  const ok = await confirmAction({
    title: `Delete deployment ${d.name}?`,
    message: `Its replicas stop, its endpoint and access key stop working, and its alert rules, recorded predictions and metrics are deleted with it. This cannot be undone.`,
    confirmLabel: "Delete deployment",
  });
  if (!ok) return;
  try {
    await api(path(d.name), { method: "DELETE" });
  } catch (exc) {
    if (exc.status !== 401) showError(exc);
    return;
  }
  toast(`deleted ${d.name}`);
  window.location.hash = "#/";
}

const CANARY_METRICS = ["accuracy", "f1_macro", "precision_macro", "recall_macro", "roc_auc", "log_loss", "rmse", "mae", "mape", "r2"];

/** A number input's value, or undefined when left empty (the API's default then). */
function optionalNumber(input) {
  return input.value.trim() === "" ? undefined : Number(input.value);
}

export async function startCanary(d, done) {
  let options;
  try {
    options = (await versionOptions(d.model, d.version)).filter((o) => o.value !== "latest" && o.value !== String(d.version));
  } catch (exc) {
    if (exc.status !== 401) showError(exc);
    return;
  }
  if (!options.length) {
    await infoDialog({ title: "No other version", body: h("p", {}, `${d.model} has no version besides v${d.version} to try as a canary. Register one in MLflow first.`) });
    return;
  }
  const input = (id, field, attrs) => h("input", { id, dataset: { field }, ...attrs });
  const version = h("select", { id: "canary-version", dataset: { field: "version" } }, options);
  const mode = h("select", { id: "canary-mode", dataset: { field: "mode" } },
    h("option", { value: "canary" }, "canary: a share of the requests"),
    h("option", { value: "shadow" }, "shadow: a copy of every request"));
  const percent = input("canary-percent", "percent", { type: "number", min: 0, max: 100, step: "any", value: "10", required: true });
  const replicas = input("canary-replicas", "replicas", { type: "number", min: 1, max: 16, step: 1, value: "1", required: true });
  const minRequests = input("canary-min-requests", "policy.min_requests", { type: "number", min: 1, step: 1, placeholder: "100" });
  const maxErrorRate = input("canary-max-error-rate", "policy.max_error_rate", { type: "number", min: 0, max: 1, step: "any", placeholder: "0.01" });
  const maxP95 = input("canary-max-p95", "policy.max_p95_ms", { type: "number", min: 0, step: "any", placeholder: "not checked" });
  const margin = input("canary-margin", "policy.performance_margin", { type: "number", min: 0, step: "any", placeholder: "0.05" });
  const metric = h("select", { id: "canary-metric", dataset: { field: "policy.metric" } },
    CANARY_METRICS.map((m) => h("option", { value: m }, m.replace("_", " "))));
  const estimated = h("input", { type: "checkbox", id: "canary-estimated" });
  const referenceCheck = h("input", { type: "checkbox", id: "canary-reference", checked: true });
  const driftCheck = h("input", { type: "checkbox", id: "canary-drift", checked: true });
  mode.addEventListener("change", () => { percent.disabled = mode.value === "shadow"; });
  const field = (id, label, control, hint) =>
    h("div", { class: "field" }, h("label", { for: id }, label), control, hint ? h("span", { class: "hint" }, hint) : null);
  const fields = h("div", { class: "form-fields" },
    h("p", {}, `${d.name} serves ${d.model} v${d.version}. The candidate runs beside it; every evaluation the policy promotes it (a redeploy, and the deployment's alias moves to it) or rolls it back.`),
    h("div", { class: "grid-fields" },
      field("canary-version", "Candidate version", version),
      field("canary-mode", "Mode", mode),
      field("canary-percent", "Share of requests (%)", percent),
      field("canary-replicas", "Candidate replicas", replicas)),
    h("fieldset", {},
      h("legend", {}, "Policy (empty: the default shown)"),
      h("div", { class: "grid-fields" },
        field("canary-min-requests", "Requests before deciding", minRequests),
        field("canary-max-error-rate", "Largest failed share (0–1)", maxErrorRate),
        field("canary-max-p95", "Largest p95 latency (ms)", maxP95),
        field("canary-margin", "Performance margin", margin, "How much worse its metric may be."),
        field("canary-metric", "Metric compared", metric)),
      h("label", { class: "checkbox", for: "canary-estimated" }, estimated, "Promote on estimated performance alone"),
      h("label", { class: "checkbox", for: "canary-reference" }, referenceCheck, "Roll back at once when worse on the labelled reference data"),
      h("label", { class: "checkbox", for: "canary-drift" }, driftCheck, "Roll back when its inputs drift and the serving version's do not")));
  const started = await formDialog({
    title: `Start a canary of ${d.name}`,
    fields,
    wide: true,
    submitLabel: "Start canary",
    focus: () => version,
    collect: () => {
      for (const el of [percent, replicas, minRequests, maxErrorRate, maxP95, margin]) {
        if (!el.disabled && !el.reportValidity()) throw new Error("Fix the highlighted field.");
      }
      const policy = { metric: metric.value };
      for (const [key, el] of [["min_requests", minRequests], ["max_error_rate", maxErrorRate], ["max_p95_ms", maxP95], ["performance_margin", margin]]) {
        const value = optionalNumber(el);
        if (value !== undefined) policy[key] = value;
      }
      if (estimated.checked) policy.allow_estimated = true;
      if (!referenceCheck.checked) policy.reference_margin = null;
      if (!driftCheck.checked) policy.max_drift = false;
      const chosen = version.value;
      const body = {
        ...(chosen.startsWith("@") ? { alias: chosen.slice(1) } : { version: chosen }),
        mode: mode.value,
        replicas: Number(replicas.value),
        policy,
      };
      if (mode.value === "canary") body.percent = Number(percent.value);
      return api(path(d.name, "/canary"), { method: "POST", body });
    },
  });
  if (started) {
    const share = started.mode === "shadow" ? "a copy of every request" : `${started.percent}% of the requests`;
    toast(`Canary of ${d.name}: v${started.candidate_version} gets ${share}`);
    await done();
  }
}

export async function stopCanary(d, canary, done) {
  const ok = await confirmAction({
    title: `Stop the canary of ${d.name}?`,
    message: `v${canary.candidate_version}'s replicas stop and v${canary.stable_version} answers every request. Nothing is promoted.`,
    confirmLabel: "Stop canary",
  });
  if (ok) await run(() => api(path(d.name, "/canary"), { method: "DELETE" }), done, `canary of ${d.name} stopped`);
}

/**
 * Roll back, Canary (or Stop canary), Rotate key and Delete: the rest of a deployment's life,
 * for its own page (the list keeps to Stop / Start, Scale and Redeploy).
 */
export function lifecycleActions(d, canary, done) {
  const button = (action, label, aria, onclick, danger = false) => h("button", {
    type: "button", class: `button${danger ? " danger" : ""}`, dataset: { action, focus: `${action}:${d.name}` },
    "aria-label": aria, onclick,
  }, label);
  const buttons = [];
  if (d.kind === "endpoint" && d.source === "registry") {
    buttons.push(button("rollback", "Roll back…", `Roll back ${d.name}`, () => rollbackDeployment(d, done)));
    buttons.push(canary && canary.active
      ? button("canary-stop", "Stop canary…", `Stop the canary of ${d.name}`, () => stopCanary(d, canary, done), true)
      : button("canary", "Canary…", `Start a canary of ${d.name}`, () => startCanary(d, done)));
  }
  if (d.kind === "endpoint" && d.auth_enabled) {
    buttons.push(button("rotate-key", "Rotate key…", `Rotate the access key of ${d.name}`, () => rotateAccessKey(d, done)));
  }
  buttons.push(button("delete", "Delete…", `Delete ${d.name}`, () => deleteDeployment(d), true));
  return h("div", { class: "actions" }, buttons);
}

/**
 * A button that downloads `/api/v1{path}` (with the query `query()` gives when clicked) and
 * says in a toast what it saved; `said(headers)` may add to that.
 */
export function downloadButton({ id, label, path: target, query, saved, said }) {
  const button = h("button", { type: "button", class: "button", id }, label);
  button.addEventListener("click", async () => {
    button.disabled = true;
    try {
      const headers = await download(target, { query: query ? await query() : undefined });
      const extra = said ? said(headers) : "";
      toast(`${saved}${extra ? ` ${extra}` : ""}`);
    } catch (exc) {
      if (exc.status !== 401) showError(exc);
    } finally {
      button.disabled = false;
    }
  });
  return button;
}

/** Stop / Start, Scale and Redeploy buttons for a deployment; `done` refreshes what shows it. */
export function deploymentActions(d, done, { compact = false } = {}) {
  const size = compact ? " small" : "";
  const running = d.desired_state === "running" && !["stopped", "failed"].includes(d.status);
  const buttons = [];
  if (running) {
    buttons.push(h("button", {
      type: "button", class: `button danger${size}`, dataset: { action: "stop", focus: `stop-start:${d.name}` },
      "aria-label": `Stop ${d.name}`, onclick: () => stopDeployment(d, done),
    }, "Stop"));
  } else {
    buttons.push(h("button", {
      type: "button", class: `button${size}`, dataset: { action: "start", focus: `stop-start:${d.name}` },
      "aria-label": `Start ${d.name}`, onclick: () => startDeployment(d, done),
    }, "Start"));
  }
  buttons.push(h("button", {
    type: "button", class: `button${size}`, dataset: { action: "scale", focus: `scale:${d.name}` },
    "aria-label": `Scale ${d.name}`, onclick: () => scaleDeployment(d, done),
  }, "Scale…"));
  if (d.source === "registry") {
    buttons.push(h("button", {
      type: "button", class: `button${size}`, dataset: { action: "redeploy", focus: `redeploy:${d.name}` },
      "aria-label": `Redeploy ${d.name}`, onclick: () => redeployDeployment(d, done),
    }, "Redeploy…"));
  }
  return h("div", { class: compact ? "actions compact" : "actions" }, buttons);
}

/** Deploy a registered model version under a new name; shows the access key once. */
export async function deployDialog() {
  let models = [];
  try {
    models = await api("/models");
  } catch (exc) {
    showError(exc);
    return;
  }
  if (!models.length) {
    await infoDialog({ title: "No registered models", body: h("p", {}, "Register a model in MLflow first; modeldeck deploys registered versions.") });
    return;
  }
  const name = h("input", { type: "text", id: "deploy-name", required: true, pattern: "[A-Za-z0-9][A-Za-z0-9_.\\-]{0,62}" });
  const model = h("select", { id: "deploy-model" }, models.map((m) => h("option", { value: m.name }, m.name)));
  const version = h("select", { id: "deploy-version" });
  const replicas = h("input", { type: "number", id: "deploy-replicas", min: 1, max: MAX_REPLICAS, value: "1", required: true });
  const auth = h("input", { type: "checkbox", id: "deploy-auth", checked: true });
  const fillVersions = async () => {
    version.replaceChildren(h("option", { value: "latest" }, "latest"));
    try {
      version.replaceChildren(...(await versionOptions(model.value, null)));
    } catch (exc) {
      showError(exc);
    }
  };
  model.addEventListener("change", fillVersions);
  await fillVersions();
  const field = (id, label, input, hint) =>
    h("div", { class: "field" }, h("label", { for: id }, label), input, hint ? h("span", { class: "hint" }, hint) : null);
  const fields = h("div", { class: "form-fields" },
    field("deploy-name", "Deployment name", name, "Letters, digits, _ . - ; it is part of the endpoint's URL."),
    field("deploy-model", "Registered model", model),
    field("deploy-version", "Version", version),
    field("deploy-replicas", "Replicas", replicas),
    h("label", { class: "checkbox", for: "deploy-auth" }, auth, "Require the access key on the endpoint"));
  const created = await formDialog({
    title: "Deploy a model",
    fields,
    submitLabel: "Deploy",
    focus: () => name,
    collect: () => {
      if (!name.reportValidity() || !replicas.reportValidity()) throw new Error("Fix the highlighted field.");
      return api("/deployments", {
        method: "POST",
        body: {
          name: name.value.trim(),
          model: model.value,
          version: version.value,
          replicas: Number(replicas.value),
          auth_enabled: auth.checked,
        },
      });
    },
  });
  if (!created) return;
  const body = h("div", {},
    h("p", {}, `${created.name} is deploying ${created.model} v${created.version}.`),
    created.access_key
      ? [h("p", {}, "Its access key, shown only this once:"), h("pre", { class: "mono", id: "new-access-key" }, created.access_key)]
      : h("p", { class: "banner warn" }, "Authentication is disabled: anyone who can reach the platform can call it."));
  await infoDialog({ title: "Deployment created", body });
  window.location.hash = `#/deployments/${encodeURIComponent(created.name)}`;
}
