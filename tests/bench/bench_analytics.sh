#!/usr/bin/env bash
# The analytics store at station scale (docs/architecture.md §7.13), on SQLite and on Debian's
# PostgreSQL (started here as an unprivileged cluster in the temp dir, socket only, its default
# durability: fsync and synchronous_commit on). A month of a mid-size station (an_month.py: DAYS
# x PER_DAY sessions, default 30 x 20,000 = 600,000; many short sessions, some hours long, raw /
# ICY / HLS, four mounts, clients coming back) is measured through the edge's own store code
# (bench_analytics.c: queue, writer thread, batched inserts, the figures' SQL, the export).
# One line per figure:
#   analytics backend=B write sessions=N s=.. rate=../s full_waits=.. dropped=0
#       (the loader keeps the queue under AN_QUEUE_MAX: when it is full it sleeps 1 ms and looks
#       again, so nothing is dropped; full_waits counts those sleeps)
#   analytics backend=B size sessions=N bytes=.. mib_per_million=.. [table/index split for PG]
#   analytics backend=B figures span=day|week|month interval=.. mount=all|live.mp3 rows=..
#       ms_median=.. (of REPS runs, the month's of one; through analytics_query, the writer
#       thread, as GET /api/v1/analytics)
#   analytics backend=B export span=day sessions=.. bytes=.. ms=.. rate=../s
# then the cross-check: rows of the day's, the week's and the month's answers recomputed from the
# generated file by an_month.py (events, not SQL): FAIL on any difference.
# usage: bench_analytics.sh [DAYS (30)] [PER_DAY (20000)] [REPS (3)]
#   env: FC_BUILD, FC_KEEP=1, FC_PGBIN (/usr/lib/postgresql/15/bin), AN_PLANS=1 (print each
#   figures statement's plan and time: bench_analytics explain)
set -u
# shellcheck disable=SC2034  # read by lib.sh
FC_NAME=bench_analytics
. "$(dirname "$0")/../integration/lib.sh"
DAYS=${1:-30}
PER_DAY=${2:-20000}
REPS=${3:-3}
T=$FC_TMP
BA="$FC_BUILD/bench/bench_analytics"
. "$FC_LIB_DIR/pg_lib.sh"
QUERY_TIMEOUT_S=300
fc_need_bin "$BA" "$PGBIN/initdb" "$PGBIN/postgres" "$PGBIN/psql" "$PGBIN/pg_isready"
BASE=1767225600                       # 2026-01-01T00:00:00Z
MID=$(( BASE + (DAYS / 2) * 86400 ))  # the day measured: the middle of the month
N=$(( DAYS * PER_DAY ))

# --- PostgreSQL, unprivileged, socket in the temp dir (tests/integration/pg_lib.sh) ---
pg_init
pg_start

# --- the month ---
t0=$(now_ms)
python3 "$(dirname "$0")/an_month.py" gen "$BASE" "$DAYS" "$PER_DAY" "$T/month.tsv" >/dev/null ||
  fc_fail "an_month.py gen failed"
fc_log "generated $N sessions in $(( $(now_ms) - t0 )) ms"

