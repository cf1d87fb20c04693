/* figures.c - audience figures and the session export, computed by SQL in the database
 * (docs/architecture.md §7.13 gives the definitions; the unit test test_analytics.c recomputes
 * them by brute force). Writer thread only.
 *
 * Every query starts from the same common table expressions:
 *   s  the sessions of the mount touching [T0, T1), with ls = start + preroll (listening starts
 *      after the preroll clip);
 *   v  the listening spans [ls, end) of sessions that are not short and not empty;
 *   vi a row per span and interval [i0, i0 + IV) of [T0, T1) it overlaps; vq the same per
 *      clock quarter hour [q0, q0 + QH).
 * The overlaps are generated from each span (recursive, a few rows per span) rather than found
 * by joining intervals to spans on a range condition: no database can index that join, and as a
 * nested loop it costs intervals x spans (a month at 86400 s: 2880 quarter hours x 600,000
 * sessions, minutes; `make bench-analytics`).
 * Numbers (times in µs) are written into the SQL text: they come from an_query_parse, integers;
 * the mount name is one checked by wire_valid_name ([A-Za-z0-9._-] only), so quoting it is safe.
 * One figure a query, grouped by interval and protocol (proto -1 = all protocols); the C side
 * adds up the additive ones (sessions, durations, TLH, audience at an interval's start). */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "analytics.h"
#include "clock.h"
#include "db.h"

#define SQL_MAX 4096
#define FIG_PROTOS 4                       /* all, raw, icy, hls */
#define EXPORT_BYTES_MAX (96u << 20)       /* an export answer, at most (AN_EXPORT_MAX rows) */

struct fig {
    uint64_t sessions;                     /* started in the interval, short ones included */
    int64_t dur_us;                        /* sum of [ls, end) of those not short */
    uint64_t dur_n;                        /* how many of them */
    int64_t tlh_us;                        /* listening inside the interval */
    uint64_t cume;                         /* distinct clients listening in it */
    uint64_t aqh_sum;                      /* sum over its quarter hours of the persons counted */
    uint64_t peak;                         /* most spans open at one instant */
};

struct figs {
    const struct an_query *q;
    int64_t iv_us;
    size_t n;                              /* intervals */
    struct fig (*rows)[FIG_PROTOS];
    int which;                             /* the figure being read (enum below) */
};

enum { F_STARTED, F_TLH, F_CUME, F_AQH, F_PEAK_SWEEP, F_PEAK_AT_START };

/* Common table expressions, then `body`. */
static void build(char *sql, const struct an_backend *be, const struct an_query *q,
                  long long lo, const char *body)
{
    char mount[WIRE_MOUNT_MAX + 32] = "";
    if (q->mount[0])
        snprintf(mount, sizeof(mount), "mount = '%s' AND ", q->mount);
    long long t0 = q->from_us, t1 = q->to_us, iv = q->interval_s * 1000000LL,
              qh = AN_QUARTER_HOUR_S * 1000000LL;
    snprintf(sql, SQL_MAX,
             "WITH RECURSIVE "
             "s AS (SELECT proto, is_short, client, start_us, end_us, "
             "%s(start_us + CAST(ROUND(preroll_s * 1000000) AS BIGINT), end_us) AS ls "
             "FROM sessions WHERE %sstart_us >= %lld AND end_us >= %lld AND start_us < %lld), "
             "v AS (SELECT proto, client, ls, end_us FROM s WHERE is_short = 0 AND ls < end_us), "
             /* each span once per interval (vi) and quarter hour (vq) it overlaps, from the one
              * holding its start (or T0) to the one holding its end (or T1) */
             "vi(proto, client, ls, end_us, i0) AS (SELECT proto, client, ls, end_us, "
             "%lld + (%s(ls, %lld) - %lld) / %lld * %lld FROM v WHERE ls < %lld AND end_us > %lld "
             "UNION ALL SELECT proto, client, ls, end_us, i0 + %lld FROM vi "
             "WHERE i0 + %lld < %s(end_us, %lld)), "
             "vq(proto, client, ls, end_us, q0) AS (SELECT proto, client, ls, end_us, "
             "%lld + (%s(ls, %lld) - %lld) / %lld * %lld FROM v WHERE ls < %lld AND end_us > %lld "
             "UNION ALL SELECT proto, client, ls, end_us, q0 + %lld FROM vq "
             "WHERE q0 + %lld < %s(end_us, %lld))"
             "%s",
             be->min2, mount, lo, t0, t1, t0, be->max2, t0, t0, iv, iv, t1, t0, iv, iv, be->min2, t1,
             t0, be->max2, t0, t0, qh, qh, t1, t0, qh, qh, be->min2, t1, body);
}

