#!/usr/bin/env bash
# Rewind buffer, time-shifted listening and persistence across a restart (issue 4).
#
# A --file shim (a 60 s MP3 of a non-repeating signal, looped) -> relay -> edge with
# --rewind-dir and --rewind-save-every 5. A live listener records 40 s, every read timestamped
# (timing_lib.sh). At t = 30 s:
#   ?offset=20            frames byte-identical to a contiguous run of the live recording, starting
#                         20 s (+- one frame) behind live as the live listener saw it, not as the
#                         edge's header says: its first frame is found in the live recording
#                         (frame K) and "live" at the moment of the request is the frames the live
#                         listener had received by then (L, when the request was sent; L', after
#                         its first read >= 110 ms after the offset listener's first byte: the edge
#                         writes caught-up listeners every 100 ms): 20 s must lie within
#                         [L - K, L' - K] widened by one frame (a bracket ~4-8 frames wide). The
#                         wall-clock form (first byte of ?offset=20 minus the arrival of frame K at
#                         the live listener) is printed beside it. Also at the position its
#                         X-Framecast-Start says (PTS difference / frame duration);
#   ?at=<Unix time t=12>  X-Framecast-Start within one index interval (0.5 s) + one frame of it,
#                         at the right place in the live recording; the same time as ISO-8601
#                         with %3A colons starts at the same frame;
#   ?offset=25&duration=10  done in < 1 s, Content-Length = bytes received, 383 +- 2 frames,
#                         a contiguous run of the live recording;
#   ?offset=100000, ?at=<2001>, ?offset=5&duration=10 (ends in the future): 416 with JSON
#                         first/last; ?offset=-5: 400; ?offset=0: a WARN line unless 200;
#   /live.mp3/rewind      sane JSON (seconds, bytes ~ 16000/s, frames, memory);
#   ?at=<t=15>&duration=5 kept for after the restart.
# Then SIGTERM the edge (it saves on shutdown), restart it on the same --rewind-dir: the t=15 span
# is served byte-identically (and with the same X-Framecast-Start), and the restart gap is
# measured three ways: frames of the source missing from a download spanning the restart, the
# PTS hole in the rewind JSON (seconds held minus frames x 26.122 ms), and the output PTS re-base
# the edge logs. Figures are printed; the test fails only on wrong bytes, wrong positions, wrong
# status codes or a lost pre-restart span.
#
# Env: FC_KEEP=1 keeps the temp dir; FC_BUILD picks the binaries (FC_BUILD=build-san runs the
# sanitized edge and fails on any sanitizer report in its log; FC_TOOLS=build/tools then keeps the
# comparison tools unsanitized); FC_RESTART_PAUSE_S (default 0)
# keeps the edge down that long before the restart (the relay's --catchup 30 covers up to 30 s);
# FC_RESTART_KILL=1 stops it with SIGKILL instead (no shutdown save: the last periodic save loads).
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/timing_lib.sh"
set -uo pipefail

SHIM="$FC_BUILD/framecast-shim"
RELAY="$FC_BUILD/framecast-relay"
EDGE="$FC_BUILD/framecast-edge"
FC_TOOLS="${FC_TOOLS:-$FC_BUILD/tools}"
FRAMECMP="$FC_TOOLS/framecmp"
FRAMEDUMP="$FC_TOOLS/framedump"
fc_need_bin "$SHIM" "$RELAY" "$EDGE" "$FRAMECMP" "$FRAMEDUMP"
for t in ffmpeg curl python3 ss; do
  command -v "$t" >/dev/null || fc_fail "missing tool $t (scripts/install-deps.sh)"
done

FRAME_S=0.026122   # 1152 samples at 44.1 kHz, as the edge counts it (integer µs)
LIVE_S=40
T=$FC_TMP
KEY="$T/mesh.key"
RW="$T/rw"
mkdir -p "$RW"

# --- source, relay, edge, shim -----------------------------------------------------------------
ffmpeg -v error -nostdin -f lavfi -i "$FC_SIG_MP3" -t 60 -c:a libmp3lame -b:a 128k -ar 44100 \
  -ac 2 -id3v2_version 0 -write_xing 0 "$T/src.mp3" || fc_fail "ffmpeg could not make the source"
