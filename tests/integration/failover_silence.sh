#!/usr/bin/env bash
# Silence failover (issue 3): the primary encoder keeps sending, but digital silence.
#
# Same setup as failover_splice.sh (one ffmpeg -> /primary.mp3 128k and /backup.mp3 96k 400 ms
# behind; shim a priority 0, shim b priority 1; TCP to relay 1, UDP to relay 2; one edge), except
# that the primary output goes digitally silent from programme time t=SIL_T s on (ffmpeg
# volume=0 with enable='gte(t,SIL_T)', primary only) and the edge runs with --silence-failover 3.
# A listener runs from before the silence until 10 s after it began. Passes only if
#   - the edge fails over to b (failovers=1, failbacks=0, listener bitrate 128 -> 96 kbit/s) and
#     the dead air the listener hears (its silent stretch, up to the switch) is at most
#     3 s + FC_SILENCE_MARGIN (default 1.5 s), and not less than 3 s - 0.3 s;
#   - the listener's audio after the switch is the programme: at least 90% of its 100 ms chunks
#     are located in a direct recording of /backup.mp3 with correlation >= 0.7, none silent;
#   - ffmpeg decodes the listener's audio without an error.
#   - the splice error across the silence, measured against the programme (the offset of the
#     listener's audio in the backup's recording after the switch vs before the silence), is at
#     most one MP3 frame (FC_SPLICE_MAX_MS, default 26.2 ms).
# Before the listener starts, the test waits on the edge's own state: the backup's alignment reads
# 'correlation' (the edge trusts an offset only once two successive estimates agree), bounded by
# the time left before the silence; a set-up that is not aligned by then is reported as a slow
# set-up, with the edge's state.
# Also prints the edge's detection time (silence start at the source -> failover log line; the
# source->shim latency is included).
#
# Env: FC_KEEP=1 keeps the temp dir; FC_SILENCE_MARGIN (s, default 1.5); FC_SPLICE_MAX_MS.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/splice_lib.sh"
sp_need

SIL_T=30                    # programme second the primary goes silent (alignment needs ~8 s of
                            # history and two agreeing estimates 2 s apart: ample time before it)
SIL_FAILOVER=3
MARGIN=${FC_SILENCE_MARGIN:-1.5}
MAX_MS=${FC_SPLICE_MAX_MS:-26.2}
END_AFTER=10                # listener stops this long after the silence began
T=$FC_TMP

sp_start_upstream "volume=volume=0:enable='gte(t,$SIL_T)'"
SIL_WALL_MS=$(( SP_SRC_T0 + SIL_T * 1000 ))
record "$SP_ICE_URL/primary.mp3" "$T/ref.mp3"; REF=$FC_LAST_PID
record "$SP_ICE_URL/backup.mp3" "$T/refb.mp3"; REFB=$FC_LAST_PID
sp_start_mesh --silence-failover "$SIL_FAILOVER" --failback-after 6
sp_start_shim a 0 primary.mp3; SHIM_A=$FC_LAST_PID
sp_start_shim b 1 backup.mp3; SHIM_B=$FC_LAST_PID
fc_log "ports: icecast=$SP_ICE edge=$SP_EDGE_PORT tmp=$T"

# The listener must start at least 5 s before the silence.
budget=$(( (SIL_WALL_MS - 5000 - $(now_ms)) / 1000 ))
[ "$budget" -ge 1 ] || budget=1
if ! sp_wait_alignment "$budget"; then
  for p in "$SP_EDGE_PID" "$SP_R1" "$SP_R2" "$SHIM_A" "$SHIM_B" "$SP_SRC_PID"; do
    fc_alive "$p" || fc_fail "${FC_PID_NAME[$p]} died while waiting for alignment"
  done
  fc_fail "slow set-up: backup alignment not 'correlation' (two agreeing estimates) within ${budget}s, 5 s before the silence: $(sp_state)"
fi
ST=$(sp_state)
EST_OFF=$(sp_field b.offset_ms "$ST")
echo "failover_silence: alignment=correlation after ${SP_ALIGN_WAIT_S}s: estimated offset_ms=$EST_OFF corr=$(sp_field b.corr "$ST")"

T0=$(now_ms)
LISTEN_S=$(( (SIL_WALL_MS + END_AFTER * 1000 - T0 + 999) / 1000 ))
record "$SP_EDGE_URL/$SP_MOUNT" "$T/got.mp3" "$LISTEN_S"; L=$FC_LAST_PID
fc_log "listener for ${LISTEN_S}s; primary silent from $(( SIL_WALL_MS - T0 )) ms after its start"

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
bad() { echo "failover_silence: $*"; failed=1; }

FO_LINE=$(grep -m1 'event=failover' "$T/edge.log" || true)
echo "edge: ${FO_LINE:-no failover logged}"
grep -m3 'event=failback' "$T/edge.log" | sed 's/^/edge: /' || true
DETECT_MS="?"
[ -n "$FO_LINE" ] && DETECT_MS=$(( $(sp_log_ms "$FO_LINE") - SIL_WALL_MS ))

FAILOVERS=$(sp_field failovers "$ST"); FAILBACKS=$(sp_field failbacks "$ST")
[ "$FAILOVERS" = 1 ] || bad "GET / failovers=$FAILOVERS, want 1"
[ "$FAILBACKS" = 0 ] || bad "GET / failbacks=$FAILBACKS, want 0 (the primary stays silent)"

