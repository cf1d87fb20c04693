/* outq.c - see outq.h. */
#include "outq.h"

#include <errno.h>
#include <stdlib.h>
#include <sys/uio.h>

#define OUTQ_IOV_MAX 64

struct msgref *msgref_new(uint32_t len)
{
    struct msgref *m = malloc(sizeof(*m) + len);
    if (!m)
        return NULL;
    m->refs = 1;
    m->len = len;
    return m;
}

void msgref_put(struct msgref *m)
{
    if (m && --m->refs == 0)
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
