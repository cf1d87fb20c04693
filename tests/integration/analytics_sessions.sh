#!/usr/bin/env bash
# Analytics sessions from real listeners (issue 11): an edge with two workers and
# `--analytics sqlite:FILE` serves plain, ICY, time-shifted (?offset=6), a 0.4 s one and three HLS
# clients (X-Playback-Session-Id, ?sid=, neither) with known start and stop times
# (analytics_sessions.py); a second edge with --analytics-raw-ip serves two plain listeners. After
# both edges stop (SIGTERM: open HLS sessions are closed and everything queued is written), the
# SQLite files must hold exactly one row per stream listener with its protocol, start and end
# within 0.45 s / 1 s of the client's own, bytes no fewer than it read and at most one write more,
# the time shift of the ?offset=6 ones (6 s ± 0.1), the short one flagged; one HLS session per
# client keyed by its header / query id / a derived key, its listened seconds = the segments it
# fetched × 2 s; the client as a 32-hex keyed hash by default and as 127.0.0.1 with
# --analytics-raw-ip.
. "$(dirname "$0")/lib.sh"
set -u
fc_need_bin "$FC_BUILD/framecast-shim" "$FC_BUILD/framecast-relay" "$FC_BUILD/framecast-edge"
ice=$(free_port); ing=$(free_port); srv=$(free_port); http=$(free_port); http2=$(free_port)
start_icecast "$ice"
start_source_mp3 "$ice" live.mp3
bash "$FC_ROOT/scripts/keygen.sh" "$FC_TMP/mesh.key" >/dev/null
fc_start relay "$FC_BUILD/framecast-relay" --ingest "tcp://127.0.0.1:$ing" --serve "127.0.0.1:$srv" \
  --key "$FC_TMP/mesh.key"
fc_start edge "$FC_BUILD/framecast-edge" --listen "127.0.0.1:$http" --relay "127.0.0.1:$srv" \
  --key "$FC_TMP/mesh.key" --workers 2 --hls-segment 2 --analytics "sqlite:$FC_TMP/an.db"
edge_pid=$FC_LAST_PID
fc_start edge2 "$FC_BUILD/framecast-edge" --listen "127.0.0.1:$http2" --relay "127.0.0.1:$srv" \
  --key "$FC_TMP/mesh.key" --workers 0 --analytics "$FC_TMP/an2.db" --analytics-raw-ip
edge2_pid=$FC_LAST_PID
fc_start shim "$FC_BUILD/framecast-shim" --mount live.mp3 --encoder a \
  --pull "http://127.0.0.1:$ice/live.mp3" --to "tcp://127.0.0.1:$ing" --key "$FC_TMP/mesh.key"
wait_http "http://127.0.0.1:$http/live.mp3" 15 || fc_fail "edge never served /live.mp3"
buffered() { curl -s --max-time 3 "http://127.0.0.1:$http/live.mp3/rewind" | python3 -c \
  'import json,sys; print(int(json.load(sys.stdin).get("seconds", 0)))' 2>/dev/null || echo 0; }
buf_ok() { [ "$(buffered)" -ge 9 ]; }
wait_until 30 buf_ok || fc_fail "edge never buffered 9 s"

python3 "$FC_LIB_DIR/analytics_sessions.py" "$http" live.mp3 "$FC_TMP/clients.json" &
c1=$!
python3 "$FC_LIB_DIR/analytics_sessions.py" "$http2" live.mp3 "$FC_TMP/clients2.json" plain-only &
c2=$!
wait "$c1" || fc_fail "listener script failed"
wait "$c2" || fc_fail "listener script (edge2) failed"
FC_KILL_TIMEOUT=10 fc_stop "$edge_pid" "$edge2_pid"

python3 - "$FC_TMP/clients.json" "$FC_TMP/an.db" "$FC_TMP/clients2.json" "$FC_TMP/an2.db" <<'PY' \
  >"$FC_TMP/check.txt" 2>&1 || { cat "$FC_TMP/check.txt" >&2; fc_fail "sessions do not match the listeners"; }
import json, re, sqlite3, sys
bad = []
def rows(db):
    c = sqlite3.connect(db)
    c.row_factory = sqlite3.Row
    return [dict(r) for r in c.execute("SELECT * FROM sessions ORDER BY start_us")]
