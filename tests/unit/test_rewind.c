/*
 * test_rewind.c - unit tests for a mount's rewind buffer (edge/core/rewind.c, docs/architecture.md §6
 * "Rewind buffer"). Frames are synthetic but valid MP3: MPEG-1 Layer III, 128 kbps, 44.1 kHz,
 * no padding (header FF FB 90 44), so every frame is 417 bytes and 1152 samples (26122 µs
 * rounded down, as clock_samples_to_us() and the edge's output PTS count it). rewind_seek()
 * walks frames by parsing these headers. The rest of each frame is a pattern derived from the
 * frame's number, so any byte of the stream can be predicted from its absolute position.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "../../edge/core/rewind.c"

#define FRAME_LEN 417u                        /* 144 * 128000 / 44100, no padding */
#define FRAME_SAMPLES 1152u                   /* MPEG-1 Layer III */
#define FRAME_RATE 44100u
#define FRAME_US 26122u                       /* clock_samples_to_us(1152, 44100) */
#define BASE_PTS 1700000000000000ull          /* 2023-11-14, µs since the epoch */
#define FRAMES_PER_SLAB (REWIND_SLAB_BYTES / FRAME_LEN) /* 10058: no frame straddles a slab */
#define SLAB_USED (FRAMES_PER_SLAB * FRAME_LEN)          /* 4194186 bytes filled per slab */
#define FRAMES_PER_POINT 20u /* first n with n * FRAME_US >= REWIND_INDEX_US */
#define IOV_MAX_TEST 64

static struct rewind rw;

static uint8_t frame_byte(uint64_t k, uint32_t i)
{
    static const uint8_t hdr[4] = {0xFF, 0xFB, 0x90, 0x44};
    if (i < 4)
        return hdr[i];
    if (i < 12)
        return (uint8_t)(k >> (8 * (i - 4))); /* the frame's number, little-endian */
    return (uint8_t)(k * 29u + i * 13u + 5u);
}

static void make_frame(uint64_t k, uint8_t *buf)
{
    for (uint32_t i = 0; i < FRAME_LEN; i++)
        buf[i] = frame_byte(k, i);
}

/* The byte at absolute position `abs`, when every frame appended so far was FRAME_LEN long. */
static uint8_t stream_byte(uint64_t abs)
{
    return frame_byte(abs / FRAME_LEN, (uint32_t)(abs % FRAME_LEN));
}

static uint64_t pts_of(uint64_t k)
{
    return BASE_PTS + k * FRAME_US;
}

static void append_frames(uint64_t from, uint64_t to, uint8_t *ref)
{
    uint8_t buf[FRAME_LEN];
    for (uint64_t k = from; k < to; k++) {
        make_frame(k, buf);
        if (ref)
            memcpy(ref + k * FRAME_LEN, buf, FRAME_LEN);
        assert_int_equal(rewind_append(&rw, buf, FRAME_LEN, pts_of(k), FRAME_US), FC_OK);
    }
}

/* The iovecs from `abs`, gathered into `out` (capacity `cap`); returns the byte count. */
static size_t gather(uint64_t abs, uint8_t *out, size_t cap, int max_iov, size_t max_bytes,
                     int *n_iov)
{
    struct iovec iov[IOV_MAX_TEST];
    assert_true(max_iov <= IOV_MAX_TEST);
    int n = rewind_iov(&rw, abs, iov, max_iov, max_bytes);
    assert_true(n >= 0 && n <= max_iov);
    size_t total = 0;
    for (int i = 0; i < n; i++) {
        assert_true(iov[i].iov_len > 0);
        assert_true(total + iov[i].iov_len <= cap);
        memcpy(out + total, iov[i].iov_base, iov[i].iov_len);
        total += iov[i].iov_len;
    }
    if (n_iov)
        *n_iov = n;
    return total;
}

