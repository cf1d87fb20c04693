#!/usr/bin/env bash
# Bad input never crashes or stalls a process and nothing already accepted is lost:
# garbage, wrong-key and oversized-length messages at a relay (TCP and UDP), malformed, unknown,
# oversized and idle HTTP requests at the edge, and bad command lines (exit 2 naming the flag).
# Meanwhile a listener records the mount; its frames must be a contiguous run of the source's.
. "$(dirname "$0")/lib.sh"
set -u
fc_need_bin "$FC_BUILD/framecast-shim" "$FC_BUILD/framecast-relay" "$FC_BUILD/framecast-edge" \
  "$FC_BUILD/tools/framecmp"

# -- bad command lines: exit 2 and a message naming the flag
expect_usage() {
  local flag=$1; shift
  local out rc=0
  out=$("$@" 2>&1) || rc=$?
  [ "$rc" -eq 2 ] || fc_fail "'$*' exited $rc, want 2"
  grep -q -- "$flag" <<<"$out" || fc_fail "'$*' message does not name $flag: $out"
}
bash "$FC_ROOT/scripts/keygen.sh" "$FC_TMP/mesh.key" >/dev/null
echo "not a key" >"$FC_TMP/bad.key"
expect_usage --key "$FC_BUILD/framecast-relay" --ingest tcp://127.0.0.1:1 --key "$FC_TMP/nope.key"
expect_usage --key "$FC_BUILD/framecast-relay" --ingest tcp://127.0.0.1:1 --key "$FC_TMP/bad.key"
expect_usage --ingest "$FC_BUILD/framecast-relay" --ingest ftp://x:1 --key "$FC_TMP/mesh.key"
expect_usage --to "$FC_BUILD/framecast-shim" --mount m --encoder a --file x --to nowhere --key "$FC_TMP/mesh.key"
expect_usage --mount "$FC_BUILD/framecast-shim" --mount 'a/b' --encoder a --file x --to tcp://127.0.0.1:1 --key "$FC_TMP/mesh.key"
expect_usage --relay "$FC_BUILD/framecast-edge" --listen 127.0.0.1:1 --key "$FC_TMP/mesh.key"
expect_usage --burst "$FC_BUILD/framecast-edge" --listen 127.0.0.1:1 --relay 127.0.0.1:2 --burst x --key "$FC_TMP/mesh.key"
echo '{"relay": [1, {"x": 2}]}' >"$FC_TMP/bad.json"
expect_usage --config "$FC_BUILD/framecast-edge" --config "$FC_TMP/bad.json"
expect_usage --start-grace "$FC_BUILD/framecast-edge" --listen 127.0.0.1:1 --relay 127.0.0.1:2 --start-grace -1 --key "$FC_TMP/mesh.key"
# The shim's test hook is a configuration error when malformed, never half-read.
expect_usage FC_DEBUG_DROP_SEQ env FC_DEBUG_DROP_SEQ=5,x "$FC_BUILD/framecast-shim" --mount m --encoder a --file x --to tcp://127.0.0.1:1 --key "$FC_TMP/mesh.key"
fc_log "bad command lines: exit 2 naming the flag"

# -- a running chain fed from a file
ffmpeg -v error -nostdin -f lavfi -i "$FC_SIG_MP3" -t 40 -c:a libmp3lame -b:a 128k -ar 44100 \
  -ac 2 "$FC_TMP/src.mp3" || fc_fail "ffmpeg could not make the source file"
cat "$FC_TMP/src.mp3" "$FC_TMP/src.mp3" >"$FC_TMP/ref.mp3"   # the shim loops the file
ing=$(free_port); srv=$(free_port); http=$(free_port)
fc_start relay "$FC_BUILD/framecast-relay" --ingest "tcp://127.0.0.1:$ing" \
  --ingest "udp://127.0.0.1:$ing" --serve "127.0.0.1:$srv" --key "$FC_TMP/mesh.key"
relay_pid=$FC_LAST_PID
fc_start edge "$FC_BUILD/framecast-edge" --listen "127.0.0.1:$http" --relay "127.0.0.1:$srv" \
  --key "$FC_TMP/mesh.key" --burst 1
