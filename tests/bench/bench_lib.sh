# shellcheck shell=bash
# shellcheck disable=SC2034  # BENCH_* and FC_* are set here for the scripts that source this file
# Shared by bench_fanout.sh and bench_latency.sh (source it after tests/integration/lib.sh):
#   bench_icecast PORT CLIENTS     icecast2 whose limits are written BEFORE it starts
#   bench_chain ICE_PORT MOUNT     ffmpeg -> icecast2 -> shim --pull -> relay -> edge; sets
#                                  BENCH_ICE_PID BENCH_EDGE_PID BENCH_EDGE_PORT BENCH_KEY
# Tools come from $FC_BUILD/bench/ (built by `make bench-fanout` / `make bench-latency`).

BENCH_BIN="$FC_BUILD/bench"
BENCH_RATE_BPS=16000     # 128 kbit/s MP3
BENCH_BURST_B=64000      # the edge's default --burst 4 at 16000 B/s: icecast2 gets the same

# bench_icecast PORT CLIENTS: lib.sh's start_icecast with <clients> CLIENTS and <burst-size> the
# edge's, written into icecast.xml before icecast2 reads it.
bench_icecast() {
  FC_ICE_CLIENTS=$2 FC_ICE_BURST=$BENCH_BURST_B start_icecast "$1"
  BENCH_ICE_PID=$FC_ICE_PID
}

# bench_chain ICE_PORT MOUNT [CLIENTS] [EDGE_ARGS...]: icecast2 with an MP3 128 kbit/s source on
# MOUNT, and a framecast edge fed from that mount: shim --pull -> relay -> edge.
bench_chain() {
  local ice=$1 mount=$2 clients=${3:-1000}; shift 3 || shift $#
  local ing srv
  ing=$(free_port); srv=$(free_port); BENCH_EDGE_PORT=$(free_port)
  BENCH_KEY="$FC_TMP/mesh.key"
  fc_need_bin "$FC_BUILD/framecast-shim" "$FC_BUILD/framecast-relay" "$FC_BUILD/framecast-edge"
  bench_icecast "$ice" "$clients"
  start_source_mp3 "$ice" "$mount"
  bash "$FC_ROOT/scripts/keygen.sh" "$BENCH_KEY" >/dev/null
  fc_start relay "$FC_BUILD/framecast-relay" --ingest "tcp://127.0.0.1:$ing" \
    --serve "127.0.0.1:$srv" --key "$BENCH_KEY"
  fc_start edge "$FC_BUILD/framecast-edge" --listen "127.0.0.1:$BENCH_EDGE_PORT" \
    --relay "127.0.0.1:$srv" --key "$BENCH_KEY" "$@"
  BENCH_EDGE_PID=$FC_LAST_PID
  fc_start shim "$FC_BUILD/framecast-shim" --mount "$mount" --encoder a \
    --pull "http://127.0.0.1:$ice/$mount" --to "tcp://127.0.0.1:$ing" --key "$BENCH_KEY"
  wait_http "http://127.0.0.1:$BENCH_EDGE_PORT/$mount" 15 || fc_fail "edge never served /$mount"
}

bench_load() { awk '{print $1}' /proc/loadavg 2>/dev/null; }
