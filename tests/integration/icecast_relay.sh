#!/usr/bin/env bash
# framecast as an origin for an existing Icecast fleet: a second icecast2, configured with a
# <relay> whose master is the edge (mount /live.mp3 -> local-mount /relayed.mp3, with
# relay-shoutcast-metadata), serves listeners the edge's audio byte for byte and the titles set
# upstream.
#
#   icecast2 #1 (ffmpeg source, titles via admin) -> shim --pull -> relay -> edge
#   edge /live.mp3 -> icecast2 #2 <relay> -> /relayed.mp3 -> curl / ICY listener
. "$(dirname "$0")/lib.sh"
set -u
fc_need_bin "$FC_BUILD/framecast-shim" "$FC_BUILD/framecast-relay" "$FC_BUILD/framecast-edge" \
  "$FC_BUILD/tools/framecmp"

TITLE1="Relay Test – Ünïcödé \"one\"; O'Brien"
TITLE2="Second – Café & Zoë; #2"

# start_icecast_relay PORT MASTER_PORT MOUNT LOCAL_MOUNT: an icecast2 like lib.sh's start_icecast
# (same limits, loopback only, drops root) plus a <relay> section pulling MOUNT from
# 127.0.0.1:MASTER_PORT with ICY metadata. Sets RELAY_ICE_PID.
start_icecast_relay() {
  local port=$1 master=$2 mount=$3 local_mount=$4 dir="$FC_TMP/icecast-relay" security="" owner
  command -v icecast2 >/dev/null || fc_fail "icecast2 not installed (scripts/install-deps.sh)"
  mkdir -p "$dir/log"
  if [ "$(id -u)" -eq 0 ]; then
    owner=$(fc_ice_owner)
    chown -R "$owner" "$dir"
    security="<security><chroot>0</chroot><changeowner><user>${owner%%:*}</user><group>${owner##*:}</group></changeowner></security>"
  fi
  cat >"$dir/icecast.xml" <<EOF
<icecast>
  <location>framecast relay test</location>
  <admin>root@localhost</admin>
  <hostname>127.0.0.1</hostname>
  <limits>
    <clients>100</clients>
    <sources>8</sources>
    <queue-size>1048576</queue-size>
    <header-timeout>15</header-timeout>
    <source-timeout>10</source-timeout>
    <burst-size>65536</burst-size>
  </limits>
  <authentication>
    <source-password>$FC_ICE_PASSWORD</source-password>
    <relay-password>$FC_ICE_PASSWORD</relay-password>
    <admin-user>admin</admin-user>
    <admin-password>$FC_ICE_PASSWORD</admin-password>
  </authentication>
  <relay>
    <server>127.0.0.1</server>
    <port>$master</port>
    <mount>/${mount#/}</mount>
    <local-mount>/${local_mount#/}</local-mount>
    <on-demand>0</on-demand>
    <relay-shoutcast-metadata>1</relay-shoutcast-metadata>
  </relay>
  <listen-socket>
    <port>$port</port>
    <bind-address>127.0.0.1</bind-address>
  </listen-socket>
  <fileserve>1</fileserve>
  <paths>
    <basedir>$dir</basedir>
    <logdir>$dir/log</logdir>
    <pidfile>$dir/icecast.pid</pidfile>
    <webroot>/usr/share/icecast2/web</webroot>
    <adminroot>/usr/share/icecast2/admin</adminroot>
    <mime-types>/etc/mime.types</mime-types>
  </paths>
  <logging>
    <accesslog>access.log</accesslog>
    <errorlog>error.log</errorlog>
    <loglevel>3</loglevel>
  </logging>
  $security
</icecast>
EOF
  fc_start icecast-relay icecast2 -c "$dir/icecast.xml"
  RELAY_ICE_PID=$FC_LAST_PID
  if ! wait_http "http://127.0.0.1:$port/status-json.xsl" 10; then
    fc_alive "$RELAY_ICE_PID" || fc_fail "icecast2 (relay) exited at start (see icecast-relay.log)"
    fc_fail "icecast2 (relay) not answering on 127.0.0.1:$port after 10 s"
  fi
}

ice=$(free_port); ing=$(free_port); srv=$(free_port); http=$(free_port); ice2=$(free_port)
start_icecast "$ice"
start_source_mp3 "$ice" live.mp3
ice_set_title "$ice" live.mp3 "$TITLE1"
bash "$FC_ROOT/scripts/keygen.sh" "$FC_TMP/mesh.key" >/dev/null
fc_start relay "$FC_BUILD/framecast-relay" --ingest "tcp://127.0.0.1:$ing" --serve "127.0.0.1:$srv" \
  --key "$FC_TMP/mesh.key"
fc_start edge "$FC_BUILD/framecast-edge" --listen "127.0.0.1:$http" --relay "127.0.0.1:$srv" \
  --key "$FC_TMP/mesh.key"
edge_pid=$FC_LAST_PID
fc_start shim "$FC_BUILD/framecast-shim" --mount live.mp3 --encoder a \
  --pull "http://127.0.0.1:$ice/live.mp3" --to "tcp://127.0.0.1:$ing" --key "$FC_TMP/mesh.key"
wait_http "http://127.0.0.1:$http/live.mp3" 15 || fc_fail "edge never served /live.mp3"

# The edge's own output, recorded from before icecast2 #2 connects until after its listeners end.
record "http://127.0.0.1:$http/live.mp3" "$FC_TMP/edge.mp3" 24
edge_rec=$FC_LAST_PID

start_icecast_relay "$ice2" "$http" live.mp3 relayed.mp3
wait_http "http://127.0.0.1:$ice2/relayed.mp3" 15 || fc_fail "icecast2 #2 never served /relayed.mp3"
grep -q "listener=.*mount=live.mp3 start" "$FC_TMP/edge.log" || fc_fail "edge logged no listener"

# An ICY listener on icecast2 #2: audio between the blocks, each title with its arrival time.
cat >"$FC_TMP/icy.py" <<'PY'
import socket, sys, time
port, path, secs, audio_path, titles_path, head_path = (int(sys.argv[1]), sys.argv[2],
    float(sys.argv[3]), sys.argv[4], sys.argv[5], sys.argv[6])
s = socket.create_connection(("127.0.0.1", port), timeout=5)
s.sendall(b"GET " + path.encode() + b" HTTP/1.0\r\nHost: x\r\nIcy-MetaData: 1\r\n\r\n")
buf = b""
while b"\r\n\r\n" not in buf:
    d = s.recv(4096)
    if not d:
        print("closed before the headers:", buf); sys.exit(1)
    buf += d
head, rest = buf.split(b"\r\n\r\n", 1)
open(head_path, "wb").write(head + b"\r\n")
metaint = None
for line in head.split(b"\r\n"):
    if line.lower().startswith(b"icy-metaint:"):
        metaint = int(line.split(b":", 1)[1])
if not metaint:
    print("no icy-metaint header:", head); sys.exit(1)
audio, titles = open(audio_path, "wb"), open(titles_path, "w", encoding="utf-8")
data, end, left = rest, time.time() + secs, metaint
s.settimeout(0.5)
while time.time() < end:
    while True:
        if left > 0:
            take = min(left, len(data))
            audio.write(data[:take]); data = data[take:]; left -= take
            if left > 0: break
        if not data: break
        n = data[0] * 16
        if len(data) < 1 + n: break
        block = data[1:1 + n]; data = data[1 + n:]; left = metaint
        if n:
            text = block.rstrip(b"\0").decode("utf-8", "backslashreplace")
            titles.write("%.3f\t%s\n" % (time.time(), text)); titles.flush()
    try:
        chunk = s.recv(65536)
    except socket.timeout:
        continue
    if not chunk: break
    data += chunk
PY
record "http://127.0.0.1:$ice2/relayed.mp3" "$FC_TMP/relayed.mp3" 14 "$FC_TMP/relayed.head"
rel_rec=$FC_LAST_PID
fc_start icylistener python3 "$FC_TMP/icy.py" "$ice2" /relayed.mp3 14 "$FC_TMP/relayed_icy.mp3" \
  "$FC_TMP/titles.txt" "$FC_TMP/icy.head"
icy_pid=$FC_LAST_PID
sleep 5
t2=$(python3 -c 'import time; print("%.3f" % time.time())')
ice_set_title "$ice" live.mp3 "$TITLE2"

wait_exit "$icy_pid" 20 || fc_fail "ICY listener on icecast2 #2 did not finish"
[ "$FC_WAIT_RC" = 0 ] || fc_fail "ICY listener on icecast2 #2 failed (see icylistener.log)"
wait_exit "$rel_rec" 5 || fc_fail "curl on icecast2 #2 did not finish"
[ "$FC_WAIT_RC" = 28 ] || fc_fail "curl on icecast2 #2 ended early (exit $FC_WAIT_RC, want 28 = ran its time)"
wait_exit "$edge_rec" 15 || fc_fail "edge recording did not finish"

echo "--- icecast2 #2 /relayed.mp3 headers (Icy-MetaData: 1):"; tr -d '\r' <"$FC_TMP/icy.head"
echo "--- titles from icecast2 #2:"; cat "$FC_TMP/titles.txt"
grep -qF "StreamTitle='$TITLE1';" "$FC_TMP/titles.txt" \
  || fc_fail "title 1 (set before icecast2 #2 connected) never reached its ICY listener"
line=$(grep -F "StreamTitle='$TITLE2';" "$FC_TMP/titles.txt" | head -1)
[ -n "$line" ] || fc_fail "title 2 (set while playing) never reached the ICY listener on icecast2 #2"
delay=$(awk -v a="${line%%	*}" -v b="$t2" 'BEGIN{printf "%.2f", a-b}')
fc_log "title 2 reached icecast2 #2's listener ${delay} s after it was set upstream"
awk -v d="$delay" 'BEGIN{exit !(d <= 5.0)}' || fc_fail "title 2 took ${delay} s through the relay (> 5 s)"

out1=$("$FC_BUILD/tools/framecmp" --codec mp3 --min-frames 450 "$FC_TMP/edge.mp3" "$FC_TMP/relayed.mp3") \
  || fc_fail "curl listener on icecast2 #2 vs the edge: $out1"
echo "relayed (plain) vs edge: $out1"
out2=$("$FC_BUILD/tools/framecmp" --codec mp3 --min-frames 450 "$FC_TMP/edge.mp3" "$FC_TMP/relayed_icy.mp3") \
  || fc_fail "ICY listener on icecast2 #2 vs the edge: $out2"
echo "relayed (ICY) vs edge: $out2"
grep -aq "StreamTitle=" "$FC_TMP/relayed.mp3" && fc_fail "a plain listener on icecast2 #2 got ICY blocks"
fc_alive "$RELAY_ICE_PID" || fc_fail "icecast2 #2 died"
fc_alive "$edge_pid" || fc_fail "edge died"
frames=$(sed -n "s/^framecmp: frames=\([0-9]*\).*/\1/p" <<<"$out1")
echo "icecast_relay: PASS frames=$frames title_delay_s=$delay"
