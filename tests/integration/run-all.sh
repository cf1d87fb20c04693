#!/usr/bin/env bash
# Runs every tests/integration/*.sh (except lib.sh and this file), prints PASS/FAIL per test and a
# final line "N passed, M failed"; exits non-zero if any failed.
#
# Env: FC_JOBS (parallel tests, 1 or 2; default 1), FC_TEST_TIMEOUT (s per test, default 180),
#      FC_ONLY (substring: run only matching tests), plus anything lib.sh reads (FC_KEEP, FC_BUILD).
set -uo pipefail

dir="$(cd "$(dirname "$0")" && pwd)"
jobs="${FC_JOBS:-1}"
[ "$jobs" -ge 1 ] 2>/dev/null || jobs=1
[ "$jobs" -gt 2 ] && jobs=2
limit="${FC_TEST_TIMEOUT:-180}"
out="$(mktemp -d "${TMPDIR:-/tmp}/fc-run-all.XXXXXX")"

tests=()
for t in "$dir"/*.sh; do
  case "$(basename "$t")" in lib.sh|run-all.sh|netns.sh|*_lib.sh) continue ;; esac
  [ -n "${FC_ONLY:-}" ] && [[ "$(basename "$t")" != *"$FC_ONLY"* ]] && continue
  tests+=("$t")
done

running=()          # PIDs of test runners we started
declare -A NAME_OF=()
stop_all() {
  local p
  for p in "${running[@]}"; do kill -TERM "$p" 2>/dev/null; done
  for p in "${running[@]}"; do wait "$p" 2>/dev/null; done
  rm -rf -- "$out"
}
trap 'stop_all; exit 130' INT
trap 'stop_all; exit 143' TERM

# Each test runs under timeout(1) as a background job we track by PID: SIGTERM at the limit (the
# test's trap stops its processes), SIGKILL 15 s later if it hangs in cleanup.
declare -A START_OF=()
start_one() {
  local t=$1 name
  name="$(basename "$t" .sh)"
  echo "RUN  $name"
  timeout -k 15 "$limit" bash "$t" >"$out/$name.out" 2>&1 </dev/null &
  running+=("$!"); NAME_OF[$!]=$name; START_OF[$!]=$SECONDS
}
# finish_one PID: reap a finished test and record "rc seconds".
finish_one() {
  local p=$1 rc=0
  wait "$p" 2>/dev/null || rc=$?
  echo "$rc $(( SECONDS - START_OF[$p] ))" >"$out/${NAME_OF[$p]}.rc"
  report "${NAME_OF[$p]}"
}

report() {
  local name=$1 rc secs
  read -r rc secs <"$out/$name.rc"
  if [ "$rc" -eq 0 ]; then
    echo "PASS $name (${secs}s)"
    grep -E ': PASS|framecmp:' "$out/$name.out" | sed 's/^/     /'
    pass=$((pass + 1))
  else
    [ "$rc" -eq 124 ] && echo "FAIL $name (timed out after ${limit}s)" || echo "FAIL $name (exit $rc, ${secs}s)"
    sed 's/^/     | /' "$out/$name.out"
    fail=$((fail + 1))
  fi
}

pass=0; fail=0
# Tests run as background jobs even one at a time, so a Ctrl-C reaches our trap at once (timeout(1)
# puts each test in its own process group, out of reach of the terminal's SIGINT); the trap's
# SIGTERM to timeout is passed on to the test, whose own trap stops its processes.
queue=("${tests[@]}")
while [ ${#queue[@]} -gt 0 ] || [ ${#running[@]} -gt 0 ]; do
  while [ ${#queue[@]} -gt 0 ] && [ ${#running[@]} -lt "$jobs" ]; do
    start_one "${queue[0]}"
    queue=("${queue[@]:1}")
  done
  sleep 0.2
  still=()
  for p in "${running[@]}"; do
    if kill -0 "$p" 2>/dev/null; then still+=("$p"); else finish_one "$p"; fi
  done
  running=("${still[@]}")
done

rm -rf -- "$out"
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
