/* rewind.c - see rewind.h. */
#include "rewind.h"

#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include "clock.h"
#include "framer.h"

static struct rewind_slab *slab_at(const struct rewind *rw, uint32_t i)
{
    return &rw->slabs[(rw->slab_head + i) % rw->slab_cap];
}

static struct rewind_point *point_at(const struct rewind *rw, uint32_t i)
{
    return &rw->index[(rw->index_head + i) % rw->index_cap];
}

enum fc_err rewind_init(struct rewind *rw, enum fc_codec codec, uint64_t keep_us)
{
    memset(rw, 0, sizeof(*rw));
    rw->codec = codec;
    rw->keep_us = keep_us;
    rw->slab_cap = 16;
    rw->index_cap = 1024;
    rw->fd = memfd_create("framecast-rewind", MFD_CLOEXEC);
    rw->slabs = calloc(rw->slab_cap, sizeof(*rw->slabs));
    rw->index = calloc(rw->index_cap, sizeof(*rw->index));
    if (rw->fd < 0 || !rw->slabs || !rw->index) {
        enum fc_err err = rw->fd < 0 ? FC_IO : FC_NOMEM;
        rewind_free(rw);
        return err;
    }
    return FC_OK;
}

enum fc_err rewind_attach(struct rewind *rw, enum fc_codec codec, uint64_t keep_us, int fd)
{
    memset(rw, 0, sizeof(*rw));
    rw->codec = codec;
    rw->keep_us = keep_us;
    rw->slab_cap = 16;
    rw->index_cap = 1024;
    rw->fd = fd;
    rw->replica = true;
    rw->slabs = calloc(rw->slab_cap, sizeof(*rw->slabs));
    rw->index = calloc(rw->index_cap, sizeof(*rw->index));
    if (!rw->slabs || !rw->index) {
        rewind_free(rw);
        return FC_NOMEM;
    }
    return FC_OK;
}

void rewind_free(struct rewind *rw)
{
    for (uint32_t i = 0; rw->slabs && i < rw->n_slabs; i++)
        munmap(slab_at(rw, i)->data, REWIND_SLAB_BYTES);
    if (rw->fd > 0)
        close(rw->fd);
    free(rw->slabs);
    free(rw->index);
    memset(rw, 0, sizeof(*rw));
}

/* Grow a ring to twice its capacity, unrolling it so the head is at 0. */
static void *grow_ring(void *ring, uint32_t *cap, uint32_t *head, uint32_t n, size_t elem)
{
    uint8_t *bigger = malloc((size_t)*cap * 2 * elem);
    if (!bigger)
        return NULL;
    for (uint32_t i = 0; i < n; i++)
        memcpy(bigger + i * elem, (uint8_t *)ring + ((*head + i) % *cap) * elem, elem);
    free(ring);
    *cap *= 2;
    *head = 0;
    return bigger;
}

/* Room for one more slab / index point in their rings. */
static bool slab_room(struct rewind *rw)
{
    if (rw->n_slabs < rw->slab_cap)
        return true;
    void *r = grow_ring(rw->slabs, &rw->slab_cap, &rw->slab_head, rw->n_slabs, sizeof(*rw->slabs));
    return r ? (rw->slabs = r, true) : false;
}

static bool point_room(struct rewind *rw)
{
    if (rw->n_index < rw->index_cap)
        return true;
    void *r = grow_ring(rw->index, &rw->index_cap, &rw->index_head, rw->n_index, sizeof(*rw->index));
    return r ? (rw->index = r, true) : false;
}

static void evict_oldest_slab(struct rewind *rw)
{
    struct rewind_slab *old = slab_at(rw, 0);
    uint64_t end = old->abs_start + old->used;
    rw->evicted_bytes += old->used;
    rw->frames_held -= old->frames;
    munmap(old->data, REWIND_SLAB_BYTES);
    if (rw->punch_to == rw->punch_from)
        rw->punch_from = old->file_slab;
    rw->punch_to = old->file_slab + 1;
    if (!rw->defer_punch && !rw->replica)
        rewind_defer_punch(rw, false);
    rw->slab_head = (rw->slab_head + 1) % rw->slab_cap;
    rw->n_slabs--;
    rw->abs_start = end;
    while (rw->n_index > 0 && point_at(rw, 0)->abs < end) {
        rw->index_head = (rw->index_head + 1) % rw->index_cap;
        rw->n_index--;
    }
}

