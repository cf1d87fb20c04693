#!/usr/bin/env bash
# Encoder failover and failback, spliced at the aligned point (issue 3).
#
# One ffmpeg pushes one programme (loudness envelope that varies) to icecast2 twice:
# /primary.mp3 (128k) and /backup.mp3 (96k) whose audio runs 400 ms behind (adelay), so PTS
# alignment alone would splice 400 ms off. Shim a (priority 0) pulls /primary.mp3, shim b
# (priority 1) /backup.mp3; each sends over TCP to relay 1 and UDP to relay 2; an edge with both
# relays and --failback-after 6. /primary.mp3 is recorded directly as the reference.
# Once the edge reads the backup's alignment as "correlation" (bounded wait), a listener runs 25 s:
#   t=5 s  kill -9 shim a        -> the edge fails over to b (~1 s later)
#   t=10 s shim a restarts       -> the edge fails back to a (~6 s after that)
# The listener and the reference are decoded to 8 kHz mono and splicemeasure locates every 100 ms
# of the listener in the reference. Where the edge switched is read off the listener's MP3 frames
# (128 vs 96 kbit/s). Passes only if the change of programme offset at the failover and at the
# failback is each at most one MP3 frame (26.1 ms), there is no other jump, ffmpeg decodes the
# listener without an error, and GET / shows failovers=1, failbacks=1.
# Prints: the edge's offset estimate, the measured splice errors, detection and failback times.
#
# Also prints (informational, a WARN above one frame) how many ms around each switch match no
# programme at all: decoding damage, e.g. from MP3 frames that need another stream's bit reservoir.
#
# Env: FC_KEEP=1 keeps the temp dir; FC_SPLICE_MAX_MS (default 26.1: one frame) is the allowed
# splice error (set it to 0.001 to see the test fail on a real, sub-frame error);
# FC_SPLICE_WARMUP=S waits S s more after the first alignment estimate before the listener starts
# (encoders that have run a while); FC_SPLICE_LAME_OPTS (splice_lib.sh) adds encoder options.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/splice_lib.sh"
sp_need

LISTEN_S=25
KILL_AT=5
RESTART_AT=10
MAX_MS=${FC_SPLICE_MAX_MS:-26.1}
T=$FC_TMP

sp_start_upstream anull
record "$SP_ICE_URL/primary.mp3" "$T/ref.mp3"; REF=$FC_LAST_PID
record "$SP_ICE_URL/backup.mp3" "$T/refb.mp3"; REFB=$FC_LAST_PID
sp_start_mesh --failback-after 6
sp_start_shim a 0 primary.mp3; SHIM_A=$FC_LAST_PID
sp_start_shim b 1 backup.mp3; SHIM_B=$FC_LAST_PID
fc_log "ports: icecast=$SP_ICE edge=$SP_EDGE_PORT tmp=$T"

if ! sp_wait_alignment 20; then
  for p in "$SP_EDGE_PID" "$SP_R1" "$SP_R2" "$SHIM_A" "$SHIM_B" "$SP_SRC_PID"; do
    fc_alive "$p" || fc_fail "${FC_PID_NAME[$p]} died while waiting for alignment"
  done
  grep -E 'offset_ms=' "$T/edge.log" | tail -n 5 || true
  fc_fail "backup alignment not 'correlation' after 20 s: $(sp_state)"
fi
if [ "${FC_SPLICE_WARMUP:-0}" != 0 ]; then
  fc_log "warm-up: ${FC_SPLICE_WARMUP}s more before the listener (FC_SPLICE_WARMUP)"
  sleep "$FC_SPLICE_WARMUP"
fi
ST=$(sp_state)
EST_OFF=$(sp_field b.offset_ms "$ST")
echo "failover_splice: alignment=correlation after ${SP_ALIGN_WAIT_S}s: estimated offset_ms=$EST_OFF corr=$(sp_field b.corr "$ST") (expected ~+$SP_DELAY_MS)"

# --- listener and faults -----------------------------------------------------------------------
T0=$(now_ms)
record "$SP_EDGE_URL/$SP_MOUNT" "$T/got.mp3" "$LISTEN_S"; L=$FC_LAST_PID

sleep_until "$T0" "$KILL_AT"
for p in "$SP_EDGE_PID" "$SHIM_A" "$SHIM_B"; do
  fc_alive "$p" || fc_fail "${FC_PID_NAME[$p]} died before the kill"
done
fc_log "t=$KILL_AT s: kill -9 shim a (pid $SHIM_A); before: $(sp_state)"
KILL_MS=$(now_ms)
fc_kill9 "$SHIM_A"

sleep_until "$T0" "$RESTART_AT"
fc_log "t=$RESTART_AT s: restart shim a; state: $(sp_state)"
RESTART_MS=$(now_ms)
sp_start_shim a 0 primary.mp3; SHIM_A=$FC_LAST_PID

wait_exit "$L" $(( LISTEN_S + 5 )) || fc_fail "listener still running after $((LISTEN_S + 5)) s"
[ "$FC_WAIT_RC" = 28 ] || fc_log "listener ended early, curl exit $FC_WAIT_RC (see got.mp3.curl.log)"
ST=$(sp_state)
fc_log "after: $ST"
for p in "$SP_EDGE_PID" "$SHIM_A" "$SHIM_B"; do
  fc_alive "$p" || fc_fail "${FC_PID_NAME[$p]} died during the test"
done
fc_stop "$REF" "$REFB"

# --- verdict -----------------------------------------------------------------------------------
failed=0
bad() { echo "failover_splice: $*"; failed=1; }

