/*
 * lane.h - a stream's decided frames, by seq, for the last LANE_SLOTS frames (~50 s).
 *
 * The reorder buffer decides each seq (present or lost); decided frames land here, where the
 * mount's output reads them by seq: the active stream frame by frame, a backup to patch a gap or
 * to take over at an aligned point (merge.c), and the level envelope for alignment (align.c).
 * Frame bytes are copied into fixed slots (no per-frame allocation below LANE_SLOT_BYTES).
 * Not thread-safe; no callbacks.
 */
#ifndef FC_LANE_H
#define FC_LANE_H

#include <stdbool.h>
#include <stdint.h>
#include "reorder.h"

#define LANE_SLOTS 2048        /* power of two: ~53 s of 44.1 kHz MP3, ~43 s of 48 kHz AAC */
#define LANE_SLOT_BYTES 2048   /* inline bytes per slot; bigger frames are allocated */

enum lane_state { LANE_EMPTY = 0, LANE_PRESENT, LANE_LOST };

struct lane_frame {
    uint64_t seq;
    enum lane_state state;
    uint64_t pts_us;       /* source PTS (the shim's wall clock) */
    enum fc_codec codec;
    uint32_t sample_rate;
    uint8_t channels;
    uint16_t samples;
    int8_t level[4];       /* dBFS, four sub-frame RMS values */
    int16_t mdb;           /* MP3 main_data_begin (bytes), -1 unknown / not MP3 */
    uint32_t len;
    uint8_t *data;         /* inline slot storage or heap */
};

struct lane {
    struct lane_frame *slots; /* LANE_SLOTS, owned */
    uint8_t *storage;         /* LANE_SLOTS * LANE_SLOT_BYTES, owned */
    bool any;                 /* at least one seq decided */
    uint64_t first_seq;       /* first seq ever decided */
    uint64_t end_seq;         /* one past the last decided seq */
};

enum fc_err lane_init(struct lane *l);
void lane_free(struct lane *l);

/* Record a decided frame (copied). */
enum fc_err lane_put(struct lane *l, const struct reorder_frame *f);

/* Record `n` lost seqs ending just before `next_seq`. */
void lane_put_lost(struct lane *l, uint64_t next_seq, uint64_t n);

/* The slot for `seq` if it still holds that seq (present or lost), else NULL (not decided yet,
 * or overwritten). */
const struct lane_frame *lane_get(const struct lane *l, uint64_t seq);

/* Oldest seq still held (valid only if l->any). */
uint64_t lane_oldest(const struct lane *l);

/* First present seq whose PTS + duration/2 > `pts_us` (frame nearest to starting at pts_us),
 * searching decided seqs. Returns false if none is decided yet (or all are older). */
bool lane_seek_pts(const struct lane *l, uint64_t pts_us, uint64_t *seq);

#endif
