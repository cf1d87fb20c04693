#!/usr/bin/env bash
# Soak (issue 8): `make soak SOAK_S=1800` (CI: SOAK_S=120). Usage: soak.sh [SECONDS].
#
#   icecast2 <- ffmpeg (MP3 128 kbit/s, real time)
#     -> shim a (priority 0, FLAPS) and shim b (priority 1), mount soak.mp3, each to
#        tcp://relay1, udp://relay2, tcp://relay3
#     -> relay1 (never restarted), relay2 and relay3 (kill -9 and restarted every cycle)
#     -> edge (--rewind 20) subscribed to the three relays
#     -> `churn`: 500 listeners coming and going (lifetimes 3-15 s; plain, ICY, ?offset=10, and
#        5 % small requests: /, .m3u8, status-json.xsl, /rewind)
#
# The run is cut into cycles of CYCLE_S = 40 s, each the same:
#   +3 s kill -9 relay2, +5 s restart it; +8 s SIGTERM shim a (the edge fails over to b), +14 s
#   restart it (a new session: once aligned with b and healthy for --failback-after 10 s, the
#   edge fails back to it, ~22 s later); +23 s kill -9 relay3, +25 s restart it. Shim a is stopped
#   only while the edge plays it: if the failback has not happened by +8 s, the cycle waits for
#   it (at most FAILBACK_WAIT_S = 60 s more, else the soak fails), and so does the end.
# After the warm-up (max(2, cycles/6) cycles) and after the last cycle, at the same point of a
# cycle (so as many stale sessions are still held both times), the listeners are paused (churn
# closes every connection; wait until the edge's GET / says listeners=0 and every relay link is
# up) and every long-lived process (edge, relay1, shim b) is sampled: VmRSS and RssShmem
# (/proc/PID/status) and open fds (/proc/PID/fd).
#
# Fails (one summary line, exit 1) unless:
#   - every sampled process's private RSS (VmRSS - RssShmem) at the end has grown by at most 5 %
#     of the warm-up sample (at least RSS_SLACK_KB; less memory is no leak: the edge's heap is
#     trimmed now and then, -5 % was seen in a 30 min run), its fds are within ±5 % (at least
#     ±FD_SLACK), and its shared memory (the edge's memfd rewind slabs) is at most two 4 MiB
#     slabs + 1 MiB;
#   - the edge's GET / shows lost=0 (and so gaps=0: runs of lost frames) for soak.mp3;
#   - the faults happened: every cycle stopped and restarted shim a and killed and restarted
#     relay2 and relay3, the edge re-linked to each restarted relay (connects >= cycles + 1),
#     failed over to b once per cycle and back to a once per cycle;
#   - the listeners were served: no non-200 answer, none cut by the server, no connect or read
#     error, >= LISTENERS * (seconds of load) / 15 audio answers, >= 16000 B/s on average (the
#     stream's rate; the bursts come on top);
#   - edge, relay1, shim b, icecast2 and ffmpeg were alive throughout.
# Every cycle prints one line of figures under load (RSS, fds, listeners) for the record.
#
# Env: FC_BUILD (binaries, default build/; the churn client is $FC_BUILD/soak/churn, built by
# `make soak`), FC_KEEP=1, SOAK_LISTENERS (default 500), RSS_SLACK_KB (default 256), FD_SLACK
# (default 3).
set -euo pipefail
# shellcheck disable=SC2034  # read by lib.sh
FC_NAME=soak
. "$(dirname "$0")/../integration/lib.sh"

SOAK_S=${1:-${SOAK_S:-1800}}
LISTENERS=${SOAK_LISTENERS:-500}
RSS_SLACK_KB=${RSS_SLACK_KB:-256}
FD_SLACK=${FD_SLACK:-3}
CYCLE_S=40
[[ "$SOAK_S" =~ ^[0-9]+$ ]] && [ "$SOAK_S" -ge 100 ] || fc_fail "SOAK_S must be >= 100 s, got '$SOAK_S'"
CYCLES=$(( SOAK_S / CYCLE_S ))
WARM=$(( CYCLES / 6 )); [ "$WARM" -lt 2 ] && WARM=2
[ "$CYCLES" -gt "$WARM" ] || fc_fail "SOAK_S=$SOAK_S leaves no cycle after the $WARM warm-up cycles"

