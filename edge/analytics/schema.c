/* schema.c - the analytics schema and its migrations (docs/architecture.md §7.13).
 *
 * `schema_version` holds one row per applied version; a database at a version newer than this
 * program's is refused rather than written with the wrong columns. The migration runs in one
 * transaction opened by the backend's lock_begin, so several edges starting at once against one
 * PostgreSQL database migrate it once (the others wait on the advisory lock, then see the version
 * it reached). v1: the sessions table and its indexes; v2: the index on session length.
 * Column types are spelled so that both SQLite (type affinity) and PostgreSQL accept them. */
#include <stdio.h>
#include <stdlib.h>
#include "analytics.h"
#include "db.h"

static const char schema_v1[] =
    "CREATE TABLE sessions ("
    " node TEXT NOT NULL,"              /* --node of the edge that served it */
    " id TEXT NOT NULL,"                /* listener id (16 hex) or HLS session key */
    " mount TEXT NOT NULL,"
    " proto SMALLINT NOT NULL,"         /* 0 raw, 1 icy, 2 hls */
    " is_short SMALLINT NOT NULL,"      /* 1: listened < --analytics-min-s */
    " start_us BIGINT NOT NULL,"        /* UTC µs since the epoch */
    " end_us BIGINT NOT NULL,"
    " listened_s DOUBLE PRECISION NOT NULL,"
    " preroll_s DOUBLE PRECISION NOT NULL,"
    " bytes BIGINT NOT NULL,"
    " timeshift_s DOUBLE PRECISION NOT NULL,"
    " pts_first_us BIGINT NOT NULL,"
    " pts_last_us BIGINT NOT NULL,"
    " ua TEXT NOT NULL,"
    " client TEXT NOT NULL,"
    " PRIMARY KEY (node, id, start_us));"
    "CREATE INDEX sessions_mount_start ON sessions (mount, start_us);"
    "CREATE INDEX sessions_start ON sessions (start_us);"
    "CREATE INDEX sessions_end ON sessions (end_us);"
    "INSERT INTO schema_version (version) VALUES (1);";

/* v2: an index on each session's length, so that a query for [T0, T1) can read the longest one
 * (MAX answered from the index's last entry) and bound start_us from below by T0 minus it as
 * well as above by T1: the start_us indexes then read about the span asked for plus the longest
 * session instead of half the table (make bench-analytics: a day of a 600,000-session month read
 * ~300,000 rows). The bound is the data's own, so rows written by an edge of an older version
 * sharing the database count, and retention lowers it. */
static const char schema_v2[] =
    "CREATE INDEX sessions_length ON sessions ((end_us - start_us));"
    "INSERT INTO schema_version (version) VALUES (2);";

static bool read_version(void *ctx, int ncol, const char *const *vals)
{
    *(long *)ctx = ncol > 0 && vals[0] ? strtol(vals[0], NULL, 10) : 0;
    return true;
}

enum fc_err an_schema_migrate(const struct an_backend *be, struct an_db *db, char *why,
                              size_t cap)
{
    enum fc_err err = be->exec(db, be->lock_begin, why, cap);
    if (err != FC_OK)
        return err;
    long version = 0;
    err = be->exec(db, "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)",
                   why, cap);
    if (err == FC_OK)
        err = be->rows(db, "SELECT MAX(version) FROM schema_version", read_version, &version, why,
                       cap);
    if (err == FC_OK && version > AN_SCHEMA_VERSION) {
        snprintf(why, cap, "the database's schema is version %ld, newer than this program's %d",
                 version, AN_SCHEMA_VERSION);
        err = FC_PROTO;
    }
    if (err == FC_OK && version < 1)
        err = be->exec(db, schema_v1, why, cap);
    if (err == FC_OK && version < 2)
        err = be->exec(db, schema_v2, why, cap);
    /* later versions: if (version < 3) ...; INSERT INTO schema_version VALUES (3) */
    if (err == FC_OK)
        return be->exec(db, "COMMIT", why, cap);
    char ignored[AN_WHY_MAX];
    be->exec(db, "ROLLBACK", ignored, sizeof(ignored));
    return err;
}

static bool read_span(void *ctx, int ncol, const char *const *vals)
{
    *(int64_t *)ctx = ncol > 0 && vals[0] ? strtoll(vals[0], NULL, 10) : 0;
    return true;
}

enum fc_err an_span_read(const struct an_backend *be, struct an_db *db, int64_t *span_us,
                         char *why, size_t cap)
{
    *span_us = 0;
    return be->rows(db, "SELECT MAX(end_us - start_us) FROM sessions", read_span, span_us, why,
                    cap);
}
