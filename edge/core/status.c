/* status.c - the core's state as JSON (GET /, docs/architecture.md §7.7) and as `stats` log
 * lines: mounts, their streams (merge state: active, offsets, reorder counters) and relay
 * links. The HTTP side adds only what it owns (listener counts). */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include "core.h"
#include "stats.h"

#define F(type, field) STAT_U64, offsetof(type, field), NULL, 0
#define FB(type, field) STAT_BOOL, offsetof(type, field), NULL, 0

static double rewind_seconds(const void *obj)
{
    const struct emount *m = obj;
    uint64_t first = rewind_first_pts(&m->rw);
    return first ? (m->rw.end_pts_us - first) / 1e6 : 0.0;
}

static double rewind_bytes(const void *obj)
{
    return (double)rewind_bytes_held(&((const struct emount *)obj)->rw);
}

static double offset_ms(const void *obj)
{
    return ((const struct estream *)obj)->off_us / 1000.0;
}

/* Every counter of a mount (docs/architecture.md §7.7, §7.8): JSON, stats lines, /metrics. */
const struct stat_def core_mount_stats[] = {
    {"frames_out", "mount_frames_out_total", "Frames appended to the mount's rewind buffer.",
     STAT_COUNTER, F(struct emount, frames_out)},
    {"lost", "mount_frames_lost_total", "Frames lost on every path and not patched.",
     STAT_COUNTER, F(struct emount, lost)},
    {"gaps", "mount_gaps_total", "Runs of lost frames in the output.", STAT_COUNTER,
     F(struct emount, gaps)},
    {"switches", "mount_switches_total", "Changes of the encoder feeding the output.",
     STAT_COUNTER, F(struct emount, switches)},
    {"patched", "mount_frames_patched_total", "Lost frames replaced by a backup encoder's.",
     STAT_COUNTER, F(struct emount, patched)},
    {"failovers", "mount_failovers_total", "Switches away from a better encoder.", STAT_COUNTER,
     F(struct emount, failovers)},
    {"failbacks", "mount_failbacks_total", "Switches back to a better encoder.", STAT_COUNTER,
     F(struct emount, failbacks)},
    {"discontinuities", "mount_discontinuities_total",
     "Timeline or codec discontinuities in the output.", STAT_COUNTER,
     F(struct emount, discontinuities)},
    {"rewind_bytes", "mount_rewind_bytes", "Audio bytes held in the rewind buffer.", STAT_GAUGE,
     STAT_DOUBLE, 0, rewind_bytes, 0},
    {"buffer_s", "mount_rewind_seconds", "Seconds of audio held in the rewind buffer.",
     STAT_GAUGE, STAT_DOUBLE, 0, rewind_seconds, 0},
};
const size_t core_mount_stats_n = STAT_N(core_mount_stats);

/* A stream's counters (JSON: its "counters" object). */
const struct stat_def core_stream_stats[] = {
    {"received", "stream_frames_received_total", "Frames of the stream received (first copies).",
     STAT_COUNTER, F(struct estream, ro.received)},
    {"duplicates", "stream_frames_duplicate_total", "Copies of frames already received.",
     STAT_COUNTER, F(struct estream, ro.duplicates)},
    {"lost", "stream_frames_lost_total", "Sequence numbers never received in time.",
     STAT_COUNTER, F(struct estream, ro.lost)},
    {"late", "stream_frames_late_total", "Frames received after their deadline.", STAT_COUNTER,
     F(struct estream, ro.late)},
    {"frames_out", "stream_frames_out_total", "Frames this stream gave the mount's output.",
     STAT_COUNTER, F(struct estream, frames_out)},
    {"patched", "stream_frames_patched_total", "Frames it gave to patch another stream's gaps.",
     STAT_COUNTER, F(struct estream, patched)},
};
const size_t core_stream_stats_n = STAT_N(core_stream_stats);

