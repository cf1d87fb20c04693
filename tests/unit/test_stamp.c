/*
 * test_stamp.c - the shim's PTS anchoring (encoder-shim/stamp.c, docs/architecture.md §3.3).
 * Arrival times are synthetic wall-clock µs values. Frames are MP3 Layer III: 1152 samples, at
 * 44.1 kHz (26122 µs rounded down) unless a test changes the rate. "Real time" means a frame
 * arrives when its last sample would have played on the sample clock.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "../../encoder-shim/stamp.c"

#define SAMPLES 1152u
#define RATE 44100u
#define FRAME_US 26122u                 /* clock_samples_to_us(1152, 44100) */
#define T0_US 1700000000000000ull       /* first arrival, µs since the epoch */
#define BATCH_MAX 512                   /* SHIM_BATCH_FRAMES */
#define SEC 1000000ull

static struct stamper st;
static uint16_t samples[BATCH_MAX];
static uint32_t rates[BATCH_MAX];
static uint64_t pts[BATCH_MAX];

/* Start time of sample count `n` at `rate` relative to an anchor. */
static uint64_t s_us(uint64_t n, uint32_t rate)
{
    return clock_samples_to_us(n, rate);
}

/* Stamp `n` frames of `rate` arriving at `arrival_us`; returns stamper_batch()'s answer. */
static bool batch(uint64_t arrival_us, size_t n, uint32_t rate)
{
    assert_true(n <= BATCH_MAX);
    for (size_t i = 0; i < n; i++) {
        samples[i] = SAMPLES;
        rates[i] = rate;
    }
    return stamper_batch(&st, arrival_us, samples, rates, n, pts);
}

static uint32_t lcg(uint32_t *seed)
{
    *seed = *seed * 1103515245u + 12345u;
    return *seed >> 8;
}

static int setup(void **state)
{
    memset(&st, 0, sizeof(st));
    return 0;
}

/* ---- tests ---- */

static void test_duration(void **state)
{
    assert_int_equal(s_us(SAMPLES, RATE), FRAME_US);
    assert_true(SHIM_REANCHOR_US == 200000);
}

/* Frames arriving exactly on the sample clock: PTS = first arrival − one frame + k frames'
 * worth of samples, exactly, for ten minutes; the anchor never moves. */
static void test_realtime_exact(void **state)
{
    const uint64_t n = 10 * 60 * SEC / FRAME_US;
    const uint64_t anchor = T0_US - FRAME_US;
    for (uint64_t k = 0; k < n; k++) {
        uint64_t arrival = anchor + s_us((k + 1) * SAMPLES, RATE);
        assert_false(batch(arrival, 1, RATE));
        assert_int_equal(pts[0], anchor + s_us(k * SAMPLES, RATE));
        if (k == 0)
            assert_int_equal(pts[0], T0_US - FRAME_US);
    }
    assert_int_equal(st.anchor_us, anchor);
    assert_int_equal(st.reanchors, 0);
}

/* One frame every 26122 µs (the rounded duration): PTS = first arrival − 26122 + k * 26122
 * to the µs (the sample clock's extra 0.45 µs per frame pulls the anchor back, nothing more). */
static void test_realtime_rounded(void **state)
{
    const uint64_t n = 10 * 60 * SEC / FRAME_US;
    uint64_t prev = 0;
    for (uint64_t k = 0; k < n; k++) {
        uint64_t arrival = T0_US + k * FRAME_US;
        assert_false(batch(arrival, 1, RATE));
        int64_t want = (int64_t)(T0_US - FRAME_US + k * FRAME_US);
        int64_t d = (int64_t)pts[0] - want;
        assert_true(d >= -1 && d <= 0);
        if (k > 0) {
            int64_t step = (int64_t)(pts[0] - prev);
            assert_true(step >= (int64_t)FRAME_US - 1 && step <= (int64_t)FRAME_US + 1);
        }
        /* No frame ends after it arrived. */
        assert_true(pts[0] + FRAME_US <= arrival + 1);
        prev = pts[0];
    }
    assert_int_equal(st.reanchors, 0);
}

/* A burst of 150 frames at once (a server's burst on connect) is stamped in the past: the last
 * one ends at the arrival time. Real time afterwards continues the same timeline. */
