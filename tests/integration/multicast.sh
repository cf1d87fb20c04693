#!/usr/bin/env bash
# Multicast transport (issue 8): a shim sending ONLY to a multicast group, two relays ingesting
# that group, an edge subscribed to both relays, one listener; twice at once, in two topologies:
#
#   lo    everything in the test's network namespace SRC (netns.sh), on its loopback: lo has the
#         MULTICAST flag and the route 239.1.1.0/24 dev lo src 127.0.0.1; group 239.1.1.1.
#   veth  the shim in SRC sends through a veth link (route 239.2.2.0/24 dev veth0, 10.77.0.1/24)
#         to a second namespace RX (veth0 10.77.0.2/24, route 239.0.0.0/8 dev veth0) where the
#         two relays, the edge and the listener run; group 239.2.2.2.
#
# Both use the same icecast2 mount (ffmpeg, real time) and reference recorder; each shim publishes
# its own mount name (lo.mp3 / veth.mp3), so a datagram crossing to the wrong topology would show
# up as a foreign stream at a relay. Relays have no ingest but the group (no TCP, no unicast UDP).
#
# Asserts, per topology:
#   join   before the relays start the group is not joined in that namespace; after relay 1 starts
#          it is joined (/proc/net/igmp Users=1) on the expected interface (lo, resp. veth0) and
#          nowhere else; after relay 2 starts Users=2.
#   leave  relay 2 is stopped (SIGTERM) while the listener plays: Users drops to 1; at the end
#          relay 1 is stopped: the group is gone from the namespace.
#   path   the shim's only target is the group, it sent >= MIN_SENT frames and dropped none;
#          nftables (input hook) counted exactly that many datagrams to GROUP:PORT; every relay's
#          frames_in (its exit stats) is > 0 and <= those datagrams, relay 1 (up for the whole
#          run) forwarded every frame the shim sent, relay 2 >= MIN_R2 frames, no relay got a frame
#          from a TCP peer (sum of its per-peer frames_in = 0), and only its own mount's stream;
#          the edge's GET / shows both relays carried >= MIN_R2 frames.
#   bytes  the listener (LISTEN_S s, relay 2 stopped half way) is byte-identical to a contiguous
#          run of the frames icecast2 served (framecmp, >= MIN_FRAMES), and the edge counts
#          lost=0 gaps=0 for the mount.
#
# Env: FC_KEEP=1 keeps the temp dir; FC_BUILD=dir picks the binaries.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/netns.sh"

# The outer run also removes the RX namespace (in case the inner run could not): wrap netns.sh's
# outer cleanup. RX's name derives from the SRC namespace's, known to both runs.
eval "fc__mc_orig_$(declare -f fc_netns_cleanup)"
mc_rx_cleanup() {
  local ns="${FC_NETNS:+$FC_NETNS-rx}" p left i
  [ -n "$ns" ] || return 0
  ip netns list 2>/dev/null | awk '{print $1}' | grep -qxF -- "$ns" || return 0
  for i in 1 2 3 4 5 6 7 8 9 10; do
    left=$(ip netns pids "$ns" 2>/dev/null || true)
    [ -z "$left" ] && break
    for p in $left; do
      [ "$i" = 1 ] && fc_log "netns $ns: pid $p ($(tr '\0' ' ' 2>/dev/null </proc/"$p"/cmdline | cut -c1-80)) still running: SIGKILL"
      kill -KILL "$p" 2>/dev/null || true
    done
    sleep 0.1
  done
  ip netns delete "$ns" 2>/dev/null || fc_log "netns $ns: ip netns delete failed"
}
fc_netns_cleanup() {
  fc__mc_orig_fc_netns_cleanup
  mc_rx_cleanup
}

fc_netns_enter "$@"
# ---- from here on we are inside the SRC namespace ---------------------------------------------