/* A relay link's counters. */
const struct stat_def core_relay_stats[] = {
    {"up", "relay_up", "1 while the link to the relay is up.", STAT_GAUGE,
     FB(struct erelay, link.up)},
    {"frames", "relay_frames_total", "FRAME messages received on the link.", STAT_COUNTER,
     F(struct erelay, frames)},
    {"first_copies", "relay_first_copies_total", "Frames that were new to the edge.",
     STAT_COUNTER, F(struct erelay, first_copies)},
    {"bad_tags", "relay_bad_tags_total", "Messages dropped: tag did not verify.", STAT_COUNTER,
     F(struct erelay, link.st.bad_tags)},
    {"other_key", "relay_other_key_total",
     "Messages verified with a key other than the first --key (a key rotation under way).",
     STAT_COUNTER, F(struct erelay, link.st.other_key)},
    {"bad_msgs", "relay_bad_messages_total", "Messages dropped: malformed.", STAT_COUNTER,
     F(struct erelay, link.st.bad_msgs)},
    {"connects", "relay_connects_total", "Connections made to the relay.", STAT_COUNTER,
     F(struct erelay, link.st.connects)},
    {"disconnects", "relay_disconnects_total", "Connections to the relay lost.", STAT_COUNTER,
     F(struct erelay, link.st.disconnects)},
};
const size_t core_relay_stats_n = STAT_N(core_relay_stats);

/* The core's own counters. */
const struct stat_def core_counter_stats[] = {
    {"frames_in", "frames_received_total", "FRAME messages received from all relays.",
     STAT_COUNTER, F(struct core_counters, frames_in)},
    {"first_copies", "frames_first_copies_total", "Frames new to the edge.", STAT_COUNTER,
     F(struct core_counters, first_copies)},
    {"skew_drops", "frames_skew_dropped_total", "Frames dropped: PTS too far from now.",
     STAT_COUNTER, F(struct core_counters, skew_drops)},
    {"stream_drops", "frames_stream_dropped_total", "Frames dropped: too many sessions.",
     STAT_COUNTER, F(struct core_counters, stream_drops)},
};
const size_t core_counter_stats_n = STAT_N(core_counter_stats);

static json_t *stream_json(const struct emount *m, const struct estream *s, double now)
{
    json_t *counters = json_object();
    stats_json(counters, core_stream_stats, core_stream_stats_n, s);
    return json_pack("{s:s, s:s, s:I, s:b, s:f, s:f, s:s, s:f, s:o}", "encoder", s->encoder,
                     "session", "", "priority", (json_int_t)s->priority, "active", m->active == s,
                     "idle_s", now - s->last_rx, "offset_ms", s->off_us / 1000.0, "alignment",
                     align_result_name(s->off_how), "alignment_corr", s->off_corr, "counters",
                     counters);
}

json_t *core_mount_json(const struct emount *m, double now, uint32_t listeners)
{
    json_t *streams = json_array();
    for (const struct estream *s = m->streams; s; s = s->next) {
        json_t *js = stream_json(m, s, now);
        char sid[17];
        snprintf(sid, sizeof(sid), "%016llx", (unsigned long long)s->session);
        json_object_set_new(js, "session", json_string(sid));
        json_object_set_new(js, "alignment_agreeing", json_integer((json_int_t)s->cand_n));
        json_object_set_new(js, "first_time", json_boolean(s->first_time));
        json_array_append_new(streams, js);
    }
    json_t *j = json_pack("{s:s, s:s, s:s, s:I, s:I, s:I, s:I, s:s, s:o}", "mount", m->name,
                          "url", "", "codec", m->codec == FC_CODEC_ADTS ? "aac" : "mp3",
                          "sample_rate", (json_int_t)m->sample_rate, "channels",
                          (json_int_t)m->channels, "bitrate", (json_int_t)m->bitrate,
                          "listeners", (json_int_t)listeners, "title", m->title, "streams",
                          streams);
    if (j) {
        stats_json(j, core_mount_stats, core_mount_stats_n, m);
        json_object_set_new(j, "active", json_string(m->active ? m->active->encoder : ""));
    }
    return j;
}

static json_t *relay_json(const struct erelay *r)
{
    json_t *j = json_pack("{s:s}", "relay", r->addr.text);
    if (j)
        stats_json(j, core_relay_stats, core_relay_stats_n, r);
    return j;
}

json_t *core_relays_json(const struct core *e)
{
    json_t *relays = json_array();
    for (int i = 0; i < e->opt.n_relays; i++)
        json_array_append_new(relays, relay_json(&e->relays[i]));
    return relays;
}

json_t *core_counters_json(const struct core *e)
{
    json_t *j = json_object();
    stats_json(j, core_counter_stats, core_counter_stats_n, &e->c);
    return j;
}

