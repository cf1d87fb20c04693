/*
 * test_outq.c - unit tests for reference-counted messages and the bounded send queue
 * (shared/outq.c).
 *
 * outq.c is included here with malloc/calloc/free routed through counters, so a test can tell
 * the exact moment a message is freed without touching freed memory. Run the SAN build too:
 * LeakSanitizer catches a reference that is never released, ASan one released twice.
 * Flushing is tested over a non-blocking AF_UNIX socketpair with small buffers, so writev()
 * stops part-way through messages.
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

/* ---- allocation counters for the included outq.c ---- */

static size_t n_allocs, n_frees;
static const void *watch; /* free() of this pointer sets watch_freed */
static bool watch_freed;

static void *count_malloc(size_t n)
{
    n_allocs++;
    return malloc(n);
}

static void *count_calloc(size_t n, size_t size)
{
    n_allocs++;
    return calloc(n, size);
}

static void count_free(void *p)
{
    if (!p)
        return;
    n_frees++;
    if (p == watch)
        watch_freed = true;
    free(p);
}

#define malloc(n) count_malloc(n)
#define calloc(n, s) count_calloc(n, s)
#define free(p) count_free(p)
#include "../../shared/outq.c"
#undef malloc
#undef calloc
#undef free

#define SNDBUF_BYTES 4096 /* small, so writev() writes part of what it is given */

/* ---- helpers ---- */

static uint32_t lcg(uint32_t *seed)
{
    *seed = *seed * 1103515245u + 12345u;
    return *seed >> 8;
}

/* A message of `len` bytes with a recognisable pattern. */
static struct msgref *make_msg(uint32_t len, uint32_t *seed)
{
    struct msgref *m = msgref_new(len);
    assert_non_null(m);
    assert_int_equal(m->refs, 1);
    assert_int_equal(m->len, len);
    for (uint32_t i = 0; i < len; i++)
        m->data[i] = (uint8_t)lcg(seed);
    return m;
}

static void watch_msg(const struct msgref *m)
{
    watch = m;
    watch_freed = false;
}

static void set_nonblock(int fd)
{
    int fl = fcntl(fd, F_GETFL);
    assert_true(fl >= 0);
    assert_int_equal(fcntl(fd, F_SETFL, fl | O_NONBLOCK), 0);
}

/* sv[0] writes (non-blocking, small SO_SNDBUF), sv[1] reads (non-blocking). */
static void make_pair(int sv[2])
{
    int sz = SNDBUF_BYTES;
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    assert_int_equal(setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &sz, sizeof(sz)), 0);
    assert_int_equal(setsockopt(sv[1], SOL_SOCKET, SO_RCVBUF, &sz, sizeof(sz)), 0);
    set_nonblock(sv[0]);
    set_nonblock(sv[1]);
}

/* Read up to `max` bytes from `fd` into out[*len...]; returns bytes read (0 if none ready). */
static size_t drain(int fd, uint8_t *out, size_t *len, size_t cap, size_t max)
{
    size_t room = cap - *len;
    if (max > room)
        max = room;
    if (max == 0)
        return 0;
    ssize_t n = read(fd, out + *len, max);
    if (n < 0) {
        assert_true(errno == EAGAIN || errno == EWOULDBLOCK);
        return 0;
    }
    *len += (size_t)n;
    return (size_t)n;
}

static int group_setup(void **state)
{
    /* A write to a closed peer must return EPIPE, not kill the test (STYLE.md). */
    signal(SIGPIPE, SIG_IGN);
    return 0;
}

/* ---- msgref ---- */

static void test_msgref_refs(void **state)
{
    uint32_t seed = 1;
    size_t frees = n_frees;
    struct msgref *m = make_msg(100, &seed);
    watch_msg(m);
    assert_ptr_equal(msgref_get(m), m);
    assert_int_equal(m->refs, 2);
    msgref_put(m);
    assert_int_equal(m->refs, 1);
    assert_false(watch_freed);
    msgref_put(m);
    assert_true(watch_freed);
    assert_int_equal(n_frees, frees + 1);
    msgref_put(NULL);
    assert_int_equal(n_frees, frees + 1);

    /* Zero-length messages are allocatable. */
    m = msgref_new(0);
    assert_non_null(m);
    msgref_put(m);
}