cat "$T/src.mp3" "$T/src.mp3" >"$T/ref.mp3"   # the shim loops the file
bash "$FC_ROOT/scripts/keygen.sh" "$KEY" >/dev/null 2>&1
ING=$(free_port); SRV=$(free_port); HTTP=$(free_port)
BASE="http://127.0.0.1:$HTTP/live.mp3"

fc_start relay "$RELAY" --ingest "tcp://127.0.0.1:$ING" --serve "127.0.0.1:$SRV" --key "$KEY" \
  --catchup 30
RELAY_PID=$FC_LAST_PID
wait_until 5 port_listening "$SRV" || fc_fail "relay not listening on :$SRV"

EDGE_ARGS=(--listen "127.0.0.1:$HTTP" --relay "127.0.0.1:$SRV" --key "$KEY"
           --rewind-dir "$RW" --rewind-save-every 5)
fc_start edge "$EDGE" "${EDGE_ARGS[@]}"
EDGE_PID=$FC_LAST_PID
wait_until 5 port_listening "$HTTP" || fc_fail "edge not listening on :$HTTP"

fc_start shim "$SHIM" --mount live.mp3 --encoder a --file "$T/src.mp3" \
  --to "tcp://127.0.0.1:$ING" --key "$KEY"
SHIM_PID=$FC_LAST_PID
wait_http "$BASE/rewind" 10 || fc_fail "edge never had /live.mp3"
EDGE_T0=$(now_ms)

# --- helpers -----------------------------------------------------------------------------------
hdr() {  # hdr FILE NAME: value of a response header
  grep -i "^$2:" "$1" 2>/dev/null | head -n1 | cut -d: -f2- | tr -d '\r' | sed 's/^ *//'
}
nframes() { "$FRAMEDUMP" --codec mp3 "$1" | sed -n 's/^framedump: frames=\([0-9]*\).*/\1/p'; }
# pos_of START_A START_B: (B - A) / frame duration rounded (frames), and the remainder in µs
pos_of() {
  awk -v a="$1" -v b="$2" -v f="$FRAME_S" 'BEGIN {
    d = (b - a) / f; k = int(d + (d < 0 ? -0.5 : 0.5));
    printf "%d %.0f", k, (b - a - k * f) * 1e6 }'
}
matched_at() { sed -n 's/.*matched_at=\([0-9]*\).*/\1/p' <<<"$1"; }
unix_now() { date +%s.%N | cut -c1-17; }
alive_or_fail() {
  local p
  for p in "$@"; do fc_alive "$p" || fc_fail "${FC_PID_NAME[$p]} died (see ${FC_PID_NAME[$p]}.log)"; done
}

# --- t = 0: the live listener ------------------------------------------------------------------
T0=$(now_ms)
# The live reference listener takes no burst (?burst=0), so the edge writes it as audio arrives
# (at most every 100 ms), not once a second like a listener holding seconds of audio: its
# arrival times say where live was, to a few frames.
timed_record "$BASE?burst=0" "$T/live.mp3" "$LIVE_S"   # live.mp3.headers, live.mp3.timeline
LIVE_PID=$FC_LAST_PID
sleep_until "$T0" 12
T12=$(date +%s.%3N)   # ms: the ISO-8601 form below says exactly the same time
sleep_until "$T0" 15
T15=$(unix_now)
sleep_until "$T0" 30
alive_or_fail "$EDGE_PID" "$RELAY_PID" "$SHIM_PID" "$LIVE_PID"
fc_log "t=30 s: time-shifted requests (T12=$T12)"

# --- t = 30 s ----------------------------------------------------------------------------------
timed_record "$BASE?offset=20" "$T/off20.mp3" 6   # off20.mp3.headers, off20.mp3.timeline
OFF_PID=$FC_LAST_PID
record "$BASE?at=$T12" "$T/at12.mp3" 3 "$T/at12.hdr"
AT_PID=$FC_LAST_PID

