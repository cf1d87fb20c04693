/* lane.c - see lane.h. */
#include "lane.h"

#include <stdlib.h>
#include <string.h>
#include "clock.h"
#include "framer.h"

#define MASK (LANE_SLOTS - 1)

enum fc_err lane_init(struct lane *l)
{
    memset(l, 0, sizeof(*l));
    l->slots = calloc(LANE_SLOTS, sizeof(*l->slots));
    l->storage = malloc((size_t)LANE_SLOTS * LANE_SLOT_BYTES);
    if (!l->slots || !l->storage) {
        lane_free(l);
        return FC_NOMEM;
    }
    return FC_OK;
}

static void slot_release(struct lane_frame *s)
{
    if (s->data && s->len > LANE_SLOT_BYTES)
        free(s->data);
    s->data = NULL;
    s->state = LANE_EMPTY;
}

void lane_free(struct lane *l)
{
    if (l->slots)
        for (uint32_t i = 0; i < LANE_SLOTS; i++)
            slot_release(&l->slots[i]);
    free(l->slots);
    free(l->storage);
    memset(l, 0, sizeof(*l));
}

static void note_seq(struct lane *l, uint64_t seq)
{
    if (!l->any) {
        l->any = true;
        l->first_seq = seq;
        l->end_seq = seq;
    }
    if (seq + 1 > l->end_seq)
        l->end_seq = seq + 1;
}

enum fc_err lane_put(struct lane *l, const struct reorder_frame *f)
{
    struct lane_frame *s = &l->slots[f->seq & MASK];
    slot_release(s);
    s->data = f->len <= LANE_SLOT_BYTES ? l->storage + (size_t)(f->seq & MASK) * LANE_SLOT_BYTES
                                        : malloc(f->len);
    if (!s->data)
        return FC_NOMEM;
    memcpy(s->data, f->data, f->len);
    s->seq = f->seq;
    s->state = LANE_PRESENT;
    s->pts_us = f->pts_us;
    s->codec = f->codec;
    s->sample_rate = f->sample_rate;
    s->channels = f->channels;
    s->samples = f->samples;
    memcpy(s->level, f->level, sizeof(s->level));
    s->len = f->len;
    s->mdb = f->codec == FC_CODEC_MP3 ? (int16_t)mp3_main_data_begin(f->data, f->len) : -1;
    note_seq(l, f->seq);
    return FC_OK;
}

void lane_put_lost(struct lane *l, uint64_t next_seq, uint64_t n)
{
    if (n > LANE_SLOTS)
        n = LANE_SLOTS;
    for (uint64_t seq = next_seq - n; seq < next_seq; seq++) {
        struct lane_frame *s = &l->slots[seq & MASK];
        slot_release(s);
        s->seq = seq;
        s->state = LANE_LOST;
        s->len = 0;
        note_seq(l, seq);
    }
}

const struct lane_frame *lane_get(const struct lane *l, uint64_t seq)
{
    const struct lane_frame *s = &l->slots[seq & MASK];
    if (!l->any || seq >= l->end_seq || s->state == LANE_EMPTY || s->seq != seq)
        return NULL;
    return s;
}

uint64_t lane_oldest(const struct lane *l)
{
    uint64_t lo = l->end_seq > LANE_SLOTS ? l->end_seq - LANE_SLOTS : 0;
    return lo > l->first_seq ? lo : l->first_seq;
}

bool lane_seek_pts(const struct lane *l, uint64_t pts_us, uint64_t *seq)
{
    if (!l->any)
        return false;
    /* PTS grow with seq: binary search over the held range, skipping lost slots linearly. */
    uint64_t lo = lane_oldest(l), hi = l->end_seq;
    while (lo < hi) {
        uint64_t mid = lo + (hi - lo) / 2, probe = mid;
        const struct lane_frame *f = NULL;
        while (probe < hi && (!(f = lane_get(l, probe)) || f->state != LANE_PRESENT))
            probe++;
        if (probe == hi) {
            hi = mid;
            continue;
        }
        uint64_t half = clock_samples_to_us(f->samples, f->sample_rate) / 2;
        if (f->pts_us + half > pts_us)
            hi = mid;
        else
            lo = probe + 1;
    }
    const struct lane_frame *f;
    while (lo < l->end_seq && (!(f = lane_get(l, lo)) || f->state != LANE_PRESENT))
        lo++;
    if (lo >= l->end_seq)
        return false;
    *seq = lo;
    return true;
}
