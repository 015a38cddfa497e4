// Runs: the list (GET /billing/history, paged on the server, so 10,000 runs cost one page at
// a time), the launch form (Python, Docker image, Compose), and a run's page: live output
// (SSE, with the credentials in a header), abort and stop, timing, logs, and its metrics as
// charts that refresh while it runs.
import { useEffect, useRef, useState } from "preact/hooks";
import { html, navigate, val } from "../ui.js";
import { get, post, del, sse } from "../api.js";
import { parseAnsi } from "../ansi.js";
import { Chart } from "../chart.js";
import { useLoad, when, duration, secondsBetween, credits, TERMINAL, bytes } from "../util.js";

const PAGE = 50;

function Status({ s }) {
  return html`<span class=${"status st-" + String(s).replace(/[^a-z_]/g, "")}>${s}</span>`;
}

function Launch({ onStarted }) {
  const types = useLoad(() => get("/machine-types"), []);
  const [kind, setKind] = useState("python");
  const [f, setF] = useState({
    code: 'print("hello from lyceumd")\n', file_name: "main.py", args: "", requirements: "",
    execution_type: "cpu", timeout: "60", image: "python:3.11-slim", cmd: "", env: "",
    compose: "services:\n  app:\n    image: busybox\n    command: echo hello\n",
  });
  const [error, setError] = useState("");
  const [busy, setBusy] = useState(false);
  const set = (k) => (e) => setF({ ...f, [k]: e.target.value });
  const loadFile = (e) => {
    const file = e.target.files[0];
    if (file) file.text().then((t) => setF({ ...f, code: t, file_name: file.name }));
  };
  const submit = async (e) => {
    e.preventDefault();
    setBusy(true);
    setError("");
    try {
      const common = { execution_type: f.execution_type, timeout: parseInt(f.timeout, 10) || 60 };
      let r;
      if (kind === "python") {
        let code = f.code;
        const args = f.args.trim() ? f.args.trim().split(/\s+/) : [];
        if (args.length) code = `import sys; sys.argv = ${JSON.stringify([f.file_name, ...args])}\n` + code;
        r = await post("/execution/streaming/start", {
          ...common, code, nbcode: 0, file_name: f.file_name || null,
          requirements_content: f.requirements.trim() || null,
        });
      } else if (kind === "image") {
        r = await post("/execution/image/start", {
          ...common, docker_image_ref: f.image,
          docker_run_cmd: f.cmd.trim() ? f.cmd.trim().split(/\s+/) : null,
          docker_run_env: f.env.trim() || null,
        });
      } else {
        r = await post("/execution/compose/start", { ...common, compose_file_code: f.compose });
      }
      onStarted(r.execution_id);
    } catch (err) { setError(err.message); }
    setBusy(false);
  };
  const profiles = (types.data && types.data.machine_types) || [{ hardware_profile: "cpu" }];
  return html`<form class="card launch" onSubmit=${submit} id="launch-form">
    <div class="tabs">
      ${[["python", "Python"], ["image", "Docker image"], ["compose", "Compose"]].map(([k, l]) =>
        html`<button type="button" id=${"kind-" + k} class=${kind === k ? "active" : ""}
          onClick=${() => setKind(k)}>${l}</button>`)}
    </div>
    ${kind === "python" && html`
      <label>Script <input type="file" accept=".py,text/plain" onChange=${loadFile} /></label>
      <textarea id="code" class="code" rows="10" spellcheck="false" value=${f.code} onInput=${set("code")}></textarea>
      <div class="row">
        <label>File name <input id="file-name" value=${f.file_name} onInput=${set("file_name")} /></label>
        <label>Arguments <input id="args" value=${f.args} onInput=${set("args")} /></label>
      </div>
      <label>Requirements <textarea id="requirements" rows="2" value=${f.requirements}
        onInput=${set("requirements")} placeholder="numpy==2.1.0"></textarea></label>`}
    ${kind === "image" && html`
      <label>Image <input id="image" value=${f.image} onInput=${set("image")} /></label>
      <label>Command <input id="cmd" value=${f.cmd} onInput=${set("cmd")} placeholder="(the image's own)" /></label>
      <label>Environment (KEY=VALUE lines) <textarea id="env" rows="2" value=${f.env} onInput=${set("env")}></textarea></label>`}
    ${kind === "compose" && html`
      <label>docker-compose.yml <textarea id="compose" class="code" rows="8" value=${f.compose}
        onInput=${set("compose")}></textarea></label>`}
    <div class="row">
      <label>Profile <select id="profile" value=${f.execution_type} onChange=${set("execution_type")}>
        ${profiles.map((p) => html`<option value=${p.hardware_profile}>${p.hardware_profile}
          ${p.price_per_hour !== undefined ? ` (${credits(p.price_per_hour)}/h)` : ""}</option>`)}
      </select></label>
      <label>Timeout (s) <input id="timeout" type="number" min="1" max="600" value=${f.timeout}
        onInput=${set("timeout")} /></label>
      <button id="launch" disabled=${busy}>Launch</button>
    </div>
    ${error && html`<p class="error" role="alert">${error}</p>`}
  </form>`;
}

