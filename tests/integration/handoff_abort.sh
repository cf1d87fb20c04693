#!/usr/bin/env bash
# Handoff restart, failure before confirmation (issue 10): a successor that dies after receiving
# everything (FC_TEST_HANDOFF_DIE=1 makes it _exit(7) right before it would confirm) must exit
# non-zero while the old edge keeps every listener: same PID, same listener count, no EOF and no
# gap of 1 s or more at any listener, audio a contiguous byte-identical run of the source. A
# successor refused for another reason (a second one while a handoff runs is answered "busy";
# here: a wrong path) fails cleanly too, and so do bad clients of the control socket (garbage,
# truncated, another version, silent: ctl_garbage.py). Then a real handoff still works.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/handoff_lib.sh"
set -u
fc_need_bin "$FC_BUILD/framecast-shim" "$FC_BUILD/framecast-relay" "$FC_BUILD/framecast-edge" \
  "$FC_BUILD/tools/framecmp"
N=${HANDOFF_N:-20}
SECS=${HANDOFF_SECS:-24}
ho_upstream
fc_start relay "$FC_BUILD/framecast-relay" --ingest "tcp://127.0.0.1:$ing" --serve "127.0.0.1:$srv" \
  --key "$FC_TMP/mesh.key"
edge_args=(--listen "127.0.0.1:$http" --relay "127.0.0.1:$srv" --key "$FC_TMP/mesh.key"
  --workers 2 --hls-segment 2 --write-interval 0.5 --control "$FC_TMP/edge.ctl")
fc_start edge "$FC_BUILD/framecast-edge" "${edge_args[@]}"
edge_pid=$FC_LAST_PID
fc_start shim "$FC_BUILD/framecast-shim" --mount live.mp3 --encoder a \
  --pull "http://127.0.0.1:$ice/live.mp3" --to "tcp://127.0.0.1:$ing" --key "$FC_TMP/mesh.key"
wait_http "http://127.0.0.1:$http/live.mp3" 15 || fc_fail "edge never served /live.mp3"
ho_wait_buffered "$http"
ho_start_clients "$http" "$N" "$SECS"
want=$HO_WANT
listeners() { ho_listeners "$http"; }
count_ok() { [ "$(listeners)" -eq "$want" ]; }

# 0. Bad clients on the control socket (garbage, a truncated record, another version, a short
# HELLO, one silent for 3 s): each refused with a log line, the loop never waiting for one (the
# listeners' 1 s gap bound below: a silent client used to stall it 2 s), every listener kept.
python3 "$FC_LIB_DIR/ctl_garbage.py" "$FC_TMP/edge.ctl" >"$FC_TMP/garbage.txt" 2>&1 ||
  fc_fail "ctl_garbage.py: $(tail -2 "$FC_TMP/garbage.txt")"
for m in "is not a HELLO" "speaks version 999" "sent nothing"; do
  grep -q "$m" "$FC_TMP/edge.log" || fc_fail "no '$m' in the edge's log for a bad control client"
done
fc_alive "$edge_pid" || fc_fail "the edge exited on bad control clients"
wait_until 5 count_ok || fc_fail "after bad control clients: $(listeners) listeners, want $want"
sleep_until "$(now_ms)" 1
# 1. The successor dies before confirming.
FC_TEST_HANDOFF_DIE=1 fc_start edge2 "$FC_BUILD/framecast-edge" "${edge_args[@]}" \
  --takeover "$FC_TMP/edge.ctl"
wait_exit "$FC_LAST_PID" 20 || fc_fail "the dying successor did not exit"
[ "$FC_WAIT_RC" -ne 0 ] || fc_fail "the dying successor exited 0"
died_rc=$FC_WAIT_RC
resumed() { grep -q "handoff failed" "$FC_TMP/edge.log"; }
wait_until 10 resumed || fc_fail "the old edge never logged the failed handoff"
fc_alive "$edge_pid" || fc_fail "the old edge exited"
wait_until 5 count_ok || fc_fail "after the failed handoff: $(listeners) listeners, want $want"
# 2. A takeover of a path nobody listens on fails with a message and a non-zero exit.
fc_start edge3 "$FC_BUILD/framecast-edge" "${edge_args[@]}" --takeover "$FC_TMP/nobody.ctl"
wait_exit "$FC_LAST_PID" 10 || fc_fail "a takeover of nothing did not exit"
[ "$FC_WAIT_RC" -ne 0 ] || fc_fail "a takeover of nothing exited 0"
grep -q "takeover $FC_TMP/nobody.ctl" "$FC_TMP/edge3.log" || fc_fail "no message for a takeover of nothing"
sleep_until "$(now_ms)" 3
# 3. The same edge still hands over for real.
fc_start edge4 "$FC_BUILD/framecast-edge" "${edge_args[@]}" --takeover "$FC_TMP/edge.ctl"
new_pid=$FC_LAST_PID
wait_exit "$edge_pid" 20 || fc_fail "the old edge did not hand over after a failed attempt"
[ "$FC_WAIT_RC" -eq 0 ] || fc_fail "the old edge exited $FC_WAIT_RC"
fc_alive "$new_pid" || fc_fail "edge4 exited"
wait_until 10 count_ok || fc_fail "after the handoff: $(listeners) listeners, want $want"

wait_exit "$HO_CLIENTS_PID" 60 || fc_fail "listener script still running"
[ "$FC_WAIT_RC" -eq 0 ] || fc_fail "listener script failed (see clients.log)"
summary=$(python3 - "$FC_TMP/out/result.json" <<'PY'
import json, sys
res = json.load(open(sys.argv[1]))
bad = [r for r in res if r["error"] or r.get("eof") or (r["kind"] != "hls" and r["max_gap_s"] >= 1.0)
       or (r["kind"] == "hls" and (r["missing"] or r["failed"]))]
gap = max(r["max_gap_s"] for r in res if r["kind"] != "hls")
print("listeners=%d max_gap_s=%.3f bad=%d" % (len(res), gap, len(bad)))
for r in bad[:5]: print(r, file=sys.stderr)
PY
) || fc_fail "listener checks: $summary"
case "$summary" in *" bad=0") ;; *) fc_fail "listener checks: $summary" ;; esac
fails=0
for f in "$FC_TMP"/out/*.mp3; do
  "$FC_BUILD/tools/framecmp" --codec mp3 --min-frames 200 "$FC_TMP/ref.mp3" "$f" >/dev/null ||
    { fails=$((fails + 1)); echo "framecmp failed: $f" >&2; }
done
[ "$fails" -eq 0 ] || fc_fail "$fails listeners' audio is not a contiguous run of the source"
echo "handoff_abort: PASS died_rc=$died_rc old_kept=$want $summary then handed over"