/* The first byte at `abs` (must be held), through rewind_iov(). */
static const uint8_t *bytes_at(uint64_t abs, size_t *len)
{
    struct iovec iov[1];
    int n = rewind_iov(&rw, abs, iov, 1, 4);
    assert_int_equal(n, 1);
    *len = iov[0].iov_len;
    return iov[0].iov_base;
}

/* Seek to `pts` and check the answer is frame `k` (k == frames: the end). */
static void expect_seek(uint64_t pts, uint64_t k, uint64_t frames)
{
    uint64_t found = 0;
    uint64_t abs = rewind_seek(&rw, pts, &found);
    assert_int_equal(abs, k * FRAME_LEN);
    if (k == frames) {
        assert_int_equal(abs, rw.abs_end);
        assert_int_equal(found, rw.end_pts_us);
        return;
    }
    assert_int_equal(found, pts_of(k));
    size_t len;
    const uint8_t *p = bytes_at(abs, &len);
    assert_true(len >= 4);
    assert_int_equal(p[0], 0xFF);
    assert_int_equal(p[1], 0xFB);
    assert_int_equal(p[4] | p[5] << 8 | p[6] << 16 | (uint32_t)p[7] << 24, (uint32_t)k);
}

static int setup_4h(void **state)
{
    return rewind_init(&rw, FC_CODEC_MP3, 4ull * 3600 * 1000000) == FC_OK ? 0 : -1;
}

static int teardown(void **state)
{
    rewind_free(&rw);
    return 0;
}

/* ---- tests ---- */

/* The synthetic frame is what the rest of the file assumes. */
static void test_synthetic_frame(void **state)
{
    uint8_t buf[FRAME_LEN];
    make_frame(7, buf);
    struct frame_info info;
    assert_int_equal(frame_header_parse(FC_CODEC_MP3, buf, sizeof(buf), &info), FC_OK);
    assert_int_equal(info.len, FRAME_LEN);
    assert_int_equal(info.samples, FRAME_SAMPLES);
    assert_int_equal(info.sample_rate, FRAME_RATE);
    assert_int_equal(info.bitrate, 128000);
    assert_int_equal(clock_samples_to_us(FRAME_SAMPLES, FRAME_RATE), FRAME_US);
    assert_int_equal(FRAMES_PER_SLAB, 10058);
    assert_true((FRAMES_PER_POINT - 1) * FRAME_US < REWIND_INDEX_US);
    assert_true(FRAMES_PER_POINT * FRAME_US >= REWIND_INDEX_US);
}

static void test_empty(void **state)
{
    uint64_t found = 99;
    assert_int_equal(rewind_seek(&rw, BASE_PTS, &found), 0);
    assert_int_equal(found, 0);
    assert_int_equal(rewind_first_pts(&rw), 0);
    assert_int_equal(rewind_bytes_held(&rw), 0);
    struct iovec iov[4];
    assert_int_equal(rewind_iov(&rw, 0, iov, 4, SIZE_MAX), 0);
}

static void test_append_limits(void **state)
{
    static uint8_t big[REWIND_SLAB_BYTES + 1];
    assert_int_equal(rewind_append(&rw, big, REWIND_SLAB_BYTES + 1, BASE_PTS, FRAME_US),
                     FC_LIMIT);
    assert_int_equal(rw.abs_end, 0);
    assert_int_equal(rw.frames, 0);
}

