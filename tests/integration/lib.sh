# shellcheck shell=bash
# shellcheck disable=SC2034  # FC_* variables are set here for the scripts that source this file
# Helpers for framecast integration tests and the demo. Source it, don't run it:
#
#   . "$(dirname "$0")/lib.sh"
#   fc_init                       # temp dir, cleanup trap (fc_init is also called on source)
#   port=$(free_port)
#   start_icecast "$port"
#   start_source_mp3 "$port" live.mp3
#   record "http://127.0.0.1:$port/live.mp3" "$FC_TMP/ref.mp3"
#   fc_fail "what went wrong"
#
# Every process a helper starts is tracked by PID (fc_track); on EXIT, INT or TERM exactly those
# PIDs get SIGTERM, then SIGKILL after FC_KILL_TIMEOUT seconds, and the temp dir is removed unless
# FC_KEEP=1. Each process logs to "$FC_TMP/<name>.log"; when the script exits non-zero the tail of
# every log is printed.
#
# Environment: FC_KEEP=1 keeps the temp dir; FC_KILL_TIMEOUT (s, default 3); FC_LOG_TAIL (lines,
# default 25); FC_BUILD (default <repo>/build); FC_ICE_PASSWORD (default fc-source-pw);
# FC_ICE_USER (default framecast-test, created if missing; falls back to nobody:nogroup).

FC_LIB_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
FC_ROOT="$(cd "$FC_LIB_DIR/../.." && pwd)"
FC_BUILD="${FC_BUILD:-$FC_ROOT/build}"
FC_NAME="${FC_NAME:-$(basename "$0" .sh)}"
FC_KILL_TIMEOUT="${FC_KILL_TIMEOUT:-3}"
FC_LOG_TAIL="${FC_LOG_TAIL:-25}"
FC_ICE_PASSWORD="${FC_ICE_PASSWORD:-fc-source-pw}"
FC_ICE_USER="${FC_ICE_USER:-framecast-test}"

FC_PIDS=()          # every PID we started, in start order
declare -A FC_PID_NAME=()
FC_LAST_PID=""      # PID of the most recent fc_start (functions can't return it through $(...))
FC_TMP=""
FC_CLEANED=0
FC_HOOKS=()         # functions fc_cleanup runs after stopping the processes (fc_on_cleanup)

fc_log() { printf '%s %s: %s\n' "$(date +%H:%M:%S.%N | cut -c1-12)" "$FC_NAME" "$*" >&2; }

# fc_fail MSG: print a FAIL line and exit 1 (the EXIT trap prints logs and cleans up).
fc_fail() {
  printf '%s: FAIL %s\n' "$FC_NAME" "$*"
  exit 1
}

# fc_on_cleanup FUNC: the cleanup trap calls FUNC (no arguments, errexit off) once the tracked
# processes are stopped and before the temp dir is removed: unmount what the test mounted, say.
fc_on_cleanup() { FC_HOOKS+=("$1"); }

# fc_track PID [NAME]: remember a PID so the cleanup trap stops it.
fc_track() {
  FC_PIDS+=("$1")
  FC_PID_NAME[$1]="${2:-pid$1}"
}

fc_alive() { kill -0 "$1" 2>/dev/null; }

