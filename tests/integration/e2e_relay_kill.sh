#!/usr/bin/env bash
# End to end on real input (issue 2): icecast2 fed by ffmpeg in real time (an MP3 mount and an
# ADTS mount) -> one shim per mount pulling it -> TCP to relay 1, UDP to relay 2 -> an edge with
# both relays -> a timed listener per mount for 20 s (timing_lib.sh: every read timestamped), while
#   t=5 s  relay 1 is killed (kill -9),  t=8 s  relay 1 restarts on the same ports,
#   t=14 s relay 2 is killed (kill -9): from then on the restarted relay 1 is the only path.
# Passes only if, per mount:
#   - the listener's frames are byte-identical to a contiguous run of the frames icecast2 served
#     directly to a reference recorder (framecmp, no frame missing), at least 90% of the 20 s plus
#     the 4 s burst, and ffmpeg decodes them without a single error; Content-Type is right;
#   - audio arrived within 1 s of every moment the edge would write it, the run's start and end
#     included: the edge writes a listener holding its burst once per --write-interval (1 s, set
#     explicitly below), so the longest time without a byte must be <= 1 s + 1 s (a stream that
#     stops for good fails), and a player starting on the burst never ran dry (stall_report);
# and relay 1 carried frames again after its restart: between the kill of relay 2 and the end the
# edge's GET / counts at least 80% of the frames of both mounts from relay 1 (its "frames"), and the
# restarted relay 1's own stats, on shutdown, forwarded at least that many to the edge.
#
# Env: FC_KEEP=1 keeps the temp dir (recordings, logs); FC_BUILD=dir picks the binaries.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/timing_lib.sh"

SHIM="$FC_BUILD/framecast-shim"
RELAY="$FC_BUILD/framecast-relay"
EDGE="$FC_BUILD/framecast-edge"
FRAMECMP="$FC_BUILD/tools/framecmp"
fc_need_bin "$SHIM" "$RELAY" "$EDGE" "$FRAMECMP"
for t in icecast2 ffmpeg curl python3 ss; do
  command -v "$t" >/dev/null || fc_fail "missing tool $t (scripts/install-deps.sh)"
done

LISTEN_S=20
BURST_S=4
MP3_FPS=38.281   # 44.1 kHz / 1152
AAC_FPS=46.875   # 48 kHz / 1024
# 90% of the audio a listener is owed: 20 s of real time plus the 4 s burst sent ahead.
MIN_MP3=$(frame_floor "$LISTEN_S" "$BURST_S" "$MP3_FPS")
MIN_AAC=$(frame_floor "$LISTEN_S" "$BURST_S" "$AAC_FPS")
WRITE_INTERVAL_S=1   # the edge's --write-interval: a listener holding seconds of audio is
                     # written once per interval, so arrivals are ~1 s apart by design
MAX_GAP_MS=$(( WRITE_INTERVAL_S * 1000 + 1000 ))  # longest time without a byte, start and end included

ICE=$(free_port)
R1_IN=$(free_port); R1_SRV=$(free_port)
R2_IN=$(free_port); R2_SRV=$(free_port)
EDGE_PORT=$(free_port)
KEY="$FC_TMP/mesh.key"
T=$FC_TMP

fc_log "ports: icecast=$ICE relay1=in:$R1_IN serve:$R1_SRV relay2=in:$R2_IN serve:$R2_SRV edge=$EDGE_PORT tmp=$T"

# --- upstream: icecast2 and two real-time ffmpeg sources --------------------------------------
start_icecast "$ICE"
start_source_mp3 "$ICE" live.mp3
start_source_adts "$ICE" live.aac

# Reference recorders first: everything the shims will see must also be in the reference.
record "http://127.0.0.1:$ICE/live.mp3" "$T/ref.mp3"; REF_MP3=$FC_LAST_PID
record "http://127.0.0.1:$ICE/live.aac" "$T/ref.aac"; REF_AAC=$FC_LAST_PID
sleep 2
for p in "$REF_MP3" "$REF_AAC"; do fc_alive "$p" || fc_fail "reference recorder died (see *.curl.log)"; done

# --- framecast ---------------------------------------------------------------------------------
bash "$FC_ROOT/scripts/keygen.sh" "$KEY" 2>/dev/null

