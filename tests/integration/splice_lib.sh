# shellcheck shell=bash
# shellcheck disable=SC2034  # SP_* variables are set here for the scripts that source this file
# Shared setup for the issue-3 splice tests (failover_splice.sh, failover_silence.sh,
# patch_single_frame.sh). Source it after lib.sh:
#
#   . "$(dirname "$0")/lib.sh"
#   . "$(dirname "$0")/splice_lib.sh"
#   sp_need                                 # binaries and tools
#   sp_start_upstream [PRIMARY_FILTER]      # icecast2 + ONE ffmpeg pushing /primary.mp3 (128k)
#                                           # and /backup.mp3 (96k, audio 400 ms behind)
#   record "$SP_ICE_URL/primary.mp3" "$FC_TMP/ref.mp3"
#   sp_start_mesh --failback-after 6        # key, relay1, relay2, edge (extra edge flags)
#   sp_start_shim a 0 primary.mp3; SHIM_A=$FC_LAST_PID
#   sp_start_shim b 1 backup.mp3;  SHIM_B=$FC_LAST_PID
#   sp_wait_alignment 20                    # backup stream alignment=correlation
#   ...
#   sp_decode "$FC_TMP/got.mp3" "$FC_TMP/got.pcm"   # frametrim + ffmpeg; errors in SP_DECODE_ERR
#   sp_bitrate_runs "$FC_TMP/got.whole.mp3"          # where the listener's bitrate changes
#
# The programme: pink noise plus a quieter swept tone, multiplied by a slowly and irregularly
# varying amplitude (a 0.23 Hz swell times a frequency-modulated ~2 Hz "syllable" pattern), so the
# per-frame loudness envelope the shims compute has structure the edge can correlate, and the
# waveform is noise-like enough that a 100 ms chunk has one clear cross-correlation peak. (The
# tone is kept weak and its sweep non-periodic within minutes: a strong tone that repeats every
# 3.3 s made chunks correlate ~0.8 with the programme 3.3 s away.)
# Levels stay within about -14..-40 dBFS: never "silent" by the edge's -50 dBFS default.

SP_SHIM="$FC_BUILD/framecast-shim"
SP_RELAY="$FC_BUILD/framecast-relay"
SP_EDGE="$FC_BUILD/framecast-edge"
SP_MEASURE="$FC_BUILD/tools/splicemeasure"
SP_MOUNT=prog.mp3
SP_DELAY_MS=400                     # the backup's audio runs this far behind the primary's
SP_FRAME_MS=26.122                  # one MP3 frame at 44.1 kHz (1152 samples)
SP_ENV="(0.6+0.4*sin(2*PI*0.23*t))*(0.3+0.7*pow(sin(2*PI*(2.1*t+0.5*sin(2*PI*0.31*t))),2))"
SP_SIGNAL="anoisesrc=c=pink:a=0.35:r=44100:seed=5[n];aevalsrc=exprs='0.08*sin(2*PI*(500*t+250*sin(2*PI*t/3.3)+90*sin(2*PI*t/7.9)))':s=44100[s];[n][s]amix=inputs=2:normalize=0,volume=eval=frame:volume='$SP_ENV',aformat=channel_layouts=stereo[out0]"

sp_need() {
  fc_need_bin "$SP_SHIM" "$SP_RELAY" "$SP_EDGE" "$SP_MEASURE"
  local t
  for t in icecast2 ffmpeg curl python3 ss date; do
    command -v "$t" >/dev/null || fc_fail "missing tool $t (scripts/install-deps.sh)"
  done
}

