/*
 * test_analytics.c - the analytics store and its figures (edge/analytics/, docs/architecture.md
 * §7.13) on SQLite in a temp file:
 *  - a scripted population of 40 sessions over three hours (several sessions per person, raw, ICY
 *    and HLS, prerolls, short sessions, sessions crossing intervals and quarter hours, persons
 *    exactly at and just under the AQH threshold of 5 minutes) is submitted through the queue and
 *    written by the writer thread; every figure of every interval and protocol, at 3600 s and
 *    900 s intervals, must equal a brute-force count over every second of the three hours
 *    (which is independent of the SQL: it walks seconds, not spans);
 *  - the NDJSON export returns every session with its fields;
 *  - the query string parser: ISO 8601 and epoch times, rounding, every rejection;
 *  - a database that is not there yet: sessions stay queued and are written once it appears;
 *    the queue's bound: the session past AN_QUEUE_MAX is refused and counted dropped;
 *  - a database whose schema is newer than ours is refused (db_up stays false);
 *  - sessions longer than a day starting long before the span asked for (one in a version-1
 *    database migrated at open, one written by the store, one written meanwhile by an older
 *    edge sharing the database) are in the figures and the export: the lower bound on start_us
 *    (from minus the longest session, read from the v2 index) loses none of them;
 *  - retention (--analytics-keep-days): sessions that ended before the cut are deleted when the
 *    store starts, younger ones kept; without the option nothing is deleted.
 * All times are whole seconds so that sampling each second sees every change of state.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "../../edge/analytics/store.c"
#include "../../edge/analytics/schema.c"
#include "../../edge/analytics/figures.c"
#include "../../edge/analytics/query.c"
#include "../../edge/analytics/sqlite.c"
#include "../../edge/analytics/pg.c"

#define T0_S 1767225600LL /* 2026-01-01T00:00:00Z */
#define SPAN_S (3 * 3600)
#define NPOP 40
/* The brute force's own constants (not the module's): Nielsen / RAJAR quarter hours and the
 * 5-minute rule. */
#define QH_S 900
#define AQH_RULE_S 300

struct pop {
    int start, end;      /* seconds after T0_S */
    int preroll;         /* seconds */
    int proto;
    int client;          /* person number */
    bool is_short;       /* listened < min_s (1 s) */
};

static struct pop pop[NPOP];
static int npop;

static void add(int start, int end, int preroll, int proto, int client)
{
    pop[npop++] = (struct pop){start, end, preroll, proto, client, end - start - preroll < 1};
}

/* The population: hand-made edge cases first, then a deterministic spread. */
static void make_population(void)
{
    npop = 0;
    add(0, 3600, 0, AN_RAW, 1);              /* exactly the first hour */
    add(3000, 4500, 15, AN_ICY, 2);          /* crosses 01:00, 15 s preroll */
    add(900, 1200, 0, AN_HLS, 3);            /* exactly 5 min in QH 1: counts in AQH */
    add(1800, 2099, 0, AN_HLS, 4);           /* 4 min 59 s: does not */
    add(2700, 2850, 0, AN_RAW, 5);           /* 2.5 min raw ... */
    add(2850, 3000, 0, AN_HLS, 5);           /* ... + 2.5 min HLS: AQH all yes, per protocol no */
    add(100, 100, 0, AN_RAW, 6);             /* zero length: short */
    add(200, 200, 0, AN_ICY, 6);             /* short again, same person */
    add(7100, 7300, 0, AN_RAW, 1);           /* person 1 again, crossing 02:00 */
    add(7190, 7210, 5, AN_HLS, 7);           /* preroll */
    add(3600, 10800, 0, AN_ICY, 8);          /* hours 2 and 3 whole */
    add(5000, 5000 + 30, 30, AN_RAW, 9);     /* all preroll: 0 s listened, short */
    for (int i = 0; i < 4; i++) {            /* four hand over to four at 02:30: spans are */
        add(8000, 9000, 0, AN_RAW, 30 + i);  /* half-open, so never eight at once */
        add(9000, 10000, 0, AN_RAW, 40 + i);
    }
    uint32_t x = 12345;
    while (npop < NPOP) {
        x = x * 1103515245u + 12345u;
        int start = (int)((x >> 8) % (SPAN_S - 60));
        x = x * 1103515245u + 12345u;
        int len = 1 + (int)((x >> 8) % 2400);
        x = x * 1103515245u + 12345u;
        int proto = (int)((x >> 8) % 3), client = 10 + (int)((x >> 12) % 12);
        int preroll = (x >> 20) % 4 == 0 ? 10 : 0;
        add(start, start + len > SPAN_S + 600 ? SPAN_S + 600 : start + len, preroll, proto,
            client);
    }
}