static enum fc_err new_slab(struct rewind *rw)
{
    if (!slab_room(rw))
        return FC_NOMEM;
    uint64_t k = rw->next_file_slab;
    off_t end = (off_t)((k + 1) * REWIND_SLAB_BYTES);
    if (!rw->replica && ftruncate(rw->fd, end) < 0)
        return FC_NOMEM;
    uint8_t *data = mmap(NULL, REWIND_SLAB_BYTES, PROT_READ | PROT_WRITE, MAP_SHARED, rw->fd,
                         (off_t)(k * REWIND_SLAB_BYTES));
    if (data == MAP_FAILED)
        return FC_NOMEM;
    rw->next_file_slab++;
    struct rewind_slab *s = slab_at(rw, rw->n_slabs++);
    s->abs_start = rw->abs_end;
    s->used = 0;
    s->file_slab = k;
    s->frames = 0;
    s->data = data;
    return FC_OK;
}

static enum fc_err add_point(struct rewind *rw, uint64_t pts_us, bool force)
{
    /* A point every REWIND_INDEX_US, and at every jump of the timeline (backwards too), so the
     * header walking from a point never crosses a jump. */
    if (!force && rw->n_index > 0) {
        const struct rewind_point *last = point_at(rw, rw->n_index - 1);
        if (pts_us >= last->pts_us && pts_us < last->pts_us + REWIND_INDEX_US &&
            pts_us == rw->end_pts_us)
            return FC_OK;
    }
    if (!point_room(rw))
        return FC_NOMEM;
    struct rewind_point *p = point_at(rw, rw->n_index++);
    p->pts_us = pts_us;
    p->abs = rw->abs_end;
    return FC_OK;
}

enum fc_err rewind_append(struct rewind *rw, const uint8_t *frame, uint32_t len, uint64_t pts_us,
                          uint64_t dur_us)
{
    if (len > REWIND_SLAB_BYTES)
        return FC_LIMIT;
    struct rewind_slab *last = rw->n_slabs ? slab_at(rw, rw->n_slabs - 1) : NULL;
    bool fresh = false;
    if (!last || REWIND_SLAB_BYTES - last->used < len) {
        enum fc_err err = new_slab(rw);
        if (err != FC_OK)
            return err;
        last = slab_at(rw, rw->n_slabs - 1);
        fresh = true;
    }
    /* Index first: a seek must land on this frame's first byte. Every slab starts with an
     * index point, so after an eviction the oldest frame is still reachable. */
    enum fc_err err = add_point(rw, pts_us, fresh);
    if (err != FC_OK)
        return err;
    if (frame)
        memcpy(last->data + last->used, frame, len);
    last->used += len;
    last->frames++;
    rw->frames_held++;
    rw->abs_end += len;
    rw->end_pts_us = pts_us + dur_us;
    rw->frames++;
    /* Evict whole slabs while the remainder still covers keep_us. */
    while (rw->n_slabs > 1 && rw->n_index > 0) {
        uint64_t next_start = slab_at(rw, 1)->abs_start;
        uint32_t lo = 0, hi = rw->n_index; /* first index point in the next slab */
        while (lo < hi) {
            uint32_t mid = (lo + hi) / 2;
            if (point_at(rw, mid)->abs < next_start)
                lo = mid + 1;
            else
                hi = mid;
        }
        uint64_t next_pts = lo < rw->n_index ? point_at(rw, lo)->pts_us : 0;
        if (next_pts == 0 || next_pts >= rw->end_pts_us || rw->end_pts_us - next_pts < rw->keep_us)
            break;
        evict_oldest_slab(rw);
    }
    return FC_OK;
}

