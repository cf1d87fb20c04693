#!/usr/bin/env bash
# Checks the Debian package end to end, without installing anything on this machine:
#  1. builds it (dpkg-buildpackage -us -uc -b) in a temporary clone of the committed HEAD
#     (uncommitted changes are not in it), hls.js fetched by debian/rules as from a clean tree;
#  2. unpacks the .deb into a scratch root (dpkg -x) and checks its files: the programs, the
#     units, /etc/framecast/*.json (and that they are conffiles), the web player with hls.js;
#  3. runs each installed program with --help (exit 0) and with its example config
#     (--config FILE --help: the JSON, its keys and values parse); systemd-analyze verify on
#     the units, where systemd-analyze exists;
#  4. as root, where unshare and overlayfs work: starts the relay, edge and shim exactly as the
#     units do (--config /etc/framecast/<prog>.json, the package's files laid over /etc,
#     /usr/share and /var/lib in a private mount, network and PID namespace, so nothing on the
#     machine changes and every process dies with the namespace), pushes MP3 to the shim and
#     checks that the edge serves the player page, hls.min.js and the mount's audio, and that
#     it saves its rewind buffer into /var/lib/framecast on stop.
# Prints `package: PASS files=N` (N = files in the package) or `package: FAIL <reason>` and exits
# non-zero. About 30 s on 2 cores (the build about 20 s; 45 s at most when the edge serves no
# audio). Needs debhelper (scripts/install-deps.sh) and, for hls.js, npm and the npm registry.
set -uo pipefail

repo="$(cd "$(dirname "$0")/.." && pwd)"
tmp="$(mktemp -d /tmp/fc-package.XXXXXX)"
trap 'rm -rf "$tmp"' EXIT

fail() {
  echo "package: FAIL $*"
  exit 1
}

for t in git dpkg-buildpackage dh dpkg-deb; do
  command -v "$t" >/dev/null || fail "$t missing (scripts/install-deps.sh installs it)"
done

# 1. Build in a fresh clone.
git clone -q "$repo" "$tmp/src" || fail "git clone $repo"
if ! (cd "$tmp/src" && dpkg-buildpackage -us -uc -b -J2) >"$tmp/build.log" 2>&1; then
  tail -20 "$tmp/build.log" >&2
  fail "dpkg-buildpackage (last lines of its log above)"
fi
debs=("$tmp"/framecast_*.deb)
deb="${debs[0]}"
[ -f "$deb" ] || fail "no framecast_*.deb built"

# 2. Unpack and check the files.
root="$tmp/root"
dpkg -x "$deb" "$root" || fail "dpkg -x $deb"
web=usr/share/framecast/web
want=(
  usr/bin/framecast-shim usr/bin/framecast-relay usr/bin/framecast-edge usr/bin/framecast-keygen
  usr/bin/framecast-handoff
  lib/systemd/system/framecast-edge.service lib/systemd/system/framecast-relay.service
  "lib/systemd/system/framecast-shim@.service" usr/lib/sysusers.d/framecast.conf
  etc/framecast/edge.json etc/framecast/relay.json etc/framecast/shim.json
  "$web/index.html" "$web/player.css" "$web/player.js" "$web/vendor/node_modules/hls.js/dist/hls.min.js"
  "$web/ops.html" "$web/ops.js" "$web/vendor/node_modules/uplot/dist/uPlot.iife.min.js"
  "$web/vendor/node_modules/uplot/dist/uPlot.min.css"
)
for f in "${want[@]}"; do
  [ -s "$root/$f" ] || fail "/$f not in the package"
done
for p in shim relay edge keygen handoff; do
  [ -x "$root/usr/bin/framecast-$p" ] || fail "/usr/bin/framecast-$p not executable"
done
conffiles="$(dpkg-deb -I "$deb" conffiles 2>/dev/null)"
for c in edge relay shim; do
  grep -qx "/etc/framecast/$c.json" <<<"$conffiles" || fail "/etc/framecast/$c.json not a conffile"
done
grep -q '"web-root": "/usr/share/framecast/web"' "$root/etc/framecast/edge.json" ||
  fail "edge.json: web-root is not /usr/share/framecast/web"
nfiles="$(find "$root" -type f | wc -l)"

# 3. The programs run from the scratch root; the example configs parse.
for p in shim relay edge; do
  bin="$root/usr/bin/framecast-$p"
  "$bin" --help >/dev/null 2>"$tmp/err" || fail "framecast-$p --help: exit $? ($(head -1 "$tmp/err"))"
  "$bin" --config "$root/etc/framecast/$p.json" --help >/dev/null 2>"$tmp/err" ||
    fail "framecast-$p --config /etc/framecast/$p.json: $(head -1 "$tmp/err")"
