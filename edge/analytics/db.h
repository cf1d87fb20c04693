/*
 * db.h - the analytics store's database backends (sqlite.c, pg.c), private to edge/analytics/.
 *
 * A backend is a table of functions over its own connection struct. Every function runs on the
 * writer thread only, returns FC_OK or FC_IO (with a reason in why[cap]); none logs. SQL text is
 * shared between backends (figures.c) except for the few spellings in struct an_backend.
 */
#ifndef FC_ANALYTICS_DB_H
#define FC_ANALYTICS_DB_H

#include <stdbool.h>
#include <stddef.h>
#include "fc.h"
#include "session.h"

#define AN_WHY_MAX 256

struct an_db;

/* One result row: `vals[i]` is column i as text, NULL for SQL NULL. False stops the query
 * (it then returns FC_LIMIT). */
typedef bool (*an_row_fn)(void *ctx, int ncol, const char *const *vals);

struct an_backend {
    const char *name;          /* "sqlite", "postgresql" */
    const char *min2, *max2;   /* the two-argument scalar min / max: MIN/MAX or LEAST/GREATEST */
    const char *lock_begin;    /* opens the migration transaction, excluding other migrators */
    /* Connect to `target` (a path, or a libpq connection string / URI). */
    enum fc_err (*open)(struct an_db **out, const char *target, char *why, size_t cap);
    void (*close)(struct an_db *db);
    /* Run statements that return no rows (several, separated by ';'). */
    enum fc_err (*exec)(struct an_db *db, const char *sql, char *why, size_t cap);
    /* Run one query, calling fn for each row. */
    enum fc_err (*rows)(struct an_db *db, const char *sql, an_row_fn fn, void *ctx, char *why,
                        size_t cap);
    /* Insert sessions s[0..n) with node name `node`, in one transaction; a row already there
     * (same node, id, start) is skipped, so a batch retried after an unclear commit is harmless. */
    enum fc_err (*insert)(struct an_db *db, const char *node, const struct an_session *s,
                          size_t n, char *why, size_t cap);
    /* Still connected (false: reconnect before the next statement). */
    bool (*alive)(struct an_db *db);
};

extern const struct an_backend an_sqlite;
extern const struct an_backend an_pg;

/* schema.c: create or migrate the schema to AN_SCHEMA_VERSION (FC_PROTO: the database is newer). */
enum fc_err an_schema_migrate(const struct an_backend *be, struct an_db *db, char *why,
                              size_t cap);

/* schema.c: the longest session stored, end_us - start_us, into *span_us (µs; 0 when none),
 * read from the v2 index on that expression. */
enum fc_err an_span_read(const struct an_backend *be, struct an_db *db, int64_t *span_us,
                         char *why, size_t cap);

/* figures.c: answer `q` from `db`: *body (malloc'd) and *len, or an error with why. */
struct an_query;
enum fc_err an_figures(const struct an_backend *be, struct an_db *db, const struct an_query *q,
                       char **body, size_t *len, char *why, size_t cap);
enum fc_err an_export(const struct an_backend *be, struct an_db *db, const struct an_query *q,
                      char **body, size_t *len, char *why, size_t cap);

/* The columns of table `sessions`, in insert order (schema.c, sqlite.c, pg.c, figures.c). */
#define AN_COLUMNS                                                                                 \
    "node, id, mount, proto, is_short, start_us, end_us, listened_s, preroll_s, bytes, "         \
    "timeshift_s, pts_first_us, pts_last_us, ua, client"
#define AN_NCOLUMNS 15

#endif