[ -s "$T/got.mp3" ] || fc_fail "listener received nothing"
sp_decode "$T/got.mp3" "$T/got.pcm" || fc_fail "cannot decode the listener's audio"
if [ -n "$SP_DECODE_ERR" ]; then
  printf '%s\n' "$SP_DECODE_ERR" | sed 's/^/ffmpeg: /'
  bad "ffmpeg reported errors decoding the listener's audio"
fi
sp_pcm "$T/refb.mp3" "$T/refb.pcm" || fc_fail "cannot decode the backup reference"

RUNS=$(sp_bitrate_runs "$T/got.whole.mp3")
printf '%s\n' "$RUNS" | sed 's/^/listener: /'
KBPS=$(printf '%s\n' "$RUNS" | sed -n 's/.*kbps=//p' | tr '\n' ' ')
SW=$(printf '%s\n' "$RUNS" | awk 'NR == 2 { sub("start_s=", "", $4); print $4 }')
SIL=$(sp_silence_runs "$T/got.pcm" 0.5)
printf '%s\n' "$SIL" | sed '/^$/d; s/^/listener: /'
SIL_START=$(printf '%s\n' "$SIL" | sed -n '1s/.*start_s=\([0-9.]*\).*/\1/p')
SIL_END=$(printf '%s\n' "$SIL" | sed -n '1s/.*end_s=\([0-9.]*\).*/\1/p')
DEAD_AIR="?"
if [ "$KBPS" != "128 96 " ]; then
  bad "listener bitrate runs are '$KBPS', want '128 96 ' (one failover to the backup)"
elif [ -z "$SIL_START" ]; then
  bad "no silent stretch in the listener's audio (did the primary go silent before it started?)"
else
  DEAD_AIR=$(awk -v a="$SIL_START" -v b="$SW" 'BEGIN{printf "%.3f", b - a}')
  awk -v d="$DEAD_AIR" -v s="$SIL_FAILOVER" -v m="$MARGIN" 'BEGIN{exit !(d <= s + m)}' ||
    bad "dead air heard ${DEAD_AIR}s (silence at got=${SIL_START}s, switch at got=${SW}s) > ${SIL_FAILOVER}s + ${MARGIN}s"
  awk -v d="$DEAD_AIR" -v s="$SIL_FAILOVER" 'BEGIN{exit !(d >= s - 0.3)}' ||
    bad "switched after only ${DEAD_AIR}s of dead air (< --silence-failover ${SIL_FAILOVER}s)"
  awk -v a="$SIL_END" -v b="$SW" 'BEGIN{d=a-b; exit !(d > -0.2 && d < 0.2)}' ||
    bad "the listener's silence ends at got=${SIL_END}s, not at the switch (got=${SW}s)"
fi

# The audio after the switch must be the programme, located in the backup's own recording.
rc=0
margs=()
[ -n "$SW" ] && margs=(--event "$SW" --event-window 8)
"$SP_MEASURE" --skip-ms 200 "$T/refb.pcm" "$T/got.pcm" "${margs[@]}" >"$T/measure.txt" 2>&1 || rc=$?
grep -v '^chunk ' "$T/measure.txt" | sed 's/^/measure: /'
grep -q '^splicemeasure:' "$T/measure.txt" || fc_fail "splicemeasure failed (exit $rc): $(head -c 300 "$T/measure.txt")"
AFTER="?"; SPLICE_ERR="?"; DMG="?"
if [ -n "$SW" ]; then
  read -r n_after conf_after silent_after < <(awk -v sw="$SW" '
    /^chunk / { t = $2; sub("got=", "", t); sub("s$", "", t); if (t + 0 < sw + 0.2) next
                n++; c = $4; sub("corr=", "", c); if (c + 0 >= 0.7) ok++; if ($0 ~ / silent/) si++ }
    END { printf "%d %d %d\n", n, ok, si }' "$T/measure.txt")
  AFTER="$conf_after/$n_after"
  [ "$n_after" -ge 40 ] || bad "only $n_after chunks of audio after the switch"
  awk -v c="$conf_after" -v n="$n_after" 'BEGIN{exit !(n > 0 && c >= 0.9 * n)}' ||
    bad "after the switch only $conf_after of $n_after chunks are the programme (corr >= 0.7)"
  [ "$silent_after" = 0 ] || bad "$silent_after silent chunks after the switch"
  ev=$(grep '^event ' "$T/measure.txt" | head -n1)
  SPLICE_ERR=$(sp_kv splice_error_ms "$ev")
  sp_abs_le "$SPLICE_ERR" "$MAX_MS" ||
    bad "splice error across the silence ${SPLICE_ERR} ms exceeds one frame ($MAX_MS ms)"
  DMG=$(sp_damage "$T/refb.pcm" "$T/got.pcm" "$SW" 0)   # from the switch on (silence before)
  awk -v d="$DMG" -v f="$SP_FRAME_MS" 'BEGIN{exit !(d > f)}' &&
    echo "failover_silence: WARN ${DMG} ms around the switch match no programme (damaged audio)"
fi

FIG="estimated_offset_ms=$EST_OFF dead_air_heard_s=$DEAD_AIR silence_at_got=${SIL_START:-?}s switch_at_got=${SW:-?}s detection_after_source_silence_ms=$DETECT_MS programme_chunks_after=$AFTER splice_error_ms=$SPLICE_ERR damaged_ms=$DMG failovers=$FAILOVERS failbacks=$FAILBACKS"
[ "$failed" = 0 ] || fc_fail "$FIG"
echo "failover_silence: PASS $FIG"
