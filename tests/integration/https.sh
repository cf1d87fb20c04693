#!/usr/bin/env bash
# HTTPS for listeners (issue 10): an edge with 2 workers on --listen and --listen-tls. Over HTTPS
# (curl with the test CA, Python's ssl, ffmpeg): raw audio is a contiguous run of the source's
# frames, an ICY listener gets its blocks and a new title with byte-identical audio, an HLS
# segment is byte-identical to the same segment over plain HTTP, ffmpeg decodes the raw stream
# and the HLS playlist. TLS 1.1 is refused, 1.2 and 1.3 accepted; SIGHUP loads a new
# certificate for new connections while a listener on the old one plays on; a certificate that
# does not match its key exits 2 naming the files. At a handoff restart an HTTPS listener is
# closed (not carried) with its analytics session written; a plain one plays on.
. "$(dirname "$0")/lib.sh"
set -u
fc_need_bin "$FC_BUILD/framecast-shim" "$FC_BUILD/framecast-relay" "$FC_BUILD/framecast-edge" \
  "$FC_BUILD/tools/framecmp"
command -v openssl >/dev/null || fc_fail "openssl missing (scripts/install-deps.sh)"

mkcert() { # mkcert NAME CN
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
    -subj "/CN=$2" -addext "subjectAltName=IP:127.0.0.1" \
    -keyout "$FC_TMP/$1.key" -out "$FC_TMP/$1.pem" 2>/dev/null || fc_fail "openssl req failed"
}
mkcert a framecast-test-a
mkcert b framecast-test-b

ice=$(free_port); ing=$(free_port); srv=$(free_port); http=$(free_port); https=$(free_port)
bash "$FC_ROOT/scripts/keygen.sh" "$FC_TMP/mesh.key" >/dev/null
# A key that does not match the certificate: exit 2, naming the files.
rc=0
out=$("$FC_BUILD/framecast-edge" --listen "127.0.0.1:$http" --relay "127.0.0.1:$srv" --key "$FC_TMP/mesh.key" \
  --listen-tls "127.0.0.1:$https" --tls-cert "$FC_TMP/a.pem" --tls-key "$FC_TMP/b.key" 2>&1) || rc=$?
[ "$rc" = 2 ] && grep -q "a.pem" <<<"$out" || fc_fail "mismatched certificate and key: exit $rc: $out"

start_icecast "$ice"
start_source_mp3 "$ice" live.mp3
record "http://127.0.0.1:$ice/live.mp3" "$FC_TMP/ref.mp3"
fc_start relay "$FC_BUILD/framecast-relay" --ingest "tcp://127.0.0.1:$ing" --serve "127.0.0.1:$srv" \
  --key "$FC_TMP/mesh.key"
cp "$FC_TMP/a.pem" "$FC_TMP/cert.pem"; cp "$FC_TMP/a.key" "$FC_TMP/cert.key"
edge_args=(--listen "127.0.0.1:$http" --relay "127.0.0.1:$srv" --key "$FC_TMP/mesh.key"
  --workers 2 --hls-segment 2 --control "$FC_TMP/edge.ctl" --analytics "sqlite:$FC_TMP/an.db"
  --listen-tls "127.0.0.1:$https" --tls-cert "$FC_TMP/cert.pem" --tls-key "$FC_TMP/cert.key")
fc_start edge "$FC_BUILD/framecast-edge" "${edge_args[@]}"
edge_pid=$FC_LAST_PID
fc_start shim "$FC_BUILD/framecast-shim" --mount live.mp3 --encoder a \
  --pull "http://127.0.0.1:$ice/live.mp3" --to "tcp://127.0.0.1:$ing" --key "$FC_TMP/mesh.key"
wait_http "http://127.0.0.1:$http/live.mp3" 15 || fc_fail "edge never served /live.mp3"
S="https://127.0.0.1:$https"
CURL=(curl -s -S --cacert "$FC_TMP/a.pem")

# Raw over HTTPS (curl verifies the certificate), and ffmpeg decoding it.
fc_start raw "${CURL[@]}" -N --max-time 14 -o "$FC_TMP/raw.mp3" "$S/live.mp3"
raw_pid=$FC_LAST_PID
# ICY over HTTPS (Python's ssl, verifying), titles logged.
cat >"$FC_TMP/icy.py" <<'PY'
import socket, ssl, sys, time
port, ca, secs, audio, titles = int(sys.argv[1]), sys.argv[2], float(sys.argv[3]), open(sys.argv[4], "wb"), open(sys.argv[5], "w")
ctx = ssl.create_default_context(cafile=ca)
s = ctx.wrap_socket(socket.create_connection(("127.0.0.1", port), timeout=5), server_hostname="127.0.0.1")
s.sendall(b"GET /live.mp3 HTTP/1.0\r\nHost: x\r\nIcy-MetaData: 1\r\n\r\n")
buf = b""
while b"\r\n\r\n" not in buf:
    buf += s.recv(4096)
