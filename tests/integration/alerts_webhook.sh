#!/usr/bin/env bash
# Alerts reach a webhook as JSON POSTs without blocking the edge: relay_up at start, sourceless
# when the only encoder stops, relay_down when the relay is killed; the edge keeps serving.
. "$(dirname "$0")/lib.sh"
set -u
fc_need_bin "$FC_BUILD/framecast-shim" "$FC_BUILD/framecast-relay" "$FC_BUILD/framecast-edge"

bash "$FC_ROOT/scripts/keygen.sh" "$FC_TMP/mesh.key" >/dev/null
ffmpeg -v error -nostdin -f lavfi -i "$FC_SIG_MP3" -t 20 -c:a libmp3lame -b:a 128k -ar 44100 \
  -ac 2 "$FC_TMP/src.mp3" || fc_fail "ffmpeg could not make the source file"
hook=$(free_port); ing=$(free_port); srv=$(free_port); http=$(free_port)

# A webhook receiver: one JSON object per line in hook.jsonl.
cat >"$FC_TMP/hook.py" <<'PY'
import http.server, sys
out = open(sys.argv[2], "a", buffering=1)
class H(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        out.write(body.decode() + "\n")
        self.send_response(204); self.end_headers()
    def log_message(self, *a): pass
http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
PY
fc_start hook python3 "$FC_TMP/hook.py" "$hook" "$FC_TMP/hook.jsonl"
hook_pid=$FC_LAST_PID
fc_start relay "$FC_BUILD/framecast-relay" --ingest "tcp://127.0.0.1:$ing" --serve "127.0.0.1:$srv" \
  --key "$FC_TMP/mesh.key"
relay_pid=$FC_LAST_PID
fc_start edge "$FC_BUILD/framecast-edge" --listen "127.0.0.1:$http" --relay "127.0.0.1:$srv" \
  --key "$FC_TMP/mesh.key" --sourceless-after 2 --alert-webhook "http://127.0.0.1:$hook/hook"
edge_pid=$FC_LAST_PID
fc_start shim "$FC_BUILD/framecast-shim" --mount live.mp3 --encoder a --file "$FC_TMP/src.mp3" \
  --to "tcp://127.0.0.1:$ing" --key "$FC_TMP/mesh.key"
shim_pid=$FC_LAST_PID
wait_http "http://127.0.0.1:$http/live.mp3" 10 || fc_fail "edge never served /live.mp3"

has_alert() { grep -q "\"event\": *\"$1\"" "$FC_TMP/hook.jsonl" 2>/dev/null; }
wait_until 5 has_alert relay_up || fc_fail "no relay_up alert posted"
t0=$(now_ms)
fc_stop "$shim_pid"
wait_until 8 has_alert sourceless || fc_fail "no sourceless alert within 8 s of the encoder stopping"
fc_log "sourceless posted $(( $(now_ms) - t0 )) ms after the encoder stopped (--sourceless-after 2)"
grep '"sourceless"' "$FC_TMP/hook.jsonl" | grep -q '"mount": *"live.mp3"' \
  || fc_fail "sourceless alert does not name the mount: $(cat "$FC_TMP/hook.jsonl")"
kill -9 "$relay_pid"
wait_until 8 has_alert relay_down || fc_fail "no relay_down alert after the relay was killed"
# The webhook going away must not stall the edge: alerts queue, the edge answers.
fc_stop "$hook_pid"
[ "$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "http://127.0.0.1:$http/")" = 200 ] \
  || fc_fail "edge stopped answering"
fc_alive "$edge_pid" || fc_fail "edge died"
echo "alerts posted:"; cat "$FC_TMP/hook.jsonl"
echo "alerts_webhook: PASS"