/* A message shared by three queues is freed only when the last one lets go. */
static void test_refs_across_queues(void **state)
{
    struct outq q1 = {0}, q2 = {0}, q3 = {0};
    uint32_t seed = 2;
    uint8_t got[512];
    size_t got_len = 0;
    int sv[2];

    assert_int_equal(outq_init(&q1, 16, 1 << 20), FC_OK);
    assert_int_equal(outq_init(&q2, 16, 1 << 20), FC_OK);
    assert_int_equal(outq_init(&q3, 16, 1 << 20), FC_OK);
    struct msgref *m = make_msg(300, &seed);
    uint8_t copy[300];
    memcpy(copy, m->data, sizeof(copy));
    watch_msg(m);
    assert_int_equal(outq_push(&q1, m), FC_OK);
    assert_int_equal(outq_push(&q2, m), FC_OK);
    assert_int_equal(outq_push(&q3, m), FC_OK);
    assert_int_equal(m->refs, 4);
    msgref_put(m); /* the producer's reference */
    assert_int_equal(m->refs, 3);

    outq_free(&q1);
    assert_false(watch_freed);
    assert_int_equal(m->refs, 2);
    assert_null(q1.ring);
    outq_free(&q1); /* twice is harmless */

    outq_clear(&q2);
    assert_false(watch_freed);
    assert_int_equal(m->refs, 1);
    assert_int_equal(outq_count(&q2), 0);
    assert_int_equal(q2.bytes, 0);

    make_pair(sv);
    assert_int_equal(outq_flush(&q3, sv[0]), FC_OK);
    assert_true(watch_freed); /* sent completely: the last reference went with it */
    assert_int_equal(outq_count(&q3), 0);
    while (got_len < sizeof(copy))
        assert_true(drain(sv[1], got, &got_len, sizeof(got), sizeof(got)) > 0);
    assert_memory_equal(got, copy, sizeof(copy));

    outq_free(&q2);
    outq_free(&q3);
    close(sv[0]);
    close(sv[1]);
}

/* outq_free() and outq_clear() release every queued reference, whatever was half-sent. */
static void test_free_releases_everything(void **state)
{
    struct outq q = {0};
    uint32_t seed = 3;
    int sv[2];
    size_t allocs = n_allocs, frees = n_frees;

    make_pair(sv);
    assert_int_equal(outq_init(&q, 64, 1 << 24), FC_OK);
    for (int i = 0; i < 40; i++) {
        struct msgref *m = make_msg(5000, &seed);
        assert_int_equal(outq_push(&q, m), FC_OK);
        msgref_put(m);
    }
    /* Nobody reads: part goes out, the head message is left half-written. */
    assert_int_equal(outq_flush(&q, sv[0]), FC_AGAIN);
    assert_true(outq_count(&q) > 0 && outq_count(&q) < 40);
    outq_free(&q);
    assert_int_equal(n_allocs - allocs, n_frees - frees); /* 40 messages + the ring */
    close(sv[0]);
    close(sv[1]);
}

/* ---- caps ---- */

static void test_push_cap_messages(void **state)
{
    const uint32_t caps[] = {16, 20, 64, 100};
    uint32_t seed = 4;
    for (size_t c = 0; c < FC_ARRAY_LEN(caps); c++) {
        struct outq q = {0};
        uint32_t pow2 = 1;
        while (pow2 < caps[c])
            pow2 <<= 1;
        assert_int_equal(outq_init(&q, caps[c], UINT64_MAX / 2), FC_OK);
        struct msgref *m = make_msg(10, &seed);
        watch_msg(m);
        uint32_t pushed = 0;
        while (outq_push(&q, m) == FC_OK)
            pushed++;
        assert_true(pushed >= caps[c]);
        assert_int_equal(pushed, pow2); /* "rounded up to a power of two" */
        assert_int_equal(outq_count(&q), pushed);
        /* A refused push takes no reference. */
        assert_int_equal(m->refs, 1 + pushed);
        assert_int_equal(outq_push(&q, m), FC_LIMIT);
        assert_int_equal(m->refs, 1 + pushed);
        assert_int_equal(q.bytes, (uint64_t)pushed * 10);
        outq_free(&q);
        assert_int_equal(m->refs, 1);
        assert_false(watch_freed);
        msgref_put(m);
        assert_true(watch_freed);
    }
}

