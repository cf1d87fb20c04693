#!/usr/bin/env bash
# Real players against the edge: icecast2 (upstream, titles set through its admin interface) ->
# --pull shim -> relay -> edge /live.mp3. ffprobe, ffmpeg, mpg123 -t, mpv (--ao=null), VLC (cvlc,
# dummy audio output) and mplayer (if installed) each decode at least 10 s of the mount, exit 0
# and log no error, and every one shows the title. A second title set while they play must reach
# the players that print title changes. Each must also have reached the format served, by its own
# log: the raw ICY stream (ffmpeg/ffprobe demuxer "mp3", VLC "Content-Type: audio/mpeg") decoded
# as MPEG-1 Layer III, 44100 Hz, 2 channels. ffmpeg-hls plays the HLS playlist /live.mp3.m3u8
# (edge --hls-segment 2): its log must show the hls demuxer, the playlist parsed, >= 3 distinct
# segments /live.mp3/hls/N.mp3 fetched, the audio inside them MP3 44100 Hz stereo, and >= 8 s
# decoded. Prints a table: client, exit status, seconds, format reached, decoded, titles.
#
# mpv, VLC and mplayer are optional (apt-get install mpv vlc-bin vlc-plugin-base mplayer): a
# missing one is reported as skipped; ffmpeg, ffprobe and mpg123 are required.
. "$(dirname "$0")/lib.sh"
set -u
fc_need_bin "$FC_BUILD/framecast-shim" "$FC_BUILD/framecast-relay" "$FC_BUILD/framecast-edge"
for b in ffmpeg ffprobe mpg123; do command -v "$b" >/dev/null || fc_fail "$b not installed"; done

# shellcheck disable=SC1112  # the typographic apostrophe is part of the title on purpose
TITLE1='Players Test – Ünïcödé "Title"; O’Brien & Zoë'
TITLE2="Second Title – Café; it's live"

ice=$(free_port); ing=$(free_port); srv=$(free_port); http=$(free_port)
start_icecast "$ice"
start_source_mp3 "$ice" live.mp3
bash "$FC_ROOT/scripts/keygen.sh" "$FC_TMP/mesh.key" >/dev/null
fc_start relay "$FC_BUILD/framecast-relay" --ingest "tcp://127.0.0.1:$ing" --serve "127.0.0.1:$srv" \
  --key "$FC_TMP/mesh.key"
fc_start edge "$FC_BUILD/framecast-edge" --listen "127.0.0.1:$http" --relay "127.0.0.1:$srv" \
  --key "$FC_TMP/mesh.key" --hls-segment 2
edge_pid=$FC_LAST_PID
fc_start shim "$FC_BUILD/framecast-shim" --mount live.mp3 --encoder a \
  --pull "http://127.0.0.1:$ice/live.mp3" --to "tcp://127.0.0.1:$ing" --key "$FC_TMP/mesh.key"
ice_set_title "$ice" live.mp3 "$TITLE1"
URL="http://127.0.0.1:$http/live.mp3"
wait_http "$URL" 15 || fc_fail "edge never served /live.mp3"
# The title must be at the edge before the players connect (each shows the one it joins with).
title1_at_edge() {
  curl -s --max-time 1.5 -H 'Icy-MetaData: 1' "$URL" | grep -aqF "StreamTitle='$TITLE1';"
}
wait_until 5 title1_at_edge || fc_fail "title 1 never reached the edge"

# Players run with a private HOME (mplayer, mpv and VLC write config there).
mkdir -p "$FC_TMP/home"
CLIENTS=()
declare -A PID_OF=() T0_OF=()
run_client() { # NAME CMD...
  fc_start "$1" "${@:2}"
  CLIENTS+=("$1"); PID_OF[$1]=$FC_LAST_PID; T0_OF[$1]=$(now_ms)
}