uint64_t rewind_first_pts(const struct rewind *rw)
{
    return rw->n_index ? point_at(rw, 0)->pts_us : 0;
}

/* The slab holding `abs` (binary search), or NULL. */
static const struct rewind_slab *find_slab(const struct rewind *rw, uint64_t abs)
{
    uint32_t lo = 0, hi = rw->n_slabs;
    while (lo < hi) {
        uint32_t mid = (lo + hi) / 2;
        const struct rewind_slab *s = slab_at(rw, mid);
        if (abs < s->abs_start)
            hi = mid;
        else if (abs >= s->abs_start + s->used)
            lo = mid + 1;
        else
            return s;
    }
    return NULL;
}

uint64_t rewind_seek(const struct rewind *rw, uint64_t pts_us, uint64_t *found_pts)
{
    *found_pts = rw->end_pts_us;
    if (rw->n_index == 0)
        return rw->abs_end;
    /* Last index point at or before pts_us. */
    uint32_t lo = 0, hi = rw->n_index;
    while (hi - lo > 1) {
        uint32_t mid = (lo + hi) / 2;
        if (point_at(rw, mid)->pts_us <= pts_us)
            lo = mid;
        else
            hi = mid;
    }
    const struct rewind_point *p = point_at(rw, lo);
    uint64_t abs = p->abs, pts = p->pts_us;
    while (pts < pts_us && abs < rw->abs_end) {
        const struct rewind_slab *s = find_slab(rw, abs);
        struct frame_info info;
        if (!s || frame_header_parse(rw->codec, s->data + (abs - s->abs_start),
                                     s->abs_start + s->used - abs, &info) != FC_OK)
            break;
        abs += info.len;
        pts += clock_samples_to_us(info.samples, info.sample_rate);
    }
    *found_pts = pts;
    return abs;
}

int rewind_iov(const struct rewind *rw, uint64_t abs, struct iovec *iov, int max_iov,
               size_t max_bytes)
{
    int n = 0;
    const struct rewind_slab *s = find_slab(rw, abs);
    if (!s)
        return 0;
    uint32_t i = (uint32_t)((s - rw->slabs + rw->slab_cap - rw->slab_head) % rw->slab_cap);
    for (; i < rw->n_slabs && n < max_iov && max_bytes > 0; i++) {
        s = slab_at(rw, i);
        uint64_t off = abs > s->abs_start ? abs - s->abs_start : 0;
        size_t len = s->used - off;
        if (len > max_bytes)
            len = max_bytes;
        if (len == 0)
            continue;
        iov[n].iov_base = s->data + off;
        iov[n].iov_len = len;
        n++;
        max_bytes -= len;
    }
    return n;
}

void rewind_defer_punch(struct rewind *rw, bool defer)
{
    rw->defer_punch = defer;
    if (defer || rw->replica || rw->punch_to == rw->punch_from)
        return;
    /* Give the evicted range's pages back; the file keeps its size (sparse). */
    fallocate(rw->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
              (off_t)(rw->punch_from * REWIND_SLAB_BYTES),
              (off_t)((rw->punch_to - rw->punch_from) * REWIND_SLAB_BYTES));
    rw->punch_from = rw->punch_to;
}

uint64_t rewind_frame_at(const struct rewind *rw, uint64_t abs, uint64_t pts_us,
                         const uint8_t **frame, uint32_t *len, uint64_t *dur_us)
{
    (void)pts_us;
    const struct rewind_slab *s = abs < rw->abs_end ? find_slab(rw, abs) : NULL;
    struct frame_info info;
    if (!s || frame_header_parse(rw->codec, s->data + (abs - s->abs_start),
                                 s->abs_start + s->used - abs, &info) != FC_OK ||
        abs + info.len > s->abs_start + s->used)
        return 0;
    *frame = s->data + (abs - s->abs_start);
    *len = info.len;
    *dur_us = clock_samples_to_us(info.samples, info.sample_rate);
    return abs + info.len;
}

