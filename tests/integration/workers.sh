#!/usr/bin/env bash
# edge --workers 2 (issue 9): listeners on both workers get byte-identical audio (each a contiguous
# run of the source's frames), the same ICY title, and the same bytes for one HLS segment; the JSON
# at / (answered by the core process) counts every worker's listeners; a worker killed with
# SIGKILL mid-stream loses only its own listeners: the other worker's keep playing without a
# stall, and the dead one is forked again and serves new listeners.
. "$(dirname "$0")/lib.sh"
set -u
fc_need_bin "$FC_BUILD/framecast-shim" "$FC_BUILD/framecast-relay" "$FC_BUILD/framecast-edge" \
  "$FC_BUILD/tools/framecmp"

ice=$(free_port); ing=$(free_port); srv=$(free_port); http=$(free_port)
start_icecast "$ice"
start_source_mp3 "$ice" live.mp3
record "http://127.0.0.1:$ice/live.mp3" "$FC_TMP/ref.mp3"
bash "$FC_ROOT/scripts/keygen.sh" "$FC_TMP/mesh.key" >/dev/null
fc_start relay "$FC_BUILD/framecast-relay" --ingest "tcp://127.0.0.1:$ing" --serve "127.0.0.1:$srv" \
  --key "$FC_TMP/mesh.key"
fc_start edge "$FC_BUILD/framecast-edge" --listen "127.0.0.1:$http" --relay "127.0.0.1:$srv" \
  --key "$FC_TMP/mesh.key" --workers 2 --hls-segment 2
edge_pid=$FC_LAST_PID
fc_start shim "$FC_BUILD/framecast-shim" --mount live.mp3 --encoder a \
  --pull "http://127.0.0.1:$ice/live.mp3" --to "tcp://127.0.0.1:$ing" --key "$FC_TMP/mesh.key"
wait_http "http://127.0.0.1:$http/live.mp3" 15 || fc_fail "edge never served /live.mp3"

# 16 ICY listeners for 24 s: each records its worker, its audio (blocks removed), the titles it
# got, the time of every read and how it ended.
cat >"$FC_TMP/wl.py" <<'PY'
import json, select, socket, sys, time
port, n, secs, out = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3]), sys.argv[4]
conns = []
for i in range(n):
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    s.sendall(b"GET /live.mp3 HTTP/1.0\r\nHost: x\r\nIcy-MetaData: 1\r\n\r\n")
    buf = b""
    while b"\r\n\r\n" not in buf:
        c = s.recv(4096)
        if not c: break
        buf += c
    head, rest = buf.split(b"\r\n\r\n", 1)
    hd = {l.split(b":", 1)[0].strip().lower(): l.split(b":", 1)[1].strip() for l in head.split(b"\r\n")[1:] if b":" in l}
    s.setblocking(False)
    conns.append({"s": s, "worker": int(hd.get(b"x-framecast-worker", b"0")), "metaint": int(hd[b"icy-metaint"]),
                  "data": rest, "left": int(hd[b"icy-metaint"]), "audio": open("%s/l%02d.mp3" % (out, i), "wb"),
                  "titles": [], "reads": [time.time()], "end": None, "bytes": 0})
def demux(c):
    d = c["data"]
    while True:
        if c["left"] > 0:
            take = min(c["left"], len(d)); c["audio"].write(d[:take]); c["bytes"] += take
            d = d[take:]; c["left"] -= take
            if c["left"] > 0: break
        if not d: break
        k = d[0] * 16
        if len(d) < 1 + k: break
        if k: c["titles"].append(d[1:1 + k].rstrip(b"\0").decode("utf-8", "replace"))
        d = d[1 + k:]; c["left"] = c["metaint"]
    c["data"] = d
