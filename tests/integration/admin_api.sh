#!/usr/bin/env bash
# The admin API (issue 10) on an edge with 2 workers and two encoders of one programme (the
# backup's audio 400 ms behind, splice_lib.sh): bearer tokens (none / unknown → 401, read-only on
# a write → 403), every endpoint (mounts, one mount, relays, listeners across both workers, kick,
# promote and release, metadata), bad input (bad JSON → 400, unknown mount → 404, an oversize
# body → 413, a bad listener id → 400, an unknown one → 404). A kicked listener is closed within
# 100 ms of the answer; a title set through the API reaches ICY listeners; promote b then release
# are spliced like a failover and a failback: the listener's bitrate runs are 128 / 96 / 128 kbit/s
# and splicemeasure finds each splice within one MP3 frame (26.1 ms) of the aligned point.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/splice_lib.sh"
sp_need
T=$FC_TMP
MAX_MS=${FC_SPLICE_MAX_MS:-26.1}
LISTEN_S=26

printf 'ops %s\nviewer %s ro\n' "rw-$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')" \
  "ro-$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')" >"$T/tokens"
RW=$(awk '$1=="ops"{print $2}' "$T/tokens"); RO=$(awk '$1=="viewer"{print $2}' "$T/tokens")

sp_start_upstream anull
record "$SP_ICE_URL/primary.mp3" "$T/ref.mp3"; REF=$FC_LAST_PID
sp_start_mesh --failback-after 6 --workers 2 --api-token-file "$T/tokens"
sp_start_shim a 0 primary.mp3; SHIM_A=$FC_LAST_PID
sp_start_shim b 1 backup.mp3; SHIM_B=$FC_LAST_PID
sp_wait_alignment 20 || fc_fail "backup alignment not 'correlation' after 20 s: $(sp_state)"

API="$SP_EDGE_URL/api/v1"
failed=0
bad() { echo "admin_api: $*"; failed=1; }
# call EXPECTED_STATUS METHOD PATH [TOKEN] [BODY]: prints the body; checks the status.
call() {
  local want=$1 method=$2 path=$3 tok=${4:-} body=${5:-} args=(-s -o "$T/body" -w '%{http_code}' -X "$2")
  [ -n "$tok" ] && args+=(-H "Authorization: Bearer $tok")
  [ -n "$body" ] && args+=(-H 'Content-Type: application/json' --data-binary "$body")
  local got
  got=$(curl "${args[@]}" "$API$path")
  [ "$got" = "$want" ] || bad "$method $path: status $got, want $want ($(head -c 200 "$T/body"))"
  cat "$T/body"
}

# --- auth ---
call 401 GET /mounts >/dev/null
call 401 GET /mounts "not-a-token-at-all" >/dev/null
grep -q '"status": *401' "$T/body" || bad "401 body is not the JSON error"
call 200 GET /mounts "$RO" >/dev/null
call 403 POST /mounts/prog.mp3/promote "$RO" '{"encoder":"b"}' >/dev/null
call 403 DELETE /listeners/1 "$RO" >/dev/null

# --- reads ---
call 200 GET /mounts "$RW" | python3 -c 'import json,sys; m=json.load(sys.stdin)["mounts"]; assert [x["mount"] for x in m]==["prog.mp3"], m' ||
  bad "GET /mounts does not list prog.mp3"
call 200 GET /mounts/prog.mp3 "$RW" >"$T/mount.json"
python3 - "$T/mount.json" <<'PY' || bad "GET /mounts/prog.mp3 lacks streams, buffer or listeners_by_protocol"
import json, sys
m = json.load(open(sys.argv[1]))
assert {s["encoder"] for s in m["streams"]} == {"a", "b"}, m["streams"]
assert m["buffer"]["seconds"] > 5 and m["buffer"]["last_pts_us"] > m["buffer"]["first_pts_us"]
assert set(m["listeners_by_protocol"]) == {"icy", "raw"} and m["active"] == "a"
PY
call 404 GET /mounts/nope.mp3 "$RW" >/dev/null
call 200 GET /relays "$RW" | python3 -c 'import json,sys; r=json.load(sys.stdin)["relays"]; assert len(r)==2 and all(x["up"] for x in r), r' ||
  bad "GET /relays: want 2 links up"
call 404 GET /nothing "$RW" >/dev/null
call 405 POST /mounts "$RW" '{}' >/dev/null