/* Seeks at the edges and everywhere in a small buffer (one slab). */
static void test_seek_small(void **state)
{
    enum { N = 200 };
    append_frames(0, N, NULL);
    assert_int_equal(rw.abs_end, N * FRAME_LEN);
    assert_int_equal(rw.end_pts_us, pts_of(N));
    assert_int_equal(rw.frames, N);
    assert_int_equal(rewind_first_pts(&rw), BASE_PTS);
    assert_int_equal(rewind_bytes_held(&rw), N * FRAME_LEN);

    expect_seek(pts_of(0), 0, N);                       /* first frame */
    expect_seek(pts_of(N - 1), N - 1, N);               /* last frame */
    expect_seek(pts_of(2 * FRAMES_PER_POINT), 2 * FRAMES_PER_POINT, N); /* on an index point */
    expect_seek(pts_of(30), 30, N);                     /* between index points */
    expect_seek(pts_of(30) - 1, 30, N);                 /* first frame with PTS >= target */
    expect_seek(pts_of(30) + 1, 31, N);
    expect_seek(pts_of(FRAMES_PER_POINT) - 1, FRAMES_PER_POINT, N); /* just before a point */
    expect_seek(pts_of(FRAMES_PER_POINT) + 1, FRAMES_PER_POINT + 1, N);
    expect_seek(BASE_PTS - 1, 0, N);                    /* older than the buffer: oldest */
    expect_seek(BASE_PTS - 3600ull * 1000000, 0, N);
    expect_seek(0, 0, N);
    expect_seek(pts_of(N - 1) + 1, N, N);               /* inside the last frame: the end */
    expect_seek(pts_of(N), N, N);                       /* newer than the end */
    expect_seek(pts_of(N) + 1000000, N, N);
    expect_seek(UINT64_MAX, N, N);

    for (uint64_t k = 0; k < N; k++) {
        expect_seek(pts_of(k), k, N);
        expect_seek(pts_of(k) + FRAME_US - 1, k + 1, N);
        if (k > 0)
            expect_seek(pts_of(k) - FRAME_US / 2, k, N);
    }
}

/* One index point per REWIND_INDEX_US of PTS, each on a frame boundary with that frame's PTS. */
static void test_index_points(void **state)
{
    enum { N = 1000 };
    append_frames(0, N, NULL);
    assert_int_equal(rw.n_index, (N + FRAMES_PER_POINT - 1) / FRAMES_PER_POINT);
    for (uint32_t i = 0; i < rw.n_index; i++) {
        const struct rewind_point *p = point_at(&rw, i);
        assert_int_equal(p->abs % FRAME_LEN, 0);
        assert_int_equal(p->pts_us, pts_of(p->abs / FRAME_LEN));
        if (i > 0) {
            uint64_t step = p->pts_us - point_at(&rw, i - 1)->pts_us;
            assert_true(step >= REWIND_INDEX_US);
            assert_true(step < REWIND_INDEX_US + FRAME_US);
        }
    }
}

/* More than two slabs: no frame straddles a slab, rewind_iov() returns exactly the bytes
 * appended from any frame boundary (compared with a reference copy), and seeks across slab
 * boundaries land on the right frame. */
