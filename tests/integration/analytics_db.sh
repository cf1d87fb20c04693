#!/usr/bin/env bash
# Analytics store (issue 11, docs/architecture.md §7.13) on both backends: a scripted population
# of 40 sessions over three hours (raw, ICY and HLS clients, a time-shifted one, prerolls, short
# sessions, persons at and just under the 5-minute AQH threshold; analytics_pop.py) is loaded
# through the edge's own store code (tests/tools/an_load) into a SQLite file and into Debian's
# real PostgreSQL, started here as an unprivileged cluster in the temp dir. Two edges, one on each
# database, answer GET /api/v1/analytics at 3600 s and 900 s intervals: every figure of every row
# and protocol must equal the values analytics_pop.py computes by brute force from the population.
# Then PostgreSQL is stopped for ~5 s while the edge (--workers 0: the listener is on the loop
# that submits) queues 50 made-up sessions a second (FC_DEBUG_AN_SYNTH): a listener plays through
# without a stall, db_up goes 0 then 1, the queue drains, and after a clean stop every session the
# edge accepted (made-up and its real listeners') is in the database (none dropped).
. "$(dirname "$0")/lib.sh"
. "$FC_LIB_DIR/timing_lib.sh"
set -u
T=$FC_TMP
. "$FC_LIB_DIR/pg_lib.sh"
fc_need_bin "$FC_BUILD/framecast-shim" "$FC_BUILD/framecast-relay" "$FC_BUILD/framecast-edge" \
  "$FC_BUILD/tools/an_load" "$PGBIN/initdb" "$PGBIN/postgres" "$PGBIN/psql"

# --- PostgreSQL, unprivileged, socket in the temp dir ---
pg_init
start_pg() { pg_start -c fsync=off; }
start_pg

# --- the population, loaded into both databases through the store ---
BASE=$(( ($(date +%s) / 3600 - 30) * 3600 ))   # three hours starting 30 h ago, on the hour
python3 "$FC_LIB_DIR/analytics_pop.py" gen "$BASE" "$T/pop.tsv"
"$FC_BUILD/tools/an_load" "sqlite:$T/a.db" node-a "$T/pop.tsv" 2>"$T/load-sqlite.log" ||
  fc_fail "an_load sqlite: $(tail -2 "$T/load-sqlite.log")"
"$FC_BUILD/tools/an_load" "$PGURL" node-b "$T/pop.tsv" 2>"$T/load-pg.log" ||
  fc_fail "an_load postgresql: $(tail -2 "$T/load-pg.log")"
[ "$(psql_q "SELECT count(*) FROM sessions WHERE node='node-b'")" = 40 ] ||
  fc_fail "postgresql does not hold the 40 sessions"
[ "$(sqlite3 "$T/a.db" "SELECT count(*) FROM sessions")" = 40 ] || fc_fail "sqlite does not hold 40"

# --- a stream, and an edge per database ---
ing=$(free_port); srv=$(free_port); ha=$(free_port); hb=$(free_port)
bash "$FC_ROOT/scripts/keygen.sh" "$T/mesh.key" >/dev/null
fc_start relay "$FC_BUILD/framecast-relay" --ingest "tcp://127.0.0.1:$ing" --serve "127.0.0.1:$srv" \
  --key "$T/mesh.key"
fc_start shim "$FC_BUILD/framecast-shim" --mount live.mp3 --encoder a --file "$FC_ROOT/tests/data/sample.mp3" \
  --to "tcp://127.0.0.1:$ing" --key "$T/mesh.key"
fc_start edge-sqlite "$FC_BUILD/framecast-edge" --listen "127.0.0.1:$ha" --relay "127.0.0.1:$srv" \
  --key "$T/mesh.key" --workers 1 --node edge-a --analytics "$T/a.db"
FC_DEBUG_AN_SYNTH=50 fc_start edge-pg "$FC_BUILD/framecast-edge" --listen "127.0.0.1:$hb" \
  --relay "127.0.0.1:$srv" --key "$T/mesh.key" --workers 0 --node edge-b --analytics "$PGURL"
EDGE_PG=$FC_LAST_PID
an_field() { curl -s -m 2 "http://127.0.0.1:$1/" | python3 -c "import json,sys; print(int(json.load(sys.stdin)['analytics']['$2']))" 2>/dev/null; }
db_is() { [ "$(an_field "$1" db_up)" = "$2" ]; }
queue_under() { local q; q=$(an_field "$1" queued); [ -n "$q" ] && [ "$q" -lt "$2" ]; }
for p in $ha $hb; do
  wait_until 20 db_is "$p" 1 || fc_fail "edge on :$p: analytics db_up not 1 after 20 s"
