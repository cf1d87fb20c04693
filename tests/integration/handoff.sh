#!/usr/bin/env bash
# Handoff restart (issue 10): HANDOFF_N listeners of each kind (plain, ICY, ?offset=, HLS polling;
# default 300) play while the edge (2 workers) is handed over twice (`--takeover` of its
# `--control` socket; a new binary each time) and each of the two relays once, with the encoder
# playing throughout. Every listener's audio must be a contiguous, byte-identical run of the
# source's frames (framecmp), no stream listener may see EOF or a gap of 1 s or more between
# reads, no HLS client may miss a media sequence number or get a failed request, the edge's
# listener count must be the same after each handoff, and every old process must exit 0.
. "$(dirname "$0")/lib.sh"
set -u
fc_need_bin "$FC_BUILD/framecast-shim" "$FC_BUILD/framecast-relay" "$FC_BUILD/framecast-edge" \
  "$FC_BUILD/tools/framecmp"
N=${HANDOFF_N:-300}
SECS=${HANDOFF_SECS:-36}
ulimit -n 65536 2>/dev/null || ulimit -n 8192 2>/dev/null || true

ice=$(free_port); ing1=$(free_port); srv1=$(free_port); ing2=$(free_port); srv2=$(free_port)
http=$(free_port)
start_icecast "$ice"
start_source_mp3 "$ice" live.mp3
record "http://127.0.0.1:$ice/live.mp3" "$FC_TMP/ref.mp3"
bash "$FC_ROOT/scripts/keygen.sh" "$FC_TMP/mesh.key" >/dev/null
relay_ho=0
"$FC_BUILD/framecast-relay" --help 2>&1 | grep -q -- --takeover && relay_ho=1
relay_args() { echo --ingest "tcp://127.0.0.1:$1" --serve "127.0.0.1:$2" --key "$FC_TMP/mesh.key"
  [ "$relay_ho" = 1 ] && echo --control "$FC_TMP/relay$3.ctl"; }
fc_start relay1 "$FC_BUILD/framecast-relay" $(relay_args "$ing1" "$srv1" 1)
relay1_pid=$FC_LAST_PID
fc_start relay2 "$FC_BUILD/framecast-relay" $(relay_args "$ing2" "$srv2" 2)
relay2_pid=$FC_LAST_PID
edge_args=(--listen "127.0.0.1:$http" --relay "127.0.0.1:$srv1" --relay "127.0.0.1:$srv2"
  --key "$FC_TMP/mesh.key" --workers 2 --hls-segment 2 --write-interval 0.25
  --control "$FC_TMP/edge.ctl")
fc_start edge "$FC_BUILD/framecast-edge" "${edge_args[@]}"
edge_pid=$FC_LAST_PID
fc_start shim "$FC_BUILD/framecast-shim" --mount live.mp3 --encoder a \
  --pull "http://127.0.0.1:$ice/live.mp3" --to "tcp://127.0.0.1:$ing1" \
  --to "tcp://127.0.0.1:$ing2" --key "$FC_TMP/mesh.key"
wait_http "http://127.0.0.1:$http/live.mp3" 15 || fc_fail "edge never served /live.mp3"

buffered() { curl -s --max-time 3 "http://127.0.0.1:$http/live.mp3/rewind" | python3 -c \
  'import json,sys; print(int(json.load(sys.stdin).get("seconds", 0)))' 2>/dev/null || echo 0; }
buf_ok() { [ "$(buffered)" -ge 10 ]; }
wait_until 30 buf_ok || fc_fail "edge never buffered 10 s"

listeners() { curl -s --max-time 3 "http://127.0.0.1:$http/api/v1/mounts/live.mp3" | python3 -c \
  'import json,sys; j=json.load(sys.stdin); print(sum(v for k,v in j.get("listeners",{}).items() if k!="total") if isinstance(j.get("listeners"),dict) else j.get("listeners",0))' \
  2>/dev/null || echo -1; }

mkdir -p "$FC_TMP/out"
fc_start clients python3 "$FC_LIB_DIR/handoff_clients.py" "$http" live.mp3 "$N" "$SECS" \
  "$FC_TMP/out" 8
clients_pid=$FC_LAST_PID
started() { [ -f "$FC_TMP/out/started" ]; }
wait_until 30 started || fc_fail "listeners never started"
want=$((3 * N))
count_ok() { [ "$(listeners)" -eq "$want" ]; }
wait_until 10 count_ok || fc_fail "edge counts $(listeners) listeners, want $want"
fc_log "$want stream listeners and $N HLS clients playing"