static void test_burst_on_connect(void **state)
{
    const uint64_t t = T0_US;
    assert_false(batch(t, 150, RATE));
    const uint64_t anchor = t - s_us(150 * SAMPLES, RATE);
    for (uint64_t k = 0; k < 150; k++)
        assert_int_equal(pts[k], anchor + s_us(k * SAMPLES, RATE));
    assert_int_equal(pts[149] + (s_us(150 * SAMPLES, RATE) - s_us(149 * SAMPLES, RATE)), t);
    assert_true(t - pts[0] > 3900000); /* ~3.9 s in the past */
    for (uint64_t k = 150; k < 150 + 2000; k++) {
        uint64_t arrival = anchor + s_us((k + 1) * SAMPLES, RATE);
        assert_false(batch(arrival, 1, RATE));
        assert_int_equal(pts[0], anchor + s_us(k * SAMPLES, RATE));
    }
    assert_int_equal(st.anchor_us, anchor);
}

/*
 * A burst that arrives in several chunks (curl hands the shim up to 16 KiB per write callback)
 * must not be stamped chunk by chunk: each later chunk would pull the anchor back and PTS would
 * jump backwards at every chunk boundary. pull.c stamps a burst's chunks as one batch; that is
 * tested through pull.c in test_pull.c (test_burst_in_chunks: the same 15 chunks of 10 frames,
 * 1 ms apart, formerly the disabled test_bug_burst_in_chunks here).
 */

/* Batches of 1–8 frames arriving 0–50 ms after their last frame ended: the anchor is the
 * minimum, so PTS stays smooth (exact when a batch arrived on time first), no frame ends after
 * it arrived, none lags arrival by more than the jitter, and there is no re-anchor. */
static void test_jitter(void **state)
{
    uint32_t seed = 42;
    const uint64_t anchor = T0_US - FRAME_US;
    uint64_t k = 0, prev_end = 0;
    bool first = true;
    while (s_us(k * SAMPLES, RATE) < 20 * 60 * SEC) {
        size_t n = 1 + lcg(&seed) % 8;
        uint64_t jitter = first ? 0 : lcg(&seed) % 50001;
        uint64_t end = anchor + s_us((k + n) * SAMPLES, RATE);
        uint64_t arrival = end + jitter;
        if (first) /* the first batch (one frame) arrives exactly on time */
            n = 1, arrival = end = anchor + s_us(SAMPLES, RATE);
        assert_false(batch(arrival, n, RATE));
        for (size_t i = 0; i < n; i++)
            assert_int_equal(pts[i], anchor + s_us((k + i) * SAMPLES, RATE));
        uint64_t pts_end = pts[n - 1] + FRAME_US;
        assert_true(pts_end <= arrival + 1);
        assert_true(arrival - pts_end <= 50000 + 1);
        if (prev_end)
            assert_true(pts[0] + 1 >= prev_end && pts[0] <= prev_end + 1);
        prev_end = pts_end;
        k += n;
        first = false;
    }
    assert_int_equal(st.reanchors, 0);
    assert_int_equal(st.anchor_us, anchor);
}

/* The same with the first batch late too: the anchor settles on the smallest lag seen; it only
 * ever moves back, by at most the jitter in total, and PTS never lag arrival by more than it. */
static void test_jitter_anchor_is_min(void **state)
{
    uint32_t seed = 7;
    const uint64_t base = T0_US - FRAME_US; /* the anchor with zero delay */
    uint64_t k = 0, min_jitter = UINT64_MAX, prev_anchor = UINT64_MAX;
    while (s_us(k * SAMPLES, RATE) < 20 * 60 * SEC) {
        size_t n = 1 + lcg(&seed) % 8;
        uint64_t jitter = lcg(&seed) % 50001;
        uint64_t arrival = base + s_us((k + n) * SAMPLES, RATE) + jitter;
        assert_false(batch(arrival, n, RATE));
        if (jitter < min_jitter)
            min_jitter = jitter;
        assert_true(st.anchor_us <= prev_anchor);
        prev_anchor = st.anchor_us;
        /* anchor = base + the smallest delay so far (± rounding of the sample clock). */
        int64_t d = (int64_t)st.anchor_us - (int64_t)(base + min_jitter);
        assert_true(d >= -1 && d <= 1);
        for (size_t i = 0; i < n; i++)
            assert_int_equal(pts[i], st.anchor_us + s_us((k + i) * SAMPLES, RATE));
        uint64_t pts_end = pts[n - 1] + FRAME_US;
        assert_true(pts_end <= arrival + 1);
        assert_true(arrival - pts_end <= 50000 + 1);
        k += n;
    }
    assert_true(min_jitter < 1000);
    assert_int_equal(st.reanchors, 0);
}