static void test_push_cap_bytes(void **state)
{
    struct outq q = {0};
    uint32_t seed = 5;
    int sv[2];
    struct msgref *m300 = make_msg(300, &seed), *m100 = make_msg(100, &seed);
    struct msgref *m1 = make_msg(1, &seed), *m1001 = make_msg(1001, &seed);

    assert_int_equal(outq_init(&q, 1024, 1000), FC_OK);
    assert_int_equal(outq_push(&q, m1001), FC_LIMIT); /* alone over the cap */
    assert_int_equal(m1001->refs, 1);
    for (int i = 0; i < 3; i++)
        assert_int_equal(outq_push(&q, m300), FC_OK);
    assert_int_equal(outq_push(&q, m300), FC_LIMIT);
    assert_int_equal(outq_push(&q, m100), FC_OK); /* exactly at the cap is allowed */
    assert_int_equal(q.bytes, 1000);
    assert_int_equal(outq_push(&q, m1), FC_LIMIT);
    assert_int_equal(m300->refs, 4);
    assert_int_equal(m1->refs, 1);

    /* Sending frees room again. */
    make_pair(sv);
    assert_int_equal(outq_flush(&q, sv[0]), FC_OK);
    assert_int_equal(q.bytes, 0);
    assert_int_equal(m300->refs, 1);
    assert_int_equal(outq_push(&q, m1), FC_OK);
    outq_clear(&q);
    assert_int_equal(q.bytes, 0);
    for (int i = 0; i < 3; i++)
        assert_int_equal(outq_push(&q, m300), FC_OK);
    outq_free(&q);

    msgref_put(m300);
    msgref_put(m100);
    msgref_put(m1);
    msgref_put(m1001);
    close(sv[0]);
    close(sv[1]);
}

/* ---- flushing ---- */

#define STREAM_BYTES (2 * 1024 * 1024)
static uint8_t sent[STREAM_BYTES], got[STREAM_BYTES];

/*
 * Push `n_msgs` messages of random size (1..max_len) into a queue of `max_msgs`, flushing and
 * reading random amounts in between; the reader must get exactly the concatenation. Returns
 * how many times a flush stopped in the middle of a message.
 */
static size_t run_stream(uint32_t seed, uint32_t n_msgs, uint32_t max_len, uint32_t max_msgs)
{
    struct outq q = {0};
    int sv[2];
    size_t sent_len = 0, got_len = 0, mid_message = 0, agains = 0;
    uint32_t next = 0;

    make_pair(sv);
    assert_int_equal(outq_init(&q, max_msgs, 256 * 1024), FC_OK);
    while (next < n_msgs || outq_count(&q) > 0 || got_len < sent_len) {
        /* Queue as much as the caps allow. */
        while (next < n_msgs) {
            uint32_t len = 1 + lcg(&seed) % max_len;
            assert_true(sent_len + len <= STREAM_BYTES);
            struct msgref *m = make_msg(len, &seed);
            enum fc_err err = outq_push(&q, m);
            if (err == FC_OK) {
                memcpy(sent + sent_len, m->data, len);
                sent_len += len;
                next++;
            } else {
                assert_int_equal(err, FC_LIMIT);
            }
            msgref_put(m);
            if (err != FC_OK)
                break;
        }
        uint64_t before = q.bytes;
        enum fc_err err = outq_flush(&q, sv[0]);
        assert_true(err == FC_OK || err == FC_AGAIN);
        if (err == FC_OK) {
            assert_int_equal(outq_count(&q), 0);
            assert_int_equal(q.bytes, 0);
        } else {
            agains++;
            assert_true(outq_count(&q) > 0);
            assert_true(q.bytes > 0 && q.bytes <= before);
            if (q.head_off > 0)
                mid_message++;
        }
        /* Bytes queued + bytes handed to the socket = bytes pushed. */
        size_t in_socket = sent_len - (size_t)q.bytes;
        assert_true(in_socket >= got_len);
        drain(sv[1], got, &got_len, sizeof(got), 1 + lcg(&seed) % 4000);
    }
    assert_int_equal(got_len, sent_len);
    assert_memory_equal(got, sent, sent_len);
    assert_true(agains > 0);
    outq_free(&q);
    close(sv[0]);
    close(sv[1]);
    return mid_message;
}

