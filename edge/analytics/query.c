/* query.c - the query string of GET /api/v1/analytics and /api/v1/analytics/sessions
 * (docs/architecture.md §7.13): mount, from, to, interval, limit, format. Pure functions, no
 * allocation; fuzzed by tests/fuzz/fuzz_an_query.c. */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "analytics.h"
#include "text.h"
#include "wire.h"

#define AN_TIME_TEXT_MAX 64
#define AN_DEFAULT_SPAN_S 86400                 /* from defaults to `to` minus a day */
#define AN_EPOCH_MAX_S 253402300799LL           /* 9999-12-31T23:59:59Z */

/* `n` digits at *p into *out; advances *p. */
static bool digits(const char **p, int n, int *out)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (!isdigit((unsigned char)(*p)[i]))
            return false;
        v = v * 10 + ((*p)[i] - '0');
    }
    *p += n;
    *out = v;
    return true;
}

/* Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's days_from_civil). */
static int64_t days_from_civil(int64_t y, int m, int d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

static bool leap(int y)
{
    return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

/* ISO 8601 extended format, calendar date and time (ISO 8601-1:2019 §5.4.2): YYYY-MM-DDTHH:MM
 * [:SS[.frac]] then Z, ±HH:MM, ±HHMM or nothing (taken as UTC). A space may stand for 'T', and
 * for '+' (a '+' in a query string decodes to a space). */
static enum fc_err iso_parse(const char *s, int64_t *out_us)
{
    static const int mdays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    int y, mo, d, h, mi, sec = 0;
    int64_t frac_us = 0;
    const char *p = s;
    if (!digits(&p, 4, &y) || *p++ != '-' || !digits(&p, 2, &mo) || *p++ != '-' ||
        !digits(&p, 2, &d))
        return FC_PROTO;
    if (mo < 1 || mo > 12 || d < 1 || d > mdays[mo - 1] + (mo == 2 && leap(y)))
        return FC_PROTO;
    if (*p != 'T' && *p != 't' && *p != ' ')
        return FC_PROTO;
    p++;
    if (!digits(&p, 2, &h) || *p++ != ':' || !digits(&p, 2, &mi) || h > 23 || mi > 59)
        return FC_PROTO;
    if (*p == ':') {
        p++;
        if (!digits(&p, 2, &sec) || sec > 60) /* 60: a leap second, folded into the next */
            return FC_PROTO;
        if (*p == '.' || *p == ',') {
            p++;
            int64_t scale = 100000;
            if (!isdigit((unsigned char)*p))
                return FC_PROTO;
            for (; isdigit((unsigned char)*p); p++) {
                frac_us += (*p - '0') * scale;
                scale /= 10;
            }
        }
    }
    int64_t off_s = 0;
    if (*p == 'Z' || *p == 'z') {
        p++;
    } else if (*p == '+' || *p == '-' || *p == ' ') {
        int sign = *p++ == '-' ? -1 : 1, oh, om;
        if (!digits(&p, 2, &oh))
            return FC_PROTO;
        if (*p == ':')
            p++;
        if (!digits(&p, 2, &om) || oh > 23 || om > 59)
            return FC_PROTO;
        off_s = sign * (oh * 3600 + om * 60);
    }
    if (*p)
        return FC_PROTO;
    int64_t t = days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + sec - off_s;
    if (t < 0 || t > AN_EPOCH_MAX_S)
        return FC_PROTO;
    *out_us = t * 1000000 + frac_us;
    return FC_OK;
}

enum fc_err an_time_parse(const char *s, int64_t *out_us)
{
    if (!s[0])
        return FC_PROTO;
    bool numeric = true;
    for (const char *p = s; *p; p++)
        if (!isdigit((unsigned char)*p) && *p != '.')
            numeric = false;
    if (!numeric)
        return iso_parse(s, out_us);
    char *end;
    double v = strtod(s, &end);
    if (*end || !(v >= 0 && v <= (double)AN_EPOCH_MAX_S))
        return FC_PROTO;
    *out_us = (int64_t)(v * 1e6 + 0.5);
    return FC_OK;
}

/* A decimal integer in [lo, hi]. */
static bool int_in(const char *s, int64_t lo, int64_t hi, int64_t *out)
{
    if (!isdigit((unsigned char)s[0]) || strlen(s) > 12)
        return false;
    char *end;
    long long v = strtoll(s, &end, 10);
    if (*end || v < lo || v > hi)
        return false;
    *out = v;
    return true;
}

static int64_t floor_div(int64_t a, int64_t b)
{
    return a / b - (a % b != 0 && (a < 0) != (b < 0));
}

enum fc_err an_query_parse(const char *q, size_t len, int kind, int64_t now_us,
                           struct an_query *out, const char **why)
{
    char v[AN_TIME_TEXT_MAX];
    memset(out, 0, sizeof(*out));
    out->kind = kind;
    out->interval_s = AN_INTERVAL_DEFAULT_S;
    out->limit = AN_EXPORT_MAX;
    out->to_us = now_us;
    bool has_from = false;
    *why = NULL;
    if (text_query_value(q, len, "mount", v, sizeof(v)) && v[0]) {
        if (!wire_valid_name(v, strlen(v), WIRE_MOUNT_MAX)) {
            *why = "mount: expected a mount name";
            return FC_PROTO;
        }
        memcpy(out->mount, v, strlen(v) + 1);
    }
    if (text_query_value(q, len, "to", v, sizeof(v)) && an_time_parse(v, &out->to_us) != FC_OK) {
        *why = "to: expected epoch seconds or an ISO 8601 time";
        return FC_PROTO;
    }
    if (text_query_value(q, len, "from", v, sizeof(v))) {
        if (an_time_parse(v, &out->from_us) != FC_OK) {
            *why = "from: expected epoch seconds or an ISO 8601 time";
            return FC_PROTO;
        }
        has_from = true;
    }
    if (!has_from)
        out->from_us = out->to_us - (int64_t)AN_DEFAULT_SPAN_S * 1000000;
    if (out->from_us < 0)
        out->from_us = 0;
    if (out->to_us <= out->from_us) {
        *why = "to must be after from";
        return FC_PROTO;
    }
    int64_t n;
    if (kind == AN_Q_SESSIONS) {
        if (text_query_value(q, len, "limit", v, sizeof(v))) {
            if (!int_in(v, 1, AN_EXPORT_MAX, &n)) {
                *why = "limit: expected 1..100000";
                return FC_PROTO;
            }
            out->limit = (uint32_t)n;
        }
        if (text_query_value(q, len, "format", v, sizeof(v)) && strcmp(v, "ndjson") != 0) {
            *why = "format: only ndjson";
            return FC_PROTO;
        }
        return FC_OK;
    }
    if (text_query_value(q, len, "interval", v, sizeof(v))) {
        if (!int_in(v, AN_QUARTER_HOUR_S, 366LL * 86400, &n) || n % AN_QUARTER_HOUR_S) {
            *why = "interval: expected seconds, a multiple of 900";
            return FC_PROTO;
        }
        out->interval_s = n;
    }
    const int64_t qh_us = (int64_t)AN_QUARTER_HOUR_S * 1000000, iv_us = out->interval_s * 1000000;
    out->from_us = floor_div(out->from_us, qh_us) * qh_us;
    int64_t intervals = (out->to_us - out->from_us + iv_us - 1) / iv_us;
    if (intervals > AN_INTERVALS_MAX || intervals * (out->interval_s / AN_QUARTER_HOUR_S) >
                                            AN_QUARTERS_MAX) {
        *why = "from..to spans too many intervals (at most 2000 rows, 40000 quarter hours)";
        return FC_PROTO;
    }
    out->to_us = out->from_us + intervals * iv_us;
    return FC_OK;
}
