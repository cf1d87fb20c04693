#!/usr/bin/env bash
# Prerolls (issue 11, docs/architecture.md §7.14).
#
# A --file shim (60 s MP3, 44.1 kHz stereo, looped) -> relay -> two edges:
#   edge A (2 workers): --preroll live.mp3=DIR, DIR holding a_tone.mp3 (3 s, 44.1 kHz),
#          b_tone48.mp3 (48 kHz: must be disabled at the mount's first frame, logged and shown
#          in /api/v1/mounts/live.mp3) and c_tone.mp3 (2 s, 44.1 kHz);
#   edge B (no workers): --preroll-url http://fixture/vast (preroll_tools.py vast).
# Every listener's audio is checked byte for byte (preroll_tools.py check): exactly the clip's
# frames, then from the clip's end whole frames forming a contiguous run of the source
# (also through tests/tools/framecmp).
#   A: plain listener u1 -> a_tone; u2 -> c_tone (b_tone48 skipped); ICY listener u3 -> a_tone,
#      its first ICY block carries "a_tone", the first block after the clip the live title, and
#      the metaint count runs through the clip; u1 again (reconnect within 60 s), ?offset=5 and
#      &preroll=0 -> no clip; prerolls_total = 3.
#   B: VAST good -> "Test Ad" clip, impressions /imp/1 and /imp/2 requested after it;
#      slow (3.5 s) -> no clip, audio within 3 s; broken XML -> no clip; good again -> the clip,
#      media file fetched once (cached by URL); preroll_failures_total = 2.
#   B, Wrapper chains (VAST 3.0 §2.4.1, 4.1 §3.4): wrapper -> wrapper -> inline gives the
#      inline ad's clip, each impression of every level requested exactly once, each document
#      and the new media file once; 4 Wrappers then an InLine: the clip; a loop (/loop/a ->
#      /loop/b -> /loop/a), 5 Wrappers, a Wrapper after followAdditionalWrappers="false": no
#      clip, no impression, the reason logged; three 0.8 s hops: no clip, first byte after the
#      one 2 s budget; preroll_failures_total = 6, prerolls_total = 4.
#   A non-audio --preroll file and a missing one exit 2 naming the file.
. "$(dirname "$0")/lib.sh"
set -uo pipefail

SHIM="$FC_BUILD/framecast-shim"
RELAY="$FC_BUILD/framecast-relay"
EDGE="$FC_BUILD/framecast-edge"
FRAMECMP="${FC_TOOLS:-$FC_BUILD/tools}/framecmp"
fc_need_bin "$SHIM" "$RELAY" "$EDGE" "$FRAMECMP"
for t in ffmpeg curl python3 jq; do
  command -v "$t" >/dev/null || fc_fail "missing tool $t (scripts/install-deps.sh)"
done
T=$FC_TMP
TOOLS="$FC_LIB_DIR/preroll_tools.py"
KEY="$T/mesh.key"
TOKEN=preroll-test-token-0123456789
echo "test $TOKEN" >"$T/tokens"

# --- audio ---------------------------------------------------------------------------------------
mk() {  # mk OUT SECONDS RATE FREQ
  ffmpeg -v error -nostdin -f lavfi -i "sine=frequency=$4:sample_rate=$3:duration=$2" -ac 2 \
    -c:a libmp3lame -b:a 128k -ar "$3" -id3v2_version 0 -write_xing 0 -map_metadata -1 \
    -fflags +bitexact -flags:a +bitexact "$1" || fc_fail "ffmpeg could not make $1"
}
ffmpeg -v error -nostdin -f lavfi -i "$FC_SIG_MP3" -t 60 -c:a libmp3lame -b:a 128k -ar 44100 \
  -ac 2 -id3v2_version 0 -write_xing 0 "$T/src.mp3" || fc_fail "ffmpeg could not make the source"
cat "$T/src.mp3" "$T/src.mp3" >"$T/ref.mp3"   # the shim loops the file
mkdir -p "$T/clips" "$T/vast"
mk "$T/clips/a_tone.mp3" 3 44100 440
mk "$T/clips/b_tone48.mp3" 2 48000 550
mk "$T/clips/c_tone.mp3" 2 44100 660
mk "$T/ad.mp3" 2.5 44100 880
echo "this is not audio, just text that happens to be in a file" >"$T/notes.txt"