start_relay1() {
  fc_start relay1 "$RELAY" --ingest "tcp://127.0.0.1:$R1_IN" --ingest "udp://127.0.0.1:$R1_IN" \
    --serve "127.0.0.1:$R1_SRV" --key "$KEY" --catchup 30
  R1=$FC_LAST_PID
}
start_relay2() {
  fc_start relay2 "$RELAY" --ingest "tcp://127.0.0.1:$R2_IN" --ingest "udp://127.0.0.1:$R2_IN" \
    --serve "127.0.0.1:$R2_SRV" --key "$KEY" --catchup 30
  R2=$FC_LAST_PID
}
# wait_relay NAME PID INPORT SERVEPORT: bounded wait until the relay listens on both TCP ports.
wait_relay() {
  wait_until 5 port_listening "$3" && wait_until 5 port_listening "$4" && return 0
  fc_alive "$2" || fc_fail "$1 exited at start (see $1.log)"
  fc_fail "$1 not listening on 127.0.0.1:$3 and :$4 after 5 s"
}

start_relay1
start_relay2
wait_relay relay1 "$R1" "$R1_IN" "$R1_SRV"
wait_relay relay2 "$R2" "$R2_IN" "$R2_SRV"

fc_start edge "$EDGE" --listen "127.0.0.1:$EDGE_PORT" --write-interval "$WRITE_INTERVAL_S" \
  --relay "127.0.0.1:$R1_SRV" --relay "127.0.0.1:$R2_SRV" --key "$KEY" --burst "$BURST_S"
EDGE_PID=$FC_LAST_PID
wait_until 5 port_listening "$EDGE_PORT" || {
  fc_alive "$EDGE_PID" || fc_fail "edge exited at start (see edge.log)"
  fc_fail "edge not listening on 127.0.0.1:$EDGE_PORT after 5 s"
}

for m in live.mp3 live.aac; do
  fc_start "shim-$m" "$SHIM" --mount "$m" --encoder a --pull "http://127.0.0.1:$ICE/$m" \
    --to "tcp://127.0.0.1:$R1_IN" --to "udp://127.0.0.1:$R2_IN" --key "$KEY"
done
SHIM_MP3=${FC_PIDS[-2]}
SHIM_AAC=${FC_PIDS[-1]}

edge_lists_mounts() {
  local body
  body=$(curl -s --max-time 1 "http://127.0.0.1:$EDGE_PORT/") || return 1
  [[ "$body" == *live.mp3* && "$body" == *live.aac* ]]
}
if ! wait_until 15 edge_lists_mounts; then
  for p in "$EDGE_PID" "$R1" "$R2" "$SHIM_MP3" "$SHIM_AAC"; do
    fc_alive "$p" || fc_fail "${FC_PID_NAME[$p]} died before the edge listed the mounts"
  done
  fc_fail "edge GET / did not list live.mp3 and live.aac within 15 s; got: $(curl -s --max-time 1 "http://127.0.0.1:$EDGE_PORT/" | head -c 300)"
fi
fc_log "edge lists both mounts: $(curl -s --max-time 1 "http://127.0.0.1:$EDGE_PORT/" | head -c 300)"

# --- listeners and faults ----------------------------------------------------------------------
T0=$(now_ms)
timed_record "http://127.0.0.1:$EDGE_PORT/live.mp3" "$T/got.mp3" "$LISTEN_S"; L_MP3=$FC_LAST_PID
timed_record "http://127.0.0.1:$EDGE_PORT/live.aac" "$T/got.aac" "$LISTEN_S"; L_AAC=$FC_LAST_PID

# edge_relay1 FIELD: relay 1's counter FIELD in the edge's GET / (empty if it does not answer).
edge_relay1() {
  curl -s --max-time 2 "http://127.0.0.1:$EDGE_PORT/" | python3 -c '
import json, sys
d = json.load(sys.stdin)
print([r for r in d["relays"] if r["relay"] == sys.argv[1]][0][sys.argv[2]])' "127.0.0.1:$R1_SRV" "$1" 2>/dev/null
}

# alive_or_fail WHEN PID...: every named process must still be running.
alive_or_fail() {
  local when=$1 p; shift
  for p in "$@"; do
    fc_alive "$p" || fc_fail "${FC_PID_NAME[$p]} (pid $p) died $when (see ${FC_PID_NAME[$p]}.log)"
  done
}

