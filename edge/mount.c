/* mount.c - streams per mount: merge, choose the active stream, feed the rewind buffer. */
#include <stdlib.h>
#include <string.h>
#include "clock.h"
#include "edge.h"
#include "framer.h"

struct emount *edge_mount_find(struct edge *e, const char *name, size_t len)
{
    for (struct emount *m = e->mounts; m; m = m->next)
        if (strlen(m->name) == len && memcmp(m->name, name, len) == 0)
            return m;
    return NULL;
}

static struct emount *mount_new(struct edge *e, const char *name, enum fc_codec codec)
{
    struct emount *m = calloc(1, sizeof(*m));
    if (!m)
        return NULL;
    if (rewind_init(&m->rw, codec, e->opt.rewind_us) != FC_OK) {
        free(m);
        return NULL;
    }
    snprintf(m->name, sizeof(m->name), "%s", name);
    m->edge = e;
    m->codec = codec;
    list_init(&m->listeners);
    list_init(&m->waiting);
    m->next = e->mounts;
    e->mounts = m;
    e->n_mounts++;
    log_info(&e->log, "mount new mount=%s", m->name);
    return m;
}

static struct estream *stream_find(struct emount *m, const struct wire_frame *f)
{
    for (struct estream *s = m->streams; s; s = s->next)
        if (s->session == f->session && strcmp(s->encoder, f->encoder) == 0)
            return s;
    return NULL;
}

static struct estream *stream_new(struct edge *e, struct emount *m, const struct wire_frame *f)
{
    struct estream *s = calloc(1, sizeof(*s));
    if (!s)
        return NULL;
    if (reorder_init(&s->ro, e->opt.reorder_us) != FC_OK) {
        free(s);
        return NULL;
    }
    s->mount = m;
    memcpy(s->encoder, f->encoder, sizeof(s->encoder));
    s->session = f->session;
    s->priority = f->priority;
    s->first_rx = ev_now(e->loop);
    s->next = m->streams;
    m->streams = s;
    m->n_streams++;
    log_info(&e->log, "stream new mount=%s encoder=%s session=%016llx priority=%u", m->name,
             s->encoder, (unsigned long long)s->session, s->priority);
    return s;
}

static void stream_free(struct estream *s)
{
    reorder_free(&s->ro);
    free(s);
}

static bool pts_in_range(const struct edge *e, uint64_t pts_us)
{
    uint64_t now = clock_wall_us(), skew = (uint64_t)(e->opt.max_skew_s * 1e6);
    return pts_us + skew >= now && pts_us <= now + skew;
}

static void drop_warn(struct edge *e, struct erelay *from, const char *why,
                      const struct wire_frame *f)
{
    uint64_t suppressed;
    if (log_limit_pass(&e->ll, ev_now(e->loop), &suppressed))
        log_warn(&e->log, "peer=%s dropped frame: %s mount=%s encoder=%s seq=%llu suppressed=%llu",
                 from ? from->link.peer : "?", why, f->mount, f->encoder,
                 (unsigned long long)f->seq, (unsigned long long)suppressed);
}

static bool alive(const struct edge *e, const struct estream *s)
{
    return ev_now(e->loop) - s->last_rx < e->opt.stream_timeout_s;
}

/* The alive stream with the lowest priority number (newest first among equals). */
static struct estream *best_stream(struct edge *e, struct emount *m)
{
    struct estream *best = NULL;
    for (struct estream *s = m->streams; s; s = s->next) {
        if (!alive(e, s))
            continue;
        if (!best || s->priority < best->priority ||
            (s->priority == best->priority && s->first_rx > best->first_rx))
            best = s;
    }
    return best;
}

static void choose_active(struct edge *e, struct emount *m)
{
    struct estream *best = best_stream(e, m);
    struct estream *cur = m->active;
    if (cur && alive(e, cur) && (!best || best->priority >= cur->priority))
        return;
    if (!best || best == cur)
        return;
    log_info(&e->log, "event=%s mount=%s from=%s to=%s", cur ? "failover" : "source",
             m->name, cur ? cur->encoder : "-", best->encoder);
    m->active = best;
    m->aligning = true;
    m->switches++;
}

static void output_frame(struct edge *e, struct emount *m, const struct reorder_frame *f)
{
    struct frame_info info;
    uint64_t dur = clock_samples_to_us(f->samples, f->sample_rate);
    if (!m->has_audio || m->out_next_pts_us == 0 ||
        (f->pts_us > m->out_next_pts_us + EDGE_RESYNC_US) ||
        (f->pts_us + EDGE_RESYNC_US < m->out_next_pts_us)) {
        if (m->has_audio)
            log_info(&e->log, "mount=%s output PTS re-based by %lld ms", m->name,
                     ((long long)f->pts_us - (long long)m->out_next_pts_us) / 1000);
        m->out_next_pts_us = f->pts_us;
    }
    if (f->codec != m->rw.codec)
        m->rw.codec = f->codec; /* header walking follows the newest codec */
    if (rewind_append(&m->rw, f->data, f->len, m->out_next_pts_us, dur) != FC_OK) {
        log_error(&e->log, "mount=%s cannot append to the rewind buffer", m->name);
        return;
    }
    m->out_next_pts_us += dur;
    m->has_audio = true;
    m->frames_out++;
    m->codec = f->codec;
    m->sample_rate = f->sample_rate;
    m->channels = f->channels;
    if (frame_header_parse(f->codec, f->data, f->len, &info) == FC_OK)
        m->bitrate = info.bitrate;
    edge_wake_listeners(m);
}

