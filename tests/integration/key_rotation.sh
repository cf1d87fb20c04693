#!/usr/bin/env bash
# Key rotation without loss (issue 10): a running mesh moves from mesh key A to mesh key B while a
# listener records the edge, and at the end A opens nothing.
#
# icecast2 fed by ffmpeg (MP3) -> one shim pulling it -> TCP to relay 1, UDP to relay 2 -> an edge
# subscribed to both (default workers). The shim and the edge read two key files each
# (`--key K0 --key K1`) and change keys on SIGHUP, as they cannot restart without a gap (a new
# shim is a new session; a new edge cuts its listeners); the relays are restarted one at a time
# with new --key flags (the other one carries every frame meanwhile). Relays forward frames with
# the tag the shim made, so every receiver must know a key before any sender uses it:
#   start        everyone on {A} (both key files of the shim and of the edge hold A)
#   1 learn B    relay 1, relay 2 restarted with --key A --key B; edge and shim SIGHUP to {A, B}
#   2 send B     relay 1, relay 2 restarted with --key B --key A; shim SIGHUP to {B, A} (its frames
#                are tagged with B from then on: the edge, still {A, B}, must count them under
#                other_key); edge SIGHUP to {B, A}
#   (wait)       until the shim's frames kept for a reconnect (SHIM_RESEND_S = 10 s) are all B's:
#                a relay restarted on B alone gets them again; and relays restart in step 3, so
#                no catch-up window (--catchup) still holds frames tagged with A when edges drop A
#   3 drop A     relay 1, relay 2 restarted with --key B; shim and edge SIGHUP to {B}
#   then         a rogue shim with --key A pushes rogue.mp3 to both relays, and a relay 3 with
#                --key A (on the edge's --relay list from the start) comes up
# Each step waits (bounded) for the system to show it took: a reload's log line naming the keys'
# ids, a restarted relay linked to the edge again and passing it frames.
# Passes only if
#   - the listener's frames are byte-identical to a contiguous run of what icecast2 served a
#     reference recorder (framecmp), at least 90 % of the run plus the burst, ffmpeg decodes them
#     cleanly, and no byte-less time exceeds 2 s (the edge writes a listener once a second);
#   - no message of the mesh was refused: the edge counted no bad tag from relays 1 and 2, and no
#     relay instance counted one from a peer that sent or received frames (the shim, the edge);
#   - the edge counted frames under other_key in step 2 (frames really were tagged with B while
#     its first key was A) and kept getting frames after step 3;
#   - A is refused at the end: relay 2 (final instance) counted the rogue's datagrams as bad_tags
#     and carried one stream only; the edge never lists rogue.mp3; the edge counts bad_tags from
#     relay 3, which never comes up and passes it no frame.
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

LISTEN_S=32
BURST_S=4
MP3_FPS=38.281                      # 44.1 kHz / 1152
MIN_FRAMES=$(frame_floor "$LISTEN_S" "$BURST_S" "$MP3_FPS")
MAX_GAP_MS=2000                     # --write-interval 1 s, plus 1 s
SHIM_RESEND_S=10                    # encoder-shim/shim.h: frames resent to a reconnected relay
T=$FC_TMP

ICE=$(free_port)
R1_IN=$(free_port); R1_SRV=$(free_port)
R2_IN=$(free_port); R2_SRV=$(free_port)
R3_IN=$(free_port); R3_SRV=$(free_port)
EDGE_PORT=$(free_port)
fc_log "ports: icecast=$ICE relay1=$R1_IN/$R1_SRV relay2=$R2_IN/$R2_SRV relay3=$R3_IN/$R3_SRV edge=$EDGE_PORT tmp=$T"