run_client ffprobe env HOME="$FC_TMP/home" ffprobe -loglevel level+info -read_intervals %+10 \
  -count_frames -show_entries format=format_name:format_tags:stream=codec_name,sample_rate,channels,nb_read_frames \
  -of default "$URL"
run_client ffmpeg env HOME="$FC_TMP/home" ffmpeg -nostdin -hide_banner -nostats \
  -loglevel level+info -i "$URL" -t 10 -f null - -progress "$FC_TMP/ffmpeg.progress"
# HLS: ffmpeg's hls demuxer on the media playlist; verbose, so its log names every URL it opens.
run_client ffmpeg-hls env HOME="$FC_TMP/home" ffmpeg -nostdin -hide_banner -nostats \
  -loglevel level+verbose -i "$URL.m3u8" -t 8 -f null - -progress "$FC_TMP/ffmpeg-hls.progress"
# -n 400 frames = 10.45 s of 44.1 kHz MP3; -t: decode, no output.
run_client mpg123 env HOME="$FC_TMP/home" mpg123 -t -n 400 "$URL"
if command -v mpv >/dev/null; then
  cat >"$FC_TMP/fc_mpv.lua" <<'LUA'
-- print how much audio played and every ICY title mpv sees
local last = 0
mp.observe_property("audio-pts", "number", function(_, v) if v and v > last then last = v end end)
mp.observe_property("metadata/by-key/icy-title", "string", function(_, v)
  if v then mp.msg.info("title: " .. v) end
end)
mp.register_event("shutdown", function() mp.msg.info(string.format("played_s=%.2f", last)) end)
LUA
  run_client mpv env HOME="$FC_TMP/home" mpv --no-config --no-video --ao=null --length=11 \
    --msg-level=statusline=no --script="$FC_TMP/fc_mpv.lua" "$URL"
fi
if command -v cvlc >/dev/null; then
  # VLC refuses to run as root: drop to the unprivileged test user.
  vlc_cmd=(cvlc)
  mkdir -p "$FC_TMP/vlchome"
  if [ "$(id -u)" -eq 0 ]; then
    owner=$(fc_ice_owner)
    chown "$owner" "$FC_TMP/vlchome"
    vlc_cmd=(setpriv --reuid "${owner%%:*}" --regid "${owner##*:}" --clear-groups cvlc)
  fi
  # --stop-time is media time; VLC demuxes the 4 s burst ahead of what it plays, so 13 s, and
  # (its log has no play position) the wall time, minus its 1 s network cache, says what played.
  run_client vlc env HOME="$FC_TMP/vlchome" "${vlc_cmd[@]}" --play-and-exit --aout=dummy \
    --stop-time=13 -vv "$URL"
fi
if command -v mplayer >/dev/null; then
  run_client mplayer env HOME="$FC_TMP/home" mplayer -nolirc -noconsolecontrols -prefer-ipv4 \
    -vo null -ao null -endpos 11 "$URL"
fi

sleep 3
ice_set_title "$ice" live.mp3 "$TITLE2"

# -- collect
declare -A RC_OF=() SECS_OF=()
deadline=$(( $(now_ms) + 40000 ))
while :; do
  left=0
  for c in "${CLIENTS[@]}"; do
    [ -n "${RC_OF[$c]:-}" ] && continue
    if fc_alive "${PID_OF[$c]}"; then
      if [ "$(now_ms)" -ge "$deadline" ]; then
        fc_stop "${PID_OF[$c]}"; RC_OF[$c]="timeout"
      else
        left=1; continue
      fi
    else
      wait_exit "${PID_OF[$c]}" 1; RC_OF[$c]=$FC_WAIT_RC
    fi
    SECS_OF[$c]=$(awk -v a="${T0_OF[$c]}" -v b="$(now_ms)" 'BEGIN{printf "%.1f", (b-a)/1000}')
  done
  [ $left = 0 ] && break
  sleep 0.1
done

