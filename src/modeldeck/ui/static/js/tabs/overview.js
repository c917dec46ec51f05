// Overview: how to call the endpoint, what the deployment runs, its signature and replicas.

import { api } from "../api.js";
import { badge, clear, fmtNumber, h, isoToMs, localTime, statusTone } from "../dom.js";
import { table, toast } from "../ui.js";

const PLACEHOLDERS = { double: 1.0, float: 1.0, long: 1, integer: 1, boolean: true, string: "text" };

function exampleRecord(d, latest) {
  if (latest && latest.metrics && latest.metrics.input && typeof latest.metrics.input === "object") {
    const input = latest.metrics.input;
    return Array.isArray(input) ? input[0] : input;
  }
  const inputs = (d.signature && d.signature.inputs) || [];
  if (inputs.length && inputs.every((c) => c.name)) {
    return Object.fromEntries(inputs.map((c) => [c.name, PLACEHOLDERS[c.type] ?? 1.0]));
  }
  return null;
}

function shellQuote(text) {
  return `'${text.replaceAll("'", "'\\''")}'`;
}

function codeBlock(id, text, label) {
  const copy = h("button", { type: "button", class: "button small copy", "aria-label": `Copy ${label}` }, "Copy");
  copy.addEventListener("click", async () => {
    try {
      await navigator.clipboard.writeText(text);
      toast("Copied");
    } catch {
      toast("Copying is not allowed here: select the text instead.", "bad");
    }
  });
  return h("div", { class: "codeblock" }, h("pre", { id, tabindex: "0", "aria-label": label }, text), copy);
}

function details(pairs) {
  return h("dl", { class: "details" }, pairs.filter(Boolean).map(([k, v]) => [h("dt", {}, k), h("dd", {}, v)]));
}

function signatureTable(columns, caption) {
  return table({
    caption,
    columns: [{ label: "Name" }, { label: "Type" }, { label: "Required" }],
    rows: columns.map((c) => [
      c.name || h("span", { class: "muted" }, "(unnamed)"),
      c.type === "tensor" && c["tensor-spec"] ? `tensor ${c["tensor-spec"].dtype} ${JSON.stringify(c["tensor-spec"].shape)}` : c.type,
      c.required === false ? "no" : "yes",
    ]),
  });
}

/** What the overview shows of a deployment that an action can change. */
function shownState(d) {
  return JSON.stringify([d.status, d.version, d.access_key_prefix, d.auth_enabled, d.replicas,
    d.ready_replicas, (d.replica_states || []).map((r) => [r.index, r.status, r.pid, r.restarts])]);
}

/** The overview; drawn again when the deployment changes under it (a rollback, a new key). */
export async function overviewTab(root, ctx) {
  let shown = shownState(ctx.deployment());
  await renderOverview(root, ctx);
  return {
    onDeployment(d) {
      const now = shownState(d);
      if (now === shown) return;
      renderOverview(root, ctx).then(() => { shown = now; }, () => {});  // else the next refresh tries again
    },
  };
}