# sp_start_upstream [PRIMARY_FILTER]: icecast2 and one real-time ffmpeg with two outputs from
# the same programme: /primary.mp3 (128 kbit/s, after PRIMARY_FILTER, default anull) and
# /backup.mp3 (96 kbit/s, adelay 400 ms). Sets SP_ICE, SP_ICE_URL, SP_SRC_PID and
# SP_SRC_T0 (now_ms when ffmpeg was started: programme time t=0 is roughly then).
sp_start_upstream() {
  local pfilter=${1:-anull} out lame=()
  # FC_SPLICE_LAME_OPTS: extra libmp3lame options for both outputs, e.g. "-reservoir 0" (no bit
  # reservoir: every frame has main_data_begin 0, so splices and patches decode cleanly).
  read -r -a lame <<<"${FC_SPLICE_LAME_OPTS:-}"
  SP_ICE=$(free_port)
  start_icecast "$SP_ICE"
  SP_ICE_URL="http://127.0.0.1:$SP_ICE"
  out="icecast://source:$FC_ICE_PASSWORD@127.0.0.1:$SP_ICE"
  SP_SRC_T0=$(now_ms)
  fc_start source ffmpeg -hide_banner -nostdin -loglevel warning \
    -re -f lavfi -i "$SP_SIGNAL" \
    -filter_complex "[0:a]asplit=2[p0][b0];[p0]${pfilter}[p];[b0]adelay=${SP_DELAY_MS}|${SP_DELAY_MS}[b]" \
    -map "[p]" -c:a libmp3lame -b:a 128k -ar 44100 -ac 2 "${lame[@]}" \
    -content_type audio/mpeg -f mp3 -id3v2_version 0 -write_xing 0 \
    -ice_name "framecast primary" "$out/primary.mp3" \
    -map "[b]" -c:a libmp3lame -b:a 96k -ar 44100 -ac 2 "${lame[@]}" \
    -content_type audio/mpeg -f mp3 -id3v2_version 0 -write_xing 0 \
    -ice_name "framecast backup" "$out/backup.mp3"
  SP_SRC_PID=$FC_LAST_PID
  local m
  for m in primary.mp3 backup.mp3; do
    if ! wait_http "$SP_ICE_URL/$m" 10; then
      fc_alive "$SP_SRC_PID" || fc_fail "ffmpeg source exited (see source.log)"
      fc_fail "icecast mount /$m not up after 10 s"
    fi
  done
}

# sp_start_mesh [EDGE_FLAGS...]: mesh key, two relays (TCP+UDP ingest each) and an edge
# subscribed to both. Sets SP_KEY, SP_R1_IN, SP_R2_IN, SP_EDGE_PORT, SP_EDGE_URL, SP_EDGE_PID,
# SP_R1, SP_R2.
sp_start_mesh() {
  local r1_srv r2_srv
  SP_KEY="$FC_TMP/mesh.key"
  bash "$FC_ROOT/scripts/keygen.sh" "$SP_KEY" 2>/dev/null
  SP_R1_IN=$(free_port); r1_srv=$(free_port)
  SP_R2_IN=$(free_port); r2_srv=$(free_port)
  SP_EDGE_PORT=$(free_port)
  SP_EDGE_URL="http://127.0.0.1:$SP_EDGE_PORT"
  fc_start relay1 "$SP_RELAY" --ingest "tcp://127.0.0.1:$SP_R1_IN" --ingest "udp://127.0.0.1:$SP_R1_IN" \
    --serve "127.0.0.1:$r1_srv" --key "$SP_KEY" --catchup 30
  SP_R1=$FC_LAST_PID
  fc_start relay2 "$SP_RELAY" --ingest "tcp://127.0.0.1:$SP_R2_IN" --ingest "udp://127.0.0.1:$SP_R2_IN" \
    --serve "127.0.0.1:$r2_srv" --key "$SP_KEY" --catchup 30
  SP_R2=$FC_LAST_PID
  local p
  for p in "$SP_R1_IN" "$r1_srv" "$SP_R2_IN" "$r2_srv"; do
    wait_until 5 port_listening "$p" || {
      fc_alive "$SP_R1" || fc_fail "relay1 exited at start (see relay1.log)"
      fc_alive "$SP_R2" || fc_fail "relay2 exited at start (see relay2.log)"
      fc_fail "a relay is not listening on 127.0.0.1:$p after 5 s"
    }
  done
  fc_start edge "$SP_EDGE" --listen "127.0.0.1:$SP_EDGE_PORT" \
    --relay "127.0.0.1:$r1_srv" --relay "127.0.0.1:$r2_srv" --key "$SP_KEY" --burst 4 "$@"
  SP_EDGE_PID=$FC_LAST_PID
  wait_until 5 port_listening "$SP_EDGE_PORT" || {
    fc_alive "$SP_EDGE_PID" || fc_fail "edge exited at start (see edge.log)"
    fc_fail "edge not listening on 127.0.0.1:$SP_EDGE_PORT after 5 s"
  }
}

