// The native API of this origin, called with the key from session storage (a header, never
// the URL). Errors carry the API's own message, which the page shows as is.

const KEY_STORAGE = "attachments.console.key";

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

/** The key of this tab, if one was given. */
export function currentKey() {
  return sessionStorage.getItem(KEY_STORAGE) || "";
}

export function rememberKey(key) {
  sessionStorage.setItem(KEY_STORAGE, key.trim());
}

export function forgetKey() {
  sessionStorage.removeItem(KEY_STORAGE);
}

/** Path segments are percent-encoded: a parent id may hold any character. */
export function parentPath(parent) {
  return `/v1/parents/${encodeURIComponent(parent.kind)}/${encodeURIComponent(parent.id)}`;
}

/** One API call; resolves to the parsed JSON (or null for 204), rejects with ApiError. */
export async function call(method, path, body) {
  const headers = { "X-API-KEY": currentKey() };
  const init = { method, headers, cache: "no-store", credentials: "omit" };
  if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  let resp;
  try {
    resp = await fetch(path, init);
  } catch (e) {
    throw new ApiError(0, "network", `the server did not answer (${e.message}); is it running?`);
  }
  if (resp.status === 204) return null;
  const text = await resp.text();
  let json = null;
  try {
    json = text ? JSON.parse(text) : null;
  } catch {
    json = null;
  }
  if (!resp.ok) {
    const err = json && json.error;
    throw new ApiError(
      resp.status,
      (err && err.code) || "http_" + resp.status,
      (err && err.message) || `the server answered ${resp.status}`,
    );
  }
  return json;
}

export const api = {
  getParent: (p) => call("GET", parentPath(p)),
  putParent: (p) => call("PUT", parentPath(p)),
  list: (p, cursor) =>
    call("GET", `${parentPath(p)}/attachments?limit=100${cursor ? "&cursor=" + encodeURIComponent(cursor) : ""}`),
  remove: (id) => call("DELETE", `/v1/attachments/${encodeURIComponent(id)}`),
  begin: (p, body) => call("POST", `${parentPath(p)}/uploads`, body),
  status: (id) => call("GET", `/v1/attachments/${encodeURIComponent(id)}/upload`),
  complete: (id) => call("POST", `/v1/attachments/${encodeURIComponent(id)}/complete`),
  get: (id) => call("GET", `/v1/attachments/${encodeURIComponent(id)}`),
};