done
wait_http "http://127.0.0.1:$hb/live.mp3" 15 || fc_fail "edge never served /live.mp3"

failed=0
Q="mount=pop.mp3&from=$BASE&to=$((BASE + 3 * 3600))"
for b in "sqlite $ha" "postgresql $hb"; do
  set -- $b
  curl -s -m 10 -o "$T/$1-3600.json" -w '%{http_code}' "http://127.0.0.1:$2/api/v1/analytics?$Q" | grep -q 200 ||
    { echo "analytics_db: $1: GET /api/v1/analytics failed: $(head -c 300 "$T/$1-3600.json")"; failed=1; continue; }
  curl -s -m 10 -o "$T/$1-900.json" "http://127.0.0.1:$2/api/v1/analytics?$Q&interval=900"
  if python3 "$FC_LIB_DIR/analytics_pop.py" check "$BASE" "$T/pop.tsv" "$1" "$T/$1-3600.json" \
       "$T/$1-900.json"; then
    echo "analytics_db: PASS $1: 3 hourly and 12 quarter-hour rows, every figure and protocol = the population's"
  else
    echo "analytics_db: FAIL $1 figures differ from the population's"; failed=1
  fi
done
# the export, and the API's refusals
n=$(curl -s -m 10 "http://127.0.0.1:$hb/api/v1/analytics/sessions?$Q&format=ndjson" | grep -c '"mount":"pop.mp3"')
[ "$n" = 40 ] || { echo "analytics_db: FAIL export has $n sessions, want 40"; failed=1; }
code=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$ha/api/v1/analytics?interval=600")
[ "$code" = 400 ] || { echo "analytics_db: FAIL interval=600 answered $code, want 400"; failed=1; }

# --- PostgreSQL stopped mid-run: the stream plays on, the sessions wait, then are written ---
timed_record "http://127.0.0.1:$hb/live.mp3" "$T/during.mp3" 16
LISTENER=$FC_LAST_PID
sleep 3   # the outage falls inside the listener's 16 s
kill -INT "$PG_PID"; wait "$PG_PID" 2>/dev/null
wait_until 10 db_is "$hb" 0 || { echo "analytics_db: FAIL db_up stayed 1 with postgres stopped"; failed=1; }
q_down=$(an_field "$hb" queued)
sleep 4
q_down2=$(an_field "$hb" queued)
start_pg
wait_until 20 db_is "$hb" 1 || { echo "analytics_db: FAIL db_up not back to 1"; failed=1; }
wait_until 10 queue_under "$hb" 50 || { echo "analytics_db: FAIL queue did not drain"; failed=1; }
wait_exit "$LISTENER" 20 || true
st=$(stall_report "$T/during.mp3.timeline" 16000)
stalls=$(stall_field "$st" stalls); gap=$(stall_field "$st" max_arrival_gap_ms)
if [ "${stalls:-1}" = 0 ] && [ "${gap:-99999}" -lt 2500 ]; then
  echo "analytics_db: PASS listener through the outage: $st"
else
  echo "analytics_db: FAIL listener stalled while postgres was down: $st"; failed=1
fi
[ "${q_down2:-0}" -gt "${q_down:-0}" ] ||
  { echo "analytics_db: FAIL sessions did not queue while postgres was down ($q_down -> $q_down2)"; failed=1; }
fc_stop "$EDGE_PG"
closed=$(grep -o 'analytics closed submitted=[0-9]* written=[0-9]* dropped=[0-9]*' "$T/edge-pg.log" | tail -1)
sub=$(sed -n 's/.*submitted=\([0-9]*\).*/\1/p' <<<"$closed"); drop=$(sed -n 's/.*dropped=\([0-9]*\).*/\1/p' <<<"$closed")
# every session the edge accepted: the made-up ones and its real listeners' (edge/http/sessions.c)
rows=$(psql_q "SELECT count(*) FROM sessions WHERE node='edge-b'")
live=$(psql_q "SELECT count(*) FROM sessions WHERE node='edge-b' AND mount='live.mp3'")
if [ -n "$sub" ] && [ "$drop" = 0 ] && [ "$rows" = "$sub" ] && [ "$sub" -gt 200 ]; then
  echo "analytics_db: PASS postgres down ~5 s: queued $q_down -> $q_down2 sessions, then all $sub written ($rows rows, $live of them real listeners of live.mp3; 0 dropped)"
else
  echo "analytics_db: FAIL after the outage: edge '$closed', rows in postgres $rows"; failed=1
fi
[ $failed = 0 ] || fc_fail "see above"
echo "analytics_db: PASS"