# sp_start_shim ENCODER PRIORITY ICECAST_MOUNT [VAR=VALUE...]: a shim for mount prog.mp3 pulling
# the icecast mount, sending over TCP to relay 1 and UDP to relay 2; extra environment for it.
# Log: shim-ENCODER.log; PID in FC_LAST_PID.
sp_start_shim() {
  local enc=$1 prio=$2 src=$3; shift 3
  fc_start "shim-$enc" env "$@" "$SP_SHIM" --mount "$SP_MOUNT" --encoder "$enc" --priority "$prio" \
    --pull "$SP_ICE_URL/$src" --to "tcp://127.0.0.1:$SP_R1_IN" --to "udp://127.0.0.1:$SP_R2_IN" \
    --key "$SP_KEY"
}

# sp_json: the edge's GET / (empty on failure).
sp_json() { curl -s --max-time 2 "$SP_EDGE_URL/" 2>/dev/null || true; }

# sp_state: one line of key=value about mount prog.mp3 from GET /:
#   failovers= failbacks= patched= lost= gaps= switches= active= and per stream
#   <encoder>.alignment= <encoder>.offset_ms= <encoder>.corr= <encoder>.idle_s= (the newest
#   session of each encoder). Prints "mount=absent" when the edge does not list it.
sp_state() {
  local j; j=$(sp_json)
  printf '%s' "$j" | python3 -c '
import json, sys
try:
    d = json.load(sys.stdin)
except Exception:
    print("mount=absent"); sys.exit(0)
ms = [m for m in d.get("mounts", []) if m.get("mount", "").lstrip("/") == sys.argv[1]]
if not ms:
    print("mount=absent"); sys.exit(0)
m = ms[0]
out = ["%s=%s" % (k, m.get(k, "?")) for k in
       ("failovers", "failbacks", "patched", "lost", "gaps", "switches", "active")]
seen = set()
for s in m.get("streams", []):
    e = s.get("encoder", "?")
    if e in seen:
        continue
    seen.add(e)
    out.append("%s.alignment=%s %s.offset_ms=%.1f %s.corr=%.2f %s.idle_s=%.1f" % (
        e, s.get("alignment"), e, s.get("offset_ms", 0), e, s.get("alignment_corr", 0),
        e, s.get("idle_s", 0)))
print(" ".join(out))
' "$SP_MOUNT"
}

# sp_field KEY [STATE_LINE]: the value of KEY in an sp_state line.
sp_field() {
  local st=${2:-$(sp_state)}
  printf '%s\n' "$st" | tr ' ' '\n' | sed -n "s/^$1=//p" | head -n1
}

# A real estimate: "correlation" with a correlation above 0 (a stream never estimated also reads
# "correlation", with corr 0).
sp__aligned() {
  local st; st=$(sp_state)
  [ "$(sp_field b.alignment "$st")" = correlation ] &&
    awk -v c="$(sp_field b.corr "$st")" 'BEGIN{exit !(c > 0)}'
}

# sp_wait_alignment TIMEOUT_S: wait until the backup stream (encoder b) reads
# alignment=correlation. Returns 1 on timeout. Sets SP_ALIGN_WAIT_S (seconds waited).
sp_wait_alignment() {
  local t0; t0=$(now_ms)
  local rc=0
  wait_until "$1" sp__aligned || rc=$?
  SP_ALIGN_WAIT_S=$(awk -v d=$(( $(now_ms) - t0 )) 'BEGIN{printf "%.1f", d/1000}')
  return $rc
}

# sp_log_ms LINE: the epoch milliseconds of a framecast log line's leading UTC timestamp.
sp_log_ms() {
  local ts=${1%% *}
  date -u -d "${ts%Z}" +%s%3N 2>/dev/null || echo ""
}

