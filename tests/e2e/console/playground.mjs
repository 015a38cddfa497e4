// The inference page in Debian's headless Chromium (puppeteer-core), for test_console.py: signs
// in, creates a deployment of the tiny model, waits for it to run, sends a prompt in the chat
// playground and records the assistant's reply as it grows (it streams), and stops the
// deployment. Prints one JSON line. cfg (argv[2]): {base, email, password, model, shots}.
import puppeteer from "puppeteer-core";
import { join } from "node:path";

const cfg = JSON.parse(process.argv[2]);
const out = { page_errors: [], csp_violations: [], reply_lengths: [] };
const T = 90000;
const browser = await puppeteer.launch({
  executablePath: "/usr/bin/chromium",
  headless: true,
  args: ["--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"],
  defaultViewport: { width: 1280, height: 900 },
});
try {
  const page = await browser.newPage();
  page.on("console", (m) => { if (/Content.Security.Policy/i.test(m.text())) out.csp_violations.push(m.text()); });
  page.on("pageerror", (e) => out.page_errors.push(String(e)));
  await page.goto(cfg.base + "/", { waitUntil: "networkidle0" });
  await page.type("#email", cfg.email);
  await page.type("#password", cfg.password);
  await page.click("#signin-submit");
  await page.waitForSelector("#whoami", { timeout: T });
  await page.click("header nav a[href='/inference']");
  await page.waitForSelector("#new-deployment");
  await page.type("#dep-model", cfg.model);
  await page.click("#deploy");
  await page.waitForFunction(() => [...document.querySelectorAll("#deployments tr")]
    .some((r) => r.textContent.includes("running")), { timeout: T });
  await page.waitForSelector("#playground select option", { timeout: T });
  await page.evaluate(() => {
    window.__lens = [];
    new MutationObserver(() => {
      const a = [...document.querySelectorAll("#playground .msg.assistant")].pop();
      if (a) window.__lens.push(a.textContent.length);
    }).observe(document.querySelector("#playground"), { subtree: true, childList: true, characterData: true });
  });
  await page.type("#prompt", "Say hello.");
  await page.click("#send");
  await page.waitForFunction(() => !document.querySelector("#send").disabled &&
    document.querySelector("#playground .msg.assistant"), { timeout: T });
  out.reply = await page.$eval("#playground .msg.assistant", (e) => e.textContent);
  out.reply_lengths = await page.evaluate(() => window.__lens);
  out.error = await page.$eval("#playground .error", (e) => e.textContent).catch(() => null);
  await page.screenshot({ path: join(cfg.shots, "20-inference-playground.png"), fullPage: true });
  page.once("dialog", (d) => d.accept());
  await page.click("#deployments .stop");
  await page.waitForFunction(() => [...document.querySelectorAll("#deployments tr")]
    .every((r) => !r.textContent.includes("running")), { timeout: T });
  out.ok = true;
} catch (e) {
  out.failed = String(e && e.stack || e);
} finally {
  await browser.close();
}
console.log(JSON.stringify(out));