sleep_until "$T0" 5
alive_or_fail "before relay 1 was killed" "$EDGE_PID" "$R1" "$R2" "$SHIM_MP3" "$SHIM_AAC"
fc_log "t=5 s: kill -9 relay 1 (pid $R1)"
fc_kill9 "$R1"
KILLS=1

sleep_until "$T0" 8
fc_log "t=8 s: restart relay 1"
start_relay1
wait_until 3 port_listening "$R1_SRV" || {
  fc_alive "$R1" || fc_fail "restarted relay 1 exited (see relay1.log; same ports right after kill -9: SO_REUSEADDR?)"
  fc_fail "restarted relay 1 not listening on :$R1_SRV within 3 s"
}

sleep_until "$T0" 14
alive_or_fail "before relay 2 was killed" "$EDGE_PID" "$R1" "$R2" "$SHIM_MP3" "$SHIM_AAC"
R1_UP14=$(edge_relay1 up)
R1_FRAMES14=$(edge_relay1 frames)
R1_MS14=$(now_ms)
fc_log "t=14 s: kill -9 relay 2 (pid $R2); relay 1 at the edge: up=$R1_UP14 frames=$R1_FRAMES14"
fc_kill9 "$R2"
KILLS=2

# Listeners stop by themselves at t=20 s (exit 0); exit 1 means the edge closed the stream early.
for p in "$L_MP3" "$L_AAC"; do
  wait_exit "$p" $(( LISTEN_S + 5 )) || fc_fail "listener ${FC_PID_NAME[$p]} still running after $((LISTEN_S + 5)) s"
  [ "$FC_WAIT_RC" = 0 ] || fc_fail "listener ${FC_PID_NAME[$p]} failed, exit $FC_WAIT_RC: $(tail -n1 "$T/${FC_PID_NAME[$p]}.log")"
done
alive_or_fail "during the test" "$EDGE_PID" "$R1" "$SHIM_MP3" "$SHIM_AAC"
R1_FRAMES_END=$(edge_relay1 frames)
R1_MS_END=$(now_ms)
sleep 1
fc_stop "$REF_MP3" "$REF_AAC"
# Relay 1's own account: on SIGTERM it logs its counters (this instance: the one restarted at t=8).
fc_stop "$R1"
fc_log "listening done after $(( ($(now_ms) - T0) / 1000 )) s; checking"

# --- verdict -----------------------------------------------------------------------------------
failed=0
declare -A NFRAMES=()
declare -A GAP_OF=()
check_mount() {   # check_mount EXT CODEC FFMPEG_FMT MIN_FRAMES EXPECT_CTYPE BYTES_PER_S
  local ext=$1 codec=$2 fmt=$3 min=$4 ctype=$5 bps=$6
  local ref="$T/ref.$ext" got="$T/got.$ext" whole="$T/got.whole.$ext" out dec
  if [ ! -s "$got" ]; then
    echo "e2e_relay_kill: live.$ext: listener received nothing"; failed=1; return
  fi
  if ! grep -qi "^content-type: *$ctype" "$got.headers" 2>/dev/null; then
    echo "e2e_relay_kill: live.$ext: Content-Type is not $ctype: $(grep -i '^content-type' "$got.headers" | tr -d '\r')"
    failed=1
  fi
  # Stalls: no byte for more than MAX_GAP_MS (start and end of the run included), or a player
  # starting on the burst running dry.
  local st gap first endgap stall
  st=$(stall_report "$got.timeline" "$bps") || { echo "e2e_relay_kill: live.$ext: cannot read $got.timeline"; failed=1; return; }
  gap=$(stall_field "$st" max_arrival_gap_ms); first=$(stall_field "$st" first_byte_ms)
  endgap=$(stall_field "$st" end_gap_ms); stall=$(stall_field "$st" total_stall_ms)
  echo "live.$ext: listener: $st"
  GAP_OF[$ext]=$gap
  if [ "${gap:-99999}" -gt "$MAX_GAP_MS" ]; then
    echo "e2e_relay_kill: live.$ext: STALL: no audio for $gap ms (> $MAX_GAP_MS ms; first byte after $first ms, last byte $endgap ms before the end of the run)"
    failed=1
  fi
  if [ "${stall:-x}" != 0 ]; then
    echo "e2e_relay_kill: live.$ext: a player starting on the burst ran dry for $stall ms"
    failed=1
  fi
  # The listener hung up at an arbitrary byte; cut its incomplete last frame (nothing else).
  python3 "$FC_LIB_DIR/frametrim.py" --codec "$codec" "$got" "$whole" | sed "s/^/live.$ext: /"
  out=$("$FRAMECMP" --codec "$codec" --min-frames "$min" "$ref" "$whole" 2>&1) || {
    echo "$out" | sed "s/^/live.$ext: /"
    echo "e2e_relay_kill: live.$ext: framecmp failed: listener frames are not a contiguous run of icecast's (or fewer than $min)"
    failed=1; return
  }
  echo "$out" | sed "s/^/live.$ext: /"
  NFRAMES[$ext]=$(echo "$out" | sed -n 's/.*framecmp: frames=\([0-9]*\).*/\1/p' | tail -n1)
  dec=$(ffmpeg -hide_banner -nostdin -v error -f "$fmt" -i "$whole" -f null - 2>&1 | head -n 20) || true
  if [ -n "$dec" ]; then
    echo "$dec" | sed "s/^/live.$ext: ffmpeg: /"
    echo "e2e_relay_kill: live.$ext: ffmpeg reported decode errors"
    failed=1
  fi
}
check_mount mp3 mp3 mp3 "$MIN_MP3" audio/mpeg 16000
check_mount aac adts aac "$MIN_AAC" audio/aac 12000

