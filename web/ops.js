// framecast operator view: the audience of a mount from the edge's analytics API
// (GET /api/v1/analytics?mount=&from=&to=&interval=900, docs/architecture.md §7.13), drawn with
// uPlot: listeners over time (peak concurrent listeners per quarter hour, all and by protocol)
// and the average quarter-hour audience (AQH) per quarter hour, with the span's totals.
// The admin API token (when the edge has --api-token-file) is kept in localStorage.
"use strict";

const QH = 900;
const $ = (id) => document.getElementById(id);
const charts = {};

function headers() {
  const h = { Accept: "application/json" };
  const tok = $("token").value.trim();
  if (tok) h.Authorization = "Bearer " + tok;
  return h;
}

async function getJSON(url) {
  const r = await fetch(url, { headers: headers(), cache: "no-store" });
  if (!r.ok) {
    let msg = "HTTP " + r.status;
    try { msg += ": " + (await r.json()).error; } catch (e) { /* not JSON */ }
    throw new Error(url.split("?")[0] + ": " + msg);
  }
  return r.json();
}

async function loadMounts() {
  const j = await getJSON("/api/v1/mounts");
  const list = (j.mounts || []).map((m) => m.mount || m.name).filter(Boolean);
  const sel = $("mount");
  const keep = sel.value || new URLSearchParams(location.search).get("mount");
  if (keep && !list.includes(keep)) list.push(keep); // figures outlive a mount that is gone
  sel.replaceChildren(...list.map((n) => new Option(n, n)));
  if (keep && list.includes(keep)) sel.value = keep;
  return list;
}

function hours(h) {
  return h >= 10 ? h.toFixed(0) : h.toFixed(2);
}

// The span's totals come from one row over the whole span: cume is the distinct listeners of the
// span (not a sum of the quarter hours'), the average session is over the span's sessions.
function showTotals(t) {
  const cells = [t.sessions || 0, t.cume || 0, hours(t.tlh || 0) + " h",
    Math.round(t.avg_session_s || 0) + " s", t.peak_listeners || 0];
  const tr = document.createElement("tr");
  for (const c of cells) { const td = document.createElement("td"); td.textContent = c; tr.append(td); }
  $("totals").tBodies[0].replaceChildren(tr);
}

function draw(id, data, series, title) {
  const el = $(id);
  const opts = {
    width: Math.max(320, el.clientWidth || 860), height: 240, title,
    scales: { x: { time: true } },
    series: [{}].concat(series),
    axes: [{}, { label: title }],
  };
  if (charts[id]) charts[id].destroy();
  charts[id] = new uPlot(opts, data, el);
}

function proto(r, p, k) {
  return (r.by_protocol && r.by_protocol[p] && r.by_protocol[p][k]) || 0;
}

async function show(ev) {
  if (ev) ev.preventDefault();
  localStorage.setItem("framecast-token", $("token").value);
  const status = $("status");
  try {
    const mounts = await loadMounts();
    const mount = $("mount").value;
    if (!mount) { status.textContent = mounts.length ? "choose a mount" : "no mounts yet"; return; }
    const to = Math.ceil(Date.now() / 1000 / QH) * QH, from = to - Number($("span").value);
    const q = `/api/v1/analytics?mount=${encodeURIComponent(mount)}&from=${from}&to=${to}`;
    const [j, whole] = await Promise.all([getJSON(q + `&interval=${QH}`), getJSON(q + `&interval=${to - from}`)]);
    const rows = j.rows || [];
    const xs = rows.map((r) => (typeof r.start_s === "number" ? r.start_s : Date.parse(r.start) / 1000));
    draw("listeners-chart", [xs, rows.map((r) => r.peak_listeners || 0),
      rows.map((r) => proto(r, "raw", "peak_listeners")), rows.map((r) => proto(r, "icy", "peak_listeners")),
      rows.map((r) => proto(r, "hls", "peak_listeners"))],
      [{ label: "all", stroke: "#1565c0", width: 2 }, { label: "raw", stroke: "#6d4c41" },
       { label: "ICY", stroke: "#2e7d32" }, { label: "HLS", stroke: "#ef6c00" }], "listeners");
    draw("aqh-chart", [xs, rows.map((r) => r.aqh || 0)],
      [{ label: "AQH", stroke: "#6a1b9a", fill: "rgba(106,27,154,0.15)", width: 2 }], "AQH");
    showTotals((whole.rows || [])[0] || {});
    status.textContent = `${mount}: ${rows.length} quarter hours, ` +
      new Date(from * 1000).toISOString().slice(0, 16) + "Z – " + new Date(to * 1000).toISOString().slice(0, 16) + "Z";
    document.body.dataset.loaded = String(rows.length);
  } catch (e) {
    status.textContent = String(e.message || e);
    document.body.dataset.error = status.textContent;
  }
}

$("token").value = localStorage.getItem("framecast-token") || new URLSearchParams(location.hash.slice(1)).get("token") || "";
$("controls").addEventListener("submit", show);
$("mount").addEventListener("change", show);
$("span").addEventListener("change", show);
show();
