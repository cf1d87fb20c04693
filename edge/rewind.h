/*
 * rewind.h - a mount's audio in memory (DESIGN.md §5 "Rewind buffer").
 *
 * Frames are appended in output order into large slabs (REWIND_SLAB_BYTES; a frame never
 * straddles two slabs, so at most one frame's worth is wasted per slab). Every byte has an
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
#define REWIND_INDEX_US 500000       /* DESIGN.md §5: an index point every 0.5 s */

struct rewind_slab {
    uint64_t abs_start; /* abs of data[0] */
    uint32_t used;      /* bytes filled */
    uint8_t *data;      /* REWIND_SLAB_BYTES, owned */
};

struct rewind_point {
    uint64_t pts_us; /* wall-clock PTS of the frame starting at abs */
    uint64_t abs;    /* a frame boundary */
};

struct rewind {
    enum fc_codec codec;          /* of the frames (for walking headers) */
    uint64_t keep_us;             /* --rewind, µs */
    struct rewind_slab *slabs;    /* ring of n_slabs from slab_head, capacity slab_cap */
    uint32_t slab_cap, slab_head, n_slabs;
    struct rewind_point *index;   /* ring of n_index from index_head, capacity index_cap */
    uint32_t index_cap, index_head, n_index;
    uint64_t abs_start;           /* oldest byte held */
    uint64_t abs_end;             /* one past the newest byte */
    uint64_t end_pts_us;          /* PTS at which the newest frame ends */
    uint64_t frames;              /* frames appended, ever */
    uint64_t frames_held;         /* approximate: frames appended minus frames evicted */
    uint64_t evicted_bytes;       /* bytes dropped by eviction, ever */
};

/* Set up an empty buffer keeping `keep_us` of audio. FC_NOMEM on failure. */
enum fc_err rewind_init(struct rewind *rw, enum fc_codec codec, uint64_t keep_us);
void rewind_free(struct rewind *rw);

/*
 * Append one whole frame (`len` bytes, copied) whose first sample plays at `pts_us` and which
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

/* Bytes of audio held and bytes of memory used (slabs and index). */
uint64_t rewind_bytes_held(const struct rewind *rw);
uint64_t rewind_mem_bytes(const struct rewind *rw);

#endif
