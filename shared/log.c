/* log.c - see log.h. */
#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const char *const level_names[] = {"debug", "info", "warn", "error"};

void log_init(struct log *lg, const char *component, bool json)
{
    const char *env = getenv("FC_LOG_LEVEL");
    lg->component = component;
    lg->json = json;
    lg->min = LOG_INFO;
    for (int i = 0; env && i < 4; i++)
        if (strcmp(env, level_names[i]) == 0)
            lg->min = (enum log_level)i;
}

static void json_escape(FILE *out, const char *s)
{
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\')
            fprintf(out, "\\%c", c);
        else if (c < 0x20)
            fprintf(out, "\\u%04x", c);
        else
            fputc(c, out);
    }
}

void log_msg(const struct log *lg, enum log_level level, const char *fmt, ...)
{
    if (level < lg->min)
        return;
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);

    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    char when[32];
    strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%S", &tm);

    /* One fprintf per line keeps lines whole when several processes share stderr. */
    if (lg->json) {
        flockfile(stderr);
        fprintf(stderr, "{\"ts\":\"%s.%03ldZ\",\"level\":\"%s\",\"component\":\"%s\",\"msg\":\"",
                when, ts.tv_nsec / 1000000, level_names[level], lg->component);
        json_escape(stderr, msg);
        fputs("\"}\n", stderr);
        funlockfile(stderr);
    } else {
        fprintf(stderr, "%s.%03ldZ %s %s %s\n", when, ts.tv_nsec / 1000000, level_names[level],
                lg->component, msg);
    }
}

bool log_limit_pass(struct log_limit *ll, double now_s, uint64_t *suppressed_out)
{
    if (ll->last_s != 0 && now_s - ll->last_s < LOG_LIMIT_INTERVAL_S) {
        ll->suppressed++;
        return false;
    }
    ll->last_s = now_s;
    *suppressed_out = ll->suppressed;
    ll->suppressed = 0;
    return true;
}