static bool on_row(void *ctx, int ncol, const char *const *v)
{
    struct figs *f = ctx;
    if (ncol < 3 || !v[0] || !v[1])
        return false;
    long long i0 = strtoll(v[0], NULL, 10), proto = strtoll(v[1], NULL, 10);
    if (i0 < f->q->from_us || proto < -1 || proto > 2)
        return false;
    size_t k = (size_t)((i0 - f->q->from_us) / f->iv_us);
    if (k >= f->n)
        return false;
    struct fig *x = &f->rows[k][proto + 1];
    long long a = v[2] ? strtoll(v[2], NULL, 10) : 0;
    switch (f->which) {
    case F_STARTED:
        x->sessions += (uint64_t)a;
        x->dur_us += ncol > 3 && v[3] ? strtoll(v[3], NULL, 10) : 0;
        x->dur_n += ncol > 4 && v[4] ? (uint64_t)strtoll(v[4], NULL, 10) : 0;
        break;
    case F_TLH:
        x->tlh_us += a;
        break;
    case F_CUME:
        x->cume = (uint64_t)a;
        break;
    case F_AQH:
        x->aqh_sum = (uint64_t)a;
        break;
    default: /* both peak candidates: the larger wins */
        if ((uint64_t)a > x->peak)
            x->peak = (uint64_t)a;
    }
    return true;
}

static json_t *fig_json(const struct fig *x, int64_t iv_us)
{
    double quarters = (double)iv_us / (AN_QUARTER_HOUR_S * 1e6);
    json_t *avg = x->dur_n ? json_real((double)x->dur_us / (double)x->dur_n / 1e6) : json_null();
    return json_pack("{s:I, s:I, s:f, s:f, s:I, s:o}", "sessions", (json_int_t)x->sessions,
                     "cume", (json_int_t)x->cume, "tlh", (double)x->tlh_us / 3.6e9, "aqh",
                     (double)x->aqh_sum / quarters, "peak_listeners", (json_int_t)x->peak,
                     "avg_session_s", avg);
}

static char *figures_json(const struct figs *f)
{
    static const char *const names[] = {"raw", "icy", "hls"};
    char iso[40];
    json_t *rows = json_array();
    for (size_t k = 0; k < f->n; k++) {
        int64_t start = f->q->from_us + (int64_t)k * f->iv_us;
        struct fig all = f->rows[k][0];
        /* additive figures come per protocol only; the all-protocols row is their sum */
        for (int p = 1; p < FIG_PROTOS; p++) {
            const struct fig *x = &f->rows[k][p];
            all.sessions += x->sessions;
            all.dur_us += x->dur_us;
            all.dur_n += x->dur_n;
            all.tlh_us += x->tlh_us;
        }
        clock_iso_ms((uint64_t)start, iso, sizeof(iso));
        json_t *row = json_pack("{s:s, s:I}", "start", iso, "start_s",
                                (json_int_t)(start / 1000000));
        json_t *figs = fig_json(&all, f->iv_us);
        json_object_update(row, figs);
        json_decref(figs);
        json_t *by = json_object();
        for (int p = 1; p < FIG_PROTOS; p++)
            json_object_set_new(by, names[p - 1], fig_json(&f->rows[k][p], f->iv_us));
        json_object_set_new(row, "by_protocol", by);
        json_array_append_new(rows, row);
    }
    char from[40], to[40];
    clock_iso_ms((uint64_t)f->q->from_us, from, sizeof(from));
    clock_iso_ms((uint64_t)f->q->to_us, to, sizeof(to));
    json_t *root = json_pack("{s:o, s:s, s:s, s:I, s:o}", "mount",
                             f->q->mount[0] ? json_string(f->q->mount) : json_null(), "from",
                             from, "to", to, "interval_s", (json_int_t)f->q->interval_s, "rows",
                             rows);
    char *text = root ? json_dumps(root, JSON_INDENT(1)) : NULL;
    json_decref(root);
    return text;
}

/* The lowest start_us a session touching [t0, ...) can have: t0 - the longest session (schema.c). */
static enum fc_err span_lo(const struct an_backend *be, struct an_db *db, long long t0,
                           long long *lo, char *why, size_t cap)
{
    int64_t span = 0;
    enum fc_err err = an_span_read(be, db, &span, why, cap);
    *lo = span < t0 ? t0 - span : 0;
    return err;
}

