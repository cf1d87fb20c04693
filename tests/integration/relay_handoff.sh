#!/usr/bin/env bash
# Handoff restart of framecast-relay (issue 10; docs/architecture.md §4.7). A shim plays a real
# MP3 file in real time to relay 1 over TCP and to relay 2 over UDP and multicast (239.1.1.1 on
# lo, in a network namespace of its own: netns.sh); an edge subscribes to both;
# a raw and an ICY listener play from the edge for 20 s, and a deliberately slow subscriber
# (slow_sub.py: 4 KiB receive buffer) reads relay 1 directly, so relay 1 always has unsent
# messages queued for it, one of them partly written, when it hands over. Meanwhile:
#   t=4 s   relay 1 is handed over (`--takeover`), with half a message from the slow subscriber
#           read and not yet parsed (the other half is sent after the handoff);
#   t=8 s   relay 2 is handed over, by scripts/framecast-handoff (systemd's ExecReload=);
#   t=11 s  a takeover of relay 1 with FC_TEST_HANDOFF_DIE=1: the new process dies before READY;
#   t=14 s  relay 1 is handed over again (it still serves, its control socket too).
# Passes only if:
#   - every old relay exited 0 after a handoff, each new one serves (alive, "READY sent" in its
#     log), the failed takeover exited 7 and the relay it targeted kept serving (alive, the edge
#     counted frames from it after the failure);
#   - the edge never saw a relay link go down: for both relays up, connects=1, disconnects=0,
#     and no frame of the mount lost (GET /);
#   - the relays' own counters carried over and kept counting (frames_received_total in
#     /metrics, whose socket is handed over too, grows across every handoff), and the new relay 2
#     reads both its UDP sockets (each frame arrives twice: its duplicates count grows);
#   - both listeners' audio (ICY blocks removed) is byte-identical to a contiguous run of the
#     file's frames (framecmp), at least 90 % of what they were owed, decodes without error, and
#     no read waited more than 1 s (the edge writes as audio arrives: --write-interval 0);
#   - the slow subscriber saw every frame of relay 1 once, in order, with a valid tag, and its
#     connection was never closed: the send queue, its partly written message and the unread
#     input were handed over exactly; relay 1's handoff log says it handed over queued messages
#     and unread bytes (so this test did exercise them);
#   - the catch-up window came through two handoffs: a subscriber of the last relay 1 gets it
#     from the same first seq as the one that subscribed to the first relay 1, and all of it. In the namespace the TCP send buffer is
#     capped at 64 KiB (net.ipv4.tcp_wmem): with the default 4 MiB of autotuning the kernel, not
#     the relay, would hold everything the slow subscriber has not read.
#
# Env: FC_KEEP=1 keeps the temp dir; FC_BUILD=dir picks the binaries.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/timing_lib.sh"
. "$(dirname "$0")/netns.sh"
fc_netns_enter "$@"
# ---- from here on we are inside the namespace -------------------------------------------------
sleep_until() { fc_netns_sleep_until "$@"; }

SHIM="$FC_BUILD/framecast-shim"
RELAY="$FC_BUILD/framecast-relay"
EDGE="$FC_BUILD/framecast-edge"
FRAMECMP="$FC_BUILD/tools/framecmp"
fc_need_bin "$SHIM" "$RELAY" "$EDGE" "$FRAMECMP"
for t in ffmpeg curl python3 ss ip sysctl; do
  command -v "$t" >/dev/null || fc_fail "missing tool $t (scripts/install-deps.sh)"
done

