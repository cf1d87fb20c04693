#!/usr/bin/env bash
# Cost of a handoff restart of the edge (issue 10): an edge with 2 workers holding HOURS of audio
# (a --rewind-dir file, gen_rewind.py) serves N time-shifted listeners (the C load client,
# listener-load, ?offset=1800: real-time paced from the buffer, written once a second); after
# 10 s a successor takes over (--takeover). Measured, one line:
#   handoff N=.. hold_mib=.. pause_ms=..   (the old edge's "handing over" log line to the new
#   one's "listeners adopted": the time no listener is written) old_exit_ms=.. (successor started
#   -> old process gone) pss_old_mib=.. (the old edge's processes, Pss summed) shmem_delta_mib=..
#   (the machine's Shmem, /proc/meminfo, after the handoff minus before: the buffers are memfds,
#   adopted, not copied, so about 0 where a copy would add hold_mib) max_read_gap_ms p99=.. max=..
#   early_close=.. (from the load client: must be 0)
# Exit 1 if a listener was closed early, or the listener count changed.
# usage: bench_handoff.sh [N (default 2000)] [HOURS (default 1)]   env: FC_BUILD, FC_KEEP=1
set -u
# shellcheck disable=SC2034  # read by lib.sh
FC_NAME=bench_handoff
. "$(dirname "$0")/../integration/lib.sh"
N=${1:-2000}
HOURS=${2:-1}
LT="$FC_BUILD/bench/listener-load"
fc_need_bin "$FC_BUILD/framecast-edge" "$LT"
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
[ "$(ulimit -n)" -gt $((N + 256)) ] || fc_fail "ulimit -n $(ulimit -n) is too low for $N listeners"
dir="$FC_TMP/rewind"; mkdir -p "$dir"
python3 "$(dirname "$0")/gen_rewind.py" "$dir/archive.mp3.rewind" "$HOURS" >/dev/null ||
  fc_fail "could not write the rewind file"
hold_mib=$(( $(stat -c %s "$dir/archive.mp3.rewind") / 1048576 ))
bash "$FC_ROOT/scripts/keygen.sh" "$FC_TMP/mesh.key" >/dev/null
port=$(free_port); dead=$(free_port)
args=(--listen "127.0.0.1:$port" --relay "127.0.0.1:$dead" --key "$FC_TMP/mesh.key"
  --rewind-dir "$dir" --rewind-save-every 86400 --workers 2 --control "$FC_TMP/edge.ctl")
fc_start edge "$FC_BUILD/framecast-edge" "${args[@]}"
old=$FC_LAST_PID
wait_until 20 port_listening "$port" || fc_fail "edge not listening"

pss() { local n=0 p v; for p in "$1" $(pgrep -P "$1"); do
  v=$(awk '$1 == "Pss:" {print $2}' "/proc/$p/smaps_rollup" 2>/dev/null); n=$((n + ${v:-0})); done
  echo $((n / 1024)); }
listeners() { curl -s --max-time 5 "http://127.0.0.1:$port/api/v1/mounts/archive.mp3" | python3 -c \
  'import json,sys; print(json.load(sys.stdin).get("listeners", -1))' 2>/dev/null || echo -1; }
count_ok() { [ "$(listeners)" -eq "$N" ]; }
shmem() { awk '$1 == "Shmem:" {print $2}' /proc/meminfo; }

"$LT" 127.0.0.1 "$port" "/archive.mp3?offset=1800" "$N" 40 2000 0 "$FC_TMP/lt.csv" \
  >"$FC_TMP/lt.out" 2>&1 &
lt_pid=$!
wait_until 30 count_ok || fc_fail "the edge counts $(listeners) listeners, want $N"
sleep_until "$(now_ms)" 8
before=$(pss "$old")
shm0=$(shmem)
t0=$(now_ms)
fc_start edge2 "$FC_BUILD/framecast-edge" "${args[@]}" --takeover "$FC_TMP/edge.ctl"
new=$FC_LAST_PID
wait_exit "$old" 30 || fc_fail "the old edge did not hand over"
[ "$FC_WAIT_RC" -eq 0 ] || fc_fail "the old edge exited $FC_WAIT_RC"
old_exit_ms=$(( $(now_ms) - t0 ))
wait_until 10 count_ok || fc_fail "after the handoff: $(listeners) listeners, want $N"
shm1=$(shmem)
wait "$lt_pid"
t_hand=$(sed -n 's/^\([0-9T:.-]*\)Z info edge handoff: successor.*/\1/p' "$FC_TMP/edge.log" | tail -1)
t_adopt=$(sed -n 's/^\([0-9T:.-]*\)Z info edge takeover: listeners adopted.*/\1/p' "$FC_TMP/edge2.log" | tail -1)
pause_ms=$(python3 -c 'import sys, datetime as d
f = lambda s: d.datetime.fromisoformat(s)
print(round((f(sys.argv[2]) - f(sys.argv[1])).total_seconds() * 1000, 1))' "$t_hand" "$t_adopt")
gaps=$(sed -n 's/.*max_gap_ms p50=[0-9.]* \(p99=[0-9.]* max=[0-9.]*\).*/\1/p' "$FC_TMP/lt.out")
early=$(sed -n 's/.*early_close=\([0-9]*\).*/\1/p' "$FC_TMP/lt.out")
echo "handoff N=$N hold_mib=$hold_mib pause_ms=$pause_ms old_exit_ms=$old_exit_ms" \
  "pss_old_mib=$before shmem_delta_mib=$(( (shm1 - shm0) / 1024 )) max_read_gap_ms $gaps" \
  "early_close=$early (write interval 1 s: a gap of ~1000 ms is the cadence)"
[ "${early:-1}" -eq 0 ] || { cat "$FC_TMP/lt.out" >&2; exit 1; }
