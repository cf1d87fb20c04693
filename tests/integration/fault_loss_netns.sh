#!/usr/bin/env bash
# Fault test (issue 3): loss on every path, in a private network namespace.
#
# Everything (icecast2 + ffmpeg source, shim, three relays, edge, listeners) runs inside a network
# namespace this test creates (netns.sh), so the nftables rules below only touch its loopback:
#   shim --UDP--> relay A   30% of datagrams to A's ingest port dropped (numgen random mod 10 < 3)
#   shim --UDP--> relay B   30% dropped, independently (its own rule, its own random number)
#   shim --TCP--> relay C   cut (both directions, by port) for 5 s in every 15: t=5..10, t=20..25
#   edge subscribes to A, B and C (those TCP links are not filtered); a listener records 35 s.
# Rules sit on the input hook: a datagram is lost "on the wire", the sender's send() still succeeds
# (on the output hook the sender would get EPERM).
# Passes only if the listener's frames are byte-identical to a contiguous run of the frames icecast2
# served directly to a reference recorder, no frame missing (framecmp, at least 90% of the 35 s plus
# the burst), the edge's GET / shows lost == 0 and gaps == 0 for the mount, and the listener never
# ran dry (a player starting with the burst as its buffer, the end of the run included); and only if
# the faults really happened:
#   - per UDP path, nftables' drop counter / its datagram counter is the configured loss rate
#     within LOSS_TOL (5 percentage points; 30% of ~1700 datagrams has sigma ~1.1 points) and the
#     datagrams it counted are those the shim says it sent (within 5%);
#   - each UDP relay carried (1 - loss) of the frames the shim sent it within LOSS_TOL, by the
#     edge's per-relay frame count (GET /) and by the relay's own frames_in (its shutdown stats);
#   - every TCP cut window dropped packets.
# Why --reorder-ms 7000 and --burst 8: with both UDP paths losing 30%, 9% of frames are lost on
# both while TCP is cut. They exist only in the shim until the TCP path is back: the shim notices
# the dead connection after 3 s of silence, reconnects once the cut ends and resends its last
# 10 s (relays drop duplicates), so they reach the edge ~5.5 s late. Byte-identical output needs
# the edge to wait that long for a missing frame, and a gap-free ear needs the player's buffer
# (the burst) to cover the wait. With the defaults (300 ms, 4 s) the edge skips those frames. Prints frames checked, the largest arrival gap, per-relay
# frames/first_copies, the edge counters, the shim's per-target counts and what nftables dropped.
#
# Env: FC_KEEP=1 keeps the temp dir; FC_LOSS_A / FC_LOSS_B (percent dropped, multiples of 10,
# default 30); FC_CUT ("START:END,..." seconds after the listener starts during which the TCP path
# is cut, default "5:10,20:25"; e.g. "5:60" cuts it for good); FC_REORDER_MS (edge --reorder-ms,
# default 7000); FC_BURST (edge --burst, default 8).
set -euo pipefail
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/netns.sh"
fc_netns_enter "$@"
# ---- from here on we are inside the namespace ------------------------------------------------

SHIM="$FC_BUILD/framecast-shim"
RELAY="$FC_BUILD/framecast-relay"
EDGE="$FC_BUILD/framecast-edge"
FRAMECMP="$FC_BUILD/tools/framecmp"
fc_need_bin "$SHIM" "$RELAY" "$EDGE" "$FRAMECMP"
for t in icecast2 ffmpeg curl python3 ss nft; do
  command -v "$t" >/dev/null || fc_fail "missing tool $t (scripts/install-deps.sh)"
done

LISTEN_S=35
LOSS_A=${FC_LOSS_A:-30}
LOSS_B=${FC_LOSS_B:-30}
CUT=${FC_CUT-5:10,20:25}
for v in "$LOSS_A" "$LOSS_B"; do
  case "$v" in 0|10|20|30|40|50|60|70|80|90|100) ;; *) fc_fail "FC_LOSS_A/B must be a multiple of 10 in 0..100, got $v" ;; esac
