// framecast web player: lists the edge's mounts (GET / as JSON) and plays each with hls.js
// (RFC 8216 playlist /<mount>.m3u8) or the raw Icecast-style stream /<mount>, with a rewind
// slider over the mount's buffer (/<mount>/rewind): HLS seeks in a DVR playlist, the raw stream
// restarts at ?at=T. No framework.
"use strict";

const cards = new Map(); // mount name -> {el, hls, state}

function fmtTime(unixS) {
  return new Date(unixS * 1000).toISOString().substring(11, 19) + "Z";
}

async function getJSON(url) {
  const r = await fetch(url, { headers: { Accept: "application/json" }, cache: "no-store" });
  if (!r.ok) throw new Error(url + ": HTTP " + r.status);
  return r.json();
}

function hlsAvailable(audio) {
  return (window.Hls && window.Hls.isSupported()) ||
    audio.canPlayType("application/vnd.apple.mpegurl") !== "";
}

function stop(card) {
  if (card.hls) { card.hls.destroy(); card.hls = null; }
  card.audio.pause();
  card.audio.removeAttribute("src");
  card.audio.load();
  card.playing = false;
  card.el.querySelector(".play").textContent = "Play";
}

// Start playing `mount` at `behindS` seconds behind live (0 = live).
function play(card, behindS) {
  stop(card);
  const mode = card.el.querySelector(".mode").value;
  const name = encodeURIComponent(card.name).replace(/%2F/g, "/");
  const audio = card.audio;
  if (mode === "hls" && hlsAvailable(audio)) {
    const dvr = Math.ceil(Math.max(behindS + 30, 60));
    const url = "/" + name + ".m3u8?dvr=" + dvr;
    if (window.Hls && window.Hls.isSupported()) {
      card.hls = new window.Hls({ liveSyncDurationCount: 3 });
      card.hls.loadSource(url);
      card.hls.attachMedia(audio);
      card.hls.on(window.Hls.Events.MANIFEST_PARSED, () => {
        if (behindS > 0 && audio.seekable.length)
          audio.currentTime = Math.max(audio.seekable.start(0), audio.seekable.end(0) - behindS);
        audio.play().catch(() => {});
      });
    } else {
      audio.src = url;
      audio.play().catch(() => {});
    }
  } else {
    audio.src = "/" + name + (behindS > 0 ? "?offset=" + behindS.toFixed(1) : "");
    audio.play().catch(() => {});
  }
  card.playing = true;
  card.behind = behindS;
  card.el.querySelector(".play").textContent = "Stop";
  card.el.querySelector(".position").textContent =
    behindS > 0 ? "-" + Math.round(behindS) + " s" : "live";
}

function makeCard(name) {
  const el = document.getElementById("mount-card").content.firstElementChild.cloneNode(true);
  const card = { name, el, audio: el.querySelector("audio"), hls: null, playing: false,
                 behind: 0, rewind: null };
  el.dataset.mount = name;
  el.querySelector(".name").textContent = "/" + name;
  if (!hlsAvailable(card.audio)) el.querySelector(".mode").value = "raw";
  el.querySelector(".play").addEventListener("click", () =>
    card.playing ? stop(card) : play(card, card.behind));
  el.querySelector(".mode").addEventListener("change", () => { if (card.playing) play(card, card.behind); });
  const slider = el.querySelector(".rewind");
  slider.addEventListener("change", () => {
    if (!card.rewind) return;
    const span = card.rewind.last_pts_us / 1e6 - card.rewind.first_pts_us / 1e6;
    const behind = span * (1 - slider.value / 1000);
    play(card, behind < 2 ? 0 : behind);
  });
  document.getElementById("mounts").appendChild(el);
  cards.set(name, card);
  return card;
}

function render(card, m) {
  const el = card.el;
  el.querySelector(".format").textContent =
    m.codec.toUpperCase() + " " + Math.round(m.bitrate / 1000) + " kbit/s, " +
    (m.sample_rate / 1000) + " kHz, " + (m.channels === 1 ? "mono" : "stereo");
  el.querySelector(".listeners").textContent = m.listeners + " listening";
  el.querySelector(".title").textContent = m.title || "—";
  const enc = m.streams.map((s) => s.encoder + (s.active ? " (on air)" : "") +
    (s.idle_s > 2 ? " down" : "")).join(", ");
  const p = el.querySelector(".encoders");
  p.textContent = "encoders: " + (enc || "none");
  p.classList.toggle("bad", !m.streams.some((s) => s.active && s.idle_s < 2));
}

async function refreshRewind(card) {
  try {
    card.rewind = await getJSON("/" + card.name + "/rewind");
    card.el.querySelector(".first").textContent = fmtTime(card.rewind.first_pts_us / 1e6);
    card.el.querySelector(".last").textContent = fmtTime(card.rewind.last_pts_us / 1e6);
  } catch (e) { /* the mount went away; the next refresh says so */ }
}

async function refresh() {
  try {
    const st = await getJSON("/");
    document.getElementById("summary").textContent =
      st.mounts.length + " mount(s), " + st.listeners + " listener connection(s)";
    for (const m of st.mounts) {
      const card = cards.get(m.mount) || makeCard(m.mount);
      render(card, m);
      refreshRewind(card);
    }
  } catch (e) {
    document.getElementById("summary").textContent = "edge unreachable: " + e.message;
  }
}

refresh();
setInterval(refresh, 5000);
