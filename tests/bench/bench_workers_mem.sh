#!/usr/bin/env bash
# Memory of an edge with 0, 1 and 2 workers holding the same buffer (issue 9: "one copy of the
# audio in memory, not N; total RSS with 2 workers <= 1.1 x one worker at the same buffer").
#
# A --rewind-dir file with HOURS of synthetic 128 kbit/s MP3 (mount archive.mp3, written here in
# the persist format of edge/core/persist.h) is loaded by an edge started with --workers W; then
# the whole hour is downloaded (?offset=&duration=) DOWNLOADS times, until every worker has sent
# all of it (X-Framecast-Worker), so each worker has every slab page mapped. Memory is the sum of
# Pss over the edge's processes (/proc/PID/smaps_rollup: a shared page counts once in total) and,
# for the record, the sum of VmRSS (which counts a shared page once per process).
# One line per W:
#   workers W=.. processes=.. audio_mib=.. pss_total_mib=.. rss_sum_mib=.. pss_vs_w1=..
# Exit 1 if with 2 workers pss_total > 1.1 x that with 1 worker, or a download was short.
# usage: bench_workers_mem.sh [HOURS (default 1)]   env: FC_BUILD, FC_KEEP=1
set -u
# shellcheck disable=SC2034  # read by lib.sh
FC_NAME=bench_workers_mem
. "$(dirname "$0")/../integration/lib.sh"

HOURS=${1:-1}
fc_need_bin "$FC_BUILD/framecast-edge"
dir="$FC_TMP/rewind"; mkdir -p "$dir"
python3 "$(dirname "$0")/gen_rewind.py" "$dir/archive.mp3.rewind" "$HOURS"
[ -s "$dir/archive.mp3.rewind" ] || fc_fail "could not write the rewind file"
audio_kib=$(( $(stat -c %s "$dir/archive.mp3.rewind") / 1024 ))
bash "$FC_ROOT/scripts/keygen.sh" "$FC_TMP/mesh.key" >/dev/null

tree() { echo "$1"; pgrep -P "$1" || true; }
sum_field() { # sum_field PID FILE FIELD: kB summed over the process tree
  local p n=0 v
  for p in $(tree "$1"); do v=$(awk -v f="$3:" '$1 == f {print $2}' "/proc/$p/$2" 2>/dev/null); n=$((n + ${v:-0})); done
  echo "$n"
}

declare -A PSS=()
FAILED=0
for W in 0 1 2; do
  port=$(free_port); dead=$(free_port)
  fc_start "edge-w$W" "$FC_BUILD/framecast-edge" --listen "127.0.0.1:$port" --relay "127.0.0.1:$dead" \
    --key "$FC_TMP/mesh.key" --rewind-dir "$dir" --rewind-save-every 86400 --workers "$W"
  pid=$FC_LAST_PID
  wait_until 10 port_listening "$port" || fc_fail "edge (--workers $W) not listening"
  span=$(awk -v h="$HOURS" 'BEGIN { printf "%d", h * 3600 - 30 }')
  seen=""
  for i in $(seq 1 12); do
    curl -s -D "$FC_TMP/h$W.$i" -o "$FC_TMP/d.mp3" \
      "http://127.0.0.1:$port/archive.mp3?offset=$((span + 10))&duration=$span" || true
    got=$(stat -c %s "$FC_TMP/d.mp3")
    [ "$got" -ge $(( span * 16000 * 95 / 100 )) ] || { fc_log "download $i short: $got bytes"; FAILED=1; }
    w=$(tr -d '\r' <"$FC_TMP/h$W.$i" | awk -F': ' 'tolower($1)=="x-framecast-worker"{print $2}')
    case " $seen " in *" ${w:-0} "*) ;; *) seen="$seen ${w:-0}" ;; esac
    [ "$(echo $seen | wc -w)" -ge "$(( W > 0 ? W : 1 ))" ] && [ "$i" -ge 2 ] && break
  done
  sleep 1
  pss=$(sum_field "$pid" smaps_rollup Pss); rss=$(sum_field "$pid" status VmRSS)
  PSS[$W]=$pss
  procs=$(tree "$pid" | wc -l)
  vs=""
  [ -n "${PSS[1]:-}" ] && [ "$W" = 2 ] && vs=$(awk -v a="$pss" -v b="${PSS[1]}" 'BEGIN { printf " pss_vs_w1=%.3f", a / b }')
  printf 'workers W=%d processes=%d workers_that_sent_it=%s audio_mib=%.1f pss_total_mib=%.1f rss_sum_mib=%.1f%s\n' \
    "$W" "$procs" "$(echo $seen | tr ' ' ,)" "$(awk -v k="$audio_kib" 'BEGIN { print k / 1024 }')" \
    "$(awk -v k="$pss" 'BEGIN { print k / 1024 }')" "$(awk -v k="$rss" 'BEGIN { print k / 1024 }')" "$vs"
  fc_stop "$pid"
done
if awk -v a="${PSS[2]}" -v b="${PSS[1]}" 'BEGIN { exit !(a > 1.1 * b) }'; then
  echo "FAIL: 2 workers use more than 1.1 x the memory of 1"; FAILED=1
fi
exit "$FAILED"