done
BURST_S=${FC_BURST:-8}
LOSS_TOL=5   # percentage points, for the drop rate and the frames each UDP relay carried
NFT_TABLE="fc_loss_$$"

ICE=$(free_port)
A_IN=$(free_port); A_SRV=$(free_port)
B_IN=$(free_port); B_SRV=$(free_port)
C_IN=$(free_port); C_SRV=$(free_port)
EDGE_PORT=$(free_port)
KEY="$FC_TMP/mesh.key"
T=$FC_TMP
fc_log "netns=$FC_NETNS ports: icecast=$ICE A=udp:$A_IN/serve:$A_SRV B=udp:$B_IN/serve:$B_SRV C=tcp:$C_IN/serve:$C_SRV edge=$EDGE_PORT"
fc_log "faults: udp->A ${LOSS_A}% dropped, udp->B ${LOSS_B}% dropped, tcp->C cut during t=$CUT s"

# The namespace (and with it this table) is deleted by the outer run; drop the table ourselves too.
# lib.sh's EXIT handler reads $? on entry: hand it the status the script is exiting with.
fc_loss_on_exit() {
  local rc=$?
  set +e
  [ "$BASHPID" = "$FC_MAIN_PID" ] && nft delete table inet "$NFT_TABLE" 2>/dev/null
  fc__rc() { return "$1"; }
  fc__rc "$rc"
  fc__on_exit
}
trap fc_loss_on_exit EXIT

# --- upstream: icecast2, real-time ffmpeg source, reference recorder --------------------------
start_icecast "$ICE"
start_source_mp3 "$ICE" live.mp3
record "http://127.0.0.1:$ICE/live.mp3" "$T/ref.mp3"; REF=$FC_LAST_PID
sleep 2
fc_alive "$REF" || fc_fail "reference recorder died (see ref.mp3.curl.log)"

# --- framecast ---------------------------------------------------------------------------------
bash "$FC_ROOT/scripts/keygen.sh" "$KEY" 2>/dev/null

# wait_log FILE REGEX TIMEOUT_S: bounded wait for a line in a log.
wait_log() { wait_until "$3" grep -qE -- "$2" "$1"; }

fc_start relayA "$RELAY" --ingest "udp://127.0.0.1:$A_IN" --serve "127.0.0.1:$A_SRV" \
  --key "$KEY" --catchup 30 --node relayA
PID_A=$FC_LAST_PID
fc_start relayB "$RELAY" --ingest "udp://127.0.0.1:$B_IN" --serve "127.0.0.1:$B_SRV" \
  --key "$KEY" --catchup 30 --node relayB
PID_B=$FC_LAST_PID
fc_start relayC "$RELAY" --ingest "tcp://127.0.0.1:$C_IN" --serve "127.0.0.1:$C_SRV" \
  --key "$KEY" --catchup 30 --node relayC
PID_C=$FC_LAST_PID
for r in A B C; do
  pid_var=PID_$r; srv_var=${r}_SRV
  wait_until 5 port_listening "${!srv_var}" || {
    fc_alive "${!pid_var}" || fc_fail "relay$r exited at start (see relay$r.log)"
    fc_fail "relay$r not listening on :${!srv_var} after 5 s"
  }
done
wait_log "$T/relayA.log" "listening udp://127.0.0.1:$A_IN" 5 || fc_fail "relayA has no UDP ingest"
wait_log "$T/relayB.log" "listening udp://127.0.0.1:$B_IN" 5 || fc_fail "relayB has no UDP ingest"
port_listening "$C_IN" || fc_fail "relayC not listening on tcp :$C_IN"

