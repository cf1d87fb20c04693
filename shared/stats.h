/*
 * stats.h - counters and gauges described once, in a table, and read by every output: JSON
 * (jansson), `stats` log lines and the Prometheus text exposition format 0.0.4
 * (https://prometheus.io/docs/instrumenting/exposition_formats/; names and units per
 * https://prometheus.io/docs/practices/naming/: `_total` for counters, base units `_seconds`,
 * `_bytes`).
 *
 * A table is an array of struct stat_def over one C struct (a mount, a stream, a relay link...):
 * each entry reads a field at `off` (uint64_t, uint32_t, double or bool) or calls `get`. The
 * Prometheus text is built in a struct prom (a growable buffer, owned by the caller); a family's
 * HELP and TYPE lines come once, followed by one sample per object, labels given by the caller
 * (already escaped with prom_label()).
 * Not thread-safe; no allocation except the prom buffer's growth.
 */
#ifndef FC_STATS_H
#define FC_STATS_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum stat_type { STAT_COUNTER, STAT_GAUGE };
enum stat_kind { STAT_U64, STAT_U32, STAT_DOUBLE, STAT_BOOL };

struct stat_def {
    const char *key;          /* JSON member and log key, e.g. "frames_out" */
    const char *metric;       /* Prometheus name after the program's prefix, e.g.
                                 "mount_frames_out_total"; NULL = not exported */
    const char *help;         /* Prometheus HELP text */
    enum stat_type type;
    enum stat_kind kind;      /* of the field at `off` */
    size_t off;               /* offsetof the field in the object */
    double (*get)(const void *obj); /* instead of `off`, when not NULL */
    double scale;             /* exported value = value × scale (0 = 1); JSON and logs unscaled */
};

#define STAT_N(t) (sizeof(t) / sizeof((t)[0]))

/* The value of `d` in `obj`, unscaled. */
double stat_value(const struct stat_def *d, const void *obj);

/* Set every entry of table `t` (n entries) as a member of JSON object `j` (integers for integer
 * fields, reals for doubles, booleans for bools). */
void stats_json(json_t *j, const struct stat_def *t, size_t n, const void *obj);

/* Write " key=value" for every entry into `buf` (NUL-terminated, truncated at `cap`); returns
 * the length written. */
size_t stats_log(char *buf, size_t cap, const struct stat_def *t, size_t n, const void *obj);

/* Prometheus text being built. Zero it to start; free `buf` when done. */
struct prom {
    char *buf;
    size_t len, cap;
    bool oom;                 /* an append failed: the text is incomplete */
};

/* Append printf-style text. */
void prom_printf(struct prom *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* HELP and TYPE lines of family `prefix``d->metric`. */
void prom_family(struct prom *p, const char *prefix, const struct stat_def *d);

/* One sample of `d` in `obj`: `prefix``metric`{labels} value. `labels` is "" or
 * `name="value",...` (values escaped by prom_label). */
void prom_sample(struct prom *p, const char *prefix, const struct stat_def *d, const char *labels,
                 const void *obj);

/* A family and one sample per object: objs[i] with labels[i], for the whole table. Families with
 * no object still get HELP/TYPE. */
void prom_table(struct prom *p, const char *prefix, const struct stat_def *t, size_t n,
                const void *const *objs, const char *const *labels, size_t n_objs);

/* Write `name="value"` into out (cap bytes), escaping \, " and newline as the format requires;
 * returns the length written (truncated values stay valid). */
size_t prom_label(char *out, size_t cap, const char *name, const char *value);

/* Histograms: the family's HELP/TYPE once (prom_histogram_head), then one series per label set:
 * fixed upper bounds `le` (n_le, ascending, in the exported unit; +Inf is added), `counts` holds
 * n_le + 1 non-cumulative bucket counts (the last for > le[n_le-1]), `sum` the sum of
 * observations in the exported unit. */
void prom_histogram_head(struct prom *p, const char *prefix, const char *metric, const char *help);
void prom_histogram_series(struct prom *p, const char *prefix, const char *metric,
                           const char *labels, const double *le, size_t n_le,
                           const uint64_t *counts, double sum);

/* This process's CPU time (s, user + system), resident memory (bytes) and open descriptors,
 * from /proc/self; zeros where a file cannot be read. */
struct proc_stats {
    double cpu_s;
    uint64_t rss_bytes;
    uint32_t fds;
    double start_s;   /* start time, seconds since the epoch */
};
void proc_self(struct proc_stats *out);

/* The process's own standard metrics (process_cpu_seconds_total, process_resident_memory_bytes,
 * process_open_fds, process_start_time_seconds), from /proc/self. */
void prom_process(struct prom *p);

#endif