SHIM="$FC_BUILD/framecast-shim"
RELAY="$FC_BUILD/framecast-relay"
EDGE="$FC_BUILD/framecast-edge"
FRAMECMP="$FC_BUILD/tools/framecmp"
fc_need_bin "$SHIM" "$RELAY" "$EDGE" "$FRAMECMP"
for t in icecast2 ffmpeg curl python3 ss nft ip; do
  command -v "$t" >/dev/null || fc_fail "missing tool $t (scripts/install-deps.sh)"
done

NS_SRC=$FC_NETNS
NS_RX="$FC_NETNS-rx"
NFT_TABLE="fc_mc_$$"
LISTEN_S=12
STOP_R2_AT=6               # s into the listen: relay 2 of each topology is stopped
MIN_FRAMES=$(( LISTEN_S * 3828 * 90 / 100 / 100 ))   # 90 % of LISTEN_S s of MP3 (38.28 frames/s)
MIN_SENT=$(( (LISTEN_S + 4) * 3828 * 90 / 100 / 100 ))  # the shim ran for the burst + listen
MIN_R2=$(( (STOP_R2_AT + 4) * 3828 * 90 / 100 / 100 ))  # relay 2: the 4 s buffer + STOP_R2_AT s
T=$FC_TMP

# Inner-run exit: stop our processes (lib.sh), then what is left in RX and RX itself. netns.sh's
# outer run deletes SRC (and with it the nft table and the veth pair).
mc_on_exit() {
  local rc=$?
  if [ "$BASHPID" != "$FC_MAIN_PID" ]; then exec 2>/dev/null; exit "$rc"; fi
  set +e
  trap - EXIT
  nft delete table inet "$NFT_TABLE" 2>/dev/null
  fc_cleanup "$rc"
  mc_rx_cleanup
  exit "$rc"
}
trap mc_on_exit EXIT

rx() { ip netns exec "$NS_RX" "$@"; }

# --- topology -----------------------------------------------------------------------------------
ip link set lo multicast on || fc_fail "cannot set MULTICAST on lo in $NS_SRC"
# src 127.0.0.1: without it the kernel picks veth0's address as the source, and a datagram from a
# local non-loopback address arriving on lo is dropped as a martian.
ip route add 239.1.1.0/24 dev lo src 127.0.0.1 || fc_fail "cannot add the multicast route on lo"
ip netns add "$NS_RX" || fc_fail "ip netns add $NS_RX failed"
rx ip link set lo up
ip link add veth0 type veth peer name veth0 netns "$NS_RX" || fc_fail "cannot create the veth pair"
ip addr add 10.77.0.1/24 dev veth0 && ip link set veth0 up &&
  ip route add 239.2.2.0/24 dev veth0 || fc_fail "cannot configure veth0 in $NS_SRC"
rx ip addr add 10.77.0.2/24 dev veth0 && rx ip link set veth0 up &&
  rx ip route add 239.0.0.0/8 dev veth0 || fc_fail "cannot configure veth0 in $NS_RX"
veth_up() { rx ip link show veth0 | grep -q 'LOWER_UP' && ip link show veth0 | grep -q 'LOWER_UP'; }
wait_until 5 veth_up || fc_fail "veth link between $NS_SRC and $NS_RX not up"

ICE=$(free_port)
KEY="$T/mesh.key"
# Per topology: group, ingest port, relay serve ports, edge port, namespace, group's interface.
declare -A GROUP=([lo]=239.1.1.1 [veth]=239.2.2.2)
declare -A NSOF=([lo]="$NS_SRC" [veth]="$NS_RX")
declare -A DEV=([lo]=lo [veth]=veth0)
declare -A PORT R1_SRV R2_SRV EDGE_PORT NFT_PKTS
for k in lo veth; do
  PORT[$k]=$(free_port); R1_SRV[$k]=$(free_port); R2_SRV[$k]=$(free_port); EDGE_PORT[$k]=$(free_port)
done
fc_log "SRC=$NS_SRC RX=$NS_RX icecast=$ICE lo=${GROUP[lo]}:${PORT[lo]} veth=${GROUP[veth]}:${PORT[veth]}"

# in_ns TOPO CMD...: run CMD in that topology's receiving namespace.
in_ns() {
  local k=$1; shift
  if [ "$k" = veth ]; then rx "$@"; else "$@"; fi
}