edge_pid=$FC_LAST_PID
fc_start shim "$FC_BUILD/framecast-shim" --mount live.mp3 --encoder a --file "$FC_TMP/src.mp3" \
  --to "tcp://127.0.0.1:$ing" --key "$FC_TMP/mesh.key"
wait_http "http://127.0.0.1:$http/live.mp3" 10 || fc_fail "edge never served /live.mp3"
record "http://127.0.0.1:$http/live.mp3" "$FC_TMP/got.mp3" 16
rec_pid=$FC_LAST_PID

# -- hostile peers at the relay
bash "$FC_ROOT/scripts/keygen.sh" "$FC_TMP/other.key" >/dev/null
fc_start wrongkey2 "$FC_BUILD/framecast-shim" --mount live.mp3 --encoder a --file "$FC_TMP/src.mp3" \
  --to "tcp://127.0.0.1:$ing" --to "udp://127.0.0.1:$ing" --key "$FC_TMP/other.key"
python3 - "$ing" <<'PY' || fc_fail "hostile TCP/UDP peers: relay misbehaved"
import os, socket, sys, time
port = int(sys.argv[1])
# garbage datagrams
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
for n in (0, 1, 17, 500, 9000):
    u.sendto(os.urandom(n), ("127.0.0.1", port))
# TCP garbage, then a length prefix over 64 KiB: the relay must close the connection
for payload in (os.urandom(3000), b"\x00\x01\x00\x01" + os.urandom(100), b"\x00\x00\x00\x00"):
    t = socket.create_connection(("127.0.0.1", port), timeout=5)
    t.sendall(payload)
    t.settimeout(5)
    deadline = time.time() + 5
    closed = False
    while time.time() < deadline:
        try:
            d = t.recv(4096)
        except socket.timeout:
            break
        except ConnectionResetError:
            closed = True
            break
        if not d:
            closed = True
            break
    t.close()
    if payload[:4] in (b"\x00\x01\x00\x01", b"\x00\x00\x00\x00") and not closed:
        print("relay did not close a connection with a bad length prefix"); sys.exit(1)
PY
fc_log "relay: garbage, wrong key and bad length prefixes sent"

# -- hostile HTTP clients at the edge
code() { curl -s -o /dev/null -w '%{http_code}' --max-time 3 "$@"; }
[ "$(code "http://127.0.0.1:$http/nope.mp3")" = 404 ] || fc_fail "unknown mount did not get 404"
[ "$(code -H "X-Big: $(head -c 9000 /dev/zero | tr '\0' a)" "http://127.0.0.1:$http/live.mp3")" = 431 ] \
  || fc_fail "9 KB of headers did not get 431"
python3 - "$http" <<'PY' || fc_fail "edge: malformed / idle requests misbehaved"
import socket, sys, time
port = int(sys.argv[1])
s = socket.create_connection(("127.0.0.1", port), timeout=5)
s.sendall(b"\x16\x03\x01garbage\r\n\r\n")
resp = s.recv(100)
if not resp.startswith(b"HTTP/1.0 400"):
    print("garbage request got", resp[:40]); sys.exit(1)
s.close()
# a half-open request must be closed after 10 s
s = socket.create_connection(("127.0.0.1", port), timeout=15)
s.sendall(b"GET /live.mp3 HTTP/1.1\r\nHost: x\r\n")
t0 = time.time()
d = s.recv(100)
dt = time.time() - t0
if d != b"" or not (9 <= dt <= 13):
    print("idle request: got %r after %.1f s" % (d[:40], dt)); sys.exit(1)
PY
fc_log "edge: 404, 431, 400 and the 10 s request timeout"

# -- everything still running, and the listener's bytes are intact
sleep 1
fc_alive "$relay_pid" || fc_fail "relay died"
fc_alive "$edge_pid" || fc_fail "edge died"
grep -q "bad tag" "$FC_TMP/relay.log" || fc_fail "relay did not log the wrong-key messages"
grep -q "bad length prefix" "$FC_TMP/relay.log" || fc_fail "relay did not log the broken framing"
wait_exit "$rec_pid" 20 || fc_fail "listener did not finish"
out=$("$FC_BUILD/tools/framecmp" --codec mp3 --min-frames 350 "$FC_TMP/ref.mp3" "$FC_TMP/got.mp3") \
  || fc_fail "listener bytes: $out"
echo "$out"
echo "bad_input: PASS"
