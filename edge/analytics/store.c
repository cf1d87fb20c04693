/* store.c - the analytics store: the session queue, the writer thread, queries answered through
 * an ev_async, retention, counters (analytics.h; docs/architecture.md §7.13).
 *
 * The loop thread only ever takes `mu` for a copy (a session into the ring, a query onto the job
 * list, the answers off the done list); the writer holds it while choosing work and copying a
 * batch out, never across a database call. A batch leaves the ring only once committed, so
 * sessions survive a database that goes away (the writer reconnects with backoff). */
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include "analytics.h"
#include "backoff.h"
#include "clock.h"
#include "db.h"
#include "stats.h"
#include "text.h"

#define AN_BATCH_TRIES 3   /* a batch failing this often on a live connection is dropped (a row
                              the database refuses must not stop every later one) */
#define AN_URL_LOG_MAX 160

struct an_job {
    struct an_query q;
    void (*done)(void *ctx, int http_status, char *body, size_t len);
    void *ctx;
    int status;                        /* set by the writer */
    char *body;
    size_t len;
    struct an_job *next;
};

struct analytics {
    struct analytics_opts o;
    const struct an_backend *be;
    const char *target;                /* path or libpq connection string, in o.url */
    char url_log[AN_URL_LOG_MAX];      /* o.url without a password, for logs */
    struct log *log;
    struct ev_loop *loop;
    ev_async answered;                 /* the writer put answers on `done` */
    struct log_limit drop_limit;       /* loop thread: "queue full" lines */
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;                 /* work for the writer, or stop */
    /* ---- under mu ---- */
    struct an_session *ring;           /* AN_QUEUE_MAX sessions */
    size_t head, count;
    struct an_job *jobs, **jobs_tail;  /* queries waiting for the writer */
    struct an_job *done, **done_tail;  /* answers waiting for the loop */
    bool stop;
    double stop_deadline;              /* monotonic s: the writer gives up flushing then */
    struct an_stats st;
    /* ---- writer thread only ---- */
    struct an_db *db;
    struct an_session batch[AN_BATCH_MAX];
};

static double mono_s(void)
{
    return clock_mono_us() / 1e6;
}

/* ---- opening ---- */

static void redact(const char *url, char *out, size_t cap)
{
    const char *scheme = strstr(url, "://"), *at = scheme ? strchr(scheme + 3, '@') : NULL;
    const char *colon = at ? memchr(scheme + 3, ':', (size_t)(at - scheme - 3)) : NULL;
    if (colon)
        snprintf(out, cap, "%.*s:***%s", (int)(colon - url), url, at);
    else
        snprintf(out, cap, "%s", url);
}

/* The backend `url` names and the target it is given. */
static enum fc_err pick_backend(const char *url, const struct an_backend **be, const char **target)
{
    if (strncmp(url, "postgresql://", 13) == 0 || strncmp(url, "postgres://", 11) == 0) {
        *be = &an_pg;
        *target = url;
    } else if (strncmp(url, "sqlite:", 7) == 0 && url[7]) {
        *be = &an_sqlite;
        *target = url + 7;
    } else if (url[0] && !strstr(url, "://")) {
        *be = &an_sqlite;
        *target = url;
    } else {
        return FC_PROTO;
    }
    return FC_OK;
}

enum fc_err analytics_url_check(const char *url, char *why, size_t cap)
{
    const struct an_backend *be;
    const char *target;
    if (pick_backend(url, &be, &target) != FC_OK) {
        snprintf(why, cap, "\"%s\": expected sqlite:FILE, a file path or postgresql://…", url);
        return FC_PROTO;
    }
    if (be != &an_sqlite)
        return FC_OK;
    char dir[4096];
    const char *slash = strrchr(target, '/');
    snprintf(dir, sizeof(dir), "%.*s", slash ? (int)(slash - target) + 1 : 1, slash ? target : ".");
    if (access(dir, W_OK | X_OK) != 0) {
        snprintf(why, cap, "%s: %s", dir, strerror(errno));
        return FC_IO;
    }
    return FC_OK;
}

static void *writer_main(void *arg);
static void on_answered(EV_P_ ev_async *w, int revents);