# A 10 s download: as fast as the socket takes it.
dl=$(curl -s -o "$T/dl.mp3" -D "$T/dl.hdr" --max-time 10 \
  -w '%{http_code} %{time_total} %{size_download}' "$BASE?offset=25&duration=10")
read -r DL_CODE DL_TIME DL_SIZE <<<"$dl"
[ "$DL_CODE" = 200 ] || fc_fail "?offset=25&duration=10 answered $DL_CODE"
DL_LEN=$(hdr "$T/dl.hdr" Content-Length)
DL_DISP=$(hdr "$T/dl.hdr" Content-Disposition)
DL_FRAMES=$(nframes "$T/dl.mp3")

# Out of range: 416 with the range held.
R416=$(curl -s -o "$T/416.json" --max-time 3 -w '%{http_code}' "$BASE?offset=100000")
[ "$R416" = 416 ] || fc_fail "?offset=100000 answered $R416, want 416"
R416_AT=$(curl -s -o "$T/416at.json" --max-time 3 -w '%{http_code}' "$BASE?at=1000000000")
[ "$R416_AT" = 416 ] || fc_fail "?at=1000000000 (2001) answered $R416_AT, want 416"
R400=$(curl -s -o /dev/null --max-time 3 -w '%{http_code}' "$BASE?offset=-5")
[ "$R400" = 400 ] || fc_fail "?offset=-5 answered $R400, want 400"

# ISO-8601 with percent-encoded colons: the same start as the Unix-seconds form (to the ms).
T12_ISO=$(date -u -d "@$T12" +%Y-%m-%dT%H%%3A%M%%3A%S.%3NZ)
code=$(curl -s -o /dev/null -D "$T/iso.hdr" --max-time 3 -w '%{http_code}' \
  "$BASE?at=$T12_ISO&duration=1")
[ "$code" = 200 ] || fc_fail "?at=$T12_ISO&duration=1 answered $code"
ISO_START=$(hdr "$T/iso.hdr" X-Framecast-Start)
# Spans that cannot be served: past live (a download must end in the buffer), and offset=0.
R_PAST=$(curl -s -o "$T/past.json" --max-time 3 -w '%{http_code}' "$BASE?offset=5&duration=10")
[ "$R_PAST" = 416 ] || fc_fail "?offset=5&duration=10 (ends 5 s in the future) answered $R_PAST, want 416"
R_ZERO=$(curl -s -o "$T/zero.out" --max-time 1 -w '%{http_code}' "$BASE?offset=0")
[ "$R_ZERO" = 200 ] || echo "rewind_timeshift: WARN ?offset=0 (live) answered $R_ZERO: $(head -c 200 "$T/zero.out")"

curl -s --max-time 3 -o "$T/rewind1.json" "$BASE/rewind" || fc_fail "GET /live.mp3/rewind failed"
NOW30=$(unix_now)

# The span to compare after the restart.
code=$(curl -s -o "$T/pre.mp3" -D "$T/pre.hdr" --max-time 5 -w '%{http_code}' \
  "$BASE?at=$T15&duration=5")
[ "$code" = 200 ] || fc_fail "?at=T15&duration=5 answered $code"
[ -s "$RW/live.mp3.rewind" ] || fc_fail "no periodic save in $RW after 30 s (--rewind-save-every 5)"

wait_exit "$OFF_PID" 10 || fc_fail "?offset=20 recorder did not stop"
[ "$FC_WAIT_RC" = 0 ] || fc_fail "?offset=20 listener failed: $(tail -n1 "$T/off20.mp3.listener.log")"
wait_exit "$AT_PID" 10 || fc_fail "?at recorder did not stop"

# --- checks of the t = 30 s answers -------------------------------------------------------------
LIVE_START=$(hdr "$T/live.mp3.headers" X-Framecast-Start)
[ -n "$LIVE_START" ] || fc_fail "live response has no X-Framecast-Start"

# ?offset=20: a contiguous run of the live recording, where its X-Framecast-Start says.
python3 "$FC_LIB_DIR/frametrim.py" --codec mp3 "$T/off20.mp3" "$T/off20.whole.mp3" >/dev/null
OFF_START=$(hdr "$T/off20.mp3.headers" X-Framecast-Start)
out=$("$FRAMECMP" --codec mp3 --min-frames 300 "$T/live.mp3" "$T/off20.whole.mp3" 2>&1) ||
  fc_fail "?offset=20 is not a contiguous run of the live recording: $out"
