# shellcheck shell=bash
# Debian's PostgreSQL as an unprivileged cluster in the test's temp dir, for the analytics tests
# and bench (sourced after lib.sh). Nothing listens on TCP: the socket is in $FC_TMP/pg.
#
#   pg_init                 initdb as the icecast test user (fc_ice_owner), superuser "fc"
#   pg_start [ARGS...]      start postgres (tracked; ARGS: extra -c settings), wait until ready;
#                           PG_PID is its PID
#   as_pg CMD...            run CMD as that user
#   psql_q SQL              one query, unaligned, tuples only
# PGBIN (default /usr/lib/postgresql/15/bin, or FC_PGBIN) and PGURL (the libpq URL) are set.
PGBIN=${FC_PGBIN:-/usr/lib/postgresql/15/bin}

pg_init() {
  local owner
  owner=$(fc_ice_owner)
  PG_UID=$(id -u "${owner%%:*}")
  PG_GID=$(getent group "${owner##*:}" | cut -d: -f3)
  mkdir -p "$FC_TMP/pg"
  chown "$owner" "$FC_TMP/pg"
  as_pg "$PGBIN/initdb" -D "$FC_TMP/pg/data" -U fc --auth=trust -E UTF8 --no-sync \
    >"$FC_TMP/initdb.log" 2>&1 || fc_fail "initdb failed: $(tail -3 "$FC_TMP/initdb.log")"
  PGURL="postgresql:///postgres?host=$FC_TMP/pg&user=fc"
}

as_pg() { setpriv --reuid="$PG_UID" --regid="$PG_GID" --clear-groups -- "$@"; }

pg_start() {
  fc_start postgres setpriv --reuid="$PG_UID" --regid="$PG_GID" --clear-groups -- \
    "$PGBIN/postgres" -D "$FC_TMP/pg/data" -k "$FC_TMP/pg" -c listen_addresses= "$@"
  PG_PID=$FC_LAST_PID
  wait_until 20 as_pg "$PGBIN/pg_isready" -q -h "$FC_TMP/pg" -U fc ||
    fc_fail "postgres not ready after 20 s"
}

psql_q() { as_pg "$PGBIN/psql" -h "$FC_TMP/pg" -U fc -d postgres -AtX -c "$1"; }
