// The control plane's REST API with the API key this browser tab signed in with.

const KEY = "modeldeck.apiKey";

export const authRequired = document.documentElement.dataset.authRequired !== "false";

export function apiKey() {
  return sessionStorage.getItem(KEY);
}

export function setApiKey(key) {
  sessionStorage.setItem(KEY, key);
}

export function clearApiKey() {
  sessionStorage.removeItem(KEY);
}

export function signedIn() {
  return !authRequired || Boolean(apiKey());
}

export class ApiError extends Error {
  constructor(status, code, message, details) {
    super(message);
    this.status = status;
    this.code = code;
    this.details = details || {};
  }
}

let unauthorized = () => {};

/** Called when a stored key is refused (revoked, or the platform restarted with other keys). */
export function onUnauthorized(handler) {
  unauthorized = handler;
}

/** The fetch of `/api/v1{path}`; throws ApiError for an error answer (the one JSON shape). */
async function request(path, { method = "GET", query, body, key, accept = "application/json" } = {}) {
  const url = new URL(`/api/v1${path}`, window.location.origin);
  for (const [name, value] of Object.entries(query || {})) {
    if (value === null || value === undefined || value === "") continue;
    if (Array.isArray(value)) value.forEach((v) => url.searchParams.append(name, v));
    else url.searchParams.set(name, String(value));
  }
  const headers = { Accept: accept };
  const token = key ?? apiKey();
  if (token) headers.Authorization = `Bearer ${token}`;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  let response;
  try {
    response = await fetch(url, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      cache: "no-store",
    });
  } catch (exc) {
    throw new ApiError(0, "network", `The platform cannot be reached (${exc.message}).`);
  }
  if (!response.ok) {
    let payload = null;
    try {
      payload = await response.json();
    } catch {
      payload = null;
    }
    const error = payload && payload.error ? payload.error : {};
    const failure = new ApiError(
      response.status,
      error.code || "error",
      error.message || `HTTP ${response.status}`,
      error.details,
    );
    if (response.status === 401 && key === undefined) unauthorized(failure);
    throw failure;
  }
  return response;
}

/**
 * Call `/api/v1{path}`. `query` values that are null, undefined or "" are left out.
 * `key` signs this one call with another key (the login form's). Errors throw ApiError with
 * the API's error code and message.
 */
export async function api(path, options = {}) {
  const response = await request(path, options);
  if (response.status === 204) return null;
  try {
    return await response.json();
  } catch {
    return null;
  }
}

/**
 * Download `/api/v1{path}` as a file: fetched with the tab's key (a plain link would not send
 * it), then saved through an object URL under the name the platform gives (or `filename`).
 * Resolves with the answer's headers; errors throw ApiError as `api()` does.
 */
export async function download(path, { query, filename, accept = "*/*" } = {}) {
  const response = await request(path, { query, accept });
  const blob = await response.blob();
  const given = /filename="([^"]+)"/.exec(response.headers.get("Content-Disposition") || "");
  const url = URL.createObjectURL(blob);
  const link = document.createElement("a");
  link.href = url;
  link.download = given ? given[1] : filename || "download";
  link.hidden = true;
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 60_000);
  return response.headers;
}