/* Feed one frame per call in real time, `delay_us` late, from frame k; returns the arrival. */
static uint64_t rt_frame(uint64_t anchor, uint64_t k, uint64_t delay_us, bool *moved)
{
    uint64_t arrival = anchor + s_us((k + 1) * SAMPLES, RATE) + delay_us;
    *moved = batch(arrival, 1, RATE);
    return arrival;
}

/* 25 s in real time, a 2 s stall, then real time again 2 s behind the sample clock: one
 * re-anchor (stamper_batch returns true once), within two drift windows of the stall, and PTS
 * then track arrival within 200 ms. Before it, no frame ends after it arrived. */
static void test_stall_reanchor(void **state)
{
    const uint64_t anchor = T0_US - FRAME_US;
    const uint64_t stall_k = 25 * SEC / FRAME_US;
    const uint64_t stall_us = 2 * SEC;
    uint64_t moved_at = 0, moved_count = 0, stall_end = 0;
    for (uint64_t k = 0; k < 3 * 60 * SEC / FRAME_US; k++) {
        bool moved;
        uint64_t delay = k < stall_k ? 0 : stall_us;
        uint64_t arrival = rt_frame(anchor, k, delay, &moved);
        if (k == stall_k)
            stall_end = arrival;
        if (moved) {
            moved_count++;
            moved_at = arrival;
        }
        uint64_t pts_end = pts[0] + FRAME_US;
        assert_true(pts_end <= arrival + 1);
        if (moved_count == 0 && k >= stall_k)
            assert_true(arrival - pts_end >= stall_us - 1); /* still on the old anchor */
        if (moved_count > 0)
            assert_true(arrival - pts_end <= SHIM_REANCHOR_US);
    }
    assert_int_equal(moved_count, 1);
    assert_int_equal(st.reanchors, 1);
    assert_true(moved_at > stall_end);
    assert_true(moved_at - stall_end <= 2 * SHIM_DRIFT_WINDOW_US);
    assert_true(st.anchor_us >= anchor + stall_us - 1 && st.anchor_us <= anchor + stall_us + 1);
}

/*
 * Regression: a 2 s stall at 25 s, then real time again, re-anchors one SHIM_DRIFT_WINDOW_US
 * after the stall ended (the run of late batches starts there), not up to two windows later.
 */
static void test_regress_reanchor_latency(void **state)
{
    const uint64_t anchor = T0_US - FRAME_US;
    const uint64_t stall_k = 25 * SEC / FRAME_US;
    uint64_t stall_end = 0, moved_at = 0;
    for (uint64_t k = 0; k < 60 * SEC / FRAME_US && !moved_at; k++) {
        bool moved;
        uint64_t arrival = rt_frame(anchor, k, k < stall_k ? 0 : 2 * SEC, &moved);
        if (k == stall_k)
            stall_end = arrival;
        if (moved)
            moved_at = arrival;
    }
    assert_true(moved_at > 0);
    assert_true(moved_at - stall_end <= SHIM_DRIFT_WINDOW_US + FRAME_US);
}

/* Short hiccups (< 200 ms) never re-anchor, however long they last. */
static void test_small_delay_no_reanchor(void **state)
{
    const uint64_t anchor = T0_US - FRAME_US;
    for (uint64_t k = 0; k < 2 * 60 * SEC / FRAME_US; k++) {
        bool moved;
        uint64_t delay = k < 100 ? 0 : SHIM_REANCHOR_US - 1000;
        rt_frame(anchor, k, delay, &moved);
        assert_false(moved);
    }
    assert_int_equal(st.anchor_us, anchor);
}

/* An encoder whose sample clock runs 0.1% slow of the wall clock: arrivals drift later by 1 ms
 * a second; the anchor is moved forward whenever the drift passes 200 ms over a window, so PTS
 * never lag arrival by much more than that. */
static void test_slow_encoder_clock(void **state)
{
    const uint64_t anchor = T0_US - FRAME_US;
    uint64_t moved_count = 0, max_lag = 0;
    for (uint64_t k = 0; k < 20 * 60 * SEC / FRAME_US; k++) {
        uint64_t ideal = s_us((k + 1) * SAMPLES, RATE);
        uint64_t arrival = anchor + ideal + ideal / 1000;
        if (batch(arrival, 1, RATE))
            moved_count++;
        uint64_t pts_end = pts[0] + FRAME_US;
        assert_true(pts_end <= arrival + 1);
        if (arrival - pts_end > max_lag)
            max_lag = arrival - pts_end;
    }
    /* 1.2 s of drift in 20 min: a few re-anchors, lag bounded by 200 ms plus two windows'
     * worth of drift (10 ms each). */
    assert_true(moved_count >= 4);
    assert_int_equal(st.reanchors, moved_count);
    assert_true(max_lag <= SHIM_REANCHOR_US + 2 * SHIM_DRIFT_WINDOW_US / 1000 + 1000);
}

