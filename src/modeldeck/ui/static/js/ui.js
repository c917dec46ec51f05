// Shared pieces: confirmation and input dialogs, toasts, the time-range picker, tables.

import { api } from "./api.js";
import { clear, fromLocalInput, h, toLocalInput } from "./dom.js";

export function toast(message, tone = "") {
  const box = document.getElementById("toasts");
  const item = h("div", { class: `toast ${tone}` }, message);
  box.append(item);
  setTimeout(() => item.remove(), tone === "bad" ? 9000 : 5000);
}

export function showError(exc) {
  toast(exc && exc.message ? exc.message : String(exc), "bad");
}

/**
 * The API's validation errors (`details.errors`, or `details.field` with the message) beside
 * the inputs they name: an input carries `data-field` with the API's field name, or a prefix
 * of it (`channels.0` for `channels.0.url`). Returns how many were placed.
 */
function markFields(form, exc) {
  const details = (exc && exc.details) || {};
  const problems = Array.isArray(details.errors) && details.errors.length
    ? details.errors
    : details.field ? [{ field: details.field, message: exc.message }] : [];
  const inputs = [...form.querySelectorAll("[data-field]")];
  let placed = 0;
  for (const problem of problems) {
    const field = String(problem.field || "");
    const input = inputs.find((el) => field === el.dataset.field || field.startsWith(`${el.dataset.field}.`));
    if (!input || input.getAttribute("aria-invalid") === "true") continue;
    const id = `${input.id || "field"}-error`;
    input.setAttribute("aria-invalid", "true");
    input.setAttribute("aria-describedby", id);
    (input.closest(".field") || input.parentElement).append(
      h("span", { class: "error-text field-error", id }, problem.message.replace(/^[\w.]+: /, "")));
    placed += 1;
  }
  return placed;
}

function clearFields(form) {
  for (const note of form.querySelectorAll(".field-error")) note.remove();
  for (const input of form.querySelectorAll("[aria-invalid=true]")) {
    input.removeAttribute("aria-invalid");
    input.removeAttribute("aria-describedby");
  }
}

/** A modal dialog; resolves with what `collect()` returns on submit, or null when cancelled. */
function modal({ title, body, submitLabel, danger = false, collect = () => true, focus, cancellable = true, wide = false }) {
  return new Promise((resolve) => {
    const titleId = `dialog-title-${Math.random().toString(36).slice(2)}`;
    const error = h("p", { class: "error-text", role: "alert", hidden: true });
    const cancel = h("button", { type: "button", class: "button", hidden: !cancellable }, "Cancel");
    const submit = h(
      "button",
      { type: "submit", class: `button ${danger ? "danger solid" : "primary"}` },
      submitLabel,
    );
    const form = h(
      "form",
      { method: "dialog" },
      h("h2", { id: titleId }, title),
      body,
      error,
      h("div", { class: "actions" }, cancel, submit),
    );
    const dialog = h("dialog", { "aria-labelledby": titleId, class: wide ? "wide" : null }, form);
    let settled = false;
    const finish = (value) => {
      if (settled) return;
      settled = true;
      dialog.close();
      dialog.remove();
      resolve(value);
    };
    cancel.addEventListener("click", () => finish(null));
    dialog.addEventListener("cancel", (event) => {
      event.preventDefault();
      finish(null);
    });
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      error.hidden = true;
      clearFields(form);
      try {
        submit.disabled = true;
        const value = await collect();
        finish(value);
      } catch (exc) {
        if (exc.status === 401) {
          finish(null);  // signed out: the login page takes over
          return;
        }
        error.textContent = exc.message || String(exc);
        error.hidden = false;
        const first = markFields(form, exc) ? form.querySelector("[aria-invalid=true]") : null;
        if (first) first.focus();
      } finally {
        submit.disabled = false;
      }
    });
    document.body.append(dialog);
    dialog.showModal();
    const first = focus ? focus() : null;
    (first || (cancellable ? cancel : submit)).focus();
  });
}

/** Ask before a destructive action; resolves true when confirmed. */
export async function confirmAction({ title, message, confirmLabel, danger = true }) {
  const answer = await modal({
    title,
    body: h("p", {}, message),
    submitLabel: confirmLabel,
    danger,
  });
  return answer === true;
}

