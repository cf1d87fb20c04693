#!/usr/bin/env bash
# Listener fan-out beside icecast2 (issue 9; docs/architecture.md §9.4). One run, one chain:
#   ffmpeg (MP3 128 kbit/s) -> icecast2 -> framecast-shim --pull -> relay -> framecast-edge
# then, one after another, the same C load client (tests/bench/listener-load.c) puts N listeners,
# ramped RAMP per second, on
#   1. icecast2 /live.mp3                      (<clients> above N, burst 64000 B like the edge's)
#   2. the edge /live.mp3                      (live)
#   3. the edge /live.mp3?offset=OFFSET_S      (time-shifted; compared with icecast2 live)
#   4. fanout-floor at the edge's write cadence (the kernel's cost of that write size: the floor)
# Each prints ONE line. Figures, all of the server's processes only (load client excluded):
#   cpu_us_per_listener_s   utime+stime delta (/proc/PID/stat) over WINDOW_S seconds after the
#                           ramp and SETTLE_S more, / (seconds x listeners already getting
#                           audio when the window opened: in_window; served = all that got 200)
#   writes_per_listener_s   write+writev+sendto+sendmsg syscalls (perf stat tracepoints; without
#                           perf: /proc/PID/io syscw, which misses send*) over WRITES_S seconds
#                           right after the CPU window (so counting costs nothing in it)
#   ttfb_ms p50/p99         first response byte, from the load client
#   rss_kib_per_listener    (Pss while all are connected - Pss before) / listeners served
#                           (summed over the server's processes: the edge's workers count)
#   ratio_vs_icecast2       edge / icecast2 (the offset line: / icecast2 live) in this run
# Checked for every listener: status 200, not cut early, steady rate (load client, after 3 s)
# >= 95 % of 16000 B/s. Any miss puts "FAIL" in the line and makes the exit status 1.
# icecast2 2.4.4 listens with a backlog of 5 (not configurable): at 1,000 connects/s some SYNs
# are dropped and retried after 1 s and 3 s, which shows in its TTFB p99 and can leave
# listeners unanswered within their duration (FAIL on the icecast2 line).
#
# usage: bench_fanout.sh [N (default 2000)] [RAMP per s (default 1000)]
# env: FC_BUILD (binaries; tools in $FC_BUILD/bench/, built by `make bench-fanout`), OFFSET_S (12),
#      SETTLE_S (3), WINDOW_S (6), WRITES_S (2), FLOOR_MS (default: the edge's write cadence,
#      from `framecast-edge --help` --write-interval, else EDGE_WAKE_S in edge/edge.h),
#      ONLY (e.g. "icecast2 edge": run only those variants), EDGE_WORKERS (the edge's --workers;
#      default: its own, one per CPU), TLS=1 (the edge also on --listen-tls and a variant
#      "edge-https": the same load over TLS 1.3, compared with icecast2 live), FC_KEEP=1.
set -u
# shellcheck disable=SC2034  # read by lib.sh
FC_NAME=bench_fanout
FC_LOG_TAIL=${FC_LOG_TAIL:-3} # on FAIL the logs' tails follow the lines; keep them short
. "$(dirname "$0")/../integration/lib.sh"
. "$(dirname "$0")/bench_lib.sh"

N=${1:-2000}
RAMP=${2:-1000}
OFFSET_S=${OFFSET_S:-12}
SETTLE_S=${SETTLE_S:-3}
WINDOW_S=${WINDOW_S:-6}
WRITES_S=${WRITES_S:-2}
TLS=${TLS:-0}
ONLY=${ONLY:-icecast2 edge offset floor$([ "$TLS" = 1 ] && echo " https")}
[[ "$N" =~ ^[0-9]+$ ]] && [ "$N" -ge 1 ] && [ "$N" -le 20000 ] || fc_fail "N must be 1..20000"
[[ "$RAMP" =~ ^[0-9]+$ ]] && [ "$RAMP" -ge 1 ] || fc_fail "RAMP must be >= 1 per second"

LT="$BENCH_BIN/listener-load"
FLOOR="$BENCH_BIN/fanout-floor"
fc_need_bin "$LT" "$FLOOR"
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
[ "$(ulimit -n)" -gt $((N + 256)) ] || fc_fail "ulimit -n $(ulimit -n) is too low for $N listeners"
HZ=$(getconf CLK_TCK)
MIN_BPS=$((BENCH_RATE_BPS * 95 / 100))

# The edge's write cadence, for the floor.
floor_ms() {
  local d
  if [ -n "${FLOOR_MS:-}" ]; then echo "$FLOOR_MS"; return; fi
  d=$("$FC_BUILD/framecast-edge" --help 2>&1 | grep -A1 -- '--write-interval' | grep -o 'default [0-9.]*' | head -1)
  if [ -n "$d" ]; then awk -v s="${d#default }" 'BEGIN { printf "%d", s * 1000 }'; return; fi
  d=$(sed -n 's/^#define EDGE_WAKE_S \([0-9.]*\).*/\1/p' "$FC_ROOT/edge/edge.h" 2>/dev/null)
  awk -v s="${d:-0.1}" 'BEGIN { printf "%d", s * 1000 }'
}

