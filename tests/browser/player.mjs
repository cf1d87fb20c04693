// Opens the edge's web player in Debian's chromium (headless, driven by playwright-core), checks
// that the mount, its title and format show, plays it over HLS and over the raw stream (the
// <audio> element's currentTime must advance), and saves a screenshot.
// usage: node player.mjs EDGE_URL MOUNT TITLE SCREENSHOT.png
import { chromium } from "playwright-core";

const [, , base, mount, title, shot] = process.argv;
const fail = (msg) => { console.error("player: FAIL " + msg); process.exit(1); };

const browser = await chromium.launch({
  executablePath: "/usr/bin/chromium",
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--autoplay-policy=no-user-gesture-required"],
});
try {
  const page = await browser.newPage({ viewport: { width: 900, height: 520 } });
  const errors = [];
  page.on("pageerror", (e) => errors.push(String(e)));
  await page.goto(base + "/", { waitUntil: "load", timeout: 15000 });
  const card = page.locator(`section.mount[data-mount="${mount}"]`);
  await card.waitFor({ timeout: 15000 });
  await page.waitForFunction((t) => document.body.innerText.includes(t), title, { timeout: 15000 })
    .catch(() => fail("title '" + title + "' never showed"));
  const format = await card.locator(".format").innerText();
  console.log("player: card shows format=" + JSON.stringify(format));
  for (const mode of ["hls", "raw"]) {
    await card.locator(".mode").selectOption(mode);
    await card.locator(".play").click();
    const t = await page.waitForFunction((m) => {
      const a = document.querySelector(`section.mount[data-mount="${m}"] audio`);
      return a && a.currentTime > 2 ? a.currentTime : false;
    }, mount, { timeout: 20000 }).then((h) => h.jsonValue()).catch(() => 0);
    if (!t) fail(mode + ": audio did not play (currentTime stayed under 2 s)");
    console.log(`player: ${mode} played, currentTime=${t.toFixed(1)} s`);
    if (mode === "hls") await page.screenshot({ path: shot });
    await card.locator(".play").click(); // stop
  }
  if (errors.length) fail("page errors: " + errors.join("; "));
  console.log("player: PASS screenshot=" + shot);
} finally {
  await browser.close();
}
