#!/usr/bin/env bash
# Listener fan-out beside icecast2 (docs/architecture.md §9.4): N listeners on the same MP3 mount,
# once on icecast2 directly and once on a framecast edge fed from that icecast2 through a shim and
# a relay. Prints each server's CPU time per listener-second (utime+stime from /proc, the listener
# processes excluded), time to first audio byte, and the edge's RSS per listener.
# usage: bench_fanout.sh [LISTENERS (default 1000)] [SECONDS (default 20)]
. "$(dirname "$0")/../integration/lib.sh"
set -u
N=${1:-1000}
SECS=${2:-20}
ulimit -n 65536 2>/dev/null || true
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
rss_kb() { awk '/VmRSS/ {print $2}' "/proc/$1/status"; }
HZ=$(getconf CLK_TCK)

ice=$(free_port); ing=$(free_port); srv=$(free_port); http=$(free_port)
start_icecast "$ice"
sed -i "s|<clients>200</clients>|<clients>$((N + 100))</clients>|" "$FC_TMP/icecast/icecast.xml" || true
fc_stop "$FC_ICE_PID"; start_icecast "$ice"
start_source_mp3 "$ice" live.mp3
bash "$FC_ROOT/scripts/keygen.sh" "$FC_TMP/mesh.key" >/dev/null
fc_start relay "$FC_BUILD/framecast-relay" --ingest "tcp://127.0.0.1:$ing" --serve "127.0.0.1:$srv" --key "$FC_TMP/mesh.key"
fc_start edge "$FC_BUILD/framecast-edge" --listen "127.0.0.1:$http" --relay "127.0.0.1:$srv" --key "$FC_TMP/mesh.key"
edge_pid=$FC_LAST_PID
fc_start shim "$FC_BUILD/framecast-shim" --mount live.mp3 --encoder a --pull "http://127.0.0.1:$ice/live.mp3" \
  --to "tcp://127.0.0.1:$ing" --key "$FC_TMP/mesh.key"
wait_http "http://127.0.0.1:$http/live.mp3" 15 || fc_fail "edge never served the mount"
sleep 3

measure() { # NAME PID URL
  local name=$1 pid=$2 url=$3 c0 c1 r0 r1 out
  c0=$(cpu_ticks "$pid"); r0=$(rss_kb "$pid")
  out=$(python3 "$(dirname "$0")/listeners.py" "$url" "$N" "$SECS")
  c1=$(cpu_ticks "$pid"); r1=$(rss_kb "$pid")
  awk -v n="$N" -v s="$SECS" -v c="$((c1 - c0))" -v hz="$HZ" -v name="$name" -v out="$out" \
      -v dr="$((r1 - r0))" 'BEGIN {
        us = c / hz * 1e6 / (n * s);
        printf "%-9s cpu_us_per_listener_second=%.2f rss_growth_kib_per_listener=%.2f %s\n", name, us, dr / n, out }'
}
echo "fanout: listeners=$N seconds=$SECS (MP3 128 kbit/s, loopback, 2-core machine)"
measure icecast2 "$FC_ICE_PID" "http://127.0.0.1:$ice/live.mp3"
measure edge "$edge_pid" "http://127.0.0.1:$http/live.mp3"