LISTEN_S=20
BURST_S=2
MP3_FPS=38.281
MIN_FRAMES=$(frame_floor "$LISTEN_S" "$BURST_S" "$MP3_FPS")
MAX_GAP_MS=1000
T=$FC_TMP
KEY="$T/mesh.key"
R1_IN=$(free_port); R1_SRV=$(free_port); R1_MET=$(free_port)
R2_IN=$(free_port); R2_SRV=$(free_port); R2_MET=$(free_port); R2_MC=$(free_port)
GROUP=239.1.1.1
ip link set lo multicast on || fc_fail "cannot set MULTICAST on lo"
ip route add 239.1.1.0/24 dev lo src 127.0.0.1 || fc_fail "cannot add the multicast route on lo"
sysctl -q -w net.ipv4.tcp_wmem="4096 16384 65536" || fc_fail "cannot cap net.ipv4.tcp_wmem"
EDGE_PORT=$(free_port)
C1="$T/relay1.sock"; C2="$T/relay2.sock"
fc_log "ports: relay1 in:$R1_IN serve:$R1_SRV relay2 in:$R2_IN serve:$R2_SRV edge:$EDGE_PORT tmp=$T"

# A real MP3 file, longer than the run (the shim loops it; a wrap would not be contiguous), every
# frame different (framecmp needs unambiguous frames): the test signal of lib.sh.
ffmpeg -hide_banner -nostdin -loglevel error -f lavfi -i "$FC_SIG_MP3" -t 60 \
  -c:a libmp3lame -b:a 128k -ar 44100 -ac 2 -id3v2_version 0 -write_xing 0 -f mp3 "$T/src.mp3" ||
  fc_fail "ffmpeg could not write the source file"
bash "$FC_ROOT/scripts/keygen.sh" "$KEY" 2>/dev/null

R1_ARGS=(--ingest "tcp://127.0.0.1:$R1_IN" --serve "127.0.0.1:$R1_SRV" --metrics "127.0.0.1:$R1_MET"
         --control "$C1" --key "$KEY")
R2_ARGS=(--ingest "udp://127.0.0.1:$R2_IN" --ingest "udp://$GROUP:$R2_MC" --serve "127.0.0.1:$R2_SRV" --metrics "127.0.0.1:$R2_MET"
         --control "$C2" --key "$KEY")
fc_start relay1 "$RELAY" "${R1_ARGS[@]}"; R1=$FC_LAST_PID
fc_start relay2 "$RELAY" "${R2_ARGS[@]}"; R2=$FC_LAST_PID
for p in "$R1_SRV" "$R2_SRV" "$R1_IN"; do
  wait_until 5 port_listening "$p" || fc_fail "a relay is not listening on :$p after 5 s"
done
wait_until 5 test -S "$C1" || fc_fail "relay 1 has no control socket $C1"
fc_start edge "$EDGE" --listen "127.0.0.1:$EDGE_PORT" --write-interval 0 --burst "$BURST_S" \
  --relay "127.0.0.1:$R1_SRV" --relay "127.0.0.1:$R2_SRV" --key "$KEY"
EDGE_PID=$FC_LAST_PID
fc_start shim "$SHIM" --mount live.mp3 --encoder a --file "$T/src.mp3" \
  --to "tcp://127.0.0.1:$R1_IN" --to "udp://127.0.0.1:$R2_IN" --to "udp://$GROUP:$R2_MC" --key "$KEY"
SHIM_PID=$FC_LAST_PID
R1_FIRST_MS=$(now_ms)   # relay 1 holds its first frames from about now (an upper bound)
# Bad clients of relay 1's control socket (garbage, truncated, another version, a short HELLO,
# one silent for 3 s) while it serves: each refused with a log line, checked below.
fc_start ctl_garbage python3 "$FC_LIB_DIR/ctl_garbage.py" "$C1"; GARBAGE=$FC_LAST_PID
wait_http "http://127.0.0.1:$EDGE_PORT/live.mp3" 15 || fc_fail "the edge never served /live.mp3"