enum fc_err an_figures(const struct an_backend *be, struct an_db *db, const struct an_query *q,
                       char **body, size_t *len, char *why, size_t cap)
{
    const char *mn = be->min2, *mx = be->max2;
    char sel[6][1400];
    const long long t0 = q->from_us, t1 = q->to_us, iv = q->interval_s * 1000000LL,
                    qh = AN_QUARTER_HOUR_S * 1000000LL, aqh = AN_AQH_MIN_S * 1000000LL;
    snprintf(sel[F_STARTED], sizeof(sel[0]),
             " SELECT %lld + (start_us - %lld) / %lld * %lld, proto, COUNT(*), "
             "SUM(CASE WHEN is_short = 0 THEN end_us - ls ELSE 0 END), SUM(1 - is_short) "
             "FROM s WHERE start_us >= %lld GROUP BY 1, 2",
             t0, t0, iv, iv, t0);
    snprintf(sel[F_TLH], sizeof(sel[0]),
             " SELECT i0, proto, SUM(%s(end_us, i0 + %lld) - %s(ls, i0)) FROM vi GROUP BY 1, 2",
             mn, iv, mx);
    snprintf(sel[F_CUME], sizeof(sel[0]),
             " SELECT i0, proto, COUNT(DISTINCT client) FROM vi GROUP BY 1, 2 UNION ALL "
             "SELECT i0, -1, COUNT(DISTINCT client) FROM vi GROUP BY 1");
    /* A person counts in a quarter hour with >= AN_AQH_MIN_S of listening inside it, summed
     * over their sessions: per protocol (c) and over all protocols (ca). */
    snprintf(sel[F_AQH], sizeof(sel[0]),
             ", c AS (SELECT q0, proto, client, SUM(%s(end_us, q0 + %lld) - %s(ls, q0)) AS us "
             "FROM vq GROUP BY q0, proto, client)"
             ", ca AS (SELECT q0, client, SUM(us) AS us FROM c GROUP BY q0, client) "
             "SELECT %lld + (q0 - %lld) / %lld * %lld, proto, COUNT(*) FROM c WHERE us >= %lld "
             "GROUP BY 1, 2 UNION ALL SELECT %lld + (q0 - %lld) / %lld * %lld, -1, COUNT(*) "
             "FROM ca WHERE us >= %lld GROUP BY 1",
             mn, qh, mx, t0, t0, iv, iv, aqh, t0, t0, iv, iv, aqh);
    /* Peak: a sweep over span starts (+1) and ends (-1), ends first at equal times (spans are
     * half-open); the running sum over a start's peers is the audience at that instant. With
     * the audience at each interval's start, that covers every instant's maximum. */
    snprintf(sel[F_PEAK_SWEEP], sizeof(sel[0]),
             ", e AS (SELECT ls AS t, 1 AS d, proto AS p FROM v UNION ALL "
             "SELECT end_us, -1, proto FROM v UNION ALL SELECT ls, 1, -1 FROM v UNION ALL "
             "SELECT end_us, -1, -1 FROM v), "
             "r AS (SELECT t, d, p, SUM(d) OVER (PARTITION BY p ORDER BY t, d) AS n FROM e) "
             "SELECT %lld + (t - %lld) / %lld * %lld, p, MAX(n) FROM r "
             "WHERE d = 1 AND t >= %lld AND t < %lld GROUP BY 1, 2",
             t0, t0, iv, iv, t0, t1);
    snprintf(sel[F_PEAK_AT_START], sizeof(sel[0]),
             " SELECT i0, proto, COUNT(*) FROM vi WHERE ls <= i0 GROUP BY 1, 2");
    struct figs f = {.q = q, .iv_us = iv, .n = (size_t)((t1 - t0) / iv)};
    char *sql = malloc(SQL_MAX);
    f.rows = calloc(f.n ? f.n : 1, sizeof(*f.rows));
    enum fc_err err = FC_NOMEM;
    long long lo = 0;
    if (!sql || !f.rows)
        goto out;
    if ((err = span_lo(be, db, t0, &lo, why, cap)) != FC_OK)
        goto out;
    for (int w = F_STARTED; w <= F_PEAK_SWEEP; w++) {
        build(sql, be, q, lo, sel[w]);
        f.which = w;
        if ((err = be->rows(db, sql, on_row, &f, why, cap)) != FC_OK)
            goto out;
    }
    /* The audience at each interval's start, per protocol, into `at`; all = their sum. */
    struct figs at = f;
    at.which = F_PEAK_AT_START;
    if (!(at.rows = calloc(f.n ? f.n : 1, sizeof(*at.rows)))) {
        err = FC_NOMEM;
        goto out;
    }
    build(sql, be, q, lo, sel[F_PEAK_AT_START]);
    err = be->rows(db, sql, on_row, &at, why, cap);
    for (size_t k = 0; err == FC_OK && k < f.n; k++) {
        uint64_t sum = 0;
        for (int p = 1; p < FIG_PROTOS; p++) {
            uint64_t v = at.rows[k][p].peak;
            sum += v;
            if (v > f.rows[k][p].peak)
                f.rows[k][p].peak = v;
        }
        if (sum > f.rows[k][0].peak)
            f.rows[k][0].peak = sum;
    }
    free(at.rows);
    if (err != FC_OK)
        goto out;
    *body = figures_json(&f);
    err = *body ? FC_OK : FC_NOMEM;
    *len = *body ? strlen(*body) : 0;
out:
    if (err == FC_NOMEM)
        snprintf(why, cap, "out of memory");
    free(sql);
    free(f.rows);
    return err;
}