/* ---- brute force over seconds ---- */

struct want {
    long sessions, cume, peak, dur_n;
    double dur_s, tlh_s, aqh_sum;
};

/* Listening at second t (the second [t, t+1)): not short, after the preroll, before the end. */
static bool listening(const struct pop *p, int t)
{
    return !p->is_short && t >= p->start + p->preroll && t < p->end;
}

static void brute(int from, int iv, int proto, struct want *w)
{
    memset(w, 0, sizeof(*w));
    static bool seen[64];
    memset(seen, 0, sizeof(seen));
    for (int i = 0; i < npop; i++) {
        const struct pop *p = &pop[i];
        if (proto >= 0 && p->proto != proto)
            continue;
        if (p->start >= from && p->start < from + iv) {
            w->sessions++;
            if (!p->is_short) {
                w->dur_n++;
                int ls = p->start + p->preroll < p->end ? p->start + p->preroll : p->end;
                w->dur_s += p->end - ls;
            }
        }
    }
    for (int t = from; t < from + iv; t++) {
        long n = 0;
        for (int i = 0; i < npop; i++) {
            const struct pop *p = &pop[i];
            if ((proto < 0 || p->proto == proto) && listening(p, t)) {
                n++;
                w->tlh_s++;
                seen[p->client] = true;
            }
        }
        if (n > w->peak)
            w->peak = n;
    }
    for (int c = 0; c < 64; c++)
        w->cume += seen[c];
    for (int q = from; q < from + iv; q += QH_S) {
        for (int c = 0; c < 64; c++) {
            int secs = 0;
            for (int t = q; t < q + QH_S; t++)
                for (int i = 0; i < npop; i++)
                    if (pop[i].client == c && (proto < 0 || pop[i].proto == proto) &&
                        listening(&pop[i], t))
                        secs++;
            w->aqh_sum += secs >= AQH_RULE_S;
        }
    }
    w->tlh_s /= 3600.0;
    w->aqh_sum /= (double)iv / QH_S;
}

/* ---- the store on a loop ---- */

struct answer {
    bool got;
    int status;
    char *body;
    size_t len;
};

static void on_done(void *ctx, int status, char *body, size_t len)
{
    struct answer *a = ctx;
    a->got = true;
    a->status = status;
    a->body = body;
    a->len = len;
}

static struct log tlog;

/* Run `loop` until *flag or `cond(arg)`, at most `max_s` seconds. */
static bool run_until(struct ev_loop *loop, bool (*cond)(void *), void *arg, double max_s)
{
    for (int i = 0; i < (int)(max_s * 200); i++) {
        ev_run(loop, EVRUN_NOWAIT);
        if (cond(arg))
            return true;
        usleep(5000);
    }
    return false;
}

static struct analytics *cur;
static uint64_t want_written;
static bool written_enough(void *arg)
{
    struct an_stats st;
    analytics_stats(cur, &st);
    return st.written >= want_written;
}
static bool answered(void *arg)
{
    return ((struct answer *)arg)->got;
}