# edge_relay PORT FIELD: a counter of the edge's link to the relay serving on PORT (GET /).
edge_relay() {
  curl -s --max-time 2 "http://127.0.0.1:$EDGE_PORT/" | python3 -c '
import json, sys
d = json.load(sys.stdin)
v = [r for r in d["relays"] if r["relay"] == sys.argv[1]][0][sys.argv[2]]
print(int(v) if isinstance(v, bool) else v)' "127.0.0.1:$1" "$2" 2>/dev/null
}
# relay_metric PORT NAME: framecast_relay_NAME from GET /metrics on the relay's --metrics PORT.
relay_metric() {
  curl -s --max-time 2 "http://127.0.0.1:$1/metrics" |
    sed -n "s/^framecast_relay_$2 \([0-9]*\)\$/\1/p"
}
relay_frames_in() { relay_metric "$1" frames_received_total; }
relay_dups_over() { local v; v=$(relay_metric "$1" frames_duplicate_total); [ "${v:-0}" -gt "$2" ]; }
# edge_relay_frames_over PORT N: true once the edge counted more than N frames from the relay.
edge_relay_frames_over() { local v; v=$(edge_relay "$1" frames); [ "${v:-0}" -gt "$2" ]; }
relay_frames_over() { local v; v=$(relay_frames_in "$1"); [ "${v:-0}" -gt "$2" ]; }

# An ICY listener: audio without the blocks to FILE, reads timed to FILE.timeline (as
# timed_listen.py does, for stall_report).
cat >"$T/icy_listen.py" <<'PY'
import socket, sys, time
port, secs, out = int(sys.argv[1]), float(sys.argv[2]), sys.argv[3]
s = socket.create_connection(("127.0.0.1", port), timeout=5)
s.sendall(b"GET /live.mp3 HTTP/1.0\r\nHost: x\r\nIcy-MetaData: 1\r\n\r\n")
t0 = time.monotonic(); end = t0 + secs
buf = b""
while b"\r\n\r\n" not in buf:
    c = s.recv(4096)
    if not c: sys.exit("closed in the response head")
    buf += c
head, data = buf.split(b"\r\n\r\n", 1)
metaint = [int(l.split(b":", 1)[1]) for l in head.split(b"\r\n") if l.lower().startswith(b"icy-metaint:")]
if not metaint: sys.exit("no icy-metaint")
metaint, left = metaint[0], metaint[0]
with open(out, "wb") as audio, open(out + ".timeline", "w", buffering=1) as tl:
    tl.write("start %.3f\n" % (t0 * 1000))
    while True:
        while data:
            if left > 0:
                take = min(left, len(data)); audio.write(data[:take]); data = data[take:]; left -= take
                continue
            n = data[0] * 16
            if len(data) < 1 + n: break
            data = data[1 + n:]; left = metaint
        rest = end - time.monotonic()
        if rest <= 0: break
        s.settimeout(rest)
        try:
            c = s.recv(65536)
        except socket.timeout:
            break
        if not c:
            tl.write("end %d closed\n" % (secs * 1000)); sys.exit("server closed the stream")
        tl.write("%d %d\n" % (int((time.monotonic() - t0) * 1000), len(c)))
        data += c
    tl.write("end %d\n" % int((time.monotonic() - t0) * 1000))
PY

# --- listeners ------------------------------------------------------------------------------
mkdir -p "$T/slow"
fc_start slow_sub python3 "$FC_LIB_DIR/slow_sub.py" "127.0.0.1:$R1_SRV" "$KEY" $(( LISTEN_S + 2 )) "$T/slow"
SLOW=$FC_LAST_PID
T0=$(now_ms)
timed_record "http://127.0.0.1:$EDGE_PORT/live.mp3" "$T/raw.mp3" "$LISTEN_S"; L_RAW=$FC_LAST_PID
fc_start icy_listener python3 "$T/icy_listen.py" "$EDGE_PORT" "$LISTEN_S" "$T/icy.mp3"; L_ICY=$FC_LAST_PID

alive_or_fail() {
  local when=$1 p; shift
  for p in "$@"; do
    fc_alive "$p" || fc_fail "${FC_PID_NAME[$p]} (pid $p) died $when (see ${FC_PID_NAME[$p]}.log)"
  done
}