export function RunsPage() {
  const [page, setPage] = useState(0);
  const [status, setStatus] = useState("");
  const [profile, setProfile] = useState("");
  const [kind, setKind] = useState("");
  const [showLaunch, setShowLaunch] = useState(false);
  const list = useLoad(() => get(`/billing/history?limit=${PAGE}&offset=${page * PAGE}`), [page], 5000);
  const d = list.data || { executions: [], total_executions: 0, counts_by_status: {} };
  const pages = Math.max(1, Math.ceil(d.total_executions / PAGE));
  const rows = d.executions.filter((r) => (!status || r.status === status) &&
    (!profile || r.hardware_profile === profile) && (!kind || r.execution_type === kind));
  const profiles = [...new Set(d.executions.map((r) => r.hardware_profile).filter(Boolean))];
  const kinds = [...new Set(d.executions.map((r) => r.execution_type).filter(Boolean))];
  return html`<section>
    <div class="title"><h2>Runs</h2>
      <button id="new-run" onClick=${() => setShowLaunch(!showLaunch)}>${showLaunch ? "Close" : "New run"}</button></div>
    ${showLaunch && html`<${Launch} onStarted=${(id) => navigate("/runs/" + id)} />`}
    <div class="filters">
      <select id="filter-status" value=${status} onChange=${val(setStatus)}>
        <option value="">every status</option>
        ${Object.keys(d.counts_by_status || {}).map((s) =>
          html`<option value=${s}>${s} (${d.counts_by_status[s]})</option>`)}
      </select>
      <select id="filter-profile" value=${profile} onChange=${val(setProfile)}>
        <option value="">every profile</option>
        ${profiles.map((p) => html`<option value=${p}>${p}</option>`)}
      </select>
      <select id="filter-kind" value=${kind} onChange=${val(setKind)}>
        <option value="">every kind</option>
        ${kinds.map((p) => html`<option value=${p}>${p}</option>`)}
      </select>
      <span class="muted">${d.total_executions} runs, ${credits(d.total_credits_spent)} spent</span>
    </div>
    ${list.error && html`<p class="error">${list.error.message}</p>`}
    <table class="runs" id="runs-table">
      <thead><tr><th>Run</th><th>Status</th><th>Kind</th><th>Profile</th><th>Created</th>
        <th>Duration</th><th>Cost</th></tr></thead>
      <tbody>${rows.map((r) => html`<tr key=${r.execution_id} data-id=${r.execution_id}>
        <td><a href=${"/runs/" + r.execution_id}>${r.file_name || r.execution_id.slice(0, 8)}</a></td>
        <td><${Status} s=${r.status} /></td><td>${r.execution_type}</td><td>${r.hardware_profile}</td>
        <td>${when(r.created_at)}</td>
        <td>${duration(secondsBetween(r.start_time, r.end_time || r.finish_time ||
          (TERMINAL.has(r.status) ? r.start_time : null)))}</td>
        <td>${credits(r.billed)}</td></tr>`)}</tbody>
    </table>
    <div class="pager">
      <button id="first-page" disabled=${page === 0} onClick=${() => setPage(0)}>First</button>
      <button id="prev-page" disabled=${page === 0} onClick=${() => setPage(page - 1)}>Previous</button>
      <span id="page-info">page ${page + 1} of ${pages}</span>
      <button id="next-page" disabled=${page + 1 >= pages} onClick=${() => setPage(page + 1)}>Next</button>
      <button id="last-page" disabled=${page + 1 >= pages} onClick=${() => setPage(pages - 1)}>Last</button>
    </div>
  </section>`;
}