# How far behind live ?offset=20 started, by the live listener alone (no edge header).
OFF_BEHIND_LIVE=$(python3 - "$FRAMEDUMP" "$T/live.mp3" "$T/live.mp3.timeline" "$T/off20.mp3.timeline" \
  "$(matched_at "$out")" 20 "$FRAME_S" <<'PY'
import subprocess, sys
dump, live, live_tl, off_tl, k, want_s, frame_s = sys.argv[1:8]
k, want_s, frame_s = int(k), float(want_s), float(frame_s)
def timeline(path):  # (absolute monotonic ms of each read, bytes received so far)
    start, cum, out = None, 0, []
    for line in open(path):
        p = line.split()
        if not p: continue
        if p[0] == "start": start = float(p[1]); continue
        if p[0] == "end": continue
        cum += int(p[1]); out.append((start + int(p[0]), cum))
    return start, out
ends = []  # byte offset just past each frame of the live recording
for line in subprocess.run([dump, "--codec", "mp3", live], capture_output=True, text=True).stdout.splitlines():
    p = line.split()
    if len(p) == 6 and p[0].isdigit(): ends.append(int(p[1]) + int(p[2]))
_, lv = timeline(live_tl)
req, ov = timeline(off_tl)
first = ov[0][0]
def frames_in(b):  # whole live frames in the first b bytes
    return sum(1 for e in ends if e <= b)
def frames_by(t):  # whole live frames the live listener held at time t
    return frames_in(max([c for a, c in lv if a <= t], default=0))
def frames_after(t):  # whole live frames it held after its first read at or after time t
    return frames_in(next((c for a, c in lv if a >= t), lv[-1][1]))
def arrival(i):    # when frame i of the live recording had fully arrived
    return next(a for a, c in lv if c >= ends[i])
# Live at the request: at least what the live listener held when it was sent; at most what it held
# after its first read once one edge write period (100 ms) had passed since the first byte of the
# answer (a later read, on a loaded machine, only widens the bracket).
lo, hi = frames_by(req) - k, frames_after(first + 110) - k
want = want_s / frame_s
wall = (first - arrival(k)) / 1000
ok = lo - 1 <= want <= hi + 1
print("%s behind_frames=[%d,%d] want=%.1f+-1 behind_s=[%.3f,%.3f] wall_clock_behind_s=%.3f first_byte_ms=%.0f k=%d" % (
    "OK" if ok else "BAD", lo, hi, want, lo * frame_s, hi * frame_s, wall, first - req, k))
PY
) || fc_fail "cannot measure ?offset=20 against the live recording: $OFF_BEHIND_LIVE"
echo "offset=20 against the live listener: ${OFF_BEHIND_LIVE#* }"
[ "${OFF_BEHIND_LIVE%% *}" = OK ] ||
  fc_fail "?offset=20 did not start 20 s (+- one frame) behind live as the live listener saw it: ${OFF_BEHIND_LIVE#* }"
read -r OFF_K OFF_REM <<<"$(pos_of "$LIVE_START" "$OFF_START")"
OFF_AT=$(matched_at "$out")
echo "offset=20: $out start=$OFF_START expected_at=$OFF_K"
[ "$OFF_AT" = "$OFF_K" ] || fc_fail "?offset=20 matched the live recording at frame $OFF_AT, X-Framecast-Start says $OFF_K"
OFF_BEHIND=$(sed -n 's/.* behind_s=\(\[[^]]*\]\).*/\1/p' <<<"$OFF_BEHIND_LIVE")

# ?at=T12: X-Framecast-Start within one index interval + one frame, and at the right place.
AT_START=$(hdr "$T/at12.hdr" X-Framecast-Start)
[ -n "$AT_START" ] || fc_fail "?at=T12 has no X-Framecast-Start ($(head -c 200 "$T/at12.hdr"))"
AT_DELTA=$(awk -v a="$AT_START" -v t="$T12" 'BEGIN{printf "%.4f", a - t}')
awk -v d="$AT_DELTA" -v f="$FRAME_S" 'BEGIN{exit !(d >= -(0.5 + f) && d <= 0.5 + f)}' ||
  fc_fail "?at=$T12 started at $AT_START: off by $AT_DELTA s (> 0.5 s + one frame)"