# handoff NAME OLD_PID METRICS_PORT ARGS...: start NAME with ARGS plus --takeover, wait for the
# old relay to exit 0 and the new one to say it serves; NEW_PID is left in HO_PID.
handoff() {
  local name=$1 old=$2 met=$3; shift 3
  local before; before=$(relay_frames_in "$met")
  fc_start "$name" "$RELAY" "$@"
  HO_PID=$FC_LAST_PID
  wait_exit "$old" 12 || fc_fail "$name: the old relay (pid $old) still runs 12 s after --takeover"
  [ "$FC_WAIT_RC" = 0 ] || fc_fail "$name: the old relay exited $FC_WAIT_RC, not 0"
  fc_alive "$HO_PID" || fc_fail "$name: the new relay died after the handoff (see $name.log)"
  grep -q 'takeover: READY sent' "$T/$name.log" || fc_fail "$name: no 'READY sent' in its log"
  # Counters carried over and counting: more than before the handoff, within 5 s.
  wait_until 5 relay_frames_over "$met" "${before:-0}" ||
    fc_fail "$name: frames_received_total did not grow past ${before:-?} after the handoff (now $(relay_frames_in "$met"))"
  fc_log "$name: took over from pid $old (frames_in before: $before)"
}

sleep_until "$T0" 4
alive_or_fail "before the first handoff" "$EDGE_PID" "$R1" "$R2" "$SHIM_PID" "$SLOW"
touch "$T/slow/split1"
wait_until 5 test -e "$T/slow/split1.ack" || fc_fail "the slow subscriber did not send half a message"
# Relay 1 has read the half message when nothing waits in its sockets' receive queues.
relay1_read_all() { ! ss -Htn state established "( sport = :$R1_SRV )" | awk '$1 != 0' | grep -q .; }
wait_until 5 relay1_read_all || fc_fail "relay 1 did not read what its subscribers sent"
wait_exit "$GARBAGE" 10 || fc_fail "ctl_garbage.py still running"
[ "$FC_WAIT_RC" = 0 ] || fc_fail "ctl_garbage.py failed (see ctl_garbage.log)"
for m in "is not a HELLO" "version 999" "sent nothing"; do
  grep -q "$m" "$T/relay1.log" || fc_fail "no '$m' in relay 1's log for a bad control client"
done
handoff relay1b "$R1" "$R1_MET" "${R1_ARGS[@]}" --takeover "$C1"; R1B=$HO_PID
touch "$T/slow/split2"
HANDED=$(grep 'handoff: pid .* took over' "$T/relay1.log" | tail -n1)
QUEUED=$(sed -n 's/.* queued=\([0-9]*\) .*/\1/p' <<<"$HANDED")
UNREAD=$(sed -n 's/.* unread=\([0-9]*\) .*/\1/p' <<<"$HANDED")
# Informational: whether the head message was partly written depends on where the kernel cut the
# last write (usually it is).
PARTIAL=$(sed -n 's/.* partial=\([0-9]*\) .*/\1/p' <<<"$HANDED")
fc_log "relay 1 handed over: $HANDED"

sleep_until "$T0" 8
# Relay 2 through scripts/framecast-handoff (what systemd's ExecReload= runs): it starts the new
# relay in a session of its own, waits for the old one to exit and prints the new PID.
dups=$(relay_metric "$R2_MET" frames_duplicate_total)
before=$(relay_frames_in "$R2_MET")
echo "=== $(date +%T.%N | cut -c1-12) start: framecast-handoff --old-pid $R2 $C2 $RELAY ${R2_ARGS[*]}" >>"$T/relay2b.log"
rc=0
sh "$FC_ROOT/scripts/framecast-handoff" --old-pid "$R2" "$C2" "$RELAY" "${R2_ARGS[@]}" \
  </dev/null >"$T/relay2b.newpid" 2>>"$T/relay2b.log" || rc=$?
R2B=$(cat "$T/relay2b.newpid" 2>/dev/null || true)
[ -n "$R2B" ] && fc_track "$R2B" relay2b
[ "$rc" = 0 ] || fc_fail "framecast-handoff for relay 2 exited $rc (see relay2b.log)"
wait_exit "$R2" 5 || fc_fail "relay2b: the old relay 2 still runs after framecast-handoff said done"
[ "$FC_WAIT_RC" = 0 ] || fc_fail "relay2b: the old relay exited $FC_WAIT_RC, not 0"
fc_alive "$R2B" || fc_fail "relay2b: the new relay (pid $R2B) is not running"
grep -q 'takeover: READY sent' "$T/relay2b.log" || fc_fail "relay2b: no 'READY sent' in its log"
wait_until 5 relay_frames_over "$R2_MET" "${before:-0}" ||
  fc_fail "relay2b: frames_received_total did not grow past ${before:-?} after the handoff"