static void to_session(const struct pop *p, int i, struct an_session *s)
{
    memset(s, 0, sizeof(*s));
    snprintf(s->id, sizeof(s->id), "%016x", i + 1);
    snprintf(s->mount, sizeof(s->mount), "live.mp3");
    s->proto = (uint8_t)p->proto;
    s->start_us = (uint64_t)(T0_S + p->start) * 1000000;
    s->end_us = (uint64_t)(T0_S + p->end) * 1000000;
    s->preroll_s = p->preroll;
    s->listened_s = p->end - p->start - p->preroll;
    s->bytes = (uint64_t)(p->end - p->start) * 16000;
    s->timeshift_s = i == 11 ? 3600 : 0;
    snprintf(s->ua, sizeof(s->ua), "ua-%d", p->proto);
    snprintf(s->client, sizeof(s->client), "client-%02d", p->client);
}

static char dbpath[64];

static struct analytics *open_store(const char *url, struct ev_loop *loop)
{
    struct analytics_opts o = {.url = url, .min_s = 1, .node = "unit"};
    struct analytics *a = NULL;
    assert_int_equal(analytics_open(&a, &o, loop, &tlog), FC_OK);
    return a;
}

static json_t *query(struct analytics *a, struct ev_loop *loop, const char *qs, int kind,
                     struct answer *ans)
{
    struct an_query q;
    const char *why;
    memset(ans, 0, sizeof(*ans));
    assert_int_equal(an_query_parse(qs, strlen(qs), kind, (T0_S + SPAN_S) * 1000000LL, &q, &why),
                     FC_OK);
    analytics_query(a, &q, on_done, ans);
    assert_true(run_until(loop, answered, ans, 10));
    assert_int_equal(ans->status, 200);
    if (kind != AN_Q_FIGURES)
        return NULL;
    json_error_t e;
    json_t *j = json_loadb(ans->body, ans->len, 0, &e);
    assert_non_null(j);
    return j;
}

static void check_fig(json_t *f, const struct want *w, const char *what)
{
    double avg = w->dur_n ? w->dur_s / (double)w->dur_n : -1;
    json_t *javg = json_object_get(f, "avg_session_s");
    double got_avg = json_is_null(javg) ? -1 : json_real_value(javg);
    long sessions = (long)json_integer_value(json_object_get(f, "sessions"));
    long cume = (long)json_integer_value(json_object_get(f, "cume"));
    long peak = (long)json_integer_value(json_object_get(f, "peak_listeners"));
    double tlh = json_real_value(json_object_get(f, "tlh"));
    double aqh = json_real_value(json_object_get(f, "aqh"));
    if (sessions != w->sessions || cume != w->cume || peak != w->peak ||
        fabs(tlh - w->tlh_s) > 1e-9 || fabs(aqh - w->aqh_sum) > 1e-9 || fabs(got_avg - avg) > 1e-6) {
        fprintf(stderr,
                "%s: got sessions=%ld cume=%ld peak=%ld tlh=%.9f aqh=%.6f avg=%.3f\n"
                "%s: want sessions=%ld cume=%ld peak=%ld tlh=%.9f aqh=%.6f avg=%.3f\n",
                what, sessions, cume, peak, tlh, aqh, got_avg, what, w->sessions, w->cume,
                w->peak, w->tlh_s, w->aqh_sum, avg);
        fail();
    }
}

static void check_interval(json_t *root, int iv)
{
    static const char *const names[] = {"raw", "icy", "hls"};
    json_t *rows = json_object_get(root, "rows");
    assert_int_equal(json_array_size(rows), SPAN_S / iv);
    for (size_t k = 0; k < json_array_size(rows); k++) {
        json_t *row = json_array_get(rows, k);
        int from = (int)k * iv;
        assert_int_equal(json_integer_value(json_object_get(row, "start_s")), T0_S + from);
        struct want w;
        char what[64];
        brute(from, iv, -1, &w);
        snprintf(what, sizeof(what), "interval %d s row %zu all", iv, k);
        check_fig(row, &w, what);
        if (iv == 3600)
            printf("  %s: sessions=%ld cume=%ld tlh=%.4f aqh=%.2f peak=%ld avg_s=%.1f "
                   "(= brute force)\n", what, w.sessions, w.cume, w.tlh_s, w.aqh_sum, w.peak,
                   w.dur_n ? w.dur_s / w.dur_n : 0);
        for (int p = 0; p < 3; p++) {
            brute(from, iv, p, &w);
            snprintf(what, sizeof(what), "interval %d s row %zu %s", iv, k, names[p]);
            check_fig(json_object_get(json_object_get(row, "by_protocol"), names[p]), &w, what);
        }
    }
}