log() { tr '\r' '\n' <"$FC_TMP/$1.log"; }
declare -A DECODED_OF=() SHOWED_OF=() PROBLEM_OF=() FORMAT_OF=()
problem() { PROBLEM_OF[$1]="${PROBLEM_OF[$1]:+${PROBLEM_OF[$1]}; }$2"; }
# has CLIENT WHAT FIXED_STRING...: every string must be in CLIENT's log, else a problem "WHAT".
has() {
  local c=$1 what=$2 s; shift 2
  for s in "$@"; do log "$c" | grep -qF -- "$s" || { problem "$c" "format: $what (no '$s' in its log)"; return 1; }; done
}

# ffmpeg and ffprobe log with level+: no [error]/[fatal]/[panic] line may appear
for c in ffprobe ffmpeg ffmpeg-hls; do
  e=$(log "$c" | grep -E '\[(error|fatal|panic)\]' | head -3)
  [ -z "$e" ] || problem "$c" "logged errors: $e"
done
log mpg123 | grep -qiE 'error|warning' && problem mpg123 "logged: $(log mpg123 | grep -iE 'error|warning' | head -3)"

# ffprobe: frames decoded in the first 10 s, icy-* tags and StreamTitle
n=$(log ffprobe | sed -n 's/^nb_read_frames=//p' | head -1)
DECODED_OF[ffprobe]="${n:-0} frames = $(awk -v n="${n:-0}" 'BEGIN{printf "%.1f", n*1152/44100}') s"
awk -v n="${n:-0}" 'BEGIN{exit !(n >= 380)}' || problem ffprobe "decoded ${n:-0} frames (< 380)"
SHOWED_OF[ffprobe]=$(log ffprobe | grep -E '^TAG:(icy-|StreamTitle)' | paste -sd' ' -)
# (ffprobe prints the format tags after reading, so the title may already be the second one)
log ffprobe | grep -qxF -e "TAG:StreamTitle=$TITLE1" -e "TAG:StreamTitle=$TITLE2" \
  || problem ffprobe "no StreamTitle tag with title 1 or 2"
log ffprobe | grep -q '^TAG:icy-name=' || problem ffprobe "no icy-name tag"
log ffprobe | grep -q '^TAG:icy-br=128' || problem ffprobe "no icy-br=128 tag"
has ffprobe "raw MP3 stream, 44100 Hz stereo" format_name=mp3 codec_name=mp3 sample_rate=44100 channels=2 &&
  FORMAT_OF[ffprobe]="raw mp3 44100 2ch"

# ffmpeg: out_time of the null output, no [error]/[fatal] line, title in the input metadata
t=$(sed -n 's/^out_time_us=//p' "$FC_TMP/ffmpeg.progress" 2>/dev/null | tail -1)
DECODED_OF[ffmpeg]="$(awk -v t="${t:-0}" 'BEGIN{printf "%.1f", t/1e6}') s"
awk -v t="${t:-0}" 'BEGIN{exit !(t >= 9.9e6)}' || problem ffmpeg "out_time ${t:-none} us (< 10 s)"
SHOWED_OF[ffmpeg]="StreamTitle: $(log ffmpeg | sed -n 's/^.*StreamTitle *: //p' | head -1)"
log ffmpeg | grep -qF "StreamTitle     : $TITLE1" || problem ffmpeg "title 1 not in the input metadata"
has ffmpeg "raw MP3 stream, 44100 Hz stereo" "Input #0, mp3, from '$URL'" "Stream #0:0: Audio: mp3, 44100 Hz, stereo" &&
  FORMAT_OF[ffmpeg]="raw mp3 44100 stereo"

