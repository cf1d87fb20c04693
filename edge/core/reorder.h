/*
 * reorder.h - per-stream reorder buffer keyed by seq (docs/architecture.md §5.2).
 *
 * Copies of a stream's frames arrive from several relays in any order. Frames are held in
 * REORDER_SLOTS slots indexed by seq; contiguous ones are released at once. A missing seq is
 * declared lost once a later frame has waited `reorder_us` for it, or when the stream runs more
 * than half the ring ahead. Frame bytes are copied into fixed slot storage (no per-frame
 * allocation except for frames over REORDER_SLOT_BYTES, which are rare: 320 kbps MP3 at 32 kHz).
 * Not thread-safe; no callbacks.
 */
#ifndef FC_REORDER_H
#define FC_REORDER_H

#include <stdbool.h>
#include <stdint.h>
#include "wire.h"

#define REORDER_SLOTS 1024       /* power of two; ~25 s of MP3 frames */
#define REORDER_SLOT_BYTES 2048  /* inline storage per slot */

struct reorder_frame {
    uint64_t seq;
    uint64_t pts_us;
    uint64_t rx_us;          /* monotonic µs when the first copy arrived */
    enum fc_codec codec;
    uint32_t sample_rate;
    uint8_t channels;
    uint16_t samples;
    int8_t level[4];
    uint32_t len;            /* payload bytes */
    uint8_t *data;           /* payload: slot storage or heap (big frames) */
    bool used;
    bool has_meta;
    bool lost_mark;          /* !used: seq was declared lost (a later copy counts as late) */
};

struct reorder {
    struct reorder_frame *slots; /* REORDER_SLOTS, owned */
    uint8_t *storage;            /* REORDER_SLOTS * REORDER_SLOT_BYTES, owned */
    bool started;                /* next_seq is meaningful */
    uint64_t next_seq;           /* the seq to release next */
    uint64_t max_seq;            /* highest seq stored */
    uint32_t held;               /* frames stored */
    uint64_t reorder_us;         /* how long a later frame waits for a missing one */
    /* counters */
    uint64_t received;           /* first copies stored */
    uint64_t duplicates;         /* copies of a frame already stored or released */
    uint64_t late;               /* arrived after their seq was declared lost */
    uint64_t lost;               /* seqs skipped: lost on every path */
    uint64_t gaps;               /* runs of lost seqs */
    uint64_t pending_lost;       /* lost by a far jump in push, reported by the next pop */
};

/* Allocate the slots. FC_NOMEM on failure. `reorder_us` is --reorder-ms in µs. */
enum fc_err reorder_init(struct reorder *r, uint64_t reorder_us);
void reorder_free(struct reorder *r);

/* Start at `next_seq` (a restarted edge resuming where it stopped): older seqs are duplicates. */
void reorder_resume(struct reorder *r, uint64_t next_seq);

/*
 * Store one frame (copied) that arrived at monotonic `now_us`. Returns FC_OK if stored,
 * FC_AGAIN if it was a duplicate or late (counted), FC_NOMEM if a big frame could not be stored.
 * A seq more than REORDER_SLOTS ahead of next_seq forces the frames in between to be declared
 * lost first (the stream has moved on).
 */
enum fc_err reorder_push(struct reorder *r, const struct wire_frame *f, uint64_t now_us);

/*
 * Release the next frame in seq order if it is due: the next seq is present, or it is missing
 * and a later frame has waited reorder_us (it is then counted lost and skipped). On FC_OK `*out`
 * points at the slot, valid until the next reorder_* call; the caller copies what it needs.
 * `*lost_before` is the number of seqs skipped just before this frame. FC_AGAIN: nothing due.
 */
enum fc_err reorder_pop(struct reorder *r, uint64_t now_us, const struct reorder_frame **out,
                        uint64_t *lost_before);

/* Monotonic µs at which reorder_pop() may next declare a loss (0 if nothing is waiting). */
uint64_t reorder_deadline(const struct reorder *r);

#endif
