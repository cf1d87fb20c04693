/* mount.c - the core's mounts and streams: frames in from relay links, titles and station
 * fields, the tick (docs/architecture.md §5.1, §5.4, §5.10). */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "clock.h"
#include "core.h"
#include "text.h"

struct emount *edge_mount_find(struct core *e, const char *name, size_t len)
{
    for (struct emount *m = e->mounts; m; m = m->next)
        if (strlen(m->name) == len && memcmp(m->name, name, len) == 0)
            return m;
    return NULL;
}

struct emount *edge_mount_new(struct core *e, const char *name, enum fc_codec codec)
{
    struct emount *m = calloc(1, sizeof(*m));
    if (!m)
        return NULL;
    if (rewind_init(&m->rw, codec, e->opt.rewind_us) != FC_OK) {
        free(m);
        return NULL;
    }
    snprintf(m->name, sizeof(m->name), "%s", name);
    m->core = e;
    m->id = ++e->mount_ids;
    m->codec = codec;
    m->next = e->mounts;
    e->mounts = m;
    e->n_mounts++;
    m->first_seen = core_now(e);
    log_info(&e->log, "mount new mount=%s", m->name);
    return m;
}

struct emount *edge_mount_attach(struct core *e, uint32_t id, const char *name,
                                 enum fc_codec codec, uint64_t keep_us, int fd)
{
    struct emount *m = calloc(1, sizeof(*m));
    if (!m) {
        close(fd);
        return NULL;
    }
    if (rewind_attach(&m->rw, codec, keep_us, fd) != FC_OK) {
        free(m);
        return NULL;
    }
    snprintf(m->name, sizeof(m->name), "%s", name);
    m->core = e;
    m->id = id;
    m->codec = codec;
    m->next = e->mounts;
    e->mounts = m;
    e->n_mounts++;
    return m;
}

void edge_mount_title(struct core *e, struct emount *m, uint64_t abs, const char *title,
                      const char *url)
{
    snprintf(m->title, sizeof(m->title), "%s", title);
    text_utf8_sanitize(m->title); /* JSON (jansson) refuses invalid UTF-8 */
    titles_add(&m->titles, abs, title, url);
    if (e->hooks.titled)
        e->hooks.titled(e->hooks.ctx, m, abs, title, url);
}

static struct estream *stream_find(struct emount *m, const struct wire_frame *f)
{
    for (struct estream *s = m->streams; s; s = s->next)
        if (s->session == f->session && strcmp(s->encoder, f->encoder) == 0)
            return s;
    return NULL;
}

struct estream *edge_stream_new(struct core *e, struct emount *m, const char *encoder,
                                uint64_t session, uint32_t priority)
{
    struct estream *s = calloc(1, sizeof(*s));
    if (!s)
        return NULL;
    if (reorder_init(&s->ro, e->opt.reorder_us) != FC_OK) {
        free(s);
        return NULL;
    }
    if (lane_init(&s->lane) != FC_OK) {
        reorder_free(&s->ro);
        free(s);
        return NULL;
    }
    s->mount = m;
    snprintf(s->encoder, sizeof(s->encoder), "%s", encoder);
    s->session = session;
    s->priority = priority;
    s->first_rx = core_now(e);
    s->off_how = ALIGN_NODATA; /* not measured yet: PTS alignment */
    s->first_time = !merge_encoder_fed(m, s->encoder);
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
    lane_free(&s->lane);
    free(s);
}

static bool pts_in_range(const struct core *e, uint64_t pts_us)
{
    uint64_t now = clock_wall_us(), skew = (uint64_t)(e->opt.max_skew_s * 1e6);
    return pts_us + skew >= now && pts_us <= now + skew;
}

static void drop_warn(struct core *e, struct erelay *from, const char *why,
                      const struct wire_frame *f)
{
    uint64_t suppressed;
    if (log_limit_pass(&e->ll, core_now(e), &suppressed))
        log_warn(&e->log, "peer=%s dropped frame: %s mount=%s encoder=%s seq=%llu suppressed=%llu",
                 from ? from->link.peer : "?", why, f->mount, f->encoder,
                 (unsigned long long)f->seq, (unsigned long long)suppressed);
}

