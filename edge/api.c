/* api.c - JSON answers: GET / lists mounts, their streams and relay links. */
#include <jansson.h>
#include <time.h>
#include "edge.h"

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

static json_t *mount_json(const struct emount *m, double now)
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
                     (json_int_t)m->bitrate, "listeners", (json_int_t)m->n_listeners, "title",
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

char *edge_api_mounts_json(struct edge *e)
{
    double now = ev_now(e->loop);
    json_t *mounts = json_array(), *relays = json_array();
    for (const struct emount *m = e->mounts; m; m = m->next) {
        if (!m->has_audio)
            continue; /* not playable yet: listed once it is */
        json_t *jm = mount_json(m, now);
        char url[WIRE_MOUNT_MAX + 2];
        snprintf(url, sizeof(url), "/%s", m->name);
        json_object_set_new(jm, "url", json_string(url));
        json_array_append_new(mounts, jm);
    }
    for (int i = 0; i < e->opt.n_relays; i++)
        json_array_append_new(relays, relay_json(&e->relays[i]));
    json_t *root = json_pack("{s:o, s:o, s:I, s:{s:I, s:I, s:I, s:I}}", "mounts", mounts,
                             "relays", relays, "listeners", (json_int_t)e->n_listeners,
                             "counters", "frames_in", (json_int_t)e->c.frames_in, "first_copies",
                             (json_int_t)e->c.first_copies, "skew_drops",
                             (json_int_t)e->c.skew_drops, "stream_drops",
                             (json_int_t)e->c.stream_drops);
    if (!root)
        return NULL;
    char *text = json_dumps(root, JSON_INDENT(2));
    json_decref(root);
    return text;
}

static void iso_time(uint64_t pts_us, char *buf, size_t n)
{
    time_t t = (time_t)(pts_us / 1000000);
    struct tm tm;
    gmtime_r(&t, &tm);
    size_t k = strftime(buf, n, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(buf + k, n - k, ".%03uZ", (unsigned)(pts_us % 1000000 / 1000));
}

char *edge_api_rewind_json(struct emount *m)
{
    char first[40], last[40];
    uint64_t f = rewind_first_pts(&m->rw), l = m->rw.end_pts_us;
    iso_time(f, first, sizeof(first));
    iso_time(l, last, sizeof(last));
    json_t *root = json_pack("{s:s, s:I, s:I, s:s, s:s, s:f, s:I, s:I, s:I, s:f}", "mount",
                             m->name, "first_pts_us", (json_int_t)f, "last_pts_us", (json_int_t)l,
                             "first", first, "last", last, "seconds", f ? (l - f) / 1e6 : 0.0,
                             "bytes", (json_int_t)rewind_bytes_held(&m->rw), "frames",
                             (json_int_t)m->rw.frames_held, "memory_bytes",
                             (json_int_t)rewind_mem_bytes(&m->rw), "keep_seconds",
                             m->rw.keep_us / 1e6);
    if (!root)
        return NULL;
    char *text = json_dumps(root, JSON_INDENT(2));
    json_decref(root);
    return text;
}
