/*
 * test_align.c - unit tests for the edge's encoder alignment (edge/core/align.c, docs: align.h).
 *
 * Two lanes (edge/core/lane.c) are filled by hand with MP3-sized frames (1152 samples at 44.1 kHz:
 * 26122 µs, four sub-frame levels of 6530 µs each) carrying one synthetic programme: a
 * random-ish loudness envelope (piecewise linear between random knots every 40 ms, -28..-12 dB,
 * about 4.6 dB standard deviation, like a compressed broadcast). Lane x carries the programme at
 * its own PTS; lane y carries it `d` µs late (the content x has at PTS p, y has at p + d), on a
 * PTS grid of its own phase. align_estimate(x, y) must find d within one sub-frame. PTS are
 * wall-clock µs (1.7e15), as the shim stamps them.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "../../edge/core/align.c"
#include "../../edge/core/lane.c"

#define SAMPLES 1152u
#define RATE 44100u
#define SEC 1000000ull
#define P0_US 1700000000000000ull /* wall-clock PTS of the first frame of a lane */
#define KNOT_US 40000u            /* envelope knots: a syllable's length */
#define HISTORY_US (25 * SEC)     /* more than a window plus the search range */
#define FLOOR_LEVEL (-127)        /* a frame that decoded to nothing (level.h) */
#define SEED_PROG 1u              /* the programme both encoders carry */
#define SEED_OTHER 977u           /* an unrelated programme */

static struct lane lx, ly;
static struct align_scratch *scratch;

static uint64_t frame_us(void)
{
    return clock_samples_to_us(SAMPLES, RATE);
}

static uint64_t step_us(void)
{
    return frame_us() / 4;
}

/* PTS of frame k of a lane whose frame 0 is at `pts0` (the shim's sample-count stamping). */
static uint64_t pts_of(uint64_t pts0, uint64_t k)
{
    return pts0 + clock_samples_to_us(k * SAMPLES, RATE);
}