static void test_flush_partial_writes(void **state)
{
    size_t mid = 0;
    /* Frame-sized messages; small messages (64 per writev); large ones; a ring that wraps. */
    mid += run_stream(10, 2000, 600, 256);
    mid += run_stream(11, 5000, 20, 1024);
    mid += run_stream(12, 300, 9000, 32);
    mid += run_stream(13, 3000, 200, 16);
    assert_true(mid > 0); /* partial writes did happen and were resumed */
}

/* Resume offset by hand: one big message, read in small pieces. */
static void test_flush_resume_offset(void **state)
{
    struct outq q = {0};
    uint32_t seed = 14;
    int sv[2];
    static uint8_t out[200000];
    size_t out_len = 0;
    uint32_t last_off = 0;
    bool moved = false;

    make_pair(sv);
    assert_int_equal(outq_init(&q, 16, 1 << 20), FC_OK);
    struct msgref *m = make_msg(150000, &seed);
    struct msgref *tail = make_msg(7, &seed);
    watch_msg(m);
    assert_int_equal(outq_push(&q, m), FC_OK);
    assert_int_equal(outq_push(&q, tail), FC_OK);
    msgref_put(m);
    for (;;) {
        enum fc_err err = outq_flush(&q, sv[0]);
        if (err == FC_OK)
            break;
        assert_int_equal(err, FC_AGAIN);
        if (!watch_freed) {
            assert_true(q.head_off >= last_off);
            if (q.head_off > 0 && q.head_off < 150000)
                moved = true;
            last_off = q.head_off;
            assert_int_equal(q.bytes, 150000 - q.head_off + 7);
        }
        drain(sv[1], out, &out_len, sizeof(out), 3000);
    }
    assert_true(moved);
    assert_true(watch_freed);
    while (drain(sv[1], out, &out_len, sizeof(out), sizeof(out)) > 0)
        ;
    assert_int_equal(out_len, 150007);
    /* Compare against a regenerated copy of the pattern. */
    uint32_t s2 = 14;
    for (size_t i = 0; i < 150000; i++)
        assert_int_equal(out[i], (uint8_t)lcg(&s2));
    assert_memory_equal(out + 150000, tail->data, 7);
    msgref_put(tail);
    outq_free(&q);
    close(sv[0]);
    close(sv[1]);
}

static void test_flush_empty(void **state)
{
    struct outq q = {0};
    int sv[2];
    make_pair(sv);
    assert_int_equal(outq_init(&q, 16, 100), FC_OK);
    assert_int_equal(outq_flush(&q, sv[0]), FC_OK);
    outq_free(&q);
    close(sv[0]);
    close(sv[1]);
}

static void test_flush_peer_closed(void **state)
{
    struct outq q = {0};
    uint32_t seed = 15;
    int sv[2];

    /* Peer gone before anything was sent. */
    make_pair(sv);
    assert_int_equal(outq_init(&q, 16, 1 << 20), FC_OK);
    struct msgref *m = make_msg(100, &seed);
    assert_int_equal(outq_push(&q, m), FC_OK);
    close(sv[1]);
    errno = 0;
    assert_int_equal(outq_flush(&q, sv[0]), FC_IO);
    assert_true(errno == EPIPE || errno == ECONNRESET);
    assert_int_equal(outq_count(&q), 1); /* nothing consumed */
    assert_int_equal(m->refs, 2);
    outq_free(&q);
    assert_int_equal(m->refs, 1);
    msgref_put(m);
    close(sv[0]);

    /* Peer gone half-way through: FC_AGAIN first, then FC_IO. */
    make_pair(sv);
    assert_int_equal(outq_init(&q, 64, 1 << 22), FC_OK);
    for (int i = 0; i < 50; i++) {
        m = make_msg(10000, &seed);
        assert_int_equal(outq_push(&q, m), FC_OK);
        msgref_put(m);
    }
    assert_int_equal(outq_flush(&q, sv[0]), FC_AGAIN);
    close(sv[1]);
    errno = 0;
    assert_int_equal(outq_flush(&q, sv[0]), FC_IO);
    assert_true(errno == EPIPE || errno == ECONNRESET);
    outq_free(&q);
    close(sv[0]);

    /* A bad descriptor is an I/O error too, not a loop. */
    assert_int_equal(outq_init(&q, 16, 1 << 20), FC_OK);
    m = make_msg(10, &seed);
    assert_int_equal(outq_push(&q, m), FC_OK);
    msgref_put(m);
    assert_int_equal(outq_flush(&q, -1), FC_IO);
    assert_int_equal(errno, EBADF);
    outq_free(&q);
}

