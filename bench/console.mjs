// The browser half of bench/console.py: drives Debian's headless Chromium (puppeteer-core from
// tests/e2e/console) through the console's first load and its runs list, and prints one JSON
// line of figures. cfg (argv[2]): {base, email, password, runs}.
import { createRequire } from "node:module";

const require = createRequire(new URL("../tests/e2e/console/package.json", import.meta.url));
const puppeteer = require("puppeteer-core");
const cfg = JSON.parse(process.argv[2]);
const out = {};

const browser = await puppeteer.launch({
  executablePath: "/usr/bin/chromium",
  headless: true,
  args: ["--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"],
  defaultViewport: { width: 1280, height: 900 },
});

// Bytes on the wire (headers and bodies, as received) and requests, of what fn loads.
async function metered(page, fn) {
  const cdp = await page.createCDPSession();
  await cdp.send("Network.enable");
  let bytes = 0;
  let requests = 0;
  cdp.on("Network.loadingFinished", (e) => { bytes += e.encodedDataLength; requests++; });
  await fn();
  await new Promise((r) => setTimeout(r, 200));
  await cdp.detach();
  return { bytes, requests };
}

// Navigation start to the sign-in form present with the main thread idle.
const interactive = (page) => page.evaluate(() => new Promise((resolve) => {
  const check = () => {
    if (document.querySelector("#signin-form #email")) {
      requestIdleCallback(() => resolve({
        interactive_ms: performance.now(),
        dcl_ms: performance.getEntriesByType("navigation")[0].domContentLoadedEventEnd,
      }));
    } else requestAnimationFrame(check);
  };
  check();
}));

const pct = (xs, p) => { const s = [...xs].sort((a, b) => a - b); return s[Math.min(s.length - 1, Math.floor(p * s.length))]; };

try {
  const ctx = await browser.createBrowserContext();
  const page = await ctx.newPage();
  let t;
  const cold = await metered(page, async () => {
    await page.goto(cfg.base + "/", { waitUntil: "load" });
    t = await interactive(page);
  });
  out.first_load = { ...cold, ...t };
  const warm = await metered(page, async () => {
    await page.reload({ waitUntil: "load" });
    t = await interactive(page);
  });
  out.warm_load = { ...warm, ...t };

  await page.evaluate(() => {
    window.__long = [];
    new PerformanceObserver((l) => { for (const e of l.getEntries()) window.__long.push(e.duration); })
      .observe({ type: "longtask", buffered: false });
  });
  await page.type("#email", cfg.email);
  await page.type("#password", cfg.password);
  const t0 = Date.now();
  await page.click("#signin-submit");
  await page.waitForFunction(() => document.querySelectorAll("#runs-table tbody tr").length > 0, { timeout: 60000 });
  out.signin_to_rows_ms = Date.now() - t0;
  out.page_size = await page.$$eval("#runs-table tbody tr", (r) => r.length);
  await page.evaluate(() => {
    window.__long = [];
    new PerformanceObserver((l) => { for (const e of l.getEntries()) window.__long.push(e.duration); })
      .observe({ type: "longtask", buffered: false });
  });
  const flips = [];
  const pageInfo = () => page.$eval("#page-info", (e) => e.textContent);
  const nflips = Math.min(20, Math.ceil(cfg.runs / out.page_size) - 1);
  for (let i = 0; i < nflips; i++) {
    const before = await pageInfo();
    const first = await page.$eval("#runs-table tbody tr", (r) => r.dataset.id);
    const s = Date.now();
    await page.click("#next-page");
    await page.waitForFunction((b, f) => document.querySelector("#page-info").textContent !== b &&
      document.querySelector("#runs-table tbody tr") &&
      document.querySelector("#runs-table tbody tr").dataset.id !== f, { timeout: 60000, polling: "mutation" }, before, first);
    flips.push(Date.now() - s);
  }
  out.flips = { n: flips.length, p50: pct(flips, 0.5), p90: pct(flips, 0.9) };
  if (!flips.length) throw new Error("one page of runs only: nothing to page through");
  out.pages = (await pageInfo()).split(" of ")[1];
  // The last page: the server skips to its offset (the oldest runs); from the first page.
  {
    const top = await pageInfo();
    await page.click("#first-page");
    await page.waitForFunction((b) => document.querySelector("#page-info").textContent !== b,
      { timeout: 60000, polling: "mutation" }, top);
    const before = await pageInfo();
    const s = Date.now();
    await page.click("#last-page");
    await page.waitForFunction((b) => document.querySelector("#page-info").textContent !== b &&
      document.querySelector("#runs-table tbody tr"), { timeout: 60000, polling: "mutation" }, before);
    out.last_page_ms = Date.now() - s;
    out.last_page_rows = await page.$$eval("#runs-table tbody tr", (r) => r.length);
  }
  const long = await page.evaluate(() => window.__long);
  out.long_tasks = long.length;
  out.longest_task_ms = long.length ? Math.max(...long) : 0;
} finally {
  await browser.close();
}
console.log(JSON.stringify(out));
