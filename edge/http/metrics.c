/* metrics.c - GET /metrics: Prometheus text exposition format 0.0.4 (docs/architecture.md §7.8).
 *
 * The core's families (status.c: mounts, streams, relay links, counters), then the HTTP side's,
 * one series per process serving listeners (`worker` label: 0 without --workers, else 1..N, as
 * reported by the workers every 0.25 s), then the answering process's own. Counters come from
 * the same tables as the JSON at / and the stats log lines. Cardinality: mounts × encoders,
 * relays, workers × mounts × 2 protocols; never a listener. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "../analytics/analytics.h"
#include "http.h"
#include "stats.h"

#define PREFIX "framecast_edge_"
#define SNAPS_MAX 65

static const double ttfb_le[HTTP_TTFB_BUCKETS] = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                                  0.1,   0.25,   0.5,   1,    2.5};

void http_ttfb(struct elistener *l)
{
    if (l->accepted <= 0)
        return;
    double s = ev_time() - l->accepted;
    l->accepted = 0;
    size_t b = 0;
    while (b < HTTP_TTFB_BUCKETS && s > ttfb_le[b])
        b++;
    l->http->c.ttfb[b]++;
    l->http->c.ttfb_sum_s += s;
}

void http_count_close(struct ehttp *h, const char *why)
{
    if (strcmp(why, "listener disconnected") == 0)
        h->c.closed_client++;
    else if (strstr(why, "lag") || strstr(why, "fell behind"))
        h->c.closed_lag++;
    else if (strcmp(why, "download complete") == 0)
        h->c.closed_done++;
    else if (strcmp(why, "shutdown") == 0)
        h->c.closed_shutdown++;
    else
        h->c.closed_error++;
}

#define C(field) STAT_U64, offsetof(struct http_snap, c.field), NULL, 0

static const struct stat_def http_stats[] = {
    {"up", "worker_up", "1 while the process serving listeners runs.", STAT_GAUGE, STAT_BOOL,
     offsetof(struct http_snap, up), NULL, 0},
    {"restarts", "worker_restarts_total", "Times the worker was forked again after it died.",
     STAT_COUNTER, STAT_U32, offsetof(struct http_snap, restarts), NULL, 0},
    {"connections", "http_connections", "Open HTTP connections.", STAT_GAUGE, STAT_U32,
     offsetof(struct http_snap, connections), NULL, 0},
    {"cpu_s", "worker_cpu_seconds_total", "CPU time of the process serving these listeners.",
     STAT_COUNTER, STAT_DOUBLE, offsetof(struct http_snap, cpu_s), NULL, 0},
    {"rss_bytes", "worker_resident_memory_bytes", "Its resident memory (shared slabs included).",
     STAT_GAUGE, STAT_U64, offsetof(struct http_snap, rss_bytes), NULL, 0},
    {"fds", "worker_open_fds", "Its open file descriptors.", STAT_GAUGE, STAT_U32,
     offsetof(struct http_snap, fds), NULL, 0},
    {"listeners_total", "listener_connections_total", "Listeners that started streaming.",
     STAT_COUNTER, C(listeners_total)},
    {"http_errors", "http_errors_total", "HTTP answers with status 400 or above.", STAT_COUNTER,
     C(http_errors)},
    {"bytes_sent", "sent_bytes_total", "Bytes written to streaming listeners.", STAT_COUNTER,
     C(bytes_sent)},
    {"hls_segments", "hls_segments_total", "HLS segments answered.", STAT_COUNTER,
     C(hls_segments)},
    {"prerolls", "prerolls_total", "Preroll clips begun before a live stream.", STAT_COUNTER,
     C(prerolls)},
    {"preroll_failures", "preroll_failures_total",
     "Ad server requests that gave no preroll (timeout, error, bad VAST, no fitting media).",
     STAT_COUNTER, C(preroll_failures)},
};

static const struct {
    const char *reason;
    size_t off;
} closes[] = {
    {"client", offsetof(struct http_snap, c.closed_client)},
    {"lag", offsetof(struct http_snap, c.closed_lag)},
    {"done", offsetof(struct http_snap, c.closed_done)},
    {"error", offsetof(struct http_snap, c.closed_error)},
    {"shutdown", offsetof(struct http_snap, c.closed_shutdown)},
};

static size_t local_snaps(struct ehttp *h, struct http_snap *out)
{
    if (h->remote_snaps)
        return h->remote_snaps(h->extra_ctx, out, SNAPS_MAX);
    struct proc_stats ps;
    proc_self(&ps);
    out[0] = (struct http_snap){.worker = h->worker, .up = true, .connections = h->n_listeners,
                                .cpu_s = ps.cpu_s, .rss_bytes = ps.rss_bytes, .fds = ps.fds,
                                .c = h->c};
    return 1;
}

static void listeners_family(struct ehttp *h, struct prom *p)
{
    prom_printf(p, "# HELP " PREFIX "listeners Listeners streaming now, by protocol.\n"
                   "# TYPE " PREFIX "listeners gauge\n");
    size_t cap = 1024, n;
    struct http_mount_snap *ms = calloc(cap, sizeof(*ms));
    if (!ms) {
        p->oom = true;
        return;
    }
    if (h->remote_mount_snaps) {
        n = h->remote_mount_snaps(h->extra_ctx, ms, cap);
    } else {
        n = 0;
        for (const struct hmount *hm = h->hmounts; hm && n < cap; hm = hm->next)
            ms[n++] = (struct http_mount_snap){.worker = h->worker, .m = hm->m,
                                               .listeners = hm->n_listeners, .icy = hm->n_icy};
    }
    for (size_t i = 0; i < n; i++) {
        char mount[2 * WIRE_MOUNT_MAX + 16];
        prom_label(mount, sizeof(mount), "mount", ms[i].m->name);
        prom_printf(p, PREFIX "listeners{%s,protocol=\"icy\",worker=\"%u\"} %u\n", mount,
                    ms[i].worker, ms[i].icy);
        prom_printf(p, PREFIX "listeners{%s,protocol=\"raw\",worker=\"%u\"} %u\n", mount,
                    ms[i].worker, ms[i].listeners - ms[i].icy);
    }
    free(ms);
}

static void http_families(struct ehttp *h, struct prom *p)
{
    struct http_snap snaps[SNAPS_MAX];
    size_t n = local_snaps(h, snaps);
    char lab[SNAPS_MAX][24];
    const void *objs[SNAPS_MAX];
    const char *labels[SNAPS_MAX];
    for (size_t i = 0; i < n; i++) {
        snprintf(lab[i], sizeof(lab[i]), "worker=\"%u\"", snaps[i].worker);
        objs[i] = &snaps[i];
        labels[i] = lab[i];
    }
    prom_table(p, PREFIX, http_stats, STAT_N(http_stats), objs, labels, n);
    prom_printf(p, "# HELP " PREFIX "listener_disconnects_total Streaming listeners closed, by "
                   "reason.\n# TYPE " PREFIX "listener_disconnects_total counter\n");
    for (size_t i = 0; i < n; i++)
        for (size_t k = 0; k < sizeof(closes) / sizeof(closes[0]); k++) {
            uint64_t v;
            memcpy(&v, (const char *)&snaps[i] + closes[k].off, sizeof(v));
            prom_printf(p, PREFIX "listener_disconnects_total{reason=\"%s\",%s} %llu\n",
                        closes[k].reason, lab[i], (unsigned long long)v);
        }
    prom_histogram_head(p, PREFIX, "ttfb_seconds",
                        "Time from accepting a connection to its first response byte.");
    for (size_t i = 0; i < n; i++)
        prom_histogram_series(p, PREFIX, "ttfb_seconds", lab[i], ttfb_le, HTTP_TTFB_BUCKETS,
                              snaps[i].c.ttfb, snaps[i].c.ttfb_sum_s);
    listeners_family(h, p);
}

char *edge_http_metrics(struct ehttp *h, size_t *len)
{
    struct prom p = {0};
    core_metrics(h->core, &p, PREFIX);
    http_families(h, &p);
    if (h->an)
        analytics_metrics(h->an, &p, PREFIX);
    prom_process(&p);
    if (p.oom) {
        free(p.buf);
        return NULL;
    }
    *len = p.len;
    return p.buf;
}