# --- keys: A, B, and the files the shim and the edge re-read on SIGHUP -------------------------
bash "$FC_ROOT/scripts/keygen.sh" "$T/A.key" 2>/dev/null
bash "$FC_ROOT/scripts/keygen.sh" "$T/B.key" 2>/dev/null
# key_id FILE: the key's name in log lines (shared/mac.h mac_key_id).
key_id() {
  python3 -c 'import hashlib, sys; k = bytes.fromhex(open(sys.argv[1]).read().strip())
print(hashlib.blake2b(k, digest_size=16).hexdigest()[:8])' "$1"
}
ID_A=$(key_id "$T/A.key"); ID_B=$(key_id "$T/B.key")
[ -n "$ID_A" ] && [ -n "$ID_B" ] && [ "$ID_A" != "$ID_B" ] || fc_fail "cannot name the keys ($ID_A, $ID_B)"
fc_log "key A=$ID_A B=$ID_B"
# set_keys NODE FIRST SECOND: NODE.k0 := FIRST, NODE.k1 := SECOND (A or B; equal = one key).
# Written aside and renamed, so a reload never reads half a file.
set_keys() {
  cp "$T/$2.key" "$T/$1.k0.tmp"; mv -f "$T/$1.k0.tmp" "$T/$1.k0"
  cp "$T/$3.key" "$T/$1.k1.tmp"; mv -f "$T/$1.k1.tmp" "$T/$1.k1"
}
set_keys shim A A
set_keys edge A A

# --- upstream ----------------------------------------------------------------------------------
start_icecast "$ICE"
start_source_mp3 "$ICE" live.mp3
record "http://127.0.0.1:$ICE/live.mp3" "$T/ref.mp3"; REF=$FC_LAST_PID
sleep 2
fc_alive "$REF" || fc_fail "reference recorder died (see ref.mp3.curl.log)"

# --- the mesh, on A ----------------------------------------------------------------------------
# start_relay N KEYFILE...: relay N (1: TCP ingest, 2: UDP ingest, 3: TCP) with those --key files.
start_relay() {
  local n=$1 in srv proto=tcp args=(); shift
  case $n in 1) in=$R1_IN srv=$R1_SRV ;; 2) in=$R2_IN srv=$R2_SRV proto=udp ;; 3) in=$R3_IN srv=$R3_SRV ;; esac
  local k; for k in "$@"; do args+=(--key "$T/$k.key"); done
  fc_start "relay$n" "$RELAY" --ingest "$proto://127.0.0.1:$in" --serve "127.0.0.1:$srv" "${args[@]}"
  printf -v "R$n" '%s' "$FC_LAST_PID"
  if ! wait_until 5 port_listening "$srv"; then
    fc_alive "$FC_LAST_PID" || fc_fail "relay $n exited at start (see relay$n.log)"
    fc_fail "relay $n not listening on :$srv after 5 s"
  fi
}
start_relay 1 A
start_relay 2 A
# Relay 3 is on the edge's list from the start but only comes up at the end, with key A.
fc_start edge "$EDGE" --listen "127.0.0.1:$EDGE_PORT" --write-interval 1 --burst "$BURST_S" \
  --relay "127.0.0.1:$R1_SRV" --relay "127.0.0.1:$R2_SRV" --relay "127.0.0.1:$R3_SRV" \
  --key "$T/edge.k0" --key "$T/edge.k1"
EDGE_PID=$FC_LAST_PID
wait_until 5 port_listening "$EDGE_PORT" || {
  fc_alive "$EDGE_PID" || fc_fail "edge exited at start (see edge.log)"
  fc_fail "edge not listening on :$EDGE_PORT after 5 s"
}
fc_start shim "$SHIM" --mount live.mp3 --encoder a --pull "http://127.0.0.1:$ICE/live.mp3" \
  --to "tcp://127.0.0.1:$R1_IN" --to "udp://127.0.0.1:$R2_IN" --key "$T/shim.k0" --key "$T/shim.k1"
SHIM_PID=$FC_LAST_PID

