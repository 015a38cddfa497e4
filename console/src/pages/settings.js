// Settings: the user's API keys (the secret shown once, toggle, revoke), MFA enrolment (QR
// code drawn on a canvas from the otpauth URL, backup codes), environment variables and
// secrets (secret values come masked from the server), and the organisations: create, members
// and roles, invites (with the link to send), org API keys.
import { useEffect, useRef, useState } from "preact/hooks";
import QRCode from "qrcode";
import { html, val } from "../ui.js";
import { get, post, patch, del, api, session } from "../api.js";
import { useLoad, when, currentOrg } from "../util.js";

const arr = (r, k) => (Array.isArray(r) ? r : (r && r[k]) || []);

function Secret({ label, value, id }) {
  return html`<div class="secret" id=${id}><p>${label}</p><code>${value}</code>
    <button class="link" onClick=${() => navigator.clipboard && navigator.clipboard.writeText(value)}>copy</button></div>`;
}

function ApiKeys() {
  const keys = useLoad(() => get("/auth/api-keys/"), []);
  const [name, setName] = useState("");
  const [created, setCreated] = useState(null);
  const [error, setError] = useState("");
  const create = async (e) => {
    e.preventDefault();
    setError("");
    try {
      setCreated(await post("/auth/api-keys/", { key_name: name }));
      setName("");
      keys.reload();
    } catch (err) { setError(err.message); }
  };
  const act = (p) => p.then(keys.reload, (e) => setError(e.message));
  return html`<div class="card" id="api-keys"><h3>API keys</h3>
    <form class="row" onSubmit=${create}>
      <input id="key-name" placeholder="key name" value=${name} onInput=${val(setName)} required />
      <button id="create-key">Create</button></form>
    ${created && html`<${Secret} id="new-key" label="Your new key (shown once):" value=${created.api_key} />`}
    ${error && html`<p class="error">${error}</p>`}
    <table><thead><tr><th>Name</th><th>Prefix</th><th>Created</th><th>Last used</th><th>Active</th><th></th></tr></thead>
      <tbody>${arr(keys.data, "api_keys").map((k) => html`<tr data-key-name=${k.key_name} data-id=${k.id}>
        <td>${k.key_name}</td><td><code>${k.key_prefix}</code></td><td>${when(k.created_at)}</td>
        <td>${when(k.last_used_at)}</td>
        <td><input type="checkbox" class="toggle" checked=${k.is_active}
          onChange=${() => act(patch(`/auth/api-keys/${k.id}/toggle`))} /></td>
        <td><button class="link revoke" onClick=${() => confirm(`Revoke ${k.key_name}?`) &&
          act(del(`/auth/api-keys/${k.id}`))}>revoke</button></td></tr>`)}</tbody></table>
  </div>`;
}

function Qr({ text }) {
  const el = useRef(null);
  useEffect(() => { QRCode.toCanvas(el.current, text, { width: 200, margin: 1 }); }, [text]);
  return html`<canvas id="mfa-qr" ref=${el}></canvas>`;
}

function Mfa() {
  const st = useLoad(() => get("/mfa/status"), []);
  const [enroll, setEnroll] = useState(null);
  const [codes, setCodes] = useState(null);
  const [code, setCode] = useState("");
  const [msg, setMsg] = useState("");
  const start = () => post("/mfa/enroll").then((r) => { setEnroll(r); setCodes(r.backup_codes); }, (e) => setMsg(e.message));
  const verify = (e) => {
    e.preventDefault();
    post("/mfa/verify-enrollment", { code: code.trim() }).then(() => {
      setEnroll(null); setCode(""); setMsg("MFA is on."); st.reload();
    }, (err) => setMsg(err.message));
  };
  const disable = (e) => {
    e.preventDefault();
    post("/mfa/disable", { code: code.trim() }).then(() => { setCode(""); setMsg("MFA is off."); setCodes(null); st.reload(); },
      (err) => setMsg(err.message));
  };
  const regen = () => post("/mfa/regenerate-backup-codes", { code: code.trim() })
    .then((r) => { setCodes(r.backup_codes); setCode(""); }, (e) => setMsg(e.message));
  const s = st.data || {};
  return html`<div class="card" id="mfa"><h3>Two-factor authentication</h3>
    <p id="mfa-state">${s.enabled ? `On (${s.backup_codes_remaining} backup codes left)` : "Off"}</p>
    ${!s.enabled && !enroll && html`<button id="mfa-enroll" onClick=${start}>Set up</button>`}
    ${enroll && html`<div>
      <p>Scan this with your authenticator app, or type the secret <code id="mfa-secret">${enroll.secret}</code>.</p>
      <${Qr} text=${enroll.qr_code_url || enroll.otpauth_url} />
      <form class="row" onSubmit=${verify}><input id="mfa-enroll-code" placeholder="123456" value=${code}
        onInput=${val(setCode)} /><button id="mfa-verify">Turn on</button></form></div>`}
    ${codes && html`<div id="backup-codes"><p>Backup codes (each works once; keep them safe):</p>
      <ul class="codes">${codes.map((c) => html`<li><code>${c}</code></li>`)}</ul></div>`}
    ${s.enabled && html`<form class="row" onSubmit=${disable}>
      <input id="mfa-code-settings" placeholder="current code" value=${code} onInput=${val(setCode)} />
      <button type="button" onClick=${regen}>New backup codes</button><button id="mfa-disable">Turn off</button></form>`}
    ${msg && html`<p class="muted">${msg}</p>`}
  </div>`;
}

