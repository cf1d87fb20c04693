/* stats.c - see stats.h. */
#include "stats.h"

#include <dirent.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

double stat_value(const struct stat_def *d, const void *obj)
{
    if (d->get)
        return d->get(obj);
    const unsigned char *p = (const unsigned char *)obj + d->off;
    switch (d->kind) {
    case STAT_U64: { uint64_t v; memcpy(&v, p, sizeof(v)); return (double)v; }
    case STAT_U32: { uint32_t v; memcpy(&v, p, sizeof(v)); return (double)v; }
    case STAT_DOUBLE: { double v; memcpy(&v, p, sizeof(v)); return v; }
    case STAT_BOOL: { bool v; memcpy(&v, p, sizeof(v)); return v ? 1 : 0; }
    }
    return 0;
}

void stats_json(json_t *j, const struct stat_def *t, size_t n, const void *obj)
{
    for (size_t i = 0; i < n; i++) {
        double v = stat_value(&t[i], obj);
        json_t *jv = t[i].kind == STAT_DOUBLE || t[i].get ? json_real(v)
                     : t[i].kind == STAT_BOOL            ? json_boolean(v != 0)
                                                         : json_integer((json_int_t)v);
        json_object_set_new(j, t[i].key, jv);
    }
}

/* v is a whole number an int64_t holds (range first: casting a NaN, an infinity or 1e20 to an
 * integer is undefined). */
static bool integral(double v)
{
    return v > -9.2e18 && v < 9.2e18 && v == (double)(int64_t)v;
}

size_t stats_log(char *buf, size_t cap, const struct stat_def *t, size_t n, const void *obj)
{
    size_t len = 0;
    if (cap)
        buf[0] = '\0';
    for (size_t i = 0; i < n && len + 1 < cap; i++) {
        double v = stat_value(&t[i], obj);
        int k = (t[i].kind == STAT_DOUBLE || t[i].get) && !integral(v)
                    ? snprintf(buf + len, cap - len, " %s=%.3f", t[i].key, v)
                    : snprintf(buf + len, cap - len, " %s=%.0f", t[i].key, v);
        if (k < 0)
            break;
        len += (size_t)k < cap - len ? (size_t)k : cap - len - 1;
    }
    return len;
}

void prom_printf(struct prom *p, const char *fmt, ...)
{
    if (p->oom)
        return;
    for (int round = 0; round < 2; round++) {
        va_list ap;
        va_start(ap, fmt);
        int k = vsnprintf(p->buf ? p->buf + p->len : NULL, p->buf ? p->cap - p->len : 0, fmt, ap);
        va_end(ap);
        if (k < 0) {
            p->oom = true;
            return;
        }
        if (p->buf && (size_t)k < p->cap - p->len) {
            p->len += (size_t)k;
            return;
        }
        size_t cap = p->cap ? p->cap : 4096;
        while (cap < p->len + (size_t)k + 1)
            cap *= 2;
        char *b = realloc(p->buf, cap);
        if (!b) {
            p->oom = true;
            return;
        }
        p->buf = b;
        p->cap = cap;
    }
}

/* `# HELP name text`: the text with backslash and newline escaped, as the format requires. */
static void prom_help(struct prom *p, const char *prefix, const char *metric, const char *help)
{
    prom_printf(p, "# HELP %s%s ", prefix, metric);
    for (const char *c = help ? help : ""; *c;) {
        size_t n = strcspn(c, "\\\n");
        prom_printf(p, "%.*s", (int)n, c);
        c += n;
        if (*c)
            prom_printf(p, "%s", *c++ == '\n' ? "\\n" : "\\\\");
    }
    prom_printf(p, "\n");
}

void prom_family(struct prom *p, const char *prefix, const struct stat_def *d)
{
    if (!d->metric)
        return;
    prom_help(p, prefix, d->metric, d->help);
    prom_printf(p, "# TYPE %s%s %s\n", prefix, d->metric,
                d->type == STAT_COUNTER ? "counter" : "gauge");
}

static void prom_value(struct prom *p, double v)
{
    if (isnan(v) || isinf(v)) /* the format's spellings: printf's "-nan" fails the whole scrape */
        prom_printf(p, "%s\n", isnan(v) ? "NaN" : v > 0 ? "+Inf" : "-Inf");
    else if (v < 9e15 && v > -9e15 && integral(v))
        prom_printf(p, "%lld\n", (long long)v);
    else
        prom_printf(p, "%.9g\n", v);
}

void prom_sample(struct prom *p, const char *prefix, const struct stat_def *d, const char *labels,
                 const void *obj)
{
    if (!d->metric)
        return;
    double v = stat_value(d, obj) * (d->scale ? d->scale : 1);
    prom_printf(p, labels && labels[0] ? "%s%s{%s} " : "%s%s ", prefix, d->metric, labels);
    prom_value(p, v);
}

void prom_table(struct prom *p, const char *prefix, const struct stat_def *t, size_t n,
                const void *const *objs, const char *const *labels, size_t n_objs)
{
    for (size_t i = 0; i < n; i++) {
        prom_family(p, prefix, &t[i]);
        for (size_t k = 0; k < n_objs; k++)
            prom_sample(p, prefix, &t[i], labels[k], objs[k]);
    }
}