# sp_decode MP3 PCM: cut the listener's torn last frame (MP3.whole -> "${MP3%.mp3}.whole.mp3"),
# decode to 8 kHz mono s16le. ffmpeg's error output (empty when the decode was clean) is left in
# SP_DECODE_ERR. Returns 1 when nothing could be decoded.
sp_decode() {
  local in=$1 pcm=$2 whole="${1%.mp3}.whole.mp3"
  python3 "$FC_LIB_DIR/frametrim.py" --codec mp3 "$in" "$whole" >/dev/null || return 1
  SP_DECODE_ERR=$(ffmpeg -hide_banner -nostdin -v error -f mp3 -i "$whole" \
    -ac 1 -ar 8000 -f s16le -y "$pcm" 2>&1 | head -n 20) || true
  [ -s "$pcm" ]
}

# sp_pcm REF.mp3 PCM: decode a reference recording (whole frames only) to 8 kHz mono s16le.
sp_pcm() {
  local whole="${1%.mp3}.whole.mp3"
  python3 "$FC_LIB_DIR/frametrim.py" --codec mp3 "$1" "$whole" >/dev/null || return 1
  ffmpeg -hide_banner -nostdin -v error -f mp3 -i "$whole" -ac 1 -ar 8000 -f s16le -y "$2" \
    >/dev/null 2>&1
  [ -s "$2" ]
}

# sp_bitrate_runs MP3: walk the MP3 frames and print one line per run of equal bitrate:
#   run first=I last=J start_s=S end_s=E kbps=K
# (times = frame index * 1152 / 44100). The primary is 128 kbit/s, the backup 96: the listener's
# runs show exactly where the edge switched encoders.
sp_bitrate_runs() {
  python3 - "$1" <<'PY'
import sys
BR = [0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320]
SR = [44100, 48000, 32000]
b = open(sys.argv[1], "rb").read()
i = 0; idx = 0; runs = []
while i + 4 <= len(b):
    h = int.from_bytes(b[i:i + 4], "big")
    if (h >> 21) & 0x7FF != 0x7FF or (h >> 19) & 3 != 3 or (h >> 17) & 3 != 1:
        i += 1; continue            # not an MPEG-1 Layer III header: resync
    bri, sri, pad = (h >> 12) & 15, (h >> 10) & 3, (h >> 9) & 1
    if bri in (0, 15) or sri == 3:
        i += 1; continue
    kbps = BR[bri]; n = 144 * kbps * 1000 // SR[sri] + pad
    if i + n > len(b):
        break
    if runs and runs[-1][2] == kbps:
        runs[-1][1] = idx
    else:
        runs.append([idx, idx, kbps])
    i += n; idx += 1
fd = 1152 / 44100
for a, z, k in runs:
    print("run first=%d last=%d start_s=%.3f end_s=%.3f kbps=%d" % (a, z, a * fd, (z + 1) * fd, k))
PY
}

# sp_kv KEY LINE: value of KEY=... in a line of key=value words (units like "s" kept).
sp_kv() { printf '%s\n' "$2" | tr ' ' '\n' | sed -n "s/^$1=//p" | head -n1; }

# sp_abs_le A B: |A| <= B (decimals; "nan" is never <=).
sp_abs_le() { awk -v a="$1" -v b="$2" 'BEGIN{ if (a == "nan" || a == "" || a == "-nan") exit 1; if (a < 0) a = -a; exit !(a <= b) }'; }

# sp_selfcheck REF.pcm: prove the measurement can fail. A copy of REF with 400 ms skipped after
# 5 s (what a PTS-only splice would do with these encoders) must read as one jump of about
# +400 ms and make splicemeasure exit 1 for --max-jump-ms one frame. Prints the jump line;
# returns 1 if the check did not catch it.
sp_selfcheck() {
  local syn="$FC_TMP/selfcheck.pcm" out rc=0 j
  python3 - "$1" "$syn" <<'PY'
import sys
d = open(sys.argv[1], "rb").read()
B = 16000                                   # bytes per second of 8 kHz s16le
open(sys.argv[2], "wb").write(d[2 * B:7 * B] + d[7 * B + 6400:14 * B])
PY
  out=$("$SP_MEASURE" "$1" "$syn" --quiet --max-jump-ms "$SP_FRAME_MS" 2>&1) || rc=$?
  j=$(printf '%s\n' "$out" | sed -n 's/^splice at .*jump_ms=//p' | head -n1)
  echo "selfcheck: 400 ms skip measured as jump_ms=${j:-none} (splicemeasure exit $rc)"
  [ "$rc" = 1 ] && [ -n "$j" ] && awk -v j="$j" 'BEGIN{exit !(j > 395 && j < 405)}'
}

