/* pg.c - the analytics store's PostgreSQL backend (libpq from Debian; docs/architecture.md
 * §7.13): many edges write one database, each row carrying its node name. A batch is one
 * multi-row INSERT (one statement: atomic without BEGIN, one round trip). Connections time out
 * (PG_CONNECT_TIMEOUT_S) and TCP keepalives notice a server that vanished, so the writer thread
 * never hangs on a dead peer for long. Writer thread only. */
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "analytics.h"
#include "db.h"

#define PG_CONNECT_TIMEOUT_S "5"
#define PG_NUM_MAX 32 /* text of one number */

struct pg_db {
    PGconn *c;
};

static enum fc_err pg_fail(PGconn *c, const char *what, char *why, size_t cap)
{
    const char *m = c ? PQerrorMessage(c) : "out of memory";
    size_t n = strlen(m);
    while (n && (m[n - 1] == '\n' || m[n - 1] == ' '))
        n--;
    snprintf(why, cap, "postgresql %s: %.*s", what, (int)n, m);
    return FC_IO;
}

static void pg_close(struct an_db *adb)
{
    struct pg_db *db = (struct pg_db *)adb;
    if (!db)
        return;
    PQfinish(db->c);
    free(db);
}

static void quiet_notice(void *arg, const char *msg)
{
    /* NOTICEs ("relation already exists, skipping") are not events worth a log line. */
}

static enum fc_err pg_open(struct an_db **out, const char *target, char *why, size_t cap)
{
    *out = NULL;
    struct pg_db *db = calloc(1, sizeof(*db));
    if (!db)
        return FC_NOMEM;
    const char *keys[] = {"dbname", "connect_timeout", "keepalives_idle", "keepalives_interval",
                          "keepalives_count", "application_name", NULL};
    const char *vals[] = {target, PG_CONNECT_TIMEOUT_S, "10", "5", "3", "framecast-edge", NULL};
    db->c = PQconnectdbParams(keys, vals, 1); /* expand_dbname: the URI's own settings win */
    if (!db->c || PQstatus(db->c) != CONNECTION_OK) {
        pg_fail(db->c, "connect", why, cap);
        pg_close((struct an_db *)db);
        return FC_IO;
    }
    PQsetNoticeProcessor(db->c, quiet_notice, NULL);
    *out = (struct an_db *)db;
    return FC_OK;
}

static enum fc_err pg_exec(struct an_db *adb, const char *sql, char *why, size_t cap)
{
    struct pg_db *db = (struct pg_db *)adb;
    PGresult *r = PQexec(db->c, sql);
    ExecStatusType st = PQresultStatus(r);
    enum fc_err err = st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK ? FC_OK
                                                                      : pg_fail(db->c, "exec", why, cap);
    PQclear(r);
    return err;
}

static enum fc_err pg_rows(struct an_db *adb, const char *sql, an_row_fn fn, void *ctx, char *why,
                           size_t cap)
{
    struct pg_db *db = (struct pg_db *)adb;
    PGresult *r = PQexec(db->c, sql);
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        pg_fail(db->c, "query", why, cap);
        PQclear(r);
        return FC_IO;
    }
    enum fc_err err = FC_OK;
    int ncol = PQnfields(r), nrow = PQntuples(r);
    const char *vals[32];
    if (ncol > 32)
        ncol = 32;
    for (int i = 0; i < nrow && err == FC_OK; i++) {
        for (int k = 0; k < ncol; k++)
            vals[k] = PQgetisnull(r, i, k) ? NULL : PQgetvalue(r, i, k);
        if (!fn(ctx, ncol, vals)) {
            snprintf(why, cap, "postgresql: row rejected");
            err = FC_LIMIT;
        }
    }
    PQclear(r);
    return err;
}

static enum fc_err pg_insert(struct an_db *adb, const char *node, const struct an_session *s,
                             size_t n, char *why, size_t cap)
{
    struct pg_db *db = (struct pg_db *)adb;
    if (n == 0)
        return FC_OK;
    /* 15 parameters a row; AN_BATCH_MAX rows stay far under the protocol's 65535. */
    size_t nparam = n * AN_NCOLUMNS;
    size_t sql_cap = 128 + sizeof(AN_COLUMNS) + n * (AN_NCOLUMNS * 8 + 4);
    char *sql = malloc(sql_cap);
    const char **vals = calloc(nparam, sizeof(*vals));
    char *nums = malloc(n * 10 * PG_NUM_MAX);
    enum fc_err err = FC_NOMEM;
    if (!sql || !vals || !nums)
        goto out;
    size_t off = (size_t)snprintf(sql, sql_cap, "INSERT INTO sessions (" AN_COLUMNS ") VALUES ");
    for (size_t i = 0; i < n; i++) {
        const struct an_session *x = &s[i];
        const char **v = vals + i * AN_NCOLUMNS;
        char *num = nums + i * 10 * PG_NUM_MAX;
        int k = 0;
#define NUM(fmt, val) (snprintf(num + k * PG_NUM_MAX, PG_NUM_MAX, fmt, val), num + (k++) * PG_NUM_MAX)
        v[0] = node;
        v[1] = x->id;
        v[2] = x->mount;
        v[3] = NUM("%u", (unsigned)x->proto);
        v[4] = NUM("%u", (unsigned)x->is_short);
        v[5] = NUM("%llu", (unsigned long long)x->start_us);
        v[6] = NUM("%llu", (unsigned long long)x->end_us);
        v[7] = NUM("%.17g", x->listened_s);
        v[8] = NUM("%.17g", x->preroll_s);
        v[9] = NUM("%llu", (unsigned long long)x->bytes);
        v[10] = NUM("%.17g", x->timeshift_s);
        v[11] = NUM("%llu", (unsigned long long)x->pts_first_us);
        v[12] = NUM("%llu", (unsigned long long)x->pts_last_us);
#undef NUM
        v[13] = x->ua;
        v[14] = x->client;
        off += (size_t)snprintf(sql + off, sql_cap - off, "%s(", i ? "," : "");
        for (int c = 0; c < AN_NCOLUMNS; c++)
            off += (size_t)snprintf(sql + off, sql_cap - off, "%s$%zu", c ? "," : "",
                                    i * AN_NCOLUMNS + (size_t)c + 1);
        off += (size_t)snprintf(sql + off, sql_cap - off, ")");
    }
    snprintf(sql + off, sql_cap - off, " ON CONFLICT DO NOTHING");
    PGresult *r = PQexecParams(db->c, sql, (int)nparam, NULL, vals, NULL, NULL, 0);
    err = PQresultStatus(r) == PGRES_COMMAND_OK ? FC_OK : pg_fail(db->c, "insert", why, cap);
    PQclear(r);
out:
    if (err == FC_NOMEM)
        snprintf(why, cap, "out of memory");
    free(sql);
    free(vals);
    free(nums);
    return err;
}

static bool pg_alive(struct an_db *adb)
{
    struct pg_db *db = (struct pg_db *)adb;
    return db && PQstatus(db->c) == CONNECTION_OK;
}

const struct an_backend an_pg = {
    .name = "postgresql",
    .min2 = "LEAST",
    .max2 = "GREATEST",
    /* One advisory lock for every framecast edge migrating this database (the number is
     * arbitrary; it only has to be the same everywhere). */
    .lock_begin = "BEGIN; SELECT pg_advisory_xact_lock(7243190011)",
    .open = pg_open,
    .close = pg_close,
    .exec = pg_exec,
    .rows = pg_rows,
    .insert = pg_insert,
    .alive = pg_alive,
};