/* After outq_clear() mid-message the next message starts from its first byte. */
static void test_clear_resets_offset(void **state)
{
    struct outq q = {0};
    uint32_t seed = 16;
    int sv[2];
    static uint8_t out[300000];
    size_t out_len = 0;

    make_pair(sv);
    assert_int_equal(outq_init(&q, 16, 1 << 20), FC_OK);
    struct msgref *big = make_msg(200000, &seed);
    assert_int_equal(outq_push(&q, big), FC_OK);
    msgref_put(big);
    assert_int_equal(outq_flush(&q, sv[0]), FC_AGAIN);
    assert_true(q.head_off > 0);
    outq_clear(&q);
    assert_int_equal(q.head_off, 0);
    while (drain(sv[1], out, &out_len, sizeof(out), sizeof(out)) > 0)
        ;
    size_t before = out_len;
    struct msgref *small = make_msg(50, &seed);
    assert_int_equal(outq_push(&q, small), FC_OK);
    assert_int_equal(outq_flush(&q, sv[0]), FC_OK);
    while (drain(sv[1], out, &out_len, sizeof(out), sizeof(out)) > 0)
        ;
    assert_int_equal(out_len - before, 50);
    assert_memory_equal(out + before, small->data, 50);
    msgref_put(small);
    outq_free(&q);
    close(sv[0]);
    close(sv[1]);
}

/* ---- msgpool (issue 9) ---- */

#define POOL_MSGS 10000
#define POOL_LEN 500 /* a frame message; ~2,000 to a chunk */

/* Carved messages never overlap and stay intact; chunks are reused once emptied, whatever the
 * order messages are released in; a message too big for a chunk is allocated alone. */
static void test_msgpool_carve_and_reuse(void **state)
{
    static struct msgref *ms[POOL_MSGS];
    struct msgpool pool = {0};
    uint32_t seed = 42, check = 42;
    for (int round = 0; round < 3; round++) {
        seed = check = 42 + (uint32_t)round;
        for (int i = 0; i < POOL_MSGS; i++) {
            ms[i] = msgpool_new(&pool, POOL_LEN + (uint32_t)(i % 7));
            assert_non_null(ms[i]);
            assert_non_null(ms[i]->chunk);
            assert_int_equal(ms[i]->refs, 1);
            for (uint32_t j = 0; j < ms[i]->len; j++)
                ms[i]->data[j] = (uint8_t)lcg(&seed);
        }
        for (int i = 0; i < POOL_MSGS; i++) {
            assert_int_equal(ms[i]->len, POOL_LEN + (uint32_t)(i % 7));
            for (uint32_t j = 0; j < ms[i]->len; j++)
                assert_int_equal(ms[i]->data[j], (uint8_t)lcg(&check));
        }
        uint64_t mapped = pool.chunks_mapped;
        assert_true(mapped >= (uint64_t)POOL_MSGS * POOL_LEN / MSGPOOL_CHUNK_BYTES);
        if (round > 0) /* everything was released last round: no chunk newly mapped beyond */
            assert_true(mapped <= (uint64_t)MSGPOOL_KEEP + 2 * POOL_MSGS * (POOL_LEN + 24) /
                                                            MSGPOOL_CHUNK_BYTES + 1);
        /* Release: odd ones forwards with an extra reference held a while, even ones backwards. */
        for (int i = 1; i < POOL_MSGS; i += 2) {
            msgref_get(ms[i]);
            msgref_put(ms[i]);
        }
        for (int i = POOL_MSGS - 2; i >= 0; i -= 2)
            msgref_put(ms[i]);
        for (int i = 1; i < POOL_MSGS; i += 2)
            msgref_put(ms[i]);
        assert_true(pool.n_free <= MSGPOOL_KEEP);
        assert_null(pool.busy);
    }
    /* Reuse: as much again as the kept chunks hold maps nothing new. */
    uint64_t before = pool.chunks_mapped;
    int n_again = MSGPOOL_KEEP * (int)(MSGPOOL_CHUNK_BYTES / 1024) / 2; /* ~half of what they hold */
    assert_true(n_again <= POOL_MSGS);
    for (int i = 0; i < n_again; i++)
        ms[i] = msgpool_new(&pool, POOL_LEN);
    assert_int_equal(pool.chunks_mapped, before);
    for (int i = 0; i < n_again; i++)
        msgref_put(ms[i]);

    /* Too big for a chunk: malloc'd alone, freed by msgref_put as any other. */
    size_t allocs = n_allocs, frees = n_frees;
    struct msgref *big = msgpool_new(&pool, MSGPOOL_CHUNK_BYTES / 8 + 1);
    assert_non_null(big);
    assert_null(big->chunk);
    assert_int_equal(n_allocs, allocs + 1);
    msgref_put(big);
    assert_int_equal(n_frees, frees + 1);
    msgpool_free(&pool);
    assert_null(pool.free);
    assert_null(pool.cur);
}