# Relay 1 after its restart: from t=14 it is the only path, so the edge must count (nearly) every
# frame of both mounts from it, and the restarted relay must say it forwarded them to the edge.
R1_WANT=$(awk -v ms=$(( R1_MS_END - R1_MS14 )) -v a="$MP3_FPS" -v b="$AAC_FPS" 'BEGIN{printf "%d", ms / 1000 * (a + b) * 0.8}')
R1_GOT=$(( ${R1_FRAMES_END:-0} - ${R1_FRAMES14:-0} ))
echo "e2e_relay_kill: relay 1 after its restart: up=${R1_UP14:-?} at t=14 s; the edge got $R1_GOT frames from it in the $(( R1_MS_END - R1_MS14 )) ms after relay 2 was killed (want >= $R1_WANT)"
if [ -z "${R1_FRAMES14:-}" ] || [ -z "${R1_FRAMES_END:-}" ] || [ "$R1_GOT" -lt "$R1_WANT" ]; then
  echo "e2e_relay_kill: relay 1 did not carry frames after its restart (edge counted ${R1_FRAMES14:-?} -> ${R1_FRAMES_END:-?})"
  failed=1
fi
# The restarted instance's shutdown stats (the first instance died by kill -9: it logged none).
R1_STATS=$(grep 'relay stats streams=' "$T/relay1.log" | tail -n1)
R1_FWD=$(sed -n 's/.* forwarded=\([0-9]*\) .*/\1/p' <<<"$R1_STATS")
# shellcheck disable=SC2016  # a sed script: the text after the last "=== start" line
R1_OUT=$(sed -n '/=== .* start:/h; /=== .* start:/!H; ${x;p}' "$T/relay1.log" |
  sed -n 's/.*relay stats peer=.* frames_out=\([0-9]*\) .*/\1/p' | awk '{s += $1} END {print s + 0}')
echo "e2e_relay_kill: restarted relay 1's stats: forwarded=${R1_FWD:-?} frames_out to peers=$R1_OUT"
if [ "${R1_FWD:-0}" -lt "$R1_WANT" ] || [ "$R1_OUT" -lt "$R1_WANT" ]; then
  echo "e2e_relay_kill: restarted relay 1 forwarded ${R1_FWD:-?} frames, sent $R1_OUT to the edge (want >= $R1_WANT each)"
  failed=1
fi

summary="mp3_frames=${NFRAMES[mp3]:-?} aac_frames=${NFRAMES[aac]:-?} max_gap_ms=mp3:${GAP_OF[mp3]:-?},aac:${GAP_OF[aac]:-?} relay1_frames_after_restart=$R1_GOT relay1_forwarded=${R1_FWD:-?} relay_kills=$KILLS"
[ "$failed" -eq 0 ] || fc_fail "$summary"
echo "e2e_relay_kill: PASS $summary"