failed=0
kv() { sed -n "s/.* $1=\([^ ]*\).*/\1/p" <<<"$2"; }
for b in sqlite postgresql; do
  if [ $b = sqlite ]; then url="sqlite:$T/month.db"; else url=$PGURL; fi
  # 1. writes
  out=$("$BA" load "$url" node-a "$T/month.tsv" 2>"$T/load-$b.log") ||
    { echo "analytics backend=$b FAIL load: $out $(tail -2 "$T/load-$b.log")"; failed=1; continue; }
  echo "analytics backend=$b write sessions=$(kv sessions "$out") s=$(kv s "$out") rate=$(kv rate "$out")" \
    "full_waits=$(kv full_waits "$out") dropped=$(kv dropped "$out") write_errors=$(kv write_errors "$out")"
  # 4. size on disk (SQLite: the file after the writer's close checkpointed the WAL; PostgreSQL:
  # the relation with its indexes and TOAST, after VACUUM ANALYZE as autovacuum would do)
  if [ $b = sqlite ]; then
    bytes=$(( $(stat -c %s "$T/month.db") + $(stat -c %s "$T/month.db-wal" 2>/dev/null || echo 0) ))
    extra=""
  else
    psql_q "VACUUM ANALYZE sessions" >/dev/null
    IFS='|' read -r bytes heap idx < <(psql_q "SELECT pg_total_relation_size('sessions'), pg_relation_size('sessions'), pg_indexes_size('sessions')")
    extra=" table_mib=$(( heap / 1048576 )) indexes_mib=$(( idx / 1048576 ))"
  fi
  echo "analytics backend=$b size sessions=$N bytes=$bytes mib_per_million=$(awk -v b="$bytes" -v n="$N" 'BEGIN{printf "%.0f", b / 1048576 * 1e6 / n}')$extra"
  # 2. figures
  for spec in "day $MID $((MID + 86400)) 900" "week $((MID - 6 * 86400)) $((MID + 86400)) 3600" \
              "month $BASE $((BASE + DAYS * 86400)) 86400"; do
    set -- $spec
    reps=$REPS; [ "$1" = month ] && reps=1   # tens of seconds each: one run
    for m in - live.mp3; do
      out=$(timeout $QUERY_TIMEOUT_S "$BA" query "$url" "$reps" figures "$m" "$2" "$3" "$4" \
            "$T/$b-$1-${m/-/all}.json" 2>>"$T/query-$b.log") ||
        { echo "analytics backend=$b FAIL figures span=$1 mount=${m/-/all}: rc=$? (over ${QUERY_TIMEOUT_S} s?)"; failed=1; continue; }
      echo "analytics backend=$b figures span=$1 interval=$4 mount=${m/-/all} rows=$(kv rows "$out")" \
        "ms_median=$(kv ms_median "$out") ms_min=$(kv ms_min "$out") ms_max=$(kv ms_max "$out")"
      [ "${AN_PLANS:-0}" = 1 ] && timeout $QUERY_TIMEOUT_S "$BA" explain "$url" "$m" "$2" "$3" "$4" |
        grep -E 'statement|ms=|SEARCH|SCAN sessions|Scan|Nested|Join'
    done
  done
  # 3. the export of the measured day (NDJSON, as GET /api/v1/analytics/sessions?format=ndjson)
  out=$(timeout $QUERY_TIMEOUT_S "$BA" query "$url" "$REPS" export - "$MID" $((MID + 86400)) 3600 \
        "$T/$b-export.ndjson" 2>>"$T/query-$b.log") ||
    { echo "analytics backend=$b FAIL export"; failed=1; continue; }
  rows=$(kv rows "$out"); ms=$(kv ms_median "$out")
  echo "analytics backend=$b export span=day sessions=$rows bytes=$(kv bytes "$out") ms_median=$ms" \
    "rate=$(awk -v n="$rows" -v ms="$ms" 'BEGIN{printf "%.0f", n / ms * 1000}')/s"
  want=$(awk -F'\t' -v lo=$((MID * 1000000)) -v hi=$(((MID + 86400) * 1000000)) \
    '$5 >= lo && $4 < hi {n++} END {print n + 0}' "$T/month.tsv")
  [ "$rows" = "$want" ] || { echo "analytics backend=$b FAIL export has $rows sessions, the file $want"; failed=1; }
done

# --- the cross-check: figures recomputed from the file, not by SQL ---
check() { # LABEL ANSWER MOUNT ROWS...
  local label=$1; shift
  [ -f "$1" ] || { echo "analytics check $label: FAIL no answer"; failed=1; return; }
  if python3 "$(dirname "$0")/an_month.py" check "$T/month.tsv" "$@" >"$T/check.out" 2>&1; then
    echo "analytics check $label: ok ($(grep -c ' ok ' "$T/check.out") rows, every figure and protocol = the file's)"
  else
    cat "$T/check.out"; echo "analytics check $label: FAIL"; failed=1
  fi
}
check "sqlite day/900 all" "$T/sqlite-day-all.json" - 0 33 80
check "sqlite day/900 live.mp3" "$T/sqlite-day-live.mp3.json" live.mp3 34 95
check "sqlite week/3600 all" "$T/sqlite-week-all.json" - 100
check "sqlite month/86400 live.mp3" "$T/sqlite-month-live.mp3.json" live.mp3 $((DAYS / 2))
# PostgreSQL's answers must be the same document (same rows, same figures)
for f in day-all day-live.mp3 week-all week-live.mp3 month-all month-live.mp3; do
  if ! cmp -s "$T/sqlite-$f.json" "$T/postgresql-$f.json"; then
    echo "analytics check $f: FAIL postgresql's answer differs from sqlite's"; failed=1
  fi
done
[ $failed = 0 ] && echo "analytics check postgresql: ok (its 6 figures answers = sqlite's, byte for byte)"
[ $failed = 0 ] || fc_fail "see above"
echo "bench_analytics: PASS"