static void test_figures(void **state)
{
    struct ev_loop *loop = ev_loop_new(0);
    make_population();
    snprintf(dbpath, sizeof(dbpath), "/tmp/test_analytics_%d.db", (int)getpid());
    unlink(dbpath);
    char url[80];
    snprintf(url, sizeof(url), "sqlite:%s", dbpath);
    struct analytics *a = cur = open_store(url, loop);
    for (int i = 0; i < npop; i++) {
        struct an_session s;
        to_session(&pop[i], i, &s);
        assert_true(analytics_submit(a, &s));
    }
    want_written = (uint64_t)npop;
    assert_true(run_until(loop, written_enough, NULL, 10));
    struct answer ans;
    char qs[128];
    snprintf(qs, sizeof(qs), "mount=live.mp3&from=2026-01-01T00:00:00Z&to=%lld", T0_S + SPAN_S);
    json_t *j = query(a, loop, qs, AN_Q_FIGURES, &ans);
    check_interval(j, 3600);
    json_decref(j);
    free(ans.body);
    snprintf(qs, sizeof(qs), "from=%lld&to=2026-01-01T03:00:00%%2B00:00&interval=900", T0_S);
    j = query(a, loop, qs, AN_Q_FIGURES, &ans);
    check_interval(j, 900);
    json_decref(j);
    free(ans.body);
    /* another mount has nothing */
    j = query(a, loop, "mount=other.mp3&from=1767225600&to=1767236400", AN_Q_FIGURES, &ans);
    json_t *r0 = json_array_get(json_object_get(j, "rows"), 0);
    assert_int_equal(json_integer_value(json_object_get(r0, "sessions")), 0);
    json_decref(j);
    free(ans.body);
    /* the export: every session once, its fields */
    query(a, loop, "from=1767225600&to=1767240000&format=ndjson", AN_Q_SESSIONS, &ans);
    int lines = 0, shorts = 0;
    for (char *p = ans.body, *nl; p && (nl = memchr(p, '\n', ans.len - (size_t)(p - ans.body)));
         p = nl + 1) {
        json_error_t e;
        json_t *s = json_loadb(p, (size_t)(nl - p), 0, &e);
        assert_non_null(s);
        assert_string_equal(json_string_value(json_object_get(s, "node")), "unit");
        assert_string_equal(json_string_value(json_object_get(s, "mount")), "live.mp3");
        shorts += json_is_true(json_object_get(s, "short"));
        lines++;
        json_decref(s);
    }
    int want_shorts = 0;
    for (int i = 0; i < npop; i++)
        want_shorts += pop[i].is_short;
    assert_int_equal(lines, npop);
    assert_int_equal(shorts, want_shorts);
    free(ans.body);
    /* submitting the same sessions again (a retried batch) adds nothing */
    for (int i = 0; i < npop; i++) {
        struct an_session s;
        to_session(&pop[i], i, &s);
        analytics_submit(a, &s);
    }
    want_written = 2 * (uint64_t)npop;
    assert_true(run_until(loop, written_enough, NULL, 10));
    query(a, loop, "from=1767225600&to=1767240000", AN_Q_SESSIONS, &ans);
    int n2 = 0;
    for (size_t i = 0; i < ans.len; i++)
        n2 += ans.body[i] == '\n';
    assert_int_equal(n2, npop);
    free(ans.body);
    analytics_close(a);
    ev_loop_destroy(loop);
    unlink(dbpath);
    char wal[80];
    snprintf(wal, sizeof(wal), "%s-wal", dbpath);
    unlink(wal);
    snprintf(wal, sizeof(wal), "%s-shm", dbpath);
    unlink(wal);
}

