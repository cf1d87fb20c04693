#!/usr/bin/env bash
# Installs every Debian package framecast's build, tests, benchmarks and demo need.
# Idempotent and non-interactive: safe to run on every `make check`.
set -euo pipefail

PKGS=(
  build-essential pkg-config clang
  libev-dev libmsgpack-dev libsodium-dev libmpg123-dev libcmocka-dev
  libcurl4-openssl-dev libjansson-dev libhttp-parser-dev libfaad-dev libssl-dev openssl
  icecast2 ffmpeg mpg123 curl python3 iproute2 nftables procps psmisc
  chromium mpv vlc-bin vlc-plugin-base mplayer ezstream
  prometheus debhelper dpkg-dev
  systemd systemd-container util-linux
  libsqlite3-dev sqlite3 libpq-dev postgresql
  libxml2-dev
)

# hls.js for the web player (edge serves web/), from the npm registry, pinned by package-lock.
install_web() {
  local root
  root="$(cd "$(dirname "$0")/.." && pwd)"
  command -v npm >/dev/null || { echo "install-deps: npm missing: no hls.js, no browser tests"; return 0; }
  # hls.js (served by the edge) and playwright-core (drives Debian's chromium in tests).
  for dir in web/vendor tests/browser; do
    [ -d "$root/$dir/node_modules" ] && continue
    (cd "$root/$dir" && npm ci --no-audit --no-fund --loglevel=error >/dev/null) \
      && echo "install-deps: npm packages installed in $dir" \
      || echo "install-deps: npm ci failed in $dir"
  done
}
trap install_web EXIT

missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all ${#PKGS[@]} packages present"
  exit 0
fi
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
echo "install-deps: installing ${missing[*]}"
$SUDO apt-get update -qq
# icecast2's postinst asks questions through debconf; noninteractive takes the defaults.
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "install-deps: done"
