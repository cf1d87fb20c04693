/* bench_analytics.c - the analytics store at station scale (`make bench-analytics`,
 * tests/bench/bench_analytics.sh; docs/architecture.md §7.13), through the edge's own code
 * (edge/analytics/: queue, writer thread, schema, batched inserts, figures SQL, export).
 *
 * usage: bench_analytics load URL NODE FILE
 *          read FILE (tests/bench/an_month.py lines, as tests/tools/an_load) into memory, then
 *          submit every session and wait until the writer has committed them all. Back-pressure:
 *          the submitter never lets the queue reach AN_QUEUE_MAX; when it is full it sleeps 1 ms
 *          and looks again (so analytics_submit never refuses and nothing is dropped). Prints
 *          "load backend=.. sessions=N s=.. rate=../s full_waits=.. dropped=.."; exit 1 if a
 *          session was dropped or the load took over LOAD_MAX_S.
 *        bench_analytics query URL REPS figures|export MOUNT|- FROM_S TO_S INTERVAL_S OUT
 *          run the query REPS times through analytics_query (the writer thread, as the edge's
 *          GET /api/v1/analytics and /api/v1/analytics/sessions?format=ndjson), time each from
 *          the call to the answer on the loop; prints "query ... ms_median=.. ms_min=.. ms_max=..
 *          rows=.. bytes=.."; the last answer is written to OUT. Exit 1 on a status other
 *          than 200 or an answer later than QUERY_MAX_S.
 *        bench_analytics explain URL MOUNT|- FROM_S TO_S INTERVAL_S
 *          the figures' statements one by one (an_figures on a direct connection, no writer
 *          thread): each one's plan (SQLite EXPLAIN QUERY PLAN, PostgreSQL EXPLAIN) and time.
 * Every wait is bounded. min_s is 1 (the edge's default); keep_days 0 (nothing deleted). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "../../edge/analytics/store.c"
#include "../../edge/analytics/schema.c"
#include "../../edge/analytics/figures.c"
#include "../../edge/analytics/query.c"
#include "../../edge/analytics/sqlite.c"
#include "../../edge/analytics/pg.c"
#include "../tools/an_tsv.h"

#define LOAD_MAX_S 600      /* a load, at most */
#define QUERY_MAX_S 300.0   /* one answer, at most */
#define UP_MAX_S 30         /* the writer connected and migrated, at most */
#define REPS_MAX 20
#define SESSIONS_MAX 20000000


static double now_s(void)
{
    return (double)clock_mono_us() / 1e6;
}

/* Wait until the writer has connected and migrated (db_up), at most UP_MAX_S. */
static bool wait_up(struct analytics *a)
{
    struct an_stats st;
    for (int i = 0; i < UP_MAX_S * 100; i++) {
        analytics_stats(a, &st);
        if (st.db_up)
            return true;
        usleep(10000);
    }
    return false;
}

static int do_load(struct analytics *a, const char *path)
{
    FILE *in = fopen(path, "r");
    if (!in) {
        perror(path);
        return 1;
    }
    size_t cap = 1 << 16, n = 0;
    struct an_session *all = malloc(cap * sizeof(*all));
    char line[2048];
    while (all && n < SESSIONS_MAX && fgets(line, sizeof(line), in)) {
        if (line[0] == '#' || line[0] == '\n')
            continue;
        if (n == cap) {
            struct an_session *b = realloc(all, 2 * cap * sizeof(*all));
            if (!b)
                break;
            all = b;
            cap *= 2;
        }
        if (!an_tsv_parse(line, &all[n])) {
            fprintf(stderr, "bench_analytics: %s: bad line %zu\n", path, n + 1);
            fclose(in);
            free(all);
            return 1;
        }
        n++;
    }
    fclose(in);
    if (!all || !wait_up(a)) {
        fprintf(stderr, "bench_analytics: %s\n", all ? "database not up" : "out of memory");
        free(all);
        return 1;
    }
    struct an_stats st;
    uint64_t full_waits = 0;
    size_t left = 0; /* sessions known to have left the queue (written or dropped) */
    double t0 = now_s(), deadline = t0 + LOAD_MAX_S;
    for (size_t i = 0; i < n && now_s() < deadline;) {
        /* the queue holds i - left at most: read the real count only when that could be the
         * bound, so that the submitter does not take the mutex twice per session */
        if (i - left >= AN_QUEUE_MAX) {
            analytics_stats(a, &st);
            left = i - st.queued;
            if (st.queued >= AN_QUEUE_MAX) {
                full_waits++;
                usleep(1000);
                continue;
            }
        }
        if (!analytics_submit(a, &all[i]))
            break; /* cannot happen with one submitter; counted as dropped below */
        i++;
    }
    double t_sub = now_s() - t0;
    for (;;) {
        analytics_stats(a, &st);
        if (st.written + st.dropped >= n || now_s() >= deadline)
            break;
        usleep(1000);
    }
    double t = now_s() - t0;
    free(all);
    printf("load backend=%s sessions=%zu s=%.2f rate=%.0f/s submit_s=%.2f full_waits=%llu "
           "written=%llu dropped=%llu write_errors=%llu\n",
           a->be->name, n, t, (double)st.written / t, t_sub, (unsigned long long)full_waits,
           (unsigned long long)st.written, (unsigned long long)st.dropped,
           (unsigned long long)st.write_errors);
    return st.written == n && st.dropped == 0 ? 0 : 1;
}

