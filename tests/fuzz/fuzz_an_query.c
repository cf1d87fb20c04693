/* fuzz_an_query.c - libFuzzer target for edge/analytics/query.c: the query string of
 * GET /api/v1/analytics and /analytics/sessions (from, to, interval, mount, limit, format) and
 * the ISO 8601 / epoch time parser. Properties: no crash or UB; an accepted figures query has
 * from on a quarter hour, to - from a whole number of intervals (1..AN_INTERVALS_MAX), interval a
 * multiple of 900, a valid or empty mount; an accepted export has 1 <= limit <= AN_EXPORT_MAX and
 * from < to; a refusal always gives a reason; an accepted time lies in [0, 9999-12-31]. */
#include <stdint.h>
#include <string.h>
#include "../../edge/analytics/query.c"
#include "fuzz_check.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const int64_t now = 1767229200LL * 1000000;
    for (int kind = AN_Q_FIGURES; kind <= AN_Q_SESSIONS; kind++) {
        struct an_query q;
        const char *why = NULL;
        enum fc_err err = an_query_parse((const char *)data, size, kind, now, &q, &why);
        if (err != FC_OK) {
            CHECK(why != NULL);
            continue;
        }
        CHECK(q.from_us >= 0 && q.to_us > q.from_us);
        CHECK(q.mount[0] == '\0' || wire_valid_name(q.mount, strlen(q.mount), WIRE_MOUNT_MAX));
        if (kind == AN_Q_SESSIONS) {
            CHECK(q.limit >= 1 && q.limit <= AN_EXPORT_MAX);
            continue;
        }
        int64_t iv = q.interval_s * 1000000;
        CHECK(q.interval_s >= AN_QUARTER_HOUR_S && q.interval_s % AN_QUARTER_HOUR_S == 0);
        CHECK(q.from_us % (AN_QUARTER_HOUR_S * 1000000LL) == 0);
        CHECK((q.to_us - q.from_us) % iv == 0);
        CHECK((q.to_us - q.from_us) / iv >= 1 && (q.to_us - q.from_us) / iv <= AN_INTERVALS_MAX);
    }
    char s[80];
    size_t n = size < sizeof(s) - 1 ? size : sizeof(s) - 1;
    memcpy(s, data, n);
    s[n] = '\0';
    int64_t t;
    if (an_time_parse(s, &t) == FC_OK)
        CHECK(t >= 0 && t <= (AN_EPOCH_MAX_S + 1) * 1000000);
    return 0;
}