python3 "$FC_LIB_DIR/frametrim.py" --codec mp3 "$T/at12.mp3" "$T/at12.whole.mp3" >/dev/null
out=$("$FRAMECMP" --codec mp3 --min-frames 100 "$T/live.mp3" "$T/at12.whole.mp3" 2>&1) ||
  fc_fail "?at=T12 is not a contiguous run of the live recording: $out"
read -r AT_K AT_REM <<<"$(pos_of "$LIVE_START" "$AT_START")"
[ "$(matched_at "$out")" = "$AT_K" ] || fc_fail "?at=T12 matched at frame $(matched_at "$out"), X-Framecast-Start says $AT_K"
echo "at=T12: $out start=$AT_START delta_s=$AT_DELTA"
awk -v a="$AT_START" -v b="$ISO_START" 'BEGIN{d = a - b; exit !(d < 0.001 && d > -0.001)}' ||
  fc_fail "?at=$T12_ISO started at $ISO_START, ?at=$T12 at $AT_START"
echo "at=ISO: $T12_ISO start=$ISO_START"

# The download.
[ "$DL_LEN" = "$DL_SIZE" ] || fc_fail "download: Content-Length $DL_LEN, received $DL_SIZE bytes"
awk -v t="$DL_TIME" 'BEGIN{exit !(t < 1.0)}' || fc_fail "download of 10 s took $DL_TIME s (>= 1 s)"
[ "$DL_FRAMES" -ge 381 ] && [ "$DL_FRAMES" -le 385 ] ||
  fc_fail "download holds $DL_FRAMES frames, want 383 +- 2"
[[ "$DL_DISP" == attachment* ]] || fc_fail "download: Content-Disposition '$DL_DISP'"
out=$("$FRAMECMP" --codec mp3 --min-frames 370 "$T/live.mp3" "$T/dl.mp3" 2>&1) ||
  fc_fail "download is not a contiguous run of the live recording: $out"
DL_START=$(hdr "$T/dl.hdr" X-Framecast-Start)
read -r DL_K DL_REM <<<"$(pos_of "$LIVE_START" "$DL_START")"
[ "$(matched_at "$out")" = "$DL_K" ] || fc_fail "download matched at frame $(matched_at "$out"), X-Framecast-Start says $DL_K"
echo "download: $out bytes=$DL_SIZE frames=$DL_FRAMES time_s=$DL_TIME"

# 416 and the rewind JSON.
python3 - "$T/416.json" "$T/416at.json" "$T/rewind1.json" "$NOW30" "$EDGE_T0" <<'PY' || fc_fail "416 / rewind JSON not sane (above)"
import json, sys, time
r416, r416at, rw, now, edge_t0_ms = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4]), int(sys.argv[5])
bad = []
for f in (r416, r416at):
    j = json.load(open(f))
    if j.get("status") != 416 or not (0 < j["first"] < j["last"]):
        bad.append("%s: %r" % (f, j))
    if abs(j["last"] - now) > 5:
        bad.append("416 last %.3f not near now %.3f" % (j["last"], now))
j = json.load(open(rw))
span = (j["last_pts_us"] - j["first_pts_us"]) / 1e6
if abs(span - j["seconds"]) > 0.01: bad.append("seconds %.3f vs last-first %.3f" % (j["seconds"], span))
if not (30 <= j["seconds"] <= 60): bad.append("seconds held %.1f, want 30..60" % j["seconds"])
rate = j["bytes"] / j["seconds"]
if abs(rate - 16000) > 160: bad.append("bytes/s %.0f, want 16000 +- 1%%" % rate)
hole = j["seconds"] - j["frames"] * 0.026122
if abs(hole) > 0.03: bad.append("frames x 26.122 ms = %.3f s vs seconds %.3f" % (j["frames"] * 0.026122, j["seconds"]))
if j["memory_bytes"] > 1.02 * j["bytes"] + (8 << 20): bad.append("memory_bytes %d for %d bytes" % (j["memory_bytes"], j["bytes"]))
if abs(j["last_pts_us"] / 1e6 - now) > 5: bad.append("last %.3f not near now %.3f" % (j["last_pts_us"] / 1e6, now))
if j["mount"] != "live.mp3" or not j["first"].endswith("Z"): bad.append("mount/first: %r" % j)
print("rewind JSON: seconds=%.2f bytes=%d frames=%d bytes_per_s=%.0f memory_bytes=%d first=%s last=%s"
      % (j["seconds"], j["bytes"], j["frames"], rate, j["memory_bytes"], j["first"], j["last"]))
