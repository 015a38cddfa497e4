// The console's shell: client-side routes (history API; the server answers index.html for
// each of them), the sign-in page with its MFA step, the header with the org switcher and
// sign-out, and the page for the current path. Everything is rendered by Preact from
// htm templates, so every string from the server lands in the page as text.
import { render } from "preact";
import { useEffect, useState } from "preact/hooks";
import { html, navigate, routeListeners } from "./ui.js";
import { session, refresh, login, verifyMfa, get, post } from "./api.js";
import { currentOrg } from "./util.js";
import { RunsPage, RunPage } from "./pages/runs.js";
import { StoragePage } from "./pages/storage.js";
import { SettingsPage } from "./pages/settings.js";
import { BillingPage } from "./pages/billing.js";
import { InferencePage } from "./pages/inference.js";
import { OperatorsPage } from "./pages/operators.js";
import "./style.css";

function usePath() {
  const [p, set] = useState(location.pathname);
  useEffect(() => {
    const f = () => set(location.pathname);
    routeListeners.add(f);
    return () => routeListeners.delete(f);
  }, []);
  return p;
}

function useSession() {
  const [, tick] = useState(0);
  useEffect(() => session.onChange(() => tick((x) => x + 1)), []);
  return session;
}

function SignIn() {
  const [email, setEmail] = useState("");
  const [password, setPassword] = useState("");
  const [mfa, setMfa] = useState(null);
  const [code, setCode] = useState("");
  const [error, setError] = useState("");
  const [busy, setBusy] = useState(false);
  const submit = async (e) => {
    e.preventDefault();
    setBusy(true);
    setError("");
    try {
      if (mfa) await verifyMfa(mfa, code.trim());
      else {
        const r = await login(email, password);
        if (r.mfa_token) setMfa(r.mfa_token);
      }
    } catch (err) { setError(err.message); }
    setBusy(false);
  };
  return html`<main class="signin">
    <h1>lyceumd</h1>
    <form onSubmit=${submit} id="signin-form">
      ${mfa ? html`
        <p>Enter the code from your authenticator app, or a backup code.</p>
        <label>Code <input id="mfa-code" autocomplete="one-time-code" value=${code}
          onInput=${(e) => setCode(e.target.value)} autofocus /></label>
        <button id="mfa-submit" disabled=${busy}>Verify</button>` : html`
        <label>Email <input id="email" type="email" autocomplete="username" value=${email}
          onInput=${(e) => setEmail(e.target.value)} required /></label>
        <label>Password <input id="password" type="password" autocomplete="current-password"
          value=${password} onInput=${(e) => setPassword(e.target.value)} required /></label>
        <button id="signin-submit" disabled=${busy}>Sign in</button>`}
      ${error && html`<p class="error" role="alert">${error}</p>`}
    </form>
  </main>`;
}

// An invite link: a new account chooses a password; a signed-in one just accepts.
function InvitePage({ token }) {
  const [info, setInfo] = useState(null);
  const [error, setError] = useState("");
  const [password, setPassword] = useState("");
  const [done, setDone] = useState(false);
  useEffect(() => {
    get("/invites/" + encodeURIComponent(token)).then(setInfo, (e) => setError(e.message));
  }, [token]);
  const accept = async (e) => {
    e.preventDefault();
    setError("");
    const url = `/invites/${encodeURIComponent(token)}/accept`;
    try {
      let r;
      try {
        r = await post(url, session.signedIn ? {} : { password });
      } catch (err) {
        // An account exists for the invite's email: it signs in, then accepts.
        if (err.status !== 401 || session.signedIn || !info || !info.email) throw err;
        const l = await login(info.email, password);
        if (l.mfa_token) throw new Error("This account uses MFA: sign in first, then open this link again.");
        r = await post(url, {});
      }
      if (r && r.access_token) await session.accept(r);
      else if (!session.signedIn && info && info.email) await login(info.email, password);
      if (info && info.org_slug) session.setOrg(info.org_slug);
      setDone(true);
    } catch (err) { setError(err.message); }
  };
  return html`<main class="signin">
    <h1>Invitation</h1>
    ${info && html`<p id="invite-info">Join <b>${info.org_name || info.org_slug}</b> as
      ${" "}${info.role}${info.email ? html` (${info.email})` : ""}.</p>`}
    ${done ? html`<p id="invite-done">You are a member now. <a href="/runs">Go to the console</a></p>`
      : html`<form onSubmit=${accept}>
        ${!session.signedIn && html`<label>Choose a password (new account) or your password
          <input id="invite-password" type="password" value=${password}
            onInput=${(e) => setPassword(e.target.value)} /></label>`}
        <button id="invite-accept">Accept</button>
      </form>`}
    ${error && html`<p class="error" role="alert">${error}</p>`}
  </main>`;
}

