#!/usr/bin/env bash
# Writes a framecast mesh key: 64 hex characters (32 random bytes) and a newline, mode 600.
# Usage: scripts/keygen.sh [FILE]     (default ./framecast.key)
set -euo pipefail

out="${1:-./framecast.key}"
case "$out" in -h|--help) echo "usage: $0 [FILE]  (default ./framecast.key)"; exit 0 ;; esac

# od is in coreutils, so it is always there; xxd (vim) is not.
hex="$(od -An -N32 -tx1 /dev/urandom | tr -d ' \n')"
if [ "${#hex}" -ne 64 ]; then
  echo "keygen: could not read 32 random bytes from /dev/urandom" >&2
  exit 1
fi

# Create with mode 600 from the start, so the key is never world-readable, even briefly.
dir="$(dirname -- "$out")"
tmp="$(umask 077 && mktemp "$dir/.framecast-key.XXXXXX")"
printf '%s\n' "$hex" >"$tmp"
chmod 600 "$tmp"
mv -f -- "$tmp" "$out"
echo "keygen: wrote $out" >&2
