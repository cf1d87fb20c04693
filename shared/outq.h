/*
 * outq.h - reference-counted messages and a bounded per-connection send queue written with writev.
 *
 * A `struct msgref` holds one encoded wire message with its TCP length prefix in front
 * (`data[0..3]` = prefix, `data + WIRE_LEN_BYTES` = body + tag), so the same bytes serve TCP
 * (whole) and UDP (without the prefix). Fan-out takes a reference per subscriber; nobody copies.
 * Not thread-safe: one event loop owns every msgref and queue.
 */
#ifndef FC_OUTQ_H
#define FC_OUTQ_H

#include <stdbool.h>
#include <stdint.h>
#include "fc.h"

struct msgchunk;

struct msgref {
    uint32_t refs;          /* owners; freed when it drops to 0 */
    uint32_t len;           /* bytes in data, prefix included */
    struct msgchunk *chunk; /* carved from this pool chunk, or NULL: allocated alone */
    uint8_t data[];
};

/* Allocate a message of `len` bytes with one reference. NULL on allocation failure. */
struct msgref *msgref_new(uint32_t len);

/*
 * A pool that carves messages one after another out of big chunks (MSGPOOL_CHUNK_BYTES): one
 * allocation per chunk instead of one per message, for a relay that stores every frame it
 * forwards (issue 9). A chunk goes back to the pool - its memory reused, no new page faults -
 * once every message carved from it has been released; messages received together expire
 * together, so chunks empty as a whole. An all-zero struct is an empty, usable pool.
 * (Transparent huge pages were tried for the chunks: zeroing a fresh 2 MiB page at fault cost
 * ten times more than the 4 KiB faults it saved on the 2-core development VM.)
 */
#define MSGPOOL_CHUNK_BYTES (1u << 20)
#define MSGPOOL_KEEP 16 /* empty chunks kept for reuse; more are unmapped */

struct msgpool {
    struct msgchunk *cur;   /* being carved, or NULL */
    struct msgchunk *free;  /* empty chunks kept for reuse (a list) */
    struct msgchunk *busy;  /* full chunks with messages still referenced (a list) */
    uint32_t n_free;        /* chunks on the free list */
    uint64_t chunks_mapped; /* chunks mapped so far (a counter for stats) */
};

/*
 * A message of `len` bytes with one reference, carved from `p` (or allocated alone if it is too
 * big for a chunk). msgref_put() releases it as any other. NULL on allocation failure.
 */
struct msgref *msgpool_new(struct msgpool *p, uint32_t len);

/*
 * Release the pool's chunks. Messages still referenced stay valid: their chunk is unmapped when
 * the last of them is released. The pool is then empty and may be used again.
 */
void msgpool_free(struct msgpool *p);

/* Take one more reference; returns `m`. */
static inline struct msgref *msgref_get(struct msgref *m)
{
    m->refs++;
    return m;
}

/* Free `m`, whose last reference was dropped (msgref_put's slow path). */
void msgref_free(struct msgref *m);

/* Drop one reference; frees at zero. NULL is ignored. Inline: fan-out drops one per frame and
 * subscriber. */
static inline void msgref_put(struct msgref *m)
{
    if (m && --m->refs == 0)
        msgref_free(m);
}

struct outq {
    struct msgref **ring;  /* queued messages, each holding a reference */
    uint32_t mask;         /* ring capacity - 1 (capacity is a power of two) */
    uint32_t head;         /* index of the message being sent */
    uint32_t tail;         /* index one past the last queued message */
    uint32_t head_off;     /* bytes of ring[head] already written */
    uint64_t bytes;        /* unsent bytes queued */
    uint64_t max_bytes;    /* cap: outq_push() fails with FC_LIMIT past it */
};

/* Set up a queue of at most `max_msgs` (rounded up to a power of two) and `max_bytes`. */
enum fc_err outq_init(struct outq *q, uint32_t max_msgs, uint64_t max_bytes);

/* Release every queued reference and the ring. */
void outq_free(struct outq *q);

/* Drop everything queued (references released), keep the ring. */
void outq_clear(struct outq *q);

/* Queue `m`, taking a new reference. FC_LIMIT if the message or byte cap would be exceeded. */
enum fc_err outq_push(struct outq *q, struct msgref *m);

/* Number of messages queued. */
static inline uint32_t outq_count(const struct outq *q)
{
    return q->tail - q->head;
}

/*
 * Write as much as the socket takes, up to 1024 messages per writev call, looping until EAGAIN.
 * FC_OK: queue empty. FC_AGAIN: bytes remain (wait for writability). FC_IO: write failed
 * (errno set; EPIPE/ECONNRESET mean the peer went away).
 */
enum fc_err outq_flush(struct outq *q, int fd);

/* Drop the oldest queued message if none of it has been written yet (a live source prefers
 * fresh frames to stale ones). Returns true if one was dropped. */
bool outq_shift(struct outq *q);

#endif
