// Sign in with a control-plane API key; it is kept in this tab's sessionStorage only.

import { api, setApiKey } from "../api.js";
import { clear, h } from "../dom.js";

export async function loginPage(root, { onSignedIn, expired = false }) {
  const input = h("input", {
    type: "password", id: "api-key", name: "api-key", required: true, autocomplete: "off",
    spellcheck: "false", "aria-describedby": "api-key-hint",
  });
  const error = h("p", { class: "error-text", id: "login-error", role: "alert", hidden: !expired },
    expired ? "Your API key is no longer accepted. Sign in again." : "");
  const submit = h("button", { type: "submit", class: "button primary" }, "Sign in");
  const form = h(
    "form",
    { "aria-labelledby": "login-title" },
    h("div", { class: "field" },
      h("label", { for: "api-key" }, "API key"),
      input,
      h("span", { class: "hint", id: "api-key-hint" },
        "The control-plane key (", h("code", {}, "MODELDECK_API_KEY"), ", or one from ",
        h("code", {}, "modeldeck keys create --name NAME"), "). It stays in this browser tab only.")),
    error,
    submit,
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const key = input.value.trim();
    error.hidden = true;
    submit.disabled = true;
    try {
      await api("/deployments", { key });
      setApiKey(key);
      onSignedIn();
    } catch (exc) {
      // A deployment's access key (40 hex digits, what `make run` prints for the endpoint) is
      // the usual mistake: say which key signs in.
      const accessKey = /^[0-9a-f]{40}$/.test(key);
      error.textContent = exc.status !== 401
        ? exc.message
        : accessKey
          ? "That is a deployment's access key: it calls the model endpoint. Sign in with the control-plane API key (mdk_…, printed at the first start; MODELDECK_API_KEY)."
          : "That API key was not accepted. Check it and try again (the control-plane API key, mdk_…).";
      error.hidden = false;
      input.select();
    } finally {
      submit.disabled = false;
    }
  });
  clear(
    root,
    h("section", { class: "panel login" },
      h("h1", { id: "login-title" }, "Sign in to modeldeck"),
      h("p", { class: "muted" }, "Deployments, technical and model metrics, drift and alerts."),
      form),
  );
  input.focus();
  return {};
}