function OrgSwitcher({ me }) {
  const [orgs, setOrgs] = useState([]);
  useEffect(() => {
    get("/orgs", { noOrg: true }).then((r) => setOrgs(r.organizations || []), () => {});
  }, [me && me.user_id, session.version]);
  const current = currentOrg(orgs, me);
  return html`<select id="org-switcher" title="Organisation (X-Org-Slug)" value=${current}
      onChange=${(e) => session.setOrg(e.target.value)}>
    ${current && !orgs.some((o) => o.slug === current) && html`<option value=${current}>${current}</option>`}
    ${orgs.map((o) => html`<option value=${o.slug}>${o.name || o.slug} (${o.role})</option>`)}
  </select>`;
}

const NAV = [["/runs", "Runs"], ["/storage", "Storage"], ["/inference", "Inference"],
  ["/billing", "Billing"], ["/settings", "Settings"], ["/operators", "Operators"]];

function Shell({ path }) {
  const [me, setMe] = useState(null);
  const org = session.org;
  useEffect(() => {
    get("/user/status").then(setMe, () => {});
  }, [org]);
  let page;
  let m;
  if ((m = path.match(/^\/runs\/([^/]+)$/))) page = html`<${RunPage} id=${decodeURIComponent(m[1])} />`;
  else if (path.startsWith("/storage")) page = html`<${StoragePage} />`;
  else if (path.startsWith("/settings")) page = html`<${SettingsPage} me=${me} />`;
  else if (path.startsWith("/billing")) page = html`<${BillingPage} />`;
  else if (path.startsWith("/inference")) page = html`<${InferencePage} />`;
  else if (path.startsWith("/operators")) page = html`<${OperatorsPage} />`;
  else page = html`<${RunsPage} />`;
  return html`<div class="shell">
    <header>
      <b class="brand">lyceumd</b>
      <nav>${NAV.map(([href, label]) => html`<a href=${href}
        class=${path.startsWith(href) || (href === "/runs" && path === "/") ? "active" : ""}>${label}</a>`)}</nav>
      <span class="spacer"></span>
      <span id="whoami">${me ? me.email : ""}</span>
      <${OrgSwitcher} me=${me} />
      <button id="signout" class="link" onClick=${() => { session.signOut(); navigate("/signin"); }}>Sign out</button>
    </header>
    <main key=${org}>${page}</main>
  </div>`;
}

function App() {
  const path = usePath();
  useSession();
  const [booting, setBooting] = useState(session.hasRefresh() && !session.signedIn);
  useEffect(() => {
    if (booting) refresh().finally(() => setBooting(false));
  }, []);
  let m;
  if ((m = path.match(/^\/invite\/([^/]+)$/))) return html`<${InvitePage} token=${decodeURIComponent(m[1])} />`;
  if (booting) return html`<main class="signin"><p>Signing in…</p></main>`;
  if (!session.signedIn) return html`<${SignIn} />`;
  if (path === "/signin" || path === "/") {
    history.replaceState(null, "", "/runs");
    return html`<${Shell} path="/runs" />`;
  }
  return html`<${Shell} path=${path} />`;
}

render(html`<${App} />`, document.getElementById("app"));