# igmp_users NS GROUP: "DEV USERS" for every interface of NS that joined GROUP (IPv4 dotted).
igmp_users() {
  local hex
  hex=$(awk -F. '{printf "%02X%02X%02X%02X", $4, $3, $2, $1}' <<<"$2")
  ip netns exec "$1" cat /proc/net/igmp | awk -v g="$hex" '
    /^[0-9]+\t/ { dev = $2; next }
    $1 == g { print dev, $2 }'
}
# igmp_is TOPO WANT: the group is joined exactly as WANT says ("" = nowhere, "DEV N" = on DEV only
# with N users).
igmp_is() {
  [ "$(igmp_users "${NSOF[$1]}" "${GROUP[$1]}" | tr '\n' ';' | sed 's/;$//')" = "$2" ]
}
# expect_igmp TOPO WANT WHEN: bounded wait for igmp_is, fail with what /proc/net/igmp says.
expect_igmp() {
  wait_until 5 igmp_is "$1" "$2" && return 0
  fc_fail "$1: ${GROUP[$1]} $3: want membership '${2:-none}', /proc/net/igmp of ${NSOF[$1]} says '$(igmp_users "${NSOF[$1]}" "${GROUP[$1]}" | tr '\n' ';')'"
}

for k in lo veth; do expect_igmp "$k" "" "before any relay started"; done

# nftables counters of the multicast datagrams each namespace receives for its group.
nft -f - <<EOF || fc_fail "nft: cannot create table inet $NFT_TABLE in $NS_SRC"
table inet $NFT_TABLE {
  chain input {
    type filter hook input priority 0; policy accept;
    ip daddr ${GROUP[lo]} udp dport ${PORT[lo]} counter
  }
}
EOF
rx nft -f - <<EOF || fc_fail "nft: cannot create table inet $NFT_TABLE in $NS_RX"
table inet $NFT_TABLE {
  chain input {
    type filter hook input priority 0; policy accept;
    ip daddr ${GROUP[veth]} udp dport ${PORT[veth]} counter
  }
}
EOF
nft_packets() {  # nft_packets TOPO
  in_ns "$1" nft list table inet "$NFT_TABLE" | sed -n 's/.*counter packets \([0-9]*\).*/\1/p' | head -n1
}

# --- upstream: icecast2, real-time ffmpeg source, reference recorder (SRC) ---------------------
start_icecast "$ICE"
start_source_mp3 "$ICE" live.mp3
record "http://127.0.0.1:$ICE/live.mp3" "$T/ref.mp3"; REF=$FC_LAST_PID
bash "$FC_ROOT/scripts/keygen.sh" "$KEY" 2>/dev/null

# --- relays: join on start ----------------------------------------------------------------------
declare -A PID
ns_listening() {  # ns_listening TOPO PORT
  in_ns "$1" ss -Hltn "( sport = :$2 )" 2>/dev/null | grep -q .
}
start_relay() {   # start_relay TOPO N
  local k=$1 n=$2 srv
  [ "$n" = 1 ] && srv=${R1_SRV[$k]} || srv=${R2_SRV[$k]}
  local cmd=("$RELAY" --ingest "udp://${GROUP[$k]}:${PORT[$k]}" --serve "127.0.0.1:$srv"
             --key "$KEY" --node "$k-relay$n")
  [ "$k" = veth ] && cmd=(ip netns exec "$NS_RX" "${cmd[@]}")
  fc_start "$k-relay$n" "${cmd[@]}"
  PID[$k-relay$n]=$FC_LAST_PID
  wait_until 5 ns_listening "$k" "$srv" || {
    fc_alive "$FC_LAST_PID" || fc_fail "$k-relay$n exited at start (see $k-relay$n.log)"
    fc_fail "$k-relay$n not listening on :$srv after 5 s"
  }
  grep -q "listening udp://${GROUP[$k]}:${PORT[$k]} (udp, multicast)" "$T/$k-relay$n.log" ||
    fc_fail "$k-relay$n does not report a multicast ingest (see $k-relay$n.log)"
}
for k in lo veth; do
  start_relay "$k" 1
  expect_igmp "$k" "${DEV[$k]} 1" "after relay 1 started"
  start_relay "$k" 2
  expect_igmp "$k" "${DEV[$k]} 2" "after relay 2 started"