# --- a bad clip exits 2 --------------------------------------------------------------------------
bad_start() {  # bad_start NAME PATH: the edge must exit 2 naming PATH
  local out="$T/$1.out" rc=0
  timeout 10 "$EDGE" --listen 127.0.0.1:1 --relay 127.0.0.1:1 --key "$KEY" \
    --preroll "live.mp3=$2" >"$out" 2>&1 || rc=$?
  [ "$rc" = 2 ] || fc_fail "--preroll $2: exit $rc, want 2: $(cat "$out")"
  grep -qF "$2" "$out" || fc_fail "--preroll $2: the message does not name the file: $(cat "$out")"
  fc_log "PASS $1 exits 2: $(head -n1 "$out")"
}
bash "$FC_ROOT/scripts/keygen.sh" "$KEY" >/dev/null 2>&1
bad_start notaudio "$T/notes.txt"
bad_start missing "$T/nothing-here.mp3"

# --- mesh ----------------------------------------------------------------------------------------
ING=$(free_port); SRV=$(free_port); HA=$(free_port); HB=$(free_port); VP=$(free_port)
echo good >"$T/vast/mode"
fc_start vast python3 "$TOOLS" vast "$VP" "$T/vast" "$T/ad.mp3"
fc_start relay "$RELAY" --ingest "tcp://127.0.0.1:$ING" --serve "127.0.0.1:$SRV" --key "$KEY"
wait_until 5 port_listening "$SRV" || fc_fail "relay not listening"
fc_start edgeA "$EDGE" --listen "127.0.0.1:$HA" --relay "127.0.0.1:$SRV" --key "$KEY" \
  --workers 2 --api-token-file "$T/tokens" --preroll "live.mp3=$T/clips" \
  --analytics "sqlite:$T/an.db"
EDGE_A=$FC_LAST_PID
fc_start edgeB "$EDGE" --listen "127.0.0.1:$HB" --relay "127.0.0.1:$SRV" --key "$KEY" \
  --workers 0 --preroll-url "http://127.0.0.1:$VP/vast"
EDGE_B=$FC_LAST_PID
wait_until 5 port_listening "$VP" || fc_fail "VAST fixture not listening"
fc_start shim "$SHIM" --mount live.mp3 --encoder a --file "$T/src.mp3" \
  --to "tcp://127.0.0.1:$ING" --key "$KEY"
wait_http "http://127.0.0.1:$HA/live.mp3/rewind" 15 || fc_fail "edge A never had /live.mp3"
wait_http "http://127.0.0.1:$HB/live.mp3/rewind" 15 || fc_fail "edge B never had /live.mp3"
# Enough buffer for a 4 s burst and ?offset=5.
wait_until 15 sh -c "curl -s http://127.0.0.1:$HA/live.mp3/rewind | jq -e '.seconds > 7'" \
  || fc_fail "edge A holds less than 7 s"

api() { curl -s --max-time 3 -H "Authorization: Bearer $TOKEN" "$@"; }
api -X POST -d '{"title":"Live Show"}' "http://127.0.0.1:$HA/api/v1/mounts/live.mp3/metadata" \
  >/dev/null

# --- mismatch reported -----------------------------------------------------------------------
api "http://127.0.0.1:$HA/api/v1/mounts/live.mp3" >"$T/mount.json"
jq -e '.preroll.clips | length == 3' "$T/mount.json" >/dev/null \
  || fc_fail "API: no preroll clips: $(cat "$T/mount.json")"
jq -e '.preroll.clips[1] | (.enabled == false) and (.error | test("sample rate 48000 Hz, the mount.s 44100"))' \
  "$T/mount.json" >/dev/null || fc_fail "API: b_tone48 not disabled: $(jq -c .preroll "$T/mount.json")"
jq -e '[.preroll.clips[0,2].enabled] == [true, true]' "$T/mount.json" >/dev/null \
  || fc_fail "API: a_tone / c_tone not enabled: $(jq -c .preroll "$T/mount.json")"
