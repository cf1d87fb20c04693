/* carry_core.c - the core's mounts across a handoff restart (docs/architecture.md §7.12): each
 * mount's view fields, merge position, streams and rewind buffer (the memfd itself, its slab
 * table, index and titles) go to the new process as records on the control socket.
 *
 * The lanes and reorder buffers are not carried: each stream resumes from the relays at its next
 * undecided seq (the active one at the next seq to output), so the relays' catch-up windows
 * resend what they held and the output continues with the very next frame. */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "core.h"
#include "handoff.h"

#define CARRY_SLABS_PER_REC 2000
#define CARRY_POINTS_PER_REC 3500
/* The writer's next file slab k is sized with ftruncate((k + 1) * REWIND_SLAB_BYTES): beyond
 * this the offset wraps (a memfd truncated under the slabs held: SIGBUS) or is not an off_t. */
#define CARRY_FILE_SLABS_MAX ((uint64_t)INT64_MAX / REWIND_SLAB_BYTES - 1)

static int send_rec(int ctl, uint16_t type, const struct ho_buf *b, int fd)
{
    return handoff_send(ctl, type, b->p, b->len, fd >= 0 ? &fd : NULL, fd >= 0 ? 1 : 0,
                        EDGE_HANDOFF_SEND_S);
}

static void put_mount(struct ho_buf *b, const struct emount *m)
{
    const struct rewind *rw = &m->rw;
    ho_put_u32(b, m->id);
    ho_put_str(b, m->name);
    ho_put_u8(b, (uint8_t)m->codec);
    ho_put_u8(b, m->has_audio);
    ho_put_u32(b, m->sample_rate);
    ho_put_u8(b, m->channels);
    ho_put_u32(b, m->bitrate);
    ho_put_str(b, m->title);
    ho_put_u8(b, m->has_station);
    ho_put_str(b, m->st_name);
    ho_put_str(b, m->st_genre);
    ho_put_str(b, m->st_desc);
    ho_put_str(b, m->st_url);
    ho_put_u32(b, m->st_bitrate);
    const uint64_t ctr[] = {m->frames_out, m->lost,     m->gaps,      m->switches,
                            m->patched,    m->failovers, m->failbacks, m->discontinuities};
    ho_put(b, ctr, sizeof(ctr));
    ho_put_u64(b, m->cur_seq);
    ho_put_u64(b, m->src_end_us);
    ho_put_u64(b, m->last_dur_us);
    ho_put_u32(b, m->last_len);
    ho_put_f64(b, m->gap_since);
    ho_put_f64(b, m->first_seen);
    ho_put_f64(b, m->next_align);
    ho_put_u64(b, m->out_next_pts_us);
    ho_put_f64(b, m->sourceless_since);
    ho_put_u8(b, m->sourceless_alerted);
    ho_put_str(b, m->pinned);
    ho_put_u32(b, m->n_fed);
    for (uint32_t i = 0; i < m->n_fed; i++)
        ho_put_str(b, m->fed[i]);
    ho_put_u8(b, (uint8_t)rw->codec);
    ho_put_u64(b, rw->keep_us);
    ho_put_u64(b, rw->next_file_slab);
    ho_put_u64(b, rw->punch_from);
    ho_put_u64(b, rw->punch_to);
    ho_put_u64(b, rw->abs_start);
    ho_put_u64(b, rw->abs_end);
    ho_put_u64(b, rw->end_pts_us);
    ho_put_u64(b, rw->frames);
    ho_put_u64(b, rw->evicted_bytes);
}

static void put_stream(struct ho_buf *b, const struct emount *m, const struct estream *s)
{
    ho_put_u32(b, m->id);
    ho_put_str(b, s->encoder);
    ho_put_u64(b, s->session);
    ho_put_u32(b, s->priority);
    ho_put_u8(b, s->ro.started);
    /* Resume where nothing is lost: the active stream at the next seq to output. */
    ho_put_u64(b, s == m->active && m->cur_seq < s->ro.next_seq ? m->cur_seq : s->ro.next_seq);
    const uint64_t ro[] = {s->ro.received, s->ro.duplicates, s->ro.late, s->ro.lost, s->ro.gaps};
    ho_put(b, ro, sizeof(ro));
    const double t[] = {s->first_rx, s->last_rx, s->healthy_since, s->silent_since, s->loud_last,
                        s->off_at, s->off_corr};
    ho_put(b, t, sizeof(t));
    ho_put_u64(b, (uint64_t)s->off_us);
    ho_put_u32(b, (uint32_t)s->off_how);
    ho_put_u64(b, (uint64_t)s->cand_us);
    ho_put_u32(b, s->cand_n);
    ho_put_u8(b, s->first_time);
    ho_put_u64(b, s->frames_out);
    ho_put_u64(b, s->patched);
    ho_put_u8(b, s == m->active);
    ho_put_u8(b, s == m->ref);
}

