/*
 * analytics.h - listening analytics: the session store and the audience figures
 * (docs/architecture.md §7.13 "Analytics"). Used by the process that owns the core only.
 *
 * Sessions (session.h) are queued by the loop thread and written by one writer thread in
 * batches, each batch one transaction, to SQLite (WAL mode) or PostgreSQL (libpq; many edges may
 * write one database, rows carry the node name). The loop never waits for the database: the
 * queue is bounded (AN_QUEUE_MAX); past it a session is dropped and counted. While the database
 * is unreachable the writer retries with backoff and sessions stay queued. The schema is created
 * and migrated at open (table `schema_version`, version AN_SCHEMA_VERSION); rows older than
 * --analytics-keep-days are deleted hourly.
 *
 * Figures (sessions, cume, TLH, AQH, peak listeners, average session) are computed by SQL in the
 * database, on the writer thread, and handed back to the loop through an ev_async.
 *
 * This module depends on shared/ only (no edge/core or edge/http header), so tools and tests can
 * link it alone.
 */
#ifndef FC_ANALYTICS_H
#define FC_ANALYTICS_H

#include <ev.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "fc.h"
#include "log.h"
#include "session.h"

#define AN_SCHEMA_VERSION 2
#define AN_QUEUE_MAX 10000            /* sessions waiting for the writer; past it: dropped */
#define AN_BATCH_MAX 500              /* sessions per insert transaction */
#define AN_CLOSE_FLUSH_S 2.0          /* analytics_close waits this long for the queue to drain */
#define AN_RETENTION_EVERY_S 3600.0   /* old rows deleted this often */
#define AN_QUARTER_HOUR_S 900         /* AQH: Nielsen / RAJAR quarter hours, clock-aligned (UTC) */
#define AN_AQH_MIN_S 300              /* AQH: a person counts in a quarter hour after listening
                                         >= 5 minutes inside it (Nielsen Audio, RAJAR) */
#define AN_INTERVAL_DEFAULT_S 3600
#define AN_INTERVALS_MAX 2000         /* rows of one figures answer */
#define AN_QUARTERS_MAX 40000         /* quarter hours one figures answer spans (~416 days) */
#define AN_EXPORT_MAX 100000          /* sessions of one export answer (limit=) */

struct analytics;

struct analytics_opts {
    const char *url;       /* "sqlite:FILE", a bare path (SQLite), or postgresql://… / postgres://… */
    double min_s;          /* --analytics-min-s: sessions shorter are flagged is_short */
    double keep_days;      /* --analytics-keep-days: delete older sessions; 0 = keep all */
    const char *node;      /* this edge's name, stored with each row (borrowed; outlives the store) */
    bool raw_ip;           /* --analytics-raw-ip: the HTTP side stores the address, not its hash */
};

enum an_query_kind { AN_Q_FIGURES = 1, AN_Q_SESSIONS = 2 };

/* A parsed figures or export request (an_query_parse). Times are UTC µs since the epoch. */
struct an_query {
    int kind;                          /* enum an_query_kind */
    char mount[WIRE_MOUNT_MAX + 1];    /* "" = every mount */
    int64_t from_us, to_us;            /* figures: from is a quarter-hour boundary and to - from
                                          a whole number of intervals; export: as given */
    int64_t interval_s;                /* figures: a multiple of AN_QUARTER_HOUR_S */
    uint32_t limit;                    /* export: at most this many sessions */
};

/* Counters for /metrics and GET / (analytics_stats). */
struct an_stats {
    uint64_t queued;                   /* sessions waiting now (gauge) */
    uint64_t submitted;                /* sessions accepted into the queue */
    uint64_t written;                  /* sessions committed to the database */
    uint64_t dropped;                  /* sessions lost: queue full, or unwritable at close */
    uint64_t write_errors;             /* failed connects, inserts or queries */
    uint64_t queries;                  /* figures / export queries answered */
    bool db_up;                        /* the writer's last database operation succeeded */
};

/*
 * Open the store described by `o` and start its writer thread; the database is connected and
 * migrated by the writer (a database down at start is retried like one that goes away later).
 * `o` is copied (its strings are borrowed); `loop` gets an ev_async the writer wakes (answers);
 * `log` is borrowed and used from both threads (log lines are single fprintf calls).
 * Errors: FC_PROTO (`o->url` names no backend, *out NULL, logged), FC_NOMEM, FC_IO (thread).
 * Loop thread.
 */
enum fc_err analytics_open(struct analytics **out, const struct analytics_opts *o,
                           struct ev_loop *loop, struct log *log);

/* Check a --analytics value before starting: FC_PROTO (no backend has that form) or FC_IO (a
 * SQLite file whose directory is not writable), with a reason in why[cap]. Any thread. */
enum fc_err analytics_url_check(const char *url, char *why, size_t cap);

/*
 * Queue one session (copied; strings made NUL-terminated and valid UTF-8, is_short set when
 * listened_s < min_s). Never blocks beyond a short mutex; false = queue full: counted as dropped,
 * logged at most once per LOG_LIMIT_INTERVAL_S. Loop thread.
 */
bool analytics_submit(struct analytics *a, const struct an_session *s);

/*
 * Answer `q` (copied) on the writer thread. `done` is called exactly once, on the loop thread
 * from the ev_async (or from analytics_close for a query still waiting then, with 503): status
 * 200 with a JSON body (figures) or NDJSON (export), 503 when the database is unreachable, 500
 * when a query fails. `done` takes ownership of `body` (malloc'd, free() it; NULL when len 0).
 */
void analytics_query(struct analytics *a, const struct an_query *q,
                     void (*done)(void *ctx, int http_status, char *body, size_t len), void *ctx);

/* The counters now. Any thread. */
void analytics_stats(struct analytics *a, struct an_stats *out);

/* GET / and /metrics: the counters as a new JSON object, and as Prometheus families appended to
 * `p` (names `prefix`analytics_…; struct prom from shared/stats.h). Loop thread. */
struct prom;
struct json_t;
struct json_t *analytics_json(struct analytics *a);
void analytics_metrics(struct analytics *a, struct prom *p, const char *prefix);

/* Stop the writer after it has written what is queued, waiting at most AN_CLOSE_FLUSH_S (what is
 * left is counted dropped and logged); queries not answered get `done` with 503; frees `a`.
 * NULL is a no-op. Loop thread. */
void analytics_close(struct analytics *a);

/*
 * query.c: parse the query string of GET /api/v1/analytics (kind AN_Q_FIGURES) or
 * /api/v1/analytics/sessions (AN_Q_SESSIONS): `q`, `len` bytes without '?'. Keys: mount (a
 * mount name), from / to (epoch seconds, or ISO 8601 `YYYY-MM-DDTHH:MM[:SS[.frac]]` with `Z`,
 * `±HH:MM` or no zone = UTC; default: to = now, from = to - 24 h), interval (seconds, a multiple
 * of 900, default 3600; figures), limit (export, 1..AN_EXPORT_MAX, default AN_EXPORT_MAX),
 * format (export: ndjson only). Figures: from is rounded down to a quarter hour, to up to a
 * whole interval. `now_us` is the wall clock. FC_PROTO with *why (static text) on a bad value;
 * unknown keys are ignored.
 */
enum fc_err an_query_parse(const char *q, size_t len, int kind, int64_t now_us,
                           struct an_query *out, const char **why);
/* query.c: ISO 8601 (as above) or epoch seconds in `s` → µs since the epoch. */
enum fc_err an_time_parse(const char *s, int64_t *out_us);

#endif