SHIM="$FC_BUILD/framecast-shim"
RELAY="$FC_BUILD/framecast-relay"
EDGE="$FC_BUILD/framecast-edge"
CHURN="$FC_BUILD/soak/churn"
fc_need_bin "$SHIM" "$RELAY" "$EDGE" "$CHURN"
for t in icecast2 ffmpeg curl python3 ss; do
  command -v "$t" >/dev/null || fc_fail "missing tool $t (scripts/install-deps.sh)"
done
[ "$(ulimit -n)" -ge $(( LISTENERS * 2 + 256 )) ] || ulimit -n $(( LISTENERS * 2 + 256 )) ||
  fc_fail "cannot raise the fd limit to $(( LISTENERS * 2 + 256 ))"

T=$FC_TMP
KEY="$T/mesh.key"
ICE=$(free_port)
declare -A IN SRV PID
for r in 1 2 3; do IN[$r]=$(free_port); SRV[$r]=$(free_port); done
EDGE_PORT=$(free_port)
fc_log "duration=${SOAK_S}s cycles=$CYCLES warm-up=$WARM cycles listeners=$LISTENERS tmp=$T"

start_icecast "$ICE"
start_source_mp3 "$ICE" live.mp3
SOURCE_PID=$FC_LAST_PID
bash "$FC_ROOT/scripts/keygen.sh" "$KEY" 2>/dev/null

start_relay() {   # start_relay N: (re)start relay N on its ports, wait until it listens
  local n=$1
  fc_start "relay$n" "$RELAY" --ingest "tcp://127.0.0.1:${IN[$n]}" --ingest "udp://127.0.0.1:${IN[$n]}" \
    --serve "127.0.0.1:${SRV[$n]}" --key "$KEY" --catchup 5 --node "relay$n"
  PID[relay$n]=$FC_LAST_PID
  wait_until 5 port_listening "${SRV[$n]}" && wait_until 5 port_listening "${IN[$n]}" && return 0
  fc_alive "${PID[relay$n]}" || fc_fail "relay$n exited at start (see relay$n.log)"
  fc_fail "relay$n not listening on :${IN[$n]} and :${SRV[$n]} after 5 s"
}
start_shim() {    # start_shim ENCODER PRIORITY
  fc_start "shim-$1" "$SHIM" --mount soak.mp3 --encoder "$1" --priority "$2" \
    --pull "http://127.0.0.1:$ICE/live.mp3" --to "tcp://127.0.0.1:${IN[1]}" \
    --to "udp://127.0.0.1:${IN[2]}" --to "tcp://127.0.0.1:${IN[3]}" --key "$KEY" --node "shim-$1"
  PID[shim-$1]=$FC_LAST_PID
}
for r in 1 2 3; do start_relay "$r"; done
fc_start edge "$EDGE" --listen "127.0.0.1:$EDGE_PORT" --relay "127.0.0.1:${SRV[1]}" \
  --relay "127.0.0.1:${SRV[2]}" --relay "127.0.0.1:${SRV[3]}" --key "$KEY" --rewind 20 --node edge
PID[edge]=$FC_LAST_PID
wait_until 5 port_listening "$EDGE_PORT" || fc_fail "edge not listening on :$EDGE_PORT after 5 s"
start_shim a 0
start_shim b 1