static int send_mount(struct core *c, int ctl, const struct emount *m, uint8_t *buf)
{
    struct ho_buf b = {.p = buf, .cap = HANDOFF_REC_MAX};
    put_mount(&b, m);
    if (b.bad || send_rec(ctl, EH_MOUNT, &b, m->rw.fd) < 0)
        return -1;
    const struct estream *order[EDGE_MAX_STREAMS_PER_MOUNT];
    uint32_t n = 0;
    for (const struct estream *s = m->streams; s && n < EDGE_MAX_STREAMS_PER_MOUNT; s = s->next)
        order[n++] = s;
    while (n > 0) { /* the new process prepends: last first keeps the order */
        b = (struct ho_buf){.p = buf, .cap = HANDOFF_REC_MAX};
        put_stream(&b, m, order[--n]);
        if (b.bad || send_rec(ctl, EH_STREAM, &b, -1) < 0)
            return -1;
    }
    const struct rewind_slab *sl;
    for (uint32_t i = 0; (sl = rewind_slab_get(&m->rw, i));) {
        b = (struct ho_buf){.p = buf, .cap = HANDOFF_REC_MAX};
        ho_put_u32(&b, m->id);
        for (uint32_t k = 0; k < CARRY_SLABS_PER_REC && (sl = rewind_slab_get(&m->rw, i)); k++, i++) {
            ho_put_u64(&b, sl->abs_start);
            ho_put_u32(&b, sl->used);
            ho_put_u64(&b, sl->file_slab);
            ho_put_u32(&b, sl->frames);
        }
        if (b.bad || send_rec(ctl, EH_SLABS, &b, -1) < 0)
            return -1;
    }
    const struct rewind_point *pt;
    for (uint32_t i = 0; (pt = rewind_point_get(&m->rw, i));) {
        b = (struct ho_buf){.p = buf, .cap = HANDOFF_REC_MAX};
        ho_put_u32(&b, m->id);
        for (uint32_t k = 0; k < CARRY_POINTS_PER_REC && (pt = rewind_point_get(&m->rw, i)); k++, i++) {
            ho_put_u64(&b, pt->pts_us);
            ho_put_u64(&b, pt->abs);
        }
        if (b.bad || send_rec(ctl, EH_INDEX, &b, -1) < 0)
            return -1;
    }
    for (uint32_t i = 0; i < m->titles.n; i++) {
        const struct title_change *tc = &m->titles.ring[(m->titles.head + i) % EDGE_TITLES_MAX];
        b = (struct ho_buf){.p = buf, .cap = HANDOFF_REC_MAX};
        ho_put_u32(&b, m->id);
        ho_put_u64(&b, tc->abs);
        ho_put_u64(&b, tc->id);
        ho_put(&b, tc->block->data, tc->block->len);
        if (b.bad || send_rec(ctl, EH_TITLE, &b, -1) < 0)
            return -1;
    }
    return 0;
}

int core_carry_send(struct core *c, int ctl)
{
    uint8_t *buf = malloc(HANDOFF_REC_MAX);
    if (!buf)
        return -1;
    int r = 0;
    struct ho_buf b = {.p = buf, .cap = HANDOFF_REC_MAX};
    ho_put(&b, &c->c, sizeof(c->c));
    ho_put_u32(&b, c->mount_ids);
    r = send_rec(ctl, EH_CORE, &b, -1);
    /* Oldest first, so the new process's list has the same order. */
    struct emount *order[EDGE_MAX_MOUNTS];
    uint32_t n = 0;
    for (struct emount *m = c->mounts; m && n < EDGE_MAX_MOUNTS; m = m->next)
        order[n++] = m;
    while (r == 0 && n > 0)
        r = send_mount(c, ctl, order[--n], buf);
    free(buf);
    return r;
}

/* ---- the new process ---- */

static struct emount *mount_by_id(struct core *c, uint32_t id)
{
    for (struct emount *m = c->mounts; m; m = m->next)
        if (m->id == id)
            return m;
    return NULL;
}

