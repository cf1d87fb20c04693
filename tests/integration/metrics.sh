#!/usr/bin/env bash
# Prometheus metrics (issue 10): GET /metrics on the edge (2 workers) and --metrics on two relays
# and the shim pass `promtool check metrics`; Debian's real prometheus server scrapes all four
# (1 s interval) and its HTTP API (/api/v1/query) returns values that match the processes' own
# JSON at the same moment: the edge's frames out, listeners by protocol (3 ICY + 3 plain
# listeners on the workers), each relay link's frames and the shim's frames sent; every target is
# up. scripts/grafana/framecast.json is valid JSON whose expressions use only exported names.
. "$(dirname "$0")/lib.sh"
set -u
fc_need_bin "$FC_BUILD/framecast-shim" "$FC_BUILD/framecast-relay" "$FC_BUILD/framecast-edge"
command -v prometheus >/dev/null && command -v promtool >/dev/null ||
  fc_fail "prometheus / promtool missing (scripts/install-deps.sh)"

ice=$(free_port); ing1=$(free_port); srv1=$(free_port); ing2=$(free_port); srv2=$(free_port)
http=$(free_port); m_r1=$(free_port); m_r2=$(free_port); m_shim=$(free_port); prom=$(free_port)
start_icecast "$ice"
start_source_mp3 "$ice" live.mp3
bash "$FC_ROOT/scripts/keygen.sh" "$FC_TMP/mesh.key" >/dev/null
fc_start relay1 "$FC_BUILD/framecast-relay" --ingest "tcp://127.0.0.1:$ing1" --serve "127.0.0.1:$srv1" \
  --key "$FC_TMP/mesh.key" --metrics "127.0.0.1:$m_r1"
fc_start relay2 "$FC_BUILD/framecast-relay" --ingest "tcp://127.0.0.1:$ing2" --serve "127.0.0.1:$srv2" \
  --key "$FC_TMP/mesh.key" --metrics "127.0.0.1:$m_r2"
fc_start edge "$FC_BUILD/framecast-edge" --listen "127.0.0.1:$http" --relay "127.0.0.1:$srv1" \
  --relay "127.0.0.1:$srv2" --key "$FC_TMP/mesh.key" --workers 2
fc_start shim "$FC_BUILD/framecast-shim" --mount live.mp3 --encoder a \
  --pull "http://127.0.0.1:$ice/live.mp3" --to "tcp://127.0.0.1:$ing1" --to "tcp://127.0.0.1:$ing2" \
  --key "$FC_TMP/mesh.key" --metrics "127.0.0.1:$m_shim"
wait_http "http://127.0.0.1:$http/live.mp3" 15 || fc_fail "edge never served /live.mp3"

# 3 ICY and 3 plain listeners for the rest of the test.
cat >"$FC_TMP/hold.py" <<'PY'
import socket, sys, time
port, icy, secs = int(sys.argv[1]), sys.argv[2] == "1", float(sys.argv[3])
s = socket.create_connection(("127.0.0.1", port), timeout=5)
s.sendall(b"GET /live.mp3 HTTP/1.0\r\nHost: x\r\n" + (b"Icy-MetaData: 1\r\n" if icy else b"") + b"\r\n")
end = time.time() + secs
while time.time() < end:
    if not s.recv(65536): sys.exit(1)
PY
for i in 1 2 3; do
  fc_start "icy$i" python3 "$FC_TMP/hold.py" "$http" 1 60
  fc_start "raw$i" python3 "$FC_TMP/hold.py" "$http" 0 60
done

# promtool on every endpoint.
for ep in "edge http://127.0.0.1:$http/metrics" "relay1 http://127.0.0.1:$m_r1/metrics" \
          "relay2 http://127.0.0.1:$m_r2/metrics" "shim http://127.0.0.1:$m_shim/metrics"; do
  set -- $ep
  curl -sf "$2" >"$FC_TMP/$1.prom" || fc_fail "$1: GET /metrics failed"
  out=$(promtool check metrics <"$FC_TMP/$1.prom" 2>&1) || fc_fail "$1: promtool check metrics: $out"
  fc_log "$1: promtool check metrics: ok ($(grep -vc '^#' "$FC_TMP/$1.prom") samples)"
done
code=$(http_code "http://127.0.0.1:$m_r1/nope"); [ "$code" = 404 ] || fc_fail "relay metrics: /nope gave $code"

# The real Prometheus server.
cat >"$FC_TMP/prometheus.yml" <<EOF
global: {scrape_interval: 1s, evaluation_interval: 1s}
scrape_configs:
  - job_name: edge
    static_configs: [{targets: ["127.0.0.1:$http"]}]
  - job_name: relay
    static_configs: [{targets: ["127.0.0.1:$m_r1", "127.0.0.1:$m_r2"]}]
  - job_name: shim
    static_configs: [{targets: ["127.0.0.1:$m_shim"]}]
EOF
promtool check config "$FC_TMP/prometheus.yml" >/dev/null 2>&1 || fc_fail "promtool check config failed"
fc_start prometheus prometheus --config.file="$FC_TMP/prometheus.yml" \
  --storage.tsdb.path="$FC_TMP/tsdb" --web.listen-address="127.0.0.1:$prom" --log.level=warn
wait_http "http://127.0.0.1:$prom/-/ready" 30 || fc_fail "prometheus not ready"

