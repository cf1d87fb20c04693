/* metrics.c - the shim's counters, described once (shared/stats.h): the `stats` log lines and
 * GET /metrics on --metrics HOST:PORT (Prometheus text format 0.0.4; docs/architecture.md §7.8).
 * Labels: mount and encoder on every family, target on the per-target ones. */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include "shim.h"
#include "stats.h"

#define PREFIX "framecast_shim_"

static const struct stat_def shim_stats[] = {
    {"frames", "frames_sent_total", "Frames stamped and sent to the targets.", STAT_COUNTER,
     STAT_U64, offsetof(struct shim, frames_sent), NULL, 0},
    {"skipped_overlap", "frames_skipped_total",
     "Frames of a reconnect's burst skipped: already sent.", STAT_COUNTER, STAT_U64,
     offsetof(struct shim, frames_skipped), NULL, 0},
    {"reanchors", "pts_reanchors_total", "Times the PTS anchor moved forward.", STAT_COUNTER,
     STAT_U64, offsetof(struct shim, stamp.reanchors), NULL, 0},
    {"pull_connects", "pull_connects_total", "Connections made to the --pull mount.",
     STAT_COUNTER, STAT_U64, offsetof(struct shim, connects), NULL, 0},
    {"icy_bad_blocks", "icy_bad_blocks_total", "ICY blocks dropped: no StreamTitle/StreamUrl.",
     STAT_COUNTER, STAT_U64, offsetof(struct shim, icy_bad_blocks), NULL, 0},
};

static double target_up(const void *obj)
{
    const struct target *t = obj;
    return t->udp_fd >= 0 ? 1 : t->link.up;
}

static const struct stat_def target_stats[] = {
    {"sent", "target_frames_sent_total", "Frames handed to the target's socket or queue.",
     STAT_COUNTER, STAT_U64, offsetof(struct target, sent), NULL, 0},
    {"dropped", "target_frames_dropped_total", "Frames dropped: queue full or send error.",
     STAT_COUNTER, STAT_U64, offsetof(struct target, dropped), NULL, 0},
    {"up", "target_up", "1 while the target's link is up (UDP: always).", STAT_GAUGE,
     STAT_DOUBLE, 0, target_up, 0},
};

void shim_log_stats(struct shim *s)
{
    char buf[512];
    stats_log(buf, sizeof(buf), shim_stats, STAT_N(shim_stats), s);
    log_info(&s->log, "stats mount=%s%s", s->opt.mount, buf);
    for (int i = 0; i < s->n_targets; i++) {
        stats_log(buf, sizeof(buf), target_stats, STAT_N(target_stats), &s->targets[i]);
        log_info(&s->log, "stats target=%s%s", s->targets[i].addr.text, buf);
    }
}

char *shim_metrics(void *ctx, size_t *len)
{
    struct shim *s = ctx;
    struct prom p = {0};
    char base[2 * (WIRE_MOUNT_MAX + WIRE_ENCODER_MAX) + 32];
    size_t k = prom_label(base, sizeof(base), "mount", s->opt.mount);
    base[k++] = ',';
    prom_label(base + k, sizeof(base) - k, "encoder", s->opt.encoder);
    const void *obj = s;
    const char *lab = base;
    prom_table(&p, PREFIX, shim_stats, STAT_N(shim_stats), &obj, &lab, 1);
    const void *objs[SHIM_MAX_TARGETS];
    char tl[SHIM_MAX_TARGETS][sizeof(base) + 200];
    const char *labels[SHIM_MAX_TARGETS];
    for (int i = 0; i < s->n_targets; i++) {
        size_t n = (size_t)snprintf(tl[i], sizeof(tl[i]), "%s,", base);
        prom_label(tl[i] + n, sizeof(tl[i]) - n, "target", s->targets[i].addr.text);
        objs[i] = &s->targets[i];
        labels[i] = tl[i];
    }
    prom_table(&p, PREFIX, target_stats, STAT_N(target_stats), objs, labels, (size_t)s->n_targets);
    prom_process(&p);
    if (p.oom) {
        free(p.buf);
        return NULL;
    }
    *len = p.len;
    return p.buf;
}