grep -q "preroll $T/clips/b_tone48.mp3 disabled for mount=live.mp3: sample rate 48000 Hz" \
  "$T/edgeA.log" || fc_fail "edge A did not log the disabled clip"
fc_log "PASS mismatch: $(jq -c '.preroll.clips[1] | {file, enabled, error}' "$T/mount.json")"

# --- edge A listeners ----------------------------------------------------------------------------
listen() {  # listen EDGE_PORT PATH UA ICY SECONDS NAME (background, tracked)
  fc_start "$6" python3 "$TOOLS" listen "$1" "$2" "$3" "$4" "$5" "$T/$6"
}
check() {  # check NAME CLIP|none MIN_LIVE: bytes and framecmp of the live part
  local name=$1 clip=$2 out clen=0
  out=$(python3 "$TOOLS" check "$T/ref.mp3" "$clip" "$T/$name.audio" "$3") \
    || fc_fail "$name: $out"
  [ "$clip" != none ] && clen=$(stat -c %s "$clip")
  tail -c +$((clen + 1)) "$T/$name.audio" >"$T/$name.live"
  local fc
  fc=$("$FRAMECMP" --codec mp3 --min-frames "$3" "$T/ref.mp3" "$T/$name.live") \
    || fc_fail "$name: live part: $fc"
  fc_log "PASS $name: $out; $fc"
}
wait_done() {  # wait_done PID...: listeners exit by themselves
  local p
  for p in "$@"; do wait_exit "$p" 20 || fc_fail "a listener did not finish"; done
}

listen "$HA" /live.mp3 u1 0 2 a1; P1=$FC_LAST_PID
wait_exit "$P1" 20
listen "$HA" /live.mp3 u2 0 2 a2; P2=$FC_LAST_PID
# u3 after u2 has its clip: the rotation is one sequence, in the order listeners come.
wait_until 5 sh -c "[ \$(grep -c 'preroll clip=' '$T/edgeA.log') -ge 2 ]" \
  || fc_fail "u2 got no preroll within 5 s"
listen "$HA" /live.mp3 u3 1 3 a3; P3=$FC_LAST_PID
wait_done "$P2" "$P3"
listen "$HA" /live.mp3 u1 0 2 a1again; P4=$FC_LAST_PID
listen "$HA" "/live.mp3?offset=5" u5 0 2 a5; P5=$FC_LAST_PID
listen "$HA" "/live.mp3?preroll=0" u6 0 2 a6; P6=$FC_LAST_PID
wait_done "$P4" "$P5" "$P6"

check a1 "$T/clips/a_tone.mp3" 100
check a2 "$T/clips/c_tone.mp3" 100
check a3 "$T/clips/a_tone.mp3" 100
check a1again none 100
check a5 none 100
check a6 none 100

# ICY: the clip's name in the first block, the live title in the first block after the clip.
CLIP_A=$(stat -c %s "$T/clips/a_tone.mp3")
first=$(sed -n 1p "$T/a3.titles"); second=$(sed -n 2p "$T/a3.titles")
[ "$first" = "$(printf '16000\ta_tone')" ] || fc_fail "ICY: first block \"$first\", want 16000 a_tone"
want2=$(( (CLIP_A / 16000 + 1) * 16000 ))
[ "$second" = "$(printf '%d\tLive Show' "$want2")" ] \
  || fc_fail "ICY: second title \"$second\", want \"$want2 Live Show\" (clip $CLIP_A bytes)"
fc_log "PASS ICY titles: $(tr '\n\t' '; ' <"$T/a3.titles")"

prom() {  # prom PORT NAME: the sum of a counter over workers
  curl -s --max-time 3 "http://127.0.0.1:$1/metrics" |
    awk -v n="framecast_edge_$2" '$1 ~ "^"n"({|$)" {s += $2} END {print s + 0}'
}
n=$(prom "$HA" prerolls_total)
[ "$n" = 3 ] || fc_fail "edge A prerolls_total = $n, want 3"
fc_log "PASS edge A prerolls_total=$n"