static void test_iov_across_slabs(void **state)
{
    enum { N = 2 * FRAMES_PER_SLAB + 5000 };
    size_t total = (size_t)N * FRAME_LEN;
    uint8_t *ref = malloc(total);
    uint8_t *got = malloc(total);
    assert_non_null(ref);
    assert_non_null(got);
    append_frames(0, N, ref);
    assert_int_equal(rw.n_slabs, 3);
    assert_int_equal(slab_at(&rw, 0)->used, SLAB_USED);
    assert_int_equal(slab_at(&rw, 1)->abs_start, SLAB_USED);
    assert_int_equal(slab_at(&rw, 1)->used, SLAB_USED);
    assert_int_equal(slab_at(&rw, 2)->abs_start, 2 * SLAB_USED);
    assert_int_equal(rw.abs_end, total);
    assert_int_equal(rewind_bytes_held(&rw), total);

    static const uint64_t ks[] = {0,
                                  1,
                                  FRAMES_PER_SLAB - 1,
                                  FRAMES_PER_SLAB,
                                  FRAMES_PER_SLAB + 1,
                                  FRAMES_PER_SLAB + 2,
                                  12345,
                                  2 * FRAMES_PER_SLAB - 1,
                                  2 * FRAMES_PER_SLAB,
                                  2 * FRAMES_PER_SLAB + 1,
                                  N - 1};
    for (size_t i = 0; i < FC_ARRAY_LEN(ks); i++) {
        uint64_t abs = ks[i] * FRAME_LEN;
        int n_iov;
        size_t n = gather(abs, got, total, IOV_MAX_TEST, SIZE_MAX, &n_iov);
        assert_int_equal(n, total - abs);
        assert_memory_equal(got, ref + abs, n);
        assert_int_equal(n_iov, 3 - (int)(abs / SLAB_USED)); /* one iovec per slab */
        /* Seek to the frame's PTS, then read from there: the same bytes. */
        uint64_t found;
        assert_int_equal(rewind_seek(&rw, pts_of(ks[i]), &found), abs);
        assert_int_equal(found, pts_of(ks[i]));
    }
    /* Every frame, by seek; and a sampled check of every 97th frame's full tail. */
    for (uint64_t k = 0; k < N; k++) {
        uint64_t found;
        uint64_t abs = rewind_seek(&rw, pts_of(k), &found);
        assert_int_equal(abs, k * FRAME_LEN);
        assert_int_equal(found, pts_of(k));
        size_t len;
        const uint8_t *p = bytes_at(abs, &len);
        assert_memory_equal(p, ref + abs, len);
        if (k % 97 == 0) {
            size_t n = gather(abs, got, total, IOV_MAX_TEST, SIZE_MAX, NULL);
            assert_int_equal(n, total - abs);
            assert_memory_equal(got, ref + abs, n);
        }
    }
    /* Limits: max_iov and max_bytes, a slab boundary inside the limit. */
    {
        uint64_t abs = (FRAMES_PER_SLAB - 3) * FRAME_LEN;
        int n_iov;
        size_t n = gather(abs, got, total, 1, SIZE_MAX, &n_iov);
        assert_int_equal(n_iov, 1);
        assert_int_equal(n, SLAB_USED - abs);
        assert_memory_equal(got, ref + abs, n);
        n = gather(abs, got, total, IOV_MAX_TEST, 5 * FRAME_LEN, &n_iov);
        assert_int_equal(n_iov, 2);
        assert_int_equal(n, 5 * FRAME_LEN);
        assert_memory_equal(got, ref + abs, n);
        n = gather(abs, got, total, IOV_MAX_TEST, 1, &n_iov);
        assert_int_equal(n_iov, 1);
        assert_int_equal(n, 1);
        assert_int_equal(got[0], 0xFF);
    }
    /* Caught up: nothing. */
    struct iovec iov[4];
    assert_int_equal(rewind_iov(&rw, rw.abs_end, iov, 4, SIZE_MAX), 0);
    /* Appending more after a read: a cursor at the old end sees exactly the new frame. */
    uint64_t old_end = rw.abs_end;
    uint8_t buf[FRAME_LEN];
    make_frame(N, buf);
    assert_int_equal(rewind_append(&rw, buf, FRAME_LEN, pts_of(N), FRAME_US), FC_OK);
    assert_int_equal(gather(old_end, got, total, 4, SIZE_MAX, NULL), FRAME_LEN);
    assert_memory_equal(got, buf, FRAME_LEN);
    free(ref);
    free(got);
}

