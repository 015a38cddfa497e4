// Inference: dedicated deployments (create, status, stop), a chat playground that streams a
// completion from a deployment (OpenAI's chat/completions with stream: true, read as SSE),
// and the batches with their files.
import { useState } from "preact/hooks";
import { html, val } from "../ui.js";
import { get, post, headers, PREFIX } from "../api.js";
import { useLoad, when, credits } from "../util.js";

const arr = (r, ...ks) => (Array.isArray(r) ? r : ks.map((k) => r && r[k]).find(Array.isArray) || []);

function Playground({ deployments }) {
  const [model, setModel] = useState("");
  const [prompt, setPrompt] = useState("");
  const [chat, setChat] = useState([]);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState("");
  const send = async (e) => {
    e.preventDefault();
    const m = model || (deployments[0] && deployments[0].deployment_id);
    if (!m) { setError("No deployment to talk to."); return; }
    const msgs = [...chat, { role: "user", content: prompt }];
    setChat([...msgs, { role: "assistant", content: "" }]);
    setPrompt("");
    setBusy(true);
    setError("");
    try {
      const r = await fetch(PREFIX + "/chat/completions", {
        method: "POST",
        headers: headers({ "Content-Type": "application/json", Accept: "text/event-stream" }),
        body: JSON.stringify({ model: m, messages: msgs, stream: true, max_tokens: 512 }),
      });
      if (!r.ok) throw new Error((await r.json().catch(() => ({}))).error?.message || r.statusText);
      const rd = r.body.getReader();
      const dec = new TextDecoder();
      let buf = "";
      let text = "";
      for (;;) {
        const { done, value } = await rd.read();
        if (done) break;
        buf += dec.decode(value, { stream: true });
        let i;
        while ((i = buf.indexOf("\n")) >= 0) {
          const line = buf.slice(0, i).trim();
          buf = buf.slice(i + 1);
          if (!line.startsWith("data:")) continue;
          const d = line.slice(5).trim();
          if (d === "[DONE]") continue;
          try {
            const c = JSON.parse(d).choices?.[0]?.delta?.content;
            if (c) { text += c; setChat([...msgs, { role: "assistant", content: text }]); }
          } catch { /* a keep-alive or a partial line */ }
        }
      }
    } catch (err) { setError(err.message); }
    setBusy(false);
  };
  return html`<div class="card" id="playground"><h3>Playground</h3>
    <select id="playground-model" value=${model || (deployments[0] && deployments[0].deployment_id) || ""}
      onChange=${val(setModel)}>
      ${deployments.map((d) => html`<option value=${d.deployment_id}>${d.hf_model_id} (${d.status})</option>`)}</select>
    <div class="chat">${chat.map((m) => html`<p class=${"msg " + m.role}><b>${m.role}:</b> ${m.content}</p>`)}</div>
    <form class="row" onSubmit=${send}><input id="prompt" class="grow" value=${prompt} onInput=${val(setPrompt)}
      placeholder="Say something" required />
      <button id="send" disabled=${busy}>Send</button></form>
    ${error && html`<p class="error">${error}</p>`}</div>`;
}

function NewDeployment({ onCreated }) {
  const [f, setF] = useState({ hf_model_id: "", hardware_profile: "cpu", min_replicas: 1, max_replicas: 1 });
  const [error, setError] = useState("");
  const set = (k) => (e) => setF({ ...f, [k]: e.target.value });
  const create = (e) => {
    e.preventDefault();
    post("/inference/create", {
      ...f, min_replicas: +f.min_replicas, max_replicas: +f.max_replicas,
      target_rps: 1, target_latency_p95_ms: 1000, stabilisation_window: 300,
    }).then(() => { setError(""); onCreated(); }, (err) => setError(err.message));
  };
  return html`<form class="card" id="new-deployment" onSubmit=${create}><h3>New deployment</h3>
    <div class="row">
      <label>Model <input id="dep-model" placeholder="Hugging Face model id" value=${f.hf_model_id}
        onInput=${set("hf_model_id")} required /></label>
      <label>Profile <input id="dep-profile" value=${f.hardware_profile} onInput=${set("hardware_profile")} /></label>
      <label>Replicas, at least <input type="number" min="1" value=${f.min_replicas} onInput=${set("min_replicas")} /></label>
      <label>at most <input type="number" min="1" value=${f.max_replicas} onInput=${set("max_replicas")} /></label>
      <button id="deploy">Deploy</button></div>
    ${error && html`<p class="error">${error}</p>`}</form>`;
}

export function InferencePage() {
  const deps = useLoad(() => get("/inference/list"), [], 5000);
  const batches = useLoad(() => get("/batches"), []);
  const files = useLoad(() => get("/files"), []);
  const list = arr(deps.data, "deployments", "data");
  return html`<section><div class="title"><h2>Inference</h2></div>
    <${NewDeployment} onCreated=${deps.reload} />
    <div class="card"><h3>Deployments</h3><table id="deployments"><tbody>${list.map((d) => html`<tr>
      <td>${d.hf_model_id}</td><td>${d.hardware_profile}</td><td>${d.status}</td>
      <td>${(d.replicas || []).length} replicas</td><td>${when(d.created_at)}</td><td>${credits(d.billed)}</td>
      <td>${!/stop|fail/.test(d.status) && html`<button class="link stop" onClick=${() =>
        confirm(`Stop ${d.hf_model_id}?`) && post(`/inference/${d.deployment_id}/stop`).then(deps.reload)}>stop</button>`}</td></tr>`)}</tbody></table></div>
    <${Playground} deployments=${list.filter((d) => d.status === "running")} />
    <div class="card"><h3>Batches</h3><table id="batches"><tbody>${arr(batches.data, "data", "batches").map((b) => html`<tr>
      <td>${b.id}</td><td>${b.endpoint}</td><td>${b.status}</td>
      <td>${b.request_counts ? `${b.request_counts.completed}/${b.request_counts.total}` : ""}</td>
      <td>${b.status !== "completed" && b.status !== "cancelled" && html`<button class="link"
        onClick=${() => post(`/batches/${b.id}/cancel`).then(batches.reload)}>cancel</button>`}</td></tr>`)}</tbody></table>
      <h4>Files</h4><table id="batch-files"><tbody>${arr(files.data, "data", "files").map((f) => html`<tr>
        <td>${f.filename}</td><td>${f.purpose}</td><td>${f.bytes} bytes</td><td>${f.id}</td></tr>`)}</tbody></table></div>
  </section>`;
}