# --- nftables: loss on the UDP paths from the start; the TCP cut chain is filled on a timer ----
rule() {  # rule PERCENT PORT NAME: nft rule text dropping PERCENT% of UDP datagrams to PORT
  case "$1" in
    0) echo "udp dport $2 numgen random mod 10 < 0 counter drop comment \"drop_$3\"" ;;
    100) echo "udp dport $2 counter drop comment \"drop_$3\"" ;;
    *) echo "udp dport $2 numgen random mod 10 < $(( $1 / 10 )) counter drop comment \"drop_$3\"" ;;
  esac
}
nft -f - <<EOF || fc_fail "nft: cannot create table inet $NFT_TABLE"
table inet $NFT_TABLE {
  chain cut {
  }
  chain input {
    type filter hook input priority 0; policy accept;
    udp dport $A_IN counter comment "total_A"
    udp dport $B_IN counter comment "total_B"
    $(rule "$LOSS_A" "$A_IN" A)
    $(rule "$LOSS_B" "$B_IN" B)
    jump cut
  }
}
EOF
CUT_ON=0
cut_on() {
  nft add rule inet "$NFT_TABLE" cut tcp dport "$C_IN" counter drop &&
    nft add rule inet "$NFT_TABLE" cut tcp sport "$C_IN" counter drop || fc_fail "nft: cannot cut tcp :$C_IN"
  CUT_ON=1
}
CUT_DROPS=0   # TCP packets dropped by the cut rules, summed over the cuts
CUT_EACH=()   # the same, per cut window
cut_off() {
  local n
  n=$(nft list chain inet "$NFT_TABLE" cut | sed -n 's/.*counter packets \([0-9]*\).*/\1/p' |
      awk '{s += $1} END {print s + 0}')
  CUT_DROPS=$(( CUT_DROPS + n ))
  CUT_EACH+=("$n")
  nft flush chain inet "$NFT_TABLE" cut || fc_fail "nft: cannot restore tcp :$C_IN"
  CUT_ON=0
}

fc_start edge "$EDGE" --listen "127.0.0.1:$EDGE_PORT" --relay "127.0.0.1:$A_SRV" \
  --relay "127.0.0.1:$B_SRV" --relay "127.0.0.1:$C_SRV" --key "$KEY" --burst "$BURST_S" --node edge \
  --reorder-ms "${FC_REORDER_MS:-7000}"
EDGE_PID=$FC_LAST_PID
wait_until 5 port_listening "$EDGE_PORT" || {
  fc_alive "$EDGE_PID" || fc_fail "edge exited at start (see edge.log)"
  fc_fail "edge not listening on :$EDGE_PORT after 5 s"
}

fc_start shim "$SHIM" --mount live.mp3 --encoder a --pull "http://127.0.0.1:$ICE/live.mp3" \
  --to "udp://127.0.0.1:$A_IN" --to "udp://127.0.0.1:$B_IN" --to "tcp://127.0.0.1:$C_IN" \
  --key "$KEY" --node shim
SHIM_PID=$FC_LAST_PID

edge_json() { curl -s --max-time 2 "http://127.0.0.1:$EDGE_PORT/"; }
edge_lists_mount() { edge_json | grep -q '"live.mp3"'; }
if ! wait_until 15 edge_lists_mount; then
  for p in "$EDGE_PID" "$PID_A" "$PID_B" "$PID_C" "$SHIM_PID"; do
    fc_alive "$p" || fc_fail "${FC_PID_NAME[$p]} died before the edge listed the mount"
  done
  fc_fail "edge GET / did not list live.mp3 within 15 s"
fi

alive_or_fail() {
  local when=$1 p; shift
  for p in "$@"; do
    fc_alive "$p" || fc_fail "${FC_PID_NAME[$p]} (pid $p) died $when (see ${FC_PID_NAME[$p]}.log)"
  done
}

. "$FC_LIB_DIR/timing_lib.sh"   # timed_record, stall_report

