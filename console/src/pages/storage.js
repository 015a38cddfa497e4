// Storage: the bucket browsed by prefix (folders are the keys' next path segment), uploads
// by drag and drop or file picker (folders keep their relative paths) with a progress bar
// each, download, delete, and the S3 credentials with the aws command that uses them.
import { useState } from "preact/hooks";
import { html } from "../ui.js";
import { get, post, del, upload, download } from "../api.js";
import { useLoad, bytes, when } from "../util.js";

function Credentials() {
  const [c, setC] = useState(null);
  const [error, setError] = useState("");
  const show = () => post("/storage/credentials").then(setC, (e) => setError(e.message));
  if (!c) return html`<div class="card"><h3>S3 credentials</h3><button id="s3-credentials" onClick=${show}>Show S3 credentials</button>
    ${error && html`<p class="error">${error}</p>`}</div>`;
  const ep = /^https?:\/\//.test(c.endpoint) ? c.endpoint : "https://" + c.endpoint;
  const cmd = `AWS_ACCESS_KEY_ID=${c.access_key} AWS_SECRET_ACCESS_KEY=${c.secret_key}` +
    (c.session_token ? ` AWS_SESSION_TOKEN=${c.session_token}` : "") +
    ` aws --endpoint-url ${ep} --region ${c.region || "us-east-1"} s3 ls s3://${c.bucket_name}/`;
  return html`<div class="card" id="s3-box"><h3>S3 credentials</h3>
    <dl class="facts"><dt>Endpoint</dt><dd>${ep}</dd><dt>Bucket</dt><dd>${c.bucket_name}</dd>
      <dt>Access key</dt><dd><code>${c.access_key}</code></dd>
      <dt>Secret key</dt><dd><code>${c.secret_key}</code></dd>
      ${c.expires_at && html`<dt>Expires</dt><dd>${when(c.expires_at)}</dd>`}</dl>
    <p>With the AWS CLI:</p><pre class="cmd" id="aws-cmd">${cmd}</pre>
  </div>`;
}

export function StoragePage() {
  const [prefix, setPrefix] = useState("");
  const [uploads, setUploads] = useState([]);
  const [over, setOver] = useState(false);
  const [error, setError] = useState("");
  const list = useLoad(() => get(`/storage/list-files?prefix=${encodeURIComponent(prefix)}&max_files=10000`), [prefix]);
  const items = Array.isArray(list.data) ? list.data : [];
  const folders = new Set();
  const files = [];
  for (const f of items) {
    const rest = f.key.slice(prefix.length);
    const i = rest.indexOf("/");
    if (i >= 0) folders.add(rest.slice(0, i + 1)); else files.push(f);
  }
  const send = async (entries) => {
    setError("");
    const start = uploads.length;
    const rows = entries.map(({ file, path }) => ({ key: prefix + path, sent: 0, total: file.size, done: false }));
    let all = [...uploads, ...rows];
    setUploads(all);
    for (let i = 0; i < entries.length; i++) {
      const at = start + i;
      try {
        await upload(entries[i].file, rows[i].key, (sent, total) => {
          all = all.map((u, j) => (j === at ? { ...u, sent, total } : u));
          setUploads(all);
        });
        all = all.map((u, j) => (j === at ? { ...u, done: true } : u));
      } catch (e) {
        all = all.map((u, j) => (j === at ? { ...u, error: e.message } : u));
        setError(e.message);
      }
      setUploads(all);
    }
    list.reload();
  };
  const picked = (e) => send([...e.target.files].map((file) => ({ file, path: file.webkitRelativePath || file.name })));
  // Dropped folders are walked (webkitGetAsEntry), keeping each file's path below them.
  const walk = (entry, path, out) => new Promise((resolve) => {
    if (entry.isFile) entry.file((file) => { out.push({ file, path: path + file.name }); resolve(); }, resolve);
    else if (entry.isDirectory) {
      const r = entry.createReader();
      const acc = [];
      const more = () => r.readEntries(async (es) => {
        if (!es.length) {
          for (const e of acc) await walk(e, path + entry.name + "/", out);
          resolve();
        } else { acc.push(...es); more(); }
      }, resolve);
      more();
    } else resolve();
  });
  const drop = async (e) => {
    e.preventDefault();
    setOver(false);
    const out = [];
    const entries = [...(e.dataTransfer.items || [])]
      .map((it) => (it.kind === "file" && it.webkitGetAsEntry ? it.webkitGetAsEntry() : null));
    if (entries.length && entries.every(Boolean)) {
      for (const en of entries) await walk(en, "", out);
    } else for (const file of e.dataTransfer.files) out.push({ file, path: file.name });
    send(out);
  };
  const remove = async (key) => {
    if (!confirm(`Delete ${key}?`)) return;
    await del("/storage/delete/" + key.split("/").map(encodeURIComponent).join("/")).catch((e) => setError(e.message));
    list.reload();
  };
  const removeFolder = async (p) => {
    if (!confirm(`Delete everything under ${p}?`)) return;
    await del("/storage/delete-folder/" + p.replace(/\/$/, "").split("/").map(encodeURIComponent).join("/"))
      .catch((e) => setError(e.message));
    list.reload();
  };
  const crumbs = prefix.split("/").filter(Boolean);
  return html`<section>
    <div class="title"><h2>Storage</h2></div>
    <div class=${"drop" + (over ? " over" : "")} id="dropzone"
      onDragOver=${(e) => { e.preventDefault(); setOver(true); }} onDragLeave=${() => setOver(false)} onDrop=${drop}>
      Drop files or folders here, or
      <label class="button">choose files<input id="upload-input" type="file" multiple hidden onChange=${picked} /></label>
      <label class="button">a folder<input type="file" webkitdirectory hidden onChange=${picked} /></label>
    </div>
    ${uploads.length > 0 && html`<ul class="uploads" id="uploads">${uploads.map((u) => html`<li data-key=${u.key}
        data-done=${u.done ? "1" : "0"}>
      <span>${u.key}</span> <progress max=${u.total || 1} value=${u.sent}></progress>
      <span class="muted">${bytes(u.sent)} / ${bytes(u.total)}</span>
      ${u.error && html`<span class="error">${u.error}</span>`}</li>`)}</ul>`}
    ${error && html`<p class="error" role="alert">${error}</p>`}
    <p class="crumbs"><a href="#" onClick=${(e) => { e.preventDefault(); setPrefix(""); }}>bucket</a>
      ${crumbs.map((c, i) => html` / <a href="#" onClick=${(e) => { e.preventDefault();
        setPrefix(crumbs.slice(0, i + 1).join("/") + "/"); }}>${c}</a>`)}</p>
    <table id="files"><thead><tr><th>Name</th><th>Size</th><th>Modified</th><th></th></tr></thead>
      <tbody>
        ${[...folders].sort().map((d) => html`<tr class="folder"><td><a href="#" onClick=${(e) => {
          e.preventDefault(); setPrefix(prefix + d); }}>${d}</a></td><td></td><td></td>
          <td><button class="link" onClick=${() => removeFolder(prefix + d)}>delete</button></td></tr>`)}
        ${files.map((f) => html`<tr data-key=${f.key}><td>${f.key.slice(prefix.length)}</td><td>${bytes(f.size)}</td>
          <td>${when(f.last_modified)}</td><td>
          <button class="link download" onClick=${() => download(f.key).catch((e) => setError(e.message))}>download</button>
          <button class="link delete" onClick=${() => remove(f.key)}>delete</button></td></tr>`)}
      </tbody></table>
    <${Credentials} />
  </section>`;
}