enum fc_err analytics_open(struct analytics **out, const struct analytics_opts *o,
                           struct ev_loop *loop, struct log *log)
{
    *out = NULL;
    const struct an_backend *be;
    const char *target;
    if (!o->url || pick_backend(o->url, &be, &target) != FC_OK) {
        log_error(log, "analytics url=%s: expected sqlite:FILE, a path or postgresql://…",
                  o->url ? o->url : "");
        return FC_PROTO;
    }
    struct analytics *a = calloc(1, sizeof(*a));
    if (!a || !(a->ring = calloc(AN_QUEUE_MAX, sizeof(*a->ring)))) {
        free(a);
        return FC_NOMEM;
    }
    a->o = *o;
    if (!a->o.node)
        a->o.node = "";
    a->be = be;
    a->target = target;
    redact(o->url, a->url_log, sizeof(a->url_log));
    a->log = log;
    a->loop = loop;
    a->jobs_tail = &a->jobs;
    a->done_tail = &a->done;
    pthread_mutex_init(&a->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&a->cv, &ca);
    pthread_condattr_destroy(&ca);
    ev_async_init(&a->answered, on_answered);
    ev_async_start(loop, &a->answered);
    int rc = pthread_create(&a->thread, NULL, writer_main, a);
    if (rc != 0) {
        log_error(log, "analytics: writer thread: %s", strerror(rc));
        ev_async_stop(loop, &a->answered);
        pthread_cond_destroy(&a->cv);
        pthread_mutex_destroy(&a->mu);
        free(a->ring);
        free(a);
        return FC_IO;
    }
    log_info(log, "analytics db=%s backend=%s node=%s queue=%d min_s=%g keep_days=%g",
             a->url_log, be->name, a->o.node, AN_QUEUE_MAX, o->min_s, o->keep_days);
    *out = a;
    return FC_OK;
}

/* ---- the loop side ---- */

static uint64_t clamp_i64(uint64_t v)
{
    return v > (uint64_t)INT64_MAX ? (uint64_t)INT64_MAX : v;
}

static double finite_or_0(double v)
{
    return isfinite(v) ? v : 0;
}

/* Make `s` storable whatever the producer sent: terminated, UTF-8 (PostgreSQL refuses invalid
 * text, which would stall the queue), numbers in range of the columns. */
static void clean(struct an_session *s, double min_s)
{
    s->id[sizeof(s->id) - 1] = s->mount[sizeof(s->mount) - 1] = '\0';
    s->ua[sizeof(s->ua) - 1] = s->client[sizeof(s->client) - 1] = '\0';
    text_utf8_sanitize(s->id);
    text_utf8_sanitize(s->mount);
    text_utf8_sanitize(s->ua);
    text_utf8_sanitize(s->client);
    if (s->proto > AN_HLS)
        s->proto = AN_RAW;
    s->start_us = clamp_i64(s->start_us);
    s->end_us = clamp_i64(s->end_us);
    if (s->end_us < s->start_us)
        s->end_us = s->start_us;
    s->bytes = clamp_i64(s->bytes);
    s->pts_first_us = clamp_i64(s->pts_first_us);
    s->pts_last_us = clamp_i64(s->pts_last_us);
    s->listened_s = finite_or_0(s->listened_s);
    s->preroll_s = finite_or_0(s->preroll_s);
    if (s->preroll_s < 0)
        s->preroll_s = 0;
    s->timeshift_s = finite_or_0(s->timeshift_s);
    s->is_short = s->is_short || s->listened_s < min_s;
}

bool analytics_submit(struct analytics *a, const struct an_session *s)
{
    pthread_mutex_lock(&a->mu);
    bool ok = a->count < AN_QUEUE_MAX;
    if (ok) {
        struct an_session *slot = &a->ring[(a->head + a->count) % AN_QUEUE_MAX];
        memcpy(slot, s, sizeof(*slot));
        clean(slot, a->o.min_s);
        a->count++;
        a->st.submitted++;
        pthread_cond_signal(&a->cv);
    } else {
        a->st.dropped++;
    }
    size_t queued = a->count;
    pthread_mutex_unlock(&a->mu);
    uint64_t suppressed;
    if (!ok && log_limit_pass(&a->drop_limit, ev_now(a->loop), &suppressed))
        log_warn(a->log, "analytics db=%s queue full (%zu sessions): session dropped "
                 "(%llu more dropped since the last line)", a->url_log, queued,
                 (unsigned long long)suppressed);
    return ok;
}

