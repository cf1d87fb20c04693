#!/usr/bin/env bash
# framecast demo on loopback: icecast2 fed by ffmpeg with a generated tune (MP3 mount /demo.mp3)
# -> framecast-shim -> TCP to relay 1 and UDP to relay 2 -> framecast-edge on 127.0.0.1:8000.
# Prints the URL to play, then runs until Ctrl-C; stops everything it started, by PID.
#
# Env (all optional):
#   FC_EDGE_PORT   edge listen port              (default 8000)
#   FC_ICE_PORT    icecast2 port                 (default: a free port)
#   FC_RELAY1_IN / FC_RELAY1_SERVE  relay 1 ports (default 9001 / 8101)
#   FC_RELAY2_IN / FC_RELAY2_SERVE  relay 2 ports (default 9002 / 8102)
#   FC_MOUNT       mount name                    (default demo.mp3)
#   FC_BUILD       where the binaries are        (default ./build)
#   FC_KEEP=1      keep the temp dir with logs and key after stopping
#   FC_DEMO_SECONDS  stop by itself after this many seconds (for scripted checks)
set -euo pipefail
# shellcheck disable=SC2034  # read by lib.sh
FC_NAME=demo
. "$(dirname "$0")/../tests/integration/lib.sh"

EDGE_PORT="${FC_EDGE_PORT:-8000}"
R1_IN="${FC_RELAY1_IN:-9001}";   R1_SRV="${FC_RELAY1_SERVE:-8101}"
R2_IN="${FC_RELAY2_IN:-9002}";   R2_SRV="${FC_RELAY2_SERVE:-8102}"
MOUNT="${FC_MOUNT:-demo.mp3}"
ICE="${FC_ICE_PORT:-$(free_port)}"
KEY="$FC_TMP/framecast.key"

SHIM="$FC_BUILD/framecast-shim"; RELAY="$FC_BUILD/framecast-relay"; EDGE="$FC_BUILD/framecast-edge"
for b in "$SHIM" "$RELAY" "$EDGE"; do
  [ -x "$b" ] || fc_fail "missing $b: build first (make), or run 'make demo'"
done
for t in icecast2 ffmpeg curl; do
  command -v "$t" >/dev/null || fc_fail "missing $t: run scripts/install-deps.sh"
done
for p in "$EDGE_PORT" "$ICE" "$R1_IN" "$R1_SRV" "$R2_IN" "$R2_SRV"; do
  port_listening "$p" && fc_fail "port $p is already in use (set FC_EDGE_PORT, FC_ICE_PORT, FC_RELAY1_IN, ...)"
done

# Ctrl-C is the normal way to stop the demo: exit 0, and the EXIT trap stops everything by PID.
trap 'echo; fc_log "stopping"; exit 0' INT TERM

# A pleasant tune: a plucked pentatonic arpeggio, four notes a second, over a I-vi-IV-V bass line
# that changes every 2 s. st()/ld() keep the note index and chord root in registers. Every
# envelope has a 5 ms attack and reaches zero at the end of its note, so pitch changes don't click.
TUNE="aevalsrc=exprs='\
st(0, mod(floor(t*4), 8));\
st(1, eq(ld(0),1)*4 + eq(ld(0),2)*7 + eq(ld(0),3)*12 + eq(ld(0),4)*16 + eq(ld(0),5)*12 + eq(ld(0),6)*7 + eq(ld(0),7)*4);\
st(2, eq(mod(floor(t/2),4),1)*(-3) + eq(mod(floor(t/2),4),2)*5 + eq(mod(floor(t/2),4),3)*7);\
st(3, mod(t,0.25)); st(4, mod(t,2)); st(5, mod(t,0.5));\
0.35*min(1,ld(3)*200)*exp(-6*ld(3))*(1-4*ld(3))*sin(2*PI*262*pow(2,(ld(1)+ld(2))/12)*t)\
+ 0.20*min(1,ld(4)*200)*exp(-1.0*ld(4))*(1-ld(4)/2)*sin(2*PI*131*pow(2,ld(2)/12)*t)\
+ 0.07*min(1,ld(5)*200)*exp(-3*ld(5))*(1-2*ld(5))*sin(2*PI*524*pow(2,ld(2)/12)*t)'\
:s=44100:c=stereo[out0]"

fc_log "starting icecast2 on 127.0.0.1:$ICE"
start_icecast "$ICE"
start_source_mp3 "$ICE" "$MOUNT" "$TUNE"
ice_set_title "$ICE" "$MOUNT" "framecast demo tune" || true

bash "$FC_ROOT/scripts/keygen.sh" "$KEY" 2>/dev/null

fc_log "starting relays (tcp :$R1_IN -> serve :$R1_SRV, udp :$R2_IN -> serve :$R2_SRV)"
fc_start relay1 "$RELAY" --ingest "tcp://127.0.0.1:$R1_IN" --ingest "udp://127.0.0.1:$R1_IN" \
  --serve "127.0.0.1:$R1_SRV" --key "$KEY"
fc_start relay2 "$RELAY" --ingest "tcp://127.0.0.1:$R2_IN" --ingest "udp://127.0.0.1:$R2_IN" \
  --serve "127.0.0.1:$R2_SRV" --key "$KEY"
wait_until 5 port_listening "$R1_SRV" || fc_fail "relay 1 did not start (see relay1.log)"
wait_until 5 port_listening "$R2_SRV" || fc_fail "relay 2 did not start (see relay2.log)"

fc_log "starting edge on 127.0.0.1:$EDGE_PORT"
fc_start edge "$EDGE" --listen "127.0.0.1:$EDGE_PORT" \
  --relay "127.0.0.1:$R1_SRV" --relay "127.0.0.1:$R2_SRV" --key "$KEY"
fc_start shim "$SHIM" --mount "$MOUNT" --encoder a --pull "http://127.0.0.1:$ICE/$MOUNT" \
  --to "tcp://127.0.0.1:$R1_IN" --to "udp://127.0.0.1:$R2_IN" --key "$KEY"

URL="http://127.0.0.1:$EDGE_PORT/$MOUNT"
wait_http "$URL" 15 || fc_fail "the edge does not serve $URL after 15 s (logs below)"

cat <<EOF

  framecast demo is running.
    Play:   mpv $URL
            vlc $URL
            mplayer $URL
    Mounts: curl http://127.0.0.1:$EDGE_PORT/
    Direct from icecast2 (for comparison): http://127.0.0.1:$ICE/$MOUNT
    Logs:   $FC_TMP/*.log   (FC_KEEP=1 keeps them after stopping)
  Ctrl-C stops everything.

EOF

# Watch the processes; report (once) any that dies.
declare -A reported=()
started=$SECONDS
while :; do
  for p in "${FC_PIDS[@]}"; do
    if ! fc_alive "$p" && [ -z "${reported[$p]:-}" ]; then
      reported[$p]=1
      fc_log "WARNING: ${FC_PID_NAME[$p]} (pid $p) exited; last lines of its log:"
      tail -n 5 "$FC_TMP/${FC_PID_NAME[$p]}.log" >&2 || true
    fi
  done
  if [ -n "${FC_DEMO_SECONDS:-}" ] && [ $(( SECONDS - started )) -ge "$FC_DEMO_SECONDS" ]; then
    fc_log "FC_DEMO_SECONDS=$FC_DEMO_SECONDS reached, stopping"
    exit 0
  fi
  sleep 1
done
