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

/**
 * Call `/api/v1{path}`. `query` values that are null, undefined or "" are left out.
 * `key` signs this one call with another key (the login form's). Errors throw ApiError with
 * the API's error code and message.
 */
export async function api(path, { method = "GET", query, body, key } = {}) {
  const url = new URL(`/api/v1${path}`, window.location.origin);
  for (const [name, value] of Object.entries(query || {})) {
    if (value === null || value === undefined || value === "") continue;
    if (Array.isArray(value)) value.forEach((v) => url.searchParams.append(name, v));
    else url.searchParams.set(name, String(value));
  }
  const headers = { Accept: "application/json" };
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
  if (response.status === 204) return null;
  let payload = null;
  try {
    payload = await response.json();
  } catch {
    payload = null;
  }
  if (!response.ok) {
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
  return payload;
}