void analytics_query(struct analytics *a, const struct an_query *q,
                     void (*done)(void *ctx, int http_status, char *body, size_t len), void *ctx)
{
    struct an_job *j = calloc(1, sizeof(*j));
    if (!j) {
        done(ctx, 503, NULL, 0);
        return;
    }
    j->q = *q;
    j->done = done;
    j->ctx = ctx;
    pthread_mutex_lock(&a->mu);
    *a->jobs_tail = j;
    a->jobs_tail = &j->next;
    pthread_cond_signal(&a->cv);
    pthread_mutex_unlock(&a->mu);
}

static struct an_job *take_list(struct an_job **head, struct an_job ***tail)
{
    struct an_job *j = *head;
    *head = NULL;
    *tail = head;
    return j;
}

static void deliver(struct an_job *j, bool answered)
{
    while (j) {
        struct an_job *next = j->next;
        if (answered) {
            j->done(j->ctx, j->status, j->body, j->len);
        } else {
            free(j->body);
            j->done(j->ctx, 503, NULL, 0);
        }
        free(j);
        j = next;
    }
}

static void on_answered(EV_P_ ev_async *w, int revents)
{
    struct analytics *a = container_of(w, struct analytics, answered);
    pthread_mutex_lock(&a->mu);
    struct an_job *j = take_list(&a->done, &a->done_tail);
    pthread_mutex_unlock(&a->mu);
    deliver(j, true);
}

void analytics_stats(struct analytics *a, struct an_stats *out)
{
    pthread_mutex_lock(&a->mu);
    *out = a->st;
    out->queued = a->count;
    pthread_mutex_unlock(&a->mu);
}

#define S(field, kind) kind, offsetof(struct an_stats, field), NULL, 0
static const struct stat_def an_stat_defs[] = {
    {"queued", "analytics_queued_sessions", "Sessions waiting to be written.", STAT_GAUGE,
     S(queued, STAT_U64)},
    {"submitted", "analytics_sessions_total", "Sessions queued for the database.", STAT_COUNTER,
     S(submitted, STAT_U64)},
    {"written", "analytics_written_sessions_total", "Sessions committed to the database.",
     STAT_COUNTER, S(written, STAT_U64)},
    {"dropped", "analytics_dropped_sessions_total",
     "Sessions lost: the queue was full, or unwritten at shutdown.", STAT_COUNTER,
     S(dropped, STAT_U64)},
    {"write_errors", "analytics_errors_total",
     "Failed database connections, inserts and queries.", STAT_COUNTER,
     S(write_errors, STAT_U64)},
    {"queries", "analytics_queries_total", "Figures and export requests answered.",
     STAT_COUNTER, S(queries, STAT_U64)},
    {"db_up", "analytics_db_up", "1 while the analytics database answers.", STAT_GAUGE,
     S(db_up, STAT_BOOL)},
};
#undef S

json_t *analytics_json(struct analytics *a)
{
    struct an_stats st;
    analytics_stats(a, &st);
    json_t *j = json_object();
    json_object_set_new(j, "backend", json_string(a->be->name));
    stats_json(j, an_stat_defs, STAT_N(an_stat_defs), &st);
    return j;
}

void analytics_metrics(struct analytics *a, struct prom *p, const char *prefix)
{
    struct an_stats st;
    analytics_stats(a, &st);
    const void *objs[1] = {&st};
    const char *labels[1] = {""};
    prom_table(p, prefix, an_stat_defs, STAT_N(an_stat_defs), objs, labels, 1);
}