static enum fc_err get_mount(struct core *c, struct ho_buf *b, int fd, const char **why)
{
    uint32_t id = ho_get_u32(b);
    char name[WIRE_MOUNT_MAX + 1];
    ho_get_str(b, name, sizeof(name));
    struct emount *m = calloc(1, sizeof(*m));
    if (!m) {
        close(fd);
        return *why = "out of memory", FC_NOMEM;
    }
    m->id = id;
    memcpy(m->name, name, sizeof(name));
    m->codec = (enum fc_codec)ho_get_u8(b);
    m->has_audio = ho_get_u8(b);
    m->sample_rate = ho_get_u32(b);
    m->channels = ho_get_u8(b);
    m->bitrate = ho_get_u32(b);
    ho_get_str(b, m->title, sizeof(m->title));
    m->has_station = ho_get_u8(b);
    ho_get_str(b, m->st_name, sizeof(m->st_name));
    ho_get_str(b, m->st_genre, sizeof(m->st_genre));
    ho_get_str(b, m->st_desc, sizeof(m->st_desc));
    ho_get_str(b, m->st_url, sizeof(m->st_url));
    m->st_bitrate = ho_get_u32(b);
    uint64_t ctr[8];
    ho_get(b, ctr, sizeof(ctr));
    m->frames_out = ctr[0], m->lost = ctr[1], m->gaps = ctr[2], m->switches = ctr[3];
    m->patched = ctr[4], m->failovers = ctr[5], m->failbacks = ctr[6], m->discontinuities = ctr[7];
    m->cur_seq = ho_get_u64(b);
    m->src_end_us = ho_get_u64(b);
    m->last_dur_us = ho_get_u64(b);
    m->last_len = ho_get_u32(b);
    m->gap_since = ho_get_f64(b);
    m->first_seen = ho_get_f64(b);
    m->next_align = ho_get_f64(b);
    m->out_next_pts_us = ho_get_u64(b);
    m->sourceless_since = ho_get_f64(b);
    m->sourceless_alerted = ho_get_u8(b);
    ho_get_str(b, m->pinned, sizeof(m->pinned));
    m->n_fed = ho_get_u32(b);
    for (uint32_t i = 0; i < m->n_fed && i < EDGE_MAX_STREAMS_PER_MOUNT; i++)
        ho_get_str(b, m->fed[i], sizeof(m->fed[i]));
    struct rewind st = {0};
    st.codec = (enum fc_codec)ho_get_u8(b);
    st.keep_us = ho_get_u64(b);
    st.next_file_slab = ho_get_u64(b);
    st.punch_from = ho_get_u64(b);
    st.punch_to = ho_get_u64(b);
    st.abs_start = ho_get_u64(b);
    st.abs_end = ho_get_u64(b);
    st.end_pts_us = ho_get_u64(b);
    st.frames = ho_get_u64(b);
    st.evicted_bytes = ho_get_u64(b);
    bool ok = !b->bad && !ho_left(b) && m->n_fed <= EDGE_MAX_STREAMS_PER_MOUNT && fd >= 0 &&
              (m->codec == FC_CODEC_MP3 || m->codec == FC_CODEC_ADTS) &&
              wire_valid_name(name, strlen(name), WIRE_MOUNT_MAX) &&
              !edge_mount_find(c, name, strlen(name)) && !mount_by_id(c, id) && id > 0 &&
              c->n_mounts < EDGE_MAX_MOUNTS && st.next_file_slab <= CARRY_FILE_SLABS_MAX &&
              st.punch_from <= st.punch_to && st.punch_to <= st.next_file_slab;
    if (!ok) {
        if (fd >= 0)
            close(fd);
        free(m);
        return *why = "malformed mount record", FC_PROTO;
    }
    if (rewind_adopt(&m->rw, &st, fd) != FC_OK) {
        free(m);
        return *why = "out of memory", FC_NOMEM;
    }
    m->rw.abs_end = st.abs_start; /* grows as slabs arrive; checked at the end */
    m->core = c;
    m->next = c->mounts;
    c->mounts = m;
    c->n_mounts++;
    m->carry_abs_end = st.abs_end;
    return FC_OK;
}

static enum fc_err get_stream(struct core *c, struct ho_buf *b, const char **why)
{
    struct emount *m = mount_by_id(c, ho_get_u32(b));
    char enc[WIRE_ENCODER_MAX + 1];
    ho_get_str(b, enc, sizeof(enc));
    uint64_t session = ho_get_u64(b);
    uint32_t prio = ho_get_u32(b);
    bool started = ho_get_u8(b);
    uint64_t next_seq = ho_get_u64(b);
    uint64_t ro[5];
    double t[7];
    ho_get(b, ro, sizeof(ro));
    ho_get(b, t, sizeof(t));
    if (b->bad || !m || !wire_valid_name(enc, strlen(enc), WIRE_ENCODER_MAX) ||
        m->n_streams >= EDGE_MAX_STREAMS_PER_MOUNT)
        return *why = "malformed stream record", FC_PROTO;
    struct estream *s = edge_stream_new(c, m, enc, session, prio);
    if (!s)
        return *why = "out of memory", FC_NOMEM;
    if (started)
        reorder_resume(&s->ro, next_seq);
    s->ro.received = ro[0], s->ro.duplicates = ro[1], s->ro.late = ro[2], s->ro.lost = ro[3];
    s->ro.gaps = ro[4];
    s->first_rx = t[0], s->last_rx = t[1], s->healthy_since = t[2], s->silent_since = t[3];
    s->loud_last = t[4], s->off_at = t[5], s->off_corr = t[6];
    s->off_us = (int64_t)ho_get_u64(b);
    s->off_how = (enum align_result)ho_get_u32(b);
    s->cand_us = (int64_t)ho_get_u64(b);
    s->cand_n = ho_get_u32(b);
    s->first_time = ho_get_u8(b);
    s->frames_out = ho_get_u64(b);
    s->patched = ho_get_u64(b);
    if (ho_get_u8(b)) {
        m->active = s;
        if (!started || m->cur_seq != next_seq)
            b->bad = true;
    }
    if (ho_get_u8(b))
        m->ref = s;
    if (b->bad || ho_left(b))
        return *why = "malformed stream record", FC_PROTO;
    return FC_OK;
}

