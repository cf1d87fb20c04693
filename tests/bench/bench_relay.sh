#!/usr/bin/env bash
# bench_relay.sh - `make bench-relay` (issue 9, docs/architecture.md §4): a relay's verified,
# deduplicated frames per CPU-second, fanned out to 2 subscribers, 500 mounts, 1,000,000 frames,
# once with TCP ingest and once with UDP ingest, each against a fresh relay with default options.
# tests/bench/bench_relay.c is the generator and the subscribers; this script starts and stops
# the relay, and adds the relay's own counters (its stats line at SIGTERM) to each line:
#   relay ingest=tcp ... frames_per_cpu_s=N ... result=ok relay_forwarded=N relay_bad=N
# Fails if a subscriber got a frame twice, a bad message, or missed one the kernel did not drop,
# or if the relay forwarded other than what the subscribers got or counted a bad message.
# Environment: FC_BUILD (default <repo>/build), BENCH_RELAY_MOUNTS, BENCH_RELAY_FRAMES,
# BENCH_RELAY_INGEST ("tcp udp").
set -euo pipefail
. "$(dirname "$0")/../integration/lib.sh"
fc_init

RELAY="$FC_BUILD/framecast-relay"
BENCH="$FC_BUILD/bench/bench_relay"
fc_need_bin "$RELAY" "$BENCH"
MOUNTS="${BENCH_RELAY_MOUNTS:-500}"
FRAMES="${BENCH_RELAY_FRAMES:-1000000}"
INGESTS="${BENCH_RELAY_INGEST:-tcp udp}"
KEY="$FC_TMP/mesh.key"
bash "$FC_ROOT/scripts/keygen.sh" "$KEY" 2>/dev/null

# relay_stat LOG KEY: KEY=value from the relay's last "stats streams=" line.
relay_stat() {
  grep 'stats streams=' "$1" | tail -n 1 | sed -n "s/.* $2=\([0-9]*\).*/\1/p"
}

rc=0
for ingest in $INGESTS; do
  in_port=$(free_port)
  serve_port=$(free_port)
  log="$FC_TMP/relay-$ingest.log"
  fc_start "relay-$ingest" "$RELAY" --ingest "$ingest://127.0.0.1:$in_port" \
    --serve "127.0.0.1:$serve_port" --key "$KEY" --node bench-relay
  pid=$FC_LAST_PID
  wait_until 5 grep -q "(serve)" "$log" || fc_fail "relay ($ingest) did not start (see $log)"
  brc=0
  line=$("$BENCH" --key "$KEY" --relay-pid "$pid" --ingest "$ingest:$in_port" \
    --serve "$serve_port" --mounts "$MOUNTS" --frames "$FRAMES") || brc=$?
  fc_stop "$pid"
  [ -n "$line" ] || fc_fail "bench_relay ($ingest) printed nothing (exit $brc)"
  fwd=$(relay_stat "$log" forwarded)
  bad=$(( $(relay_stat "$log" bad_tags) + $(relay_stat "$log" bad_msgs) ))
  got=$(sed -n 's/.* sub0=\([0-9]*\).*/\1/p' <<<"$line")
  echo "$line relay_forwarded=${fwd:-?} relay_bad=$bad"
  [ "$brc" -eq 0 ] || rc=1
  if [ "${fwd:-x}" != "$got" ] || [ "$bad" -ne 0 ]; then
    echo "bench_relay: FAIL ($ingest): relay forwarded ${fwd:-?} frames, subscriber 0 got $got, bad $bad"
    rc=1
  fi
done
exit $rc