void core_log_stats(struct core *e)
{
    char buf[1024];
    for (struct emount *m = e->mounts; m; m = m->next) {
        stats_log(buf, sizeof(buf), core_mount_stats, core_mount_stats_n, m);
        log_info(&e->log, "stats mount=%s listeners=%u%s", m->name,
                 e->hooks.listeners ? e->hooks.listeners(e->hooks.ctx, m) : 0, buf);
    }
    for (struct emount *m = e->mounts; m; m = m->next)
        for (struct estream *s = m->streams; s; s = s->next) {
            stats_log(buf, sizeof(buf), core_stream_stats, core_stream_stats_n, s);
            log_info(&e->log, "stats mount=%s encoder=%s priority=%u%s offset_ms=%.1f", m->name,
                     s->encoder, s->priority, buf, offset_ms(s));
        }
    for (int i = 0; i < e->opt.n_relays; i++) {
        const struct erelay *r = &e->relays[i];
        stats_log(buf, sizeof(buf), core_relay_stats, core_relay_stats_n, r);
        log_info(&e->log, "stats relay=%s%s", r->addr.text, buf);
    }
}

/* ---- Prometheus: the core's families (edge/http/metrics.c adds the HTTP side's) ---- */

static double stream_offset_s(const void *obj)
{
    return ((const struct estream *)obj)->off_us / 1e6;
}

static double stream_active(const void *obj)
{
    const struct estream *s = obj;
    return s->mount->active == s;
}

static const struct stat_def stream_gauges[] = {
    {"offset_s", "stream_offset_seconds",
     "The encoder's content offset against the mount's reference encoder.", STAT_GAUGE,
     STAT_DOUBLE, 0, stream_offset_s, 0},
    {"active", "stream_active", "1 while the stream feeds the mount's output.", STAT_GAUGE,
     STAT_DOUBLE, 0, stream_active, 0},
};

#define CORE_LABEL_MAX (2 * (WIRE_MOUNT_MAX + WIRE_ENCODER_MAX) + 64)

/* Scratch for one table's samples: objects and their label strings. */
struct prom_rows {
    const void **objs;
    const char **labels;
    char (*lab)[CORE_LABEL_MAX];
    size_t n, cap;
};

static bool rows_init(struct prom_rows *r, size_t cap)
{
    r->n = 0;
    r->cap = cap ? cap : 1;
    r->objs = calloc(r->cap, sizeof(*r->objs));
    r->labels = calloc(r->cap, sizeof(*r->labels));
    r->lab = calloc(r->cap, sizeof(*r->lab));
    return r->objs && r->labels && r->lab;
}

static void rows_free(struct prom_rows *r)
{
    free(r->objs);
    free(r->labels);
    free(r->lab);
}

static void row_add(struct prom_rows *r, const void *obj, const char *k1, const char *v1,
                    const char *k2, const char *v2)
{
    if (r->n == r->cap)
        return;
    size_t k = prom_label(r->lab[r->n], CORE_LABEL_MAX, k1, v1);
    if (k2 && k + 2 < CORE_LABEL_MAX) {
        r->lab[r->n][k++] = ',';
        prom_label(r->lab[r->n] + k, CORE_LABEL_MAX - k, k2, v2);
    }
    r->objs[r->n] = obj;
    r->labels[r->n] = r->lab[r->n];
    r->n++;
}

void core_metrics(const struct core *e, struct prom *p, const char *prefix)
{
    size_t n_streams = 0;
    for (const struct emount *m = e->mounts; m; m = m->next)
        n_streams += m->n_streams;
    struct prom_rows r;
    if (!rows_init(&r, e->n_mounts + n_streams + (size_t)e->opt.n_relays)) {
        rows_free(&r);
        p->oom = true;
        return;
    }
    for (const struct emount *m = e->mounts; m; m = m->next)
        row_add(&r, m, "mount", m->name, NULL, NULL);
    prom_table(p, prefix, core_mount_stats, core_mount_stats_n, r.objs, r.labels, r.n);
    r.n = 0;
    for (const struct emount *m = e->mounts; m; m = m->next)
        for (const struct estream *s = m->streams; s; s = s->next)
            row_add(&r, s, "mount", m->name, "encoder", s->encoder);
    prom_table(p, prefix, core_stream_stats, core_stream_stats_n, r.objs, r.labels, r.n);
    prom_table(p, prefix, stream_gauges, STAT_N(stream_gauges), r.objs, r.labels, r.n);
    r.n = 0;
    for (int i = 0; i < e->opt.n_relays; i++)
        row_add(&r, &e->relays[i], "relay", e->relays[i].addr.text, NULL, NULL);
    prom_table(p, prefix, core_relay_stats, core_relay_stats_n, r.objs, r.labels, r.n);
    rows_free(&r);
    const void *c = &e->c;
    const char *none = "";
    prom_table(p, prefix, core_counter_stats, core_counter_stats_n, &c, &none, 1);
}