static void test_query_parse(void **state)
{
    struct an_query q;
    const char *why;
    const int64_t now = 1767229200LL * 1000000 + 123; /* 2026-01-01T01:00:00.000123Z */
    int64_t t;
    assert_int_equal(an_time_parse("2026-01-01T01:00:00Z", &t), FC_OK);
    assert_int_equal(t, 1767229200LL * 1000000);
    assert_int_equal(an_time_parse("2026-01-01T02:30:00+01:30", &t), FC_OK);
    assert_int_equal(t, 1767229200LL * 1000000);
    assert_int_equal(an_time_parse("2026-01-01 00:00:00 01:00", &t), FC_OK); /* '+' as space */
    assert_int_equal(t, 1767222000LL * 1000000);
    assert_int_equal(an_time_parse("2026-01-01T01:00:00.25-0000", &t), FC_OK);
    assert_int_equal(t, 1767229200LL * 1000000 + 250000);
    assert_int_equal(an_time_parse("2024-02-29T00:00", &t), FC_OK);
    assert_int_equal(an_time_parse("1767229200.5", &t), FC_OK);
    assert_int_equal(t, 1767229200LL * 1000000 + 500000);
    static const char *const bad_times[] = {"", "2025-02-29T00:00", "2026-13-01T00:00",
                                            "2026-01-01", "2026-01-01T24:00", "2026-01-01T00:00X",
                                            "2026-01-01T00:00:00+2", "-5", "1e9", "1.2.3",
                                            "99999999999999", "2026-01-01T00:00:00."};
    for (size_t i = 0; i < FC_ARRAY_LEN(bad_times); i++)
        assert_int_not_equal(an_time_parse(bad_times[i], &t), FC_OK);

    /* defaults: the last 24 h to now, hourly; from rounded down, to up */
    assert_int_equal(an_query_parse("", 0, AN_Q_FIGURES, now, &q, &why), FC_OK);
    assert_int_equal(q.interval_s, 3600);
    assert_int_equal(q.from_us, now - 123 - 86400LL * 1000000);
    assert_int_equal(q.to_us, q.from_us + 25LL * 3600 * 1000000);
    const char *s = "from=2026-01-01T00:20:00Z&to=2026-01-01T01:10:00Z&interval=1800&mount=a.mp3";
    assert_int_equal(an_query_parse(s, strlen(s), AN_Q_FIGURES, now, &q, &why), FC_OK);
    assert_int_equal(q.from_us, (1767225600LL + 900) * 1000000);
    assert_int_equal(q.to_us, (1767225600LL + 900 + 2 * 1800) * 1000000);
    assert_string_equal(q.mount, "a.mp3");
    static const char *const bad[] = {"interval=600", "interval=1000", "interval=0",
                                      "interval=abc", "mount=a/b", "from=x", "to=x",
                                      "from=1767229200&to=1767229200",
                                      "from=0&to=1767229200&interval=900"};
    for (size_t i = 0; i < FC_ARRAY_LEN(bad); i++) {
        why = NULL;
        assert_int_not_equal(an_query_parse(bad[i], strlen(bad[i]), AN_Q_FIGURES, now, &q, &why),
                             FC_OK);
        assert_non_null(why);
    }
    s = "limit=10&format=ndjson";
    assert_int_equal(an_query_parse(s, strlen(s), AN_Q_SESSIONS, now, &q, &why), FC_OK);
    assert_int_equal(q.limit, 10);
    assert_int_equal(q.to_us, now);
    s = "format=csv";
    assert_int_not_equal(an_query_parse(s, strlen(s), AN_Q_SESSIONS, now, &q, &why), FC_OK);
    s = "limit=0";
    assert_int_not_equal(an_query_parse(s, strlen(s), AN_Q_SESSIONS, now, &q, &why), FC_OK);
}