edge_json() { curl -s --max-time 3 "http://127.0.0.1:$EDGE_PORT/"; }
# ejq PYTHON_EXPR: evaluate an expression over the edge's GET / (d) and its soak.mp3 mount (m).
ejq() {
  edge_json | python3 -c '
import json, sys
d = json.load(sys.stdin)
m = ([x for x in d["mounts"] if x["mount"] == "soak.mp3"] or [None])[0]
r = eval(sys.argv[1])
print(r if not isinstance(r, bool) else int(r))' "$1"
}
true_json() { [ "$(ejq "$1" 2>/dev/null)" = 1 ]; }
# Enough audio for every listener mode: ?offset=10 plus the 4 s burst.
true_json_wait() { wait_until "$1" true_json "$2"; }
true_json_wait 30 'm is not None and m["buffer_s"] >= 15' ||
  fc_fail "the edge did not hold 15 s of soak.mp3 within 30 s: $(edge_json | head -c 400)"

alive_or_fail() {
  local when=$1 p; shift
  for p in "$@"; do
    fc_alive "$p" || fc_fail "${FC_PID_NAME[$p]} (pid $p) died $when (see ${FC_PID_NAME[$p]}.log)"
  done
}
LONG_LIVED=(edge relay1 shim-b)
# The edge's worker processes (--workers, one per CPU by default) hold the listeners: each is
# long-lived too, sampled like the others, and must not die or be restarted during the run.
while read -r wn wp; do
  PID[$wn]=$wp; FC_PID_NAME[$wp]=$wn; LONG_LIVED+=("$wn")
done < <(edge_json | python3 -c 'import json,sys; [print("edge-w%d" % w["worker"], w["pid"]) for w in json.load(sys.stdin).get("workers", [])]')
long_pids() { local n; for n in "${LONG_LIVED[@]}"; do echo "${PID[$n]}"; done; echo "$FC_ICE_PID $SOURCE_PID"; }

fc_start churn "$CHURN" 127.0.0.1 "$EDGE_PORT" soak.mp3 "$LISTENERS" 3 15 "$$"
CHURN_PID=$FC_LAST_PID
true_json_wait 20 "d[\"listeners\"] >= $LISTENERS * 8 // 10" ||
  fc_fail "fewer than 80 % of $LISTENERS listeners connected after 20 s: $(ejq 'd["listeners"]' 2>&1)"

# status_kb PID FIELD: a /proc/PID/status figure in kB.
status_kb() { sed -n "s/^$2:[[:space:]]*\([0-9]*\) kB/\1/p" "/proc/$1/status"; }
rss_kb() { status_kb "$1" VmRSS; }
# private_kb PID: VmRSS without shared memory (RssShmem). The edge's rewind buffer lives in memfd
# slabs of 4 MiB, filled at the stream's rate and dropped a whole slab at a time: a 0-4 MiB
# sawtooth by design, bounded separately (two slabs + 1 MiB) rather than hidden in the 5 %.
private_kb() { echo $(( $(status_kb "$1" VmRSS) - $(status_kb "$1" RssShmem) )); }
nfds() { find "/proc/$1/fd" -mindepth 1 -maxdepth 1 2>/dev/null | wc -l; }
# sample TAG: "name private_kB fds vmrss_kB shmem_kB" per long-lived process into
# $T/sample-TAG.txt.
sample() {
  local n p
  : >"$T/sample-$1.txt"
  for n in "${LONG_LIVED[@]}"; do
    p=${PID[$n]}
    echo "$n $(private_kb "$p") $(nfds "$p") $(rss_kb "$p") $(status_kb "$p" RssShmem)" >>"$T/sample-$1.txt"
  done
}
# quiet_sample TAG: pause the listeners, wait for the edge to have none and every relay link up,
# sample, resume the listeners (unless TAG is "end").
quiet_sample() {
  kill -USR1 "$CHURN_PID"
  # (d["listeners"] counts every HTTP connection, this GET / included)
  true_json_wait 15 'd["listeners"] == 1 and m["listeners"] == 0 and all(r["up"] for r in d["relays"])' ||
    fc_fail "$1 sample: the edge still had listeners or a relay link down 15 s after the pause: $(ejq '(d["listeners"], m["listeners"], [r["up"] for r in d["relays"]])' 2>&1)"
  sleep 1
  sample "$1"
  [ "$1" = end ] || kill -USR2 "$CHURN_PID"
}