/* A sample-rate change between batches: the first frame at the new rate starts where the last
 * one at the old rate ended, and the new rate's durations are used from then on. */
static void test_rate_change(void **state)
{
    const uint64_t anchor = T0_US - FRAME_US;
    uint64_t k = 0;
    for (; k < 1000; k++) {
        uint64_t arrival = anchor + s_us((k + 1) * SAMPLES, RATE);
        assert_false(batch(arrival, 1, RATE));
    }
    uint64_t old_end = anchor + s_us(k * SAMPLES, RATE);
    uint64_t last_old = pts[0];
    assert_int_equal(old_end - last_old, s_us(1000 * SAMPLES, RATE) - s_us(999 * SAMPLES, RATE));
    /* Now 48 kHz (24000 µs per frame), still in real time. */
    for (uint64_t j = 0; j < 1000; j++) {
        uint64_t arrival = old_end + s_us((j + 1) * SAMPLES, 48000);
        assert_false(batch(arrival, 1, 48000));
        assert_int_equal(pts[0], old_end + j * 24000);
    }
    assert_int_equal(st.sample_rate, 48000);
    /* And back to 44.1 kHz. */
    uint64_t end48 = old_end + 1000 * 24000;
    assert_false(batch(end48 + FRAME_US, 1, RATE));
    assert_int_equal(pts[0], end48);
    assert_int_equal(st.reanchors, 0);
}

/* A rate change inside one batch: the runs are stamped back to back. */
static void test_rate_change_in_batch(void **state)
{
    const uint64_t anchor = T0_US - FRAME_US;
    assert_false(batch(T0_US, 1, RATE));
    assert_int_equal(pts[0], anchor);
    /* 3 frames at 44.1 kHz then 4 at 32 kHz (36000 µs each), arriving when the last ends. */
    uint64_t end44 = anchor + s_us(4 * SAMPLES, RATE);
    uint64_t arrival = end44 + 4 * 36000;
    for (int i = 0; i < 7; i++) {
        samples[i] = SAMPLES;
        rates[i] = i < 3 ? RATE : 32000;
    }
    assert_false(stamper_batch(&st, arrival, samples, rates, 7, pts));
    for (int i = 0; i < 3; i++)
        assert_int_equal(pts[i], anchor + s_us((uint64_t)(i + 1) * SAMPLES, RATE));
    for (int i = 3; i < 7; i++)
        assert_int_equal(pts[i], end44 + (uint64_t)(i - 3) * 36000);
    assert_int_equal(pts[6] + 36000, arrival);
}

/* Frames of other sizes (MPEG-2 Layer III: 576 samples) count by their own samples. */
static void test_mixed_samples(void **state)
{
    const uint64_t anchor = T0_US - s_us(576, 22050);
    uint64_t total = 0;
    for (uint64_t k = 0; k < 500; k++) {
        samples[0] = 576;
        rates[0] = 22050;
        uint64_t arrival = anchor + s_us(total + 576, 22050);
        assert_false(stamper_batch(&st, arrival, samples, rates, 1, pts));
        assert_int_equal(pts[0], anchor + s_us(total, 22050));
        total += 576;
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_duration, setup),
        cmocka_unit_test_setup(test_realtime_exact, setup),
        cmocka_unit_test_setup(test_realtime_rounded, setup),
        cmocka_unit_test_setup(test_burst_on_connect, setup),
        cmocka_unit_test_setup(test_jitter, setup),
        cmocka_unit_test_setup(test_jitter_anchor_is_min, setup),
        cmocka_unit_test_setup(test_stall_reanchor, setup),
        cmocka_unit_test_setup(test_small_delay_no_reanchor, setup),
        cmocka_unit_test_setup(test_slow_encoder_clock, setup),
        cmocka_unit_test_setup(test_rate_change, setup),
        cmocka_unit_test_setup(test_rate_change_in_batch, setup),
        cmocka_unit_test_setup(test_mixed_samples, setup),
        cmocka_unit_test_setup(test_regress_reanchor_latency, setup),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