size_t prom_label(char *out, size_t cap, const char *name, const char *value)
{
    size_t len = 0;
    int k = snprintf(out, cap, "%s=\"", name);
    if (k < 0 || (size_t)k + 2 > cap) /* room for the closing quote and the NUL */
        return cap ? (out[0] = '\0', 0) : 0;
    len = (size_t)k;
    for (const char *c = value; *c;) {
        unsigned char b = (unsigned char)*c;
        /* bytes of this character: an escape, or a whole UTF-8 sequence (never cut in two) */
        size_t n = b == '\\' || b == '"' || b == '\n' ? 2
                   : b >= 0xF0                      ? 4
                   : b >= 0xE0                      ? 3
                   : b >= 0xC0                      ? 2
                                                    : 1;
        if (len + n + 2 > cap)
            break;
        if (b == '\\' || b == '"')
            out[len++] = '\\', out[len++] = *c++;
        else if (b == '\n')
            out[len++] = '\\', out[len++] = 'n', c++;
        else
            for (size_t i = 0; i < n && *c; i++) /* a sequence cut by the NUL: what is there */
                out[len++] = *c++;
    }
    out[len++] = '"';
    out[len] = '\0';
    return len;
}

void prom_histogram_head(struct prom *p, const char *prefix, const char *metric, const char *help)
{
    prom_help(p, prefix, metric, help);
    prom_printf(p, "# TYPE %s%s histogram\n", prefix, metric);
}

void prom_histogram_series(struct prom *p, const char *prefix, const char *metric,
                           const char *labels, const double *le, size_t n_le,
                           const uint64_t *counts, double sum)
{
    const char *sep = labels && labels[0] ? "," : "";
    labels = labels ? labels : "";
    uint64_t cum = 0;
    for (size_t i = 0; i < n_le; i++) {
        cum += counts[i];
        prom_printf(p, "%s%s_bucket{%s%sle=\"%g\"} %llu\n", prefix, metric, labels, sep, le[i],
                    (unsigned long long)cum);
    }
    cum += counts[n_le];
    prom_printf(p, "%s%s_bucket{%s%sle=\"+Inf\"} %llu\n", prefix, metric, labels, sep,
                (unsigned long long)cum);
    prom_printf(p, labels[0] ? "%s%s_sum{%s} %.9g\n" : "%s%s_sum%s %.9g\n", prefix, metric,
                labels, sum);
    prom_printf(p, labels[0] ? "%s%s_count{%s} %llu\n" : "%s%s_count%s %llu\n", prefix, metric,
                labels, (unsigned long long)cum);
}

void proc_self(struct proc_stats *out)
{
    long hz = sysconf(_SC_CLK_TCK), page = sysconf(_SC_PAGESIZE);
    unsigned long long ut = 0, st = 0, start = 0, rss = 0;
    FILE *fp = fopen("/proc/self/stat", "r");
    if (fp) {
        char line[1024];
        if (fgets(line, sizeof(line), fp)) {
            const char *c = strrchr(line, ')'); /* the command name may hold spaces */
            if (c)
                sscanf(c + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu %*d %*d %*d "
                              "%*d %*d %*d %llu %*u %llu",
                       &ut, &st, &start, &rss);
        }
        fclose(fp);
    }
    double boot = 0;
    fp = fopen("/proc/stat", "r");
    if (fp) {
        char line[256];
        while (fgets(line, sizeof(line), fp))
            if (sscanf(line, "btime %lf", &boot) == 1)
                break;
        fclose(fp);
    }
    int fds = 0;
    DIR *d = opendir("/proc/self/fd");
    if (d) {
        while (readdir(d))
            fds++;
        closedir(d);
        fds -= 3; /* ".", ".." and the directory's own descriptor */
    }
    out->cpu_s = (double)(ut + st) / (double)hz;
    out->rss_bytes = rss * (unsigned long long)page;
    out->fds = fds > 0 ? (uint32_t)fds : 0;
    out->start_s = boot + (double)start / (double)hz;
}

void prom_process(struct prom *p)
{
    struct proc_stats ps;
    proc_self(&ps);
    prom_printf(p, "# HELP process_cpu_seconds_total Total user and system CPU time spent in seconds.\n"
                   "# TYPE process_cpu_seconds_total counter\nprocess_cpu_seconds_total %.2f\n",
                ps.cpu_s);
    prom_printf(p, "# HELP process_resident_memory_bytes Resident memory size in bytes.\n"
                   "# TYPE process_resident_memory_bytes gauge\nprocess_resident_memory_bytes %llu\n",
                (unsigned long long)ps.rss_bytes);
    prom_printf(p, "# HELP process_open_fds Number of open file descriptors.\n"
                   "# TYPE process_open_fds gauge\nprocess_open_fds %u\n", ps.fds);
    prom_printf(p, "# HELP process_start_time_seconds Start time of the process since unix epoch in seconds.\n"
                   "# TYPE process_start_time_seconds gauge\nprocess_start_time_seconds %.2f\n",
                ps.start_s);
}