/* Release what each stream has due; the active one feeds the buffer. */
static void pump(struct edge *e, struct emount *m)
{
    uint64_t now_us = (uint64_t)(ev_now(e->loop) * 1e6);
    choose_active(e, m);
    struct estream *s = m->active;
    if (!s)
        return;
    const struct reorder_frame *f;
    uint64_t lost;
    while (reorder_pop(&s->ro, now_us, &f, &lost) == FC_OK) {
        uint64_t dur = clock_samples_to_us(f->samples, f->sample_rate);
        if (lost) {
            m->lost += lost;
            m->gaps++;
            log_warn(&e->log, "event=gap mount=%s encoder=%s lost_frames=%llu at_seq=%llu",
                     m->name, s->encoder, (unsigned long long)lost, (unsigned long long)f->seq);
        }
        /* After a switch, skip what the previous stream already played (PTS alignment). */
        if (m->aligning && m->has_audio && f->pts_us + dur / 2 <= m->src_pts_end_us)
            continue;
        m->aligning = false;
        m->src_pts_end_us = f->pts_us + dur;
        s->last_pts_end_us = f->pts_us + dur;
        s->frames_out++;
        output_frame(e, m, f);
    }
}

void edge_frame_in(struct edge *e, const struct wire_frame *f, struct erelay *from)
{
    e->c.frames_in++;
    if (!pts_in_range(e, f->pts_us)) {
        e->c.skew_drops++;
        drop_warn(e, from, "pts outside --max-skew", f);
        return;
    }
    struct emount *m = edge_mount_find(e, f->mount, strlen(f->mount));
    if (!m) {
        if (e->n_mounts >= EDGE_MAX_MOUNTS || !(m = mount_new(e, f->mount, f->codec))) {
            e->c.stream_drops++;
            drop_warn(e, from, "too many mounts", f);
            return;
        }
    }
    struct estream *s = stream_find(m, f);
    if (!s) {
        if (m->n_streams >= EDGE_MAX_STREAMS_PER_MOUNT || !(s = stream_new(e, m, f))) {
            e->c.stream_drops++;
            drop_warn(e, from, "too many sessions for mount", f);
            return;
        }
    }
    if (reorder_push(&s->ro, f, (uint64_t)(ev_now(e->loop) * 1e6)) == FC_OK) {
        e->c.first_copies++;
        if (from)
            from->first_copies++;
    }
    s->last_rx = ev_now(e->loop);
    if (f->has_meta && strcmp(m->title, f->title) != 0 && (!m->active || m->active == s)) {
        memcpy(m->title, f->title, sizeof(m->title));
        log_info(&e->log, "mount=%s title=\"%s\"", m->name, m->title);
    }
    pump(e, m);
}

void edge_tick(struct edge *e)
{
    double now = ev_now(e->loop);
    for (struct emount *m = e->mounts; m; m = m->next) {
        pump(e, m);
        struct estream **pp = &m->streams;
        while (*pp) {
            struct estream *s = *pp;
            if (s != m->active && now - s->last_rx > 60) {
                *pp = s->next;
                m->n_streams--;
                log_info(&e->log, "stream gone mount=%s encoder=%s session=%016llx", m->name,
                         s->encoder, (unsigned long long)s->session);
                stream_free(s);
                continue;
            }
            pp = &s->next;
        }
    }
}

void edge_fill_resume(struct edge *e, struct wire_subscribe *sub)
{
    sub->n_resume = 0;
    for (struct emount *m = e->mounts; m; m = m->next)
        for (struct estream *s = m->streams; s && sub->n_resume < WIRE_SUB_RESUME_MAX;
             s = s->next) {
            if (!s->ro.started)
                continue;
            struct wire_resume *r = &sub->resume[sub->n_resume++];
            memcpy(r->mount, m->name, sizeof(r->mount));
            memcpy(r->encoder, s->encoder, sizeof(r->encoder));
            r->session = s->session;
            r->next_seq = s->ro.next_seq;
        }
}

void edge_mounts_free(struct edge *e)
{
    while (e->mounts) {
        struct emount *m = e->mounts;
        e->mounts = m->next;
        while (m->streams) {
            struct estream *s = m->streams;
            m->streams = s->next;
            stream_free(s);
        }
        rewind_free(&m->rw);
        free(m);
    }
    e->n_mounts = 0;
}