static enum fc_err get_slabs(struct core *c, struct ho_buf *b, const char **why)
{
    struct emount *m = mount_by_id(c, ho_get_u32(b));
    if (!m || b->bad || ho_left(b) % 24)
        return *why = "malformed slab record", FC_PROTO;
    while (ho_left(b)) {
        struct rewind_slab s = {0};
        s.abs_start = ho_get_u64(b);
        s.used = ho_get_u32(b);
        s.file_slab = ho_get_u64(b);
        s.frames = ho_get_u32(b);
        enum fc_err err = rewind_adopt_slab(&m->rw, &s);
        if (err != FC_OK)
            return *why = err == FC_NOMEM ? "cannot map a slab" : "slab out of order", err;
    }
    return FC_OK;
}

static enum fc_err get_index(struct core *c, struct ho_buf *b, const char **why)
{
    struct emount *m = mount_by_id(c, ho_get_u32(b));
    if (!m || b->bad || ho_left(b) % 16)
        return *why = "malformed index record", FC_PROTO;
    while (ho_left(b)) {
        struct rewind_point p;
        p.pts_us = ho_get_u64(b);
        p.abs = ho_get_u64(b);
        enum fc_err err = rewind_adopt_point(&m->rw, &p);
        if (err != FC_OK)
            return *why = err == FC_NOMEM ? "out of memory" : "index point out of order", err;
    }
    return FC_OK;
}

static enum fc_err get_title(struct core *c, struct ho_buf *b, const char **why)
{
    struct emount *m = mount_by_id(c, ho_get_u32(b));
    uint64_t abs = ho_get_u64(b), id = ho_get_u64(b);
    if (!m || b->bad || !titles_adopt(&m->titles, abs, id, b->p + b->off, ho_left(b)))
        return *why = "malformed title record", FC_PROTO;
    return FC_OK;
}

enum fc_err core_carry_take(struct core *c, uint16_t type, const uint8_t *p, size_t len,
                            const int *fds, int nfds, const char **why)
{
    struct ho_buf b = {.p = (uint8_t *)p, .len = len};
    if (nfds != (type == EH_MOUNT)) {
        handoff_close_fds(fds, nfds);
        return *why = "unexpected descriptors", FC_PROTO;
    }
    switch (type) {
    case EH_CORE:
        ho_get(&b, &c->c, sizeof(c->c));
        c->mount_ids = ho_get_u32(&b);
        return b.bad || ho_left(&b) ? (*why = "malformed core record", FC_PROTO) : FC_OK;
    case EH_MOUNT: return get_mount(c, &b, fds[0], why);
    case EH_STREAM: return get_stream(c, &b, why);
    case EH_SLABS: return get_slabs(c, &b, why);
    case EH_INDEX: return get_index(c, &b, why);
    case EH_TITLE: return get_title(c, &b, why);
    }
    return *why = "unknown record", FC_PROTO;
}

enum fc_err core_carry_check(struct core *c, const char **why)
{
    for (struct emount *m = c->mounts; m; m = m->next) {
        if (m->rw.abs_end != m->carry_abs_end || (m->has_audio && !m->rw.n_index))
            return *why = "a rewind buffer arrived incomplete", FC_PROTO;
        /* Only evicted slabs, all before the ones held, may wait to be punched. */
        const struct rewind_slab *first = rewind_slab_get(&m->rw, 0);
        if (m->rw.punch_to > (first ? first->file_slab : m->rw.next_file_slab))
            return *why = "a slab held is to be punched", FC_PROTO;
        if (m->id > c->mount_ids)
            return *why = "mount id above the newest", FC_PROTO;
    }
    return FC_OK;
}