head, data = buf.split(b"\r\n\r\n", 1)
metaint = int([l.split(b":")[1] for l in head.split(b"\r\n") if l.lower().startswith(b"icy-metaint")][0])
left, end = metaint, time.time() + secs
while time.time() < end:
    while True:
        if left > 0:
            take = min(left, len(data)); audio.write(data[:take]); data = data[take:]; left -= take
            if left > 0: break
        if not data: break
        n = data[0] * 16
        if len(data) < 1 + n: break
        if n: titles.write(data[1:1 + n].rstrip(b"\0").decode("utf-8", "replace") + "\n"); titles.flush()
        data = data[1 + n:]; left = metaint
    c = s.recv(65536)
    if not c: sys.exit(1)
    data += c
PY
fc_start icy python3 "$FC_TMP/icy.py" "$https" "$FC_TMP/a.pem" 14 "$FC_TMP/icy.mp3" "$FC_TMP/titles.txt"
icy_pid=$FC_LAST_PID
sleep 3
title="over TLS ✓ $(date +%s)"
ice_set_title "$ice" live.mp3 "$title"
rc=0
timeout 20 ffmpeg -hide_banner -loglevel error -nostdin -i "$S/live.mp3" -t 5 -f wav "$FC_TMP/ff.wav" \
  >"$FC_TMP/ffmpeg-raw.log" 2>&1 || rc=$?
[ "$rc" = 0 ] || fc_fail "ffmpeg could not decode the HTTPS stream: $(tail -3 "$FC_TMP/ffmpeg-raw.log")"
secs=$(ffprobe -v error -show_entries format=duration -of csv=p=0 "$FC_TMP/ff.wav")
awk -v s="$secs" 'BEGIN{exit !(s >= 4.9)}' || fc_fail "ffmpeg decoded only ${secs}s over HTTPS"

# HLS: the same segment over HTTPS and plain HTTP; ffmpeg plays the HTTPS playlist.
seg=$("${CURL[@]}" "$S/live.mp3.m3u8" | grep -v '^#' | tail -1)
[ -n "$seg" ] || fc_fail "no segment in the HTTPS playlist"
"${CURL[@]}" -o "$FC_TMP/seg.tls" "$S/$seg" || fc_fail "segment over HTTPS failed"
curl -s -o "$FC_TMP/seg.plain" "http://127.0.0.1:$http/$seg"
cmp -s "$FC_TMP/seg.tls" "$FC_TMP/seg.plain" || fc_fail "segment $seg differs between HTTPS and HTTP"
[ "$(stat -c %s "$FC_TMP/seg.tls")" -gt 20000 ] || fc_fail "segment $seg is too small"
rc=0
timeout 25 ffmpeg -hide_banner -loglevel error -nostdin -i "$S/live.mp3.m3u8" -t 4 -f wav "$FC_TMP/hls.wav" \
  >"$FC_TMP/ffmpeg-hls.log" 2>&1 || rc=$?
[ "$rc" = 0 ] || fc_fail "ffmpeg could not play the HTTPS HLS playlist: $(tail -3 "$FC_TMP/ffmpeg-hls.log")"

# Protocol versions.
echo | timeout 5 openssl s_client -connect "127.0.0.1:$https" -tls1_1 >"$FC_TMP/tls11.txt" 2>&1 &&
  grep -q "BEGIN CERTIFICATE" "$FC_TMP/tls11.txt" && fc_fail "TLS 1.1 was accepted"
for v in tls1_2 tls1_3; do
  echo | timeout 5 openssl s_client -connect "127.0.0.1:$https" "-$v" -CAfile "$FC_TMP/a.pem" >"$FC_TMP/$v.txt" 2>&1
  grep -q "Verify return code: 0" "$FC_TMP/$v.txt" || fc_fail "-$v: no verified handshake: $(tail -3 "$FC_TMP/$v.txt")"
done

wait_exit "$raw_pid" 20 || fc_fail "raw HTTPS listener did not finish"
wait_exit "$icy_pid" 20 || fc_fail "ICY HTTPS listener did not finish"
[ "$FC_WAIT_RC" = 0 ] || fc_fail "ICY HTTPS listener failed (see icy.log)"
raw_out=$("$FC_BUILD/tools/framecmp" --codec mp3 --min-frames 300 "$FC_TMP/ref.mp3" "$FC_TMP/raw.mp3") ||
  fc_fail "raw over HTTPS: $raw_out"
