#!/usr/bin/env bash
# Fault test (issue 3): a three-relay mesh with a cycle; no frame loops.
#
#   R1 --upstream R2,  R2 --upstream R3,  R3 --upstream R1     (X --upstream Y: Y sends to X)
#   so frames flow  shim --TCP--> R1 --> R3 --> R2 --> R1 (back where they entered: a cycle)
#   and the edge subscribes to R2 and R3 only (never to R1, where the shim's frames enter).
# A curl listener records 20 s from the edge; its frames must be a contiguous run of what icecast2
# served a reference recorder (framecmp). Then the shim is stopped, and "every frame reaches the
# edge exactly once per relay link, no frame loops" is checked numerically, with N = the number of
# distinct frames that entered the mesh (R1's forwarded count):
#   - the mesh goes quiet: two GET / snapshots 2 s apart (after a 2 s drain) show the same
#     relays[].frames (a looping frame would keep the counters moving);
#   - edge: relays[R2].frames == relays[R3].frames == N (each link carried each frame once), both
#     links up throughout (connects 1, disconnects 0), the stream received N distinct frames and
#     N duplicates (2 links x N - N), lost == gaps == 0;
#   - relays, from the stats line each logs on SIGTERM: forwarded == N for all three (a frame is
#     forwarded once, whatever path brought it); frames_in == feeders x N, dups == (feeders-1) x N,
#     stale == 0, where the feeders are R1: shim + R2 (the cycle brings every frame back once),
#     R2: R3, R3: R1. A loop would show up as forwarded > N and frames_in/dups growing beyond that;
#   - N is tied to the source: within 3 frames of what the shim sent (a frame still queued in the
#     shim when it stopped may never enter the mesh), and all three relays are alive until stopped.
# Prints N, per-link frames and first_copies, and each relay's frames_in/forwarded/dups.
#
# Env: FC_KEEP=1 keeps the temp dir.
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

LISTEN_S=20
MIN_FRAMES=690          # 90% of 20 s of MP3 at 38.28 frames/s; the 4 s burst comes on top
SHIM_SLACK=3            # frames the shim may still hold when it is stopped

ICE=$(free_port)
R1_IN=$(free_port); R1_SRV=$(free_port)
R2_IN=$(free_port); R2_SRV=$(free_port)
R3_IN=$(free_port); R3_SRV=$(free_port)
EDGE_PORT=$(free_port)
KEY="$FC_TMP/mesh.key"
T=$FC_TMP
fc_log "ports: icecast=$ICE R1=tcp:$R1_IN/serve:$R1_SRV R2=serve:$R2_SRV R3=serve:$R3_SRV edge=$EDGE_PORT"

start_icecast "$ICE"
start_source_mp3 "$ICE" live.mp3
record "http://127.0.0.1:$ICE/live.mp3" "$T/ref.mp3"; REF=$FC_LAST_PID
sleep 2
fc_alive "$REF" || fc_fail "reference recorder died (see ref.mp3.curl.log)"

bash "$FC_ROOT/scripts/keygen.sh" "$KEY" 2>/dev/null
# start_relay N IN SRV UPSTREAM_SRV
start_relay() {
  fc_start "R$1" "$RELAY" --ingest "tcp://127.0.0.1:$2" --serve "127.0.0.1:$3" \
    --upstream "127.0.0.1:$4" --key "$KEY" --catchup 30 --node "R$1"
}
start_relay 1 "$R1_IN" "$R1_SRV" "$R2_SRV"; R1=$FC_LAST_PID
start_relay 2 "$R2_IN" "$R2_SRV" "$R3_SRV"; R2=$FC_LAST_PID
start_relay 3 "$R3_IN" "$R3_SRV" "$R1_SRV"; R3=$FC_LAST_PID

alive_or_fail() {
  local when=$1 p; shift
  for p in "$@"; do
    fc_alive "$p" || fc_fail "${FC_PID_NAME[$p]} (pid $p) died $when (see ${FC_PID_NAME[$p]}.log)"
  done
}
# subscribed_at_least LOG N: the relay accepted at least N subscriptions.
subscribed_at_least() { [ "$(grep -c ' subscribed ' "$1" 2>/dev/null)" -ge "$2" ]; }

# The ring must be closed before the first frame: each relay has its downstream's subscription.
for i in 1 2 3; do
  wait_until 10 subscribed_at_least "$T/R$i.log" 1 || {
    alive_or_fail "while the mesh formed" "$R1" "$R2" "$R3"
    fc_fail "R$i: no relay subscribed to it within 10 s (mesh link missing; see R$i.log)"
  }
done
fc_log "mesh ring closed: R2->R1, R3->R2, R1->R3"

fc_start edge "$EDGE" --listen "127.0.0.1:$EDGE_PORT" --relay "127.0.0.1:$R2_SRV" \
  --relay "127.0.0.1:$R3_SRV" --key "$KEY" --burst 4 --node edge