# ffmpeg-hls: the hls demuxer, the playlist, distinct segments, MP3 inside, 8 s decoded
t=$(sed -n 's/^out_time_us=//p' "$FC_TMP/ffmpeg-hls.progress" 2>/dev/null | tail -1)
DECODED_OF[ffmpeg-hls]="$(awk -v t="${t:-0}" 'BEGIN{printf "%.1f", t/1e6}') s"
awk -v t="${t:-0}" 'BEGIN{exit !(t >= 7.9e6)}' || problem ffmpeg-hls "out_time ${t:-none} us (< 8 s)"
nseg=$(log ffmpeg-hls | grep -oE "Opening 'http://127\.0\.0\.1:$http/live\.mp3/hls/[0-9]+\.mp3' for reading" | sort -u | wc -l)
# (the hls demuxer logs the playlist's tags it skips, once per playlist load)
nload=$(log ffmpeg-hls | grep -cF "Skip ('#EXT-X-VERSION:")
SHOWED_OF[ffmpeg-hls]="playlist loads=$nload, segments opened=$nseg"
if has ffmpeg-hls "HLS playlist /live.mp3.m3u8 with MP3 44100 Hz stereo segments" \
     "Input #0, hls, from '$URL.m3u8'" "Skip ('#EXT-X-VERSION:" \
     "Stream #0:0: Audio: mp3, 44100 Hz, stereo"; then
  if [ "$nseg" -ge 3 ]; then FORMAT_OF[ffmpeg-hls]="hls: m3u8 + $nseg mp3 segments"
  else problem ffmpeg-hls "format: fetched $nseg distinct segments of /live.mp3/hls/ (< 3)"; fi
fi

# mpg123: "[0:10] Decoding of ... finished", ICY-META lines
DECODED_OF[mpg123]=$(log mpg123 | grep -o '\[[0-9]*:[0-9]*\] Decoding of [^ ]* finished' | head -1)
log mpg123 | grep -q '\[0:1[0-9]\] Decoding of live.mp3 finished' || problem mpg123 "did not finish 10 s"
SHOWED_OF[mpg123]=$(log mpg123 | grep -E '^ICY-(NAME|META)' | paste -sd' ' -)
log mpg123 | grep -qF "ICY-META: StreamTitle='$TITLE1';" || problem mpg123 "no ICY-META with title 1"
log mpg123 | grep -qF "ICY-META: StreamTitle='$TITLE2';" || problem mpg123 "no ICY-META with title 2"
has mpg123 "MPEG 1.0 Layer III, 44100 Hz" "MPEG 1.0 L III cbr128 44100" && FORMAT_OF[mpg123]="MPEG 1.0 L III 44100"

if [ -n "${PID_OF[mpv]:-}" ]; then
  p=$(log mpv | sed -n 's/^\[fc_mpv\] played_s=\([0-9.]*\).*/\1/p' | tail -1)
  DECODED_OF[mpv]="${p:-?} s"
  awk -v p="${p:-0}" 'BEGIN{exit !(p >= 10)}' || problem mpv "played ${p:-?} s (< 10)"
  SHOWED_OF[mpv]=$(log mpv | grep -E '^ *icy-title:' | sed 's/^ *//' | paste -sd' ' -)
  log mpv | grep -qF "[fc_mpv] title: $TITLE1" || problem mpv "did not show title 1"
  log mpv | grep -qF "[fc_mpv] title: $TITLE2" || problem mpv "did not show title 2"
  log mpv | grep -q 'Exiting... (End of file)' || problem mpv "did not end at --length"
  has mpv "MP3 2ch 44100 Hz" "Audio --aid=1 (mp3 2ch 44100Hz)" && FORMAT_OF[mpv]="mp3 2ch 44100Hz"
  log mpv | grep -E '^\[(ffmpeg|cplayer|demux|ad|ao)[^]]*\].*(rror|ailed)' >/dev/null && problem mpv "logged an error"
fi