echo "raw: $raw_out"
out=$("$FC_BUILD/tools/framecmp" --codec mp3 --min-frames 300 "$FC_TMP/ref.mp3" "$FC_TMP/icy.mp3") ||
  fc_fail "ICY over HTTPS: $out"
echo "icy: $out"
grep -qF "StreamTitle='$title';" "$FC_TMP/titles.txt" || fc_fail "the title never reached the HTTPS ICY listener"

# SIGHUP: a new certificate for new connections; a listener on the old one plays on.
fc_start held "${CURL[@]}" -N --max-time 8 -o "$FC_TMP/held.mp3" "$S/live.mp3"
held_pid=$FC_LAST_PID
sleep 1
cp "$FC_TMP/b.pem" "$FC_TMP/cert.pem"; cp "$FC_TMP/b.key" "$FC_TMP/cert.key"
kill -HUP "$edge_pid"
ok=0
for _ in $(seq 1 30); do
  echo | timeout 5 openssl s_client -connect "127.0.0.1:$https" 2>/dev/null | grep -q "CN *= *framecast-test-b" && { ok=1; break; }
  sleep 0.2
done
[ "$ok" = 1 ] || fc_fail "after SIGHUP new connections still get the old certificate"
wait_exit "$held_pid" 15 || fc_fail "held listener did not finish"
held=$(stat -c %s "$FC_TMP/held.mp3")
[ "$held" -gt $((16000 * 9)) ] || fc_fail "the listener on the old certificate got only $held bytes"
fc_alive "$edge_pid" || fc_fail "edge died"

# A handoff restart (--takeover): an HTTPS listener is not carried (its TLS state is inside
# OpenSSL): the old process closes it, and its session is written before the old one exits; a
# plain listener is carried and plays on.
fc_start tls_l "${CURL[@]}" -k -N -A tls-handoff --max-time 20 -o "$FC_TMP/tls_l.mp3" "$S/live.mp3"
tls_pid=$FC_LAST_PID
fc_start plain_l curl -s -S -N -A plain-handoff --max-time 6 -o "$FC_TMP/plain_l.mp3" \
  "http://127.0.0.1:$http/live.mp3"
plain_pid=$FC_LAST_PID
has_bytes() { [ "$(stat -c %s "$1" 2>/dev/null || echo 0)" -gt 32000 ]; }
wait_until 10 has_bytes "$FC_TMP/tls_l.mp3" || fc_fail "the HTTPS listener got no audio before the handoff"
wait_until 10 has_bytes "$FC_TMP/plain_l.mp3" || fc_fail "the plain listener got no audio before the handoff"
fc_start edge2 "$FC_BUILD/framecast-edge" "${edge_args[@]}" --takeover "$FC_TMP/edge.ctl"
edge2_pid=$FC_LAST_PID
wait_exit "$edge_pid" 20 || fc_fail "the old edge did not hand over"
[ "$FC_WAIT_RC" = 0 ] || fc_fail "the old edge exited $FC_WAIT_RC after the handoff"
fc_alive "$edge2_pid" || fc_fail "the new edge exited"
wait_exit "$tls_pid" 10 || fc_fail "the HTTPS listener was not closed at the handoff"
tls_rows=$(sqlite3 "$FC_TMP/an.db" "SELECT count(*) FROM sessions WHERE ua = 'tls-handoff' AND bytes > 32000")
[ "$tls_rows" = 1 ] || fc_fail "the HTTPS listener closed at the handoff has $tls_rows session rows, want 1"
wait_exit "$plain_pid" 15 || fc_fail "the plain listener did not finish"
[ "$FC_WAIT_RC" = 28 ] || fc_fail "the plain listener ended early (curl exit $FC_WAIT_RC) across the handoff"
plain_bytes=$(stat -c %s "$FC_TMP/plain_l.mp3")
[ "$plain_bytes" -gt $((16000 * 8)) ] || fc_fail "the plain listener got only $plain_bytes bytes across the handoff"
echo "https: PASS raw_frames=$(sed -n 's/.*: frames=\([0-9]*\) .*/\1/p' <<<"$raw_out") ffmpeg_raw_s=$secs hls_segment_identical=1 tls1.1=refused reload=ok held_bytes=$held handoff: tls_session_rows=$tls_rows plain_bytes=$plain_bytes"
