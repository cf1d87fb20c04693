#!/usr/bin/env bash
# Handoff restart under a real systemd (issue 10: the units' ExecReload= is the handoff).
#
# `make install PREFIX=/usr DESTDIR=<root>` puts the programs, units and example configs into an
# overlay of this machine's root filesystem (writes go to a tmpfs: nothing on the machine
# changes), and systemd-nspawn boots Debian's systemd in it (own PID, mount, IPC and UTS
# namespaces; the host's network, so the container's relay and edge are on this loopback).
# systemd-sysusers creates the framecast user from the installed sysusers file at boot.
# The relay and the edge run as the installed units (framecast-relay.service,
# framecast-edge.service: Type=notify, User=framecast, the hardening as shipped); a shim on the
# host pulls an icecast2 mount and sends to the relay. While HANDOFF_N (default 5) listeners of
# each kind (plain, ICY, ?offset=, HLS polling; handoff_clients.py) play:
#   1. `systemctl reload framecast-edge`: exits 0, MainPID is the new process, the old one is
#      gone, the unit stays active with no restart, the edge counts the same listeners;
#   2. `systemctl reload framecast-relay`: the same for the relay;
#   3. a reload whose successor cannot start (the config broken meanwhile): `systemctl reload`
#      fails, MainPID and every listener stay;
#   4. `systemctl reload framecast-edge` again (config restored).
# Every listener's audio must be a contiguous byte-identical run of the source (framecmp), no
# EOF, no gap of 1 s or more, no HLS media sequence missed. Then `kill -9` of the edge's MainPID:
# systemd (which never forked that process: it took over by MAINPID=) restarts the unit
# (Restart=on-failure) and the edge serves again. Prints the figures.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/handoff_lib.sh"
set -u
fc_need_bin "$FC_BUILD/framecast-shim" "$FC_BUILD/framecast-relay" "$FC_BUILD/framecast-edge" \
  "$FC_BUILD/tools/framecmp"
command -v systemd-nspawn >/dev/null ||
  fc_fail "systemd-nspawn missing (scripts/install-deps.sh installs systemd-container)"
[ -x /lib/systemd/systemd ] || fc_fail "/lib/systemd/systemd missing (package systemd)"
[ "$(id -u)" = 0 ] || fc_fail "needs root (overlayfs, systemd-nspawn)"
N=${HANDOFF_N:-5}
SECS=${SYSTEMD_SECS:-34}

ho_upstream

# --- the container's root: / under an overlay whose upper layer is a tmpfs ---------------------
R="$FC_TMP/root"
mkdir -p "$FC_TMP/ovl" "$R"
INIT=""; INIT_NS=""
MACHINE="fc$$"
# cgroup directories systemd-nspawn --keep-unit makes under ours (name=systemd and unified).
nspawn_cgroups() {
  local line path
  while IFS= read -r line; do
    case "$line" in
    *:name=systemd:*) path=/sys/fs/cgroup/systemd${line##*:} ;;
    0::*) path=/sys/fs/cgroup/unified${line#0::} ;;
    *) continue ;;
    esac
    path=${path%/}
    echo "$path/payload" "$path/supervisor"
  done </proc/self/cgroup
}
umount_root() {
  # The container's init first (if it is still the one we saw: its PID namespace): killing a
  # PID namespace's init ends every process in it. Then wait for it to be gone.
  if [ -n "$INIT" ] && [ "$(readlink "/proc/$INIT/ns/pid" 2>/dev/null)" = "$INIT_NS" ]; then
    kill -KILL "$INIT" 2>/dev/null
    local n=0
    while [ -d "/proc/$INIT" ] && [ $n -lt 50 ]; do sleep 0.1; n=$((n + 1)); done
  fi
  local i d
  for i in 1 2 3 4 5 6 7 8 9 10; do
    mountpoint -q "$R" || break
    umount "$R" 2>/dev/null || sleep 0.2
  done
  mountpoint -q "$R" && umount -l "$R"
  mountpoint -q "$FC_TMP/ovl" && umount -l "$FC_TMP/ovl"
  # What nspawn leaves behind: its propagation directory (it refuses to remove it when /run is
  # not a tmpfs) and the empty cgroups of --keep-unit.
  rm -rf "/run/systemd/nspawn/propagate/$MACHINE"
  for d in $(nspawn_cgroups); do
    [ -d "$d" ] && find "$d" -depth -type d -exec rmdir {} + 2>/dev/null
  done
  return 0
}
fc_on_cleanup umount_root
mount -t tmpfs -o size=512m fc-systemd "$FC_TMP/ovl" || fc_fail "cannot mount a tmpfs"
mkdir -p "$FC_TMP/ovl/up" "$FC_TMP/ovl/work"
mount -t overlay fc-systemd -o "lowerdir=/,upperdir=$FC_TMP/ovl/up,workdir=$FC_TMP/ovl/work" "$R" ||
  fc_fail "cannot mount an overlay of /"
