// Opens the edge's web player in Debian's chromium (headless, driven by playwright-core), checks
// that the mount, its title and format show, plays it over HLS and over the raw stream (the
// <audio> element's currentTime must advance), and saves a screenshot.
// What each mode really fetched is asserted from the browser's own network events, not assumed
// from the mode picked: HLS must have fetched the mount's .m3u8 (200, an HLS playlist type) and at
// least MIN_SEGMENTS of its /hls/ segments (200, audio/mpeg) and not the raw stream; raw must have
// fetched /<mount> itself (200, audio/mpeg) and no playlist or segment. The card's format line
// must match FORMAT_RE (a regular expression) when given.
// usage: node player.mjs EDGE_URL MOUNT TITLE SCREENSHOT.png [FORMAT_RE]
import { chromium } from "playwright-core";

const [, , base, mount, title, shot, formatRe] = process.argv;
const fail = (msg) => { console.error("player: FAIL " + msg); process.exit(1); };
const MIN_SEGMENTS = 2;

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
  // Every request the page made and every response it got (hls.js's XHRs and the <audio>
  // element's media requests alike).
  const seen = [], asked = [];
  page.on("request", (r) => asked.push({ path: new URL(r.url()).pathname, status: "sent", ctype: "" }));
  page.on("response", (r) => {
    const u = new URL(r.url());
    seen.push({ path: u.pathname, status: r.status(), ctype: (r.headers()["content-type"] || "") });
  });
  const mountPath = "/" + mount;
  const isPlaylist = (s) => s.path === mountPath + ".m3u8";
  const isSegment = (s) => s.path.startsWith(mountPath + "/hls/") && /\/\d+\.\w+$/.test(s.path);
  const isRaw = (s) => s.path === mountPath;
  const describe = (list) => list.map((s) => `${s.path} ${s.status} ${s.ctype}`).join("; ") || "none";

  await page.goto(base + "/", { waitUntil: "load", timeout: 15000 });
  const card = page.locator(`section.mount[data-mount="${mount}"]`);
  await card.waitFor({ timeout: 15000 });
  await page.waitForFunction((t) => document.body.innerText.includes(t), title, { timeout: 15000 })
    .catch(() => fail("title '" + title + "' never showed"));
  const format = await card.locator(".format").innerText();
  console.log("player: card shows format=" + JSON.stringify(format));
  if (formatRe && !new RegExp(formatRe).test(format))
    fail(`card format ${JSON.stringify(format)} does not match /${formatRe}/`);
  for (const mode of ["hls", "raw"]) {
    await card.locator(".mode").selectOption(mode);
    const from = seen.length, fromAsked = asked.length;
    await card.locator(".play").click();
    const t = await page.waitForFunction((m) => {
      const a = document.querySelector(`section.mount[data-mount="${m}"] audio`);
      return a && a.currentTime > 2 ? a.currentTime : false;
    }, mount, { timeout: 20000 }).then((h) => h.jsonValue()).catch(() => 0);
    if (!t) fail(mode + ": audio did not play (currentTime stayed under 2 s)");
    if (mode === "hls") {
      // hls.js fetches segments ahead of the play position; give it a bounded while for the 2nd.
      for (let i = 0; i < 100 && seen.slice(from).filter(isSegment).length < MIN_SEGMENTS; i++)
        await page.waitForTimeout(100);
    }
    const got = seen.slice(from), sent = asked.slice(fromAsked);
    const playlists = got.filter(isPlaylist), segments = got.filter(isSegment), raw = got.filter(isRaw);
    const okPlaylists = playlists.filter((s) => s.status === 200 && /mpegurl/i.test(s.ctype));
    const okSegments = segments.filter((s) => s.status === 200 && /^audio\/mpeg/i.test(s.ctype));
    const okRaw = raw.filter((s) => (s.status === 200 || s.status === 206) && /^audio\/mpeg/i.test(s.ctype));
    console.log(`player: ${mode} played, currentTime=${t.toFixed(1)} s; fetched playlists=${playlists.length} ` +
      `segments=${segments.length} raw=${raw.length}`);
    if (mode === "hls") {
      if (okPlaylists.length < 1)
        fail(`hls: no ${mountPath}.m3u8 fetched with 200 and an HLS type (got: ${describe(playlists)}; all: ${describe(got)})`);
      if (okSegments.length < MIN_SEGMENTS)
        fail(`hls: ${okSegments.length} segment(s) of ${mountPath}/hls/ fetched with 200 audio/mpeg, want >= ${MIN_SEGMENTS} (all: ${describe(got)})`);
      if (sent.some(isRaw))
        fail(`hls: the raw stream ${mountPath} was requested instead of / besides HLS`);
    } else {
      if (okRaw.length < 1)
        fail(`raw: ${mountPath} not fetched with 200 audio/mpeg (all: ${describe(got)})`);
      if (sent.some((s) => isPlaylist(s) || isSegment(s)))
        fail(`raw: HLS requested in raw mode (${describe(sent.filter((s) => isPlaylist(s) || isSegment(s)))})`);
    }
    if (mode === "hls") await page.screenshot({ path: shot });
    await card.locator(".play").click(); // stop
  }
  if (errors.length) fail("page errors: " + errors.join("; "));
  console.log("player: PASS screenshot=" + shot);
} finally {
  await browser.close();
}