# edge_json PY_EXPR: evaluate PY_EXPR over the edge's GET / (d; r(port) = that relay's entry).
edge_json() {
  curl -s --max-time 2 "http://127.0.0.1:$EDGE_PORT/" | python3 -c '
import json, sys
d = json.load(sys.stdin)
r = lambda port: [x for x in d["relays"] if x["relay"].endswith(":" + str(port))][0]
print(eval(sys.argv[1]))' "$1" 2>/dev/null || true
}
edge_has_live() { [ "$(edge_json '"live.mp3" in [m["mount"] for m in d["mounts"]]')" = True ]; }
wait_until 15 edge_has_live || fc_fail "edge did not list live.mp3 within 15 s"
grep -q "started .* keys=$ID_A\$" "$T/edge.log" || fc_fail "the edge did not start on key A alone: $(grep started "$T/edge.log")"

alive_or_fail() {
  local when=$1 p; shift
  for p in "$@"; do
    fc_alive "$p" || fc_fail "${FC_PID_NAME[$p]} (pid $p) died $when (see ${FC_PID_NAME[$p]}.log)"
  done
}

# --- steps -------------------------------------------------------------------------------------
# restart_relay N KEY...: stop relay N, start it with those keys, and wait (bounded) until the edge
# has it up again and has taken 20 more frames from it (the shim reached it too).
restart_relay() {
  local n=$1 pidvar="R$1" portvar="R$1_SRV" port before; shift
  port=${!portvar}
  alive_or_fail "before relay $n was restarted" "$EDGE_PID" "$SHIM_PID" "$R1" "$R2"
  before=$(edge_json "r($port)['frames']")
  [ -n "$before" ] || fc_fail "edge GET / does not answer"
  fc_stop "${!pidvar}"
  start_relay "$n" "$@"
  edge_took() { [ "$(edge_json "r($port)['up'] and r($port)['frames'] >= $before + 20")" = True ]; }
  wait_until 10 edge_took || fc_fail "relay $n restarted with keys $*: the edge did not get frames from it within 10 s ($(edge_json "r($port)"))"
  fc_log "relay $n restarted with keys $* (pid ${!pidvar}): edge $(edge_json "r($port)")"
}
# reload NODE PID FIRST SECOND: set NODE's key files, SIGHUP it, wait for its log line.
reload() {
  local node=$1 pid=$2 id1="ID_$3" id2="ID_$4" want
  set_keys "$node" "$3" "$4"
  want=${!id1}
  [ "$3" = "$4" ] || want="$want,${!id2}"
  kill -HUP "$pid"
  wait_until 5 grep -q "SIGHUP: keys reloaded keys=$want\$" "$T/$node.log" ||
    fc_fail "$node did not log 'keys reloaded keys=$want' within 5 s: $(grep SIGHUP "$T/$node.log" | tail -n 2)"
  fc_log "$node reloaded: keys=$want"
}
other_key() { edge_json "r($R1_SRV)['other_key'] + r($R2_SRV)['other_key']"; }
first_copies() { edge_json "r($R1_SRV)['first_copies'] + r($R2_SRV)['first_copies']"; }

T0=$(now_ms)
timed_record "http://127.0.0.1:$EDGE_PORT/live.mp3" "$T/got.mp3" "$LISTEN_S"; LISTENER=$FC_LAST_PID
sleep 2

fc_log "step 1: every receiver learns B, everyone still sends A"
restart_relay 1 A B
restart_relay 2 A B
reload edge "$EDGE_PID" A B
reload shim "$SHIM_PID" A B

fc_log "step 2: senders switch to B"
restart_relay 1 B A
restart_relay 2 B A
OK0=$(other_key)
reload shim "$SHIM_PID" B A
SWITCH_MS=$(now_ms)
edge_counts_b() { [ "$(other_key)" -ge $(( OK0 + 40 )) ]; }
wait_until 5 edge_counts_b || fc_fail "the edge (keys A,B) did not count 40 frames tagged with B within 5 s of the shim's switch (other_key $OK0 -> $(other_key))"
OK_STEP2=$(( $(other_key) - OK0 ))
reload edge "$EDGE_PID" B A

