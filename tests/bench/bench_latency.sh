#!/usr/bin/env bash
# Latency (issue 9): ffmpeg (MP3 128 kbit/s) -> icecast2 -> framecast-shim --pull -> relay -> edge,
# loopback, no loss. tests/bench/latency-probe.c, in one process with one clock, times every MP3
# frame (matched by content hash) at
#   - a listener on the icecast2 mount the shim pulls: it reads each frame when the shim does, so
#     this stands for "shim read";
#   - the edge's rewind buffer: the memfd behind it (edge/core/rewind.h), opened through
#     /proc/EDGE_PID/fd and polled every 1 ms; the edge is not instrumented;
#   - a listener on the edge asking ?burst=0 (an edge that ignores the parameter sends its
#     --burst first; frames are only compared after SKIP_S, once both bursts are over).
# Prints ONE line: shim-read -> edge-buffer latency (buffer - icecast2 listener) p50/p90/max,
# listener-received latency (edge listener - icecast2 listener) p50/p90/max, and what the
# listener write cadence adds (edge listener - buffer).
# usage: bench_latency.sh [SECONDS (default 20)]
# env: FC_BUILD (binaries; $FC_BUILD/bench/latency-probe, built by `make bench-latency`), SKIP_S (3),
#      FC_KEEP=1.
set -u
# shellcheck disable=SC2034  # read by lib.sh
FC_NAME=bench_latency
FC_LOG_TAIL=${FC_LOG_TAIL:-3}
. "$(dirname "$0")/../integration/lib.sh"
. "$(dirname "$0")/bench_lib.sh"

SECS=${1:-20}
SKIP_S=${SKIP_S:-3}
PROBE="$BENCH_BIN/latency-probe"
fc_need_bin "$PROBE"

ice=$(free_port)
fc_log "load average $(bench_load)"
bench_chain "$ice" live.mp3 100
sleep 3
out=$("$PROBE" "$ice" /live.mp3 "$BENCH_EDGE_PORT" "/live.mp3?burst=0" "$BENCH_EDGE_PID" "$SECS" "$SKIP_S" 2>"$FC_TMP/probe.err")
rc=$?
verdict=""
# An edge that honours ?burst=0 sends under 1 s of audio at connect (16000 B); one that ignores it
# sends its --burst (64000 B).
first=$(sed -n 's/.*edge_listener_first_500ms_B=\([0-9]*\).*/\1/p' <<<"$out")
burst0=ignored; [ -n "$first" ] && [ "$first" -lt 32000 ] && burst0=honoured
out="$out burst0=$burst0"
[ "$rc" -eq 0 ] || verdict="FAIL(probe rc=$rc: $(tr '\n' ' ' <"$FC_TMP/probe.err")) "
echo "latency ${verdict}end-to-end over ${SECS}s (shim read = icecast2 listener read; buffer = edge rewind memfd polled 1 ms; edge listener ?burst=0): $out"
[ "$rc" -eq 0 ]
