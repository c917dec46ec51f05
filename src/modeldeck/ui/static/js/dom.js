// Building DOM without innerHTML (data from the API is never parsed as markup), and formats.
// Times are shown in the browser's time zone.

export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "class") el.className = value;
    else if (key === "dataset") Object.assign(el.dataset, value);
    else if (key.startsWith("on") && typeof value === "function") {
      el.addEventListener(key.slice(2), value);
    } else if (key === "value") el.value = value;
    else el.setAttribute(key, value === true ? "" : String(value));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : String(child));
  }
}

export function clear(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

const pad = (n, width = 2) => String(n).padStart(width, "0");

export const timeZone = Intl.DateTimeFormat().resolvedOptions().timeZone || "local time";

/** "YYYY-MM-DD HH:MM:SS" in the browser's time zone. */
export function localTime(ms) {
  if (ms === null || ms === undefined) return "—";
  const d = new Date(ms);
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ` +
    `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}

/** A time for a table cell: it may wrap between the date and the time, nowhere else. */
export function timeText(ms, cls) {
  if (ms === null || ms === undefined) return "—";
  const [day, time] = localTime(ms).split(" ");
  return h("span", { class: cls }, h("span", { class: "nowrap" }, day), " ", h("span", { class: "nowrap" }, time));
}

/** A local date string that Plotly draws as is (Plotly has no time zones of its own). */
export function plotTime(ms) {
  const d = new Date(ms);
  return `${localTime(ms)}.${pad(d.getMilliseconds(), 3)}`;
}

/** The value of an <input type="datetime-local"> for a time, and back. */
export function toLocalInput(ms) {
  return localTime(ms).slice(0, 16).replace(" ", "T");
}
export function fromLocalInput(value) {
  const ms = new Date(value).getTime();
  return Number.isFinite(ms) ? ms : null;
}

export function isoToMs(text) {
  if (!text) return null;
  // The API's datetimes without a zone are UTC.
  const ms = Date.parse(/(?:[zZ]|[+-]\d\d:?\d\d)$/.test(text) ? text : `${text}Z`);
  return Number.isFinite(ms) ? ms : null;
}

const integer = new Intl.NumberFormat("en-US", { maximumFractionDigits: 0 });

export function fmtInt(value) {
  return value === null || value === undefined ? "—" : integer.format(value);
}

export function fmtNumber(value, digits = 3) {
  if (value === null || value === undefined || Number.isNaN(value)) return "—";
  if (typeof value !== "number") return String(value);
  const abs = Math.abs(value);
  if (abs !== 0 && (abs < 1e-3 || abs >= 1e6)) return value.toExponential(2);
  return String(Number(value.toPrecision(digits + 1)));
}

export function fmtPercent(value, digits = 1) {
  if (value === null || value === undefined) return "—";
  return `${(value * 100).toFixed(digits)} %`;
}

export function fmtMs(value) {
  if (value === null || value === undefined) return "—";
  return value >= 1000 ? `${(value / 1000).toFixed(2)} s` : `${value.toFixed(value < 10 ? 1 : 0)} ms`;
}

export function fmtBytes(value) {
  if (value === null || value === undefined) return "—";
  const units = ["B", "KiB", "MiB", "GiB"];
  let v = value;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i += 1;
  }
  return `${v.toFixed(i ? 1 : 0)} ${units[i]}`;
}

export function fmtDuration(seconds) {
  if (seconds % 86400 === 0) return `${seconds / 86400}d`;
  if (seconds % 3600 === 0) return `${seconds / 3600}h`;
  if (seconds % 60 === 0) return `${seconds / 60}m`;
  return `${seconds}s`;
}

/** A value for a table cell: `key=value, ...` for a record, else JSON with spaces to wrap at;
 * numbers to 4 significant digits. */
export function compactJson(value) {
  if (value === undefined) return "";
  const textValue = value && typeof value === "object" && !Array.isArray(value)
    ? Object.entries(value).map(([k, v]) => `${k}=${spaced(v)}`).join(", ")
    : spaced(value);
  return textValue.length > 300 ? `${textValue.slice(0, 297)}…` : textValue;
}

function spaced(value) {
  if (Array.isArray(value)) return `[${value.map(spaced).join(", ")}]`;
  if (value && typeof value === "object") {
    return `{${Object.entries(value).map(([k, v]) => `${JSON.stringify(k)}: ${spaced(v)}`).join(", ")}}`;
  }
  if (typeof value === "number" && !Number.isInteger(value)) return String(Number(value.toPrecision(4)));
  return JSON.stringify(value);
}

/** The tone of each drift verdict level (the API's ``verdict.level``): the worst of the
 * columns and the prediction. */
export const VERDICT_TONES = { drift: "bad", warn: "warn", ok: "ok", not_enough_data: "info", no_data: "off" };

/** A status badge: text and colour both say it. */
export function badge(textValue, tone) {
  return h("span", { class: `badge ${tone}` }, textValue);
}

/** A warning badge for an endpoint that anyone can call (authentication disabled), or "". */
export function noAuthBadge(d) {
  if (!(d.warnings || []).length) return "";
  return h("span", { class: "badge bad no-auth", title: d.warnings.join("; "), dataset: { warning: "auth-disabled" } }, "no auth");
}

export function statusTone(status) {
  if (["deployed", "ready", "active", "ok"].includes(status)) return "ok";
  if (["failed", "unhealthy", "unavailable", "firing", "crashed"].includes(status)) return "bad";
  if (["stopped", "stopping"].includes(status)) return "off";
  return "warn";
}

/** " (autoscaled 1–4)" after a replica count, or nothing for a fixed count. */
export function autoscaled(d) {
  const a = d.autoscaling;
  return a ? ` (autoscaled ${a.min_replicas}–${a.max_replicas})` : "";
}