# A server is its process and its children (the edge's --workers): CPU and writes are summed over
# all of them; memory is the sum of their proportional set sizes (Pss: a page shared by the
# processes, like the rewind buffer's memfd slabs, counts once in total, not once per process).
tree() { echo "$1"; pgrep -P "$1" || true; }
cpu_ticks() { local p n=0; for p in $(tree "$1"); do n=$((n + $(awk '{print $14 + $15}' "/proc/$p/stat" 2>/dev/null || echo 0))); done; echo "$n"; }
rss_kb() { local p n=0; for p in $(tree "$1"); do n=$((n + $(awk '/^Pss:/ {print $2}' "/proc/$p/smaps_rollup" 2>/dev/null || echo 0))); done; echo "$n"; }
now_ns() { date +%s%N; }

# writes PID SECONDS: write-type syscalls of the whole process (all threads) in SECONDS.
HAVE_PERF=0
perf stat -e syscalls:sys_enter_writev -- true >/dev/null 2>&1 && HAVE_PERF=1
writes() {
  local pid=$1 s=$2 w0 w1
  if [ "$HAVE_PERF" = 1 ]; then
    perf stat -x, -e syscalls:sys_enter_write,syscalls:sys_enter_writev,syscalls:sys_enter_sendto,syscalls:sys_enter_sendmsg \
      -p "$(tree "$pid" | paste -sd,)" -- sleep "$s" 2>&1 >/dev/null | awk -F, '$1 ~ /^[0-9]+$/ { n += $1 } END { print n + 0 }'
  else
    w0=$(for p in $(tree "$pid"); do awk '/^syscw/ {print $2}' "/proc/$p/io"; done | awk '{n += $1} END {print n + 0}'); sleep "$s"
    w1=$(for p in $(tree "$pid"); do awk '/^syscw/ {print $2}' "/proc/$p/io"; done | awk '{n += $1} END {print n + 0}'); echo $((w1 - w0))
  fi
}

# Figures of icecast2 live, for the ratios.
ICE_CPU="" ICE_WR="" ICE_RSS="" ICE_TTFB99=""
FAILED=0