fc_log "waiting until the shim's resend window holds only frames tagged with B"
sleep_until "$SWITCH_MS" "$SHIM_RESEND_S.5"

fc_log "step 3: A dropped everywhere"
restart_relay 1 B
restart_relay 2 B
reload shim "$SHIM_PID" B B
reload edge "$EDGE_PID" B B
FC3=$(first_copies); MS3=$(now_ms)
ROT_MS=$(( MS3 - T0 ))
fc_log "rotation done $ROT_MS ms after the listener started"
[ $(( LISTEN_S * 1000 - ROT_MS )) -ge 6000 ] || fc_fail "the rotation took $ROT_MS ms: less than 6 s of the ${LISTEN_S} s listener left to check B alone"

fc_log "A refused: a rogue shim and relay 3 on key A"
start_relay 3 A
fc_start rogue "$SHIM" --mount rogue.mp3 --encoder z --file "$FC_ROOT/tests/data/sample.mp3" \
  --to "tcp://127.0.0.1:$R1_IN" --to "udp://127.0.0.1:$R2_IN" --to "tcp://127.0.0.1:$R3_IN" \
  --key "$T/A.key"
ROGUE=$FC_LAST_PID
edge_refuses_r3() { [ "$(edge_json "r($R3_SRV)['bad_tags'] > 0")" = True ]; }
wait_until 12 edge_refuses_r3 || fc_fail "the edge (key B) counted no bad tag from relay 3 (key A) within 12 s: $(edge_json "r($R3_SRV)")"
sleep 2
R3_STATE=$(edge_json "r($R3_SRV)")
ROGUE_LISTED=$(edge_json '"rogue.mp3" in [m["mount"] for m in d["mounts"]]')
alive_or_fail "during the test" "$EDGE_PID" "$SHIM_PID" "$R1" "$R2" "$R3" "$ROGUE"

wait_exit "$LISTENER" $(( LISTEN_S + 5 )) || fc_fail "listener still running after $(( LISTEN_S + 5 )) s"
[ "$FC_WAIT_RC" = 0 ] || fc_fail "listener failed, exit $FC_WAIT_RC: $(tail -n1 "$T/got.mp3.listener.log")"
FC_END=$(first_copies); MS_END=$(now_ms)
EDGE_BAD=$(edge_json "r($R1_SRV)['bad_tags'] + r($R2_SRV)['bad_tags']")
sleep 1
fc_stop "$REF" "$ROGUE"
fc_stop "$R1" "$R2"   # their last stats lines: these instances ran on B alone
fc_log "listening done; checking"

# --- verdict -----------------------------------------------------------------------------------
failed=0
fail() { echo "key_rotation: $*"; failed=1; }

st=$(stall_report "$T/got.mp3.timeline" 16000) || fc_fail "cannot read the listener's timeline"
echo "listener: $st"
GAP=$(stall_field "$st" max_arrival_gap_ms)
[ "${GAP:-99999}" -le "$MAX_GAP_MS" ] || fail "no audio for $GAP ms (> $MAX_GAP_MS)"
[ "$(stall_field "$st" total_stall_ms)" = 0 ] || fail "a player starting on the burst ran dry"
python3 "$FC_LIB_DIR/frametrim.py" --codec mp3 "$T/got.mp3" "$T/got.whole.mp3" | sed 's/^/listener: /'
cmp_rc=0
out=$("$FRAMECMP" --codec mp3 --min-frames "$MIN_FRAMES" "$T/ref.mp3" "$T/got.whole.mp3" 2>&1) || cmp_rc=$?
echo "$out" | sed 's/^/listener: /'
[ "$cmp_rc" = 0 ] || fail "framecmp: the listener's frames are not a contiguous run of icecast's (or fewer than $MIN_FRAMES)"
NFRAMES=$(sed -n 's/.*framecmp: frames=\([0-9]*\).*/\1/p' <<<"$out" | tail -n1)
dec=$(ffmpeg -hide_banner -nostdin -v error -f mp3 -i "$T/got.whole.mp3" -f null - 2>&1 | head -n 5) || true
[ -z "$dec" ] || { echo "$dec" | sed 's/^/ffmpeg: /'; fail "ffmpeg reported decode errors"; }