async function renderOverview(root, ctx) {
  const d = ctx.deployment();
  const enc = encodeURIComponent(ctx.name);
  const [recent, version] = await Promise.all([
    api(`/deployments/${enc}/metrics/model/recent`, { query: { limit: 1 } }).catch(() => ({ records: [] })),
    d.source === "registry" && d.model
      ? api(`/models/${encodeURIComponent(d.model)}/versions/${encodeURIComponent(d.version)}`).catch(() => null)
      : Promise.resolve(null),
  ]);
  const record = exampleRecord(d, recent.records[0]);
  const body = JSON.stringify({ inputs: record ?? [[1.0, 2.0]] });
  const auth = d.auth_enabled ? "  -H 'Authorization: Bearer <ACCESS_KEY>' \\\n" : "";
  const curl = `curl -s ${d.endpoint_url} \\\n${auth}  -H 'Content-Type: application/json' \\\n  -d ${shellQuote(body)}`;
  const cmlUrl = d.endpoint_url.replace(/\/deployments\/[^/]+\/predict$/, "/model");
  const cml = `curl -s ${cmlUrl} \\\n  -d ${shellQuote(JSON.stringify({ accessKey: "<ACCESS_KEY>", request: record ?? {} }))}`;

  const endpoint = h("section", { class: "panel", "aria-labelledby": "endpoint-title" },
    h("h2", { id: "endpoint-title" }, "Endpoint"),
    d.kind === "batch"
      ? h("p", {}, "A batch deployment: jobs record their predictions under this name; it has no endpoint.")
      : [
        details([["URL", h("code", { id: "endpoint-url" }, d.endpoint_url)],
          ["Access key", d.auth_enabled ? h("span", {}, h("code", {}, `${d.access_key_prefix || ""}…`), " (shown once when created; replace it with Rotate key… above or ", h("code", {}, `modeldeck deployments rotate-key ${d.name}`), ")")
            : badge("authentication disabled: anyone who can reach the platform can call it", "bad")]]),
        h("h3", { style: "margin-top:1rem" }, "Example request"),
        codeBlock("example-curl", curl, "example curl request"),
        h("p", { class: "muted" }, "The answer holds the prediction and its UUID (also in the X-Prediction-Id header), by which ground truth is joined later."),
        h("h3", {}, "Cloudera ML compatible call"),
        codeBlock("example-cml", cml, "example Cloudera ML request"),
      ]);

  const info = h("section", { class: "panel", "aria-labelledby": "details-title" },
    h("h2", { id: "details-title" }, "Deployment"),
    details([
      ["Status", h("span", {}, badge(d.status, statusTone(d.status)), d.status_message ? h("pre", { class: "mono" }, d.status_message) : "")],
      ["Model", d.source === "file" ? `${d.function_name}() in ${d.file_path}` : d.model],
      d.source === "registry" ? ["Version", `${d.version}${d.version_spec && d.version_spec !== d.version ? ` (deployed as ${d.version_spec})` : ""}`] : null,
      ["Model URI", h("code", {}, d.model_uri || "—")],
      ["Runtime", d.runtime],
      ["Replicas", d.kind === "endpoint" ? `${d.ready_replicas} ready of ${d.replicas}` : "—"],
      ["Tracks predictions", d.track_metrics ? "yes" : "no"],
      ["CRN", h("code", {}, d.crn)],
      ["Created", localTime(isoToMs(d.created_at))],
      ["Updated", localTime(isoToMs(d.updated_at))],
    ]));

  const registry = version
    ? h("section", { class: "panel", "aria-labelledby": "version-title" },
      h("h2", { id: "version-title" }, `Registered version ${version.name} v${version.version}`),
      details([
        ["Aliases", version.aliases && version.aliases.length ? version.aliases.map((a) => `@${a}`).join(", ") : "—"],
        ["Registered", localTime(isoToMs(version.created_at))],
        ["Run", h("code", {}, version.run_id || "—")],
        ["Run metrics", Object.entries(version.run_metrics || {}).map(([k, v]) => `${k} = ${fmtNumber(v)}`).join(", ") || "—"],
        ["Run parameters", Object.entries(version.run_params || {}).map(([k, v]) => `${k} = ${v}`).join(", ") || "—"],
        version.description ? ["Description", version.description] : null,
      ]))
    : null;

  const signature = d.signature
    ? h("section", { class: "panel", "aria-labelledby": "signature-title" },
      h("h2", { id: "signature-title" }, "Signature"),
      h("div", { class: "grid2" },
        signatureTable(d.signature.inputs || [], "Inputs"),
        signatureTable(d.signature.outputs || [], "Outputs")))
    : h("section", { class: "panel" }, h("h2", {}, "Signature"), h("p", { class: "muted" }, "The model was logged without a signature: inputs are not checked."));

  const replicas = d.kind === "endpoint"
    ? h("section", { class: "panel", "aria-labelledby": "replicas-title" },
      h("h2", { id: "replicas-title" }, "Replicas"),
      table({
        id: "replica-states",
        columns: [{ label: "Replica" }, { label: "Status" }, { label: "PID", num: true }, { label: "Port", num: true }, { label: "Restarts", num: true }, { label: "Last error" }],
        rows: d.replica_states.map((r) => [String(r.index), badge(r.status, statusTone(r.status)), r.pid ?? "—", r.port ?? "—", String(r.restarts), r.last_error || ""]),
        empty: "No replicas are running.",
      }))
    : null;

  clear(root, h("div", { class: "grid2" }, h("div", {}, endpoint, signature), h("div", {}, info, registry, replicas)));
}