# --- listener and the TCP cut timer ----------------------------------------------------------
T0=$(now_ms)
# The player's buffer is what the burst gives it: let the edge hold a whole burst first.
buffer_ready() {
  curl -s --max-time 1 "http://127.0.0.1:$EDGE_PORT/live.mp3/rewind" |
    python3 -c 'import json,sys; sys.exit(json.load(sys.stdin)["seconds"] < float(sys.argv[1]) + 0.5)' \
      "$BURST_S"
}
wait_until 15 buffer_ready || fc_fail "the edge never held a $BURST_S s burst"
timed_record "http://127.0.0.1:$EDGE_PORT/live.mp3" "$T/got.mp3" "$LISTEN_S"; L=$FC_LAST_PID
fc_log "t=0: listener started"
IFS=, read -r -a WINDOWS <<<"$CUT"
for w in "${WINDOWS[@]}"; do     # bounded: one pass over the configured windows
  s=${w%%:*}; e=${w##*:}
  [[ "$s" =~ ^[0-9]+$ && "$e" =~ ^[0-9]+$ && "$e" -gt "$s" ]] || fc_fail "bad FC_CUT window '$w'"
  [ "$s" -ge "$LISTEN_S" ] && break
  fc_netns_sleep_until "$T0" "$s"
  alive_or_fail "before the TCP cut at t=$s" "$EDGE_PID" "$PID_A" "$PID_B" "$PID_C" "$SHIM_PID" "$L"
  cut_on; fc_log "t=$s: tcp :$C_IN cut (both directions)"
  [ "$e" -gt "$LISTEN_S" ] && e=$LISTEN_S
  fc_netns_sleep_until "$T0" "$e"
  cut_off; fc_log "t=$e: tcp :$C_IN restored"
done

wait_exit "$L" $(( LISTEN_S + 5 )) || fc_fail "listener still running after $((LISTEN_S + 5)) s"
[ "$FC_WAIT_RC" = 0 ] || fc_fail "listener failed: exit $FC_WAIT_RC (see got.mp3.listener.log)"
[ "$CUT_ON" = 1 ] && cut_off
alive_or_fail "during the test" "$EDGE_PID" "$PID_A" "$PID_B" "$PID_C" "$SHIM_PID"
# Stop the source first so the counters below all cover the same frames (the shim logs its totals).
fc_stop "$SHIM_PID" "$REF"
sleep 0.5
JSON=$(edge_json) || fc_fail "edge GET / did not answer after the test"
echo "$JSON" >"$T/edge.json"
NFT=$(nft list table inet "$NFT_TABLE")
# The UDP relays' own counts: on SIGTERM each logs its totals.
fc_stop "$PID_A" "$PID_B"
fc_log "listening done after $(( ($(now_ms) - T0) / 1000 )) s; checking"

# --- figures -----------------------------------------------------------------------------------
# nft counters: dropped / total datagrams per UDP path (rules told apart by their comments).
nft_count() { echo "$NFT" | grep -F "comment \"$1\"" | sed -n 's/.*counter packets \([0-9]*\).*/\1/p' | head -n1; }
total_a=$(nft_count total_A); total_b=$(nft_count total_B)
drops_a=$(nft_count drop_A); drops_b=$(nft_count drop_B)
echo "fault_loss_netns: nft: udp datagrams to A=${total_a:-?} dropped ${drops_a:-?}, to B=${total_b:-?} dropped ${drops_b:-?}; tcp packets dropped during the cuts=$CUT_DROPS (per window: ${CUT_EACH[*]:-none})"
grep -h 'stats target=' "$T/shim.log" | sed 's/^.*stats /fault_loss_netns: shim: /' || true

python3 - "$T/edge.json" "$A_SRV" "$B_SRV" "$C_SRV" >"$T/figures.txt" <<'PY' || fc_fail "cannot read edge GET / JSON: $(head -c 300 "$T/edge.json")"
import json, sys
d = json.load(open(sys.argv[1]))
names = {f"127.0.0.1:{sys.argv[2]}": "A", f"127.0.0.1:{sys.argv[3]}": "B", f"127.0.0.1:{sys.argv[4]}": "C"}
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
sed 's/^/fault_loss_netns: edge: /' "$T/figures.txt"
read -r LOST GAPS < <(sed -n 's/^MOUNT lost=\([0-9]*\) gaps=\([0-9]*\).*/\1 \2/p' "$T/figures.txt")
# What the TCP path lost: frames the shim counted as sent to C that C never forwarded to the edge.
tcp_sent=$(grep -h "stats target=tcp://127.0.0.1:$C_IN " "$T/shim.log" | tail -n1 | tr ' ' '\n' |
  sed -n 's/^sent=\([0-9]*\)$/\1/p')
c_frames=$(sed -n 's/^RELAY C up=[A-Za-z]* frames=\([0-9]*\).*/\1/p' "$T/figures.txt")
if [ -n "$tcp_sent" ] && [ -n "$c_frames" ]; then
  echo "fault_loss_netns: tcp path: shim sent $tcp_sent frames to C, C forwarded $c_frames to the edge (lost on the path: $(( tcp_sent - c_frames )))"
fi
grep -h 'link down\|closed frames_in' "$T/relayC.log" | sed 's/^/fault_loss_netns: relayC.log: /' || true
grep -hE 'event=(lost|gap|patched|failover)|lost_frames=' "$T/edge.log" | head -n 10 |
  sed 's/^/fault_loss_netns: edge.log: /' || true

# --- verdict -----------------------------------------------------------------------------------
failed=0
# The faults happened: each UDP path lost its configured share (nft), each UDP relay carried the
# rest of what the shim sent it (edge and relay counters), each TCP cut dropped packets.
shim_sent() {  # shim_sent TARGET: frames the shim counted as sent to TARGET (last stats line)
  grep -h "stats target=$1 " "$T/shim.log" | tail -n1 | tr ' ' '\n' | sed -n 's/^sent=\([0-9]*\)$/\1/p'
}
relay_frames_in() {  # relay_frames_in NAME: frames_in of the relay's last (shutdown) stats line
  grep -h 'relay stats streams=' "$T/relay$1.log" | tail -n1 | sed -n 's/.* frames_in=\([0-9]*\) .*/\1/p'
}
# within_pct GOT WANT_PCT BASE TOL_PCT: GOT / BASE is WANT_PCT% within TOL_PCT points.
within_pct() {
  awk -v g="$1" -v w="$2" -v b="$3" -v t="$4" 'BEGIN{ if (b <= 0) exit 1; d = 100 * g / b - w; exit !(d <= t && d >= -t) }'
}
pct() { awk -v g="$1" -v b="$2" 'BEGIN{ printf "%.1f", (b > 0 ? 100 * g / b : -1) }'; }
FAULTS=""
for r in A B; do
  port_var=${r}_IN; loss_var=LOSS_$r; total_var=total_${r,,}; drops_var=drops_${r,,}
  loss=${!loss_var}; total=${!total_var:-0}; drops=${!drops_var:-0}
  sent=$(shim_sent "udp://127.0.0.1:${!port_var}")
  edge_got=$(sed -n "s/^RELAY $r up=[A-Za-z]* frames=\([0-9]*\).*/\1/p" "$T/figures.txt")
  relay_in=$(relay_frames_in "$r")
  echo "fault_loss_netns: udp path $r: nft dropped $(pct "$drops" "$total")% of $total datagrams (want $loss +- $LOSS_TOL); shim sent ${sent:-?} frames; relay $r carried $(pct "${edge_got:-0}" "${sent:-0}")% by the edge (${edge_got:-?}), $(pct "${relay_in:-0}" "${sent:-0}")% by its own count (${relay_in:-?}) (want $(( 100 - loss )) +- $LOSS_TOL)"
  FAULTS+=" drop_$r=$(pct "$drops" "$total")% carried_$r=$(pct "${edge_got:-0}" "${sent:-0}")%"
  if ! within_pct "$drops" "$loss" "$total" "$LOSS_TOL"; then
    echo "fault_loss_netns: udp path $r: nftables dropped $drops of $total datagrams, not ${loss}% +- $LOSS_TOL"
    failed=1
  fi
  if [ -z "$sent" ] || ! within_pct "$total" 100 "$sent" 5; then
    echo "fault_loss_netns: udp path $r: nftables saw $total datagrams, the shim sent ${sent:-?} frames (want within 5%)"
    failed=1
  fi
  for got in "${edge_got:-0}" "${relay_in:-0}"; do
    if [ -z "$sent" ] || ! within_pct "$got" $(( 100 - loss )) "$sent" "$LOSS_TOL"; then
      echo "fault_loss_netns: udp path $r: relay $r carried $got of ${sent:-?} frames (edge ${edge_got:-?}, relay ${relay_in:-?}), not $(( 100 - loss ))% +- $LOSS_TOL"
      failed=1
      break
    fi
  done
done
i=0
for w in "${WINDOWS[@]}"; do
  [ "${w%%:*}" -ge "$LISTEN_S" ] && break
  if [ "${CUT_EACH[i]:-0}" -le 0 ]; then
    echo "fault_loss_netns: the TCP cut $w dropped no packet"
    failed=1
  fi
  i=$(( i + 1 ))
done

[ -s "$T/got.mp3" ] || fc_fail "listener received nothing"
STALL=$(stall_report "$T/got.mp3.timeline" 16000) || fc_fail "cannot read the listener timeline"
echo "fault_loss_netns: listener: $STALL (128 kbit/s player, the $BURST_S s burst as its buffer)"
read -r MAXGAP TOTALSTALL < <(echo "$STALL" | sed -n 's/^max_arrival_gap_ms=\([0-9]*\) .* total_stall_ms=\([0-9]*\)$/\1 \2/p')
if [ "${TOTALSTALL:-x}" != 0 ]; then
  echo "fault_loss_netns: the listener ran dry: $STALL"
  failed=1
fi
python3 "$FC_LIB_DIR/frametrim.py" --codec mp3 "$T/got.mp3" "$T/got.whole.mp3" >/dev/null
MIN_FRAMES=$(frame_floor "$LISTEN_S" "$BURST_S" 38.281)   # 90% of 35 s plus the burst
if out=$("$FRAMECMP" --codec mp3 --min-frames "$MIN_FRAMES" "$T/ref.mp3" "$T/got.whole.mp3" 2>&1); then
  echo "fault_loss_netns: $out"
else
  echo "fault_loss_netns: $out"
  echo "fault_loss_netns: framecmp failed: listener frames are not a contiguous run of icecast's (or fewer than $MIN_FRAMES)"
  failed=1
fi
NFRAMES=$(echo "$out" | sed -n 's/^framecmp: \(MISMATCH \)\{0,1\}frames=\([0-9]*\).*/\2/p' | head -n1)
if [ "${LOST:-x}" != 0 ] || [ "${GAPS:-x}" != 0 ]; then
  echo "fault_loss_netns: edge counted lost=${LOST:-?} gaps=${GAPS:-?} for live.mp3 (want 0)"
  failed=1
fi
summary="frames=${NFRAMES:-?} lost=${LOST:-?} gaps=${GAPS:-?} max_arrival_gap_ms=${MAXGAP:-?} stall_ms=${TOTALSTALL:-?}$FAULTS tcp_cut=$CUT tcp_cut_drops=${CUT_EACH[*]:-none}"
[ "$failed" -eq 0 ] || fc_fail "$summary"
echo "fault_loss_netns: PASS $summary"