/** Ask for a whole number; resolves with it, or null when cancelled. */
export function askNumber({ title, label, value, min, max, hint, submitLabel }) {
  const input = h("input", {
    type: "number", id: "ask-number", min, max, step: 1, value: String(value), required: true,
  });
  const body = h(
    "div",
    { class: "field" },
    h("label", { for: "ask-number" }, label),
    input,
    hint ? h("span", { class: "hint" }, hint) : null,
  );
  return modal({
    title,
    body,
    submitLabel,
    focus: () => input,
    collect: () => {
      const n = Number(input.value);
      if (!Number.isInteger(n) || n < min || n > max) {
        throw new Error(`${label}: a whole number from ${min} to ${max}`);
      }
      return n;
    },
  });
}

/**
 * A form in a dialog: `fields` is a node; `collect` validates and may call the API. An API
 * error shows in the dialog, and its validation errors beside the inputs whose `data-field`
 * names them.
 */
export function formDialog({ title, fields, submitLabel, collect, focus, wide = false }) {
  return modal({ title, body: fields, submitLabel, collect, focus, wide });
}

export function infoDialog({ title, body }) {
  return modal({ title, body, submitLabel: "Done", cancellable: false }).then(() => undefined);
}

// The platform's presets (modeldeck.monitoring.windows.PRESETS), after "auto": fitted to the
// data present, from the deployment's first prediction to now.
export const PRESETS = [
  ["auto", null],
  ["5m", 300e3],
  ["15m", 900e3],
  ["1h", 3600e3],
  ["2h", 7200e3],
  ["6h", 21600e3],
  ["12h", 43200e3],
  ["24h", 86400e3],
  ["7d", 604800e3],
  ["14d", 1209600e3],
];
const PRESET_LABELS = { auto: "Auto" };
export const AUTO = { preset: "auto" };

/** A remembered range value, or "auto" when it names no preset there is any more. */
export function knownRange(value) {
  if (value && (value.preset === "custom" ? value.start < value.end : PRESETS.some(([key]) => key === value.preset))) return value;
  return AUTO;
}

/**
 * The window to show deployment `name` over for a range value, as the platform chooses it
 * (GET /deployments/{name}/window, as the CLI and the report do): {start, end} in ms and the
 * `step` in seconds (12 to 60 windows), the start on a whole step. "auto" fits the range to
 * the data present; a custom range keeps its end and starts on a whole step at or before its
 * start.
 */
export async function windowFor(name, value) {
  const path = `/deployments/${encodeURIComponent(name)}/window`;
  const range = knownRange(value);
  if (range.preset === "custom") {
    const found = await api(path, { query: { span: Math.max(1, Math.ceil((range.end - range.start) / 1000)) } });
    const start = Math.floor(range.start / found.step) * found.step;
    return { start, end: Math.ceil(range.end), step: found.step / 1000, preset: null };
  }
  const span = PRESETS.find(([key]) => key === range.preset)[1];
  const found = await api(path, { query: span ? { span: span / 1000 } : {} });
  return { start: found.start, end: found.end, step: found.step / 1000, preset: found.preset };
}

/**
 * Range presets (auto, 5m ... 14d) and a custom range. `onChange(value)` gets
 * {preset} or {preset: "custom", start, end}.
 */