/* Frames of other sizes (padding, other bitrates) are walked by their own headers. */
static void test_mixed_frame_sizes(void **state)
{
    /* 128 kbps with the padding bit (418 bytes) and 320 kbps (1044/1045 bytes). */
    static const uint8_t hdrs[][4] = {
        {0xFF, 0xFB, 0x90, 0x44}, {0xFF, 0xFB, 0x92, 0x44}, {0xFF, 0xFB, 0xE0, 0x44},
        {0xFF, 0xFB, 0xE2, 0x44}};
    enum { N = 300 };
    uint64_t abs_of[N + 1];
    uint8_t buf[2048];
    uint64_t abs = 0;
    for (uint64_t k = 0; k < N; k++) {
        const uint8_t *h = hdrs[(k * 7) % 4];
        struct frame_info info;
        assert_int_equal(frame_header_parse(FC_CODEC_MP3, h, 4, &info), FC_OK);
        memset(buf, (int)k, sizeof(buf));
        memcpy(buf, h, 4);
        abs_of[k] = abs;
        assert_int_equal(rewind_append(&rw, buf, info.len, pts_of(k), FRAME_US), FC_OK);
        abs += info.len;
    }
    abs_of[N] = abs;
    for (uint64_t k = 0; k <= N; k++) {
        uint64_t found;
        assert_int_equal(rewind_seek(&rw, pts_of(k), &found), abs_of[k]);
        assert_int_equal(found, k < N ? pts_of(k) : rw.end_pts_us);
        if (k > 0)
            assert_int_equal(rewind_seek(&rw, pts_of(k) - 1, &found), abs_of[k]);
    }
}

/* Check the buffer against the stream appended so far (frames 0..appended-1). */
static void check_evicting_buffer(uint64_t appended, uint64_t keep_us)
{
    assert_int_equal(rw.abs_end, appended * FRAME_LEN);
    assert_int_equal(rw.abs_start % SLAB_USED, 0); /* whole slabs gone */
    assert_int_equal(rw.evicted_bytes, rw.abs_start);
    assert_int_equal(slab_at(&rw, 0)->abs_start, rw.abs_start);
    /* Each remaining slab is contiguous with the next. */
    for (uint32_t i = 0; i + 1 < rw.n_slabs; i++)
        assert_int_equal(slab_at(&rw, i)->abs_start + slab_at(&rw, i)->used,
                         slab_at(&rw, i + 1)->abs_start);
    /* The first index point is the first frame boundary on a point inside the oldest slab. */
    uint64_t first = rewind_first_pts(&rw);
    uint64_t first_abs = point_at(&rw, 0)->abs;
    assert_true(first_abs >= rw.abs_start);
    assert_true(first_abs < rw.abs_start + FRAMES_PER_POINT * FRAME_LEN);
    assert_int_equal(first, pts_of(first_abs / FRAME_LEN));
    if (rw.abs_start > 0) {
        /* Still more than keep_us held; evicting one more slab would leave less. */
        assert_true(rw.end_pts_us - first >= keep_us);
    }
    if (rw.n_slabs > 1) {
        uint64_t next_start = slab_at(&rw, 1)->abs_start;
        uint64_t next_k = (next_start / FRAME_LEN + FRAMES_PER_POINT - 1) / FRAMES_PER_POINT *
                          FRAMES_PER_POINT;
        assert_true(rw.end_pts_us - pts_of(next_k) < keep_us);
    }
}

/* keep_us of 5 min with 4 MiB slabs (~262.7 s of 128 kbps each): old slabs go whole, the
 * oldest PTS moves forward, old seeks clamp to what is left, and a cursor at the start reads
 * the right bytes. Enough frames for the slab ring (16) and the index ring to wrap. */
