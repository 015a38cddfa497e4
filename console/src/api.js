// The console's only way to the server: the public API under /api/v2/external, as any script
// would call it. The access token lives in memory only; the refresh token is kept in
// IndexedDB (tokenstore.js) so that a reload stays signed in (it is single use: each refresh
// stores the new one, and one refresh at a time runs, across tabs). Tokens never go into a
// URL. The org the console acts in is sent as X-Org-Slug on every request.
import { load, save } from "./tokenstore.js";

export const PREFIX = "/api/v2/external";
const RT = "lyceumd.refresh_token";
const HINT = "lyceumd.signed_in"; // localStorage: whether a refresh token is kept (no secret)
const ORG = "lyceumd.org";

let access = null;
let refreshing = null;
let version = 0; // bumped when the list of orgs may have changed
const listeners = new Set();

export const session = {
  get signedIn() { return access !== null; },
  get org() { return localStorage.getItem(ORG) || ""; },
  setOrg(slug) {
    if (slug) localStorage.setItem(ORG, slug); else localStorage.removeItem(ORG);
    listeners.forEach((f) => f());
  },
  onChange(f) { listeners.add(f); return () => listeners.delete(f); },
  get version() { return version; },
  orgsChanged() { version++; listeners.forEach((f) => f()); },
  hasRefresh() { return localStorage.getItem(HINT) === "1"; },
  // Takes a login or refresh answer: resolves once the refresh token is stored.
  async accept(tokens) {
    if (tokens.refresh_token) {
      await save(RT, tokens.refresh_token);
      localStorage.setItem(HINT, "1");
    }
    access = tokens.access_token;
    listeners.forEach((f) => f());
  },
  signOut() {
    access = null;
    localStorage.removeItem(HINT);
    localStorage.removeItem(ORG);
    save(RT, null);
    listeners.forEach((f) => f());
  },
  token() { return access; },
};

export class ApiError extends Error {
  constructor(status, detail) {
    super(typeof detail === "string" ? detail : JSON.stringify(detail));
    this.status = status;
  }
}

async function parse(r) {
  const ct = r.headers.get("Content-Type") || "";
  const body = ct.includes("json") ? await r.json().catch(() => null) : await r.text();
  if (!r.ok) {
    let d = body && body.detail !== undefined ? body.detail : body || r.statusText;
    if (Array.isArray(d)) d = d.map((e) => `${(e.loc || []).join(".")}: ${e.msg}`).join("; ");
    throw new ApiError(r.status, d);
  }
  return body;
}

// Trades the stored refresh token for a new pair; false when there is none or it is refused.
// Refresh tokens are single use (a reused one revokes its family), so tabs take turns through
// a Web Lock, and each reads the token only once it holds the lock: the one another tab just
// stored, not the one it had before.
async function refreshOnce() {
  const rt = await load(RT);
  if (!rt) return false;
  return fetch(PREFIX + "/auth/refresh", {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ refresh_token: rt }),
  }).then(async (r) => {
    if (!r.ok) {
      if (r.status === 401 && (await load(RT)) === rt) session.signOut();
      return false;
    }
    await session.accept(await r.json());
    return true;
  }, () => false);
}

export function refresh() {
  if (refreshing) return refreshing;
  const locks = navigator.locks;
  refreshing = (locks ? locks.request("lyceumd.refresh", refreshOnce) : refreshOnce())
    .finally(() => { refreshing = null; });
  return refreshing;
}

export function headers(extra = {}) {
  const h = { ...extra };
  if (access) h.Authorization = "Bearer " + access;
  if (session.org) h["X-Org-Slug"] = session.org;
  return h;
}

// path: relative to PREFIX unless it starts with "/" and not "/api" ... callers pass API
// paths ("/runs") or absolute ones with abs = true ("/metrics").
export async function api(method, path, body,
  { abs = false, raw = false, noOrg = false, accept = null, signal = undefined } = {}) {
  const url = abs ? path : PREFIX + path;
  const go = () => {
    const h = headers(body !== undefined && !(body instanceof FormData)
      ? { "Content-Type": "application/json" } : {});
    if (noOrg) delete h["X-Org-Slug"];
    if (accept) h.Accept = accept;
    return fetch(url, {
      method,
      headers: h,
      signal,
      body: body === undefined ? undefined : body instanceof FormData ? body : JSON.stringify(body),
    });
  };
  let r = await go();
  if (r.status === 401 && access && (await refresh())) r = await go();
  if (raw) {
    if (!r.ok) await parse(r);
    return r;
  }
  return parse(r);
}