void analytics_close(struct analytics *a)
{
    if (!a)
        return;
    pthread_mutex_lock(&a->mu);
    a->stop = true;
    a->stop_deadline = mono_s() + AN_CLOSE_FLUSH_S;
    pthread_cond_signal(&a->cv);
    pthread_mutex_unlock(&a->mu);
    pthread_join(a->thread, NULL);
    ev_async_stop(a->loop, &a->answered);
    /* the writer has stopped: no lock needed from here */
    deliver(take_list(&a->done, &a->done_tail), true);
    deliver(take_list(&a->jobs, &a->jobs_tail), false);
    if (a->count) {
        a->st.dropped += a->count;
        log_warn(a->log, "analytics db=%s: %zu sessions not written at shutdown (dropped)",
                 a->url_log, a->count);
    }
    log_info(a->log, "analytics closed submitted=%llu written=%llu dropped=%llu errors=%llu",
             (unsigned long long)a->st.submitted, (unsigned long long)a->st.written,
             (unsigned long long)a->st.dropped, (unsigned long long)a->st.write_errors);
    pthread_cond_destroy(&a->cv);
    pthread_mutex_destroy(&a->mu);
    free(a->ring);
    free(a);
}

/* ---- the writer thread ---- */

/* Record the outcome of a database operation; logs the transitions only. Unlocked. */
static void set_up(struct analytics *a, bool up, const char *why)
{
    pthread_mutex_lock(&a->mu);
    bool was = a->st.db_up;
    a->st.db_up = up;
    if (!up)
        a->st.write_errors++;
    size_t queued = a->count;
    pthread_mutex_unlock(&a->mu);
    if (up && !was)
        log_info(a->log, "analytics db=%s up schema=%d queued=%zu", a->url_log,
                 AN_SCHEMA_VERSION, queued);
    else if (!up && (was || why))
        log_warn(a->log, "analytics db=%s error: %s (queued=%zu; retrying)", a->url_log,
                 why ? why : "?", queued);
}

static void disconnect(struct analytics *a)
{
    a->be->close(a->db);
    a->db = NULL;
}

static bool connect_db(struct analytics *a)
{
    char why[AN_WHY_MAX];
    enum fc_err err = a->be->open(&a->db, a->target, why, sizeof(why));
    if (err == FC_OK && (err = an_schema_migrate(a->be, a->db, why, sizeof(why))) != FC_OK)
        disconnect(a);
    if (err != FC_OK) {
        bool was;
        pthread_mutex_lock(&a->mu);
        was = a->st.db_up;
        pthread_mutex_unlock(&a->mu);
        /* a database still down: one line at the transition, counted after */
        set_up(a, false, was || a->st.write_errors == 0 ? why : NULL);
        return false;
    }
    set_up(a, true, NULL);
    return true;
}

static void run_job(struct analytics *a, struct an_job *j)
{
    char why[AN_WHY_MAX] = "";
    enum fc_err err = FC_IO;
    if (a->db)
        err = j->q.kind == AN_Q_SESSIONS
                  ? an_export(a->be, a->db, &j->q, &j->body, &j->len, why, sizeof(why))
                  : an_figures(a->be, a->db, &j->q, &j->body, &j->len, why, sizeof(why));
    j->status = err == FC_OK ? 200 : !a->db ? 503 : 500;
    if (err != FC_OK) {
        free(j->body);
        char msg[AN_WHY_MAX + 64];
        json_t *e = json_pack("{s:s, s:i}", "error",
                              a->db ? (snprintf(msg, sizeof(msg), "query failed: %s", why), msg)
                                    : "analytics database unavailable",
                              "status", j->status);
        j->body = e ? json_dumps(e, JSON_COMPACT) : NULL;
        j->len = j->body ? strlen(j->body) : 0;
        json_decref(e);
        if (a->db) {
            log_warn(a->log, "analytics db=%s query failed: %s", a->url_log, why);
            if (!a->be->alive(a->db)) {
                disconnect(a);
                set_up(a, false, why);
            }
        }
    }
    pthread_mutex_lock(&a->mu);
    a->st.queries++;
    *a->done_tail = j;
    a->done_tail = &j->next;
    pthread_mutex_unlock(&a->mu);
    ev_async_send(a->loop, &a->answered);
}