done
fc_log "joined: lo=[$(igmp_users "$NS_SRC" "${GROUP[lo]}" | tr '\n' ' ')] veth=[$(igmp_users "$NS_RX" "${GROUP[veth]}" | tr '\n' ' ')]"

# --- edges and shims (shims: the group is their only target) -----------------------------------
for k in lo veth; do
  cmd=("$EDGE" --listen "127.0.0.1:${EDGE_PORT[$k]}" --relay "127.0.0.1:${R1_SRV[$k]}"
       --relay "127.0.0.1:${R2_SRV[$k]}" --key "$KEY" --burst 4 --node "$k-edge")
  [ "$k" = veth ] && cmd=(ip netns exec "$NS_RX" "${cmd[@]}")
  fc_start "$k-edge" "${cmd[@]}"; PID[$k-edge]=$FC_LAST_PID
done
for k in lo veth; do
  wait_until 5 ns_listening "$k" "${EDGE_PORT[$k]}" || {
    fc_alive "${PID[$k-edge]}" || fc_fail "$k-edge exited at start (see $k-edge.log)"
    fc_fail "$k-edge not listening on :${EDGE_PORT[$k]} after 5 s"
  }
done
for k in lo veth; do
  fc_start "$k-shim" "$SHIM" --mount "$k.mp3" --encoder a --pull "http://127.0.0.1:$ICE/live.mp3" \
    --to "udp://${GROUP[$k]}:${PORT[$k]}" --key "$KEY" --node "$k-shim"
  PID[$k-shim]=$FC_LAST_PID
done

edge_json() { in_ns "$1" curl -s --max-time 2 "http://127.0.0.1:${EDGE_PORT[$1]}/"; }
# buffer_ready TOPO: the edge holds a whole burst (4 s) of the mount.
buffer_ready() {
  in_ns "$1" curl -s --max-time 1 "http://127.0.0.1:${EDGE_PORT[$1]}/$1.mp3/rewind" |
    python3 -c 'import json,sys; sys.exit(json.load(sys.stdin)["seconds"] < 4.5)'
}
alive_or_fail() {
  local when=$1 p; shift
  for p in "$@"; do
    fc_alive "$p" || fc_fail "${FC_PID_NAME[$p]} (pid $p) died $when (see ${FC_PID_NAME[$p]}.log)"
  done
}
all_pids() { local k; for k in lo veth; do echo "${PID[$k-relay1]} ${PID[$k-relay2]} ${PID[$k-edge]} ${PID[$k-shim]}"; done; }
for k in lo veth; do
  if ! wait_until 20 buffer_ready "$k"; then
    # shellcheck disable=SC2046
    alive_or_fail "before the $k edge held 4 s" $(all_pids)
    fc_fail "$k-edge did not hold a 4 s burst of $k.mp3 within 20 s: $(edge_json "$k" | head -c 400)"
  fi
done

# --- listeners; relay 2 of each topology leaves half way ---------------------------------------
T0=$(now_ms)
for k in lo veth; do
  cmd=(curl -s -S -N --fail --max-time "$LISTEN_S" -o "$T/got-$k.mp3" "http://127.0.0.1:${EDGE_PORT[$k]}/$k.mp3")
  [ "$k" = veth ] && cmd=(ip netns exec "$NS_RX" "${cmd[@]}")
  fc_start "got-$k.curl" "${cmd[@]}"; PID[$k-listener]=$FC_LAST_PID
done
fc_log "t=0: listeners started"
fc_netns_sleep_until "$T0" "$STOP_R2_AT"
# shellcheck disable=SC2046
alive_or_fail "before relay 2 was stopped" $(all_pids)
for k in lo veth; do
  fc_log "t=$STOP_R2_AT s: stop $k-relay2 (pid ${PID[$k-relay2]})"
  fc_stop "${PID[$k-relay2]}"
  expect_igmp "$k" "${DEV[$k]} 1" "after relay 2 stopped"
