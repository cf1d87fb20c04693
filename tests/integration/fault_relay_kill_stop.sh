#!/usr/bin/env bash
# Fault test (issue 3): a relay killed and restarted, and a relay frozen with its sockets open.
#
# icecast2 + ffmpeg source -> shim -> TCP to relay 1, UDP to relay 2 -> edge with both relays ->
# a listener for 35 s (it logs when each chunk arrived), on loopback, while
#   t=5 s   kill -9 relay 1          t=8 s   relay 1 restarts on the same ports
#   t=14 s  kill -STOP relay 2 (frozen: its TCP sockets stay open, nothing is answered)
#   t=24 s  kill -CONT relay 2
# Passes only if the listener's frames are byte-identical to a contiguous run of what icecast2
# served a reference recorder, no frame missing (framecmp), the edge's GET / shows lost == 0 and
# gaps == 0, the listener never ran dry (a player starting with the 4 s burst as its buffer; with
# framecmp alone a 10 s stall would pass), every process is still alive, and the edge noticed the
# frozen relay: an event=relay_down line for relay 2 with reason "peer silent for 3 s" within
# 2.5..6 s of SIGSTOP (heartbeat every 1 s, dead after 3 s: docs/architecture.md §2.4). Prints the
# detection times, the frames checked, the largest arrival gap and the edge's counters.
#
# Env: FC_KEEP=1 keeps the temp dir; FC_STOP_S (how long relay 2 stays frozen, default 10).
set -euo pipefail
. "$(dirname "$0")/lib.sh"

SHIM="$FC_BUILD/framecast-shim"
RELAY="$FC_BUILD/framecast-relay"
EDGE="$FC_BUILD/framecast-edge"
FRAMECMP="$FC_BUILD/tools/framecmp"
fc_need_bin "$SHIM" "$RELAY" "$EDGE" "$FRAMECMP"
for t in icecast2 ffmpeg curl python3 ss; do
  command -v "$t" >/dev/null || fc_fail "missing tool $t (scripts/install-deps.sh)"
done

LISTEN_S=35
STOP_AT=14
STOP_S=${FC_STOP_S:-10}
MIN_FRAMES=1200         # 90% of 35 s of MP3 at 38.28 frames/s; the 4 s burst comes on top
# Dead after 3 s of silence counted from the last message received, which may precede SIGSTOP by
# a few hundred ms (frames come in bursts, heartbeats every 1 s); the check runs on a 1 s timer.
DETECT_MIN_MS=2500
DETECT_MAX_MS=6000      # 3 s + 1 s timer + 2 s of slack for a loaded machine

ICE=$(free_port)
R1_IN=$(free_port); R1_SRV=$(free_port)
R2_IN=$(free_port); R2_SRV=$(free_port)
EDGE_PORT=$(free_port)
KEY="$FC_TMP/mesh.key"
T=$FC_TMP
fc_log "ports: icecast=$ICE relay1=tcp:$R1_IN/serve:$R1_SRV relay2=udp:$R2_IN/serve:$R2_SRV edge=$EDGE_PORT"

# relay 2 may be stopped when we fail: SIGCONT it first so the cleanup's SIGTERM can work (lib.sh's
# handler reads $? on entry, so hand it the status we are exiting with).
R2=""
kill_stop_on_exit() {
  local rc=$?
  set +e
  [ "$BASHPID" = "$FC_MAIN_PID" ] && [ -n "$R2" ] && kill -CONT "$R2" 2>/dev/null
  fc__rc() { return "$1"; }
  fc__rc "$rc"
  fc__on_exit
}
trap kill_stop_on_exit EXIT

start_icecast "$ICE"
start_source_mp3 "$ICE" live.mp3
record "http://127.0.0.1:$ICE/live.mp3" "$T/ref.mp3"; REF=$FC_LAST_PID
sleep 2
fc_alive "$REF" || fc_fail "reference recorder died (see ref.mp3.curl.log)"

