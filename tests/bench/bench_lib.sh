# shellcheck shell=bash
# shellcheck disable=SC2034  # BENCH_* and FC_* are set here for the scripts that source this file
# Shared by bench_fanout.sh and bench_latency.sh (source it after tests/integration/lib.sh):
#   bench_icecast PORT CLIENTS     icecast2 whose limits are written BEFORE it starts
#   bench_chain ICE_PORT MOUNT     ffmpeg -> icecast2 -> shim --pull -> relay -> edge; sets
#                                  BENCH_ICE_PID BENCH_EDGE_PID BENCH_EDGE_PORT BENCH_KEY
# Tools come from $FC_BUILD/bench/ (built by `make bench-fanout` / `make bench-latency`).

BENCH_BIN="$FC_BUILD/bench"
BENCH_RATE_BPS=16000     # 128 kbit/s MP3
BENCH_BURST_B=64000      # the edge's default --burst 4 at 16000 B/s: icecast2 gets the same

# bench_icecast PORT CLIENTS: like lib.sh's start_icecast, with <clients> CLIENTS and
# <burst-size> the edge's. The limits are in the file before icecast2 reads it (restarting
# through start_icecast would regenerate the file with <clients>200</clients>).
bench_icecast() {
  local port=$1 clients=$2 dir="$FC_TMP/icecast" owner="" security=""
  command -v icecast2 >/dev/null || fc_fail "icecast2 not installed (scripts/install-deps.sh)"
  mkdir -p "$dir/log"
  if [ "$(id -u)" -eq 0 ]; then
    owner=$(fc_ice_owner)
    chown -R "$owner" "$dir"
    security="<security><chroot>0</chroot><changeowner><user>${owner%%:*}</user><group>${owner##*:}</group></changeowner></security>"
  fi
  cat >"$dir/icecast.xml" <<EOF
<icecast>
  <location>framecast bench</location>
  <admin>root@localhost</admin>
  <hostname>127.0.0.1</hostname>
  <limits>
    <clients>$clients</clients>
    <sources>4</sources>
    <queue-size>1048576</queue-size>
    <client-timeout>30</client-timeout>
    <header-timeout>15</header-timeout>
    <source-timeout>10</source-timeout>
    <burst-on-connect>1</burst-on-connect>
    <burst-size>$BENCH_BURST_B</burst-size>
  </limits>
  <authentication>
    <source-password>$FC_ICE_PASSWORD</source-password>
    <relay-password>$FC_ICE_PASSWORD</relay-password>
    <admin-user>admin</admin-user>
    <admin-password>$FC_ICE_PASSWORD</admin-password>
  </authentication>
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
    <loglevel>2</loglevel>
  </logging>
  $security
</icecast>
EOF
  grep -q "<clients>$clients</clients>" "$dir/icecast.xml" || fc_fail "icecast.xml: <clients> not set"
  fc_start icecast icecast2 -c "$dir/icecast.xml"
  BENCH_ICE_PID=$FC_LAST_PID
  FC_ICE_PID=$FC_LAST_PID
  if ! wait_http "http://127.0.0.1:$port/status-json.xsl" 10; then
    fc_alive "$BENCH_ICE_PID" || fc_fail "icecast2 exited at start (see icecast.log)"
    fc_fail "icecast2 not answering on 127.0.0.1:$port after 10 s"
  fi
}

# bench_chain ICE_PORT MOUNT [CLIENTS] [EDGE_ARGS...]: icecast2 with an MP3 128 kbit/s source on
# MOUNT, and a framecast edge fed from that mount: shim --pull -> relay -> edge.
bench_chain() {
  local ice=$1 mount=$2 clients=${3:-1000}; shift 3 || shift $#
  local ing srv
  ing=$(free_port); srv=$(free_port); BENCH_EDGE_PORT=$(free_port)
  BENCH_KEY="$FC_TMP/mesh.key"
  fc_need_bin "$FC_BUILD/framecast-shim" "$FC_BUILD/framecast-relay" "$FC_BUILD/framecast-edge"
  bench_icecast "$ice" "$clients"
  start_source_mp3 "$ice" "$mount"
  bash "$FC_ROOT/scripts/keygen.sh" "$BENCH_KEY" >/dev/null
  fc_start relay "$FC_BUILD/framecast-relay" --ingest "tcp://127.0.0.1:$ing" \
    --serve "127.0.0.1:$srv" --key "$BENCH_KEY"
  fc_start edge "$FC_BUILD/framecast-edge" --listen "127.0.0.1:$BENCH_EDGE_PORT" \
    --relay "127.0.0.1:$srv" --key "$BENCH_KEY" "$@"
  BENCH_EDGE_PID=$FC_LAST_PID
  fc_start shim "$FC_BUILD/framecast-shim" --mount "$mount" --encoder a \
    --pull "http://127.0.0.1:$ice/$mount" --to "tcp://127.0.0.1:$ing" --key "$BENCH_KEY"
  wait_http "http://127.0.0.1:$BENCH_EDGE_PORT/$mount" 15 || fc_fail "edge never served /$mount"
}

bench_load() { awk '{print $1}' /proc/loadavg 2>/dev/null; }
