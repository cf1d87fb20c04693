#!/usr/bin/env bash
# The web player in a real browser: Debian's chromium, headless, driven by playwright-core
# (tests/browser). A source pushes to the shim and sets a title; the page at / must list the
# mount with its title and its format (asserted: "MP3 ~128 kbit/s, 44.1 kHz, stereo"), play it over
# HLS (hls.js) and over the raw stream, and a screenshot is kept as docs/web-player.png. What each
# mode fetched is asserted from the browser's network events (player.mjs): HLS really fetched
# /radio.mp3.m3u8 (200, mpegurl) and >= 2 segments (200, audio/mpeg) and not the raw stream; raw
# fetched /radio.mp3 (200, audio/mpeg) and no HLS. A page that silently falls back to the raw
# stream in HLS mode (hls.js missing) fails.
#
# Env: FC_SCREENSHOT=FILE writes the screenshot there instead of docs/web-player.png.
. "$(dirname "$0")/lib.sh"
set -u
fc_need_bin "$FC_BUILD/framecast-shim" "$FC_BUILD/framecast-relay" "$FC_BUILD/framecast-edge"
command -v chromium >/dev/null || fc_fail "chromium not installed (scripts/install-deps.sh)"
[ -d "$FC_ROOT/tests/browser/node_modules/playwright-core" ] || fc_fail "playwright-core missing (scripts/install-deps.sh)"
[ -f "$FC_ROOT/web/vendor/node_modules/hls.js/dist/hls.min.js" ] || fc_fail "hls.js missing (scripts/install-deps.sh)"

bash "$FC_ROOT/scripts/keygen.sh" "$FC_TMP/mesh.key" >/dev/null
ffmpeg -v error -nostdin -f lavfi -i "$FC_SIG_MP3" -t 30 -c:a libmp3lame -b:a 128k -ar 44100 \
  -ac 2 "$FC_TMP/src.mp3" || fc_fail "ffmpeg could not make the source file"
src=$(free_port); ing=$(free_port); srv=$(free_port); http=$(free_port)
fc_start relay "$FC_BUILD/framecast-relay" --ingest "tcp://127.0.0.1:$ing" --serve "127.0.0.1:$srv" \
  --key "$FC_TMP/mesh.key"
fc_start edge "$FC_BUILD/framecast-edge" --listen "127.0.0.1:$http" --relay "127.0.0.1:$srv" \
  --key "$FC_TMP/mesh.key" --hls-segment 2
fc_start shim "$FC_BUILD/framecast-shim" --mount radio.mp3 --encoder a \
  --source-listen "127.0.0.1:$src" --source-password pw --to "tcp://127.0.0.1:$ing" \
  --key "$FC_TMP/mesh.key"
wait_until 5 port_listening "$src" || fc_fail "shim not listening for sources"
fc_start source ffmpeg -hide_banner -nostdin -loglevel warning -re -stream_loop -1 \
  -i "$FC_TMP/src.mp3" -c copy -content_type audio/mpeg -ice_name "framecast demo" -f mp3 \
  "icecast://source:pw@127.0.0.1:$src/radio.mp3"
wait_http "http://127.0.0.1:$http/radio.mp3" 15 || fc_fail "edge never served /radio.mp3"
title="Morning Show – Zoë's picks"
curl -s -o /dev/null -u source:pw -G --data-urlencode mount=/radio.mp3 --data-urlencode mode=updinfo \
  --data-urlencode "song=$title" "http://127.0.0.1:$src/admin/metadata" || fc_fail "admin/metadata failed"
sleep 8 # a few HLS segments for hls.js to start from
shot=${FC_SCREENSHOT:-$FC_ROOT/docs/web-player.png}
mkdir -p "$(dirname "$shot")"
out=$(cd "$FC_ROOT/tests/browser" && timeout 90 node player.mjs "http://127.0.0.1:$http" radio.mp3 \
  "$title" "$shot" '^MP3 1(2[4-9]|3[0-2]) kbit/s, 44\.1 kHz, stereo$' 2>&1) || fc_fail "browser: $out"
echo "$out"
echo "web_player: PASS $(sed -n 's/^player: \(hls\|raw\) played, /\1: /p' <<<"$out" | paste -sd'|' -) screenshot=$shot"
