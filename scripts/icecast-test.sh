#!/usr/bin/env bash
# Starts a throwaway icecast2 on loopback fed by ffmpeg in real time, for poking at by hand:
#   /live.mp3  MP3 128 kbit/s 44.1 kHz stereo (audio/mpeg)
#   /live.aac  AAC-LC 96 kbit/s 48 kHz stereo in ADTS (audio/aac)
# The config is generated in a temp dir (same as the integration tests); Ctrl-C stops it all.
# Usage: scripts/icecast-test.sh [PORT]     (default: a free port; FC_KEEP=1 keeps the temp dir)
set -euo pipefail
# shellcheck disable=SC2034  # read by lib.sh
FC_NAME=icecast-test
. "$(dirname "$0")/../tests/integration/lib.sh"

port="${1:-$(free_port)}"
port_listening "$port" && fc_fail "port $port is already in use"
trap 'echo; fc_log "stopping"; exit 0' INT TERM

start_icecast "$port"
start_source_mp3 "$port" live.mp3
start_source_adts "$port" live.aac
ice_set_title "$port" live.mp3 "framecast test signal (mp3)" || true
ice_set_title "$port" live.aac "framecast test signal (aac)" || true

cat <<INFO

  icecast2 on 127.0.0.1:$port
    http://127.0.0.1:$port/live.mp3
    http://127.0.0.1:$port/live.aac
    status: http://127.0.0.1:$port/status-json.xsl
    source password: $FC_ICE_PASSWORD   (title: curl -u source:PW 'http://127.0.0.1:$port/admin/metadata?mount=/live.mp3&mode=updinfo&song=T')
    config and logs: $FC_TMP
  Ctrl-C stops it.

INFO
while fc_alive "$FC_ICE_PID"; do sleep 1; done
fc_fail "icecast2 exited"