done

for k in lo veth; do
  p=${PID[$k-listener]}
  wait_exit "$p" $(( LISTEN_S + 5 )) || fc_fail "listener got-$k still running after $((LISTEN_S + 5)) s"
  [ "$FC_WAIT_RC" = 28 ] || fc_fail "listener got-$k ended early: curl exit $FC_WAIT_RC (see got-$k.curl.log)"
done
for k in lo veth; do
  alive_or_fail "during the test" "${PID[$k-relay1]}" "${PID[$k-edge]}" "${PID[$k-shim]}"
  edge_json "$k" >"$T/$k-edge.json" || fc_fail "$k-edge GET / did not answer after the test"
done
# Stop the shims first (they log their totals), then relay 1: the group must be left.
fc_stop "${PID[lo-shim]}" "${PID[veth-shim]}" "$REF"
# recvq_empty TOPO: relay 1 has read every datagram queued on its group socket.
recvq_empty() {
  [ "$(in_ns "$1" ss -Huan "( sport = :${PORT[$1]} )" | awk '{s += $2} END {print s + 0}')" = 0 ]
}
for k in lo veth; do
  wait_until 5 recvq_empty "$k" || fc_log "$k: datagrams still queued at relay 1 after 5 s"
  NFT_PKTS[$k]=$(nft_packets "$k")
  fc_stop "${PID[$k-relay1]}"
  expect_igmp "$k" "" "after relay 1 stopped"
done
fc_log "listening done after $(( ($(now_ms) - T0) / 1000 )) s; checking"