print("416: " + open(r416).read().strip())
for b in bad: print("BAD: " + b)
sys.exit(1 if bad else 0)
PY

# --- stop and restart the edge -----------------------------------------------------------------
wait_exit "$LIVE_PID" 15 || fc_fail "live recorder did not stop"
[ "$FC_WAIT_RC" = 0 ] || fc_fail "live listener failed: $(tail -n1 "$T/live.mp3.listener.log")"
LIVE_FRAMES=$(nframes "$T/live.mp3")
out=$("$FRAMECMP" --codec mp3 --min-frames 1000 "$T/ref.mp3" "$T/live.mp3" 2>&1) ||
  fc_fail "live recording is not a contiguous run of the source: $out"
echo "live: $out"

alive_or_fail "$EDGE_PID" "$RELAY_PID" "$SHIM_PID"
T_STOP=$(unix_now)
STOP_MS=$(now_ms)
fc_log "t=$(( (STOP_MS - T0) / 1000 )) s: SIGTERM the edge"
if [ "${FC_RESTART_KILL:-0}" = 1 ]; then
  fc_kill9 "$EDGE_PID"   # no shutdown save: the last periodic one (<= 5 s old) is loaded
else
  fc_stop "$EDGE_PID"
  grep -q "rewind saved to" "$T/edge.log" || fc_fail "edge did not log its shutdown save"