# wait_primary WHEN: bounded wait until the edge plays shim a (priority 0).
wait_primary() {
  true_json_wait "$FAILBACK_WAIT_S" 'm["active"] == "a"' ||
    fc_fail "the edge did not play the primary (a) $1: active=$(ejq 'm["active"]' 2>&1) ($FAILBACK_WAIT_S s more than the cycle allows; see edge.log)"
}
FAILBACK_WAIT_S=60

# --- the cycles --------------------------------------------------------------------------------
FLAPS=0; KILLS=0; SLOW_FB=0; MAX_FB_WAIT=0
T_START=$(now_ms)
for (( c = 1; c <= CYCLES; c++ )); do
  C0=$(now_ms)
  # shellcheck disable=SC2046
  alive_or_fail "before cycle $c" $(long_pids) "${PID[shim-a]}" "${PID[relay2]}" "${PID[relay3]}" "$CHURN_PID"
  sleep_until "$C0" 3;  fc_kill9 "${PID[relay2]}"; KILLS=$((KILLS + 1))
  sleep_until "$C0" 5;  start_relay 2
  sleep_until "$C0" 8
  # The primary is stopped only once the edge plays it again (failback of the last cycle, or the
  # start); a slow failback stretches this cycle (the rest of it keeps its spacing from here).
  t_wait=$(now_ms); wait_primary "before stopping it in cycle $c"
  waited=$(( $(now_ms) - t_wait ))
  C0=$(( C0 + waited ))
  if [ "$waited" -gt 500 ]; then
    SLOW_FB=$((SLOW_FB + 1)); [ "$waited" -gt "$MAX_FB_WAIT" ] && MAX_FB_WAIT=$waited
    fc_log "cycle $c: the failback to a came ${waited} ms after +8 s"
  fi
  fc_stop "${PID[shim-a]}"
  sleep_until "$C0" 14; start_shim a 0; FLAPS=$((FLAPS + 1))
  sleep_until "$C0" 23; fc_kill9 "${PID[relay3]}"; KILLS=$((KILLS + 1))
  sleep_until "$C0" 25; start_relay 3
  sleep_until "$C0" "$CYCLE_S"
  line="cycle $c/$CYCLES t=$(( ($(now_ms) - T_START) / 1000 ))s listeners=$(ejq 'd["listeners"]' 2>/dev/null || echo ?)"
  for n in "${LONG_LIVED[@]}"; do
    line+=" $n=$(rss_kb "${PID[$n]}")kB(private $(private_kb "${PID[$n]}"))/$(nfds "${PID[$n]}")fds"
  done
  echo "soak: $line"
  if [ "$c" = "$WARM" ]; then quiet_sample warm; fc_log "warm-up sample: $(tr '\n' ';' <"$T/sample-warm.txt")"; fi
done
# shellcheck disable=SC2046
alive_or_fail "at the end" $(long_pids) "$CHURN_PID"
wait_primary "at the end (failback of the last cycle)"
quiet_sample end
edge_json >"$T/edge-end.json" || fc_fail "the edge's GET / did not answer at the end"
DURATION=$(( ($(now_ms) - T_START) / 1000 ))
fc_stop "$CHURN_PID"
CHURN_LINE=$(grep '^churn: ' "$T/churn.log" | tail -n1)
fc_log "churn: ${CHURN_LINE#churn: }"