# fc_stop PID...: SIGTERM, wait up to FC_KILL_TIMEOUT s, then SIGKILL; reaps the processes.
fc_stop() {
  local p live=() deadline
  for p in "$@"; do
    [ -n "$p" ] && fc_alive "$p" && { kill -TERM "$p" 2>/dev/null; live+=("$p"); }
  done
  [ ${#live[@]} -eq 0 ] && return 0
  deadline=$(( $(date +%s%N) / 1000000 + FC_KILL_TIMEOUT * 1000 ))
  while :; do
    local any=0
    for p in "${live[@]}"; do fc_alive "$p" && { any=1; break; }; done
    [ $any -eq 0 ] && break
    if [ $(( $(date +%s%N) / 1000000 )) -ge $deadline ]; then
      for p in "${live[@]}"; do
        if fc_alive "$p"; then
          fc_log "pid $p (${FC_PID_NAME[$p]:-?}) ignored SIGTERM for ${FC_KILL_TIMEOUT}s: SIGKILL"
          kill -KILL "$p" 2>/dev/null
        fi
      done
      break
    fi
    sleep 0.05
  done
  for p in "${live[@]}"; do { wait "$p"; } 2>/dev/null || true; done
  return 0
}

# fc_kill9 PID: SIGKILL one process now and reap it quietly (no "Killed" job notice).
fc_kill9() {
  kill -KILL "$1" 2>/dev/null || true
  { wait "$1"; } 2>/dev/null || true
  return 0
}

fc_print_logs() {
  local f
  [ -n "$FC_TMP" ] && [ -d "$FC_TMP" ] || return 0
  # Globs, not `< <(find ...)`: bash 5.2 can abort an EXIT trap on a process substitution
  # ("wait_for: No record of process"), which would skip the rest of the cleanup.
  for f in "$FC_TMP"/*.log "$FC_TMP"/*/*.log "$FC_TMP"/*/*/*.log; do
    [ -f "$f" ] && [ -s "$f" ] || continue
    printf -- '----- %s (last %s lines) -----\n' "${f#"$FC_TMP"/}" "$FC_LOG_TAIL"
    tail -n "$FC_LOG_TAIL" "$f"
  done
  printf -- '----- end of logs (%s; FC_KEEP=1 keeps it) -----\n' "$FC_TMP"
}

fc_cleanup() {
  local rc=$1
  [ "$FC_CLEANED" = 1 ] && return 0
  FC_CLEANED=1
  # Reverse start order: listeners and shims first, servers last.
  local rev=() i
  for (( i=${#FC_PIDS[@]}-1; i>=0; i-- )); do rev+=("${FC_PIDS[i]}"); done
  [ ${#rev[@]} -gt 0 ] && fc_stop "${rev[@]}"
  for i in "${FC_HOOKS[@]}"; do "$i"; done
  if [ "$rc" -ne 0 ]; then
    fc_print_logs
  fi
  if [ -n "$FC_TMP" ] && [ -d "$FC_TMP" ]; then
    if [ "${FC_KEEP:-0}" = 1 ]; then
      fc_log "kept $FC_TMP"
    else
      rm -rf -- "$FC_TMP"
    fi
  fi
}

# Cleanup runs with errexit off: a failing wait/kill there must not abort it (under set -e a trap
# handler inherits errexit, and one failing command would end the script with processes left over).
# Both handlers first check they run in the main shell: a child forked by fc_start still has these
# traps until it execs, and a SIGTERM landing in that window must end the child, not run the
# cleanup (which would delete the temp dir under the test's feet).
fc__on_exit() {
  local rc=$?
  if [ "$BASHPID" != "$FC_MAIN_PID" ]; then exec 2>/dev/null; exit "$rc"; fi
  set +e; trap - EXIT; fc_cleanup "$rc"; exit "$rc"
}
fc__on_signal() {
  local sig=$1 rc=130
  [ "$sig" = TERM ] && rc=143
  # (in such a child bash also complains "wait_for: No record of process": hence 2>/dev/null)
  if [ "$BASHPID" != "$FC_MAIN_PID" ]; then trap - EXIT; exec 2>/dev/null; exit "$rc"; fi
  set +e
  trap - INT TERM
  fc_log "caught SIG$sig, cleaning up"
  exit "$rc"      # runs the EXIT trap
}

# fc_init: make the per-test temp dir and install the traps. Idempotent.
fc_init() {
  [ -n "$FC_TMP" ] && return 0
  FC_MAIN_PID=$BASHPID
  FC_TMP="$(mktemp -d "${TMPDIR:-/tmp}/fc-$FC_NAME.XXXXXX")"
  # icecast2 runs as an unprivileged user and must traverse into its own subdirectory.
  chmod 711 "$FC_TMP"
  trap fc__on_exit EXIT
  trap 'fc__on_signal INT' INT
  trap 'fc__on_signal TERM' TERM
}

# fc_start NAME CMD [ARGS...]: run CMD in the background, stdout+stderr appended to
# $FC_TMP/NAME.log, track it; its PID is left in FC_LAST_PID.
fc_start() {
  local name=$1; shift
  local log="$FC_TMP/$name.log"
  printf '=== %s start: %s\n' "$(date +%T.%N | cut -c1-12)" "$*" >>"$log"
  # The child ignores SIGINT (as async commands do): on Ctrl-C only our trap stops it, by PID, in order.
  ( trap - EXIT TERM; trap "" INT; exec "$@" ) </dev/null >>"$log" 2>&1 &
  FC_LAST_PID=$!
  fc_track "$FC_LAST_PID" "$name"
}

# fc_need_bin PATH...: fail clearly when a binary the test needs has not been built.
fc_need_bin() {
  local b
  for b in "$@"; do [ -x "$b" ] || fc_fail "missing binary $b (run make)"; done
}

# now_ms: monotonic-ish milliseconds for timelines.
now_ms() { echo $(( $(date +%s%N) / 1000000 )); }

# sleep_until T0_MS OFFSET_S: sleep until OFFSET_S seconds (may be fractional) after T0_MS.
sleep_until() {
  local target=$(( $1 + $(awk -v s="$2" 'BEGIN{printf "%d", s*1000}') )) now
  now=$(now_ms)
  if [ "$target" -gt "$now" ]; then
    sleep "$(awk -v d=$(( target - now )) 'BEGIN{printf "%.3f", d/1000}')"
  fi
}

# free_port: print a loopback port that is currently free for both TCP and UDP and has not been
# handed out before in this test.
free_port() {
  local p i
  touch "$FC_TMP/.ports"
  for i in $(seq 1 50); do
    if command -v python3 >/dev/null 2>&1; then
      p=$(python3 - <<'PY' 2>/dev/null
import socket
t = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
t.bind(("127.0.0.1", 0))
port = t.getsockname()[1]
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
u.bind(("127.0.0.1", port))   # raises if the UDP side is taken
print(port)
PY
) || p=""
    else
      p=$(( 20000 + RANDOM % 30000 ))
      ss -Htanu "( sport = :$p )" 2>/dev/null | grep -q . && p=""
    fi
    [ -n "$p" ] || continue
    grep -qx "$p" "$FC_TMP/.ports" && continue
    echo "$p" >>"$FC_TMP/.ports"
    echo "$p"
    return 0
  done
  fc_fail "free_port: no free port found"
}

# wait_until TIMEOUT_S CMD...: run CMD every 0.1 s until it succeeds; return 1 on timeout.
wait_until() {
  local timeout=$1; shift
  local deadline=$(( $(now_ms) + timeout * 1000 ))
  while :; do
    "$@" >/dev/null 2>&1 && return 0
    [ "$(now_ms)" -ge "$deadline" ] && return 1
    sleep 0.1
  done
}

# http_code URL: print the HTTP status of URL (000 when nothing answered). Streams are cut off
# after 1 s; the status line has arrived by then.
http_code() {
  curl -s -o /dev/null --max-time 1 -w '%{http_code}' "$1" 2>/dev/null || true
}
fc__http_ok() { local c; c=$(http_code "$1"); [ "${c:0:1}" = 2 ]; }

# wait_http URL TIMEOUT_S: poll until URL answers 2xx; return 1 on timeout.
wait_http() {
  wait_until "${2:-10}" fc__http_ok "$1"
}

# port_listening PORT: true when something listens on 127.0.0.1:PORT (TCP).
port_listening() {
  ss -Hltn "( sport = :$1 )" 2>/dev/null | grep -q .
}

# wait_exit PID TIMEOUT_S: wait for a tracked child to exit by itself and put its exit status in
# FC_WAIT_RC (call it directly, not in $(...): a subshell cannot reap the parent's children).
# Returns 1 (and leaves it running) on timeout.
FC_WAIT_RC=""
wait_exit() {
  local pid=$1 deadline=$(( $(now_ms) + $2 * 1000 ))
  FC_WAIT_RC=""
  while fc_alive "$pid"; do
    [ "$(now_ms)" -ge "$deadline" ] && return 1
    sleep 0.05
  done
  FC_WAIT_RC=0
  { wait "$pid"; } 2>/dev/null || FC_WAIT_RC=$?
  return 0
}

# fc_ice_owner: print "user:group" icecast2 should drop to when started as root.
fc_ice_owner() {
  if ! id -u "$FC_ICE_USER" >/dev/null 2>&1; then
    # Concurrent tests may race here; a failed useradd is fine if the user now exists.
    useradd --system --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin \
      --user-group "$FC_ICE_USER" >/dev/null 2>&1 || true
  fi
  if id -u "$FC_ICE_USER" >/dev/null 2>&1; then
    echo "$FC_ICE_USER:$(id -gn "$FC_ICE_USER")"
  else
    echo "nobody:nogroup"
  fi
}

# start_icecast PORT: generate $FC_TMP/icecast/icecast.xml (loopback only), start icecast2 in the
# foreground as a tracked background job and wait until it answers. Sets FC_ICE_PORT, FC_ICE_PID.
start_icecast() {
  local port=$1 dir="$FC_TMP/icecast" owner="" security=""
  command -v icecast2 >/dev/null || fc_fail "icecast2 not installed (scripts/install-deps.sh)"
  mkdir -p "$dir/log"
  if [ "$(id -u)" -eq 0 ]; then
    # icecast2 refuses to run as root; it binds first, then drops to this user, then opens logs.
    owner=$(fc_ice_owner)
    chown -R "$owner" "$dir"
    security="<security><chroot>0</chroot><changeowner><user>${owner%%:*}</user><group>${owner##*:}</group></changeowner></security>"
  fi
  cat >"$dir/icecast.xml" <<EOF
<icecast>
  <location>framecast test</location>
  <admin>root@localhost</admin>
  <hostname>127.0.0.1</hostname>
  <limits>
    <clients>${FC_ICE_CLIENTS:-200}</clients>
    <sources>16</sources>
    <queue-size>1048576</queue-size>
    <client-timeout>30</client-timeout>
    <header-timeout>15</header-timeout>
    <source-timeout>10</source-timeout>
    <burst-on-connect>1</burst-on-connect>
    <burst-size>${FC_ICE_BURST:-65536}</burst-size>
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
    <loglevel>3</loglevel>
  </logging>
  $security
</icecast>
EOF
  grep -q "<clients>${FC_ICE_CLIENTS:-200}</clients>" "$dir/icecast.xml" || fc_fail "icecast.xml: <clients> not set"
  fc_start icecast icecast2 -c "$dir/icecast.xml"
  FC_ICE_PID=$FC_LAST_PID
  FC_ICE_PORT=$port
  if ! wait_http "http://127.0.0.1:$port/status-json.xsl" 10; then
    fc_alive "$FC_ICE_PID" || fc_fail "icecast2 exited at start (see icecast.log)"
    fc_fail "icecast2 not answering on 127.0.0.1:$port after 10 s"
  fi
}

# Test signals. A pure sine encodes to identical frames, which makes frame matching ambiguous, so
# every signal has a slow sweep plus low-level noise: no two frames repeat.
FC_SIG_MP3="aevalsrc=exprs='0.3*sin(2*PI*(440*t+40*sin(2*PI*t/5)))|0.3*sin(2*PI*(550*t+30*sin(2*PI*t/7)))':s=44100[s];anoisesrc=a=0.02:c=pink:r=44100:seed=7,aformat=channel_layouts=stereo[n];[s][n]amix=inputs=2:normalize=0[out0]"
FC_SIG_AAC="aevalsrc=exprs='0.3*sin(2*PI*(330*t+50*sin(2*PI*t/6)))|0.3*sin(2*PI*(660*t+20*sin(2*PI*t/4)))':s=48000[s];anoisesrc=a=0.02:c=pink:r=48000:seed=11,aformat=channel_layouts=stereo[n];[s][n]amix=inputs=2:normalize=0[out0]"
FC_SOURCE_SECONDS="${FC_SOURCE_SECONDS:-86400}"

# start_source_lavfi PORT MOUNT NAME LAVFI ENCODER_ARGS...: ffmpeg pushes LAVFI in real time to
# icecast://127.0.0.1:PORT/MOUNT; waits until the mount is listed. Sets FC_LAST_PID.
start_source_lavfi() {
  local port=$1 mount=${2#/} name=$3 graph=$4; shift 4
  fc_start "$name" ffmpeg -hide_banner -nostdin -loglevel warning \
    -re -f lavfi -i "$graph" -t "$FC_SOURCE_SECONDS" "$@" \
    -ice_name "framecast test $mount" \
    "icecast://source:$FC_ICE_PASSWORD@127.0.0.1:$port/$mount"
  local pid=$FC_LAST_PID
  if ! wait_http "http://127.0.0.1:$port/$mount" 10; then
    fc_alive "$pid" || fc_fail "ffmpeg source for /$mount exited (see $name.log)"
    fc_fail "icecast mount /$mount not up after 10 s"
  fi
  FC_LAST_PID=$pid
}

# start_source_mp3 PORT MOUNT [LAVFI]: MP3 128 kbit/s, 44.1 kHz stereo, audio/mpeg.
start_source_mp3() {
  start_source_lavfi "$1" "$2" "source-${2//\//_}" "${3:-$FC_SIG_MP3}" \
    -c:a libmp3lame -b:a 128k -ar 44100 -ac 2 \
    -content_type audio/mpeg -f mp3 -id3v2_version 0 -write_xing 0
}

# start_source_adts PORT MOUNT [LAVFI]: AAC-LC 96 kbit/s, 48 kHz stereo in ADTS, audio/aac.
start_source_adts() {
  start_source_lavfi "$1" "$2" "source-${2//\//_}" "${3:-$FC_SIG_AAC}" \
    -c:a aac -b:a 96k -ar 48000 -ac 2 \
    -content_type audio/aac -f adts
}

# ice_set_title PORT MOUNT TITLE: set the mount's StreamTitle through the admin interface (what
# ICY-speaking source clients do); icecast then puts it in ICY blocks for Icy-MetaData listeners.
ice_set_title() {
  curl -s -o /dev/null --max-time 3 -u "source:$FC_ICE_PASSWORD" -G \
    --data-urlencode "mount=/${2#/}" --data-urlencode mode=updinfo --data-urlencode "song=$3" \
    "http://127.0.0.1:$1/admin/metadata"
}

# record URL FILE [SECONDS [HEADERS_FILE]]: capture URL to FILE with curl in the background
# (unbuffered, so a SIGTERM loses nothing already received); stops by itself after SECONDS if
# given (curl then exits 28); response headers go to HEADERS_FILE if given. Tracked; PID in
# FC_LAST_PID; curl's log is <basename FILE>.curl.log.
record() {
  local url=$1 file=$2 secs=${3:-} hdrs=${4:-}
  local args=(-s -S -N --fail -o "$file")
  [ -n "$secs" ] && args+=(--max-time "$secs")
  [ -n "$hdrs" ] && args+=(-D "$hdrs")
  fc_start "$(basename "$file").curl" curl "${args[@]}" "$url"
}

fc_init
