#!/usr/bin/env bash
# Icecast source push at the shim (--source-listen), with real source clients:
#  - ffmpeg pushes an MP3 file (-c copy, so the bytes are known) with PUT + Expect: 100-continue and
#    ice-* headers; an Icy-MetaData listener on the edge gets those frames byte-identical and the
#    ice-* values as icy-* headers;
#  - ezstream (libshout: SOURCE, titles via /admin/metadata) pushes another file to a second shim;
#  - /admin/metadata with charset=ISO-8859-1 (song=Caf%E9) reaches the ICY listener as UTF-8 "Café"
#    within 2 s, and a title with quotes, ';' and non-ASCII survives intact;
#  - refusals: wrong password 401, busy mount 403, other mount 404, video/mp4 415, garbage 400,
#    9 KB of headers 431, a connection that sends nothing is closed after ~10 s, and a source that
#    stops sending but keeps its socket (SOURCE method, on a third shim) is dropped ~10 s after its
#    last byte.
. "$(dirname "$0")/lib.sh"
set -u
fc_need_bin "$FC_BUILD/framecast-shim" "$FC_BUILD/framecast-relay" "$FC_BUILD/framecast-edge" \
  "$FC_BUILD/tools/framecmp"
command -v ffmpeg >/dev/null || fc_fail "ffmpeg not installed"
PW="push-pw-$$"
PUSH_S=20

mkmp3() { # SECONDS FILE: an MP3 of bare frames (no ID3, no Xing), so a -c copy push is byte-known
  ffmpeg -v error -nostdin -f lavfi -i "$FC_SIG_MP3" -t "$1" -c:a libmp3lame -b:a 128k -ar 44100 \
    -ac 2 -id3v2_version 0 -write_xing 0 -f mp3 "$2" || fc_fail "ffmpeg could not make $2"
}
mkmp3 "$PUSH_S" "$FC_TMP/src.mp3"
mkdir -p "$FC_TMP/ez"
mkmp3 12 "$FC_TMP/ez/Ezstream Title.mp3"

ing=$(free_port); srv=$(free_port); http=$(free_port)
srcA=$(free_port); srcB=$(free_port); srcC=$(free_port)
bash "$FC_ROOT/scripts/keygen.sh" "$FC_TMP/mesh.key" >/dev/null
fc_start relay "$FC_BUILD/framecast-relay" --ingest "tcp://127.0.0.1:$ing" --serve "127.0.0.1:$srv" \
  --key "$FC_TMP/mesh.key"
fc_start edge "$FC_BUILD/framecast-edge" --listen "127.0.0.1:$http" --relay "127.0.0.1:$srv" \
  --key "$FC_TMP/mesh.key"
edge_pid=$FC_LAST_PID
shim() { # NAME MOUNT PORT
  fc_start "$1" "$FC_BUILD/framecast-shim" --mount "$2" --encoder a --source-listen "127.0.0.1:$3" \
    --source-password "$PW" --to "tcp://127.0.0.1:$ing" --key "$FC_TMP/mesh.key"
}
shim shimA live.mp3 "$srcA"; shimA_pid=$FC_LAST_PID
shim shimB stall.mp3 "$srcB"; shimB_pid=$FC_LAST_PID
shim shimC ez.mp3 "$srcC"; shimC_pid=$FC_LAST_PID
for p in "$srcA" "$srcB" "$srcC"; do
  wait_until 5 port_listening "$p" || fc_fail "a shim is not listening on source port $p"
done

# -- raw source-protocol clients (status checks, the idle connection, the stalled source)
cat >"$FC_TMP/raw.py" <<'PY'
import base64, socket, sys, time