static void test_eviction(void **state)
{
    const uint64_t keep_us = 300ull * 1000000;
    rewind_free(&rw);
    assert_int_equal(rewind_init(&rw, FC_CODEC_MP3, keep_us), FC_OK);
    enum { N = 20 * FRAMES_PER_SLAB + 1234 };
    uint8_t buf[FRAME_LEN];
    uint64_t last_start = 0, last_first_pts = BASE_PTS, evictions = 0;
    uint32_t max_slabs = 0;
    static uint8_t got[3 * FRAMES_PER_POINT * FRAME_LEN];
    for (uint64_t k = 0; k < N; k++) {
        make_frame(k, buf);
        assert_int_equal(rewind_append(&rw, buf, FRAME_LEN, pts_of(k), FRAME_US), FC_OK);
        if (rw.n_slabs > max_slabs)
            max_slabs = rw.n_slabs;
        uint64_t first = rewind_first_pts(&rw);
        assert_true(first >= last_first_pts);
        last_first_pts = first;
        if (rw.abs_start != last_start) {
            /* An eviction: by whole slabs only, one at a time here. */
            assert_int_equal(rw.abs_start - last_start, SLAB_USED);
            last_start = rw.abs_start;
            evictions++;
            check_evicting_buffer(k + 1, keep_us);
            /* A seek older than the buffer clamps to what is left (an index point within
             * REWIND_INDEX_US of the oldest byte), on a frame boundary that reads right. */
            uint64_t found;
            uint64_t abs = rewind_seek(&rw, BASE_PTS, &found);
            assert_true(abs >= rw.abs_start);
            assert_true(abs < rw.abs_start + FRAMES_PER_POINT * FRAME_LEN);
            assert_int_equal(abs % FRAME_LEN, 0);
            assert_int_equal(found, pts_of(abs / FRAME_LEN));
            assert_int_equal(found, rewind_first_pts(&rw));
            /* Bytes from the oldest byte held and from the seek result. */
            size_t n = gather(rw.abs_start, got, sizeof(got), IOV_MAX_TEST, sizeof(got), NULL);
            assert_int_equal(n, sizeof(got));
            for (size_t i = 0; i < n; i++)
                assert_int_equal(got[i], stream_byte(rw.abs_start + i));
            n = gather(abs, got, sizeof(got), IOV_MAX_TEST, sizeof(got), NULL);
            assert_int_equal(n, sizeof(got));
            for (size_t i = 0; i < n; i++)
                assert_int_equal(got[i], stream_byte(abs + i));
            /* A seek into the middle of what is held is exact. */
            uint64_t mid_k = (rw.abs_start + rw.abs_end) / 2 / FRAME_LEN;
            expect_seek(pts_of(mid_k), mid_k, k + 1);
        }
    }
    assert_true(evictions >= 15);
    assert_true(rw.slab_head != 0 || rw.slab_cap > 16);
    assert_true(max_slabs <= 3); /* 300 s fits in two 262.7 s slabs, plus the one filling */
    check_evicting_buffer(N, keep_us);
    /* Every frame still held is found by seek; everything older clamps. */
    uint64_t first_k = point_at(&rw, 0)->abs / FRAME_LEN;
    for (uint64_t k = first_k; k < N; k++)
        expect_seek(pts_of(k), k, N);
    expect_seek(pts_of(first_k / 2), first_k, N);
    expect_seek(pts_of(N) + 1, N, N);
    /* The whole tail from the oldest byte, byte by byte. */
    size_t held = (size_t)rewind_bytes_held(&rw);
    uint8_t *all = malloc(held);
    assert_non_null(all);
    assert_int_equal(gather(rw.abs_start, all, held, IOV_MAX_TEST, SIZE_MAX, NULL), held);
    for (size_t i = 0; i < held; i++)
        if (all[i] != stream_byte(rw.abs_start + i))
            fail_msg("byte %zu after abs_start differs", i);
    free(all);
}

/*
 * Regression: once a slab is evicted, the oldest frame held (at abs_start) must be reachable by
 * seek and be what rewind_first_pts() reports: every slab starts with an index point (index
 * points otherwise fall every 20 frames, which need not coincide with a slab's first frame).
 */
