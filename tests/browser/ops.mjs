// Opens the edge's operator view (/ops) in Debian's chromium (headless, playwright-core): the
// page must load the analytics of MOUNT without a script error, draw both uPlot charts (a canvas
// each, with the series' legends), show WANT_SESSIONS sessions in the totals, and have fetched
// /api/v1/analytics (200) with interval=900 (and the span's totals). Saves a screenshot.
// usage: node ops.mjs EDGE_URL MOUNT WANT_SESSIONS SCREENSHOT.png [TOKEN]
import { chromium } from "playwright-core";

const [, , base, mount, wantSessions, shot, token] = process.argv;
const fail = (msg) => { console.error("ops: FAIL " + msg); process.exit(1); };

const browser = await chromium.launch({
  executablePath: "/usr/bin/chromium",
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"],
});
try {
  const page = await browser.newPage({ viewport: { width: 960, height: 900 } });
  const errors = [], api = [];
  page.on("pageerror", (e) => errors.push(String(e)));
  page.on("response", (r) => {
    const u = new URL(r.url());
    if (u.pathname === "/api/v1/analytics") api.push({ status: r.status(), interval: u.searchParams.get("interval") });
  });
  const url = `${base}/ops?mount=${encodeURIComponent(mount)}` + (token ? `#token=${token}` : "");
  await page.goto(url, { waitUntil: "load", timeout: 15000 });
  await page.waitForFunction(() => document.body.dataset.loaded || document.body.dataset.error,
    null, { timeout: 15000 }).catch(() => fail("the page never loaded its figures"));
  const err = await page.evaluate(() => document.body.dataset.error || "");
  if (err) fail("the page reports: " + err);
  if (errors.length) fail("script errors: " + errors.join("; "));
  if (!api.some((a) => a.interval === "900") || api.some((a) => a.status !== 200))
    fail("analytics requests: " + JSON.stringify(api));
  for (const id of ["listeners-chart", "aqh-chart"]) {
    const n = await page.locator(`#${id} canvas`).count();
    if (n < 1) fail(`#${id} has no chart`);
  }
  const legend = await page.locator("#aqh-chart .u-legend").innerText();
  if (!/AQH/.test(legend)) fail("AQH chart legend: " + JSON.stringify(legend));
  const sessions = await page.locator("#totals tbody td").first().innerText();
  if (sessions.trim() !== String(wantSessions)) fail(`totals show ${sessions} sessions, want ${wantSessions}`);
  await page.screenshot({ path: shot, fullPage: true });
  console.log(`ops: PASS sessions=${sessions.trim()} charts=2 api_requests=${api.length}`);
} finally {
  await browser.close();
}