make -s -C "$FC_ROOT" install BUILD="$FC_BUILD" PREFIX=/usr DESTDIR="$R" >"$FC_TMP/install.log" 2>&1 ||
  { tail -5 "$FC_TMP/install.log" >&2; fc_fail "make install into the container root"; }
for f in usr/bin/framecast-edge usr/bin/framecast-relay usr/bin/framecast-handoff \
  lib/systemd/system/framecast-edge.service lib/systemd/system/framecast-relay.service \
  usr/lib/sysusers.d/framecast.conf; do
  [ -s "$R/$f" ] || fc_fail "make install did not install /$f"
done
install -m 644 "$FC_TMP/mesh.key" "$R/etc/framecast/mesh.key"
cat >"$R/etc/framecast/relay.json" <<EOF
{ "ingest": ["tcp://127.0.0.1:$ing"], "serve": ["127.0.0.1:$srv"], "key": "/etc/framecast/mesh.key" }
EOF
cat >"$R/etc/framecast/edge.json" <<EOF
{ "listen": "127.0.0.1:$http", "relay": ["127.0.0.1:$srv"], "key": "/etc/framecast/mesh.key",
  "web-root": "/usr/share/framecast/web", "rewind-dir": "/var/lib/framecast",
  "workers": 2, "hls-segment": 2, "write-interval": 0.25 }
EOF
cp "$R/etc/framecast/edge.json" "$FC_TMP/edge.json.good"
# Boot only what the units need (basic.target), not this machine's multi-user services.
mkdir -p "$R/etc/systemd/system"
printf '[Unit]\nDescription=framecast systemd test\nRequires=basic.target\nAfter=basic.target\n' \
  >"$R/etc/systemd/system/fc-test.target"

# --kill-signal=SIGKILL: the cleanup's SIGTERM to nspawn ends the container at once (a systemd
# poweroff would outlast the 3 s before SIGKILL, and a SIGKILLed nspawn leaves its init running).
fc_start nspawn systemd-nspawn -q -D "$R" --register=no --keep-unit --machine "$MACHINE" \
  --kill-signal=SIGKILL -b -- --unit=fc-test.target
nspawn_pid=$FC_LAST_PID
find_init() {
  INIT=$(pgrep -P "$nspawn_pid" | head -n 1)
  [ -n "$INIT" ] && INIT_NS=$(readlink "/proc/$INIT/ns/pid") && [ -n "$INIT_NS" ]
}
wait_until 10 find_init || fc_fail "systemd-nspawn started no container (see nspawn.log)"
# A command in the container (its mount, UTS, IPC and PID namespaces), bounded in time: a wedged
# init must give a FAIL line, not the runner's timeout.
in_ct() { timeout 20 nsenter -t "$INIT" -m -u -i -p -- "$@"; }
booted() { case "$(in_ct systemctl is-system-running 2>/dev/null)" in running|degraded) return 0 ;; esac; return 1; }
wait_until 30 booted || fc_fail "systemd in the container not up after 30 s: $(in_ct systemctl is-system-running 2>&1)"
in_ct getent passwd framecast >/dev/null || fc_fail "systemd-sysusers did not create the framecast user"
fc_log "systemd $(in_ct systemctl --version | head -n 1 | cut -d' ' -f2) booted in the container (init pid $INIT)"

prop() { in_ct systemctl show -p "$2" --value "$1"; }
unit_log() { in_ct journalctl -q -u "$1" --no-pager 2>/dev/null | tail -n "${2:-20}"; }
in_ct systemctl start framecast-relay framecast-edge ||
  { unit_log framecast-relay >&2; unit_log framecast-edge >&2; fc_fail "systemctl start failed"; }
for u in framecast-relay framecast-edge; do
  [ "$(prop $u ActiveState)" = active ] || { unit_log $u >&2; fc_fail "$u not active"; }
  [ "$(prop $u User)" = framecast ] || fc_fail "$u does not run as framecast"