for c in conns: demux(c)
deadline = time.time() + secs
while time.time() < deadline:
    live = [c for c in conns if c["end"] is None]
    if not live: break
    r, _, _ = select.select([c["s"] for c in live], [], [], 0.5)
    for c in live:
        if c["s"] not in r: continue
        try:
            chunk = c["s"].recv(65536)
        except (ConnectionResetError, BlockingIOError) as e:
            if isinstance(e, BlockingIOError): continue
            chunk = b""
        if not chunk:
            c["end"] = time.time(); continue
        c["reads"].append(time.time()); c["data"] += chunk; demux(c)
res = []
for c in conns:
    reads = c["reads"] + [c["end"] or time.time()]
    gap = max(b - a for a, b in zip(reads, reads[1:]))
    res.append({"worker": c["worker"], "bytes": c["bytes"], "titles": c["titles"], "eof": c["end"] is not None,
                "max_gap_s": round(gap, 3), "last_read": c["reads"][-1]})
json.dump(res, open(out + "/listeners.json", "w"))
PY
mkdir -p "$FC_TMP/wl"
fc_start listeners python3 "$FC_TMP/wl.py" "$http" 16 24 "$FC_TMP/wl"
wl_pid=$FC_LAST_PID

# Both workers serve: the core's JSON counts 16 listeners over the two.
json_ok=0
for _ in $(seq 1 40); do
  curl -s --max-time 2 "http://127.0.0.1:$http/" >"$FC_TMP/root.json" || true
  if python3 - "$FC_TMP/root.json" <<'PY'
import json, sys
j = json.load(open(sys.argv[1]))
w = j["workers"]; m = [x for x in j["mounts"] if x["mount"] == "live.mp3"][0]
ok = len(w) == 2 and all(x["up"] for x in w) and m["listeners"] == 16
sys.exit(0 if ok else 1)
PY
  then json_ok=1; break; fi
  sleep 0.25
done
[ "$json_ok" = 1 ] || fc_fail "GET / never showed 2 workers up and 16 listeners: $(head -c 600 "$FC_TMP/root.json")"
read -r w1pid w2pid < <(python3 -c 'import json,sys; w=json.load(open(sys.argv[1]))["workers"]; print(w[0]["pid"], w[1]["pid"])' "$FC_TMP/root.json")
fc_log "workers: 1=pid $w1pid 2=pid $w2pid"

# The same HLS segment from both workers: fetched until each worker served it at least once.
sleep 4
seg=$(curl -s "http://127.0.0.1:$http/live.mp3.m3u8" | grep -v '^#' | tail -1)
[ -n "$seg" ] || fc_fail "no HLS segment listed"
seen1=""; seen2=""
for i in $(seq 1 30); do
  curl -s -D "$FC_TMP/seg$i.h" -o "$FC_TMP/seg$i.aac" "http://127.0.0.1:$http/$seg"
  w=$(tr -d '\r' <"$FC_TMP/seg$i.h" | awk -F': ' 'tolower($1)=="x-framecast-worker"{print $2}')
  sum=$(md5sum <"$FC_TMP/seg$i.aac" | cut -c1-32)
  [ "$w" = 1 ] && seen1=$sum
  [ "$w" = 2 ] && seen2=$sum
  [ -n "$seen1" ] && [ -n "$seen2" ] && break
done
[ -n "$seen1" ] && [ -n "$seen2" ] || fc_fail "HLS segment $seg not served by both workers in 30 requests"
[ "$seen1" = "$seen2" ] || fc_fail "HLS segment $seg differs between workers ($seen1 vs $seen2)"
fc_log "HLS $seg identical from both workers ($seen1)"

# A title while all listen.
title="Workers \"both\" – ünïcode ♫ $(date +%s)"
ice_set_title "$ice" live.mp3 "$title"
sleep 5

# Kill worker 1 mid-stream.
kill_t=$(date +%s.%N)
kill -KILL "$w1pid" || fc_fail "worker 1 (pid $w1pid) not there to kill"
fc_log "killed worker 1 (pid $w1pid)"
respawned=0
for _ in $(seq 1 40); do
  curl -s --max-time 2 "http://127.0.0.1:$http/" >"$FC_TMP/root2.json" || true
  if python3 -c 'import json,sys; w=json.load(open(sys.argv[1]))["workers"][0]; sys.exit(0 if w["up"] and w["pid"]!=int(sys.argv[2]) and w["restarts"]==1 else 1)' \
      "$FC_TMP/root2.json" "$w1pid" 2>/dev/null; then respawned=1; break; fi
  sleep 0.25