# sp_silence_runs PCM [MIN_S [RMS]]: runs of digital silence in 8 kHz s16le PCM, 10 ms blocks with
# an RMS below RMS (default 4, about -78 dBFS) lasting at least MIN_S (default 0.5) seconds:
#   silence start_s=S end_s=E
sp_silence_runs() {
  python3 - "$1" "${2:-0.5}" "${3:-4}" <<'PY'
import array, math, sys
a = array.array("h", open(sys.argv[1], "rb").read())
min_s, thr, blk = float(sys.argv[2]), float(sys.argv[3]), 80
start = None
n = len(a) // blk
for k in range(n + 1):
    quiet = False
    if k < n:
        s = 0.0
        for v in a[k * blk:(k + 1) * blk]:
            s += v * v
        quiet = math.sqrt(s / blk) < thr
    if quiet and start is None:
        start = k
    elif not quiet and start is not None:
        if (k - start) * 0.01 >= min_s:
            print("silence start_s=%.3f end_s=%.3f" % (start * 0.01, k * 0.01))
        start = None
PY
}

# sp_damage REF.pcm GOT.pcm T [FROM]: how much of GOT around second T (T+FROM .. T+0.25 s,
# FROM default -0.15) is not the
# programme at all: 20 ms chunks every 5 ms are located in REF, and the span of chunks with a
# correlation below 0.7 (or silent) is printed in ms (0 = every chunk matched; resolution about
# 20 ms: a chunk is unmatched when a good part of it is damaged). An MP3 frame spliced in from
# another stream needs its bit reservoir (main_data_begin bytes of the frames before it in ITS
# stream), so it and the frame after it decode to garbage unless main_data_begin is 0.
sp_damage() {
  "$SP_MEASURE" --skip-ms 200 --chunk-ms 20 --hop-ms 5 "$1" "$2" 2>/dev/null | awk -v p="$3" -v f="${4:--0.15}" '
    /^chunk / { t = $2; sub("got=", "", t); sub("s$", "", t); t += 0
      if (t < p + f - 1e-6 || t > p + 0.25) next
      c = $4; sub("corr=", "", c)
      if ($0 ~ / silent/ || c + 0 < 0.7) { if (first == "") first = t; last = t } }
    END { if (first == "") print 0; else printf "%.0f\n", (last - first) * 1000 + 5 }'
}

# sp_mdb MP3 T: "index:kbps:main_data_begin" of the frames from 2 before to 3 after second T.
sp_mdb() {
  python3 - "$1" "$2" <<'PY'
import sys
b = open(sys.argv[1], "rb").read()
BR = [0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320]
at = int(round(float(sys.argv[2]) * 44100 / 1152))
i = idx = 0; out = []
while i + 6 <= len(b):
    h = int.from_bytes(b[i:i + 4], "big")
    if (h >> 21) & 0x7FF != 0x7FF or (h >> 19) & 3 != 3 or (h >> 17) & 3 != 1 or (h >> 12) & 15 in (0, 15):
        i += 1; continue
    br = BR[(h >> 12) & 15]; n = 144 * br * 1000 // 44100 + ((h >> 9) & 1)
    si = i + 4 + (0 if (h >> 16) & 1 else 2)
    if at - 2 <= idx <= at + 3 and si + 1 < len(b):
        out.append("%d:%d:%d" % (idx, br, (b[si] << 1) | (b[si + 1] >> 7)))
    i += n; idx += 1
print(" ".join(out))
PY
}