static uint64_t splitmix(uint64_t x)
{
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

/* Loudness of knot `k` of programme `seed`: uniform in [-28, -12] dB. */
static double knot_db(uint32_t seed, uint64_t k)
{
    return -28.0 + 16.0 * (double)(splitmix(k * 131u + seed) >> 11) / (double)(1ull << 53);
}

/* Loudness of programme `seed` at content time `t_us` (absolute µs). */
static double loud(uint32_t seed, uint64_t t_us)
{
    uint64_t k = t_us / KNOT_US;
    double frac = (double)(t_us % KNOT_US) / KNOT_US;
    return knot_db(seed, k) * (1 - frac) + knot_db(seed, k + 1) * frac;
}

enum shape { SHAPE_PROG, SHAPE_FLAT };

/* Put one frame: its four levels sample the envelope at the middle of each sub-frame, `delay`
 * µs late (content at PTS p is the programme's time p - delay). */
static void put_frame_stamped(struct lane *l, uint64_t seq, uint64_t pts, uint64_t stamp,
                              int64_t delay_us, uint32_t seed, enum shape shape);

static void put_frame(struct lane *l, uint64_t seq, uint64_t pts, int64_t delay_us, uint32_t seed,
                      enum shape shape)
{
    put_frame_stamped(l, seq, pts, pts, delay_us, seed, shape);
}

/* As put_frame, for a frame whose content belongs at `pts` but that the shim stamped `stamp`
 * (its anchor moved since). */
static void put_frame_stamped(struct lane *l, uint64_t seq, uint64_t pts, uint64_t stamp,
                              int64_t delay_us, uint32_t seed, enum shape shape)
{
    static uint8_t payload[16] = {0x55};
    struct reorder_frame f;
    memset(&f, 0, sizeof(f));
    f.seq = seq;
    f.pts_us = stamp;
    f.codec = FC_CODEC_MP3;
    f.sample_rate = RATE;
    f.channels = 2;
    f.samples = SAMPLES;
    for (int i = 0; i < 4; i++) {
        uint64_t c = pts + (uint64_t)i * step_us() + step_us() / 2 - (uint64_t)delay_us;
        double db = shape == SHAPE_FLAT ? -20.0 : loud(seed, c);
        f.level[i] = (int8_t)lround(db);
    }
    f.len = sizeof(payload);
    f.data = payload;
    f.used = true;
    assert_int_equal(lane_put(l, &f), FC_OK);
}

/* Fill `l` with `span_us` of frames ending near P0_US + HISTORY_US; its PTS grid starts `phase`
 * µs after the x grid's. Returns the number of frames. */
static uint64_t fill(struct lane *l, uint64_t span_us, uint64_t phase_us, int64_t delay_us,
                     uint32_t seed, enum shape shape)
{
    uint64_t end = P0_US + HISTORY_US, pts0 = end - span_us + phase_us;
    uint64_t n = 0;
    for (uint64_t k = 0; pts_of(pts0, k) < end; k++, n++)
        put_frame(l, 1000 + k, pts_of(pts0, k), delay_us, seed, shape);
    return n;
}

/* Make the frame of `l` nearest `pts` a floor frame (all four levels at the floor). */
static void floor_frame_at(struct lane *l, uint64_t pts)
{
    uint64_t seq;
    assert_true(lane_seek_pts(l, pts, &seq));
    struct lane_frame *f = &l->slots[seq & MASK];
    assert_int_equal(f->seq, seq);
    for (int i = 0; i < 4; i++)
        f->level[i] = FLOOR_LEVEL;
}

static int setup(void **state)
{
    assert_int_equal(lane_init(&lx), FC_OK);
    assert_int_equal(lane_init(&ly), FC_OK);
    scratch = malloc(sizeof(*scratch));
    assert_non_null(scratch);
    return 0;
}

static int teardown(void **state)
{
    lane_free(&lx);
    lane_free(&ly);
    free(scratch);
    return 0;
}

/* The lanes as the encoders would fill them: x on time, y `d` late on a grid `phase` later. */
static void two_encoders(int64_t d_us, uint64_t phase_us)
{
    fill(&lx, HISTORY_US, 0, 0, SEED_PROG, SHAPE_PROG);
    fill(&ly, HISTORY_US, phase_us, d_us, SEED_PROG, SHAPE_PROG);
}

static void expect_offset(int64_t d_us, int64_t got_us, double corr)
{
    int64_t err = got_us - d_us;
    if (llabs(err) > (long long)step_us())
        fail_msg("offset %lld µs, want %lld ± %llu (corr %.3f)", (long long)got_us, (long long)d_us,
                 (unsigned long long)step_us(), corr);
    if (corr < 0.9)
        fail_msg("corr %.3f < 0.9 for a clean copy of the programme", corr);
}

/* ---- tests ---- */

static void test_sanity(void **state)
{
    assert_int_equal(frame_us(), 26122);
    assert_int_equal(step_us(), 6530);
    /* The envelope is not flat: about 4.6 dB of spread. */
    double s = 0, s2 = 0;
    for (uint64_t t = 0; t < 10 * SEC; t += 1000) {
        double v = loud(SEED_PROG, P0_US + t);
        s += v, s2 += v * v;
    }
    double n = 10 * SEC / 1000, sd = sqrt(s2 / n - (s / n) * (s / n));
    assert_true(sd > 3.5 && sd < 6);
}

/* y 400 ms behind x (a slower encoder), y's grid on another phase. */
static void test_offset_behind(void **state)
{
    int64_t off = -1;
    double corr;
    two_encoders(400000, 2417);
    assert_int_equal(align_estimate(&lx, &ly, scratch, &off, &corr), ALIGN_OK);
    expect_offset(400000, off, corr);
}

/* y 250 ms ahead of x: a negative offset. */
static void test_offset_ahead(void **state)
{
    int64_t off = 0;
    double corr;
    two_encoders(-250000, 11111);
    assert_int_equal(align_estimate(&lx, &ly, scratch, &off, &corr), ALIGN_OK);
    expect_offset(-250000, off, corr);
}

/* Offsets that are no multiple of the sub-frame step (123457 µs = 18.9 steps; 1.713 s), on grids
 * of several phases: the parabolic refinement keeps the error within a step. */
static void test_offset_fractional(void **state)
{
    static const int64_t offsets[] = {123457, -1713333, 2899999, 3271};
    static const uint64_t phases[] = {0, 3265, 20000};
    for (size_t i = 0; i < FC_ARRAY_LEN(offsets); i++)
        for (size_t j = 0; j < FC_ARRAY_LEN(phases); j++) {
            lane_free(&lx);
            lane_free(&ly);
            assert_int_equal(lane_init(&lx), FC_OK);
            assert_int_equal(lane_init(&ly), FC_OK);
            int64_t off = 0;
            double corr;
            two_encoders(offsets[i], phases[j]);
            assert_int_equal(align_estimate(&lx, &ly, scratch, &off, &corr), ALIGN_OK);
            expect_offset(offsets[i], off, corr);
        }
}

/* Identical streams: offset 0, correlation ~1. */
static void test_offset_zero(void **state)
{
    int64_t off = 99;
    double corr;
    two_encoders(0, 0);
    assert_int_equal(align_estimate(&lx, &ly, scratch, &off, &corr), ALIGN_OK);
    assert_true(llabs(off) <= (long long)step_us() / 4);
    assert_true(corr > 0.99);
}

/* A steady level (a tone, a test card) on either side: ALIGN_FLAT, *off_us left alone. */
static void test_flat(void **state)
{
    int64_t off = 12345;
    double corr;
    fill(&lx, HISTORY_US, 0, 0, SEED_PROG, SHAPE_PROG);
    fill(&ly, HISTORY_US, 0, 400000, SEED_PROG, SHAPE_FLAT);
    assert_int_equal(align_estimate(&lx, &ly, scratch, &off, &corr), ALIGN_FLAT);
    assert_int_equal(off, 12345);
    assert_int_equal(align_estimate(&ly, &lx, scratch, &off, &corr), ALIGN_FLAT);
    assert_int_equal(off, 12345);
}

/* Two unrelated programmes (a misconfigured encoder): no clear peak, ALIGN_WEAK with the best
 * correlation reported below ALIGN_MIN_CORR, *off_us left alone. */
static void test_unrelated_weak(void **state)
{
    int64_t off = 12345;
    double corr = 0;
    fill(&lx, HISTORY_US, 0, 0, SEED_PROG, SHAPE_PROG);
    fill(&ly, HISTORY_US, 777, 400000, SEED_OTHER, SHAPE_PROG);
    assert_int_equal(align_estimate(&lx, &ly, scratch, &off, &corr), ALIGN_WEAK);
    assert_true(corr < ALIGN_MIN_CORR);
    assert_true(corr > -1.0); /* computed, not the "no overlap" marker */
    assert_int_equal(off, 12345);
}

/* Nothing, or too little history: ALIGN_NODATA. ~1 s held, at wall-clock PTS (a stream that
 * just started); then 5 s (a third of the window), which must not be trusted either: an offset
 * from a few seconds of a quasi-periodic programme can lock on a wrong peak. */
static void test_too_little_history(void **state)
{
    int64_t off = 12345;
    double corr;
    assert_int_equal(align_estimate(&lx, &ly, scratch, &off, &corr), ALIGN_NODATA); /* empty */
    fill(&lx, 1 * SEC, 0, 0, SEED_PROG, SHAPE_PROG);
    fill(&ly, 1 * SEC, 2417, 400000, SEED_PROG, SHAPE_PROG);
    assert_true(lane_get(&lx, lx.end_seq - 1)->pts_us > 1700000000000000ull);
    assert_int_equal(align_estimate(&lx, &ly, scratch, &off, &corr), ALIGN_NODATA);
    assert_int_equal(off, 12345);

    lane_free(&lx);
    lane_free(&ly);
    assert_int_equal(lane_init(&lx), FC_OK);
    assert_int_equal(lane_init(&ly), FC_OK);
    fill(&lx, 5 * SEC, 0, 0, SEED_PROG, SHAPE_PROG);
    fill(&ly, 5 * SEC, 2417, 400000, SEED_PROG, SHAPE_PROG);
    enum align_result r = align_estimate(&lx, &ly, scratch, &off, &corr);
    if (r != ALIGN_NODATA)
        fail_msg("5 s of history: %s (offset %lld µs, corr %.2f), want no-data",
                 align_result_name(r), (long long)off, corr);
    assert_int_equal(off, 12345);
}

/* Frames of different durations (MP3 against 48 kHz AAC): no common grid, ALIGN_NODATA. */
static void test_different_durations(void **state)
{
    int64_t off = 12345;
    double corr;
    fill(&lx, HISTORY_US, 0, 0, SEED_PROG, SHAPE_PROG);
    uint64_t end = P0_US + HISTORY_US, pts = end - HISTORY_US;
    static uint8_t payload[16];
    for (uint64_t k = 0; pts < end; k++, pts += clock_samples_to_us(1024, 48000)) {
        struct reorder_frame f = {.seq = k,
                                  .pts_us = pts,
                                  .codec = FC_CODEC_ADTS,
                                  .sample_rate = 48000,
                                  .channels = 2,
                                  .samples = 1024,
                                  .len = sizeof(payload),
                                  .data = payload};
        for (int i = 0; i < 4; i++)
            f.level[i] = (int8_t)lround(loud(SEED_PROG, pts + (uint64_t)i * 5333));
        assert_int_equal(lane_put(&ly, &f), FC_OK);
    }
    assert_int_equal(align_estimate(&lx, &ly, scratch, &off, &corr), ALIGN_NODATA);
    assert_int_equal(off, 12345);
}

/*
 * Floor frames are missing values, not loudness. One frame at -127 dBFS (all four levels) in the
 * last 10 s of x, one in y, and y's first three frames at the floor (a mid-stream join decodes
 * without its bit reservoir): the estimate must not move and the correlation stay >= 0.9. Read
 * as loudness, one -127 frame against a programme at -28..-12 dB outweighs seconds of envelope.
 */
static void test_floor_frames_are_missing(void **state)
{
    const int64_t d = 400000;
    int64_t clean_off = 0, off = 0;
    double clean_corr, corr;
    two_encoders(d, 2417);
    assert_int_equal(align_estimate(&lx, &ly, scratch, &clean_off, &clean_corr), ALIGN_OK);
    expect_offset(d, clean_off, clean_corr);

    uint64_t end = P0_US + HISTORY_US;
    floor_frame_at(&lx, end - 5 * SEC);
    double c1;
    int64_t o1 = 0;
    enum align_result r = align_estimate(&lx, &ly, scratch, &o1, &c1);
    if (r != ALIGN_OK || c1 < 0.9 || llabs(o1 - clean_off) > (long long)step_us() / 2)
        fail_msg("one floor frame in x: %s offset %lld µs corr %.3f (clean: %lld µs corr %.3f)",
                 align_result_name(r), (long long)o1, c1, (long long)clean_off, clean_corr);

    floor_frame_at(&ly, end - 8 * SEC + 123456);
    for (uint64_t seq = ly.first_seq; seq < ly.first_seq + 3; seq++)
        for (int i = 0; i < 4; i++)
            ly.slots[seq & MASK].level[i] = FLOOR_LEVEL;
    r = align_estimate(&lx, &ly, scratch, &off, &corr);
    if (r != ALIGN_OK || corr < 0.9 || llabs(off - clean_off) > (long long)step_us() / 2)
        fail_msg("floor frames in x and y: %s offset %lld µs corr %.3f (clean: %lld µs corr %.3f)",
                 align_result_name(r), (long long)off, corr, (long long)clean_off, clean_corr);
    expect_offset(d, off, corr);
}

/* A second of frames lost on every path inside x's window (LANE_LOST): the rest still aligns. */
static void test_lost_frames_skipped(void **state)
{
    const int64_t d = -250000;
    uint64_t n = 0;
    uint64_t end = P0_US + HISTORY_US, pts0 = end - HISTORY_US;
    for (uint64_t k = 0; pts_of(pts0, k) < end; k++, n++) {
        uint64_t pts = pts_of(pts0, k);
        if (pts > end - 6 * SEC && pts < end - 5 * SEC)
            continue;
        put_frame(&lx, 1000 + k, pts, 0, SEED_PROG, SHAPE_PROG);
    }
    /* mark the hole as lost, as merge.c does from the reorder buffer's verdict */
    for (uint64_t seq = 1000; seq < 1000 + n; seq++)
        if (!lane_get(&lx, seq)) {
            uint64_t first = seq;
            while (!lane_get(&lx, seq))
                seq++;
            lane_put_lost(&lx, seq, seq - first);
        }
    fill(&ly, HISTORY_US, 4000, d, SEED_PROG, SHAPE_PROG);
    int64_t off = 0;
    double corr;
    assert_int_equal(align_estimate(&lx, &ly, scratch, &off, &corr), ALIGN_OK);
    expect_offset(d, off, corr);
}

/*
 * A restarted encoder (x: the reference, 10 s of history) whose shim pulled its anchor back
 * while its first batches came in, 30 ms in all (12, 10 and 8 ms at 6, 5 and 4 s before the
 * end), as CI saw: the frames before each pull-back carry PTS later than the current timeline.
 * The estimate must hold for the live end, where a failback splices; placing frames at their own
 * PTS mixed the timelines and came out ~15 ms off (one MP3 frame off at the splice).
 */
static void test_anchor_pullbacks(void **state)
{
    const int64_t d = 400000;
    uint64_t end = P0_US + HISTORY_US, pts0 = end - 10 * SEC;
    for (uint64_t k = 0; pts_of(pts0, k) < end; k++) {
        uint64_t pts = pts_of(pts0, k), late = 0;
        if (pts < end - 4 * SEC)
            late += 8000;
        if (pts < end - 5 * SEC)
            late += 10000;
        if (pts < end - 6 * SEC)
            late += 12000;
        put_frame_stamped(&lx, 1000 + k, pts, pts + late, 0, SEED_PROG, SHAPE_PROG);
    }
    fill(&ly, HISTORY_US, 2417, d, SEED_PROG, SHAPE_PROG);
    int64_t off = 0;
    double corr;
    assert_int_equal(align_estimate(&lx, &ly, scratch, &off, &corr), ALIGN_OK);
    expect_offset(d, off, corr);
    /* and the other way round: y is the restarted one */
    int64_t back = 0;
    assert_int_equal(align_estimate(&ly, &lx, scratch, &back, &corr), ALIGN_OK);
    expect_offset(-d, back, corr);
}

/*
 * A re-anchor after a stall (x's PTS jump 300 ms forward): what came before is another timeline.
 * 5 s after the jump that is too little history (no-data, not a mixed estimate); 10 s after it
 * the estimate uses only the frames since.
 */
static void test_reanchor_ends_history(void **state)
{
    const int64_t d = -150000;
    for (int after_s = 5; after_s <= 10; after_s += 5) {
        lane_free(&lx);
        lane_free(&ly);
        assert_int_equal(lane_init(&lx), FC_OK);
        assert_int_equal(lane_init(&ly), FC_OK);
        uint64_t end = P0_US + HISTORY_US, pts0 = end - HISTORY_US;
        for (uint64_t k = 0; pts_of(pts0, k) < end; k++) {
            uint64_t pts = pts_of(pts0, k);
            uint64_t stamp = pts < end - (uint64_t)after_s * SEC ? pts - 300000 : pts;
            put_frame_stamped(&lx, 1000 + k, pts, stamp, 0, SEED_PROG, SHAPE_PROG);
        }
        fill(&ly, HISTORY_US, 777, d, SEED_PROG, SHAPE_PROG);
        int64_t off = 12345;
        double corr;
        enum align_result r = align_estimate(&lx, &ly, scratch, &off, &corr);
        if (after_s == 5) {
            if (r != ALIGN_NODATA)
                fail_msg("5 s since a re-anchor: %s (offset %lld µs), want no-data",
                         align_result_name(r), (long long)off);
        } else {
            assert_int_equal(r, ALIGN_OK);
            expect_offset(d, off, corr);
        }
    }
}

/* PTS near the epoch are no stamped stream: ALIGN_NODATA whatever the lanes hold. */
static void test_pts_near_epoch(void **state)
{
    int64_t off = 12345;
    double corr;
    for (uint64_t k = 0; k < 100; k++) {
        put_frame(&lx, k, pts_of(1000, k), 0, SEED_PROG, SHAPE_PROG);
        put_frame(&ly, k, pts_of(1000, k), 0, SEED_PROG, SHAPE_PROG);
    }
    assert_int_equal(align_estimate(&lx, &ly, scratch, &off, &corr), ALIGN_NODATA);
    assert_int_equal(off, 12345);
    assert_string_equal(align_result_name(ALIGN_OK), "correlation");
    assert_string_equal(align_result_name(ALIGN_NODATA), "no-data");
    assert_string_equal(align_result_name(ALIGN_FLAT), "flat");
    assert_string_equal(align_result_name(ALIGN_WEAK), "weak");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_sanity, setup, teardown),
        cmocka_unit_test_setup_teardown(test_offset_behind, setup, teardown),
        cmocka_unit_test_setup_teardown(test_offset_ahead, setup, teardown),
        cmocka_unit_test_setup_teardown(test_offset_fractional, setup, teardown),
        cmocka_unit_test_setup_teardown(test_offset_zero, setup, teardown),
        cmocka_unit_test_setup_teardown(test_flat, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unrelated_weak, setup, teardown),
        cmocka_unit_test_setup_teardown(test_too_little_history, setup, teardown),
        cmocka_unit_test_setup_teardown(test_different_durations, setup, teardown),
        cmocka_unit_test_setup_teardown(test_floor_frames_are_missing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_lost_frames_skipped, setup, teardown),
        cmocka_unit_test_setup_teardown(test_anchor_pullbacks, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reanchor_ends_history, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pts_near_epoch, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
