#!/usr/bin/env bash
# A single frame lost on every path, patched from the backup encoder (issue 3).
#
# Same setup as failover_splice.sh (one ffmpeg -> /primary.mp3 128k and /backup.mp3 96k 400 ms
# behind; shim a priority 0, shim b priority 1; TCP to relay 1, UDP to relay 2; one edge), but
# shim a runs with FC_DEBUG_DROP_SEQ=N: that seq is never sent on any path. N is chosen so that
# the frame falls about PATCH_AT s into the programme, while the listener (started once the edge
# has an alignment estimate) is running. Passes only if
#   - GET / shows patched >= 1 and lost == 0 for the mount, failovers == 0;
#   - the listener's MP3 frames are 128 kbit/s except one short run of 96 kbit/s (the patch);
#   - ffmpeg decodes the listener's audio without an error;
#   - splicemeasure (100 ms chunks against a direct recording of /primary.mp3) finds no offset
#     jump anywhere above one MP3 frame (26.1 ms) and the offset after the patch equals the
#     offset before it within one frame.
# Also prints (informational, a WARN above one frame) how many ms around the patch match no
# programme at all (20 ms chunks), with the main_data_begin of the frames there.
#
# Env: FC_KEEP=1 keeps the temp dir; FC_SPLICE_MAX_MS (default 26.1).
set -euo pipefail
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/splice_lib.sh"
sp_need

PATCH_AT=30                 # programme second of the dropped frame
LISTEN_FROM_LATEST=24       # the listener starts by this programme second at the latest (the
                            # edge trusts an offset after ~8 s of history and two agreeing
                            # estimates: the wait below is on that state, bounded by this)
END_AFTER=8                 # ... and runs until this long after the patch
MAX_MS=${FC_SPLICE_MAX_MS:-26.1}
T=$FC_TMP

sp_start_upstream anull
record "$SP_ICE_URL/primary.mp3" "$T/ref.mp3"; REF=$FC_LAST_PID
record "$SP_ICE_URL/backup.mp3" "$T/refb.mp3"; REFB=$FC_LAST_PID
sp_start_mesh --failback-after 6
# Seq 0 is the oldest frame icecast2 hands the shim on connect: the programme start, or up to
# its burst (64 KiB = ~4.1 s of 128k) before the connect when the source ran longer than that.
since=$(( $(now_ms) - SP_SRC_T0 ))
seq0_ms=$(( since > 4100 ? since - 4100 : 0 ))
DROP=$(awk -v p="$PATCH_AT" -v s="$seq0_ms" 'BEGIN{printf "%d", (p * 1000 - s) / (1152000 / 44100)}')
sp_start_shim a 0 primary.mp3 "FC_DEBUG_DROP_SEQ=$DROP"; SHIM_A=$FC_LAST_PID
sp_start_shim b 1 backup.mp3; SHIM_B=$FC_LAST_PID
fc_log "ports: icecast=$SP_ICE edge=$SP_EDGE_PORT tmp=$T; shim a drops seq $DROP (programme ~${PATCH_AT}s)"

budget=$(( (SP_SRC_T0 + LISTEN_FROM_LATEST * 1000 - $(now_ms)) / 1000 ))
[ "$budget" -ge 1 ] || budget=1
if ! sp_wait_alignment "$budget"; then
  for p in "$SP_EDGE_PID" "$SP_R1" "$SP_R2" "$SHIM_A" "$SHIM_B" "$SP_SRC_PID"; do
    fc_alive "$p" || fc_fail "${FC_PID_NAME[$p]} died while waiting for alignment"
  done
  fc_fail "slow set-up: backup alignment not 'correlation' (two agreeing estimates) by programme second $LISTEN_FROM_LATEST: $(sp_state)"
fi
ST=$(sp_state)
EST_OFF=$(sp_field b.offset_ms "$ST")
echo "patch_single_frame: alignment=correlation after ${SP_ALIGN_WAIT_S}s: estimated offset_ms=$EST_OFF corr=$(sp_field b.corr "$ST")"

T0=$(now_ms)
LISTEN_S=$(( (SP_SRC_T0 + (PATCH_AT + END_AFTER) * 1000 - T0 + 999) / 1000 ))
record "$SP_EDGE_URL/$SP_MOUNT" "$T/got.mp3" "$LISTEN_S"; L=$FC_LAST_PID
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
bad() { echo "patch_single_frame: $*"; failed=1; }

grep -E 'event=(patched|gap|failover|failback) ' "$T/edge.log" | sed 's/^/edge: /' || true
PATCHED=$(sp_field patched "$ST"); LOST=$(sp_field lost "$ST"); GAPS=$(sp_field gaps "$ST")
FAILOVERS=$(sp_field failovers "$ST")
[ "$PATCHED" -ge 1 ] 2>/dev/null || bad "GET / patched=$PATCHED, want >= 1"
[ "$LOST" = 0 ] || bad "GET / lost=$LOST, want 0"
[ "$FAILOVERS" = 0 ] || bad "GET / failovers=$FAILOVERS, want 0 (one lost frame is patched, not a failover)"