bash "$FC_ROOT/scripts/keygen.sh" "$KEY" 2>/dev/null
start_relay1() {
  fc_start relay1 "$RELAY" --ingest "tcp://127.0.0.1:$R1_IN" --serve "127.0.0.1:$R1_SRV" \
    --key "$KEY" --catchup 30 --node relay1
  R1=$FC_LAST_PID
}
start_relay1
fc_start relay2 "$RELAY" --ingest "udp://127.0.0.1:$R2_IN" --serve "127.0.0.1:$R2_SRV" \
  --key "$KEY" --catchup 30 --node relay2
R2=$FC_LAST_PID
wait_until 5 port_listening "$R1_SRV" && wait_until 5 port_listening "$R1_IN" ||
  fc_fail "relay1 not listening on :$R1_IN and :$R1_SRV after 5 s (see relay1.log)"
wait_until 5 port_listening "$R2_SRV" && wait_until 5 grep -q "listening udp://127.0.0.1:$R2_IN" "$T/relay2.log" ||
  fc_fail "relay2 not listening on udp:$R2_IN and :$R2_SRV after 5 s (see relay2.log)"

fc_start edge "$EDGE" --listen "127.0.0.1:$EDGE_PORT" --relay "127.0.0.1:$R1_SRV" \
  --relay "127.0.0.1:$R2_SRV" --key "$KEY" --burst 4 --node edge
EDGE_PID=$FC_LAST_PID
wait_until 5 port_listening "$EDGE_PORT" || fc_fail "edge not listening on :$EDGE_PORT after 5 s"

fc_start shim "$SHIM" --mount live.mp3 --encoder a --pull "http://127.0.0.1:$ICE/live.mp3" \
  --to "tcp://127.0.0.1:$R1_IN" --to "udp://127.0.0.1:$R2_IN" --key "$KEY" --node shim
SHIM_PID=$FC_LAST_PID

edge_json() { curl -s --max-time 2 "http://127.0.0.1:$EDGE_PORT/"; }
edge_lists_mount() { edge_json | grep -q '"live.mp3"'; }
wait_until 15 edge_lists_mount || fc_fail "edge GET / did not list live.mp3 within 15 s"

alive_or_fail() {
  local when=$1 p; shift
  for p in "$@"; do
    fc_alive "$p" || fc_fail "${FC_PID_NAME[$p]} (pid $p) died $when (see ${FC_PID_NAME[$p]}.log)"
  done
}
# Log lines carry UTC ISO-8601 times with ms; turn "2026-...T02:22:25.929Z" into epoch ms.
log_ms() { python3 -c 'import sys,datetime as d; print(int(d.datetime.strptime(sys.argv[1], "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=d.timezone.utc).timestamp()*1000))' "$1"; }
# first_event_ms LOG REGEX AFTER_MS: epoch ms of the first line matching REGEX at or after AFTER_MS.
first_event_ms() {
  local line ts ms
  while IFS= read -r line; do
    ts=${line%% *}
    ms=$(log_ms "$ts" 2>/dev/null) || continue
    [ "$ms" -ge "$3" ] && { echo "$ms"; return 0; }
  done < <(grep -E -- "$2" "$1" | head -n 20)
  return 1
}

. "$FC_LIB_DIR/timing_lib.sh"   # timed_record, stall_report

# --- listener and faults ---------------------------------------------------------------------
T0=$(now_ms)
timed_record "http://127.0.0.1:$EDGE_PORT/live.mp3" "$T/got.mp3" "$LISTEN_S"; L=$FC_LAST_PID
fc_log "t=0: listener started"

sleep_until "$T0" 5
alive_or_fail "before relay 1 was killed" "$EDGE_PID" "$R1" "$R2" "$SHIM_PID" "$L"
KILL_MS=$(now_ms); fc_kill9 "$R1"
fc_log "t=5: kill -9 relay 1"

sleep_until "$T0" 8
start_relay1
RESTART_MS=$(now_ms)
wait_until 3 port_listening "$R1_SRV" || {
  fc_alive "$R1" || fc_fail "restarted relay 1 exited (see relay1.log)"
  fc_fail "restarted relay 1 not listening on :$R1_SRV within 3 s"
}
fc_log "t=8: relay 1 restarted"

