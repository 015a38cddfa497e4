// Operators: every profile's capacity and queue, the server's health, and its own /metrics
// (Prometheus' text format, public) sampled every few seconds into charts.
import { useEffect, useState } from "preact/hooks";
import { html } from "../ui.js";
import { get } from "../api.js";
import { Chart } from "../chart.js";

// name{labels} value lines of the exposition format.
export function parseProm(text) {
  const out = [];
  for (const line of text.split("\n")) {
    if (!line || line[0] === "#") continue;
    const m = line.match(/^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{([^}]*)\})?\s+(\S+)/);
    if (!m) continue;
    const labels = {};
    if (m[3]) for (const kv of m[3].matchAll(/([a-zA-Z_]+)="((?:[^"\\]|\\.)*)"/g)) labels[kv[1]] = kv[2];
    out.push({ name: m[1], labels, value: parseFloat(m[4]) });
  }
  return out;
}

const KEEP = 120;

export function OperatorsPage() {
  const [health, setHealth] = useState(null);
  const [samples, setSamples] = useState([]);
  const [error, setError] = useState("");
  useEffect(() => {
    let stop = false;
    const tick = async () => {
      try {
        setHealth(await get("/health", { abs: true }));
        const r = await fetch("/metrics");
        if (!r.ok) throw new Error(`/metrics: ${r.status}`);
        const m = parseProm(await r.text());
        if (!stop) setSamples((s) => [...s.slice(-KEEP), { t: new Date().toISOString(), m }]);
      } catch (e) { setError(e.message); }
    };
    tick();
    const t = setInterval(tick, 3000);
    return () => { stop = true; clearInterval(t); };
  }, []);
  const last = samples.length ? samples[samples.length - 1].m : [];
  const by = (name) => last.filter((x) => x.name === name);
  const profiles = [...new Set(by("lyceumd_capacity_slots").map((x) => x.labels.profile))];
  const val = (name, p) => (by(name).find((x) => x.labels.profile === p) || {}).value;
  const series = (name, pick) => samples.map((s) => ({
    timestamp: s.t, value: s.m.filter((x) => x.name === name && (!pick || pick(x))).reduce((a, x) => a + x.value, 0),
  }));
  let prevReq = null;
  const rate = samples.map((s) => {
    const n = s.m.filter((x) => x.name === "lyceumd_http_requests_total").reduce((a, x) => a + x.value, 0);
    const v = prevReq === null ? 0 : Math.max(0, (n - prevReq.n) / ((Date.parse(s.t) - Date.parse(prevReq.t)) / 1000));
    prevReq = { n, t: s.t };
    return { timestamp: s.t, value: v };
  });
  return html`<section><div class="title"><h2>Operators</h2></div>
    <p class="muted">From the server's own /health and /metrics (Prometheus' text, as a scraper reads it), every 3 s.</p>
    <div class="card"><h3>Health</h3><p id="health">${health ? health.status : "…"}</p>
      ${error && html`<p class="error">${error}</p>`}</div>
    <div class="card"><h3>Capacity and queue</h3><table id="capacity"><thead><tr><th>Profile</th><th>Slots</th>
      <th>In use</th><th>Queued</th></tr></thead><tbody>${profiles.map((p) => html`<tr><td>${p}</td>
      <td>${val("lyceumd_capacity_slots", p)}</td><td>${val("lyceumd_capacity_in_use", p)}</td>
      <td>${val("lyceumd_queue_depth", p) ?? 0}</td></tr>`)}</tbody></table></div>
    <div class="charts">
      <${Chart} name="requests" title="HTTP requests per second" series=${[{ label: "req/s", points: rate }]} />
      <${Chart} name="in-use" title="Slots in use" series=${[{ label: "in use", points: series("lyceumd_capacity_in_use") }]} />
      <${Chart} name="queue" title="Queue depth" series=${[{ label: "queued", points: series("lyceumd_queue_depth") }]} />
    </div>
  </section>`;
}