# --- listeners: a recording one, and 6 ICY ones that log titles and when they were cut ---
cat >"$T/icy.py" <<'PY'
import socket, sys, time
port, secs, log = int(sys.argv[1]), float(sys.argv[2]), open(sys.argv[3], "w")
s = socket.create_connection(("127.0.0.1", port), timeout=5)
s.sendall(b"GET /prog.mp3 HTTP/1.0\r\nHost: x\r\nUser-Agent: icy-probe/1\r\nIcy-MetaData: 1\r\n\r\n")
buf = b""
while b"\r\n\r\n" not in buf:
    buf += s.recv(4096)
head, data = buf.split(b"\r\n\r\n", 1)
metaint = int([l.split(b":")[1] for l in head.split(b"\r\n") if l.lower().startswith(b"icy-metaint")][0])
worker = [l.split(b":")[1].strip().decode() for l in head.split(b"\r\n") if l.lower().startswith(b"x-framecast-worker")]
log.write("0 worker %s\n" % (worker[0] if worker else "?")); log.flush()
left, end = metaint, time.time() + secs
while time.time() < end:
    while True:
        if left > 0:
            take = min(left, len(data)); data = data[take:]; left -= take
            if left > 0: break
        if not data: break
        n = data[0] * 16
        if len(data) < 1 + n: break
        if n: log.write("%.3f title %s\n" % (time.time(), data[1:1 + n].rstrip(b"\0").decode("utf-8", "replace"))); log.flush()
        data = data[1 + n:]; left = metaint
    try:
        c = s.recv(65536)
    except (socket.timeout, ConnectionResetError):
        c = b""
    if not c:
        log.write("%.3f eof\n" % time.time()); log.flush(); break
    data += c
PY
T0=$(now_ms)
record "$SP_EDGE_URL/$SP_MOUNT" "$T/got.mp3" "$LISTEN_S"; L=$FC_LAST_PID
# Six ICY listeners, and more (up to 12) until both workers have some: the kernel spreads
# connections by a hash of the client's port, so a handful can land on one worker.
n_icy=0
while [ "$n_icy" -lt 12 ]; do
  n_icy=$((n_icy + 1))
  fc_start "icy$n_icy" python3 "$T/icy.py" "$SP_EDGE_PORT" 40 "$T/icy$n_icy.log"
  wait_until 5 grep -q worker "$T/icy$n_icy.log" || fc_fail "ICY listener $n_icy got no answer"
  [ "$n_icy" -ge 6 ] && [ "$(cat "$T"/icy*.log | awk '$2=="worker"{print $3}' | sort -u | wc -l)" = 2 ] && break
done
want=$((n_icy + 1))
ok=0
for _ in $(seq 1 40); do
  call 200 GET "/listeners?mount=prog.mp3" "$RO" >"$T/listeners.json"
  python3 -c 'import json,sys; l=json.load(open(sys.argv[1]))["listeners"]; sys.exit(0 if len(l)==int(sys.argv[2]) else 1)' "$T/listeners.json" "$want" && { ok=1; break; }
  sleep 0.25
done
[ "$ok" = 1 ] || bad "GET /listeners never listed $want listeners: $(head -c 400 "$T/listeners.json")"
python3 - "$T/listeners.json" <<'PY' || bad "listener entries incomplete"
import json, sys
l = json.load(open(sys.argv[1]))["listeners"]
icy = [x for x in l if x["protocol"] == "icy"]
assert len(icy) == len(l) - 1 and all(x["user_agent"] == "icy-probe/1" for x in icy), l
assert len({x["id"] >> 40 for x in l}) == 2, "listeners on one worker only: %s" % [x["id"] >> 40 for x in l]
assert all(x["mount"] == "prog.mp3" and x["peer"].startswith("127.0.0.1:") and x["bytes"] > 0 and 0 <= x["behind_live_s"] < 10 for x in l), l
PY
[ "$(call 200 GET "/listeners?mount=other.mp3" "$RO" | python3 -c 'import json,sys; print(len(json.load(sys.stdin)["listeners"]))')" = 0 ] ||
  bad "GET /listeners?mount=other.mp3 is not empty"

# --- kick one ICY listener: closed within 100 ms of the answer ---
VICTIM=$(python3 -c 'import json,sys; print([x["id"] for x in json.load(open(sys.argv[1]))["listeners"] if x["protocol"]=="icy"][0])' "$T/listeners.json")
KICK_T=$(python3 -c 'import time; print("%.3f" % time.time())')
call 204 DELETE "/listeners/$VICTIM" "$RW" >/dev/null
sleep 0.5
EOF_T=$(cat "$T"/icy*.log | awk '$2=="eof"{print $1}' | head -1)
[ -n "$EOF_T" ] || bad "no ICY listener saw its connection close after the kick"
# From before the request was sent (curl's start included) to the listener seeing its end.
KICK_MS=$(awk -v a="${EOF_T:-0}" -v b="$KICK_T" 'BEGIN{printf "%.0f", (a-b)*1000}')
awk -v d="$KICK_MS" 'BEGIN{exit !(d >= 0 && d <= 100)}' || bad "kicked listener closed ${KICK_MS} ms after the request (> 100)"
call 404 DELETE "/listeners/$VICTIM" "$RW" >/dev/null
call 400 DELETE "/listeners/abc" "$RW" >/dev/null