struct answer {
    bool done;
    int status;
    char *body;
    size_t len;
};

static void on_done(void *ctx, int status, char *body, size_t len)
{
    struct answer *x = ctx;
    free(x->body);
    x->done = true;
    x->status = status;
    x->body = body;
    x->len = len;
}

static void on_timeout(EV_P_ ev_timer *w, int revents)
{
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static int do_query(struct analytics *a, struct ev_loop *loop, struct answer *ans, char **argv)
{
    int reps = atoi(argv[0]);
    struct an_query q = {.kind = strcmp(argv[1], "export") == 0 ? AN_Q_SESSIONS : AN_Q_FIGURES};
    char qs[256];
    snprintf(qs, sizeof(qs), "from=%s&to=%s&interval=%s%s%s", argv[3], argv[4], argv[5],
             strcmp(argv[2], "-") ? "&mount=" : "", strcmp(argv[2], "-") ? argv[2] : "");
    const char *why;
    if (reps < 1 || reps > REPS_MAX ||
        an_query_parse(qs, strlen(qs), q.kind, (int64_t)clock_wall_us(), &q, &why) != FC_OK) {
        fprintf(stderr, "bench_analytics: bad query %s (reps %d): %s\n", qs, reps,
                reps < 1 || reps > REPS_MAX ? "reps" : why);
        return 2;
    }
    if (!wait_up(a)) {
        fprintf(stderr, "bench_analytics: database not up\n");
        return 1;
    }
    double ms[REPS_MAX];
    ev_timer tm;
    ev_timer_init(&tm, on_timeout, QUERY_MAX_S, 0);
    for (int r = 0; r < reps; r++) {
        ans->done = false;
        double t0 = now_s();
        analytics_query(a, &q, on_done, ans);
        ev_timer_set(&tm, QUERY_MAX_S, 0);
        ev_timer_start(loop, &tm);
        /* each round returns on an answer or the timer; bounded by QUERY_MAX_S in time */
        while (!ans->done && now_s() - t0 < QUERY_MAX_S)
            ev_run(loop, EVRUN_ONCE);
        ev_timer_stop(loop, &tm);
        ms[r] = (now_s() - t0) * 1e3;
        if (!ans->done || ans->status != 200) {
            fprintf(stderr, "bench_analytics: query %s: %s %.*s\n", qs,
                    ans->done ? "status" : "no answer", ans->done ? (int)ans->len : 0,
                    ans->body ? ans->body : "");
            return 1; /* main frees the body after analytics_close (which answers a job still
                         queued with 503) */
        }
    }
    FILE *out = fopen(argv[6], "w");
    if (!out || fwrite(ans->body, 1, ans->len, out) != ans->len) {
        perror(argv[6]);
        if (out)
            fclose(out);
        return 1;
    }
    fclose(out);
    size_t rows = 0;
    if (q.kind == AN_Q_SESSIONS) {
        for (size_t i = 0; i < ans->len; i++)
            rows += ans->body[i] == '\n';
    } else {
        rows = (size_t)((q.to_us - q.from_us) / (q.interval_s * 1000000));
    }
    double med[REPS_MAX];
    memcpy(med, ms, sizeof(double) * (size_t)reps);
    qsort(med, (size_t)reps, sizeof(double), cmp_double);
    printf("query backend=%s kind=%s mount=%s from=%s to=%s interval=%lld reps=%d ms_median=%.1f "
           "ms_min=%.1f ms_max=%.1f rows=%zu bytes=%zu\n",
           a->be->name, argv[1], argv[2], argv[3], argv[4], (long long)q.interval_s, reps,
           med[reps / 2], med[0], med[reps - 1], rows, ans->len);
    return 0;
}

/* ---- explain: the figures' statements one by one, timed, with their plans ---- */

/* The real backend's connection, wrapped: an_figures is given this "database" and a backend whose
 * rows() times each statement and prints its plan before running it on the real one. */
struct ex_db {
    const struct an_backend *be;
    struct an_db *db;
    int stmt;
};

static bool print_plan(void *ctx, int ncol, const char *const *v)
{
    /* SQLite's EXPLAIN QUERY PLAN: id, parent, notused, detail; PostgreSQL's EXPLAIN: one text */
    if (ncol >= 4)
        printf("      [%s<-%s] %s\n", v[0] ? v[0] : "", v[1] ? v[1] : "", v[3] ? v[3] : "");
    else
        printf("      %s\n", v[ncol - 1] ? v[ncol - 1] : "");
    return true;
}

static enum fc_err ex_rows(struct an_db *adb, const char *sql, an_row_fn fn, void *ctx, char *why,
                           size_t cap)
{
    static const char *const names[] = {"started", "tlh", "cume", "aqh", "peak_sweep",
                                        "peak_at_start"};
    struct ex_db *x = (struct ex_db *)adb;
    size_t n = strlen(sql) + 32;
    char *ex = malloc(n);
    if (!ex)
        return FC_NOMEM;
    snprintf(ex, n, "%s%s", x->be == &an_pg ? "EXPLAIN " : "EXPLAIN QUERY PLAN ", sql);
    printf("  statement %d (%s):\n", x->stmt, x->stmt < 6 ? names[x->stmt] : "?");
    enum fc_err err = x->be->rows(x->db, ex, print_plan, NULL, why, cap);
    free(ex);
    double t0 = now_s();
    if (err == FC_OK)
        err = x->be->rows(x->db, sql, fn, ctx, why, cap);
    printf("    ms=%.1f\n", (now_s() - t0) * 1e3);
    x->stmt++;
    return err;
}

static int do_explain(const char *url, char **argv)
{
    const struct an_backend *be;
    const char *target;
    struct an_query q = {.kind = AN_Q_FIGURES};
    char qs[256], why[AN_WHY_MAX];
    const char *bad;
    snprintf(qs, sizeof(qs), "from=%s&to=%s&interval=%s%s%s", argv[1], argv[2], argv[3],
             strcmp(argv[0], "-") ? "&mount=" : "", strcmp(argv[0], "-") ? argv[0] : "");
    if (pick_backend(url, &be, &target) != FC_OK ||
        an_query_parse(qs, strlen(qs), q.kind, (int64_t)clock_wall_us(), &q, &bad) != FC_OK) {
        fprintf(stderr, "bench_analytics: bad url or query %s\n", qs);
        return 2;
    }
    setvbuf(stdout, NULL, _IOLBF, 0); /* a statement killed by a timeout still shows its plan */
    struct ex_db x = {.be = be};
    if (be->open(&x.db, target, why, sizeof(why)) != FC_OK) {
        fprintf(stderr, "bench_analytics: %s\n", why);
        return 1;
    }
    struct an_backend w = *be;
    w.rows = ex_rows;
    char *body = NULL;
    size_t len = 0;
    printf("explain backend=%s %s\n", be->name, qs);
    double t0 = now_s();
    enum fc_err err = an_figures(&w, (struct an_db *)&x, &q, &body, &len, why, sizeof(why));
    printf("  total ms=%.1f%s%s\n", (now_s() - t0) * 1e3, err == FC_OK ? "" : " error: ",
           err == FC_OK ? "" : why);
    free(body);
    be->close(x.db);
    return err == FC_OK ? 0 : 1;
}

int main(int argc, char **argv)
{
    bool load = argc == 5 && strcmp(argv[1], "load") == 0;
    bool query = argc == 10 && strcmp(argv[1], "query") == 0;
    if (argc == 7 && strcmp(argv[1], "explain") == 0)
        return do_explain(argv[2], argv + 3);
    if (!load && !query) {
        fprintf(stderr, "usage: bench_analytics load URL NODE FILE\n"
                        "       bench_analytics query URL REPS figures|export MOUNT|- FROM_S "
                        "TO_S INTERVAL_S OUT\n"
                        "       bench_analytics explain URL MOUNT|- FROM_S TO_S INTERVAL_S\n");
        return 2;
    }
    struct log lg;
    log_init(&lg, "bench_analytics", false);
    struct ev_loop *loop = ev_default_loop(0);
    struct analytics_opts o = {.url = argv[2], .min_s = 1, .node = load ? argv[3] : "bench"};
    struct analytics *a;
    if (analytics_open(&a, &o, loop, &lg) != FC_OK)
        return 1;
    struct answer ans = {0};
    int rc = load ? do_load(a, argv[4]) : do_query(a, loop, &ans, argv + 3);
    analytics_close(a);
    free(ans.body);
    return rc;
}