sleep_until "$T0" "$STOP_AT"
alive_or_fail "before relay 2 was frozen" "$EDGE_PID" "$R1" "$R2" "$SHIM_PID" "$L"
STOP_MS=$(now_ms); kill -STOP "$R2"
fc_log "t=$STOP_AT: kill -STOP relay 2"
sleep_until "$T0" $(( STOP_AT + STOP_S ))
CONT_MS=$(now_ms); kill -CONT "$R2"
fc_log "t=$(( STOP_AT + STOP_S )): kill -CONT relay 2"

wait_exit "$L" $(( LISTEN_S + 5 )) || fc_fail "listener still running after $((LISTEN_S + 5)) s"
[ "$FC_WAIT_RC" = 0 ] || fc_fail "listener failed: exit $FC_WAIT_RC (see got.mp3.listener.log)"
alive_or_fail "during the test" "$EDGE_PID" "$R1" "$R2" "$SHIM_PID"
JSON=$(edge_json) || fc_fail "edge GET / did not answer after the test"
echo "$JSON" >"$T/edge.json"
fc_stop "$REF"
fc_log "listening done after $(( ($(now_ms) - T0) / 1000 )) s; checking"

# --- figures -----------------------------------------------------------------------------------
failed=0
# Either log shape: `event=relay_down relay=ADDR reason="..."` or `alert event=relay_down {json}`.
R1_RE="event=relay_down.*127\.0\.0\.1:$R1_SRV([^0-9]|$)"
R2_RE="event=relay_down.*(127\.0\.0\.1:$R2_SRV([^0-9]|$).*peer silent for 3 s|peer silent for 3 s.*127\.0\.0\.1:$R2_SRV([^0-9]|$))"
UP1_RE="event=relay_up.*127\.0\.0\.1:$R1_SRV([^0-9]|$)"
UP2_RE="event=relay_up.*127\.0\.0\.1:$R2_SRV([^0-9]|$)"
d1=$(first_event_ms "$T/edge.log" "$R1_RE" "$((KILL_MS - 50))") && d1=$((d1 - KILL_MS)) || d1="none"
u1=$(first_event_ms "$T/edge.log" "$UP1_RE" "$RESTART_MS") && u1=$((u1 - RESTART_MS)) || u1="none"
d2=$(first_event_ms "$T/edge.log" "$R2_RE" "$STOP_MS") && d2=$((d2 - STOP_MS)) || d2="none"
u2=$(first_event_ms "$T/edge.log" "$UP2_RE" "$CONT_MS") && u2=$((u2 - CONT_MS)) || u2="none"
echo "fault_relay_kill_stop: relay 1 kill -9 -> edge relay_down: ${d1} ms; restart -> relay_up: ${u1} ms"
echo "fault_relay_kill_stop: relay 2 SIGSTOP -> edge relay_down (peer silent for 3 s): ${d2} ms; SIGCONT -> relay_up: ${u2} ms"
grep -E "event=relay_(down|up)" "$T/edge.log" | sed 's/^/fault_relay_kill_stop: edge.log: /' || true

python3 - "$T/edge.json" "$R1_SRV" "$R2_SRV" >"$T/figures.txt" <<'PY' || fc_fail "cannot read edge GET / JSON: $(head -c 300 "$T/edge.json")"
import json, sys
d = json.load(open(sys.argv[1]))
names = {f"127.0.0.1:{sys.argv[2]}": "relay1", f"127.0.0.1:{sys.argv[3]}": "relay2"}
m = [x for x in d["mounts"] if x["mount"] == "live.mp3"][0]
print("MOUNT lost=%d gaps=%d patched=%d failovers=%d switches=%d frames_out=%d" % (
    m["lost"], m["gaps"], m.get("patched", 0), m.get("failovers", 0), m["switches"], m["frames_out"]))
for s in m["streams"]:
    c = s["counters"]
    print("STREAM encoder=%s received=%d duplicates=%d late=%d lost=%d" % (
        s["encoder"], c["received"], c["duplicates"], c["late"], c["lost"]))