/* Write one batch from the head of the ring; false if the database failed. */
static bool write_batch(struct analytics *a, int *tries)
{
    pthread_mutex_lock(&a->mu);
    size_t n = a->count < AN_BATCH_MAX ? a->count : AN_BATCH_MAX;
    for (size_t i = 0; i < n; i++)
        a->batch[i] = a->ring[(a->head + i) % AN_QUEUE_MAX];
    pthread_mutex_unlock(&a->mu);
    char why[AN_WHY_MAX];
    enum fc_err err = a->be->insert(a->db, a->o.node, a->batch, n, why, sizeof(why));
    bool alive = err == FC_OK || a->be->alive(a->db);
    bool give_up = err != FC_OK && alive && ++*tries >= AN_BATCH_TRIES;
    if (err == FC_OK || give_up) {
        pthread_mutex_lock(&a->mu);
        a->head = (a->head + n) % AN_QUEUE_MAX;
        a->count -= n;
        if (err == FC_OK)
            a->st.written += n;
        else
            a->st.dropped += n;
        pthread_mutex_unlock(&a->mu);
        *tries = 0;
    }
    if (err == FC_OK)
        return true;
    if (give_up)
        log_error(a->log, "analytics db=%s: %zu sessions dropped after %d failed inserts: %s",
                  a->url_log, n, AN_BATCH_TRIES, why);
    /* reconnect after a backoff either way: a fresh connection (or SQLite handle) is the
     * cheapest cure for whatever state the failure left */
    disconnect(a);
    set_up(a, false, why);
    return false;
}

static void retention(struct analytics *a)
{
    if (a->o.keep_days <= 0)
        return;
    char sql[128], why[AN_WHY_MAX];
    long long cut = (long long)clock_wall_us() - (long long)(a->o.keep_days * 86400e6);
    snprintf(sql, sizeof(sql), "DELETE FROM sessions WHERE end_us < %lld", cut);
    if (a->be->exec(a->db, sql, why, sizeof(why)) != FC_OK) {
        log_warn(a->log, "analytics db=%s retention: %s", a->url_log, why);
        if (!a->be->alive(a->db))
            disconnect(a);
        set_up(a, false, why);
    }
}

static void wait_until(struct analytics *a, double when_s)
{
    struct timespec ts;
    double s = when_s < 0 ? 0 : when_s;
    ts.tv_sec = (time_t)s;
    ts.tv_nsec = (long)((s - (double)ts.tv_sec) * 1e9);
    pthread_cond_timedwait(&a->cv, &a->mu, &ts);
}

static void *writer_main(void *arg)
{
    struct analytics *a = arg;
    struct backoff bo;
    backoff_reset(&bo);
    double retry_at = 0, retention_at = 0;
    int tries = 0;
    pthread_mutex_lock(&a->mu);
    for (;;) {
        double now = mono_s();
        bool has_jobs = a->jobs != NULL, has_rows = a->count > 0;
        if (a->stop && (!has_rows || now >= a->stop_deadline))
            break;
        bool work = has_jobs || (a->db && has_rows) || (!a->db && now >= retry_at) ||
                    (a->db && now >= retention_at);
        if (!work) {
            double until = a->db ? retention_at : retry_at;
            if (a->stop && a->stop_deadline < until)
                until = a->stop_deadline;
            wait_until(a, until);
            continue;
        }
        struct an_job *job = NULL;
        if (has_jobs) {
            job = a->jobs;
            if (!(a->jobs = job->next))
                a->jobs_tail = &a->jobs;
            job->next = NULL;
        }
        pthread_mutex_unlock(&a->mu);
        if (!a->db && now >= retry_at) {
            if (connect_db(a))
                backoff_reset(&bo);
            else
                retry_at = now + backoff_next(&bo);
        }
        if (job)
            run_job(a, job);
        if (a->db && has_rows && !write_batch(a, &tries))
            retry_at = mono_s() + backoff_next(&bo);
        if (a->db && now >= retention_at) {
            retention(a);
            retention_at = now + AN_RETENTION_EVERY_S;
        }
        pthread_mutex_lock(&a->mu);
    }
    pthread_mutex_unlock(&a->mu);
    if (a->db)
        disconnect(a);
    return NULL;
}