done
[ "$respawned" = 1 ] || fc_fail "worker 1 was not forked again: $(head -c 600 "$FC_TMP/root2.json")"
fc_alive "$edge_pid" || fc_fail "the edge's core process died with its worker"

wait_exit "$wl_pid" 40 || fc_fail "listeners did not finish"
[ "$FC_WAIT_RC" = 0 ] || fc_fail "listener script failed (see listeners.log)"

# New listeners after the restart, until both workers served one: audio again from each.
after_pids=()
for i in $(seq 1 12); do
  curl -s -N --max-time 6 -D "$FC_TMP/after$i.h" -o "$FC_TMP/after$i.mp3" "http://127.0.0.1:$http/live.mp3" &
  after_pids+=("$!")
done
for p in "${after_pids[@]}"; do wait "$p"; done
after_workers=$(cat "$FC_TMP"/after*.h | tr -d '\r' | awk -F': ' 'tolower($1)=="x-framecast-worker"{print $2}' | sort -u | tr '\n' ' ')

python3 - "$FC_TMP/wl/listeners.json" "$kill_t" "$title" <<'PY' >"$FC_TMP/verdict.txt" || { cat "$FC_TMP/verdict.txt"; fc_fail "listener checks failed"; }
import json, sys
ls, kill_t, title = json.load(open(sys.argv[1])), float(sys.argv[2]), sys.argv[3]
want = "StreamTitle='%s';" % title
bad = []
by = {1: 0, 2: 0}
for i, l in enumerate(ls):
    by[l["worker"]] = by.get(l["worker"], 0) + 1
    if not any(want in t for t in l["titles"]):
        bad.append("l%02d (worker %d) never got the title" % (i, l["worker"]))
    if l["worker"] == 2:
        if l["eof"]: bad.append("l%02d on worker 2 was cut off" % i)
        if l["max_gap_s"] > 2.5: bad.append("l%02d on worker 2 stalled %.2f s" % (i, l["max_gap_s"]))
        if l["bytes"] < 0.9 * 16000 * 24: bad.append("l%02d on worker 2 got only %d bytes" % (i, l["bytes"]))
    elif l["worker"] == 1:
        if not l["eof"] or l["last_read"] > kill_t + 1: bad.append("l%02d on worker 1 outlived its worker" % i)
    else:
        bad.append("l%02d has no X-Framecast-Worker header" % i)
if by.get(1, 0) == 0 or by.get(2, 0) == 0: bad.append("all 16 listeners on one worker: %s" % by)
print("per worker:", by)
print("\n".join(bad) if bad else "ok")
sys.exit(1 if bad else 0)
PY
cat "$FC_TMP/verdict.txt"
per=$(head -1 "$FC_TMP/verdict.txt")

# Every listener's audio (both workers, before and after the kill) is a contiguous run of the
# source's frames.
for f in "$FC_TMP"/wl/l*.mp3; do
  out=$("$FC_BUILD/tools/framecmp" --codec mp3 --min-frames 100 "$FC_TMP/ref.mp3" "$f") \
    || fc_fail "$(basename "$f"): $out"
done
for w in 1 2; do
  case " $after_workers " in *" $w "*) ;; *) fc_fail "after the restart no new listener landed on worker $w (got: $after_workers)";; esac
done
for f in "$FC_TMP"/after*.mp3; do
  out=$("$FC_BUILD/tools/framecmp" --codec mp3 --min-frames 100 "$FC_TMP/ref.mp3" "$f") \
    || fc_fail "$(basename "$f") (after the restart): $out"
done
echo "workers: PASS $per hls_segment_identical=1 respawned=1 after_restart_workers=$after_workers"