/* Down at start: sessions wait, then are written once the database can be opened; the queue's
 * bound holds meanwhile. */
static void test_db_late_and_bound(void **state)
{
    struct ev_loop *loop = ev_loop_new(0);
    char dir[64], url[96];
    snprintf(dir, sizeof(dir), "/tmp/test_analytics_dir_%d", (int)getpid());
    rmdir(dir);
    snprintf(url, sizeof(url), "sqlite:%s/late.db", dir);
    struct analytics *a = cur = open_store(url, loop);
    struct an_session s;
    make_population();
    for (int i = 0; i < AN_QUEUE_MAX; i++) {
        to_session(&pop[i % npop], i, &s);
        assert_true(analytics_submit(a, &s));
    }
    to_session(&pop[0], AN_QUEUE_MAX, &s);
    assert_false(analytics_submit(a, &s)); /* past the bound: refused, counted */
    struct an_stats st;
    analytics_stats(a, &st);
    assert_int_equal(st.dropped, 1);
    assert_int_equal(st.queued, AN_QUEUE_MAX);
    assert_false(st.db_up);
    assert_int_equal(mkdir(dir, 0700), 0);
    want_written = AN_QUEUE_MAX;
    assert_true(run_until(loop, written_enough, NULL, 20)); /* backoff is at most 5 s */
    analytics_stats(a, &st);
    assert_true(st.db_up);
    assert_int_equal(st.queued, 0);
    assert_true(st.write_errors >= 1);
    analytics_close(a);
    char cmd[160];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    assert_int_equal(system(cmd), 0);
    ev_loop_destroy(loop);
}

static bool errors_counted(void *arg)
{
    struct an_stats st;
    analytics_stats(cur, &st);
    return st.write_errors >= 1;
}

static void test_newer_schema_refused(void **state)
{
    struct ev_loop *loop = ev_loop_new(0);
    char path[64], url[80], cmd[260];
    snprintf(path, sizeof(path), "/tmp/test_analytics_new_%d.db", (int)getpid());
    unlink(path);
    sqlite3 *h;
    assert_int_equal(sqlite3_open(path, &h), SQLITE_OK);
    assert_int_equal(sqlite3_exec(h, "CREATE TABLE schema_version (version INTEGER NOT NULL);"
                                     "INSERT INTO schema_version VALUES (3)", NULL, NULL, NULL),
                     SQLITE_OK);
    sqlite3_close(h);
    snprintf(url, sizeof(url), "sqlite:%s", path);
    struct analytics *a = cur = open_store(url, loop);
    assert_true(run_until(loop, errors_counted, NULL, 5));
    struct an_stats st;
    analytics_stats(a, &st);
    assert_false(st.db_up);
    struct answer ans = {0};
    struct an_query q = {.kind = AN_Q_FIGURES, .from_us = 0, .to_us = 900000000,
                         .interval_s = 900};
    analytics_query(a, &q, on_done, &ans);
    assert_true(run_until(loop, answered, &ans, 5));
    assert_int_equal(ans.status, 503);
    free(ans.body);
    analytics_close(a);
    snprintf(cmd, sizeof(cmd), "rm -f %s %s-wal %s-shm", path, path, path);
    assert_int_equal(system(cmd), 0);
    ev_loop_destroy(loop);
}

static long long count_rows(const char *path, const char *where)
{
    sqlite3 *h;
    sqlite3_stmt *st;
    char sql[160];
    long long n = -1;
    snprintf(sql, sizeof(sql), "SELECT count(*) FROM sessions WHERE %s", where);
    assert_int_equal(sqlite3_open(path, &h), SQLITE_OK);
    assert_int_equal(sqlite3_prepare_v2(h, sql, -1, &st, NULL), SQLITE_OK);
    if (sqlite3_step(st) == SQLITE_ROW)
        n = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    sqlite3_close(h);
    return n;
}