function EnvVars() {
  const vars = useLoad(() => get("/environment-variables/"), []);
  const [f, setF] = useState({ key: "", value: "", is_secret: true });
  const [error, setError] = useState("");
  const add = (e) => {
    e.preventDefault();
    post("/environment-variables/", f).then(() => { setF({ key: "", value: "", is_secret: true }); vars.reload(); },
      (err) => setError(err.message));
  };
  return html`<div class="card" id="env-vars"><h3>Environment variables and secrets</h3>
    <p class="muted">Given to every run of this organisation. Secret values are never shown again.</p>
    <form class="row" onSubmit=${add}>
      <input id="env-key" placeholder="NAME" value=${f.key} onInput=${(e) => setF({ ...f, key: e.target.value })} required />
      <input id="env-value" type=${f.is_secret ? "password" : "text"} placeholder="value" value=${f.value}
        onInput=${(e) => setF({ ...f, value: e.target.value })} />
      <label><input type="checkbox" checked=${f.is_secret} onChange=${(e) => setF({ ...f, is_secret: e.target.checked })} /> secret</label>
      <button id="env-save">Save</button></form>
    ${error && html`<p class="error">${error}</p>`}
    <table><tbody>${arr(vars.data, "environment_variables").map((v) => html`<tr data-env=${v.key || v.name}>
      <td><code>${v.key || v.name}</code></td><td><code>${v.value}</code></td><td>${v.is_secret ? "secret" : ""}</td>
      <td><button class="link" onClick=${() => del("/environment-variables/" + v.id).then(vars.reload)}>delete</button></td>
    </tr>`)}</tbody></table>
  </div>`;
}