# --- metadata ---
TITLE="API title ✓ $(date +%s)"
call 200 POST /mounts/prog.mp3/metadata "$RW" "{\"title\":\"$TITLE\",\"url\":\"https://example.org/\"}" >/dev/null
call 400 POST /mounts/prog.mp3/metadata "$RW" '{"title": 5}' >/dev/null
call 400 POST /mounts/prog.mp3/metadata "$RW" '{not json' >/dev/null
call 404 POST /mounts/nope.mp3/metadata "$RW" '{"title":"x"}' >/dev/null
head -c 10000 /dev/zero | tr '\0' 'x' >"$T/big.json"
code=$(curl -s -o /dev/null -w '%{http_code}' -X POST -H "Authorization: Bearer $RW" \
  -H 'Content-Type: application/json' --data-binary "@$T/big.json" \
  "$API/mounts/prog.mp3/metadata" || true)
[ "$code" = 413 ] || bad "a 10 kB body gave $code, want 413"

# --- promote b at t=9 s, release at t=17 s ---
sleep_until "$T0" 9
call 409 POST /mounts/prog.mp3/promote "$RW" '{"encoder":"zz"}' >/dev/null
call 200 POST /mounts/prog.mp3/promote "$RW" '{"encoder":"b"}' >/dev/null
sleep 2
[ "$(sp_field active "$(sp_state)")" = b ] || bad "after promote: $(sp_state)"
sleep_until "$T0" 17
call 200 DELETE /mounts/prog.mp3/promote "$RW" >/dev/null
wait_exit "$L" $(( LISTEN_S + 5 )) || fc_fail "listener still running"
ST=$(sp_state)
fc_stop "$REF"

# Titles: every ICY listener that was not kicked got it within 3 s.
for f in "$T"/icy*.log; do
  grep -q eof "$f" && continue
  grep -qF "StreamTitle='$TITLE';" "$f" || bad "$(basename "$f"): the API's title never arrived"
done

# --- the promote and release splices, measured on decoded audio ---
sp_decode "$T/got.mp3" "$T/got.pcm" || fc_fail "cannot decode the listener's audio"
sp_pcm "$T/ref.mp3" "$T/ref.pcm" || fc_fail "cannot decode the reference"
RUNS=$(sp_bitrate_runs "$T/got.whole.mp3")
printf '%s\n' "$RUNS" | sed 's/^/listener: /'
mapfile -t EV < <(printf '%s\n' "$RUNS" | awk 'NR > 1 { sub("start_s=", "", $4); print $4 }')
KBPS=$(printf '%s\n' "$RUNS" | sed -n 's/.*kbps=//p' | tr '\n' ' ')
[ "$KBPS" = "128 96 128 " ] || bad "listener bitrate runs are '$KBPS', want '128 96 128 ' (promote, release)"
margs=(); for e in "${EV[@]}"; do margs+=(--event "$e"); done
rc=0
"$SP_MEASURE" --skip-ms 200 "$T/ref.pcm" "$T/got.pcm" --max-jump-ms "$MAX_MS" "${margs[@]}" >"$T/measure.txt" 2>&1 || rc=$?
[ "$rc" = 0 ] || bad "splicemeasure: a jump larger than $MAX_MS ms (exit $rc)"
ERRS=""
for e in "${EV[@]}"; do
  line=$(grep "^event got=$(printf '%.3f' "$e")s" "$T/measure.txt" | head -n1)
  err=$(sp_kv splice_error_ms "$line")
  ERRS="$ERRS$err,"
  sp_abs_le "$err" "$MAX_MS" || bad "splice at got=${e}s: error ${err} ms > $MAX_MS ms"
done
grep -q 'api token=ops .*promote encoder=b' "$T/edge.log" || bad "the promote is not logged with the token's name"
grep -q 'api token=ops .*kick listener=' "$T/edge.log" || bad "the kick is not logged with the token's name"
[ "$failed" = 0 ] || fc_fail "see above"
echo "admin_api: PASS kick_closed_ms=$KICK_MS splice_errors_ms=${ERRS%,} bitrate_runs='$KBPS' state=\"$ST\""