void edge_frame_in(struct core *e, const struct wire_frame *f, struct erelay *from)
{
    e->c.frames_in++;
    if (!pts_in_range(e, f->pts_us)) {
        e->c.skew_drops++;
        drop_warn(e, from, "pts outside --max-skew", f);
        return;
    }
    struct emount *m = edge_mount_find(e, f->mount, strlen(f->mount));
    if (!m) {
        if (e->n_mounts >= EDGE_MAX_MOUNTS || !(m = edge_mount_new(e, f->mount, f->codec))) {
            e->c.stream_drops++;
            drop_warn(e, from, "too many mounts", f);
            return;
        }
    }
    struct estream *s = stream_find(m, f);
    if (!s) {
        if (m->n_streams >= EDGE_MAX_STREAMS_PER_MOUNT || !(s = edge_stream_new(e, m, f->encoder, f->session, f->priority))) {
            e->c.stream_drops++;
            drop_warn(e, from, "too many sessions for mount", f);
            return;
        }
    }
    if (reorder_push(&s->ro, f, (uint64_t)(core_now(e) * 1e6)) == FC_OK) {
        e->c.first_copies++;
        if (from)
            from->first_copies++;
    }
    s->last_rx = core_now(e);
    if (f->has_meta && strcmp(m->title, f->title) != 0 && (!m->active || m->active == s)) {
        edge_mount_title(e, m, m->rw.abs_end, f->title, f->url);
        log_info(&e->log, "mount=%s title=\"%s\"", m->name, m->title);
    }
    if (f->has_station && (!m->active || m->active == s)) {
        bool changed = !m->has_station || m->st_bitrate != f->st_bitrate ||
                       strcmp(m->st_name, f->st_name) || strcmp(m->st_genre, f->st_genre) ||
                       strcmp(m->st_desc, f->st_desc) || strcmp(m->st_url, f->st_url);
        m->has_station = true;
        memcpy(m->st_name, f->st_name, sizeof(m->st_name));
        memcpy(m->st_genre, f->st_genre, sizeof(m->st_genre));
        memcpy(m->st_desc, f->st_desc, sizeof(m->st_desc));
        memcpy(m->st_url, f->st_url, sizeof(m->st_url));
        m->st_bitrate = f->st_bitrate;
        if (changed && e->hooks.station)
            e->hooks.station(e->hooks.ctx, m);
    }
    merge_pump(e, m);
}

/* `sourceless`: a mount with no healthy stream for --sourceless-after. */
static void check_sourceless(struct core *e, struct emount *m, double now)
{
    if (merge_has_source(e, m)) {
        if (m->sourceless_alerted)
            alert_emit(&e->alert, "source_back",
                       json_pack("{s:s, s:f}", "mount", m->name, "after_s",
                                 now - m->sourceless_since));
        m->sourceless_since = 0;
        m->sourceless_alerted = false;
        return;
    }
    if (m->sourceless_since == 0)
        m->sourceless_since = now;
    if (!m->sourceless_alerted && now - m->sourceless_since >= e->opt.sourceless_after_s) {
        m->sourceless_alerted = true;
        alert_emit(&e->alert, "sourceless",
                   json_pack("{s:s, s:f}", "mount", m->name, "for_s", now - m->sourceless_since));
    }
}

void edge_tick(struct core *e)
{
    double now = core_now(e);
    for (struct emount *m = e->mounts; m; m = m->next) {
        merge_pump(e, m);
        check_sourceless(e, m, now);
        struct estream **pp = &m->streams;
        while (*pp) {
            struct estream *s = *pp;
            if (s != m->active && now - s->last_rx > 60) {
                *pp = s->next;
                if (m->ref == s)
                    m->ref = NULL;
                m->n_streams--;
                log_info(&e->log, "stream gone mount=%s encoder=%s session=%016llx", m->name,
                         s->encoder, (unsigned long long)s->session);
                stream_free(s);
                continue;
            }
            pp = &s->next;
        }
    }
    if (e->hooks.tick)
        e->hooks.tick(e->hooks.ctx);
}

void edge_fill_resume(struct core *e, struct wire_subscribe *sub)
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

void edge_mounts_free(struct core *e)
{
    while (e->mounts) {
        struct emount *m = e->mounts;
        e->mounts = m->next;
        while (m->streams) {
            struct estream *s = m->streams;
            m->streams = s->next;
            stream_free(s);
        }
        if (e->hooks.mount_freed)
            e->hooks.mount_freed(e->hooks.ctx, m);
        rewind_free(&m->rw);
        titles_free(&m->titles);
        free(m);
    }
    e->n_mounts = 0;
}

