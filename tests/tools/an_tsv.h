/* an_tsv.h - one analytics session from a line of tab-separated text, for tests/tools/an_load.c
 * and tests/bench/bench_analytics.c (include after edge/analytics/store.c).
 *
 * Columns: id mount proto(raw|icy|hls) start_us end_us preroll_s listened_s bytes timeshift_s
 * user_agent client. `line` is modified (strtok_r); false unless it has exactly 11 fields. */
#ifndef FC_AN_TSV_H
#define FC_AN_TSV_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static bool an_tsv_parse(char *line, struct an_session *s)
{
    char *f[11];
    int n = 0;
    for (char *save = NULL, *t = strtok_r(line, "\t\n", &save); t && n < 11;
         t = strtok_r(NULL, "\t\n", &save))
        f[n++] = t;
    if (n != 11)
        return false;
    memset(s, 0, sizeof(*s));
    snprintf(s->id, sizeof(s->id), "%s", f[0]);
    snprintf(s->mount, sizeof(s->mount), "%s", f[1]);
    s->proto = strcmp(f[2], "icy") == 0 ? AN_ICY : strcmp(f[2], "hls") == 0 ? AN_HLS : AN_RAW;
    s->start_us = strtoull(f[3], NULL, 10);
    s->end_us = strtoull(f[4], NULL, 10);
    s->preroll_s = strtod(f[5], NULL);
    s->listened_s = strtod(f[6], NULL);
    s->bytes = strtoull(f[7], NULL, 10);
    s->timeshift_s = strtod(f[8], NULL);
    snprintf(s->ua, sizeof(s->ua), "%s", f[9]);
    snprintf(s->client, sizeof(s->client), "%s", f[10]);
    return true;
}

#endif
