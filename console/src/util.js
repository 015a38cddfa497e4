// Small helpers the pages share: formatting and a hook that loads and reloads API data.
import { useEffect, useState, useCallback } from "preact/hooks";

export function useLoad(fn, deps = [], everyMs = 0) {
  const [s, set] = useState({ data: null, error: null, loading: true });
  const load = useCallback(() => {
    fn().then((data) => set({ data, error: null, loading: false }),
      (error) => set((o) => ({ data: o.data, error, loading: false })));
  }, deps);
  useEffect(() => {
    load();
    if (!everyMs) return undefined;
    const t = setInterval(load, everyMs);
    return () => clearInterval(t);
  }, [load]);
  return { ...s, reload: load };
}

export function when(ts) {
  if (!ts) return "";
  const d = new Date(/[zZ]|[+-]\d\d:\d\d$/.test(ts) ? ts : ts + "Z");
  return isNaN(d) ? String(ts) : d.toISOString().replace("T", " ").slice(0, 19);
}

export function secondsBetween(a, b) {
  if (!a) return null;
  const p = (t) => Date.parse(/[zZ]|[+-]\d\d:\d\d$/.test(t) ? t : t + "Z");
  const e = b ? p(b) : Date.now();
  return Math.max(0, (e - p(a)) / 1000);
}

export function duration(s) {
  if (s === null || s === undefined || isNaN(s)) return "";
  if (s < 60) return s.toFixed(1) + " s";
  const m = Math.floor(s / 60);
  if (m < 60) return `${m} min ${Math.round(s % 60)} s`;
  return `${Math.floor(m / 60)} h ${m % 60} min`;
}

export function bytes(n) {
  if (n === null || n === undefined) return "";
  const u = ["B", "KB", "MB", "GB", "TB"];
  let i = 0;
  while (n >= 1024 && i < u.length - 1) { n /= 1024; i++; }
  return (i ? n.toFixed(1) : n) + " " + u[i];
}

export function credits(x) {
  if (x === null || x === undefined || x === "") return "";
  const n = Number(x);
  return isNaN(n) ? String(x) : "$" + n.toFixed(n !== 0 && Math.abs(n) < 0.01 ? 4 : 2);
}

export const TERMINAL = new Set(["completed", "failed", "system_failure", "aborted", "cancelled",
  "failed_user", "failed_system", "timeout"]);

// The slug of the org the console acts in: the one chosen (X-Org-Slug), else the one the
// server resolved (user/status's org_id), else the default one.
export function currentOrg(orgs, me) {
  const chosen = localStorage.getItem("lyceumd.org");
  if (chosen) return chosen;
  const byId = me && orgs.find((o) => o.id === me.org_id);
  const def = orgs.find((o) => o.is_default);
  return (byId || def || orgs[0] || {}).slug || "";
}

// A link from the server, only if it is http(s) or a path of this origin (never javascript:).
export function safeUrl(u) {
  if (typeof u !== "string") return null;
  try {
    const x = new URL(u, location.href);
    return x.protocol === "http:" || x.protocol === "https:" ? x.href : null;
  } catch { return null; }
}
