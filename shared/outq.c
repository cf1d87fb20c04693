/* outq.c - see outq.h. */
#include "outq.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/uio.h>

/* Messages per writev: the kernel's IOV_MAX. A relay subscriber is sent thousands of ~500-byte
 * frames per loop iteration; each writev costs a syscall and, on loopback, the receiver's TCP
 * input too, so fewer and bigger writes are what makes fan-out cheap (issue 9). */
#define OUTQ_IOV_MAX 1024

struct msgchunk {
    struct msgpool *pool;  /* the owner, or NULL once msgpool_free() let go of it */
    uint32_t live;         /* messages carved and not released, + 1 while it is pool->cur */
    uint32_t used;         /* bytes carved, this header included */
    struct msgchunk *next; /* in pool->free, or in pool->busy (full, messages still live) */
    struct msgchunk *prev; /* in pool->busy */
};

#define MSGCHUNK_ALIGN 8u

struct msgref *msgref_new(uint32_t len)
{
    struct msgref *m = malloc(sizeof(*m) + len);
    if (!m)
        return NULL;
    m->refs = 1;
    m->len = len;
    m->chunk = NULL;
    return m;
}

static struct msgchunk *chunk_map(void)
{
    /* Populated at once: one fault per page as frames are carved would cost more. */
    void *c = mmap(NULL, MSGPOOL_CHUNK_BYTES, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
    return c == MAP_FAILED ? NULL : c;
}

static void busy_unlink(struct msgpool *p, struct msgchunk *c)
{
    if (c->prev)
        c->prev->next = c->next;
    else
        p->busy = c->next;
    if (c->next)
        c->next->prev = c->prev;
    c->next = c->prev = NULL;
}

static void chunk_release(struct msgchunk *c)
{
    if (--c->live > 0)
        return;
    struct msgpool *p = c->pool;
    if (p && p->cur != c)
        busy_unlink(p, c);
    if (p && p->n_free < MSGPOOL_KEEP) {
        c->next = p->free;
        p->free = c;
        p->n_free++;
        return;
    }
    munmap(c, MSGPOOL_CHUNK_BYTES);
}

struct msgref *msgpool_new(struct msgpool *p, uint32_t len)
{
    uint32_t need =
        (uint32_t)((sizeof(struct msgref) + len + MSGCHUNK_ALIGN - 1) & ~(MSGCHUNK_ALIGN - 1));
    uint32_t hdr =
        (uint32_t)((sizeof(struct msgchunk) + MSGCHUNK_ALIGN - 1) & ~(MSGCHUNK_ALIGN - 1));
    if (len > MSGPOOL_CHUNK_BYTES / 8)
        return msgref_new(len);
    struct msgchunk *c = p->cur;
    if (!c || MSGPOOL_CHUNK_BYTES - c->used < need) {
        if (c) {
            p->cur = NULL;
            c->prev = NULL;
            c->next = p->busy;
            if (p->busy)
                p->busy->prev = c;
            p->busy = c;
            chunk_release(c); /* the pool's hold on it */
        }
        if (p->free) {
            c = p->free;
            p->free = c->next;
            p->n_free--;
        } else if ((c = chunk_map()) != NULL) {
            p->chunks_mapped++;
        } else {
            return NULL;
        }
        c->pool = p;
        c->live = 1;
        c->used = hdr;
        c->next = c->prev = NULL;
        p->cur = c;
    }
    struct msgref *m = (struct msgref *)((uint8_t *)c + c->used);
    c->used += need;
    c->live++;
    m->refs = 1;
    m->len = len;
    m->chunk = c;
    return m;
}

void msgpool_free(struct msgpool *p)
{
    while (p->free) {
        struct msgchunk *c = p->free;
        p->free = c->next;
        munmap(c, MSGPOOL_CHUNK_BYTES);
    }
    p->n_free = 0;
    while (p->busy) { /* their last messages unmap them */
        struct msgchunk *c = p->busy;
        busy_unlink(p, c);
        c->pool = NULL;
    }
    if (p->cur) {
        struct msgchunk *c = p->cur;
        p->cur = NULL;
        c->pool = NULL;
        chunk_release(c);
    }
}

void msgref_free(struct msgref *m)
{
    if (m->chunk)
        chunk_release(m->chunk);
    else
        free(m);
}

enum fc_err outq_init(struct outq *q, uint32_t max_msgs, uint64_t max_bytes)
{
    uint32_t cap = 16;
    if (max_msgs > (1u << 24))
        return FC_LIMIT;
    while (cap < max_msgs)
        cap <<= 1;
    q->ring = calloc(cap, sizeof(*q->ring));
    if (!q->ring)
        return FC_NOMEM;
    q->mask = cap - 1;
    q->head = q->tail = q->head_off = 0;
    q->bytes = 0;
    q->max_bytes = max_bytes;
    return FC_OK;
}

void outq_clear(struct outq *q)
{
    while (q->head != q->tail)
        msgref_put(q->ring[q->head++ & q->mask]);
    q->head = q->tail = q->head_off = 0;
    q->bytes = 0;
}

void outq_free(struct outq *q)
{
    if (!q->ring)
        return;
    outq_clear(q);
    free(q->ring);
    q->ring = NULL;
}

enum fc_err outq_push(struct outq *q, struct msgref *m)
{
    if (q->tail - q->head > q->mask || q->bytes + m->len > q->max_bytes)
        return FC_LIMIT;
    q->ring[q->tail++ & q->mask] = msgref_get(m);
    q->bytes += m->len;
    return FC_OK;
}

static void consume(struct outq *q, size_t n)
{
    q->bytes -= n;
    while (n > 0) {
        struct msgref *m = q->ring[q->head & q->mask];
        size_t left = m->len - q->head_off;
        if (n < left) {
            q->head_off += (uint32_t)n;
            return;
        }
        n -= left;
        msgref_put(m);
        q->head++;
        q->head_off = 0;
    }
}

enum fc_err outq_flush(struct outq *q, int fd)
{
    struct iovec iov[OUTQ_IOV_MAX];
    while (q->head != q->tail) {
        int n = 0;
        for (uint32_t i = q->head; i != q->tail && n < OUTQ_IOV_MAX; i++, n++) {
            struct msgref *m = q->ring[i & q->mask];
            uint32_t off = i == q->head ? q->head_off : 0;
            iov[n].iov_base = m->data + off;
            iov[n].iov_len = m->len - off;
        }
        ssize_t w = writev(fd, iov, n);
        if (w == 0 && q->bytes == 0) {
            outq_clear(q); /* only empty messages: nothing will ever be written */
            return FC_OK;
        }
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return errno == EAGAIN || errno == EWOULDBLOCK ? FC_AGAIN : FC_IO;
        }
        consume(q, (size_t)w);
    }
    return FC_OK;
}

bool outq_shift(struct outq *q)
{
    if (q->head == q->tail || q->head_off != 0)
        return false;
    struct msgref *m = q->ring[q->head++ & q->mask];
    q->bytes -= m->len;
    msgref_put(m);
    return true;
}
