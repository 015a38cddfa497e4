// Drives the web console in Debian's headless Chromium (puppeteer-core) as a person would:
// tests/e2e/test_console.py starts the real lyceumd, makes the user, then runs this with one
// JSON argument and reads what it saw from the JSON it prints on its last line. Every step
// waits for what the page shows, never for a fixed time; a step that fails ends the script
// with the step's name. Screenshots of each page go to cfg.shots.
//
// cfg: {base, email, password, voucher, upload (a file path), downloads (a dir), shots (a dir),
//       invitee_email, invitee_password}
import puppeteer from "puppeteer-core";
import { createHmac } from "node:crypto";
import { existsSync, mkdirSync, readdirSync, statSync } from "node:fs";
import { basename, join } from "node:path";

const cfg = JSON.parse(process.argv[2]);
const out = { steps: [], csp_violations: [], page_errors: [], requests: [] };
const T = 60000;
mkdirSync(cfg.shots, { recursive: true });
mkdirSync(cfg.downloads, { recursive: true });

function log(...a) { console.error("[drive]", ...a); }

// RFC 6238 TOTP (SHA-1, 6 digits, 30 s) from a base32 secret, for the MFA step.
function totp(secret, at = Date.now()) {
  const alpha = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
  let bits = "";
  for (const c of secret.replace(/=+$/, "").toUpperCase()) bits += alpha.indexOf(c).toString(2).padStart(5, "0");
  const key = Buffer.from(bits.match(/.{8}/g).map((b) => parseInt(b, 2)));
  const ctr = Buffer.alloc(8);
  ctr.writeBigUInt64BE(BigInt(Math.floor(at / 30000)));
  const hm = createHmac("sha1", key).update(ctr).digest();
  const o = hm[hm.length - 1] & 15;
  return String((hm.readUInt32BE(o) & 0x7fffffff) % 1e6).padStart(6, "0");
}

const browser = await puppeteer.launch({
  executablePath: "/usr/bin/chromium",
  headless: true,
  args: ["--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu", "--window-size=1280,900"],
  defaultViewport: { width: 1280, height: 900 },
});

function watch(page) {
  page.on("request", (r) => out.requests.push({ url: r.url(), method: r.method(), type: r.resourceType() }));
  page.on("console", (m) => {
    const t = m.text();
    if (/Content.Security.Policy/i.test(t)) out.csp_violations.push(t);
    if (m.type() === "error") log("console error:", t);
  });
  page.on("pageerror", (e) => out.page_errors.push(String(e)));
}

async function step(name, fn) {
  log("step", name);
  const t0 = Date.now();
  try {
    await fn();
    out.steps.push({ name, ms: Date.now() - t0 });
  } catch (e) {
    out.failed = name;
    out.error = String(e && e.stack || e);
    throw e;
  }
}

const shot = (page, name) => page.screenshot({ path: join(cfg.shots, name + ".png"), fullPage: true });
const text = (page, sel) => page.$eval(sel, (e) => e.textContent);
// Replaces a field's text as a person does (select all, delete, type), so that the page's
// state follows every keystroke.
async function type(page, sel, value) {
  await page.waitForSelector(sel, { timeout: T });
  await page.focus(sel);
  await page.keyboard.down("Control");
  await page.keyboard.press("KeyA");
  await page.keyboard.up("Control");
  await page.keyboard.press("Backspace");
  await page.type(sel, value);
}
async function go(page, path) {
  await page.click(`header nav a[href='${path}']`);
  await page.waitForFunction((p) => location.pathname === p, { timeout: T }, path);
}
// Waits for a text to appear inside the element matched by sel.
const waitText = (page, sel, s, timeout = T) => page.waitForFunction(
  (q, v) => { const e = document.querySelector(q); return e && e.textContent.includes(v); }, { timeout }, sel, s);