def status(port, data, timeout=5):
    """Send data, return the status code of the answer (0 if none)."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    try:
        s.sendall(data)
    except OSError:
        pass
    buf = b""
    try:
        while b"\r\n" not in buf:
            d = s.recv(4096)
            if not d:
                break
            buf += d
    except OSError as e:
        print("recv:", e, file=sys.stderr)
    s.close()
    parts = buf.split(b" ", 2)
    return int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 0

def wait_close(s, limit):
    """Seconds until the peer closes s (None if not within limit)."""
    t0 = time.time()
    s.settimeout(limit)
    try:
        while True:
            d = s.recv(4096)
            if not d:
                return time.time() - t0
    except socket.timeout:
        return None
    except ConnectionResetError:
        return time.time() - t0

def auth(pw):
    return b"Authorization: Basic " + base64.b64encode(b"source:" + pw.encode()) + b"\r\n"

cmd = sys.argv[1]
if cmd == "status":           # status PORT PYTHON-BYTES-EXPR
    print(status(int(sys.argv[2]), eval(sys.argv[3])))
elif cmd == "idle":           # idle PORT: connect, send nothing, time until closed
    s = socket.create_connection(("127.0.0.1", int(sys.argv[2])), timeout=5)
    dt = wait_close(s, 25)
    print("idle_closed_after_s=%s" % ("never" if dt is None else "%.2f" % dt))
elif cmd == "stall":          # stall PORT MOUNT PW MP3 SECONDS: SOURCE, audio for SECONDS, stall
    port, mount, pw, path, secs = int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5], float(sys.argv[6])
    audio = open(path, "rb").read()
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    s.sendall(b"SOURCE /" + mount.encode() + b" ICE/1.0\r\n" + auth(pw) +
              b"Content-Type: audio/mpeg\r\nice-name: stalling source\r\n\r\n")
    resp = b""
    while b"\r\n\r\n" not in resp:
        d = s.recv(4096)
        if not d:
            print("closed during handshake:", resp); sys.exit(1)
        resp += d
    if not resp.startswith(b"HTTP/1.0 200"):
        print("handshake answer:", resp); sys.exit(1)
    rate, sent, t0 = 16000, 0, time.time()   # 128 kbit/s, in real time
    while time.time() - t0 < secs:
        want = int((time.time() - t0 + 0.5) * rate)
        if want > sent:
            s.sendall(audio[sent:want]); sent = want
        time.sleep(0.05)
    print("sent %d bytes in %.1f s, now stalling" % (sent, secs), flush=True)
    dt = wait_close(s, 30)
    print("stall_dropped_after_s=%s" % ("never" if dt is None else "%.2f" % dt))
PY
raw() { python3 "$FC_TMP/raw.py" "$@"; }
fc_start idle python3 "$FC_TMP/raw.py" idle "$srcA"; idle_pid=$FC_LAST_PID
fc_start stall python3 "$FC_TMP/raw.py" stall "$srcB" stall.mp3 "$PW" "$FC_TMP/src.mp3" 3
stall_pid=$FC_LAST_PID

# -- ffmpeg pushes (PUT) to shim A in real time
ICE_NAME="Framecast Push Test"; ICE_GENRE="Jazz & Blues"; ICE_DESC="A pushed stream; tested"
ICE_URL="http://push.example.org/station"
fc_start push ffmpeg -hide_banner -nostdin -loglevel warning -re -i "$FC_TMP/src.mp3" -c copy \
  -f mp3 -content_type audio/mpeg -ice_name "$ICE_NAME" -ice_genre "$ICE_GENRE" \
  -ice_description "$ICE_DESC" -ice_url "$ICE_URL" \
  "icecast://source:$PW@127.0.0.1:$srcA/live.mp3"
push_pid=$FC_LAST_PID
t_push=$(now_ms)

# -- ezstream (libshout) pushes to shim C, if installed
have_ez=0
if command -v ezstream >/dev/null; then
  have_ez=1
  cat >"$FC_TMP/ez/ezstream.xml" <<EOF
<?xml version="1.0" encoding="UTF-8"?>
<ezstream>
  <servers>
    <server>
      <protocol>HTTP</protocol>
      <hostname>127.0.0.1</hostname>
      <port>$srcC</port>
      <user>source</user>
      <password>$PW</password>
      <tls>None</tls>
      <reconnect_attempts>0</reconnect_attempts>
    </server>
  </servers>
  <streams>
    <stream>
      <mountpoint>/ez.mp3</mountpoint>
      <format>MP3</format>
      <stream_name>EZ Station</stream_name>
      <stream_genre>EZ Genre</stream_genre>
      <stream_description>pushed by ezstream</stream_description>
      <stream_url>http://ez.example.org/</stream_url>
      <stream_bitrate>128</stream_bitrate>
      <stream_samplerate>44100</stream_samplerate>
      <stream_channels>2</stream_channels>
    </stream>
  </streams>
  <intakes>
    <intake>
      <type>file</type>
      <filename>$FC_TMP/ez/Ezstream Title.mp3</filename>
      <stream_once>Yes</stream_once>
    </intake>
  </intakes>
</ezstream>
EOF
  chmod 600 "$FC_TMP/ez/ezstream.xml"   # ezstream refuses a world-readable config with a password
  fc_start ezstream ezstream -v -c "$FC_TMP/ez/ezstream.xml"
  ez_pid=$FC_LAST_PID
else
  fc_log "NOTE: ezstream not installed (apt-get install ezstream): its part is skipped"
fi

# -- an ICY listener on the edge: headers, audio between the blocks, each title with its time
cat >"$FC_TMP/icy.py" <<'PY'
import socket, sys, time
port, mount, secs, audio_path, titles_path, head_path = (int(sys.argv[1]), sys.argv[2],
    float(sys.argv[3]), sys.argv[4], sys.argv[5], sys.argv[6])
s = socket.create_connection(("127.0.0.1", port), timeout=5)
s.sendall(b"GET /" + mount.encode() + b" HTTP/1.0\r\nHost: x\r\nIcy-MetaData: 1\r\n\r\n")
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
if metaint != 16000:
    print("no icy-metaint: 16000 header:", head); sys.exit(1)
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
            try:
                text = block.rstrip(b"\0").decode("utf-8")
            except UnicodeDecodeError:
                text = "NOT-UTF-8:" + repr(block.rstrip(b"\0"))
            titles.write("%.3f\t%s\n" % (time.time(), text)); titles.flush()
    try:
        chunk = s.recv(65536)
    except socket.timeout:
        continue
    if not chunk: break
    data += chunk
PY
wait_http "http://127.0.0.1:$http/live.mp3" 10 || {
  fc_alive "$push_pid" || fc_fail "ffmpeg push exited (see push.log)"
  fc_fail "edge never served /live.mp3 from the pushed source"
}
listen_s=$(( PUSH_S + 1 - ($(now_ms) - t_push) / 1000 ))
fc_start icylistener python3 "$FC_TMP/icy.py" "$http" live.mp3 "$listen_s" "$FC_TMP/icy_audio.mp3" \
  "$FC_TMP/titles.txt" "$FC_TMP/icy_head.txt"
icy_pid=$FC_LAST_PID
if [ $have_ez = 1 ]; then
  wait_http "http://127.0.0.1:$http/ez.mp3" 10 || fc_fail "edge never served /ez.mp3 (ezstream)"
  fc_start ezlistener python3 "$FC_TMP/icy.py" "$http" ez.mp3 11 "$FC_TMP/ez_audio.mp3" \
    "$FC_TMP/ez_titles.txt" "$FC_TMP/ez_head.txt"
  ezl_pid=$FC_LAST_PID
fi

# -- refusals while ffmpeg holds the mount
A="Authorization: Basic $(printf 'source:%s' "$PW" | base64 -w0)\r\n"
BAD="Authorization: Basic $(printf 'source:wrong' | base64 -w0)\r\n"
expect_status() { # WANT WHAT PYTHON-BYTES-EXPR
  local got
  got=$(raw status "$srcA" "$3") || true
  [ "$got" = "$1" ] || fc_fail "$2: got status '$got', want $1"
  fc_log "$2 -> $got"
}
CT='Content-Type: audio/mpeg\r\n'
expect_status 401 "PUT with a wrong password" "b'PUT /live.mp3 HTTP/1.1\r\nHost: x\r\n$BAD$CT\r\n'"
expect_status 401 "SOURCE without credentials" "b'SOURCE /live.mp3 ICE/1.0\r\n$CT\r\n'"
expect_status 403 "second PUT on the busy mount" \
  "b'PUT /live.mp3 HTTP/1.1\r\nHost: x\r\n$A${CT}Expect: 100-continue\r\n\r\n'"
expect_status 403 "second SOURCE on the busy mount" "b'SOURCE /live.mp3 ICE/1.0\r\n$A$CT\r\n'"
expect_status 404 "PUT to another mount" "b'PUT /other.mp3 HTTP/1.1\r\nHost: x\r\n$A$CT\r\n'"
expect_status 415 "PUT of video/mp4" \
  "b'PUT /live.mp3 HTTP/1.1\r\nHost: x\r\n${A}Content-Type: video/mp4\r\n\r\n'"
expect_status 400 "garbage handshake" "b'\x16\x03\x01\x02\x00garbage\r\n\r\n'"
expect_status 431 "9 KB of headers" \
  "b'PUT /live.mp3 HTTP/1.1\r\nHost: x\r\n$A${CT}X-Big: ' + b'a' * 9000 + b'\r\n\r\n'"
expect_status 401 "admin/metadata with a wrong password" \
  "b'GET /admin/metadata?mount=/live.mp3&mode=updinfo&song=x HTTP/1.0\r\n$BAD\r\n'"
expect_status 404 "admin/metadata for another mount" \
  "b'GET /admin/metadata?mount=/other.mp3&mode=updinfo&song=x HTTP/1.0\r\n$A\r\n'"

# -- titles through /admin/metadata: Latin-1 with charset, then quotes, ';' and non-ASCII in UTF-8
now_s() { python3 -c 'import time; print("%.3f" % time.time())'; }
set_title() { # QUERY (already encoded)
  local code
  code=$(curl -s -o "$FC_TMP/admin.out" -w '%{http_code}' --max-time 3 -u "source:$PW" \
    "http://127.0.0.1:$srcA/admin/metadata?mount=/live.mp3&mode=updinfo&$1")
  [ "$code" = 200 ] || fc_fail "admin/metadata ($1) answered $code: $(cat "$FC_TMP/admin.out")"
}
sleep 1.5
t1=$(now_s); set_title 'song=Caf%E9&charset=ISO-8859-1'
sleep 3
title2="It's \"Zoë\"; Ünïcödé – ♫ 'quoted' ;;"
enc2=$(python3 -c 'import sys, urllib.parse; print(urllib.parse.quote(sys.argv[1], safe=""))' "$title2")
t2=$(now_s); set_title "song=$enc2&charset=UTF-8"

# -- wait for the push to end, then check everything
wait_exit "$push_pid" $(( PUSH_S + 10 )) || fc_fail "ffmpeg push did not finish"
[ "$FC_WAIT_RC" = 0 ] || fc_fail "ffmpeg push exited $FC_WAIT_RC (see push.log)"
wait_exit "$icy_pid" 15 || fc_fail "ICY listener did not finish"
[ "$FC_WAIT_RC" = 0 ] || fc_fail "ICY listener failed (see icylistener.log)"
grep -q "method=PUT" "$FC_TMP/shimA.log" || fc_fail "shim A did not log the ffmpeg PUT source"
wait_until 3 grep -q "mount=live.mp3 disconnected: source closed" "$FC_TMP/shimA.log" \
  || fc_fail "shim A did not log the end of the ffmpeg source"

echo "--- edge headers for the ffmpeg source:"; cat "$FC_TMP/icy_head.txt"
hdr() { tr -d '\r' <"$1" | awk -v k="$2" 'BEGIN{IGNORECASE=1} index(tolower($0), tolower(k) ":") == 1 {sub(/^[^:]*: */, ""); print; exit}'; }
check_hdr() { # FILE NAME WANT
  local got; got=$(hdr "$1" "$2")
  [ "$got" = "$3" ] || fc_fail "edge header $2: got '$got', want '$3'"
}
check_hdr "$FC_TMP/icy_head.txt" icy-name "$ICE_NAME"
check_hdr "$FC_TMP/icy_head.txt" icy-genre "$ICE_GENRE"
check_hdr "$FC_TMP/icy_head.txt" icy-description "$ICE_DESC"
check_hdr "$FC_TMP/icy_head.txt" icy-url "$ICE_URL"
check_hdr "$FC_TMP/icy_head.txt" icy-br 128
check_hdr "$FC_TMP/icy_head.txt" content-type audio/mpeg

echo "--- titles seen by the ICY listener:"; cat "$FC_TMP/titles.txt"
title_delay() { # WANT T_SET: delay of the first block carrying WANT
  local line
  line=$(grep -F -- "$1" "$FC_TMP/titles.txt" | head -1)
  [ -n "$line" ] || fc_fail "title never reached the ICY listener intact: want $1"
  awk -v a="${line%%	*}" -v b="$2" 'BEGIN{printf "%.2f", a-b}'
}
d1=$(title_delay "StreamTitle='Café';" "$t1")
d2=$(title_delay "StreamTitle='$title2';" "$t2")
for d in "$d1" "$d2"; do
  awk -v d="$d" 'BEGIN{exit !(d >= 0 && d <= 2.0)}' || fc_fail "a title took ${d} s (> 2 s)"
done
fc_log "titles reached the listener ${d1} s (Latin-1 Café) and ${d2} s (quotes etc.) after being set"
grep -q "NOT-UTF-8" "$FC_TMP/titles.txt" && fc_fail "an ICY block was not UTF-8"
out=$("$FC_BUILD/tools/framecmp" --codec mp3 --min-frames 650 "$FC_TMP/src.mp3" "$FC_TMP/icy_audio.mp3") \
  || fc_fail "ffmpeg-pushed audio at the edge: $out"
echo "pushed audio: $out"

# -- the connection that sent nothing
wait_exit "$idle_pid" 5 || fc_fail "idle connection test did not finish"
idle=$(grep -o 'idle_closed_after_s=[0-9.a-z]*' "$FC_TMP/idle.log" | cut -d= -f2)
awk -v d="$idle" 'BEGIN{exit !(d+0 >= 9 && d+0 <= 12)}' \
  || fc_fail "a connection that sent nothing was closed after '$idle' s (want ~10)"
grep -q "handshake not completed in time" "$FC_TMP/shimA.log" \
  || fc_fail "shim A did not log the idle connection it closed"

# -- ezstream
ez_note="skipped (ezstream not installed)"
if [ $have_ez = 1 ]; then
  wait_exit "$ezl_pid" 15 || fc_fail "ezstream listener did not finish"
  [ "$FC_WAIT_RC" = 0 ] || fc_fail "ezstream listener failed (see ezlistener.log)"
  wait_exit "$ez_pid" 10 || fc_fail "ezstream did not finish its file"
  [ "$FC_WAIT_RC" = 0 ] || fc_fail "ezstream exited $FC_WAIT_RC (see ezstream.log)"
  check_hdr "$FC_TMP/ez_head.txt" icy-name "EZ Station"
  check_hdr "$FC_TMP/ez_head.txt" icy-genre "EZ Genre"
  check_hdr "$FC_TMP/ez_head.txt" icy-description "pushed by ezstream"
  check_hdr "$FC_TMP/ez_head.txt" icy-url "http://ez.example.org/"
  check_hdr "$FC_TMP/ez_head.txt" icy-br 128
  grep -qF "StreamTitle='Ezstream Title';" "$FC_TMP/ez_titles.txt" \
    || fc_fail "ezstream's title (from /admin/metadata) did not reach the edge: $(cat "$FC_TMP/ez_titles.txt")"
  out=$("$FC_BUILD/tools/framecmp" --codec mp3 --min-frames 300 "$FC_TMP/ez/Ezstream Title.mp3" \
    "$FC_TMP/ez_audio.mp3") || fc_fail "ezstream-pushed audio at the edge: $out"
  echo "ezstream audio: $out"
  ez_note="ok ($(grep -o 'method=[A-Z]*' "$FC_TMP/shimC.log" | head -1))"
fi

for p in "$edge_pid" "$shimA_pid" "$shimB_pid" "$shimC_pid"; do
  fc_alive "$p" || fc_fail "a framecast process died (pid $p)"
done

# -- the stalled source (last: its wait overlaps everything above)
wait_exit "$stall_pid" 40 || fc_fail "stalled-source test did not finish"
[ "$FC_WAIT_RC" = 0 ] || fc_fail "stalled source: handshake failed (see stall.log)"
stall=$(grep -o 'stall_dropped_after_s=[0-9.a-z]*' "$FC_TMP/stall.log" | cut -d= -f2)
grep -q "method=SOURCE" "$FC_TMP/shimB.log" || fc_fail "shim B did not accept the SOURCE source"
grep -q "stalled source" "$FC_TMP/shimB.log" || fc_fail "shim B did not log dropping the stalled source"
awk -v d="$stall" 'BEGIN{exit !(d+0 >= 9 && d+0 <= 12)}' \
  || fc_fail "a source that stopped sending was dropped '$stall' s after its last byte (want ~10)"

echo "source_push: PASS title_delay_s=$d1,$d2 idle_close_s=$idle stall_drop_s=$stall ezstream=$ez_note"