if [ -n "${PID_OF[vlc]:-}" ]; then
  # With no display and no D-Bus, VLC's dbus and hotkeys interfaces fail to load: not our concern.
  errs=$(log vlc | grep -E ' error: ' | grep -vE '^\[[0-9a-f]+\] (dbus interface|main interface|main libvlc) error: (Failed to connect to the D-Bus|no suitable interface module|interface "[a-z]+,none" initialization failed)')
  [ -z "$errs" ] || problem vlc "errors: $(head -3 <<<"$errs")"
  log vlc | grep -q 'main input debug: EOF reached' || problem vlc "input did not reach --stop-time"
  DECODED_OF[vlc]="stop-time 13 reached, ~$(awk -v w="${SECS_OF[vlc]}" 'BEGIN{printf "%.1f", w-1}') s played"
  awk -v w="${SECS_OF[vlc]}" 'BEGIN{exit !(w >= 11)}' || problem vlc "ran only ${SECS_OF[vlc]} s (< 11 s = 10 s played + 1 s cache)"
  SHOWED_OF[vlc]=$(log vlc | grep -o 'New Icy-Title=.*' | sort -u | paste -sd' ' -)
  log vlc | grep -qF "New Icy-Title=$TITLE1" || problem vlc "did not show title 1"
  log vlc | grep -qF "New Icy-Title=$TITLE2" || problem vlc "did not show title 2"
  has vlc "audio/mpeg, MPGA 2ch 44100 Hz" "http stream debug: Content-Type: audio/mpeg" \
    "MPGA channels:2 samplerate:44100 bitrate:128" && FORMAT_OF[vlc]="audio/mpeg MPGA 44100 2ch"
fi

if [ -n "${PID_OF[mplayer]:-}" ]; then
  a=$(log mplayer | grep -o '^A: *[0-9.]*' | tail -1 | awk '{print $2}')
  DECODED_OF[mplayer]="A: ${a:-?} s"
  awk -v a="${a:-0}" 'BEGIN{exit !(a >= 10)}' || problem mplayer "played ${a:-?} s (< 10)"
  SHOWED_OF[mplayer]=$(log mplayer | grep -E '^ICY Info:|^Name *:' | paste -sd' ' -)
  log mplayer | grep -qF "ICY Info: StreamTitle='$TITLE1';" || problem mplayer "did not show title 1"
  log mplayer | grep -qF "ICY Info: StreamTitle='$TITLE2';" || problem mplayer "did not show title 2"
  log mplayer | grep -q 'Exiting... (End of file)' || problem mplayer "did not end at -endpos"
  has mplayer "MPEG audio 44100 Hz 2 ch" "Selected audio codec: [mpg123]" "AUDIO: 44100 Hz, 2 ch" &&
    FORMAT_OF[mplayer]="mpg123 44100 2ch"
fi

# -- table
fail=0
printf '\n%-10s | %-4s | %-7s | %-28s | %-26s | %s\n' client exit wall_s "format reached" decoded "what it showed"
printf '%s\n' "-----------+------+---------+------------------------------+----------------------------+---------------"
for c in "${CLIENTS[@]}"; do
  [ "${RC_OF[$c]}" = 0 ] || problem "$c" "exit status ${RC_OF[$c]}"
  [ -n "${FORMAT_OF[$c]:-}" ] || [[ "${PROBLEM_OF[$c]:-}" == *format:* ]] || problem "$c" "no format asserted"
  printf '%-10s | %-4s | %-7s | %-28s | %-26s | %s\n' "$c" "${RC_OF[$c]}" "${SECS_OF[$c]}" \
    "${FORMAT_OF[$c]:-?}" "${DECODED_OF[$c]:-}" "${SHOWED_OF[$c]:-}"
done
for c in mpv vlc mplayer; do
  [ -z "${PID_OF[$c]:-}" ] && printf '%-8s | skipped (not installed)\n' "$c"
done
echo
for c in "${CLIENTS[@]}"; do
  if [ -n "${PROBLEM_OF[$c]:-}" ]; then
    echo "players: $c: ${PROBLEM_OF[$c]}"; fail=1
  fi
done
fc_alive "$edge_pid" || fc_fail "edge died"
[ $fail = 0 ] || fc_fail "some players did not decode cleanly or show the title (see above)"
echo "players: PASS clients=${CLIENTS[*]} hls_segments=$nseg"