# --- verdict -------------------------------------------------------------------------------------
failed=0
bad() { echo "multicast: $*"; failed=1; }
# stat FILE KEY: KEY=N of the last "stats streams=" line of a relay log.
relay_stat() {
  grep -h ' stats streams=' "$1" | tail -n1 | tr ' ' '\n' | sed -n "s/^$2=\([0-9]*\)$/\1/p"
}
declare -A SUMMARY
for k in lo veth; do
  # The shim: one target, the group; sent >= MIN_SENT; none dropped.
  targets=$(grep -h ' stats target=' "$T/$k-shim.log" | sed 's/.* stats target=\([^ ]*\) .*/\1/' | sort -u | tr '\n' ' ')
  [ "$targets" = "udp://${GROUP[$k]}:${PORT[$k]} " ] || bad "$k: shim targets are '$targets', want only the group"
  line=$(grep -h " stats target=udp://${GROUP[$k]}:${PORT[$k]} " "$T/$k-shim.log" | tail -n1)
  sent=$(sed -n 's/.* sent=\([0-9]*\).*/\1/p' <<<"$line")
  sdrop=$(sed -n 's/.* dropped=\([0-9]*\).*/\1/p' <<<"$line")
  [ "${sent:-0}" -ge "$MIN_SENT" ] || bad "$k: shim sent ${sent:-?} frames to the group, want >= $MIN_SENT"
  [ "${sdrop:-x}" = 0 ] || bad "$k: shim dropped ${sdrop:-?} datagrams (send failed)"
  pkts=${NFT_PKTS[$k]:-0}
  # No loss on lo or veth: every datagram the shim sent must have arrived as multicast.
  [ "$pkts" = "${sent:-x}" ] ||
    bad "$k: nftables counted $pkts multicast datagrams to ${GROUP[$k]}:${PORT[$k]} in ${NSOF[$k]}, shim sent ${sent:-?}"
  r_fig=""
  for n in 1 2; do
    log="$T/$k-relay$n.log"
    fin=$(relay_stat "$log" frames_in); fwd=$(relay_stat "$log" forwarded)
    # frames that came in over TCP (shims pushing, upstreams): the per-peer lines of the same dump.
    tcp_in=$(grep -h ' stats peer=' "$log" | sed -n 's/.* frames_in=\([0-9]*\).*/\1/p' | awk '{s += $1} END {print s + 0}')
    mounts=$(sed -n 's/.* stream new mount=\([^ ]*\) .*/\1/p' "$log" | sort -u | tr '\n' ' ')
    [ -n "$fin" ] || { bad "$k-relay$n: no exit stats line in its log"; continue; }
    [ "$fin" -gt 0 ] && [ "$fin" -le "$pkts" ] ||
      bad "$k-relay$n: frames_in=$fin, want 0 < frames_in <= $pkts multicast datagrams counted"
    [ "$tcp_in" = 0 ] || bad "$k-relay$n: $tcp_in frames came from TCP peers (only multicast expected)"
    [ "$mounts" = "$k.mp3 " ] || bad "$k-relay$n: streams of mounts '$mounts', want only $k.mp3"
    if [ "$n" = 1 ]; then
      [ "$fwd" = "${sent:-x}" ] ||
        bad "$k-relay1: forwarded=$fwd first copies of the ${sent:-?} frames the shim sent (want all)"
    else
      [ "$fwd" -ge "$MIN_R2" ] || bad "$k-relay2: forwarded=$fwd, want >= $MIN_R2 (up for >= $((STOP_R2_AT + 4)) s)"
    fi
    r_fig+=" relay$n=$fwd/$fin"
  done
  # The edge: lost=0 gaps=0; both relays carried frames to it.
  fig=$(python3 - "$T/$k-edge.json" "$k.mp3" "${R1_SRV[$k]}" "${R2_SRV[$k]}" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
m = [x for x in d["mounts"] if x["mount"] == sys.argv[2]]
m = m[0] if m else {"lost": -1, "gaps": -1}
fr = {r["relay"]: r["frames"] for r in d["relays"]}
print(m["lost"], m["gaps"], fr.get("127.0.0.1:" + sys.argv[3], 0), fr.get("127.0.0.1:" + sys.argv[4], 0))
PY
  ) || { bad "$k: cannot read the edge's GET / JSON: $(head -c 300 "$T/$k-edge.json")"; fig="? ? 0 0"; }
  read -r lost gaps e1 e2 <<<"$fig"
  [ "$lost" = 0 ] && [ "$gaps" = 0 ] || bad "$k: edge counts lost=$lost gaps=$gaps for $k.mp3 (want 0)"
  [ "$e1" -ge "$MIN_R2" ] && [ "$e2" -ge "$MIN_R2" ] ||
    bad "$k: the edge got frames=$e1 from relay 1 and $e2 from relay 2 (want >= $MIN_R2 from each)"
  # The listener: byte-identical to what icecast2 served.
  frames="?"
  if [ ! -s "$T/got-$k.mp3" ]; then
    bad "$k: the listener received nothing"
  else
    python3 "$FC_LIB_DIR/frametrim.py" --codec mp3 "$T/got-$k.mp3" "$T/got-$k.whole.mp3" >/dev/null
    if out=$("$FRAMECMP" --codec mp3 --min-frames "$MIN_FRAMES" "$T/ref.mp3" "$T/got-$k.whole.mp3" 2>&1); then
      echo "multicast: $k: $out"
    else
      echo "multicast: $k: $out"
      bad "$k: framecmp failed: the listener's frames are not a contiguous run of icecast's (or fewer than $MIN_FRAMES)"
    fi
    frames=$(sed -n 's/^framecmp: \(MISMATCH \)\{0,1\}frames=\([0-9]*\).*/\2/p' <<<"$out" | head -n1)
  fi
  SUMMARY[$k]="$k: frames=$frames sent=${sent:-?} mcast_dgrams=$pkts${r_fig} edge_from_relays=$e1/$e2 lost=$lost gaps=$gaps"
done
summary="${SUMMARY[lo]}; ${SUMMARY[veth]}; join/leave on ${DEV[lo]}/${DEV[veth]} ok"
[ "$failed" -eq 0 ] || fc_fail "$summary"
echo "multicast: PASS $summary"