[ -s "$T/got.mp3" ] || fc_fail "listener received nothing"
sp_decode "$T/got.mp3" "$T/got.pcm" || fc_fail "cannot decode the listener's audio"
if [ -n "$SP_DECODE_ERR" ]; then
  printf '%s\n' "$SP_DECODE_ERR" | sed 's/^/ffmpeg: /'
  bad "ffmpeg reported errors decoding the listener's audio"
fi
sp_pcm "$T/ref.mp3" "$T/ref.pcm" || fc_fail "cannot decode the reference"

RUNS=$(sp_bitrate_runs "$T/got.whole.mp3")
printf '%s\n' "$RUNS" | sed 's/^/listener: /'
KBPS=$(printf '%s\n' "$RUNS" | sed -n 's/.*kbps=//p' | tr '\n' ' ')
PT=$(printf '%s\n' "$RUNS" | awk '$NF == "kbps=96" { sub("start_s=", "", $4); print $4; exit }')
NPATCH=$(printf '%s\n' "$RUNS" | awk '$NF == "kbps=96" { a = $2; z = $3; sub("first=", "", a); sub("last=", "", z); print z - a + 1; exit }')
if [ "$KBPS" != "128 96 128 " ]; then
  bad "listener bitrate runs are '$KBPS', want '128 96 128 ' (the patch inside the listener's span)"
elif [ "$NPATCH" -gt 2 ]; then
  bad "the patch is $NPATCH backup frames long for one lost frame"
fi

rc=0
margs=(--max-jump-ms "$MAX_MS")
[ -n "$PT" ] && margs+=(--event "$PT")
"$SP_MEASURE" --skip-ms 200 "$T/ref.pcm" "$T/got.pcm" "${margs[@]}" >"$T/measure.txt" 2>&1 || rc=$?
grep -v '^chunk ' "$T/measure.txt" | sed 's/^/measure: /'
SUMMARY=$(grep '^splicemeasure:' "$T/measure.txt" || true)
[ -n "$SUMMARY" ] || fc_fail "splicemeasure failed (exit $rc): $(head -c 300 "$T/measure.txt")"
[ "$rc" = 0 ] || bad "splicemeasure: a jump larger than $MAX_MS ms (exit $rc)"
CHUNKS=$(sp_kv chunks "$SUMMARY"); CONF=$(sp_kv confident "$SUMMARY")
awk -v c="$CONF" -v n="$CHUNKS" 'BEGIN{exit !(c >= 0.9 * n)}' ||
  bad "only $CONF of $CHUNKS chunks located confidently in the reference"
ERR="?"; DEV="?"; DMG="?"
if [ -n "$PT" ]; then
  ev=$(grep '^event ' "$T/measure.txt" | head -n1)
  ERR=$(sp_kv splice_error_ms "$ev"); DEV=$(sp_kv max_dev_ms "$ev")
  sp_abs_le "$ERR" "$MAX_MS" || bad "offset after the patch differs from before by $ERR ms (> $MAX_MS ms)"
  sp_abs_le "$DEV" "$MAX_MS" || bad "offset deviates by $DEV ms around the patch (> $MAX_MS ms)"
  # Jumps away from the patch: none allowed.
  while read -r t j; do
    awk -v a="$t" -v b="$PT" 'BEGIN{d=a-b; exit !(d > -1 && d < 1)}' ||
      bad "unexpected jump of $j ms at got=${t}s (the patch is at ${PT}s)"
  done < <(sed -n 's/^splice at got=\([0-9.]*\)s jump_ms=\(.*\)/\1 \2/p' "$T/measure.txt")
  # Informational: how much audio around the patch is not the programme at all.
  DMG=$(sp_damage "$T/ref.pcm" "$T/got.pcm" "$PT")
  awk -v d="$DMG" -v f="$SP_FRAME_MS" 'BEGIN{exit !(d > f)}' &&
    echo "patch_single_frame: WARN ${DMG} ms around the patch match no programme (damaged audio; main_data_begin: $(sp_mdb "$T/got.whole.mp3" "$PT"))"
fi

FIG="estimated_offset_ms=$EST_OFF dropped_seq=$DROP patch_at_got=${PT:-?}s patch_frames=${NPATCH:-?} offset_change_ms=$ERR max_dev_ms=$DEV damaged_ms=$DMG max_jump_ms=$(sp_kv max_jump_ms "$SUMMARY") patched=$PATCHED lost=$LOST gaps=$GAPS"
[ "$failed" = 0 ] || fc_fail "$FIG"
echo "patch_single_frame: PASS $FIG"