EDGE_PID=$FC_LAST_PID
wait_until 5 port_listening "$EDGE_PORT" || fc_fail "edge not listening on :$EDGE_PORT after 5 s"
for i in 2 3; do
  wait_until 5 subscribed_at_least "$T/R$i.log" 2 || fc_fail "edge did not subscribe to R$i within 5 s"
done

fc_start shim "$SHIM" --mount live.mp3 --encoder a --pull "http://127.0.0.1:$ICE/live.mp3" \
  --to "tcp://127.0.0.1:$R1_IN" --key "$KEY" --node shim
SHIM_PID=$FC_LAST_PID

edge_json() { curl -s --max-time 2 "http://127.0.0.1:$EDGE_PORT/"; }
edge_lists_mount() { edge_json | grep -q '"live.mp3"'; }
wait_until 15 edge_lists_mount || {
  alive_or_fail "before the edge listed the mount" "$EDGE_PID" "$R1" "$R2" "$R3" "$SHIM_PID"
  fc_fail "edge GET / did not list live.mp3 within 15 s"
}

# --- listener ---------------------------------------------------------------------------------
T0=$(now_ms)
record "http://127.0.0.1:$EDGE_PORT/live.mp3" "$T/got.mp3" "$LISTEN_S"; L=$FC_LAST_PID
fc_log "t=0: listener started"
sleep_until "$T0" $(( LISTEN_S / 2 ))
alive_or_fail "at t=$(( LISTEN_S / 2 ))" "$EDGE_PID" "$R1" "$R2" "$R3" "$SHIM_PID" "$L"
wait_exit "$L" $(( LISTEN_S + 5 )) || fc_fail "listener still running after $((LISTEN_S + 5)) s"
[ "$FC_WAIT_RC" = 28 ] || fc_log "listener ended early: curl exit $FC_WAIT_RC (see got.mp3.curl.log)"
alive_or_fail "during the test" "$EDGE_PID" "$R1" "$R2" "$R3" "$SHIM_PID"

# --- stop the source, let the mesh drain, check it goes quiet ----------------------------------
fc_stop "$SHIM_PID" "$REF"
sleep 2
edge_json >"$T/edge.1.json" || fc_fail "edge GET / did not answer"
sleep 2
edge_json >"$T/edge.2.json" || fc_fail "edge GET / did not answer"
alive_or_fail "after the source stopped" "$EDGE_PID" "$R1" "$R2" "$R3"
fc_stop "$R1" "$R2" "$R3"
fc_log "listening done after $(( ($(now_ms) - T0) / 1000 )) s; checking"

# --- figures -----------------------------------------------------------------------------------
# relay_stat RELAY KEY: KEY=value from the relay's last "stats streams=" line (its SIGTERM stats).
relay_stat() {
  grep ' stats streams=' "$T/$1.log" | tail -n1 | tr ' ' '\n' | sed -n "s/^$2=\([0-9]*\)$/\1/p"
}
declare -A IN FWD DUPS STALE
for r in R1 R2 R3; do
  IN[$r]=$(relay_stat "$r" frames_in); FWD[$r]=$(relay_stat "$r" forwarded)
  DUPS[$r]=$(relay_stat "$r" dups); STALE[$r]=$(relay_stat "$r" stale)
  [ -n "${FWD[$r]}" ] || fc_fail "$r logged no stats line on SIGTERM (see $r.log)"
  echo "fault_mesh_cycle: $r: frames_in=${IN[$r]} forwarded=${FWD[$r]} dups=${DUPS[$r]} stale=${STALE[$r]}"
  grep ' stats peer=' "$T/$r.log" | sed "s/^.* stats /fault_mesh_cycle: $r: /" || true
done
SHIM_SENT=$(grep ' stats target=' "$T/shim.log" | tail -n1 | tr ' ' '\n' | sed -n 's/^sent=\([0-9]*\)$/\1/p')
grep -h ' stats ' "$T/shim.log" | sed 's/^.* stats /fault_mesh_cycle: shim: /' || true
N=${FWD[R1]}

python3 - "$T/edge.1.json" "$T/edge.2.json" "$R2_SRV" "$R3_SRV" >"$T/figures.txt" <<'PY' || fc_fail "cannot read edge GET / JSON: $(head -c 300 "$T/edge.2.json")"
import json, sys
d1, d2 = json.load(open(sys.argv[1])), json.load(open(sys.argv[2]))
names = {f"127.0.0.1:{sys.argv[3]}": "R2", f"127.0.0.1:{sys.argv[4]}": "R3"}
m = [x for x in d2["mounts"] if x["mount"] == "live.mp3"][0]
s = [x for x in m["streams"] if x["encoder"] == "a"][0]["counters"]
print("MOUNT %d %d %d %d" % (m["lost"], m["gaps"], s["received"], s["duplicates"]))
before = {r["relay"]: r["frames"] for r in d1["relays"]}
for r in d2["relays"]:
    print("RELAY %s %d %d %d %d %d" % (names.get(r["relay"], r["relay"]), r["frames"],
          r["frames"] - before.get(r["relay"], 0), r["first_copies"], r["connects"], r["disconnects"]))