done
fc_start shim "$FC_BUILD/framecast-shim" --mount live.mp3 --encoder a \
  --pull "http://127.0.0.1:$ice/live.mp3" --to "tcp://127.0.0.1:$ing" --key "$FC_TMP/mesh.key"

edge_up() { [ "$(ho_buffered "$http")" -ge 10 ]; }
wait_until 30 edge_up || { unit_log framecast-edge >&2; fc_fail "edge (under systemd) never buffered 10 s"; }
ho_start_clients "$http" "$N" "$SECS"
want=$HO_WANT
fc_log "$want stream listeners and $N HLS clients playing"

# reload UNIT: systemctl reload must succeed and leave a new MainPID, the old one gone, no restart.
reload() {
  local u=$1 old new t0 ms
  old=$(prop "$u" MainPID)
  t0=$(now_ms)
  in_ct systemctl reload "$u" || { unit_log "$u" >&2; fc_fail "systemctl reload $u failed"; }
  ms=$(( $(now_ms) - t0 ))
  new=$(prop "$u" MainPID)
  [ "$new" != "$old" ] && [ "$new" != 0 ] || fc_fail "$u: MainPID $old -> $new after the reload"
  in_ct test -d "/proc/$old" && fc_fail "$u: the old process $old still runs after the reload"
  [ "$(prop "$u" ActiveState)/$(prop "$u" SubState)" = active/running ] ||
    fc_fail "$u is $(prop "$u" ActiveState)/$(prop "$u" SubState) after the reload"
  [ "$(prop "$u" NRestarts)" = 0 ] || fc_fail "$u was restarted, not handed over"
  unit_log "$u" 40 | grep -q "took over from pid $old" ||
    fc_fail "$u: no 'took over from pid $old' in the journal"
  unit_log "$u" 40 | grep -q " $u\[$new\]: " ||
    fc_fail "$u: the new process's lines are not in the journal as $u[$new] (SyslogIdentifier)"
  ho_wait_count "$http" "$want" "after reloading $u"
  fc_log "systemctl reload $u: MainPID $old -> $new in $ms ms, active, listeners=$want"
  RELOADS+=("$u:${ms}ms")
}
RELOADS=()

sleep_until "$(now_ms)" 4
reload framecast-edge
sleep_until "$(now_ms)" 4
reload framecast-relay
sleep_until "$(now_ms)" 3
# A successor that cannot start: the reload fails, the running edge keeps everything.
old=$(prop framecast-edge MainPID)
echo '{ "listen": "127.0.0.1:1", "no-such-option": true }' >"$R/etc/framecast/edge.json"
frc=0
in_ct systemctl reload framecast-edge >/dev/null 2>&1 || frc=$?
cp "$FC_TMP/edge.json.good" "$R/etc/framecast/edge.json"
[ "$frc" != 0 ] || fc_fail "systemctl reload succeeded with a broken config"
[ "$(prop framecast-edge MainPID)" = "$old" ] || fc_fail "a failed reload changed MainPID"
[ "$(prop framecast-edge ActiveState)" = active ] || fc_fail "a failed reload stopped the edge"
ho_wait_count "$http" "$want" "after a failed reload"
fc_log "failed reload: systemctl exit $frc, MainPID $old kept, listeners=$want"
sleep_until "$(now_ms)" 3
reload framecast-edge

ho_finish "$N"
summary=$HO_SUMMARY frames=$HO_FRAMES

# systemd supervises the process that took over (it never forked it): a crash restarts the unit.
old=$(prop framecast-edge MainPID)
t0=$(now_ms)
in_ct kill -KILL "$old"
restarted() { [ "$(prop framecast-edge NRestarts)" = 1 ] && [ "$(prop framecast-edge SubState)" = running ]; }
wait_until 15 restarted || fc_fail "edge not restarted after kill -9 of MainPID $old: $(prop framecast-edge ActiveState)/$(prop framecast-edge SubState) NRestarts=$(prop framecast-edge NRestarts)"
wait_http "http://127.0.0.1:$http/" 10 || fc_fail "the restarted edge does not answer"
restart_ms=$(( $(now_ms) - t0 ))
echo "systemd_reload: PASS reloads=${RELOADS[*]} failed_reload_rc=$frc $summary frames_compared=$frames restart_after_kill9_ms=$restart_ms"