export function rangePicker({ id, value, onChange, label = "Time range" }) {
  let current = { ...knownRange(value) };
  const buttons = PRESETS.map(([key]) =>
    h("button", {
      type: "button",
      "aria-pressed": String(current.preset === key),
      dataset: { preset: key },
      title: key === "auto" ? "From the first prediction to now, rounded up to a preset" : null,
    }, PRESET_LABELS[key] || key),
  );
  const customButton = h(
    "button",
    { type: "button", "aria-pressed": String(current.preset === "custom"), "aria-expanded": "false", dataset: { preset: "custom" } },
    "Custom",
  );
  const now = Date.now();
  const fromInput = h("input", { type: "datetime-local", id: `${id}-from`, value: toLocalInput(current.start || now - 3600e3) });
  const toInput = h("input", { type: "datetime-local", id: `${id}-to`, value: toLocalInput(current.end || now) });
  const problem = h("span", { class: "error-text", role: "alert" });
  const apply = h("button", { type: "button", class: "button primary small" }, "Apply");
  const custom = h(
    "div",
    { class: "custom-range", hidden: current.preset !== "custom" },
    h("div", { class: "field" }, h("label", { for: `${id}-from` }, "From"), fromInput),
    h("div", { class: "field" }, h("label", { for: `${id}-to` }, "To"), toInput),
    apply,
    problem,
  );
  const press = () => {
    for (const b of [...buttons, customButton]) b.setAttribute("aria-pressed", String(b.dataset.preset === current.preset));
  };
  for (const b of buttons) {
    b.addEventListener("click", () => {
      current = { preset: b.dataset.preset };
      custom.hidden = true;
      customButton.setAttribute("aria-expanded", "false");
      press();
      onChange(current);
    });
  }
  customButton.addEventListener("click", () => {
    custom.hidden = !custom.hidden;
    customButton.setAttribute("aria-expanded", String(!custom.hidden));
    if (!custom.hidden) fromInput.focus();
  });
  apply.addEventListener("click", () => {
    const start = fromInput.value ? fromLocalInput(fromInput.value) : null;
    const end = toInput.value ? fromLocalInput(toInput.value) : null;
    if (start === null || end === null || end <= start) {
      problem.textContent = "Pick a start before the end.";
      return;
    }
    problem.textContent = "";
    current = { preset: "custom", start, end };
    press();
    onChange(current);
  });
  return h(
    "fieldset",
    { class: "range-picker", id },
    h("legend", {}, label),
    h("div", { class: "segmented", role: "group", "aria-label": label }, buttons, customButton),
    custom,
  );
}

/** A labelled <select>; `options` are [value, text] pairs. */
export function selectField({ id, label, options, value, onChange }) {
  const select = h(
    "select",
    { id },
    options.map(([v, t]) => h("option", { value: String(v), selected: String(v) === String(value) }, t)),
  );
  select.addEventListener("change", () => onChange(select.value));
  return h("div", { class: "field" }, h("label", { for: id }, label), select);
}

/** A table: `columns` are {label, num?}; `rows` arrays of cells (nodes or text). */
export function table({ caption, columns, rows, foot, empty = "Nothing yet.", id }) {
  const head = h("thead", {}, h("tr", {}, columns.map((c) => h("th", { scope: "col", class: c.num ? "num" : null }, c.label))));
  const cell = (value, column) => h("td", { class: column && column.num ? "num" : column && column.cls }, value);
  const body = h(
    "tbody",
    {},
    rows.length
      ? rows.map((r) => h("tr", {}, r.map((v, i) => cell(v, columns[i]))))
      : h("tr", {}, h("td", { colspan: columns.length, class: "muted" }, empty)),
  );
  const tfoot = foot ? h("tfoot", {}, h("tr", {}, foot.map((v, i) => cell(v, columns[i])))) : null;
  return h("div", { class: "table-wrap" }, h("table", { id }, caption ? h("caption", {}, caption) : null, head, body, tfoot));
}

export function setBusy(container, busy) {
  container.setAttribute("aria-busy", String(busy));
}

export function message(container, text, tone = "info") {
  clear(container, h("div", { class: `banner ${tone}` }, text));
}

/** A choice remembered for this browser tab (ranges, selectors), as JSON. */
export function remembered(key, fallback) {
  try {
    const value = sessionStorage.getItem(`modeldeck.${key}`);
    return value === null ? fallback : JSON.parse(value);
  } catch {
    return fallback;
  }
}

export function remember(key, value) {
  sessionStorage.setItem(`modeldeck.${key}`, JSON.stringify(value));
}

/**
 * Re-render `container` without losing the keyboard focus: an element inside it that had the
 * focus and carries `data-focus` gets it back in the new content.
 */
export function keepFocus(container, render) {
  const active = document.activeElement;
  const key = active && container.contains(active) ? active.dataset.focus : undefined;
  render();
  if (key) {
    const again = container.querySelector(`[data-focus="${CSS.escape(key)}"]`);
    if (again) again.focus();
  }
}