for r in d["relays"]:
    print("RELAY %s up=%s frames=%d first_copies=%d connects=%d disconnects=%d" % (
        names.get(r["relay"], r["relay"]), r["up"], r["frames"], r["first_copies"],
        r["connects"], r["disconnects"]))
PY
sed 's/^/fault_relay_kill_stop: edge: /' "$T/figures.txt"
read -r LOST GAPS < <(sed -n 's/^MOUNT lost=\([0-9]*\) gaps=\([0-9]*\).*/\1 \2/p' "$T/figures.txt")
grep -hE 'event=gap|lost_frames=' "$T/edge.log" | head -n 10 | sed 's/^/fault_relay_kill_stop: edge.log: /' || true

# --- verdict -----------------------------------------------------------------------------------
[ -s "$T/got.mp3" ] || fc_fail "listener received nothing"
STALL=$(stall_report "$T/got.mp3.timeline" 16000) || fc_fail "cannot read the listener timeline"
echo "fault_relay_kill_stop: listener: $STALL (128 kbit/s player, the 4 s burst as its buffer)"
read -r MAXGAP TOTALSTALL < <(echo "$STALL" | sed -n 's/^max_arrival_gap_ms=\([0-9]*\) .* total_stall_ms=\([0-9]*\)$/\1 \2/p')
if [ "${TOTALSTALL:-x}" != 0 ]; then
  echo "fault_relay_kill_stop: the listener ran dry: $STALL"
  failed=1
fi
python3 "$FC_LIB_DIR/frametrim.py" --codec mp3 "$T/got.mp3" "$T/got.whole.mp3" >/dev/null
if out=$("$FRAMECMP" --codec mp3 --min-frames "$MIN_FRAMES" "$T/ref.mp3" "$T/got.whole.mp3" 2>&1); then
  echo "fault_relay_kill_stop: $out"
else
  echo "fault_relay_kill_stop: $out"
  echo "fault_relay_kill_stop: framecmp failed: listener frames are not a contiguous run of icecast's (or fewer than $MIN_FRAMES)"
  failed=1
fi
NFRAMES=$(echo "$out" | sed -n 's/^framecmp: \(MISMATCH \)\{0,1\}frames=\([0-9]*\).*/\2/p' | head -n1)
if [ "${LOST:-x}" != 0 ] || [ "${GAPS:-x}" != 0 ]; then
  echo "fault_relay_kill_stop: edge counted lost=${LOST:-?} gaps=${GAPS:-?} for live.mp3 (want 0)"
  failed=1
fi
if [ "$d2" = none ]; then
  echo "fault_relay_kill_stop: the edge never logged relay 2 (frozen) as down with reason \"peer silent for 3 s\""
  failed=1
elif [ "$d2" -lt "$DETECT_MIN_MS" ] || [ "$d2" -gt "$DETECT_MAX_MS" ]; then
  echo "fault_relay_kill_stop: frozen relay 2 detected after $d2 ms, want ${DETECT_MIN_MS}..${DETECT_MAX_MS} ms"
  failed=1
fi
if [ "$d1" = none ]; then
  echo "fault_relay_kill_stop: the edge never logged relay 1 (killed) as down"
  failed=1
fi
if [ "$u1" = none ] || [ "$u2" = none ]; then
  echo "fault_relay_kill_stop: the edge did not log relay_up again after the restart / SIGCONT (relay 1: ${u1} ms, relay 2: ${u2} ms)"
  failed=1
fi
summary="frames=${NFRAMES:-?} lost=${LOST:-?} gaps=${GAPS:-?} max_arrival_gap_ms=${MAXGAP:-?} stall_ms=${TOTALSTALL:-?} kill_detect_ms=$d1 stop_detect_ms=$d2 relay1_up_after_restart_ms=$u1 relay2_up_after_cont_ms=$u2"
[ "$failed" -eq 0 ] || fc_fail "$summary"
echo "fault_relay_kill_stop: PASS $summary"