def check(clients, db, raw_ip):
    got = [r for r in rows(db) if r["ua"].startswith("fc-test-")]  # not the test's own curl probes
    streams = [r for r in got if r["proto"] in (0, 1)]
    hls = [r for r in got if r["proto"] == 2]
    want_streams = [c for c in clients if c["kind"] != "hls"]
    if len(streams) != len(want_streams):
        bad.append("%s: %d stream sessions, want %d" % (db, len(streams), len(want_streams)))
    for c in want_streams:
        proto = 1 if c["kind"] == "icy" else 0
        m = [r for r in streams if r["proto"] == proto and r["ua"] == "fc-test-" + c["kind"]
             and abs(r["start_us"] / 1e6 - c["start"]) < 0.45 and abs(r["end_us"] / 1e6 - c["stop"]) < 1.0]
        if len(m) != 1:
            bad.append("%s %s start=%.2f stop=%.2f: %d matching rows" % (db, c["kind"], c["start"], c["stop"], len(m)))
            continue
        r = m[0]
        streams.remove(r)
        if not (c["bytes"] <= r["bytes"] <= c["bytes"] + 300000):
            bad.append("%s %s: bytes %d in the row, the client read %d" % (db, c["kind"], r["bytes"], c["bytes"]))
        if c["kind"] == "offset" and abs(r["timeshift_s"] - 6.0) > 0.1:
            bad.append("offset: timeshift_s %.3f" % r["timeshift_s"])
        if c["kind"] in ("plain", "icy") and r["timeshift_s"] != 0:
            bad.append("%s: timeshift_s %.3f, want 0" % (c["kind"], r["timeshift_s"]))
        if (c["kind"] == "short") != bool(r["is_short"]):
            bad.append("%s: is_short=%d" % (c["kind"], r["is_short"]))
        if not r["ua"].startswith("fc-test-"):
            bad.append("ua %r" % r["ua"])
        if raw_ip and r["client"] != "127.0.0.1":
            bad.append("raw ip: client %r" % r["client"])
        if not raw_ip and not re.fullmatch(r"[0-9a-f]{32}", r["client"]):
            bad.append("client %r is not a 32-hex hash" % r["client"])
        if not (r["pts_first_us"] and r["pts_last_us"] > r["pts_first_us"]):
            bad.append("%s: PTS range %d..%d" % (c["kind"], r["pts_first_us"], r["pts_last_us"]))
    want_hls = [c for c in clients if c["kind"] == "hls"]
    if len(hls) != len(want_hls):
        bad.append("%s: %d HLS sessions, want %d: %s" % (db, len(hls), len(want_hls), [h["id"] for h in hls]))
    for c in want_hls:
        key = {"header": "ps-header-1", "query": "sid-query-1"}.get(c["name"])
        m = [r for r in hls if (r["id"] == key if key else re.fullmatch(r"h[0-9a-f]{16}", r["id"]))]
        if len(m) != 1:
            bad.append("HLS %s: %d sessions with its key" % (c["name"], len(m)))
            continue
        r = m[0]
        if abs(r["listened_s"] - 2.0 * c["segments"]) > 0.2:
            bad.append("HLS %s: listened_s %.2f, fetched %d segments" % (c["name"], r["listened_s"], c["segments"]))
        if abs(r["start_us"] / 1e6 - c["start"]) > 1.0 or r["bytes"] < c["bytes"] * 0.9:
            bad.append("HLS %s: start %.2f vs %.2f, bytes %d vs %d" % (c["name"], r["start_us"] / 1e6, c["start"], r["bytes"], c["bytes"]))
    return len(got)
n1 = check(json.load(open(sys.argv[1])), sys.argv[2], False)
n2 = check(json.load(open(sys.argv[3])), sys.argv[4], True)
for b in bad: print("BAD", b)
print("rows=%d+%d bad=%d" % (n1, n2, len(bad)))
sys.exit(1 if bad else 0)
PY
echo "analytics_sessions: PASS $(tail -1 "$FC_TMP/check.txt") (plain 5, icy 3, offset 2, short 1, hls 3 with header/query/derived keys; raw-ip edge 2)"
