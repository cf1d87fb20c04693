/* request.c - see request.h. */
#include "request.h"
#include "text.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static bool parse_number(const char *s, double *v)
{
    char *end;
    errno = 0;
    *v = strtod(s, &end);
    return errno == 0 && end != s && *end == '\0' && isfinite(*v);
}

bool request_parse_time(const char *s, size_t len, double *unix_s)
{
    char buf[64];
    if (len == 0 || len >= sizeof(buf))
        return false;
    memcpy(buf, s, len);
    buf[len] = '\0';
    if (!strchr(buf, '-'))
        return parse_number(buf, unix_s) && *unix_s >= 0;
    struct tm tm;
    memset(&tm, 0, sizeof(tm));
    const char *rest = strptime(buf, "%Y-%m-%dT%H:%M:%S", &tm);
    if (!rest)
        return false;
    double frac = 0;
    if (*rest == '.') {
        char *end;
        frac = strtod(rest, &end);
        rest = end;
    }
    /* An unescaped '+' in a query string reads as a space: " 00:00" is "+00:00". */
    if (strcmp(rest, "Z") != 0 && strcmp(rest, "+00:00") != 0 && strcmp(rest, " 00:00") != 0 &&
        *rest != '\0')
        return false;
    time_t t = timegm(&tm);
    if (t == (time_t)-1)
        return false;
    *unix_s = (double)t + frac;
    return true;
}

static enum fc_err set_param(struct stream_req *r, const char *key, const char *val,
                             const char **why)
{
    double v;
    if (strcmp(key, "offset") == 0) {
        if (!parse_number(val, &v) || v < 0 || v > REQUEST_MAX_DURATION_S)
            return *why = "offset", FC_PROTO;
        r->has_offset = true;
        r->offset_s = v;
    } else if (strcmp(key, "at") == 0) {
        if (!request_parse_time(val, strlen(val), &v))
            return *why = "at", FC_PROTO;
        r->has_at = true;
        r->at_s = v;
    } else if (strcmp(key, "duration") == 0) {
        if (!parse_number(val, &v) || v <= 0 || v > REQUEST_MAX_DURATION_S)
            return *why = "duration", FC_PROTO;
        r->has_duration = true;
        r->duration_s = v;
    } else if (strcmp(key, "burst") == 0) {
        if (!parse_number(val, &v) || v < 0 || v > REQUEST_MAX_BURST_S)
            return *why = "burst", FC_PROTO;
        r->has_burst = true;
        r->burst_s = v;
    } else if (strcmp(key, "dvr") == 0) {
        if (!parse_number(val, &v) || v < 0 || v > REQUEST_MAX_DURATION_S)
            return *why = "dvr", FC_PROTO;
        r->dvr_s = v;
    } else if (strcmp(key, "preroll") == 0) {
        if (strcmp(val, "0") != 0 && strcmp(val, "1") != 0)
            return *why = "preroll", FC_PROTO;
        r->no_preroll = val[0] == '0';
    }
    return FC_OK;
}

enum fc_err request_parse_query(const char *q, size_t len, struct stream_req *r, const char **why)
{
    memset(r, 0, sizeof(*r));
    size_t i = 0;
    while (i < len) {
        size_t amp = i;
        while (amp < len && q[amp] != '&')
            amp++;
        const char *eq = memchr(q + i, '=', amp - i);
        char key[32], val[96];
        /* Only our own parameters are decoded strictly; anything else (a player's token, a key
         * too long to be ours) is skipped. */
        static const char *const known[] = {"offset", "at", "duration", "dvr", "burst",
                                            "preroll"};
        const char *ours = NULL;
        if (eq && text_unescape(q + i, (size_t)(eq - q - i), key, sizeof(key)))
            for (size_t k = 0; k < sizeof(known) / sizeof(known[0]); k++)
                if (strcmp(key, known[k]) == 0)
                    ours = known[k];
        if (ours) {
            if (!text_unescape(eq + 1, (size_t)(q + amp - eq - 1), val, sizeof(val)))
                return *why = ours, FC_PROTO;
            enum fc_err err = set_param(r, key, val, why);
            if (err != FC_OK)
                return err;
        }
        i = amp + 1;
    }
    if (r->has_offset && r->has_at)
        return *why = "offset and at together", FC_PROTO;
    return FC_OK;
}