# --- edge B: VAST --------------------------------------------------------------------------------
listen "$HB" /live.mp3 v1 0 1 b1; wait_done "$FC_LAST_PID"
check b1 "$T/ad.mp3" 100
wait_until 5 grep -q '^/imp/2?a=1&b=2$' "$T/vast/requests" || fc_fail "impression 2 not pinged"
grep -q '^/imp/1$' "$T/vast/requests" || fc_fail "impression 1 not pinged"
fc_log "PASS VAST good: impressions $(grep -c '^/imp/' "$T/vast/requests")"

echo slow >"$T/vast/mode"
listen "$HB" /live.mp3 v2 0 4 b2; wait_done "$FC_LAST_PID"
check b2 none 100
ttfb=$(cat "$T/b2.ttfb")
awk -v t="$ttfb" 'BEGIN { exit !(t > 1.5 && t < 3.0) }' \
  || fc_fail "VAST slow: first byte after $ttfb s, want the 2 s limit"
fc_log "PASS VAST slow: no preroll, first byte after $ttfb s"

echo broken >"$T/vast/mode"
listen "$HB" /live.mp3 v3 0 1 b3; wait_done "$FC_LAST_PID"
check b3 none 100
grep -q "no preroll: VAST: not well-formed XML" "$T/edgeB.log" \
  || fc_fail "VAST broken: no log line"
fc_log "PASS VAST broken: no preroll"

echo good >"$T/vast/mode"
listen "$HB" /live.mp3 v4 0 1 b4; wait_done "$FC_LAST_PID"
check b4 "$T/ad.mp3" 100
media=$(grep -c '^/media/ad.mp3$' "$T/vast/requests")
[ "$media" = 1 ] || fc_fail "media file fetched $media times, want 1 (cached by URL)"
n=$(prom "$HB" preroll_failures_total); p=$(prom "$HB" prerolls_total)
[ "$n" = 2 ] && [ "$p" = 2 ] || fc_fail "edge B preroll_failures_total=$n prerolls_total=$p, want 2 and 2"
fc_log "PASS VAST cached: media fetched once; preroll_failures_total=$n prerolls_total=$p"

# --- edge B: Wrapper chains ----------------------------------------------------------------------
hits() { grep -cxF "$1" "$T/vast/requests"; }
once() {  # once PATH...: each requested exactly once (impressions: within 5 s)
  local p n
  for p in "$@"; do
    wait_until 5 grep -qxF "$p" "$T/vast/requests" || fc_fail "$p never requested"
  done
  for p in "$@"; do
    n=$(hits "$p"); [ "$n" = 1 ] || fc_fail "$p requested $n times, want 1"
  done
}
never() {  # never PATH...
  local p
  for p in "$@"; do [ "$(hits "$p")" = 0 ] || fc_fail "$p requested"; done
}
logged() {  # logged TEXT: edge B logged "no preroll: TEXT"
  grep -qF "no preroll: $1" "$T/edgeB.log" || fc_fail "edge B did not log \"no preroll: $1\""
}
V="http://127.0.0.1:$VP"

echo wrapper >"$T/vast/mode"
listen "$HB" /live.mp3 w1 0 1 bw1; wait_done "$FC_LAST_PID"
check bw1 "$T/ad.mp3" 100
once /imp/w1a /imp/w1b /imp/w2 /imp/i1 /wrap/2 /wrap/inline /media/wad.mp3
fc_log "PASS VAST wrapper chain: clip, impressions w1a w1b w2 i1 once each"

echo "deep 4" >"$T/vast/mode"
listen "$HB" /live.mp3 w2 0 1 bw2; wait_done "$FC_LAST_PID"
check bw2 "$T/ad.mp3" 100
once /imp/d4-0 /imp/d4-1 /imp/d4-2 /imp/d4-3 /imp/d4-in "/deep/4?end=4"
fc_log "PASS VAST 4 Wrappers: clip, 5 impressions once each"

echo loop >"$T/vast/mode"
listen "$HB" /live.mp3 w3 0 1 bw3; wait_done "$FC_LAST_PID"
check bw3 none 100
logged "VAST: Wrapper loop at wrapper hop 2 ($V/loop/b): back to $V/loop/a"
once /loop/a /loop/b
fc_log "PASS VAST Wrapper loop: no preroll"