done
"$root/usr/bin/framecast-keygen" "$tmp/key" 2>/dev/null || fail "framecast-keygen: exit $?"
[ "$(tr -d '\n' <"$tmp/key" | wc -c)" -eq 64 ] || fail "framecast-keygen did not write 64 characters"
if command -v systemd-analyze >/dev/null; then
  mkdir -p "$tmp/units"
  for u in framecast-edge.service framecast-relay.service "framecast-shim@.service"; do
    sed "s|/usr/bin/|$root/usr/bin/|g" "$root/lib/systemd/system/$u" >"$tmp/units/${u/@./@check.}"
  done
  (cd "$tmp/units" && systemd-analyze verify --man=no ./*.service) >"$tmp/verify" 2>&1 ||
    fail "systemd-analyze verify: $(head -1 "$tmp/verify")"
  [ -s "$tmp/verify" ] && fail "systemd-analyze verify: $(head -1 "$tmp/verify")"
else
  echo "check-package: systemd-analyze missing: units not verified" >&2
fi

# 4. The three programs on the unmodified example configs, in namespaces.
smoke() {
  set -u
  mount --make-rprivate /
  lay() { # lay DIR UPPER: UPPER's files over DIR, writes go to $tmp/ov
    mkdir -p "$tmp/ov/work$1" && mount -t overlay overlay \
      -o "lowerdir=$1,upperdir=$2,workdir=$tmp/ov/work$1" "$1"
  }
  mkdir -p "$tmp/ov/etc" "$tmp/ov/var/framecast"
  cp -a "$root/etc/framecast" "$tmp/ov/etc/" && cp "$tmp/key" "$tmp/ov/etc/framecast/mesh.key"
  if ! { lay /etc "$tmp/ov/etc" && lay /usr/share "$root/usr/share" && lay /var/lib "$tmp/ov/var"; }; then
    echo "overlayfs: mount failed"
    return 3
  fi
  ip link set lo up
  local b="$root/usr/bin" log="$tmp/ov"
  "$b/framecast-relay" --config /etc/framecast/relay.json 2>"$log/relay.log" &
  local relay=$!
  "$b/framecast-edge" --config /etc/framecast/edge.json 2>"$log/edge.log" &
  local edge=$!
  "$b/framecast-shim" --config /etc/framecast/shim.json 2>"$log/shim.log" &
  local shim=$!
  sleep 1
  # sample.mp3 is 2 s: 8 copies pushed near real time (128 kb/s) as an encoder would.
  for _ in 1 2 3 4 5 6 7 8; do cat "$tmp/src/tests/data/sample.mp3"; done >"$tmp/push.mp3"
  curl -s --max-time 20 --limit-rate 20k -T "$tmp/push.mp3" -u source:changeme \
    -H 'Content-Type: audio/mpeg' http://127.0.0.1:8001/live.mp3 -o /dev/null &
  local push=$! page js audio
  # Output starts once the mount's start grace (2.5 s) is over: ask until then (at most 15 s).
  for _ in $(seq 30); do
    audio="$(curl -s --max-time 1 -o /dev/null -w '%{http_code} %{size_download}' http://127.0.0.1:8000/live.mp3)"
    [[ "$audio" =~ ^200\ [0-9]{4,}$ ]] && break
    sleep 0.5
  done
  page="$(curl -s --max-time 5 -H 'Accept: text/html' http://127.0.0.1:8000/)"
  js="$(curl -s --max-time 5 -o /dev/null -w '%{http_code} %{size_download}' http://127.0.0.1:8000/hls.min.js)"
  kill -TERM "$push" 2>/dev/null
  kill -TERM "$shim" "$edge" "$relay" 2>/dev/null
  wait "$push" "$shim" "$edge" "$relay"
  grep -q 'src="/hls.min.js"' <<<"$page" || { echo "the edge did not serve the player page"; return 1; }
  [[ "$js" == "200 "[1-9]* ]] || { echo "/hls.min.js answered \"$js\""; return 1; }
  [[ "$audio" =~ ^200\ [0-9]{4,}$ ]] || {
    echo "/live.mp3 answered \"$audio\" (shim: $(grep -m1 -E " (warn|error) " "$log/shim.log"))"
    return 1
  }
  [ -s /var/lib/framecast/live.mp3.rewind ] || { echo "no rewind buffer saved in /var/lib/framecast"; return 1; }
  return 0
}
if [ "$(id -u)" -eq 0 ] && command -v unshare >/dev/null && command -v curl >/dev/null &&
  unshare -m -n -p -f --mount-proc true 2>/dev/null; then
  export -f smoke
  export tmp root
  why="$(unshare -m -n -p -f --mount-proc bash -c smoke)"
  rc=$?
  if [ $rc -eq 3 ]; then
    echo "check-package: $why: programs not started" >&2
  elif [ $rc -ne 0 ]; then
    fail "example configs: ${why:-exit $rc}"
  fi
else
  echo "check-package: not root, or no unshare/curl: programs not started" >&2
fi

echo "package: PASS files=$nfiles"