fc_log "relay2b: took over from pid $R2 (frames_in before: $before)"
# Both of its UDP sockets (unicast, multicast) are read by the new relay 2: copies keep arriving.
wait_until 5 relay_dups_over "$R2_MET" $(( ${dups:-0} + 40 )) ||
  fc_fail "relay2b: the second copy of each frame stopped arriving (duplicates ${dups:-?} -> $(relay_metric "$R2_MET" frames_duplicate_total)): a UDP socket not taken over?"

sleep_until "$T0" 11
before=$(edge_relay "$R1_SRV" frames)
FC_TEST_HANDOFF_DIE=1 fc_start relay1-die "$RELAY" "${R1_ARGS[@]}" --takeover "$C1"
DIE=$FC_LAST_PID
wait_exit "$DIE" 12 || fc_fail "the takeover with FC_TEST_HANDOFF_DIE=1 did not exit"
[ "$FC_WAIT_RC" = 7 ] || fc_fail "the takeover with FC_TEST_HANDOFF_DIE=1 exited $FC_WAIT_RC, not 7"
alive_or_fail "after a failed takeover" "$R1B"
grep -q 'did not confirm' "$T/relay1b.log" || fc_fail "relay 1 did not log the failed takeover"
wait_until 5 edge_relay_frames_over "$R1_SRV" $(( ${before:-0} + 40 )) ||
  fc_fail "relay 1 stopped sending frames to the edge after the failed takeover (${before:-?} -> $(edge_relay "$R1_SRV" frames))"

sleep_until "$T0" 14
handoff relay1c "$R1B" "$R1_MET" "${R1_ARGS[@]}" --takeover "$C1"; R1C=$HO_PID

# A late subscriber of relay 1 (now the third process): the window, from the same first frame as
# the slow subscriber got from the first relay 1 (the run is shorter than --catchup), then live.
mkdir -p "$T/late"
LATE_WANT=$(awk -v ms=$(( $(now_ms) - R1_FIRST_MS )) -v r="$MP3_FPS" 'BEGIN{printf "%d", ms / 1000 * r * 0.9}')
SLOW_SUB_RATE=2000000 fc_start late_sub python3 "$FC_LIB_DIR/slow_sub.py" "127.0.0.1:$R1_SRV" "$KEY" 3 "$T/late"
LATE=$FC_LAST_PID

for p in "$L_RAW" "$L_ICY"; do
  wait_exit "$p" $(( LISTEN_S + 5 )) || fc_fail "listener ${FC_PID_NAME[$p]} still running"
  [ "$FC_WAIT_RC" = 0 ] || fc_fail "listener ${FC_PID_NAME[$p]} failed, exit $FC_WAIT_RC: $(tail -n1 "$T/${FC_PID_NAME[$p]}.log")"
done
wait_exit "$SLOW" 10 || fc_fail "the slow subscriber still runs"
SLOW_RC=$FC_WAIT_RC
wait_exit "$LATE" 10 || fc_fail "the late subscriber still runs"
LATE_RC=$FC_WAIT_RC
alive_or_fail "at the end" "$EDGE_PID" "$R1C" "$R2B" "$SHIM_PID"

# --- verdict ------------------------------------------------------------------------------------
failed=0
say() { echo "relay_handoff: $*"; }
for port in "$R1_SRV" "$R2_SRV"; do
  up=$(edge_relay "$port" up); conn=$(edge_relay "$port" connects); disc=$(edge_relay "$port" disconnects)
  say "edge link to :$port up=$up connects=$conn disconnects=$disc"
  [ "$up" = 1 ] && [ "$conn" = 1 ] && [ "$disc" = 0 ] || { say "the edge's link to :$port went down"; failed=1; }