fi
ls "$RW"/*.tmp >/dev/null 2>&1 && fc_fail "a .tmp file was left in $RW"
SAVED_BYTES=$(stat -c %s "$RW/live.mp3.rewind")
sleep "${FC_RESTART_PAUSE_S:-0}"
fc_start edge2 "$EDGE" "${EDGE_ARGS[@]}"
EDGE_PID=$FC_LAST_PID
wait_http "$BASE/rewind" 10 || fc_fail "restarted edge does not serve /live.mp3/rewind"
UP_MS=$(now_ms)
grep -q "loaded frames=" "$T/edge2.log" || fc_fail "restarted edge did not log loading the rewind file"
grep "rewind file=" "$T/edge2.log" | head -n 3
curl -s --max-time 3 -o "$T/rewind2a.json" "$BASE/rewind"

# The pre-restart span, byte-identical.
code=$(curl -s -o "$T/post.mp3" -D "$T/post.hdr" --max-time 5 -w '%{http_code}' \
  "$BASE?at=$T15&duration=5")
[ "$code" = 200 ] || fc_fail "after the restart ?at=T15&duration=5 answered $code"
cmp -s "$T/pre.mp3" "$T/post.mp3" ||
  fc_fail "pre-restart span differs after the restart ($(stat -c %s "$T/pre.mp3") vs $(stat -c %s "$T/post.mp3") bytes; $(cmp "$T/pre.mp3" "$T/post.mp3" 2>&1 | head -n1))"
[ "$(hdr "$T/pre.hdr" X-Framecast-Start)" = "$(hdr "$T/post.hdr" X-Framecast-Start)" ] ||
  fc_fail "X-Framecast-Start of the T15 span changed: $(hdr "$T/pre.hdr" X-Framecast-Start) -> $(hdr "$T/post.hdr" X-Framecast-Start)"
PRE_FRAMES=$(nframes "$T/pre.mp3")
echo "restart: pre-restart span ?at=T15&duration=5 identical ($(stat -c %s "$T/pre.mp3") bytes, $PRE_FRAMES frames)"

# Let live audio flow again, then look at the seam.
sleep_until "$UP_MS" 5
alive_or_fail "$EDGE_PID" "$RELAY_PID" "$SHIM_PID"
curl -s --max-time 3 -o "$T/rewind2.json" "$BASE/rewind"
SPAN_AT=$(awk -v t="$T_STOP" 'BEGIN{printf "%.3f", t - 6}')
code=$(curl -s -o "$T/seam.mp3" -D "$T/seam.hdr" --max-time 5 -w '%{http_code}' \
  "$BASE?at=$SPAN_AT&duration=10")
[ "$code" = 200 ] || fc_fail "download across the restart answered $code ($(cat "$T/seam.mp3" | head -c 200))"
SEAM_CMP=$("$FRAMECMP" --codec mp3 "$T/ref.mp3" "$T/seam.mp3" 2>&1)
REBASES=$(grep -c "output PTS re-based" "$T/edge2.log")

# Map every frame of the seam download to its index in the (looped) source: missing frames at the
# restart are the audio gap; the PTS hole from the JSON is the timeline gap.
python3 - "$FRAMEDUMP" "$T/src.mp3" "$T/seam.mp3" "$T/rewind1.json" "$T/rewind2a.json" "$T/rewind2.json" \
  "$(( UP_MS - STOP_MS ))" "$REBASES" <<'PY' || fc_fail "restart gap analysis failed (above)"
import hashlib, json, subprocess, sys
dump, src, seam, j1, j2a, j2, down_ms, rebases = sys.argv[1:9]
def frames(path):
    data = open(path, "rb").read()
    out = subprocess.run([dump, "--codec", "mp3", path], capture_output=True, text=True).stdout
    fr = []
    for line in out.splitlines():
        p = line.split()
        if len(p) == 6 and p[0].isdigit():
            off, ln = int(p[1]), int(p[2])
            fr.append(hashlib.sha1(data[off:off + ln]).digest())
    return fr
s, g = frames(src), frames(seam)
where = {}
for i, h in enumerate(s):
    where.setdefault(h, i)
idx = [where.get(h) for h in g]
unknown = sum(1 for i in idx if i is None)
n = len(s)
gaps, dups = [], 0
for a, b in zip(idx, idx[1:]):
    if a is None or b is None: continue
    step = (b - a) % n
    if step == 1: continue
    if step == 0: dups += 1
    elif step > n // 2: dups += n - step
    else: gaps.append(step - 1)
r1, r2a, r2 = (json.load(open(f)) for f in (j1, j2a, j2))
hole = r2["seconds"] - r2["frames"] * 0.026122
print("restart: edge down %d ms; seam download %d frames (%d not from the source); missing source frames at the seam: %s; repeated: %d"
      % (int(down_ms), len(g), unknown, ",".join(map(str, gaps)) or "0", dups))
print("restart: after load first_pts_us %s (before %s), frames %d at load, %d now; PTS hole in buffer %.3f s; output PTS re-based %s time(s)"
      % (r2a["first_pts_us"], r1["first_pts_us"], r2a["frames"], r2["frames"], hole, rebases))
bad = []
if r2a["first_pts_us"] != r1["first_pts_us"]: bad.append("oldest PTS changed across the restart")
if unknown: bad.append("%d frames of the seam download are not in the source" % unknown)
if dups: bad.append("%d frames repeated at the seam" % dups)
for b in bad: print("BAD: " + b)
sys.exit(1 if bad else 0)
PY
echo "seam: $SEAM_CMP"
# With FC_BUILD=build-san the edge reports memory errors in its log.
if grep -lE "AddressSanitizer|runtime error:|LeakSanitizer" "$T"/edge*.log 2>/dev/null; then
  fc_fail "sanitizer report in the edge log"
fi

echo "rewind_timeshift: PASS live_frames=$LIVE_FRAMES offset20_behind_s=$OFF_BEHIND at_delta_s=$AT_DELTA download_s=$DL_TIME download_frames=$DL_FRAMES saved_bytes=$SAVED_BYTES restart_down_ms=$(( UP_MS - STOP_MS ))"