static void test_regress_first_pts_after_eviction(void **state)
{
    const uint64_t keep_us = 300ull * 1000000;
    rewind_free(&rw);
    assert_int_equal(rewind_init(&rw, FC_CODEC_MP3, keep_us), FC_OK);
    uint64_t k = 0;
    uint8_t buf[FRAME_LEN];
    while (rw.abs_start == 0) {
        make_frame(k, buf);
        assert_int_equal(rewind_append(&rw, buf, FRAME_LEN, pts_of(k), FRAME_US), FC_OK);
        k++;
    }
    uint64_t oldest_k = rw.abs_start / FRAME_LEN;
    assert_int_equal(oldest_k, FRAMES_PER_SLAB);
    uint64_t found;
    assert_int_equal(rewind_first_pts(&rw), pts_of(oldest_k));
    assert_int_equal(rewind_seek(&rw, BASE_PTS, &found), rw.abs_start);
    assert_int_equal(found, pts_of(oldest_k));
    assert_int_equal(rewind_seek(&rw, pts_of(oldest_k + 1), &found), (oldest_k + 1) * FRAME_LEN);
}

/* Memory: slabs, index and slab ring; within 5% of the audio once slabs are full. */
static void test_mem_ratio(void **state)
{
    for (uint64_t slabs = 1; slabs <= 6; slabs++) {
        append_frames((slabs - 1) * FRAMES_PER_SLAB, slabs * FRAMES_PER_SLAB, NULL);
        assert_int_equal(rw.n_slabs, slabs);
        uint64_t mem = rewind_mem_bytes(&rw), held = rewind_bytes_held(&rw);
        assert_int_equal(held, slabs * SLAB_USED);
        assert_int_equal(mem, slabs * REWIND_SLAB_BYTES +
                                  (uint64_t)rw.index_cap * sizeof(struct rewind_point) +
                                  (uint64_t)rw.slab_cap * sizeof(struct rewind_slab));
        if (slabs >= 3)
            assert_true((double)mem / (double)held <= 1.05);
    }
}

/* With eviction the overhead stays bounded: at most the filling slab's free space, one spare
 * slab and the rings, whatever was appended. */
static void test_mem_bounded_with_eviction(void **state)
{
    const uint64_t keep_us = 600ull * 1000000; /* 10 min: ~2.3 slabs */
    rewind_free(&rw);
    assert_int_equal(rewind_init(&rw, FC_CODEC_MP3, keep_us), FC_OK);
    enum { N = 8 * FRAMES_PER_SLAB };
    uint8_t buf[FRAME_LEN];
    for (uint64_t k = 0; k < N; k++) {
        make_frame(k, buf);
        assert_int_equal(rewind_append(&rw, buf, FRAME_LEN, pts_of(k), FRAME_US), FC_OK);
        if (k % 1000 != 0)
            continue;
        uint64_t mem = rewind_mem_bytes(&rw), held = rewind_bytes_held(&rw);
        uint64_t rings = (uint64_t)rw.index_cap * sizeof(struct rewind_point) +
                         (uint64_t)rw.slab_cap * sizeof(struct rewind_slab);
        assert_true(mem >= held);
        assert_true(mem - held <= 2ull * REWIND_SLAB_BYTES + rings);
        assert_true(rw.n_slabs <= 4);
    }
    assert_true(rw.abs_start > 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_synthetic_frame),
        cmocka_unit_test_setup_teardown(test_empty, setup_4h, teardown),
        cmocka_unit_test_setup_teardown(test_append_limits, setup_4h, teardown),
        cmocka_unit_test_setup_teardown(test_seek_small, setup_4h, teardown),
        cmocka_unit_test_setup_teardown(test_index_points, setup_4h, teardown),
        cmocka_unit_test_setup_teardown(test_iov_across_slabs, setup_4h, teardown),
        cmocka_unit_test_setup_teardown(test_mixed_frame_sizes, setup_4h, teardown),
        cmocka_unit_test_setup_teardown(test_eviction, setup_4h, teardown),
        cmocka_unit_test_setup_teardown(test_mem_ratio, setup_4h, teardown),
        cmocka_unit_test_setup_teardown(test_mem_bounded_with_eviction, setup_4h, teardown),
        cmocka_unit_test_setup_teardown(test_regress_first_pts_after_eviction, setup_4h, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
