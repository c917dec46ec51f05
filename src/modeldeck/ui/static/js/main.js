// The dashboard's entry point: routes (#/, #/deployments/NAME/TAB), sign-in and auto-refresh.

import { authRequired, clearApiKey, onUnauthorized, signedIn } from "./api.js";
import { purge } from "./charts.js";
import { clear, h, timeZone } from "./dom.js";
import { deploymentPage } from "./pages/deployment.js";
import { deploymentsPage } from "./pages/deployments.js";
import { loginPage } from "./pages/login.js";
import { showError } from "./ui.js";

const main = document.getElementById("main");
const tools = document.getElementById("tools");
const topnav = document.getElementById("topnav");
const intervalSelect = document.getElementById("refresh-interval");
const REFRESH_KEY = "modeldeck.refreshSeconds";

let view = null; // {refresh(), destroy()} of the page shown
let timer = null;
let refreshing = false;

function setReady(state) {
  document.body.dataset.state = state;
  main.setAttribute("aria-busy", String(state === "loading"));
}

function stopView() {
  if (view && view.destroy) view.destroy();
  view = null;
  purge(main);
}

async function show(render, name) {
  stopView();
  clear(main);
  document.body.dataset.view = name;
  setReady("loading");
  try {
    view = await render(main);
    setReady("ready");
  } catch (exc) {
    if (exc && exc.status === 401) return; // the login page is on its way
    setReady("error");
    clear(main, h("div", { class: "banner bad", role: "alert" }, exc.message || String(exc)));
  }
}

function parseHash() {
  const path = window.location.hash.replace(/^#/, "").split("?")[0];
  return path.split("/").filter(Boolean).map(decodeURIComponent);
}

export function route() {
  const chrome = signedIn();
  tools.hidden = !chrome;
  topnav.hidden = !chrome;
  document.getElementById("sign-out").hidden = !authRequired;
  if (!signedIn()) {
    show((root) => loginPage(root, { onSignedIn: route }), "login");
    return;
  }
  const parts = parseHash();
  if (parts.length === 0) {
    document.title = "Deployments · modeldeck";
    show((root) => deploymentsPage(root), "deployments");
  } else if (parts[0] === "deployments" && parts[1]) {
    const tab = parts[2] || "overview";
    document.title = `${parts[1]} · ${tab} · modeldeck`;
    show((root) => deploymentPage(root, parts[1], tab), `deployment:${tab}`);
  } else {
    show(async (root) => {
      clear(root, h("div", { class: "banner warn", role: "alert" }, "No such page. ", h("a", { href: "#/" }, "Back to the deployments")));
      return {};
    }, "not-found");
  }
}

async function tick() {
  if (!view || !view.refresh || refreshing || document.hidden) return;
  if (document.querySelector("dialog[open]")) return; // do not move things under an open form
  refreshing = true;
  try {
    await view.refresh();
  } catch (exc) {
    if (!exc || exc.status !== 401) showError(exc);
  } finally {
    refreshing = false;
  }
}

function schedule() {
  if (timer) clearInterval(timer);
  timer = null;
  const seconds = Number(intervalSelect.value);
  localStorage.setItem(REFRESH_KEY, String(seconds));
  if (seconds > 0) timer = setInterval(tick, seconds * 1000);
}

function start() {
  // The skip link focuses the content; as a plain link it would change the route.
  document.querySelector(".skip-link").addEventListener("click", (event) => {
    event.preventDefault();
    main.focus();
  });
  document.getElementById("timezone").textContent = `Times in ${timeZone}`;
  intervalSelect.value = localStorage.getItem(REFRESH_KEY) || "15";
  if (!intervalSelect.value) intervalSelect.value = "15";
  intervalSelect.addEventListener("change", schedule);
  document.getElementById("sign-out").addEventListener("click", () => {
    clearApiKey();
    window.location.hash = "#/";
    route();
  });
  onUnauthorized(() => {
    clearApiKey();
    stopView();
    show((root) => loginPage(root, { onSignedIn: route, expired: true }), "login");
    tools.hidden = true;
    topnav.hidden = true;
  });
  window.addEventListener("hashchange", route);
  schedule();
  route();
}

start();