/* One 30-hour session in a version-1 database (as an older edge left it), a 50-hour one and a
 * 10-minute one through the store, then a 70-hour one written directly (an older edge sharing the
 * database): the hour [T0, T0 + 1 h) has all of them listening. */
static void test_long_sessions(void **state)
{
    struct ev_loop *loop = ev_loop_new(0);
    char path[64], url[80], cmd[260], sql[1024];
    snprintf(path, sizeof(path), "/tmp/test_analytics_long_%d.db", (int)getpid());
    unlink(path);
    sqlite3 *h;
    assert_int_equal(sqlite3_open(path, &h), SQLITE_OK);
    assert_int_equal(sqlite3_exec(h, "CREATE TABLE schema_version (version INTEGER NOT NULL)",
                                  NULL, NULL, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_exec(h, schema_v1, NULL, NULL, NULL), SQLITE_OK);
    snprintf(sql, sizeof(sql),
             "INSERT INTO sessions (" AN_COLUMNS ") VALUES ('old', 'long1', 'live.mp3', 0, 0, "
             "%lld, %lld, 108000, 0, 1, 0, 0, 0, 'ua', 'long-1')",
             (T0_S - 29 * 3600) * 1000000LL, (T0_S + 3600) * 1000000LL);
    assert_int_equal(sqlite3_exec(h, sql, NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(h);

    snprintf(url, sizeof(url), "sqlite:%s", path);
    struct analytics *a = cur = open_store(url, loop);
    struct answer ans;
    char qs[128];
    snprintf(qs, sizeof(qs), "from=%lld&to=%lld&interval=3600", T0_S, T0_S + 3600);
    /* migrated to v2: span_max from the sessions already there */
    json_t *j = query(a, loop, qs, AN_Q_FIGURES, &ans);
    json_t *r0 = json_array_get(json_object_get(j, "rows"), 0);
    if (json_integer_value(json_object_get(r0, "cume")) != 1)
        fail_msg("the 30 h session of a v1 database: cume=%lld, want 1",
                 (long long)json_integer_value(json_object_get(r0, "cume")));
    json_decref(j);
    free(ans.body);
    static const long long span_h[] = {50, 0};
    static const long long start_s[] = {T0_S - 49 * 3600, T0_S + 600};
    for (int i = 0; i < 2; i++) {
        struct an_session x;
        memset(&x, 0, sizeof(x));
        snprintf(x.id, sizeof(x.id), "long%d", i + 2);
        snprintf(x.mount, sizeof(x.mount), "live.mp3");
        snprintf(x.client, sizeof(x.client), "long-%d", i + 2);
        x.start_us = (uint64_t)start_s[i] * 1000000;
        x.end_us = i == 0 ? (uint64_t)(start_s[i] + span_h[i] * 3600) * 1000000
                          : (uint64_t)(T0_S + 1200) * 1000000;
        x.listened_s = (double)(x.end_us - x.start_us) / 1e6;
        assert_true(analytics_submit(a, &x));
    }
    want_written = 2;
    assert_true(run_until(loop, written_enough, NULL, 10));
    /* an older edge sharing the database writes a 70 h session, knowing nothing of v2 */
    assert_int_equal(sqlite3_open(path, &h), SQLITE_OK);
    sqlite3_busy_timeout(h, 5000);
    snprintf(sql, sizeof(sql),
             "INSERT INTO sessions (" AN_COLUMNS ") VALUES ('old', 'long4', 'live.mp3', 1, 0, "
             "%lld, %lld, 252000, 0, 1, 0, 0, 0, 'ua', 'long-4')",
             (T0_S - 69 * 3600) * 1000000LL, (T0_S + 3600) * 1000000LL);
    assert_int_equal(sqlite3_exec(h, sql, NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(h);
    j = query(a, loop, qs, AN_Q_FIGURES, &ans);
    r0 = json_array_get(json_object_get(j, "rows"), 0);
    long cume = (long)json_integer_value(json_object_get(r0, "cume"));
    long peak = (long)json_integer_value(json_object_get(r0, "peak_listeners"));
    double tlh = json_real_value(json_object_get(r0, "tlh"));
    if (cume != 4 || peak != 4 || fabs(tlh - (3 + 600 / 3600.0)) > 1e-9)
        fail_msg("hour with a 30 h, a 50 h, a 70 h and a 10 min session: cume=%ld peak=%ld "
                 "tlh=%.6f, want 4, 4, %.6f", cume, peak, tlh, 3 + 600 / 3600.0);
    json_decref(j);
    free(ans.body);
    snprintf(qs, sizeof(qs), "from=%lld&to=%lld&format=ndjson", T0_S, T0_S + 3600);
    query(a, loop, qs, AN_Q_SESSIONS, &ans);
    int lines = 0;
    for (size_t i = 0; i < ans.len; i++)
        lines += ans.body[i] == '\n';
    assert_int_equal(lines, 4);
    free(ans.body);
    analytics_close(a);
    snprintf(cmd, sizeof(cmd), "rm -f %s %s-wal %s-shm", path, path, path);
    assert_int_equal(system(cmd), 0);
    ev_loop_destroy(loop);
}

/* Sessions ended 3 days, 25 hours, 23 hours and 1 hour ago; keep_days=1 keeps the last two. */
static void test_retention(void **state)
{
    static const double ago_h[] = {72, 25, 23, 1};
    struct ev_loop *loop = ev_loop_new(0);
    char path[64], url[80], cmd[260];
    snprintf(path, sizeof(path), "/tmp/test_analytics_keep_%d.db", (int)getpid());
    unlink(path);
    snprintf(url, sizeof(url), "sqlite:%s", path);
    struct analytics *a = cur = open_store(url, loop); /* keep_days 0: keep everything */
    uint64_t now = clock_wall_us();
    for (int i = 0; i < 4; i++) {
        struct an_session s;
        memset(&s, 0, sizeof(s));
        snprintf(s.id, sizeof(s.id), "keep%d", i);
        snprintf(s.mount, sizeof(s.mount), "live.mp3");
        s.end_us = now - (uint64_t)(ago_h[i] * 3600e6);
        s.start_us = s.end_us - 600000000ull;
        s.listened_s = 600;
        assert_true(analytics_submit(a, &s));
    }
    want_written = 4;
    assert_true(run_until(loop, written_enough, NULL, 10));
    analytics_close(a);
    assert_int_equal(count_rows(path, "1"), 4);

    struct analytics_opts o = {.url = url, .min_s = 1, .node = "unit", .keep_days = 1};
    a = cur = NULL;
    assert_int_equal(analytics_open(&a, &o, loop, &tlog), FC_OK);
    cur = a;
    /* retention runs once the writer has connected; the store answers queries after that */
    struct answer ans;
    struct an_query q = {.kind = AN_Q_SESSIONS, .from_us = 0, .to_us = (int64_t)now + 1000000,
                         .limit = 10};
    memset(&ans, 0, sizeof(ans));
    analytics_query(a, &q, on_done, &ans);
    assert_true(run_until(loop, answered, &ans, 10));
    free(ans.body);
    analytics_close(a);
    long long left = count_rows(path, "1");
    long long young = count_rows(path, "id IN ('keep2', 'keep3')");
    if (left != 2 || young != 2)
        fail_msg("keep_days=1: %lld rows left (%lld of the two younger than a day), want 2 (2)",
                 left, young);
    snprintf(cmd, sizeof(cmd), "rm -f %s %s-wal %s-shm", path, path, path);
    assert_int_equal(system(cmd), 0);
    ev_loop_destroy(loop);
}

int main(void)
{
    log_init(&tlog, "test", false);
    tlog.min = LOG_ERROR;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_query_parse),
        cmocka_unit_test(test_figures),
        cmocka_unit_test(test_db_late_and_bound),
        cmocka_unit_test(test_newer_schema_refused),
        cmocka_unit_test(test_retention),
        cmocka_unit_test(test_long_sessions),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