echo "deep 5" >"$T/vast/mode"
listen "$HB" /live.mp3 w4 0 1 bw4; wait_done "$FC_LAST_PID"
check bw4 none 100
logged "VAST: more than 4 Wrappers at wrapper hop 4 ($V/deep/4?end=5)"
once "/deep/4?end=5"
never "/deep/5?end=5"
fc_log "PASS VAST 5 Wrappers: no preroll"

echo nofollow >"$T/vast/mode"
listen "$HB" /live.mp3 w5 0 1 bw5; wait_done "$FC_LAST_PID"
check bw5 none 100
logged "VAST: a Wrapper at wrapper hop 1 ($V/wrap/2) after followAdditionalWrappers=\"false\""
[ "$(hits /wrap/inline)" = 1 ] || fc_fail "followAdditionalWrappers=false: /wrap/inline asked"
fc_log "PASS VAST followAdditionalWrappers=false then a Wrapper: no preroll"

echo wslow >"$T/vast/mode"
listen "$HB" /live.mp3 w6 0 1 bw6; wait_done "$FC_LAST_PID"
check bw6 none 100
ttfb=$(cat "$T/bw6.ttfb")
awk -v t="$ttfb" 'BEGIN { exit !(t > 1.5 && t < 3.0) }' \
  || fc_fail "VAST wslow: first byte after $ttfb s, want the one 2 s budget"
logged "ad server at wrapper hop 2 ($V/wslow/inline): "
fc_log "PASS VAST three 0.8 s hops: no preroll, first byte after $ttfb s"

# A failed chain pings nothing, and the wrapper chain's once (a listener still in its clip
# cannot have been counted twice: all listeners finished).
sleep 0.3
never /imp/loop /imp/d5-0 /imp/d5-3 /imp/nf /imp/ws /imp/ws-in
once /imp/w1a /imp/w1b /imp/w2 /imp/i1
n=$(prom "$HB" preroll_failures_total); p=$(prom "$HB" prerolls_total)
[ "$n" = 6 ] && [ "$p" = 4 ] || fc_fail "edge B preroll_failures_total=$n prerolls_total=$p, want 6 and 4"
fc_log "PASS VAST Wrapper chains: preroll_failures_total=$n prerolls_total=$p"

fc_alive "$EDGE_A" && fc_alive "$EDGE_B" || fc_fail "an edge died"

# Analytics keeps preroll seconds apart from listening (issue 11): edge A stopped, its sessions
# written; u1's first visit (a_tone, 3 s) and u3's (ICY, a_tone) carry 3 s of preroll, u2's
# c_tone 2 s, u1's return and the ?offset / &preroll=0 ones none; listened = connected - preroll.
FC_KILL_TIMEOUT=10 fc_stop "$EDGE_A"
an=$(python3 - "$T/an.db" <<'PY'
import sqlite3, sys
rows = sqlite3.connect(sys.argv[1]).execute(
    "SELECT ua, preroll_s, listened_s, (end_us - start_us) / 1e6 FROM sessions ORDER BY start_us").fetchall()
want = {"u1": [3.0, 0.0], "u2": [2.0], "u3": [3.0], "u5": [0.0], "u6": [0.0]}
got = {}
for ua, pre, lis, conn in rows:
    got.setdefault(ua, []).append(pre)
    if abs(conn - pre - lis) > 0.01 and lis > 0:
        sys.exit("%s: listened %.3f != connected %.3f - preroll %.3f" % (ua, lis, conn, pre))
for ua, pres in want.items():
    g = got.get(ua, [])
    if len(g) != len(pres) or any(abs(a - b) > 0.1 for a, b in zip(g, pres)):
        sys.exit("%s: preroll_s %s, want %s" % (ua, g, pres))
print(" ".join("%s=%s" % (u, ",".join("%.2f" % x for x in got[u])) for u in sorted(want)))
PY
) || fc_fail "analytics: $an"
fc_log "PASS analytics preroll_s: $an"
fc_log "PASS preroll"