uint64_t rewind_pts_at(const struct rewind *rw, uint64_t abs)
{
    if (rw->n_index == 0)
        return 0;
    uint32_t lo = 0, hi = rw->n_index;
    while (hi - lo > 1) {
        uint32_t mid = (lo + hi) / 2;
        if (point_at(rw, mid)->abs <= abs)
            lo = mid;
        else
            hi = mid;
    }
    const struct rewind_point *p = point_at(rw, lo);
    uint64_t at = p->abs, pts = p->pts_us, dur;
    const uint8_t *frame;
    uint32_t len;
    while (at < abs) {
        uint64_t next = rewind_frame_at(rw, at, pts, &frame, &len, &dur);
        if (!next || next > abs)
            break;
        at = next;
        pts += dur;
    }
    return pts;
}

uint64_t rewind_bytes_held(const struct rewind *rw)
{
    return rw->abs_end - rw->abs_start;
}

uint64_t rewind_mem_bytes(const struct rewind *rw)
{
    return (uint64_t)rw->n_slabs * REWIND_SLAB_BYTES +
           (uint64_t)rw->index_cap * sizeof(*rw->index) + (uint64_t)rw->slab_cap * sizeof(*rw->slabs);
}

/* ---- handoff (edge/edge_handoff.c) ---- */

const struct rewind_slab *rewind_slab_get(const struct rewind *rw, uint32_t i)
{
    return i < rw->n_slabs ? slab_at(rw, i) : NULL;
}

const struct rewind_point *rewind_point_get(const struct rewind *rw, uint32_t i)
{
    return i < rw->n_index ? point_at(rw, i) : NULL;
}

enum fc_err rewind_adopt(struct rewind *rw, const struct rewind *st, int fd)
{
    enum fc_err err = rewind_attach(rw, st->codec, st->keep_us, fd);
    if (err != FC_OK)
        return err;
    rw->replica = false; /* the writer from now on */
    rw->next_file_slab = st->next_file_slab;
    rw->punch_from = st->punch_from;
    rw->punch_to = st->punch_to;
    rw->abs_start = rw->abs_end = st->abs_start;
    rw->end_pts_us = st->end_pts_us;
    rw->frames = st->frames;
    rw->frames_held = 0;
    rw->evicted_bytes = st->evicted_bytes;
    return FC_OK;
}

enum fc_err rewind_adopt_slab(struct rewind *rw, const struct rewind_slab *s)
{
    struct stat st;
    if (s->abs_start != rw->abs_end || s->used > REWIND_SLAB_BYTES ||
        s->used > UINT64_MAX - rw->abs_end || /* positions never wrap around */
        s->file_slab >= rw->next_file_slab ||
        (rw->n_slabs && s->file_slab <= slab_at(rw, rw->n_slabs - 1)->file_slab))
        return FC_PROTO;
    /* A mapping past the file's end would fault (SIGBUS) on the first read. */
    if (fstat(rw->fd, &st) < 0 || (uint64_t)st.st_size < (s->file_slab + 1) * REWIND_SLAB_BYTES)
        return FC_PROTO;
    if (!slab_room(rw))
        return FC_NOMEM;
    uint8_t *data = mmap(NULL, REWIND_SLAB_BYTES, PROT_READ | PROT_WRITE, MAP_SHARED, rw->fd,
                         (off_t)(s->file_slab * REWIND_SLAB_BYTES));
    if (data == MAP_FAILED)
        return FC_NOMEM;
    struct rewind_slab *d = slab_at(rw, rw->n_slabs++);
    *d = *s;
    d->data = data;
    rw->abs_end += s->used;
    rw->frames_held += s->frames;
    return FC_OK;
}

enum fc_err rewind_adopt_point(struct rewind *rw, const struct rewind_point *p)
{
    if (p->abs < rw->abs_start || p->abs >= rw->abs_end ||
        (rw->n_index && p->abs < point_at(rw, rw->n_index - 1)->abs))
        return FC_PROTO;
    if (!point_room(rw))
        return FC_NOMEM;
    *point_at(rw, rw->n_index++) = *p;
    return FC_OK;
}