PY
read -r _ LOST GAPS RECEIVED DUPLICATES < <(grep '^MOUNT ' "$T/figures.txt")
echo "fault_mesh_cycle: edge: live.mp3 received=$RECEIVED duplicates=$DUPLICATES lost=$LOST gaps=$GAPS"
declare -A LF LMOVED LFIRST LCONN LDISC
while read -r _ name f moved first conn disc; do
  LF[$name]=$f; LMOVED[$name]=$moved; LFIRST[$name]=$first; LCONN[$name]=$conn; LDISC[$name]=$disc
  echo "fault_mesh_cycle: edge: link $name frames=$f first_copies=$first connects=$conn disconnects=$disc (frames in the 2 s after the drain: $moved)"
done < <(grep '^RELAY ' "$T/figures.txt")

# --- verdict -----------------------------------------------------------------------------------
failed=0
bad() { echo "fault_mesh_cycle: $*"; failed=1; }
[ -s "$T/got.mp3" ] || fc_fail "listener received nothing"
python3 "$FC_LIB_DIR/frametrim.py" --codec mp3 "$T/got.mp3" "$T/got.whole.mp3" >/dev/null
if out=$("$FRAMECMP" --codec mp3 --min-frames "$MIN_FRAMES" "$T/ref.mp3" "$T/got.whole.mp3" 2>&1); then
  echo "fault_mesh_cycle: $out"
else
  echo "fault_mesh_cycle: $out"
  bad "framecmp failed: listener frames are not a contiguous run of icecast's (or fewer than $MIN_FRAMES)"
fi
NFRAMES=$(echo "$out" | sed -n 's/^framecmp: \(MISMATCH \)\{0,1\}frames=\([0-9]*\).*/\2/p' | head -n1)

[ -n "$N" ] && [ "$N" -gt 0 ] || fc_fail "R1 forwarded nothing"
if [ -z "$SHIM_SENT" ] || [ "$N" -gt "$SHIM_SENT" ] || [ "$N" -lt $(( SHIM_SENT - SHIM_SLACK )) ]; then
  bad "R1 forwarded $N distinct frames, the shim sent ${SHIM_SENT:-?} (want within $SHIM_SLACK below)"
fi
# feeders: R1 = shim + R2, R2 = R3, R3 = R1
declare -A FEEDERS=([R1]=2 [R2]=1 [R3]=1)
for r in R1 R2 R3; do
  f=${FEEDERS[$r]}
  [ "${FWD[$r]}" = "$N" ] || bad "$r forwarded ${FWD[$r]} frames, want N=$N (each frame forwarded exactly once)"
  [ "${IN[$r]}" = $(( f * N )) ] || bad "$r received ${IN[$r]} frames, want $f x N = $(( f * N )) (each feeder delivers each frame once)"
  [ "${DUPS[$r]}" = $(( (f - 1) * N )) ] || bad "$r counted ${DUPS[$r]} duplicates, want $(( f - 1 )) x N = $(( (f - 1) * N ))"
  [ "${STALE[$r]}" = 0 ] || bad "$r counted ${STALE[$r]} stale frames, want 0"
done
for l in R2 R3; do
  [ -n "${LF[$l]:-}" ] || { bad "edge GET / has no relay link $l"; continue; }
  [ "${LF[$l]}" = "$N" ] || bad "edge link $l carried ${LF[$l]} frames, want N=$N (each frame exactly once per link)"
  [ "${LMOVED[$l]}" = 0 ] || bad "edge link $l still carried ${LMOVED[$l]} frames 2..4 s after the source stopped (frames circulating)"
  [ "${LCONN[$l]}" = 1 ] && [ "${LDISC[$l]}" = 0 ] ||
    bad "edge link $l reconnected (connects=${LCONN[$l]} disconnects=${LDISC[$l]}): counts include catch-up resends"
done
[ "$RECEIVED" = "$N" ] || bad "edge stream received $RECEIVED distinct frames, want N=$N"
[ "$DUPLICATES" = "$N" ] || bad "edge stream counted $DUPLICATES duplicates, want 2 links x N - N = $N"
[ "$LOST" = 0 ] && [ "$GAPS" = 0 ] || bad "edge counted lost=$LOST gaps=$GAPS, want 0"

summary="frames=${NFRAMES:-?} N=$N shim_sent=${SHIM_SENT:-?} edge_link_frames=R2:${LF[R2]:-?},R3:${LF[R3]:-?} first_copies=R2:${LFIRST[R2]:-?},R3:${LFIRST[R3]:-?} forwarded=${FWD[R1]}/${FWD[R2]}/${FWD[R3]} frames_in=${IN[R1]}/${IN[R2]}/${IN[R3]} dups=${DUPS[R1]}/${DUPS[R2]}/${DUPS[R3]}"
[ "$failed" -eq 0 ] || fc_fail "$summary"
echo "fault_mesh_cycle: PASS $summary"