q() { curl -sf --get "http://127.0.0.1:$prom/api/v1/query" --data-urlencode "query=$1"; }
# Wait until every target was scraped with 6 listeners in place.
ok=0
for _ in $(seq 1 60); do
  n=$(q 'sum(up)' | python3 -c 'import json,sys; r=json.load(sys.stdin)["data"]["result"]; print(r[0]["value"][1] if r else 0)')
  l=$(q 'sum(framecast_edge_listeners{mount="live.mp3"})' | python3 -c 'import json,sys; r=json.load(sys.stdin)["data"]["result"]; print(r[0]["value"][1] if r else 0)')
  [ "$n" = 4 ] && [ "$l" = 6 ] && { ok=1; break; }
  sleep 0.5
done
[ "$ok" = 1 ] || fc_fail "prometheus never saw 4 targets up and 6 listeners (up=$n listeners=$l)"
sleep 2

# Compare Prometheus' values with the processes' JSON read at the same moment.
curl -sf "http://127.0.0.1:$http/" >"$FC_TMP/edge.json"
python3 - "$prom" "$FC_TMP/edge.json" "$m_shim" <<'PY' >"$FC_TMP/compare.txt" || { cat "$FC_TMP/compare.txt"; fc_fail "Prometheus values differ from the processes' own"; }
import json, sys, urllib.parse, urllib.request
prom, ej, m_shim = sys.argv[1], json.load(open(sys.argv[2])), sys.argv[3]
def q(expr):
    u = "http://127.0.0.1:%s/api/v1/query?%s" % (prom, urllib.parse.urlencode({"query": expr}))
    r = json.load(urllib.request.urlopen(u))["data"]["result"]
    return {tuple(sorted((k, v) for k, v in x["metric"].items() if k not in ("__name__", "instance", "job"))): float(x["value"][1]) for x in r}
bad = []
FPS = 44100 / 1152          # frames per second of the stream
TOL = 3 * FPS               # scrape interval 1 s, plus the JSON read after it
m = [x for x in ej["mounts"] if x["mount"] == "live.mp3"][0]
v = list(q('framecast_edge_mount_frames_out_total{mount="live.mp3"}').values())
print("frames_out json=%d prometheus=%s" % (m["frames_out"], v))
if len(v) != 1 or abs(m["frames_out"] - v[0]) > TOL: bad.append("frames_out")
by = q('sum by (protocol) (framecast_edge_listeners{mount="live.mp3"})')
print("listeners json=%d prometheus=%s" % (m["listeners"], by))
if by.get((("protocol", "icy"),)) != 3 or by.get((("protocol", "raw"),)) != 3 or m["listeners"] != 6: bad.append("listeners")
w = q('sum by (worker) (framecast_edge_listeners{mount="live.mp3"})')
print("listeners by worker", w)
if sum(w.values()) != 6 or not all(k[0][1] in ("1", "2") for k in w): bad.append("listeners by worker")
rl = q("framecast_edge_relay_frames_total")
for r in ej["relays"]:
    got = rl.get((("relay", r["relay"]),))
    print("relay %s frames json=%d prometheus=%s" % (r["relay"], r["frames"], got))
    if got is None or abs(r["frames"] - got) > TOL or got <= 0: bad.append("relay " + r["relay"])
fw = [list(q(e % "framecast_relay_frames_forwarded_total").values()) for e in ("count(%s)", "min(%s)", "max(%s)")]
print("relays forwarded count/min/max", fw)
if fw[0] != [2] or abs(fw[1][0] - m["frames_out"]) > 6 * FPS or abs(fw[2][0] - m["frames_out"]) > 6 * FPS:
    bad.append("relay forwarded")
sh = q('framecast_shim_frames_sent_total{mount="live.mp3",encoder="a"}')
print("shim frames_sent", sh, "edge frames_out", m["frames_out"])
if len(sh) != 1 or abs(list(sh.values())[0] - m["frames_out"]) > 6 * FPS: bad.append("shim frames_sent")
tg = q('framecast_shim_target_up')
if len(tg) != 2 or not all(x == 1 for x in tg.values()): bad.append("shim targets up %s" % tg)
wp = {k: q(k) for k in ("framecast_edge_worker_resident_memory_bytes", "framecast_edge_worker_open_fds", "framecast_edge_worker_cpu_seconds_total")}
print("worker process figures", {k: sorted(v.values()) for k, v in wp.items()})
if any(len(v) != 2 or min(v.values()) <= 0 for v in wp.values()): bad.append("worker process figures")
ttfb = q('sum(framecast_edge_ttfb_seconds_count)')
print("ttfb observations", ttfb)
if not ttfb or list(ttfb.values())[0] < 6: bad.append("ttfb histogram")
print("\n".join(bad) if bad else "ok")
sys.exit(1 if bad else 0)
PY
cat "$FC_TMP/compare.txt"

# The Grafana dashboard references only names the programs export.
cat "$FC_TMP"/*.prom | awk '/^# TYPE/ {print $3}' | sort -u >"$FC_TMP/names.txt"
python3 - "$FC_ROOT/scripts/grafana/framecast.json" "$FC_TMP/names.txt" <<'PY' || fc_fail "grafana dashboard references unknown metrics"
import json, re, sys
d = json.load(open(sys.argv[1]))
names = set(open(sys.argv[2]).read().split())
exprs = [t["expr"] for p in d["panels"] for t in p.get("targets", [])]
exprs += [v["query"] for v in d.get("templating", {}).get("list", []) if "query" in v]
used = set()
for e in exprs:
    for tok in re.findall(r"framecast_[a-z_]+", e):
        base = re.sub(r"_(bucket|sum|count)$", "", tok)
        used.add(base)
unknown = sorted(u for u in used if u not in names)
print("dashboard: %d expressions, %d metric names, unknown: %s" % (len(exprs), len(used), unknown or "none"))
sys.exit(1 if unknown else 0)
PY
echo "metrics: PASS promtool=4/4 endpoints prometheus_targets_up=4 $(tail -1 "$FC_TMP/compare.txt")"
