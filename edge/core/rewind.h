/*
 * rewind.h - a mount's audio in memory (docs/architecture.md §6 "Rewind buffer").
 *
 * Frames are appended in output order into large slabs (REWIND_SLAB_BYTES; a frame never
 * straddles two slabs, so at most one frame's worth is wasted per slab). Slabs are shared
 * mappings of one memfd per mount (slab k at file offset k * REWIND_SLAB_BYTES); an evicted
 * slab is unmapped and its range punched out of the file, so memory follows what is held and a
 * forked child (persist.c) or another process can read the same bytes. Every byte has an
 * absolute position (`abs`, counting from the first byte ever appended) that never changes, so a
 * listener is just a position: no per-listener queue, no copy. A time index holds one
 * (PTS, abs) point every REWIND_INDEX_US, at frame boundaries, for O(log n) seeks; from an index
 * point, frames are walked by parsing their own headers. Whole slabs are evicted once the
 * buffer holds more than `keep_us` of audio.
 * Not thread-safe: the edge's loop owns it.
 */
#ifndef FC_REWIND_H
#define FC_REWIND_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/uio.h>
#include "fc.h"

#define REWIND_SLAB_BYTES (4u << 20) /* 4 MiB: ~8.7 min of 64 kbps; the open slab wastes < 4 MiB */
#define REWIND_INDEX_US 500000       /* docs/architecture.md §6.2: an index point every 0.5 s */

struct rewind_slab {
    uint64_t abs_start; /* abs of data[0] */
    uint32_t used;      /* bytes filled */
    uint64_t file_slab; /* slab number in the memfd (offset / REWIND_SLAB_BYTES) */
    uint32_t frames;    /* frames in this slab */
    uint8_t *data;      /* REWIND_SLAB_BYTES mapped, owned */
};

struct rewind_point {
    uint64_t pts_us; /* wall-clock PTS of the frame starting at abs */
    uint64_t abs;    /* a frame boundary */
};

struct rewind {
    enum fc_codec codec;          /* of the frames (for walking headers) */
    int fd;                       /* the memfd holding the slabs, owned */
    uint64_t next_file_slab;      /* file slab number for the next new slab */
    bool defer_punch;             /* a reader (fork) is using evicted ranges: punch later */
    bool replica;                 /* a worker's copy: another process writes the bytes, sizes
                                     and punches the memfd; this one only maps and indexes */
    uint64_t punch_from, punch_to;/* file slab range waiting to be punched */
    uint64_t keep_us;             /* --rewind, µs */
    struct rewind_slab *slabs;    /* ring of n_slabs from slab_head, capacity slab_cap */
    uint32_t slab_cap, slab_head, n_slabs;
    struct rewind_point *index;   /* ring of n_index from index_head, capacity index_cap */
    uint32_t index_cap, index_head, n_index;
    uint64_t abs_start;           /* oldest byte held */
    uint64_t abs_end;             /* one past the newest byte */
    uint64_t end_pts_us;          /* PTS at which the newest frame ends */
    uint64_t frames;              /* frames appended, ever */
    uint64_t frames_held;         /* frames held now */
    uint64_t evicted_bytes;       /* bytes dropped by eviction, ever */
};

/* Set up an empty buffer keeping `keep_us` of audio. FC_NOMEM / FC_IO (memfd) on failure. */
enum fc_err rewind_init(struct rewind *rw, enum fc_codec codec, uint64_t keep_us);
void rewind_free(struct rewind *rw);

/*
 * A replica of another process's buffer (edge --workers, edge/worker.c): `fd` is that buffer's
 * memfd (owned from now on), the writer appends into it first and this side then calls
 * rewind_append() with frame NULL and the same arguments, in the same order, so both sides hold
 * the same slabs and index. A replica never resizes or punches the file. FC_NOMEM on failure
 * (fd is closed).
 */
enum fc_err rewind_attach(struct rewind *rw, enum fc_codec codec, uint64_t keep_us, int fd);

/*
 * Append one whole frame (`len` bytes, copied; on a replica `frame` is NULL: the bytes are
 * already in the shared slab) whose first sample plays at `pts_us` and which
 * lasts `dur_us`. Evicts old slabs as needed. FC_NOMEM if a slab cannot be allocated, FC_LIMIT if
 * len > REWIND_SLAB_BYTES.
 */
enum fc_err rewind_append(struct rewind *rw, const uint8_t *frame, uint32_t len, uint64_t pts_us,
                          uint64_t dur_us);

/*
 * The abs of the first frame whose PTS is >= `pts_us` (clamped to the oldest frame; abs_end if
 * none). `*found_pts` gets that frame's PTS. O(log n) on the index plus at most 0.5 s of
 * header walking.
 */
uint64_t rewind_seek(const struct rewind *rw, uint64_t pts_us, uint64_t *found_pts);

/* PTS of the oldest frame held, 0 if empty. */
uint64_t rewind_first_pts(const struct rewind *rw);

/*
 * Fill up to `max_iov` iovecs with the bytes from `abs` to the end, at most `max_bytes`.
 * Returns the number of iovecs (0 when caught up). `abs` must be >= abs_start.
 */
int rewind_iov(const struct rewind *rw, uint64_t abs, struct iovec *iov, int max_iov,
               size_t max_bytes);

/* PTS of the frame starting at or before `abs` (index point plus header walking). */
uint64_t rewind_pts_at(const struct rewind *rw, uint64_t abs);

/*
 * Walk frames: from the frame boundary `abs`, set `*frame`, `*len`, `*pts_us` and `*dur_us` of
 * the frame there and return the abs of the next one, or 0 at the end (or on a bad header).
 * Start with rewind_seek() or abs_start (oldest frame, always a boundary).
 */
uint64_t rewind_frame_at(const struct rewind *rw, uint64_t abs, uint64_t pts_us,
                         const uint8_t **frame, uint32_t *len, uint64_t *dur_us);

/* While true, evicted slabs stay in the memfd (a forked reader may still read them); set false
 * to punch what accumulated. */
void rewind_defer_punch(struct rewind *rw, bool defer);

/* Bytes of audio held and bytes of memory used (slabs and index). */
uint64_t rewind_bytes_held(const struct rewind *rw);
uint64_t rewind_mem_bytes(const struct rewind *rw);

/*
 * Handoff restart (edge/edge_handoff.c, docs/architecture.md §7.12). The old process reads its slabs
 * and index points, oldest first, with rewind_slab_get / rewind_point_get (NULL past the end).
 * The new one adopts the memfd `fd` (owned from now on) as the writer: rewind_adopt with the old
 * buffer's scalar fields in `st` (codec, keep_us, next_file_slab, punch range, abs_start,
 * end_pts_us, frames, evicted_bytes), then every slab (mapped from fd at file_slab; data
 * ignored) and every index point in order. FC_PROTO if a slab or point does not continue the
 * buffer (abs contiguous, file slabs increasing, points inside and ordered), FC_NOMEM. The
 * caller checks abs_end against the old one's at the end.
 */
const struct rewind_slab *rewind_slab_get(const struct rewind *rw, uint32_t i);
const struct rewind_point *rewind_point_get(const struct rewind *rw, uint32_t i);
enum fc_err rewind_adopt(struct rewind *rw, const struct rewind *st, int fd);
enum fc_err rewind_adopt_slab(struct rewind *rw, const struct rewind_slab *s);
enum fc_err rewind_adopt_point(struct rewind *rw, const struct rewind_point *p);

#endif
