/* reorder.c - see reorder.h. */
#include "reorder.h"

#include <stdlib.h>
#include <string.h>

#define MASK (REORDER_SLOTS - 1)

enum fc_err reorder_init(struct reorder *r, uint64_t reorder_us)
{
    memset(r, 0, sizeof(*r));
    r->reorder_us = reorder_us;
    r->slots = calloc(REORDER_SLOTS, sizeof(*r->slots));
    r->storage = malloc((size_t)REORDER_SLOTS * REORDER_SLOT_BYTES);
    if (!r->slots || !r->storage) {
        reorder_free(r);
        return FC_NOMEM;
    }
    return FC_OK;
}

static void slot_clear(struct reorder *r, struct reorder_frame *s)
{
    if (s->data && s->len > REORDER_SLOT_BYTES)
        free(s->data);
    s->data = NULL;
    s->used = false;
    r->held--;
}

void reorder_free(struct reorder *r)
{
    if (r->slots)
        for (uint32_t i = 0; i < REORDER_SLOTS; i++)
            if (r->slots[i].data && r->slots[i].len > REORDER_SLOT_BYTES)
                free(r->slots[i].data);
    free(r->slots);
    free(r->storage);
    r->slots = NULL;
    r->storage = NULL;
}

/* Declare next_seq lost: its slot remembers, so a later copy is counted late. */
static void mark_lost(struct reorder *r)
{
    struct reorder_frame *s = &r->slots[r->next_seq & MASK];
    if (s->used)
        slot_clear(r, s); /* an older frame still held (far jump): dropped unplayed */
    s->seq = r->next_seq;
    s->lost_mark = true;
    r->next_seq++;
    r->lost++;
}

/* Skip missing seqs up to (not including) `seq`; returns how many were lost. */
static uint64_t skip_to(struct reorder *r, uint64_t seq)
{
    uint64_t n = 0;
    while (r->next_seq < seq) {
        struct reorder_frame *s = &r->slots[r->next_seq & MASK];
        if (s->used && s->seq == r->next_seq)
            break; /* present: not lost */
        mark_lost(r);
        n++;
    }
    return n;
}

enum fc_err reorder_push(struct reorder *r, const struct wire_frame *f, uint64_t now_us)
{
    if (!r->started) {
        r->started = true;
        r->next_seq = f->seq;
        r->max_seq = f->seq;
    }
    if (f->seq < r->next_seq) {
        const struct reorder_frame *old = &r->slots[f->seq & MASK];
        if (!old->used && old->lost_mark && old->seq == f->seq)
            r->late++;
        else
            r->duplicates++;
        return FC_AGAIN;
    }
    if (f->seq >= r->next_seq + REORDER_SLOTS) {
        /* Far ahead: everything before the ring's new reach is gone for good, held frames
         * included (dropped unplayed, counted lost); the next pop reports them. */
        uint64_t floor = f->seq - REORDER_SLOTS + 1;
        if (floor - r->next_seq >= REORDER_SLOTS) {
            /* Further than the ring: clear it in one pass instead of seq by seq. */
            for (uint32_t i = 0; i < REORDER_SLOTS; i++)
                if (r->slots[i].used)
                    slot_clear(r, &r->slots[i]);
            r->lost += floor - r->next_seq;
            r->pending_lost += floor - r->next_seq;
            r->next_seq = floor;
        }
        while (r->next_seq < floor) {
            mark_lost(r);
            r->pending_lost++;
        }
    }
    struct reorder_frame *s = &r->slots[f->seq & MASK];
    if (s->used) {
        if (s->seq == f->seq) {
            r->duplicates++;
            return FC_AGAIN;
        }
        slot_clear(r, s); /* cannot happen after the floor above; defensive */
    }
    if (s->data && s->len > REORDER_SLOT_BYTES)
        free(s->data); /* a big frame released by a pop, kept readable until now */
    s->lost_mark = false;
    s->data = f->payload_len <= REORDER_SLOT_BYTES
                  ? r->storage + (size_t)(f->seq & MASK) * REORDER_SLOT_BYTES
                  : malloc(f->payload_len);
    if (!s->data)
        return FC_NOMEM;
    memcpy(s->data, f->payload, f->payload_len);
    s->seq = f->seq;
    s->pts_us = f->pts_us;
    s->rx_us = now_us;
    s->codec = f->codec;
    s->sample_rate = f->sample_rate;
    s->channels = f->channels;
    s->samples = f->samples;
    memcpy(s->level, f->level, sizeof(s->level));
    s->len = f->payload_len;
    s->has_meta = f->has_meta;
    s->used = true;
    r->held++;
    r->received++;
    if (f->seq > r->max_seq)
        r->max_seq = f->seq;
    return FC_OK;
}

/* The earliest arrival among frames held after the gap at next_seq. */
static uint64_t oldest_waiting(const struct reorder *r)
{
    uint64_t oldest = 0;
    for (uint64_t q = r->next_seq + 1; q <= r->max_seq && q < r->next_seq + REORDER_SLOTS; q++) {
        const struct reorder_frame *s = &r->slots[q & MASK];
        if (s->used && s->seq == q && (oldest == 0 || s->rx_us < oldest))
            oldest = s->rx_us;
    }
    return oldest;
}

uint64_t reorder_deadline(const struct reorder *r)
{
    if (r->held == 0)
        return 0;
    uint64_t oldest = oldest_waiting(r);
    return oldest ? oldest + r->reorder_us : 0;
}

static const struct reorder_frame *take(struct reorder *r, struct reorder_frame *s,
                                        uint64_t lost, uint64_t *lost_before)
{
    *lost_before = lost + r->pending_lost;
    r->pending_lost = 0;
    if (*lost_before)
        r->gaps++;
    /* Stays readable until the next call: only the flag and count change here. The storage is
     * reused only by a push to the same slot, which is REORDER_SLOTS seqs later. */
    s->used = false;
    r->held--;
    r->next_seq++;
    return s;
}

enum fc_err reorder_pop(struct reorder *r, uint64_t now_us, const struct reorder_frame **out,
                        uint64_t *lost_before)
{
    *lost_before = 0;
    if (!r->started || r->held == 0)
        return FC_AGAIN;
    struct reorder_frame *s = &r->slots[r->next_seq & MASK];
    if (s->used && s->seq == r->next_seq) {
        *out = take(r, s, 0, lost_before);
        return FC_OK;
    }
    uint64_t oldest = oldest_waiting(r);
    if (oldest == 0 || now_us < oldest + r->reorder_us)
        return FC_AGAIN;
    uint64_t lost = skip_to(r, r->max_seq + 1);
    s = &r->slots[r->next_seq & MASK];
    if (!(s->used && s->seq == r->next_seq)) {
        r->pending_lost += lost;
        return FC_AGAIN;
    }
    *out = take(r, s, lost, lost_before);
    return FC_OK;
}

void reorder_resume(struct reorder *r, uint64_t next_seq)
{
    r->started = true;
    r->next_seq = next_seq;
    r->max_seq = next_seq ? next_seq - 1 : 0;
}
