/* status.c - the core's state as JSON (GET /, docs/architecture.md §7.7) and as `stats` log
 * lines: mounts, their streams (merge state: active, offsets, reorder counters) and relay
 * links. The HTTP side adds only what it owns (listener counts). */
#include <stdio.h>
#include "core.h"

static json_t *stream_json(const struct emount *m, const struct estream *s, double now)
{
    return json_pack("{s:s, s:s, s:I, s:b, s:f, s:f, s:s, s:f, s:{s:I, s:I, s:I, s:I, s:I, s:I}}",
                     "encoder", s->encoder, "session", "", "priority", (json_int_t)s->priority,
                     "active", m->active == s, "idle_s", now - s->last_rx, "offset_ms",
                     s->off_us / 1000.0, "alignment", align_result_name(s->off_how),
                     "alignment_corr", s->off_corr, "counters", "received",
                     (json_int_t)s->ro.received, "duplicates", (json_int_t)s->ro.duplicates,
                     "lost", (json_int_t)s->ro.lost, "late", (json_int_t)s->ro.late, "frames_out",
                     (json_int_t)s->frames_out, "patched", (json_int_t)s->patched);
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
    uint64_t first = rewind_first_pts(&m->rw);
    json_t *j = json_pack("{s:s, s:s, s:s, s:I, s:I, s:I, s:I, s:s, s:f, s:I, s:I, s:I, s:I, s:o}",
                     "mount", m->name, "url", "", "codec",
                     m->codec == FC_CODEC_ADTS ? "aac" : "mp3", "sample_rate",
                     (json_int_t)m->sample_rate, "channels", (json_int_t)m->channels, "bitrate",
                     (json_int_t)m->bitrate, "listeners", (json_int_t)listeners, "title",
                     m->title, "buffer_s",
                     first ? (m->rw.end_pts_us - first) / 1e6 : 0.0, "frames_out",
                     (json_int_t)m->frames_out, "lost", (json_int_t)m->lost, "gaps",
                     (json_int_t)m->gaps, "switches", (json_int_t)m->switches, "streams", streams);
    if (j) {
        json_object_set_new(j, "patched", json_integer((json_int_t)m->patched));
        json_object_set_new(j, "failovers", json_integer((json_int_t)m->failovers));
        json_object_set_new(j, "failbacks", json_integer((json_int_t)m->failbacks));
        json_object_set_new(j, "active", json_string(m->active ? m->active->encoder : ""));
    }
    return j;
}

static json_t *relay_json(const struct erelay *r)
{
    return json_pack("{s:s, s:b, s:I, s:I, s:I, s:I, s:I, s:I}", "relay", r->addr.text, "up",
                     r->link.up, "frames", (json_int_t)r->frames, "first_copies",
                     (json_int_t)r->first_copies, "bad_tags", (json_int_t)r->link.st.bad_tags,
                     "bad_msgs", (json_int_t)r->link.st.bad_msgs, "connects",
                     (json_int_t)r->link.st.connects, "disconnects",
                     (json_int_t)r->link.st.disconnects);
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
    return json_pack("{s:I, s:I, s:I, s:I}", "frames_in", (json_int_t)e->c.frames_in,
                     "first_copies", (json_int_t)e->c.first_copies, "skew_drops",
                     (json_int_t)e->c.skew_drops, "stream_drops", (json_int_t)e->c.stream_drops);
}

void core_log_stats(struct core *e)
{
    for (struct emount *m = e->mounts; m; m = m->next)
        log_info(&e->log,
                 "stats mount=%s listeners=%u frames_out=%llu lost=%llu gaps=%llu patched=%llu "
                 "failovers=%llu failbacks=%llu buffer_bytes=%llu",
                 m->name, e->hooks.listeners ? e->hooks.listeners(e->hooks.ctx, m) : 0,
                 (unsigned long long)m->frames_out, (unsigned long long)m->lost,
                 (unsigned long long)m->gaps, (unsigned long long)m->patched,
                 (unsigned long long)m->failovers, (unsigned long long)m->failbacks,
                 (unsigned long long)rewind_bytes_held(&m->rw));
    for (struct emount *m = e->mounts; m; m = m->next)
        for (struct estream *s = m->streams; s; s = s->next)
            log_info(&e->log,
                     "stats mount=%s encoder=%s priority=%u received=%llu duplicates=%llu "
                     "late=%llu lost=%llu patched=%llu offset_ms=%.1f",
                     m->name, s->encoder, s->priority, (unsigned long long)s->ro.received,
                     (unsigned long long)s->ro.duplicates, (unsigned long long)s->ro.late,
                     (unsigned long long)s->ro.lost, (unsigned long long)s->patched,
                     s->off_us / 1000.0);
    for (int i = 0; i < e->opt.n_relays; i++) {
        const struct erelay *r = &e->relays[i];
        log_info(&e->log, "stats relay=%s up=%d frames=%llu first_copies=%llu bad_tags=%llu",
                 r->addr.text, r->link.up, (unsigned long long)r->frames,
                 (unsigned long long)r->first_copies, (unsigned long long)r->link.st.bad_tags);
    }
}