let page;
try {
  const ctx = browser.defaultBrowserContext();
  page = await browser.newPage();
  watch(page);
  const cdp = await page.createCDPSession();
  await cdp.send("Browser.setDownloadBehavior", { behavior: "allow", downloadPath: cfg.downloads });

  await step("sign in", async () => {
    await page.goto(cfg.base + "/", { waitUntil: "networkidle0" });
    await page.waitForSelector("#signin-form");
    await shot(page, "01-signin");
    await type(page, "#email", cfg.email);
    await type(page, "#password", cfg.password);
    await page.click("#signin-submit");
    await page.waitForSelector("header #whoami", { timeout: T });
    await waitText(page, "#whoami", cfg.email);
    out.path_after_signin = await page.evaluate(() => location.pathname);
  });

  await step("reload stays signed in, in two tabs too", async () => {
    await page.reload({ waitUntil: "networkidle0" });
    await waitText(page, "#whoami", cfg.email);
    out.local_storage = await page.evaluate(() => ({ ...localStorage }));
    out.refresh_kept = await page.evaluate(() => new Promise((resolve) => {
      const r = indexedDB.open("lyceumd");
      r.onsuccess = () => {
        const q = r.result.transaction("session").objectStore("session").get("lyceumd.refresh_token");
        q.onsuccess = () => { resolve(typeof q.result === "string" && q.result.length > 20); r.result.close(); };
        q.onerror = () => resolve(false);
      };
      r.onerror = () => resolve(false);
    }));
    out.access_in_url = await page.evaluate(() => location.href.includes("eyJ"));
    // Tabs loading at once each refresh, in turn: the single-use token is never reused.
    const p2 = await browser.newPage();
    watch(p2);
    const p3 = await browser.newPage();
    watch(p3);
    await Promise.all([page.reload({ waitUntil: "networkidle0" }),
      p2.goto(cfg.base + "/runs", { waitUntil: "networkidle0" }),
      p3.goto(cfg.base + "/storage", { waitUntil: "networkidle0" })]);
    for (let i = 0; i < 3; i++) {
      await Promise.all([page, p2, p3].map((p) => p.reload({ waitUntil: "networkidle0" })));
      for (const p of [page, p2, p3]) await waitText(p, "#whoami", cfg.email);
    }
    await p2.close();
    await p3.close();
  });

  await step("enrol MFA", async () => {
    await go(page, "/settings");
    await page.waitForSelector("#mfa-enroll", { timeout: T });
    await page.click("#mfa-enroll");
    await page.waitForSelector("#mfa-secret", { timeout: T });
    const secret = (await text(page, "#mfa-secret")).trim();
    out.qr_drawn = await page.$eval("#mfa-qr", (c) => c.width > 0 &&
      c.getContext("2d").getImageData(0, 0, c.width, c.height).data.some((v, i) => i % 4 === 0 && v < 128));
    out.backup_codes = await page.$$eval("#backup-codes li code", (l) => l.map((e) => e.textContent));
    await type(page, "#mfa-enroll-code", totp(secret));
    await shot(page, "02-settings-mfa-enrol");
    await page.click("#mfa-verify");
    await waitText(page, "#mfa-state", "On");
  });

  await step("sign in through MFA", async () => {
    await page.click("#signout");
    await page.waitForSelector("#signin-form", { timeout: T });
    await type(page, "#email", cfg.email);
    await type(page, "#password", cfg.password);
    await page.click("#signin-submit");
    await page.waitForSelector("#mfa-code", { timeout: T });
    await shot(page, "03-signin-mfa");
    await type(page, "#mfa-code", out.backup_codes[0]);
    await page.click("#mfa-submit");
    await waitText(page, "#whoami", cfg.email);
  });

  await step("python run with live output and a CPU chart", async () => {
    await go(page, "/runs");
    await page.click("#new-run");
    await page.waitForSelector("#code");
    await type(page, "#code", cfg.live_code);
    await type(page, "#file-name", "live.py");
    await shot(page, "04-runs-launch");
    await page.click("#launch");
    await page.waitForFunction(() => /^\/runs\/[0-9a-f-]{36}$/.test(location.pathname), { timeout: T });
    out.live_run = location_id(await page.evaluate(() => location.pathname));
    await waitText(page, "#output", "tick 0");
    // Live: the first line is on the page while the run still runs (it ticks for ~12 s).
    out.live_first_seen_running = await page.evaluate(() =>
      !!document.querySelector("#live") && !document.querySelector("#output").textContent.includes("done"));
    await page.waitForFunction(() => {
      const c = document.querySelector("[data-chart=cpu]");
      return c && +c.dataset.points >= 2 && c.querySelector("canvas");
    }, { timeout: T });
    out.cpu_points_while_running = await page.$eval("[data-chart=cpu]", (c) => +c.dataset.points);
    out.cpu_canvas_inked = await page.$eval("[data-chart=cpu] canvas", (c) => {
      const d = c.getContext("2d").getImageData(0, 0, c.width, c.height).data;
      let n = 0;
      for (let i = 0; i < d.length; i += 4) if (d[i + 3] > 0 && d[i + 2] > d[i] + 40) n++; // the blue line
      return n;
    });
    await waitText(page, "#output", "done", 90000);
    await waitText(page, ".title .status", "completed");
    out.live_output = await text(page, "#output");
    await shot(page, "05-run-live");
  });

  await step("abort a run", async () => {
    await go(page, "/runs");
    await page.click("#new-run");
    await page.waitForSelector("#code");
    await type(page, "#code", "import time\nprint('waiting', flush=True)\ntime.sleep(300)\n");
    await type(page, "#file-name", "sleepy.py");
    await type(page, "#timeout", "600");
    await page.click("#launch");
    await page.waitForFunction(() => /^\/runs\/[0-9a-f-]{36}$/.test(location.pathname), { timeout: T });
    out.abort_run = location_id(await page.evaluate(() => location.pathname));
    await waitText(page, "#output", "waiting");
    await page.click("#abort");
    await waitText(page, ".title .status", "aborted");
    await shot(page, "06-run-aborted");
  });

  await step("stop a run", async () => {
    await go(page, "/runs");
    await page.click("#new-run");
    await type(page, "#code", "import signal, sys, time\n" +
      "signal.signal(signal.SIGTERM, lambda *a: (print('got SIGTERM', flush=True), sys.exit(0)))\n" +
      "print('waiting', flush=True)\ntime.sleep(300)\n");
    await type(page, "#file-name", "stoppable.py");
    await page.click("#launch");
    await page.waitForFunction(() => /^\/runs\/[0-9a-f-]{36}$/.test(location.pathname), { timeout: T });
    out.stop_run = location_id(await page.evaluate(() => location.pathname));
    await waitText(page, "#output", "waiting");
    await page.click("#stop");
    await page.waitForFunction(() => !/running|pending|starting/.test(document.querySelector(".title .status").textContent),
      { timeout: T });
    await waitText(page, "#output", "got SIGTERM");
    out.stop_status = await text(page, ".title .status");
  });

  await step("hostile output shows as text", async () => {
    await go(page, "/runs");
    await page.click("#new-run");
    await page.waitForSelector("#code");
    await type(page, "#code", cfg.hostile_code);
    await type(page, "#file-name", "hostile.py");
    await page.click("#launch");
    await page.waitForFunction(() => /^\/runs\/[0-9a-f-]{36}$/.test(location.pathname), { timeout: T });
    await waitText(page, ".title .status", "completed", 90000);
    await waitText(page, "#output", "END");
    out.hostile = await page.evaluate(() => {
      const o = document.querySelector("#output");
      return {
        text: o.textContent,
        elements: [...o.querySelectorAll("*")].map((e) => e.tagName.toLowerCase()),
        red: [...o.querySelectorAll("span.fg1")].map((e) => e.textContent),
        bold: [...o.querySelectorAll("span.ab")].map((e) => e.textContent),
        pwned: window.__pwned === 1 || !!document.querySelector("#output img,#output script,#output b"),
      };
    });
    await shot(page, "07-run-hostile");
  });

  await step("runs list", async () => {
    await go(page, "/runs");
    await page.waitForFunction(() => document.querySelectorAll("#runs-table tbody tr").length >= 3, { timeout: T });
    out.runs_rows = await page.$$eval("#runs-table tbody tr", (r) => r.map((e) => e.textContent));
    await shot(page, "08-runs");
  });

  await step("switch to another org", async () => {
    await go(page, "/settings");
    await type(page, "#new-org-slug", cfg.other_org);
    await type(page, "#new-org-name", "Another org");
    await page.click("#new-org-create");
    await page.waitForSelector(`#org-switcher option[value='${cfg.other_org}']`, { timeout: T });
    out.home_org = await page.$eval("#org-switcher", (s) => s.value);
    await page.select("#org-switcher", cfg.other_org);
    await go(page, "/runs");
    await waitText(page, ".filters .muted", "0 runs");
    out.other_org_rows = await page.$$eval("#runs-table tbody tr", (r) => r.length);
    await shot(page, "09-runs-other-org");
    await page.select("#org-switcher", out.home_org);
    await page.waitForFunction(() => document.querySelectorAll("#runs-table tbody tr").length >= 3, { timeout: T });
  });

  await step("create and revoke an API key", async () => {
    await go(page, "/settings");
    await type(page, "#key-name", "console-key");
    await page.click("#create-key");
    await page.waitForSelector("#new-key code", { timeout: T });
    out.api_key = (await text(page, "#new-key code")).trim();
    await page.waitForSelector("tr[data-key-name='console-key']", { timeout: T });
    await shot(page, "10-settings-key");
    page.once("dialog", (d) => d.accept());
    await page.click("tr[data-key-name='console-key'] .revoke");
    await page.waitForFunction(() => !document.querySelector("tr[data-key-name='console-key']"), { timeout: T });
  });

  await step("a secret environment variable", async () => {
    await type(page, "#env-key", "CONSOLE_SECRET");
    await type(page, "#env-value", cfg.secret_value);
    await page.click("#env-save");
    await page.waitForSelector("#env-vars tr[data-env='CONSOLE_SECRET']", { timeout: T });
    out.env_row = await text(page, "#env-vars tr[data-env='CONSOLE_SECRET']");
    out.secret_on_page = await page.evaluate((v) => document.body.innerHTML.includes(v) ||
      [...document.querySelectorAll("input")].some((i) => i.value.includes(v)), cfg.secret_value);
  });

  await step("upload 50 MB with a progress bar and download it", async () => {
    await go(page, "/storage");
    await page.waitForSelector("#upload-input");
    await shot(page, "11-storage-empty");
    // Every value the progress bar takes, as the page sets it.
    await page.evaluate(() => {
      window.__progress = [];
      new MutationObserver(() => {
        for (const p of document.querySelectorAll("#uploads progress")) window.__progress.push([+p.value, +p.max]);
      }).observe(document.body, { subtree: true, childList: true, attributes: true, characterData: true });
    });
    // A small file dropped on the drop zone, as a person drags one in.
    await page.evaluate(() => {
      const dt = new DataTransfer();
      dt.items.add(new File(["dropped in\n"], "dropped.txt", { type: "text/plain" }));
      const z = document.querySelector("#dropzone");
      z.dispatchEvent(new DragEvent("dragover", { dataTransfer: dt, bubbles: true, cancelable: true }));
      z.dispatchEvent(new DragEvent("drop", { dataTransfer: dt, bubbles: true, cancelable: true }));
    });
    await page.waitForSelector("#files tr[data-key='dropped.txt']", { timeout: T });
    const input = await page.$("#upload-input");
    await input.uploadFile(cfg.upload);
    const name = basename(cfg.upload);
    await page.waitForSelector(`#uploads li[data-key='${name}'][data-done='1']`, { timeout: 180000 });
    out.progress = await page.evaluate(() => window.__progress);
    await shot(page, "12-storage-uploaded");
    await page.waitForSelector(`#files tr[data-key='${name}'] .download`, { timeout: T });
    await page.click(`#files tr[data-key='${name}'] .download`);
    const size = statSync(cfg.upload).size;
    const target = join(cfg.downloads, name);
    const t0 = Date.now();
    while (!(existsSync(target) && statSync(target).size === size &&
      !readdirSync(cfg.downloads).some((f) => f.endsWith(".crdownload")))) {
      if (Date.now() - t0 > 120000) throw new Error("the download did not arrive: " + readdirSync(cfg.downloads));
      await new Promise((r) => setTimeout(r, 200));
    }
    out.downloaded = target;
    await page.click("#s3-credentials");
    await page.waitForSelector("#aws-cmd", { timeout: T });
    out.aws_cmd = await text(page, "#aws-cmd");
    await shot(page, "13-storage-credentials");
  });

  await step("redeem a voucher", async () => {
    await go(page, "/billing");
    await page.waitForFunction(() => /\$/.test(document.querySelector("#balance").textContent), { timeout: T });
    out.balance_before = await text(page, "#balance");
    await type(page, "#voucher-code", cfg.voucher);
    await page.click("#voucher-redeem");
    await page.waitForFunction((b) => document.querySelector("#balance").textContent !== b, { timeout: T },
      out.balance_before);
    out.balance_after = await text(page, "#balance");
    await shot(page, "14-billing");
  });

  await step("invite a member who accepts", async () => {
    await go(page, "/settings");
    await type(page, "#invite-email", cfg.invitee_email);
    await page.click("#invite-send");
    await page.waitForSelector("#invite-link code", { timeout: T });
    out.invite_link = (await text(page, "#invite-link code")).trim();
    await shot(page, "15-settings-invite");
    const other = await browser.createBrowserContext();
    const p2 = await other.newPage();
    watch(p2);
    await p2.goto(out.invite_link, { waitUntil: "networkidle0" });
    await p2.waitForSelector("#invite-info", { timeout: T });
    await type(p2, "#invite-password", cfg.invitee_password);
    await shot(p2, "16-invite");
    await p2.click("#invite-accept");
    await p2.waitForSelector("#invite-done", { timeout: T });
    await p2.click("#invite-done a");
    await waitText(p2, "#whoami", cfg.invitee_email);
    out.invitee_org = await p2.$eval("#org-switcher", (s) => s.value);
    await other.close();
    // An existing account accepts with its own password (it signs in, then accepts).
    await go(page, "/settings");
    await type(page, "#invite-email", cfg.existing_email);
    await page.click("#invite-send");
    await page.waitForFunction((l) => { const c = document.querySelector("#invite-link code");
      return c && c.textContent.trim() !== l; }, { timeout: T }, out.invite_link);
    const link2 = (await text(page, "#invite-link code")).trim();
    const third = await browser.createBrowserContext();
    const p3 = await third.newPage();
    watch(p3);
    await p3.goto(link2, { waitUntil: "networkidle0" });
    await type(p3, "#invite-password", cfg.existing_password);
    await p3.click("#invite-accept");
    await p3.waitForSelector("#invite-done", { timeout: T });
    await third.close();
    await page.reload({ waitUntil: "networkidle0" });
    await page.waitForSelector(`#members tr[data-email='${cfg.invitee_email}']`, { timeout: T });
    await page.waitForSelector(`#members tr[data-email='${cfg.existing_email}']`, { timeout: T });
    await shot(page, "17-settings-members");
  });

  await step("inference and operators pages", async () => {
    await go(page, "/inference");
    await page.waitForSelector("#deployments");
    await shot(page, "18-inference");
    await go(page, "/operators");
    await page.waitForFunction(() => document.querySelectorAll("#capacity tbody tr").length > 0, { timeout: T });
    await waitText(page, "#health", "ok");
    out.capacity = await page.$$eval("#capacity tbody tr", (r) => r.map((e) => [...e.cells].map((c) => c.textContent)));
    await shot(page, "19-operators");
  });
  out.ok = true;
} catch (e) {
  log("failed:", e);
  if (page) await shot(page, "failure").catch(() => {});
} finally {
  await browser.close();
}
console.log(JSON.stringify(out));

function location_id(p) { return p.split("/").pop(); }