const OUTPUT_MAX = 512 * 1024;

function Output({ text }) {
  const el = useRef(null);
  useEffect(() => { if (el.current) el.current.scrollTop = el.current.scrollHeight; }, [text]);
  return html`<pre class="output" id="output" ref=${el}>${parseAnsi(text).map((p) =>
    p.cls ? html`<span class=${p.cls}>${p.text}</span>` : p.text)}</pre>`;
}

// The step keeps a chart to a few hundred points whatever the run's length (the sampler
// takes one sample every metrics_interval_seconds, 5 by default).
function Metrics({ id, live, seconds }) {
  const step = Math.max(1, Math.ceil((seconds || 0) / 300));
  const m = useLoad(() => get(`/execution/${id}/metrics?step=${step}s`), [id, step], live ? 3000 : 0);
  if (!m.data) return html`<p class="muted">${m.error ? m.error.message : "Loading metrics…"}</p>`;
  const s = (k) => m.data[k] || [];
  const gpu = s("gpuUtilizationPercent").length > 0;
  if (!s("systemCpuUsagePercent").length && !live) return html`<p class="muted" id="no-metrics">No samples: the run
    was shorter than the sampler's interval.</p>`;
  return html`<div class="charts">
    <${Chart} name="cpu" title="CPU" unit="%" series=${[{ label: "CPU %", points: s("systemCpuUsagePercent") }]} />
    <${Chart} name="memory" title="Memory (MB)" series=${[
      { label: "used", points: s("systemRamUsedBytes").map((p) => ({ ...p, value: p.value / 1048576 })) }]} />
    ${gpu && html`
      <${Chart} name="gpu" title="GPU utilisation" unit="%" series=${[
        { label: "GPU %", points: s("gpuUtilizationPercent") },
        { label: "memory %", points: s("gpuMemoryUtilizationPercent") }]} />
      <${Chart} name="gpu-power" title="GPU power (W)" series=${[{ label: "W", points: s("gpuPowerWatt") }]} />
      <${Chart} name="gpu-temp" title="GPU temperature (°C)" series=${[{ label: "°C", points: s("gpuTemperatureCelsius") }]} />`}
  </div>`;
}

function Logs({ id }) {
  const [logs, setLogs] = useState(null);
  const load = () => get(`/logs/execution/${id}?limit=1000&hours=168`).then(setLogs, (e) => setLogs({ error: e.message }));
  return html`<div>
    <button id="load-logs" onClick=${load}>Query logs</button>
    ${logs && (logs.error ? html`<p class="error">${logs.error}</p>` : html`<table class="logs" id="logs">
      <tbody>${logs.logs.map((l) => html`<tr><td class="muted nowrap">${when(l.timestamp)}</td>
        <td class="nowrap">${l.level || ""}</td><td class="wide"><code>${l.message}</code></td></tr>`)}</tbody></table>
      <p class="muted">${logs.total} lines</p>`)}
  </div>`;
}