FO_LINE=$(grep -m1 'event=failover' "$T/edge.log" || true)
FB_LINE=$(grep -m1 'event=failback' "$T/edge.log" || true)
echo "edge: ${FO_LINE:-no failover logged}"
echo "edge: ${FB_LINE:-no failback logged}"
DETECT_MS="?"; FAILBACK_MS="?"
[ -n "$FO_LINE" ] && DETECT_MS=$(( $(sp_log_ms "$FO_LINE") - KILL_MS ))
[ -n "$FB_LINE" ] && FAILBACK_MS=$(( $(sp_log_ms "$FB_LINE") - RESTART_MS ))

FAILOVERS=$(sp_field failovers "$ST"); FAILBACKS=$(sp_field failbacks "$ST")
[ "$FAILOVERS" = 1 ] || bad "GET / failovers=$FAILOVERS, want 1"
[ "$FAILBACKS" = 1 ] || bad "GET / failbacks=$FAILBACKS, want 1"

[ -s "$T/got.mp3" ] || fc_fail "listener received nothing"
sp_decode "$T/got.mp3" "$T/got.pcm" || fc_fail "cannot decode the listener's audio"
if [ -n "$SP_DECODE_ERR" ]; then
  printf '%s\n' "$SP_DECODE_ERR" | sed 's/^/ffmpeg: /'
  bad "ffmpeg reported errors decoding the listener's audio"
fi
sp_pcm "$T/ref.mp3" "$T/ref.pcm" || fc_fail "cannot decode the reference"

RUNS=$(sp_bitrate_runs "$T/got.whole.mp3")
printf '%s\n' "$RUNS" | sed 's/^/listener: /'
# Event times: where the listener's bitrate changes (128 -> 96 failover, 96 -> 128 failback).
mapfile -t EV < <(printf '%s\n' "$RUNS" | awk 'NR > 1 { sub("start_s=", "", $4); print $4 }')
KBPS=$(printf '%s\n' "$RUNS" | sed -n 's/.*kbps=//p' | tr '\n' ' ')
[ "$KBPS" = "128 96 128 " ] || bad "listener bitrate runs are '$KBPS', want '128 96 128 ' (one failover, one failback)"

sp_selfcheck "$T/ref.pcm" || bad "splicemeasure self-check did not catch a 400 ms skip"

margs=()
for e in "${EV[@]}"; do margs+=(--event "$e"); done
rc=0
"$SP_MEASURE" --skip-ms 200 "$T/ref.pcm" "$T/got.pcm" --max-jump-ms "$MAX_MS" "${margs[@]}" >"$T/measure.txt" 2>&1 || rc=$?
grep -v '^chunk ' "$T/measure.txt" | sed 's/^/measure: /'
SUMMARY=$(grep '^splicemeasure:' "$T/measure.txt" || true)
[ -n "$SUMMARY" ] || fc_fail "splicemeasure failed (exit $rc): $(head -c 300 "$T/measure.txt")"
[ "$rc" = 0 ] || bad "splicemeasure: a jump larger than $MAX_MS ms (exit $rc)"
CHUNKS=$(sp_kv chunks "$SUMMARY"); CONF=$(sp_kv confident "$SUMMARY")
awk -v c="$CONF" -v n="$CHUNKS" 'BEGIN{exit !(c >= 0.9 * n)}' ||
  bad "only $CONF of $CHUNKS chunks located confidently in the reference"

ERR_FO="?"; ERR_FB="?"
i=0
for e in "${EV[@]}"; do
  line=$(grep "^event got=$(printf '%.3f' "$e")s" "$T/measure.txt" | head -n1)
  err=$(sp_kv splice_error_ms "$line"); dev=$(sp_kv max_dev_ms "$line")
  [ $i = 0 ] && ERR_FO=$err || ERR_FB=$err
  sp_abs_le "$err" "$MAX_MS" || bad "splice at got=${e}s: error ${err} ms > $MAX_MS ms"
  sp_abs_le "$dev" "$MAX_MS" || bad "splice at got=${e}s: offset deviates by ${dev} ms nearby (> $MAX_MS ms)"
  i=$((i + 1))
done
# Every offset jump must belong to one of the switches (within 1 s).
while read -r t j; do
  near=0
  for e in "${EV[@]}"; do awk -v a="$t" -v b="$e" 'BEGIN{d=a-b; exit !(d > -1 && d < 1)}' && near=1; done
  [ $near = 1 ] || bad "unexpected jump of $j ms at got=${t}s (no switch there)"
done < <(sed -n 's/^splice at got=\([0-9.]*\)s jump_ms=\(.*\)/\1 \2/p' "$T/measure.txt")

# Informational: audio around each switch that is not the programme at all (bit reservoir).
DMG=()
for e in "${EV[@]}"; do
  d=$(sp_damage "$T/ref.pcm" "$T/got.pcm" "$e"); DMG+=("$d")
  awk -v d="$d" -v f="$SP_FRAME_MS" 'BEGIN{exit !(d > f)}' &&
    echo "failover_splice: WARN ${d} ms around the switch at got=${e}s match no programme (damaged audio)"
done
FIG="estimated_offset_ms=$EST_OFF failover_error_ms=$ERR_FO failback_error_ms=$ERR_FB damaged_ms=${DMG[0]:-?},${DMG[1]:-?} detection_ms=$DETECT_MS failback_after_restart_ms=$FAILBACK_MS failovers=$FAILOVERS failbacks=$FAILBACKS max_jump_ms=$(sp_kv max_jump_ms "$SUMMARY")"
[ "$failed" = 0 ] || fc_fail "$FIG"
echo "failover_splice: PASS $FIG"
