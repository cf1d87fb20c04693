#!/usr/bin/env bash
# ICY metadata end to end: a title set on the upstream Icecast mount (admin/metadata, as playout
# software does) travels in frame meta and leaves the edge as ICY blocks for listeners that sent
# Icy-MetaData: 1, within 3 s (a block every metaint = 1 s of 128k audio, the pipeline, and the
# edge's --write-interval of 1 s: a listener holding its burst is written once a second), intact
# (quotes, ';', non-ASCII). The audio between the blocks is
# byte-identical to the source's frames; a listener that did not ask gets no blocks at all.
. "$(dirname "$0")/lib.sh"
set -u
fc_need_bin "$FC_BUILD/framecast-shim" "$FC_BUILD/framecast-relay" "$FC_BUILD/framecast-edge" \
  "$FC_BUILD/tools/framecmp"

ice=$(free_port); ing=$(free_port); srv=$(free_port); http=$(free_port)
start_icecast "$ice"
start_source_mp3 "$ice" live.mp3
record "http://127.0.0.1:$ice/live.mp3" "$FC_TMP/ref.mp3"
bash "$FC_ROOT/scripts/keygen.sh" "$FC_TMP/mesh.key" >/dev/null
fc_start relay "$FC_BUILD/framecast-relay" --ingest "tcp://127.0.0.1:$ing" --serve "127.0.0.1:$srv" \
  --key "$FC_TMP/mesh.key"
fc_start edge "$FC_BUILD/framecast-edge" --listen "127.0.0.1:$http" --relay "127.0.0.1:$srv" \
  --key "$FC_TMP/mesh.key"
fc_start shim "$FC_BUILD/framecast-shim" --mount live.mp3 --encoder a \
  --pull "http://127.0.0.1:$ice/live.mp3" --to "tcp://127.0.0.1:$ing" --key "$FC_TMP/mesh.key"
wait_http "http://127.0.0.1:$http/live.mp3" 15 || fc_fail "edge never served /live.mp3"
record "http://127.0.0.1:$http/live.mp3" "$FC_TMP/plain.mp3" 12

# An ICY listener that splits blocks from audio and logs each title with its arrival time.
cat >"$FC_TMP/icy.py" <<'PY'
import socket, sys, time
port, secs, audio_path, titles_path = int(sys.argv[1]), float(sys.argv[2]), sys.argv[3], sys.argv[4]
s = socket.create_connection(("127.0.0.1", port), timeout=5)
s.sendall(b"GET /live.mp3 HTTP/1.0\r\nHost: x\r\nIcy-MetaData: 1\r\n\r\n")
buf = b""
while b"\r\n\r\n" not in buf:
    buf += s.recv(4096)
head, rest = buf.split(b"\r\n\r\n", 1)
metaint = None
for line in head.split(b"\r\n"):
    if line.lower().startswith(b"icy-metaint:"):
        metaint = int(line.split(b":", 1)[1])
if metaint != 16000:
    print("no icy-metaint: 16000 header:", head); sys.exit(1)
audio, titles = open(audio_path, "wb"), open(titles_path, "w", encoding="utf-8")
data, end, left = rest, time.time() + secs, metaint
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
            text = block.rstrip(b"\0").decode("utf-8", "replace")
            titles.write("%.3f\t%s\n" % (time.time(), text)); titles.flush()
    try:
        chunk = s.recv(65536)
    except socket.timeout:
        continue
    if not chunk: break
    data += chunk
PY
fc_start icylistener python3 "$FC_TMP/icy.py" "$http" 14 "$FC_TMP/icy_audio.mp3" "$FC_TMP/titles.txt"
icy_pid=$FC_LAST_PID
sleep 4
title="O'Brien & Sons; \"Zoë\" – Ünïcödé ♫ test"
t_set=$(python3 -c 'import time; print("%.3f" % time.time())')
ice_set_title "$ice" live.mp3 "$title"
wait_exit "$icy_pid" 20 || fc_fail "ICY listener did not finish"
[ "$FC_WAIT_RC" = 0 ] || fc_fail "ICY listener failed (see icylistener.log)"
cat "$FC_TMP/titles.txt"
want="StreamTitle='$title';"
line=$(grep -F -- "$want" "$FC_TMP/titles.txt" | head -1)
[ -n "$line" ] || fc_fail "title never reached the ICY listener intact: want $want"
delay=$(awk -v a="${line%%	*}" -v b="$t_set" 'BEGIN{printf "%.2f", a-b}')
fc_log "title reached the listener ${delay} s after it was set"
awk -v d="$delay" 'BEGIN{exit !(d <= 3.0)}' || fc_fail "title took ${delay} s (> 3 s)"
out=$("$FC_BUILD/tools/framecmp" --codec mp3 --min-frames 300 "$FC_TMP/ref.mp3" "$FC_TMP/icy_audio.mp3") \
  || fc_fail "ICY listener audio: $out"
echo "icy audio: $out"
out=$("$FC_BUILD/tools/framecmp" --codec mp3 --min-frames 300 "$FC_TMP/ref.mp3" "$FC_TMP/plain.mp3") \
  || fc_fail "plain listener audio (must carry no ICY blocks): $out"
echo "plain audio: $out"
echo "icy_titles: PASS title_delay_s=$delay"