# handoff EDGE_PID NAME: start a successor, wait for the old one to exit 0, check the count.
handoff_edge() {
  local old=$1 name=$2 t0
  t0=$(now_ms)
  fc_start "$name" "$FC_BUILD/framecast-edge" "${edge_args[@]}" --takeover "$FC_TMP/edge.ctl"
  new_pid=$FC_LAST_PID
  wait_exit "$old" 20 || fc_fail "old edge still running 20 s after $name started"
  [ "$FC_WAIT_RC" -eq 0 ] || fc_fail "old edge exited $FC_WAIT_RC after the handoff to $name"
  fc_alive "$new_pid" || fc_fail "$name exited"
  wait_until 10 count_ok || fc_fail "after $name: $(listeners) listeners, want $want"
  fc_log "edge handoff to $name at $(date +%s.%N | cut -c1-14): old exited 0 after $(( $(now_ms) - t0 )) ms, listeners=$want"
}
handoff_relay() {
  local old=$1 k=$2
  fc_start "relay${k}b" "$FC_BUILD/framecast-relay" $(relay_args "$3" "$4" "$k") \
    --takeover "$FC_TMP/relay$k.ctl"
  wait_exit "$old" 20 || fc_fail "old relay $k still running 20 s after its successor started"
  [ "$FC_WAIT_RC" -eq 0 ] || fc_fail "old relay $k exited $FC_WAIT_RC after the handoff"
  fc_alive "$FC_LAST_PID" || fc_fail "new relay $k exited"
  fc_log "relay $k handed over (by $(date +%s.%N | cut -c1-14))"
}

sleep_until "$(now_ms)" 5
handoff_edge "$edge_pid" edge2
edge_pid=$new_pid
sleep_until "$(now_ms)" 5
if [ "$relay_ho" = 1 ]; then
  handoff_relay "$relay1_pid" 1 "$ing1" "$srv1"
  sleep_until "$(now_ms)" 3
  handoff_relay "$relay2_pid" 2 "$ing2" "$srv2"
  relays_done=2
else
  relays_done=0
fi
sleep_until "$(now_ms)" 4
handoff_edge "$edge_pid" edge3
edge_pid=$new_pid

wait_exit "$clients_pid" 60 || fc_fail "listener script still running"
[ "$FC_WAIT_RC" -eq 0 ] || fc_fail "listener script failed (see clients.log)"
python3 - "$FC_TMP/out/result.json" "$N" >"$FC_TMP/summary.txt" <<'PY' || { cat "$FC_TMP/summary.txt" >&2; fc_fail "listener checks failed"; }
import json, sys
res, n = json.load(open(sys.argv[1])), int(sys.argv[2])
bad, kinds, gap, total = [], {}, 0.0, 0
for r in res:
    kinds[r["kind"]] = kinds.get(r["kind"], 0) + 1
    total += r["bytes"]
    if r["error"] or r.get("eof"):
        bad.append("%s%d error=%s eof=%s" % (r["kind"], r["i"], r["error"], r.get("eof")))
    if r["kind"] == "hls":
        if r["missing"] or r["failed"] or r["segments"] < 8:
            bad.append("hls%d missing=%s failed=%d segments=%d" % (r["i"], r["missing"][:5], r["failed"], r["segments"]))
    else:
        gap = max(gap, r["max_gap_s"])
        if r["max_gap_s"] >= 1.0:
            bad.append("%s%d gap %.3f s ending %s" % (r["kind"], r["i"], r["max_gap_s"], r.get("gap_end")))
for b in bad[:20]:
    print("BAD", b)
print("kinds=%s bytes=%d max_gap_s=%.3f bad=%d" % (",".join("%s:%d" % kv for kv in sorted(kinds.items())), total, gap, len(bad)))
sys.exit(1 if bad or any(kinds.get(k, 0) != n for k in ("plain", "icy", "offset", "hls")) else 0)
PY
summary=$(tail -1 "$FC_TMP/summary.txt")
# Every listener's audio, compared with the source, two at a time.
ls "$FC_TMP"/out/*.mp3 | xargs -P 2 -I{} sh -c \
  '"$1" --codec mp3 --min-frames 300 "$2" "$3" >"$3.cmp" 2>&1 || echo "$3" >>"$4"' _ \
  "$FC_BUILD/tools/framecmp" "$FC_TMP/ref.mp3" {} "$FC_TMP/cmp_failed"
if [ -s "$FC_TMP/cmp_failed" ]; then
  head -5 "$FC_TMP/cmp_failed" | while read -r f; do cat "$f.cmp" >&2; done
  fc_fail "$(wc -l <"$FC_TMP/cmp_failed") listeners' audio is not a contiguous run of the source"
fi
frames=$(cat "$FC_TMP"/out/*.cmp | sed -n 's/.*frames=\([0-9]*\) .*/\1/p' | awk '{s+=$1} END {print s}')
echo "PASS edge_handoffs=2 relay_handoffs=$relays_done $summary frames_compared=$frames"