/* msgpool_free() with messages still queued: they stay readable and are released later (ASan
 * checks the chunk is neither freed early nor leaked), and the pool can be used again. */
static void test_msgpool_free_with_live_messages(void **state)
{
    struct msgpool *pool = calloc(1, sizeof(*pool)); /* gone before its messages are */
    struct outq q = {0};
    assert_non_null(pool);
    int sv[2];
    make_pair(sv);
    assert_int_equal(outq_init(&q, 8192, 1 << 24), FC_OK);
    uint32_t seed = 7;
    for (int i = 0; i < 5000; i++) { /* more than one chunk: some full ("busy"), one current */
        struct msgref *m = msgpool_new(pool, POOL_LEN);
        assert_non_null(m);
        for (uint32_t j = 0; j < m->len; j++)
            m->data[j] = (uint8_t)lcg(&seed);
        assert_int_equal(outq_push(&q, m), FC_OK);
        msgref_put(m);
    }
    assert_non_null(pool->busy);
    msgpool_free(pool);
    assert_null(pool->busy);
    free(pool);
    /* Everything still reads back in order. */
    static uint8_t got[5000 * POOL_LEN];
    size_t len = 0;
    uint32_t check = 7;
    while (outq_count(&q) > 0) {
        enum fc_err err = outq_flush(&q, sv[0]);
        assert_true(err == FC_OK || err == FC_AGAIN);
        drain(sv[1], got, &len, sizeof(got), sizeof(got));
    }
    while (drain(sv[1], got, &len, sizeof(got), sizeof(got)) > 0)
        ;
    assert_int_equal(len, sizeof(got));
    for (size_t i = 0; i < len; i++)
        assert_int_equal(got[i], (uint8_t)lcg(&check));
    outq_free(&q);
    struct msgpool again = {0};
    struct msgref *m = msgpool_new(&again, POOL_LEN);
    assert_non_null(m);
    msgref_put(m);
    msgpool_free(&again);
    close(sv[0]);
    close(sv[1]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_msgref_refs),
        cmocka_unit_test(test_refs_across_queues),
        cmocka_unit_test(test_free_releases_everything),
        cmocka_unit_test(test_push_cap_messages),
        cmocka_unit_test(test_push_cap_bytes),
        cmocka_unit_test(test_flush_partial_writes),
        cmocka_unit_test(test_flush_resume_offset),
        cmocka_unit_test(test_flush_empty),
        cmocka_unit_test(test_flush_peer_closed),
        cmocka_unit_test(test_clear_resets_offset),
        cmocka_unit_test(test_msgpool_carve_and_reuse),
        cmocka_unit_test(test_msgpool_free_with_live_messages),
    };
    return cmocka_run_group_tests(tests, group_setup, NULL);
}