# variant LABEL PID PORT PATH: one load-client run against PID; prints one line.
variant() {
  local label=$1 pid=$2 port=$3 path=$4
  local out="$FC_TMP/lt-${label//[^a-z0-9]/_}.out" csv="$FC_TMP/lt-${label//[^a-z0-9]/_}.csv"
  local ramp_s dur r0 r1 c0 c1 t0 t1 w lt_pid
  ramp_s=$(awk -v n="$N" -v r="$RAMP" 'BEGIN { printf "%.3f", n / r }')
  dur=$(awk -v r="$ramp_s" -v a="$SETTLE_S" -v b="$WINDOW_S" -v c="$WRITES_S" 'BEGIN { printf "%d", r + a + b + c + 1.999 }')
  [ "$dur" -le 40 ] || fc_fail "listener duration $dur s > 40 s (load client bound): lower N, SETTLE_S, WINDOW_S"
  fc_alive "$pid" || fc_fail "$label: server pid $pid is gone"
  r0=$(rss_kb "$pid")
  "$LT" 127.0.0.1 "$port" "$path" "$N" "$dur" "$RAMP" 0 "$csv" >"$out" 2>&1 &
  lt_pid=$!
  sleep "$(awk -v r="$ramp_s" -v a="$SETTLE_S" 'BEGIN { print r + a }')"
  c0=$(cpu_ticks "$pid"); t0=$(now_ns)
  sleep "$WINDOW_S"
  c1=$(cpu_ticks "$pid"); t1=$(now_ns)
  r1=$(rss_kb "$pid")
  w=$(writes "$pid" "$WRITES_S")
  wait "$lt_pid" || fc_fail "$label: load client failed: $(tail -3 "$out")"
  # Listeners served: status 200 and not cut early; of those, how many got >= 95 % of the rate
  # (slow), or got their first audio too late for a steady rate to be measured (late). The CPU
  # divisor is the listeners already getting audio when the window opened, for writes and RSS
  # those getting audio when it closed (listener i starts i/RAMP s after the load client;
  # column 8 is its first body byte after its start).
  local served slow late non200 early minbps inwin atrss ttfb50 ttfb99
  read -r served slow late non200 early minbps inwin atrss < <(awk -F, -v min="$MIN_BPS" -v r="$RAMP" \
      -v w0="$(awk -v r="$ramp_s" -v a="$SETTLE_S" 'BEGIN { print r + a }')" -v win="$WINDOW_S" 'NR > 1 {
      if ($2 != 200) { non200++; next }
      if ($4 == 1) { early++; next }
      served++
      if ($16 == 0) late++; else if ($16 < min) slow++
      if (m == "" || $16 < m) m = $16
      if ($8 >= 0 && $1 / r + $8 / 1000 <= w0) inwin++
      if ($8 >= 0 && $1 / r + $8 / 1000 <= w0 + win) atrss++ }
      END { printf "%d %d %d %d %d %d %d %d\n", served, slow, late, non200, early, m, inwin, atrss }' "$csv")
  ttfb50=$(sed -n 's/.*ttfb_ms p50=\([0-9.-]*\).*/\1/p' "$out")
  ttfb99=$(sed -n 's/.*ttfb_ms p50=[0-9.-]* p90=[0-9.-]* p99=\([0-9.-]*\).*/\1/p' "$out")
  local cpu wr rss verdict=""
  cpu=$(awk -v c=$((c1 - c0)) -v hz="$HZ" -v s=$((t1 - t0)) -v n="$inwin" \
        'BEGIN { if (n > 0) printf "%.1f", c / hz * 1e6 / (s / 1e9 * n); else print "nan" }')
  wr=$(awk -v w="$w" -v s="$WRITES_S" -v n="$atrss" 'BEGIN { if (n > 0) printf "%.2f", w / (s * n); else print "nan" }')
  rss=$(awk -v a="$r0" -v b="$r1" -v n="$atrss" 'BEGIN { if (n > 0) printf "%.2f", (b - a) / n; else print "nan" }')
  if [ "$served" -ne "$N" ] || [ "$slow" -ne 0 ] || [ "$late" -ne 0 ]; then
    verdict="FAIL(got >=95% of the rate: $((served - slow - late))/$N; no 200=$non200 cut=$early slow=$slow late=$late) "
    FAILED=1
  fi
  local ratio=""
  if [ "$label" = icecast2 ]; then
    ICE_CPU=$cpu ICE_WR=$wr ICE_RSS=$rss ICE_TTFB99=$ttfb99
  elif [ -n "$ICE_CPU" ]; then
    ratio=$(awk -v a="$cpu" -v b="$ICE_CPU" -v c="$wr" -v d="$ICE_WR" -v e="$rss" -v f="$ICE_RSS" \
                -v g="$ttfb99" -v h="$ICE_TTFB99" 'function r(x, y) { return y > 0 ? sprintf("%.3f", x / y) : "nan" }
      BEGIN { printf " ratio_vs_icecast2_live: cpu=%s writes=%s rss=%s ttfb_p99=%s", r(a, b), r(c, d), r(e, f), r(g, h) }')
  fi
  local procs
  procs=$(tree "$pid" | wc -l)
  printf 'fanout %-22s %sprocesses=%d N=%d ramp=%d/s served=%d in_window=%d cpu_us_per_listener_s=%s writes_per_listener_s=%s ttfb_ms_p50=%s ttfb_ms_p99=%s rss_kib_per_listener=%s min_Bps=%s window_s=%s%s\n' \
    "$label" "$verdict" "$procs" "$N" "$RAMP" "$served" "$inwin" "$cpu" "$wr" "$ttfb50" "$ttfb99" "$rss" "$minbps" \
    "$(awk -v s=$((t1 - t0)) 'BEGIN { printf "%.1f", s / 1e9 }')" "$ratio"
  sleep 1 # let the previous listeners' sockets close
}

ice=$(free_port)
fc_log "load average $(bench_load); N=$N ramp=$RAMP/s; ulimit -n $(ulimit -n); perf=$HAVE_PERF"
TLS_ARGS=()
if [ "$TLS" = 1 ]; then
  TLS_PORT=$(free_port)
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
    -subj /CN=127.0.0.1 -keyout "$FC_TMP/tls.key" -out "$FC_TMP/tls.pem" 2>/dev/null || fc_fail "openssl req"
  TLS_ARGS=(--listen-tls "127.0.0.1:$TLS_PORT" --tls-cert "$FC_TMP/tls.pem" --tls-key "$FC_TMP/tls.key")
fi
bench_chain "$ice" live.mp3 $((N + 100)) ${EDGE_WORKERS:+--workers "$EDGE_WORKERS"} "${TLS_ARGS[@]}"
sleep 2
FMS=$(floor_ms)

for v in $ONLY; do
  case $v in
    icecast2) variant icecast2 "$BENCH_ICE_PID" "$ice" /live.mp3 ;;
    edge) variant edge "$BENCH_EDGE_PID" "$BENCH_EDGE_PORT" /live.mp3 ;;
    https)
      [ "$TLS" = 1 ] || fc_fail "variant https needs TLS=1"
      LT_TLS=1 variant edge-https "$BENCH_EDGE_PID" "$TLS_PORT" /live.mp3 ;;
    offset)
      variant "edge?offset=$OFFSET_S" "$BENCH_EDGE_PID" "$BENCH_EDGE_PORT" "/live.mp3?offset=$OFFSET_S" ;;
    floor)
      fport=$(free_port)
      fc_start floor "$FLOOR" "$fport" "$FMS" "$BENCH_RATE_BPS" "$BENCH_BURST_B"
      fpid=$FC_LAST_PID
      wait_until 5 port_listening "$fport" || fc_fail "fanout-floor not listening"
      variant "floor@${FMS}ms" "$fpid" "$fport" /live.mp3
      fc_stop "$fpid" ;;
    *) fc_fail "unknown variant $v" ;;
  esac
done
exit "$FAILED"