export const get = (p, o) => api("GET", p, undefined, o);
export const post = (p, b, o) => api("POST", p, b === undefined ? {} : b, o);
export const patch = (p, b, o) => api("PATCH", p, b === undefined ? {} : b, o);
export const del = (p, o) => api("DELETE", p, undefined, o);

// Signs in: the tokens, or {mfa_token} when the account asks for a second step.
export async function login(email, password) {
  const r = await parse(await fetch(PREFIX + "/auth/login", {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ email, password }),
  }));
  if (r.mfa_required) return { mfa_token: r.mfa_token };
  await session.accept(r);
  return {};
}

export async function verifyMfa(mfa_token, code) {
  const r = await parse(await fetch(PREFIX + "/mfa/verify", {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ mfa_token, code }),
  }));
  await session.accept(r);
}

// Reads a run's output as Server-Sent Events (POSTed, as Lyceum's clients do, with the
// credentials in the header rather than the streaming_url's token in the URL): calls onEvent
// with each event's parsed data until the stream ends or signal aborts.
export async function sse(path, onEvent, signal) {
  const r = await api("POST", path, undefined, { raw: true, accept: "text/event-stream", signal });
  if (!r.body) throw new ApiError(r.status, "the output stream is not available");
  const reader = r.body.getReader();
  const dec = new TextDecoder();
  let buf = "";
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    buf += dec.decode(value, { stream: true });
    let i;
    while ((i = buf.indexOf("\n\n")) >= 0) {
      const block = buf.slice(0, i);
      buf = buf.slice(i + 2);
      const data = block.split("\n").filter((l) => l.startsWith("data:"))
        .map((l) => l.slice(5).replace(/^ /, "")).join("\n");
      if (!data) continue;
      try { onEvent(JSON.parse(data)); } catch { onEvent({ text: data }); }
    }
  }
}

// Uploads one file to the bucket under key, calling progress(sent, total): files over 10 MB
// go in 8 MB chunks to /storage/upload-chunk (as Lyceum's dashboard sends them), smaller ones
// whole to /storage/upload. XMLHttpRequest, because fetch reports no upload progress.
const CHUNK = 8 << 20;
function xhr(url, form, onProgress) {
  return new Promise((resolve, reject) => {
    const x = new XMLHttpRequest();
    x.open("POST", url);
    const h = headers();
    for (const k in h) x.setRequestHeader(k, h[k]);
    x.upload.onprogress = (e) => onProgress(e.loaded);
    x.onload = () => {
      if (x.status >= 200 && x.status < 300) resolve(x.responseText);
      else {
        let d = x.statusText;
        try { d = JSON.parse(x.responseText).detail; } catch { /* not JSON */ }
        reject(new ApiError(x.status, d));
      }
    };
    x.onerror = () => reject(new ApiError(0, "network error"));
    x.send(form);
  });
}

export async function upload(file, key, progress) {
  if (file.size <= 10 << 20) {
    const f = new FormData();
    f.append("file", file, file.name);
    await xhr(`${PREFIX}/storage/upload?key=${encodeURIComponent(key)}`, f,
      (n) => progress(Math.min(n, file.size), file.size));
    progress(file.size, file.size);
    return;
  }
  const total = Math.ceil(file.size / CHUNK);
  const id = "console-" + crypto.randomUUID();
  for (let i = 0; i < total; i++) {
    const part = file.slice(i * CHUNK, Math.min(file.size, (i + 1) * CHUNK));
    const f = new FormData();
    f.append("upload_id", id);
    f.append("chunk_index", String(i));
    f.append("total_chunks", String(total));
    f.append("key", key);
    f.append("file", part, file.name);
    await xhr(`${PREFIX}/storage/upload-chunk`, f,
      (n) => progress(Math.min(file.size, i * CHUNK + Math.min(n, part.size)), file.size));
  }
  progress(file.size, file.size);
}

// Downloads an object with the credentials in a header (never in the URL) and hands it to
// the browser as a file.
export async function download(key) {
  const r = await api("GET", "/storage/download/" + key.split("/").map(encodeURIComponent).join("/"),
    undefined, { raw: true });
  const blob = await r.blob();
  const a = document.createElement("a");
  a.href = URL.createObjectURL(blob);
  a.download = key.split("/").pop();
  document.body.appendChild(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(a.href), 60000);
}