export function RunPage({ id }) {
  const [run, setRun] = useState(null);
  const [error, setError] = useState("");
  const [out, setOut] = useState("");
  const [streaming, setStreaming] = useState(false);
  const [timing, setTiming] = useState(null);
  const [msg, setMsg] = useState("");
  const load = () => get("/execution/" + id).then((r) => { setRun(r); return r; }, (e) => setError(e.message));
  useEffect(() => {
    load();
    const t = setInterval(() => load().then((r) => {
      if (r && TERMINAL.has(r.status)) clearInterval(t);
    }), 2000);
    return () => clearInterval(t);
  }, [id]);
  // Live output: the stream replays what was printed, then follows; a run that has ended
  // shows its record's output instead.
  useEffect(() => {
    const ctl = new AbortController();
    (async () => {
      const r = await get("/execution/" + id).catch(() => null);
      if (!r || TERMINAL.has(r.status)) return;
      setStreaming(true);
      let text = "";
      try {
        await sse(`/execution/streaming/${encodeURIComponent(id)}`, (ev) => {
          const c = (ev.output && ev.output.content) || (ev.type === "output" && ev.content) || ev.text;
          if (typeof c === "string") {
            text = (text + c).slice(-OUTPUT_MAX);
            setOut(text);
          }
        }, ctl.signal);
      } catch { /* ended or not available: the record has the output */ }
      if (!ctl.signal.aborted) {
        setStreaming(false);
        load();
      }
    })();
    return () => ctl.abort();
  }, [id]);
  useEffect(() => {
    if (run && TERMINAL.has(run.status)) get(`/execution/${id}/timing`).then((t) => setTiming(t.timing), () => {});
  }, [run && run.status]);
  const act = async (what) => {
    setMsg("");
    try {
      const r = await post(`/workloads/${what}/${id}`);
      setMsg(r.message || r.status || what);
      load();
    } catch (e) { setMsg(e.message); }
  };
  const remove = async () => {
    if (!confirm("Delete this run's record?")) return;
    await del("/execution/" + id).then(() => navigate("/runs"), (e) => setMsg(e.message));
  };
  if (error) return html`<p class="error">${error}</p>`;
  if (!run) return html`<p>Loading…</p>`;
  const done = TERMINAL.has(run.status);
  const shown = out || run.combined_output || [run.stdout, run.stderr].filter(Boolean).join("");
  return html`<section>
    <div class="title"><h2>${run.file_name || run.docker_image_ref || "Run"} <small class="muted">${id}</small></h2>
      <${Status} s=${run.status} /></div>
    <div class="row">
      <button id="abort" disabled=${done} onClick=${() => act("abort")}>Abort</button>
      <button id="stop" disabled=${done} onClick=${() => act("stop")}>Stop</button>
      <button id="delete-run" disabled=${!done} onClick=${remove}>Delete</button>
      <span class="muted" id="run-msg">${msg}</span>
    </div>
    <dl class="facts">
      <dt>Profile</dt><dd>${run.hardware_profile || run.execution_type}</dd>
      <dt>Created</dt><dd>${when(run.created_at)}</dd>
      <dt>Started</dt><dd>${when(run.start_time)}</dd>
      <dt>Ended</dt><dd>${when(run.end_time || run.finish_time)}</dd>
      <dt>Duration</dt><dd>${duration(secondsBetween(run.start_time, run.end_time || run.finish_time))}</dd>
      <dt>Return code</dt><dd>${run.return_code === null || run.return_code === undefined ? "" : String(run.return_code)}</dd>
      ${run.billed !== undefined && html`<dt>Cost</dt><dd>${credits(run.billed)}</dd>`}
      ${timing && html`<dt>Queued</dt><dd>${duration(timing.queue_seconds)}</dd>`}
    </dl>
    ${run.errors && html`<p class="error">${String(run.errors)}</p>`}
    ${run.errors_docker && html`<p class="error">${String(run.errors_docker)}</p>`}
    <h3>Output ${streaming && html`<small class="live" id="live">live</small>`}
      <small class="muted">${bytes(shown.length)}</small></h3>
    <${Output} text=${shown} />
    ${run.install_log && html`<details><summary>Install log</summary><pre class="output">${run.install_log}</pre></details>`}
    <h3>Metrics</h3>
    <${Metrics} id=${id} live=${!done} seconds=${secondsBetween(run.start_time, run.end_time || run.finish_time)} />
    <h3>Logs</h3>
    <${Logs} id=${id} />
  </section>`;
}