function Org({ slug, role }) {
  const q = encodeURIComponent(slug);
  const members = useLoad(() => get(`/orgs/${q}/members`), [slug]);
  const invites = useLoad(() => (role === "member" ? Promise.resolve({ invites: [] }) : get(`/orgs/${q}/invites`)), [slug]);
  const keys = useLoad(() => (role === "member" ? Promise.resolve({ api_keys: [] }) : get(`/orgs/${q}/api-keys`)), [slug]);
  const [inv, setInv] = useState({ email: "", role: "member" });
  const [link, setLink] = useState("");
  const [keyName, setKeyName] = useState("");
  const [newKey, setNewKey] = useState(null);
  const [error, setError] = useState("");
  const fail = (e) => setError(e.message);
  const invite = (e) => {
    e.preventDefault();
    post(`/orgs/${q}/invites`, inv).then((r) => {
      setLink(`${location.origin}/invite/${encodeURIComponent(r.token)}`);
      setInv({ email: "", role: "member" });
      invites.reload();
    }, fail);
  };
  const addKey = (e) => {
    e.preventDefault();
    post(`/orgs/${q}/api-keys`, { name: keyName }).then((r) => { setNewKey(r); setKeyName(""); keys.reload(); }, fail);
  };
  const admin = role === "owner" || role === "admin";
  return html`<div class="org" data-org=${slug}>
    <h4>Members</h4>
    <table id="members"><tbody>${arr(members.data, "members").map((m) => html`<tr data-email=${m.email}>
      <td>${m.email}</td><td>${admin ? html`<select value=${m.role} onChange=${(e) =>
        patch(`/orgs/${q}/members/${m.user_id}`, { role: e.target.value }).then(members.reload, fail)}>
        ${["owner", "admin", "member"].map((r) => html`<option value=${r}>${r}</option>`)}</select>` : m.role}</td>
      <td>${admin && html`<button class="link" onClick=${() => confirm(`Remove ${m.email}?`) &&
        del(`/orgs/${q}/members/${m.user_id}`).then(members.reload, fail)}>remove</button>`}</td></tr>`)}</tbody></table>
    ${admin && html`
      <h4>Invites</h4>
      <form class="row" onSubmit=${invite}>
        <input id="invite-email" type="email" placeholder="email" value=${inv.email}
          onInput=${(e) => setInv({ ...inv, email: e.target.value })} required />
        <select id="invite-role" value=${inv.role} onChange=${(e) => setInv({ ...inv, role: e.target.value })}>
          <option value="member">member</option><option value="admin">admin</option></select>
        <button id="invite-send">Invite</button></form>
      ${link && html`<${Secret} id="invite-link" label="Send this link to the person you invited:" value=${link} />`}
      <table id="invites"><tbody>${arr(invites.data, "invites").map((i) => html`<tr><td>${i.email}</td><td>${i.role}</td>
        <td>${i.status}</td><td>expires ${when(i.expires_at)}</td><td><button class="link" onClick=${() =>
          del(`/orgs/${q}/invites/${i.id}`).then(invites.reload, fail)}>revoke</button></td></tr>`)}</tbody></table>
      <h4>Organisation API keys</h4>
      <form class="row" onSubmit=${addKey}><input id="org-key-name" placeholder="key name" value=${keyName}
        onInput=${val(setKeyName)} required /><button>Create</button></form>
      ${newKey && html`<${Secret} label="The new key (shown once):" value=${newKey.plaintext_key} />`}
      <table><tbody>${arr(keys.data, "api_keys").map((k) => html`<tr><td>${k.name}</td><td><code>${k.prefix}</code></td>
        <td>${when(k.created_at)}</td><td><button class="link" onClick=${() =>
          del(`/orgs/${q}/api-keys/${k.id}`).then(keys.reload, fail)}>revoke</button></td></tr>`)}</tbody></table>`}
    ${error && html`<p class="error">${error}</p>`}
  </div>`;
}

function Orgs({ me }) {
  const orgs = useLoad(() => get("/orgs", { noOrg: true }), []);
  const [f, setF] = useState({ slug: "", name: "" });
  const [error, setError] = useState("");
  const list = arr(orgs.data, "organizations");
  const current = currentOrg(list, me);
  const mine = list.find((o) => o.slug === current);
  const create = (e) => {
    e.preventDefault();
    api("POST", "/orgs", f, { noOrg: true }).then(() => { setF({ slug: "", name: "" }); orgs.reload(); session.orgsChanged(); },
      (err) => setError(err.message));
  };
  return html`<div class="card" id="orgs"><h3>Organisation: ${mine ? mine.name || mine.slug : current}</h3>
    ${mine && html`<${Org} slug=${mine.slug} role=${mine.role} />`}
    <h4>New organisation</h4>
    <form class="row" onSubmit=${create}>
      <input id="new-org-slug" placeholder="slug" pattern="[a-z0-9][a-z0-9-]*" value=${f.slug}
        onInput=${(e) => setF({ ...f, slug: e.target.value })} required />
      <input id="new-org-name" placeholder="name" value=${f.name} onInput=${(e) => setF({ ...f, name: e.target.value })} required />
      <button id="new-org-create">Create</button></form>
    ${error && html`<p class="error">${error}</p>`}
  </div>`;
}

function MyInvites() {
  const mine = useLoad(() => get("/invites/mine", { noOrg: true }), []);
  const list = arr(mine.data, "invites");
  if (!list.length) return null;
  return html`<div class="card"><h3>Invitations for you</h3><ul>${list.map((i) => html`<li>
    ${i.org_name || i.org_slug} (${i.role}) <button onClick=${() => post(`/invites/${i.id}/accept`).then(mine.reload)}>accept</button>
    <button class="link" onClick=${() => post(`/invites/${i.id}/decline`).then(mine.reload)}>decline</button></li>`)}</ul></div>`;
}

export function SettingsPage({ me }) {
  return html`<section><div class="title"><h2>Settings</h2></div>
    <${MyInvites} /><${ApiKeys} /><${Mfa} /><${EnvVars} /><${Orgs} me=${me} /></section>`;
}
