/* sqlite.c - the analytics store's SQLite backend (Debian's libsqlite3; docs/architecture.md
 * §7.13). WAL mode, so the edge's writer and readers (the sqlite3 CLI, a second program) do not
 * block each other; a busy timeout covers the short moments another writer holds the lock.
 * Writer thread only. */
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "db.h"

#define SQLITE_BUSY_MS 2000 /* waiting on another writer's lock, at most */

struct sq_db {
    sqlite3 *h;
    sqlite3_stmt *ins;                 /* the prepared INSERT, made on first use */
};

static enum fc_err sq_fail(struct sq_db *db, const char *what, char *why, size_t cap)
{
    snprintf(why, cap, "sqlite %s: %s", what, db->h ? sqlite3_errmsg(db->h) : "no handle");
    return FC_IO;
}

static void sq_close(struct an_db *adb)
{
    struct sq_db *db = (struct sq_db *)adb;
    if (!db)
        return;
    sqlite3_finalize(db->ins);
    sqlite3_close(db->h);
    free(db);
}

static enum fc_err sq_open(struct an_db **out, const char *target, char *why, size_t cap)
{
    struct sq_db *db = calloc(1, sizeof(*db));
    *out = NULL;
    if (!db)
        return FC_NOMEM;
    int rc = sqlite3_open_v2(target, &db->h, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE |
                                                 SQLITE_OPEN_NOMUTEX, NULL);
    if (rc != SQLITE_OK) {
        sq_fail(db, "open", why, cap);
        sq_close((struct an_db *)db);
        return FC_IO;
    }
    sqlite3_busy_timeout(db->h, SQLITE_BUSY_MS);
    char *msg = NULL;
    /* WAL: readers never block the writer; NORMAL sync is durable across a crash of the
     * program (not of the machine) and avoids an fsync per batch. */
    if (sqlite3_exec(db->h, "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL", NULL, NULL,
                     &msg) != SQLITE_OK) {
        snprintf(why, cap, "sqlite WAL mode: %s", msg ? msg : "?");
        sqlite3_free(msg);
        sq_close((struct an_db *)db);
        return FC_IO;
    }
    *out = (struct an_db *)db;
    return FC_OK;
}

static enum fc_err sq_exec(struct an_db *adb, const char *sql, char *why, size_t cap)
{
    struct sq_db *db = (struct sq_db *)adb;
    char *msg = NULL;
    if (sqlite3_exec(db->h, sql, NULL, NULL, &msg) == SQLITE_OK)
        return FC_OK;
    snprintf(why, cap, "sqlite: %s", msg ? msg : sqlite3_errmsg(db->h));
    sqlite3_free(msg);
    return FC_IO;
}

static enum fc_err sq_rows(struct an_db *adb, const char *sql, an_row_fn fn, void *ctx, char *why,
                           size_t cap)
{
    struct sq_db *db = (struct sq_db *)adb;
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(db->h, sql, -1, &st, NULL) != SQLITE_OK)
        return sq_fail(db, "prepare", why, cap);
    enum fc_err err = FC_OK;
    int ncol = sqlite3_column_count(st), rc;
    const char *vals[32];
    if (ncol > 32)
        ncol = 32;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        for (int i = 0; i < ncol; i++)
            vals[i] = (const char *)sqlite3_column_text(st, i);
        if (!fn(ctx, ncol, vals)) {
            snprintf(why, cap, "sqlite: row rejected");
            err = FC_LIMIT;
            break;
        }
    }
    if (err == FC_OK && rc != SQLITE_DONE)
        err = sq_fail(db, "step", why, cap);
    sqlite3_finalize(st);
    return err;
}

static enum fc_err sq_insert(struct an_db *adb, const char *node, const struct an_session *s,
                             size_t n, char *why, size_t cap)
{
    struct sq_db *db = (struct sq_db *)adb;
    if (!db->ins && sqlite3_prepare_v2(db->h,
                                       "INSERT INTO sessions (" AN_COLUMNS ") VALUES (?, ?, ?, ?, "
                                       "?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                                       -1, &db->ins, NULL) != SQLITE_OK)
        return sq_fail(db, "prepare insert", why, cap);
    if (sq_exec(adb, "BEGIN IMMEDIATE", why, cap) != FC_OK)
        return FC_IO;
    sqlite3_stmt *st = db->ins;
    for (size_t i = 0; i < n; i++) {
        const struct an_session *x = &s[i];
        sqlite3_reset(st);
        sqlite3_bind_text(st, 1, node, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, x->id, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 3, x->mount, -1, SQLITE_STATIC);
        sqlite3_bind_int(st, 4, x->proto);
        sqlite3_bind_int(st, 5, x->is_short);
        sqlite3_bind_int64(st, 6, (sqlite3_int64)x->start_us);
        sqlite3_bind_int64(st, 7, (sqlite3_int64)x->end_us);
        sqlite3_bind_double(st, 8, x->listened_s);
        sqlite3_bind_double(st, 9, x->preroll_s);
        sqlite3_bind_int64(st, 10, (sqlite3_int64)x->bytes);
        sqlite3_bind_double(st, 11, x->timeshift_s);
        sqlite3_bind_int64(st, 12, (sqlite3_int64)x->pts_first_us);
        sqlite3_bind_int64(st, 13, (sqlite3_int64)x->pts_last_us);
        sqlite3_bind_text(st, 14, x->ua, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 15, x->client, -1, SQLITE_STATIC);
        if (sqlite3_step(st) != SQLITE_DONE) {
            sq_fail(db, "insert", why, cap);
            sqlite3_reset(st);
            char ignored[AN_WHY_MAX];
            sq_exec(adb, "ROLLBACK", ignored, sizeof(ignored));
            return FC_IO;
        }
    }
    sqlite3_reset(st);
    if (sq_exec(adb, "COMMIT", why, cap) != FC_OK) {
        char ignored[AN_WHY_MAX];
        sq_exec(adb, "ROLLBACK", ignored, sizeof(ignored));
        return FC_IO;
    }
    return FC_OK;
}

static bool sq_alive(struct an_db *adb)
{
    struct sq_db *db = (struct sq_db *)adb;
    return db && db->h;
}

const struct an_backend an_sqlite = {
    .name = "sqlite",
    .min2 = "MIN",
    .max2 = "MAX",
    .lock_begin = "BEGIN IMMEDIATE",
    .open = sq_open,
    .close = sq_close,
    .exec = sq_exec,
    .rows = sq_rows,
    .insert = sq_insert,
    .alive = sq_alive,
};
