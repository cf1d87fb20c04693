# shellcheck shell=bash
# Run an integration test inside a private network namespace (its own loopback), so nftables rules
# the test adds touch nothing outside it. Source after lib.sh, then call fc_netns_enter first:
#
#   . "$(dirname "$0")/lib.sh"
#   . "$(dirname "$0")/netns.sh"
#   fc_netns_enter "$@"        # returns only in the inner run, inside the namespace
#
# Outer run (FC_NETNS unset): creates the namespace fc-<test>-<pid>, brings its lo up, runs this
# same script inside it (`ip netns exec NS bash SCRIPT ARGS`, a tracked child with our stdout and
# stderr) and waits. On exit (also on INT/TERM/failure) it stops the inner run (SIGTERM, whose
# lib.sh trap stops every process it started, then SIGKILL after FC_NETNS_KILL_TIMEOUT s), kills by
# PID whatever is still left in the namespace (`ip netns pids`: only processes this test started
# can be in it; each one is logged, since it means an inner cleanup failed), flushes the
# namespace's nftables ruleset, deletes the namespace, and exits with the inner run's status.
#
# Inner run: FC_NETNS is the namespace's name; everything lib.sh starts (icecast2, ffmpeg, curl,
# framecast) and every check (ss, curl, free_port) runs in the namespace, on its loopback.
#
# Env: FC_NETNS_KILL_TIMEOUT (s the inner run gets for its own cleanup, default 12).

FC_NETNS="${FC_NETNS:-}"
FC_NETNS_INNER_PID=""
FC_NETNS_MADE=0

# fc_netns_pids: PIDs of the processes in our namespace (none printed when it is gone).
fc_netns_pids() {
  [ -n "$FC_NETNS" ] || return 0
  ip netns pids "$FC_NETNS" 2>/dev/null || true
}

# Outer cleanup: stop the inner run, then anything left in the namespace, then the namespace.
fc_netns_cleanup() {
  local p left i
  if [ -n "$FC_NETNS_INNER_PID" ]; then
    FC_KILL_TIMEOUT="${FC_NETNS_KILL_TIMEOUT:-12}" fc_stop "$FC_NETNS_INNER_PID"
    FC_NETNS_INNER_PID=""
  fi
  [ "$FC_NETNS_MADE" = 1 ] || return 0
  for i in 1 2 3 4 5 6 7 8 9 10; do
    left=$(fc_netns_pids)
    [ -z "$left" ] && break
    for p in $left; do
      [ "$p" = "$$" ] && continue
      [ "$i" = 1 ] && fc_log "netns $FC_NETNS: pid $p ($(tr '\0' ' ' 2>/dev/null </proc/"$p"/cmdline | cut -c1-80)) still running after the test: SIGKILL"
      kill -KILL "$p" 2>/dev/null || true
    done
    sleep 0.1
  done
  ip netns exec "$FC_NETNS" nft flush ruleset 2>/dev/null || true
  ip netns delete "$FC_NETNS" 2>/dev/null || fc_log "netns $FC_NETNS: ip netns delete failed"
  FC_NETNS_MADE=0
}

fc__netns_on_exit() {
  local rc=$?
  if [ "$BASHPID" != "$FC_MAIN_PID" ]; then exec 2>/dev/null; exit "$rc"; fi
  set +e
  trap - EXIT
  fc_netns_cleanup
  # lib.sh's own cleanup for the outer run: nothing else was started; drop its temp dir quietly.
  # shellcheck disable=SC2034  # lib.sh's flag: its cleanup has run
  FC_CLEANED=1
  [ -n "$FC_TMP" ] && [ -d "$FC_TMP" ] && rm -rf -- "$FC_TMP"
  exit "$rc"
}

# Inner run's SIGTERM handler. Like lib.sh's, except that it ignores further SIGTERMs instead of
# restoring the default action: timeout(1) (run-all.sh) signals the whole process group, so the
# inner run gets one SIGTERM from timeout and another from the outer run's cleanup a few ms later,
# which with the default action would kill it in the middle of stopping its processes.
fc__netns_inner_on_signal() {
  local rc=143
  if [ "$BASHPID" != "$FC_MAIN_PID" ]; then trap - EXIT; exec 2>/dev/null; exit "$rc"; fi
  set +e
  trap '' TERM
  fc_log "caught SIG$1, cleaning up"
  if [ -n "$FC_NETNS_SLEEP_PID" ]; then
    kill -TERM "$FC_NETNS_SLEEP_PID" 2>/dev/null
    { wait "$FC_NETNS_SLEEP_PID"; } 2>/dev/null
    FC_NETNS_SLEEP_PID=""
  fi
  exit "$rc"      # runs the EXIT trap
}

# fc_netns_sleep_until T0_MS OFFSET_S: lib.sh's sleep_until, but interruptible. bash runs a trap
# only once its foreground child has ended, so a SIGTERM from the outer run (which, unlike
# timeout(1), signals the inner run alone) would wait for a long `sleep`; a background sleep and
# `wait` let the trap run at once (it then stops that sleep by its PID).
FC_NETNS_SLEEP_PID=""
fc_netns_sleep_until() {
  local target=$(( $1 + $(awk -v s="$2" 'BEGIN{printf "%d", s*1000}') )) now
  now=$(now_ms)
  [ "$target" -gt "$now" ] || return 0
  sleep "$(awk -v d=$(( target - now )) 'BEGIN{printf "%.3f", d/1000}')" &
  FC_NETNS_SLEEP_PID=$!
  wait "$FC_NETNS_SLEEP_PID" || true
  FC_NETNS_SLEEP_PID=""
}

# fc_netns_enter ARGS...: see the top of this file.
fc_netns_enter() {
  if [ -n "$FC_NETNS" ]; then
    # Inner run: make sure we really are in the namespace before touching nftables.
    [ "$(ip netns identify "$$" 2>/dev/null)" = "$FC_NETNS" ] ||
      fc_fail "FC_NETNS=$FC_NETNS is set but this process is not in that namespace"
    trap 'fc__netns_inner_on_signal TERM' TERM
    return 0
  fi
  [ "$(id -u)" -eq 0 ] || fc_fail "needs root (ip netns, nft)"
  local t
  for t in ip nft; do command -v "$t" >/dev/null || fc_fail "missing tool $t"; done
  FC_NETNS="fc-$(printf '%s' "$FC_NAME" | tr -c 'A-Za-z0-9_-' '_' | cut -c1-24)-$$"
  if ip netns list 2>/dev/null | awk '{print $1}' | grep -qxF -- "$FC_NETNS"; then
    fc_fail "network namespace $FC_NETNS already exists (left over? ip netns delete $FC_NETNS)"
  fi
  trap fc__netns_on_exit EXIT
  ip netns add "$FC_NETNS" || fc_fail "ip netns add $FC_NETNS failed"
  FC_NETNS_MADE=1
  ip netns exec "$FC_NETNS" ip link set lo up || fc_fail "cannot bring lo up in $FC_NETNS"
  fc_log "network namespace $FC_NETNS (lo up); running the test inside it"
  # Like fc_start: the child ignores SIGINT (the outer trap stops it by PID, with SIGTERM).
  ( trap - EXIT TERM; trap "" INT
    export FC_NETNS
    exec ip netns exec "$FC_NETNS" bash "$0" "$@" ) </dev/null &
  FC_NETNS_INNER_PID=$!
  fc_track "$FC_NETNS_INNER_PID" "netns-inner"
  local rc=0
  wait "$FC_NETNS_INNER_PID" || rc=$?
  FC_NETNS_INNER_PID=""
  exit "$rc"
}