# --- verdict -------------------------------------------------------------------------------------
failed=0
bad() { echo "soak: $*"; failed=1; }
flat=""
while read -r n rss0 fd0 vm0 _; do
  read -r _ rss1 fd1 vm1 shm1 < <(grep "^$n " "$T/sample-end.txt")
  d_rss=$(( rss1 - rss0 )); d_fd=$(( fd1 - fd0 ))
  lim_rss=$(( rss0 * 5 / 100 )); [ "$lim_rss" -lt "$RSS_SLACK_KB" ] && lim_rss=$RSS_SLACK_KB
  lim_fd=$(( fd0 * 5 / 100 )); [ "$lim_fd" -lt "$FD_SLACK" ] && lim_fd=$FD_SLACK
  [ "$d_rss" -le "$lim_rss" ] || bad "$n: private RSS ${rss0} kB -> ${rss1} kB (+${d_rss} kB; limit +${lim_rss} kB)"
  [ "${d_fd#-}" -le "$lim_fd" ] || bad "$n: fds ${fd0} -> ${fd1} (${d_fd}; limit ±${lim_fd})"
  # Shared memory (only the edge's rewind slabs): at most the two 4 MiB slabs that 20 s of audio
  # can straddle, plus 1 MiB.
  [ "$shm1" -le $(( 9 * 1024 )) ] || bad "$n: ${shm1} kB of shared memory at the end (want <= 9 MiB: two rewind slabs)"
  flat+=" $n private_rss=${rss0}->${rss1}kB (VmRSS ${vm0}->${vm1}) fds=${fd0}->${fd1}"
done <"$T/sample-warm.txt"

read -r LOST GAPS FAILOVERS FAILBACKS C2 C3 < <(python3 - "$T/edge-end.json" "${SRV[2]}" "${SRV[3]}" <<'PY' || echo "? ? ? ? ? ?"
import json, sys
d = json.load(open(sys.argv[1]))
m = [x for x in d["mounts"] if x["mount"] == "soak.mp3"][0]
rel = {r["relay"]: r for r in d["relays"]}
print(m["lost"], m["gaps"], m.get("failovers", -1), m.get("failbacks", -1),
      rel["127.0.0.1:" + sys.argv[2]]["connects"], rel["127.0.0.1:" + sys.argv[3]]["connects"])
PY
)
[ "$LOST" = 0 ] && [ "$GAPS" = 0 ] || bad "the edge counts lost=$LOST gaps=$GAPS for soak.mp3 (want 0)"
[ "$FLAPS" = "$CYCLES" ] && [ "$KILLS" = $(( 2 * CYCLES )) ] || bad "faults: flaps=$FLAPS relay_kills=$KILLS for $CYCLES cycles"
[ "${C2:-0}" -ge $(( CYCLES + 1 )) ] 2>/dev/null && [ "${C3:-0}" -ge $(( CYCLES + 1 )) ] 2>/dev/null ||
  bad "the edge linked to relay2 $C2 times and to relay3 $C3 times (want >= $(( CYCLES + 1 )) each: every restart)"
[ "$FAILOVERS" = "$CYCLES" ] && [ "$FAILBACKS" = "$CYCLES" ] ||
  bad "the edge failed over $FAILOVERS times and back $FAILBACKS times in $CYCLES cycles (want one each per cycle)"
cf() { sed -n "s/.* $1=\([0-9.]*\).*/\1/p" <<<" ${CHURN_LINE#churn: }"; }
AUDIO=$(cf audio); AVG=$(cf avg_Bps)
MIN_AUDIO=$(( LISTENERS * (DURATION - 2 * 5) / 15 ))
for k in non200 cut connect_err io_err; do
  [ "$(cf "$k")" = 0 ] || bad "listeners: $k=$(cf "$k") (want 0): $CHURN_LINE"
done
[ "${AUDIO:-0}" -ge "$MIN_AUDIO" ] || bad "listeners: $AUDIO audio answers, want >= $MIN_AUDIO"
[ "${AVG%.*}" -ge 16000 ] 2>/dev/null || bad "listeners: $AVG B/s on average, want >= 16000 (128 kbit/s)"

summary="duration=${DURATION}s cycles=$CYCLES flaps=$FLAPS relay_kills=$KILLS failovers=$FAILOVERS failbacks=$FAILBACKS late_failbacks=$SLOW_FB(max +${MAX_FB_WAIT}ms) lost=$LOST gaps=$GAPS listeners=$LISTENERS audio_answers=$AUDIO avg_Bps=$AVG$flat"
[ "$failed" -eq 0 ] || fc_fail "$summary"
echo "soak: PASS $summary"