# On B alone (after step 3) the edge kept taking the shim's frames: 80 % of real time.
WANT_B=$(awk -v ms=$(( MS_END - MS3 )) -v r="$MP3_FPS" 'BEGIN{printf "%d", ms / 1000 * r * 0.8}')
GOT_B=$(( ${FC_END:-0} - ${FC3:-0} ))
[ "$GOT_B" -ge "$WANT_B" ] || fail "on key B alone the edge took $GOT_B first copies in $(( MS_END - MS3 )) ms (want >= $WANT_B)"

# No message of the mesh refused. The edge: from relays 1 and 2. Each relay instance: from any peer
# that carried frames (the shim's link, the edge's); the rogue's links carried none. UDP (relay 2's
# "stats streams=" line): none before its final instance, which met the rogue.
[ "$EDGE_BAD" = 0 ] || fail "the edge refused $EDGE_BAD messages from relays 1 and 2 during the rotation"
MESH_BAD=$(cat "$T/relay1.log" "$T/relay2.log" |
  grep -E 'relay (stats peer=|peer=.* closed )' | grep -vE ' frames_in=0 frames_out=0 ' | grep -v ' bad_tags=0 ' || true)
[ -z "$MESH_BAD" ] || { echo "$MESH_BAD" | sed 's/^/refused: /'; fail "a relay refused messages of the shim or the edge"; }
UDP_BAD=$(grep 'relay stats streams=' "$T/relay2.log" | sed '$d' | grep -v ' bad_tags=0 ' || true)
[ -z "$UDP_BAD" ] || { echo "$UDP_BAD" | sed 's/^/refused: /'; fail "relay 2 refused datagrams of the shim"; }

# A refused: relay 2's final instance (key B) counted the rogue's datagrams and kept one stream.
R2_STATS=$(grep 'relay stats streams=' "$T/relay2.log" | tail -n1)
R2_BAD=$(sed -n 's/.* bad_tags=\([0-9]*\) .*/\1/p' <<<"$R2_STATS")
R2_STREAMS=$(sed -n 's/.* streams=\([0-9]*\) .*/\1/p' <<<"$R2_STATS")
echo "key_rotation: relay 2 on key B: $R2_STATS"
[ "${R2_BAD:-0}" -gt 0 ] || fail "relay 2 (key B) counted no bad tag from the rogue shim (key A)"
[ "${R2_STREAMS:-x}" = 1 ] || fail "relay 2 (key B) carried ${R2_STREAMS:-?} streams (want 1: live.mp3 only)"
[ "$ROGUE_LISTED" = False ] || fail "the edge lists rogue.mp3 (frames tagged with A got through)"
echo "key_rotation: relay 3 (key A) at the edge (key B): $R3_STATE"
[ "$(python3 -c 'import ast, sys; r = ast.literal_eval(sys.argv[1]); print(r["frames"] == 0 and not r["up"] and r["bad_tags"] > 0)' "$R3_STATE")" = True ] ||
  fail "relay 3 (key A) was not refused by the edge (key B): $R3_STATE"

summary="frames=${NFRAMES:-?} max_gap_ms=${GAP:-?} rotation_ms=$ROT_MS mesh_bad_tags=$EDGE_BAD other_key_step2=$OK_STEP2 b_only_first_copies=$GOT_B relay2_bad_tags=${R2_BAD:-?} relay3_bad_tags_at_edge=$(python3 -c 'import ast, sys; print(ast.literal_eval(sys.argv[1])["bad_tags"])' "$R3_STATE")"
[ "$failed" -eq 0 ] || fc_fail "$summary"
echo "key_rotation: PASS $summary"
