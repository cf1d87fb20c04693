#!/usr/bin/env bash
# Handoff restart (issue 10): HANDOFF_N listeners of each kind (plain, ICY, ?offset=, HLS polling;
# default 300) play while the edge (2 workers) is handed over twice (`--takeover` of its
# `--control` socket; a new binary each time) and each of the two relays once, with the encoder
# playing throughout. Every listener's audio must be a contiguous, byte-identical run of the
# source's frames (framecmp), no stream listener may see EOF or a gap of 1 s or more between
# reads, no HLS client may miss a media sequence number or get a failed request, the edge's
# listener count must be the same after each handoff, and every old process must exit 0.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/handoff_lib.sh"
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

ho_wait_buffered "$http"
ho_start_clients "$http" "$N" "$SECS"
want=$HO_WANT
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
  ho_wait_count "$http" "$want" "after $name"
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

# Every listener's verdict and audio, compared with the source.
ho_finish "$N"
summary=$HO_SUMMARY frames=$HO_FRAMES
echo "handoff: PASS edge_handoffs=2 relay_handoffs=$relays_done $summary frames_compared=$frames"