done
LOST=$(curl -s --max-time 2 "http://127.0.0.1:$EDGE_PORT/" | python3 -c '
import json, sys
print(sum(m.get("lost", 0) for m in json.load(sys.stdin)["mounts"]))' 2>/dev/null)
[ "${LOST:-x}" = 0 ] || { say "the edge lost ${LOST:-?} frames of the mount"; failed=1; }

SLOW_REPORT=$(cat "$T/slow/report" 2>/dev/null || echo none)
say "slow subscriber: $SLOW_REPORT (exit $SLOW_RC); relay 1 handed over queued=${QUEUED:-?} unread=${UNREAD:-?}"
SLOW_FRAMES=$(sed -n 's/^frames=\([0-9]*\) .*/\1/p' <<<"$SLOW_REPORT")
if [ "$SLOW_RC" != 0 ] || [ "${SLOW_FRAMES:-0}" -lt 300 ]; then
  say "the slow subscriber of relay 1 saw a gap, a repeat, a bad tag or a closed connection"; failed=1
fi
LATE_REPORT=$(cat "$T/late/report" 2>/dev/null || echo none)
LATE_FRAMES=$(sed -n 's/^frames=\([0-9]*\) .*/\1/p' <<<"$LATE_REPORT")
LATE_FIRST=$(sed -n 's/.* first=\([0-9-]*\).*/\1/p' <<<"$LATE_REPORT")
SLOW_FIRST=$(sed -n 's/.* first=\([0-9-]*\).*/\1/p' <<<"$SLOW_REPORT")
say "late subscriber of the third relay 1: $LATE_REPORT (exit $LATE_RC; want first=$SLOW_FIRST, frames >= $LATE_WANT)"
if [ "$LATE_RC" != 0 ] || [ "${LATE_FIRST:-x}" != "${SLOW_FIRST:-y}" ] || [ "${LATE_FRAMES:-0}" -lt "$LATE_WANT" ]; then
  say "the catch-up window did not come through the handoffs whole"; failed=1
fi
if [ "${QUEUED:-0}" -lt 1 ] || [ "${UNREAD:-0}" -lt 1 ]; then
  say "relay 1 had no queued messages or no unread input to hand over: the test did not exercise them"
  failed=1
fi

declare -A NF=() GAP=()
for l in raw icy; do
  got="$T/$l.mp3"
  st=$(stall_report "$got.timeline" 16000) || { say "$l: no timeline"; failed=1; continue; }
  GAP[$l]=$(stall_field "$st" max_arrival_gap_ms)
  say "$l listener: $st"
  [ "${GAP[$l]:-99999}" -lt "$MAX_GAP_MS" ] || { say "$l: no audio for ${GAP[$l]} ms (limit $MAX_GAP_MS)"; failed=1; }
  python3 "$FC_LIB_DIR/frametrim.py" --codec mp3 "$got" "$got.whole" >/dev/null
  if out=$("$FRAMECMP" --codec mp3 --min-frames "$MIN_FRAMES" "$T/src.mp3" "$got.whole" 2>&1); then
    say "$l: $out"
    NF[$l]=$(sed -n 's/.*framecmp: frames=\([0-9]*\).*/\1/p' <<<"$out")
  else
    say "$l: $out"; say "$l: not a contiguous run of the file's frames (or fewer than $MIN_FRAMES)"; failed=1
  fi
  dec=$(ffmpeg -hide_banner -nostdin -v error -f mp3 -i "$got.whole" -f null - 2>&1 | head -n 5) || true
  [ -z "$dec" ] || { say "$l: ffmpeg: $dec"; failed=1; }
done

summary="handoffs=3 failed_takeover_rc=7 raw_frames=${NF[raw]:-?} icy_frames=${NF[icy]:-?} max_gap_ms=raw:${GAP[raw]:-?},icy:${GAP[icy]:-?} slow_sub_frames=${SLOW_FRAMES:-?} late_sub_frames=${LATE_FRAMES:-?} queued=${QUEUED:-?} partial=${PARTIAL:-?} unread=${UNREAD:-?} edge_lost=${LOST:-?}"
[ "$failed" -eq 0 ] || fc_fail "$summary"
echo "relay_handoff: PASS $summary"
