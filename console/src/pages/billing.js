// Billing: the balance and credits, usage over time as a chart (the org's activities summed
// per day), the activity history, the monthly invoices (each a printable statement), voucher
// redemption and the price book.
import { useState } from "preact/hooks";
import { html, val } from "../ui.js";
import { get, post } from "../api.js";
import { Chart } from "../chart.js";
import { useLoad, when, credits, safeUrl } from "../util.js";

function Usage({ activities }) {
  const days = new Map();
  for (const a of activities) {
    if (a.type !== "execution" && a.type !== "inference" && a.type !== "deployment") continue;
    const d = String(a.created_at || "").slice(0, 10);
    if (!d) continue;
    days.set(d, (days.get(d) || 0) + Math.abs(Number(a.amount) || 0));
  }
  // The last 30 days, each one a point (0 where nothing was used), and any older day used.
  const today = Date.UTC(new Date().getUTCFullYear(), new Date().getUTCMonth(), new Date().getUTCDate());
  for (let i = 0; i < 30; i++) {
    const d = new Date(today - i * 86400000).toISOString().slice(0, 10);
    if (!days.has(d)) days.set(d, 0);
  }
  const points = [...days.keys()].sort().map((d) => ({ timestamp: d + "T00:00:00Z", value: days.get(d) }));
  return html`<${Chart} name="usage" title="Credits used per day" series=${[{ label: "credits", points }]} />`;
}

function Voucher({ onRedeemed }) {
  const [code, setCode] = useState("");
  const [msg, setMsg] = useState("");
  const [ok, setOk] = useState(null);
  const check = () => post("/billing/vouchers/validate", { code: code.trim() })
    .then((r) => { setOk(r); setMsg(r.valid === false ? r.reason || "not valid" : `worth ${credits(r.credits)}`); },
      (e) => setMsg(e.message));
  const redeem = (e) => {
    e.preventDefault();
    post("/billing/vouchers/redeem", { code: code.trim() }).then((r) => {
      setMsg(`Redeemed: ${credits(r.credits_added)} added; the balance is ${credits(r.balance)}.`); setCode(""); setOk(null); onRedeemed();
    }, (err) => setMsg(err.message));
  };
  return html`<div class="card" id="voucher"><h3>Redeem a voucher</h3>
    <form class="row" onSubmit=${redeem}>
      <input id="voucher-code" placeholder="code" value=${code} onInput=${val(setCode)} required />
      <button type="button" onClick=${check}>Check</button><button id="voucher-redeem">Redeem</button></form>
    ${msg && html`<p id="voucher-msg" class=${ok && ok.valid === false ? "error" : "muted"}>${msg}</p>`}</div>`;
}

export function BillingPage() {
  const cr = useLoad(() => get("/billing/credits"), []);
  const act = useLoad(() => get("/billing/activities?limit=1000"), []);
  const inv = useLoad(() => get("/billing/invoices?limit=24"), []);
  const prices = useLoad(() => get("/pricing"), []);
  const types = useLoad(() => get("/machine-types"), []);
  const c = cr.data || {};
  const activities = (act.data && act.data.activities) || [];
  const reload = () => { cr.reload(); act.reload(); inv.reload(); };
  return html`<section><div class="title"><h2>Billing</h2></div>
    <div class="card"><h3>Balance</h3>
      <p class="big" id="balance">${credits(c.available_credits ?? c.remaining_credits)}</p>
      <dl class="facts"><dt>Used</dt><dd>${credits(c.used_credits)}</dd>
        <dt>Free this month</dt><dd>${credits(c.monthly_free_credits)}</dd>
        <dt>Purchased</dt><dd>${credits(c.purchased_credits)}</dd></dl></div>
    <${Voucher} onRedeemed=${reload} />
    <div class="card"><h3>Usage</h3><${Usage} activities=${activities} /></div>
    <div class="card"><h3>History</h3><table id="activities"><thead><tr><th>When</th><th>What</th><th>Status</th>
      <th>Profile</th><th>Amount</th></tr></thead><tbody>${activities.slice(0, 200).map((a) => html`<tr>
      <td>${when(a.created_at)}</td><td>${a.description || a.type}</td><td>${a.status}</td>
      <td>${a.hardware_profile || ""}</td><td>${credits(a.amount)}</td></tr>`)}</tbody></table></div>
    <div class="card"><h3>Invoices</h3><table id="invoices"><tbody>${((inv.data && inv.data.invoices) || []).map((i) => html`<tr>
      <td>${i.number || i.id}</td><td>${when(i.created_at)}</td><td>${credits(i.amount)}</td><td>${i.status}</td>
      <td>${safeUrl(i.hosted_invoice_url || i.invoice_pdf) && html`<a href=${safeUrl(i.hosted_invoice_url || i.invoice_pdf)}
        target="_blank" rel="noopener noreferrer">statement</a>`}</td></tr>`)}</tbody></table></div>
    <div class="card"><h3>Prices</h3><table id="prices"><thead><tr><th>Resource</th><th>Applies to</th><th>Unit price</th>
      <th>Per hour</th></tr></thead><tbody>
      ${((types.data && types.data.machine_types) || []).map((m) => html`<tr><td>run</td><td>${m.hardware_profile}</td>
        <td></td><td>${credits(m.price_per_hour)}</td></tr>`)}
      ${((prices.data && prices.data.prices) || []).map((p) => html`<tr><td>${p.resource || p.meter_slug}</td>
        <td>${Object.values(p.applies_to || p.group_by || {}).join(", ")}</td><td>${p.unit_price} / ${p.unit}</td>
        <td>${p.unit_price_per_hour ? credits(p.unit_price_per_hour) : ""}</td></tr>`)}
    </tbody></table></div>
  </section>`;
}
