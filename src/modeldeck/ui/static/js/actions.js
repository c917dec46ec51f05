// Deployment actions (stop, start, scale, redeploy, deploy), each confirmed before it changes
// anything.

import { api } from "./api.js";
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