/* ---- export ---- */

struct exp {
    char *buf;
    size_t len, cap;
};

static bool exp_row(void *ctx, int ncol, const char *const *v)
{
    static const char *const protos[] = {"raw", "icy", "hls"};
    struct exp *x = ctx;
    if (ncol < AN_NCOLUMNS)
        return false;
    for (int i = 0; i < AN_NCOLUMNS; i++)
        if (!v[i])
            return false;
    long proto = strtol(v[3], NULL, 10);
    unsigned long long start = strtoull(v[5], NULL, 10), end = strtoull(v[6], NULL, 10);
    char s_iso[40], e_iso[40];
    clock_iso_ms(start, s_iso, sizeof(s_iso));
    clock_iso_ms(end, e_iso, sizeof(e_iso));
    json_t *j = json_pack(
        "{s:s, s:s, s:s, s:s, s:b, s:s, s:s, s:I, s:I, s:f, s:f, s:I, s:f, s:I, s:I, s:s, s:s}",
        "node", v[0], "id", v[1], "mount", v[2], "protocol",
        proto >= 0 && proto <= 2 ? protos[proto] : "?", "short", strtol(v[4], NULL, 10) != 0,
        "start", s_iso, "end", e_iso, "start_us", (json_int_t)start, "end_us", (json_int_t)end,
        "listened_s", strtod(v[7], NULL), "preroll_s", strtod(v[8], NULL), "bytes",
        (json_int_t)strtoull(v[9], NULL, 10), "timeshift_s", strtod(v[10], NULL), "pts_first_us",
        (json_int_t)strtoull(v[11], NULL, 10), "pts_last_us",
        (json_int_t)strtoull(v[12], NULL, 10), "user_agent", v[13], "client", v[14]);
    char *line = j ? json_dumps(j, JSON_COMPACT) : NULL;
    json_decref(j);
    if (!line)
        return false;
    size_t n = strlen(line);
    bool ok = x->len + n + 1 <= EXPORT_BYTES_MAX;
    if (ok && x->len + n + 1 > x->cap) {
        size_t cap = x->cap ? x->cap * 2 : 65536;
        while (cap < x->len + n + 1)
            cap *= 2;
        char *b = realloc(x->buf, cap);
        ok = b != NULL;
        if (ok) {
            x->buf = b;
            x->cap = cap;
        }
    }
    if (ok) {
        memcpy(x->buf + x->len, line, n);
        x->buf[x->len + n] = '\n';
        x->len += n + 1;
    }
    free(line);
    return ok;
}

enum fc_err an_export(const struct an_backend *be, struct an_db *db, const struct an_query *q,
                      char **body, size_t *len, char *why, size_t cap)
{
    char sql[1024], mount[WIRE_MOUNT_MAX + 32] = "";
    long long lo = 0;
    enum fc_err err = span_lo(be, db, q->from_us, &lo, why, cap);
    if (err != FC_OK)
        return err;
    if (q->mount[0])
        snprintf(mount, sizeof(mount), "mount = '%s' AND ", q->mount);
    snprintf(sql, sizeof(sql),
             "SELECT " AN_COLUMNS " FROM sessions WHERE %sstart_us >= %lld AND end_us >= %lld "
             "AND start_us < %lld ORDER BY start_us, node, id LIMIT %u",
             mount, lo, (long long)q->from_us, (long long)q->to_us, q->limit);
    struct exp x = {0};
    err = be->rows(db, sql, exp_row, &x, why, cap);
    if (err != FC_OK) {
        free(x.buf);
        return err;
    }
    *body = x.buf;
    *len = x.len;
    return FC_OK;
}
