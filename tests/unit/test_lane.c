/*
 * test_lane.c - unit tests for a stream's lane of decided frames (edge/core/lane.c, docs: lane.h).
 *
 * Frames are built by hand: every field and payload byte is derived from the seq, so what
 * lane_get() returns is compared with what was put, field by field. PTS follow the shim's
 * sample-count stamping (1152 samples at 44.1 kHz: 26122 µs a frame). Frames over
 * LANE_SLOT_BYTES live on the heap; run under ASan (make SAN=1) to check they are freed when
 * overwritten, marked lost and at lane_free().
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "../../edge/core/lane.c"

#define SAMPLES 1152u
#define RATE 44100u
#define P0_US 1700000000000000ull /* PTS of seq 0 */
#define SMALL_LEN 417u            /* a 128 kbit/s 44.1 kHz MP3 frame */
#define BIG_LEN 5000u             /* over LANE_SLOT_BYTES: heap */
#define PAYLOAD_MAX 8192u

static struct lane lane;
static uint8_t payload[PAYLOAD_MAX];

static uint64_t pts_of(uint64_t seq)
{
    return P0_US + clock_samples_to_us(seq * SAMPLES, RATE);
}

static uint8_t pattern(uint64_t seq, uint32_t i)
{
    return (uint8_t)(seq * 131u + i * 7u + (i >> 8) + 3u);
}

/*
 * A frame of `len` bytes for `seq`. MP3 frames start with a real Layer III header (128 kbit/s,
 * 44.1 kHz, no CRC) and a main_data_begin of seq % 512 (9 bits after the header, ISO/IEC
 * 11172-3 §2.4.1.7), which lane_put() records as `mdb`.
 */
static struct reorder_frame make(uint64_t seq, uint32_t len, enum fc_codec codec)
{
    assert_true(len <= PAYLOAD_MAX && len >= 8);
    for (uint32_t i = 0; i < len; i++)
        payload[i] = pattern(seq, i);
    if (codec == FC_CODEC_MP3) {
        payload[0] = 0xFF, payload[1] = 0xFB, payload[2] = 0x90, payload[3] = 0x64;
        uint32_t mdb = (uint32_t)(seq % 512);
        payload[4] = (uint8_t)(mdb >> 1);
        payload[5] = (uint8_t)((mdb & 1) << 7 | (payload[5] & 0x7F));
    }
    struct reorder_frame f = {
        .seq = seq,
        .pts_us = pts_of(seq),
        .codec = codec,
        .sample_rate = RATE,
        .channels = (uint8_t)(1 + seq % 2),
        .samples = SAMPLES,
        .level = {(int8_t)(-(int)(seq % 100)), -10, (int8_t)(-(int)(seq % 7)), -127},
        .len = len,
        .data = payload,
        .used = true,
    };
    return f;
}

static void put_len(uint64_t seq, uint32_t len)
{
    struct reorder_frame f = make(seq, len, FC_CODEC_MP3);
    assert_int_equal(lane_put(&lane, &f), FC_OK);
}

static void put(uint64_t seq)
{
    put_len(seq, SMALL_LEN);
}

/* The slot for `seq` holds exactly what was put for it. */
static void check_present(uint64_t seq, uint32_t len)
{
    const struct lane_frame *g = lane_get(&lane, seq);
    if (!g)
        fail_msg("seq %llu: not held", (unsigned long long)seq);
    struct reorder_frame f = make(seq, len, FC_CODEC_MP3);
    assert_int_equal(g->state, LANE_PRESENT);
    assert_int_equal(g->seq, seq);
    assert_int_equal(g->pts_us, f.pts_us);
    assert_int_equal(g->codec, FC_CODEC_MP3);
    assert_int_equal(g->sample_rate, RATE);
    assert_int_equal(g->channels, f.channels);
    assert_int_equal(g->samples, SAMPLES);
    assert_memory_equal(g->level, f.level, sizeof(f.level));
    assert_int_equal(g->mdb, (int)(seq % 512));
    assert_int_equal(g->len, len);
    assert_non_null(g->data);
    assert_true(g->data != payload); /* a copy */
    assert_memory_equal(g->data, payload, len);
    bool inline_slot =
        g->data >= lane.storage && g->data < lane.storage + (size_t)LANE_SLOTS * LANE_SLOT_BYTES;
    assert_int_equal(inline_slot, len <= LANE_SLOT_BYTES);
}

static int setup(void **state)
{
    assert_int_equal(lane_init(&lane), FC_OK);
    return 0;
}

static int teardown(void **state)
{
    lane_free(&lane);
    assert_null(lane.slots);
    assert_null(lane.storage);
    return 0;
}

/* Brute-force lane_seek_pts(): the first present seq whose PTS + duration/2 > pts. */
static bool seek_ref(uint64_t pts, uint64_t *seq)
{
    if (!lane.any)
        return false;
    for (uint64_t s = lane_oldest(&lane); s < lane.end_seq; s++) {
        const struct lane_frame *f = lane_get(&lane, s);
        if (f && f->state == LANE_PRESENT &&
            f->pts_us + clock_samples_to_us(f->samples, f->sample_rate) / 2 > pts) {
            *seq = s;
            return true;
        }
    }
    return false;
}

/* ---- tests ---- */

static void test_empty(void **state)
{
    uint64_t seq = 77;
    assert_false(lane.any);
    assert_null(lane_get(&lane, 0));
    assert_null(lane_get(&lane, 12345));
    assert_false(lane_seek_pts(&lane, 0, &seq));
    assert_false(lane_seek_pts(&lane, pts_of(10), &seq));
    assert_int_equal(seq, 77);
}

/* Put and get: every field comes back; seqs outside [first, end) and undecided seqs are NULL. */
static void test_put_get(void **state)
{
    for (uint64_t seq = 100; seq < 110; seq++)
        put(seq);
    assert_true(lane.any);
    assert_int_equal(lane.first_seq, 100);
    assert_int_equal(lane.end_seq, 110);
    assert_int_equal(lane_oldest(&lane), 100);
    for (uint64_t seq = 100; seq < 110; seq++)
        check_present(seq, SMALL_LEN);
    assert_null(lane_get(&lane, 99));
    assert_null(lane_get(&lane, 110));
    assert_null(lane_get(&lane, 100 + LANE_SLOTS)); /* same slot as 100, not that seq */
    /* A seq decided out of order past a hole: the hole stays undecided (NULL), end moves. */
    put(115);
    assert_int_equal(lane.end_seq, 116);
    for (uint64_t seq = 110; seq < 115; seq++)
        assert_null(lane_get(&lane, seq));
    check_present(115, SMALL_LEN);
    /* Putting a seq again replaces it. */
    put_len(105, 600);
    check_present(105, 600);
}

/* ADTS frames have no bit reservoir: mdb -1. A frame too short for its side info: -1. */
static void test_mdb_codecs(void **state)
{
    struct reorder_frame f = make(7, 300, FC_CODEC_ADTS);
    assert_int_equal(lane_put(&lane, &f), FC_OK);
    assert_int_equal(lane_get(&lane, 7)->mdb, -1);
    assert_int_equal(lane_get(&lane, 7)->codec, FC_CODEC_ADTS);
    f = make(8, 300, FC_CODEC_MP3);
    f.len = 5;
    assert_int_equal(lane_put(&lane, &f), FC_OK);
    assert_int_equal(lane_get(&lane, 8)->mdb, -1);
}

/* A run of seqs lost on every path: each reads LANE_LOST with no bytes, the end moves past it,
 * and a lost run overwrites what the slots held (including heap frames). */
static void test_lost_runs(void **state)
{
    for (uint64_t seq = 0; seq < 5; seq++)
        put(seq);
    lane_put_lost(&lane, 8, 3); /* seqs 5, 6, 7 */
    assert_int_equal(lane.end_seq, 8);
    for (uint64_t seq = 5; seq < 8; seq++) {
        const struct lane_frame *f = lane_get(&lane, seq);
        assert_non_null(f);
        assert_int_equal(f->seq, seq);
        assert_int_equal(f->state, LANE_LOST);
        assert_int_equal(f->len, 0);
        assert_null(f->data);
    }
    put(8);
    check_present(4, SMALL_LEN);
    check_present(8, SMALL_LEN);

    /* A lost run over slots that held big (heap) frames of an older lap frees them. */
    put_len(20, BIG_LEN);
    put_len(21, BIG_LEN);
    lane_put_lost(&lane, 22 + LANE_SLOTS, 2); /* seqs 20 + LANE_SLOTS, 21 + LANE_SLOTS */
    assert_null(lane_get(&lane, 20));
    for (uint64_t seq = 20 + LANE_SLOTS; seq < 22 + LANE_SLOTS; seq++) {
        const struct lane_frame *f = lane_get(&lane, seq);
        assert_non_null(f);
        assert_int_equal(f->state, LANE_LOST);
        assert_int_equal(f->len, 0);
        assert_null(f->data);
    }

    /* A lost run longer than the lane is clamped to the lane: the newest LANE_SLOTS seqs. */
    uint64_t next = 100000;
    lane_put_lost(&lane, next, 5 * LANE_SLOTS);
    assert_int_equal(lane.end_seq, next);
    assert_int_equal(lane_get(&lane, next - 1)->state, LANE_LOST);
    assert_int_equal(lane_get(&lane, next - LANE_SLOTS)->state, LANE_LOST);
    assert_null(lane_get(&lane, next - LANE_SLOTS - 1));
    assert_int_equal(lane_oldest(&lane), next - LANE_SLOTS);
}

/* Past LANE_SLOTS the ring wraps: old seqs read NULL, the newest LANE_SLOTS are intact. */
static void test_wraparound(void **state)
{
    const uint64_t first = 3, n = 3 * LANE_SLOTS + 100;
    for (uint64_t seq = first; seq < first + n; seq++)
        put_len(seq, seq % 97 == 0 ? BIG_LEN : SMALL_LEN);
    uint64_t end = first + n;
    assert_int_equal(lane.first_seq, first);
    assert_int_equal(lane.end_seq, end);
    assert_int_equal(lane_oldest(&lane), end - LANE_SLOTS);
    for (uint64_t seq = first; seq < end - LANE_SLOTS; seq++)
        if (lane_get(&lane, seq))
            fail_msg("seq %llu overwritten %llu seqs ago still readable", (unsigned long long)seq,
                     (unsigned long long)(end - seq));
    for (uint64_t seq = end - LANE_SLOTS; seq < end; seq++)
        check_present(seq, seq % 97 == 0 ? BIG_LEN : SMALL_LEN);
    /* Seeking before the oldest held frame finds the oldest one, not an overwritten seq. */
    uint64_t seq = 0;
    assert_true(lane_seek_pts(&lane, pts_of(first), &seq));
    assert_int_equal(seq, end - LANE_SLOTS);
}

/* Frames over LANE_SLOT_BYTES: held on the heap, byte-exact, freed when replaced by a small or a
 * big frame, by a lost mark, and at lane_free() (ASan reports a leak otherwise). */
static void test_oversized(void **state)
{
    put_len(10, BIG_LEN);
    check_present(10, BIG_LEN);
    put_len(11, LANE_SLOT_BYTES); /* exactly the slot: inline */
    check_present(11, LANE_SLOT_BYTES);
    put_len(12, LANE_SLOT_BYTES + 1);
    check_present(12, LANE_SLOT_BYTES + 1);
    put_len(10 + LANE_SLOTS, SMALL_LEN); /* replaces big 10 with small */
    check_present(10 + LANE_SLOTS, SMALL_LEN);
    assert_null(lane_get(&lane, 10));
    put_len(12 + LANE_SLOTS, PAYLOAD_MAX); /* replaces big 12 with big */
    check_present(12 + LANE_SLOTS, PAYLOAD_MAX);
    put_len(13, BIG_LEN);
    lane_put_lost(&lane, 14, 1); /* 13 was big: its bytes freed */
    assert_int_equal(lane_get(&lane, 13)->state, LANE_LOST);
    put_len(13, BIG_LEN + 1); /* decided again (a late copy re-put by a test) */
    check_present(13, BIG_LEN + 1);
    for (uint64_t seq = 2 * LANE_SLOTS; seq < 2 * LANE_SLOTS + 64; seq++)
        put_len(seq, BIG_LEN); /* left for lane_free() */
}

/* lane_seek_pts(): the first present seq whose PTS + duration/2 > pts, against a brute-force
 * search, over PTS around every frame edge and midpoint, with lost seqs, an undecided hole and
 * a lost run at the very end. */
static void test_seek_pts(void **state)
{
    const uint64_t half = clock_samples_to_us(SAMPLES, RATE) / 2;
    for (uint64_t seq = 50; seq < 400; seq++) {
        if (seq >= 120 && seq < 125)
            continue; /* undecided hole */
        if (seq % 10 == 3)
            continue; /* lost below */
        put(seq);
    }
    for (uint64_t seq = 53; seq < 400; seq += 10)
        if (seq < 120 || seq >= 125)
            lane_put_lost(&lane, seq + 1, 1);
    lane_put_lost(&lane, 410, 10); /* 400..409 lost */

    uint64_t got, want;
    /* The definition on a single frame: nearest to starting at pts. */
    assert_true(lane_seek_pts(&lane, pts_of(60), &got));
    assert_int_equal(got, 60);
    assert_true(lane_seek_pts(&lane, pts_of(60) + half - 1, &got));
    assert_int_equal(got, 60);
    assert_true(lane_seek_pts(&lane, pts_of(60) + half, &got));
    assert_int_equal(got, 61);
    assert_true(lane_seek_pts(&lane, pts_of(62) + half, &got)); /* 63 is lost */
    assert_int_equal(got, 64);
    assert_true(lane_seek_pts(&lane, pts_of(119) + half, &got)); /* 120..124 undecided */
    assert_int_equal(got, 125);
    assert_true(lane_seek_pts(&lane, 0, &got)); /* before everything: the oldest */
    assert_int_equal(got, 50);
    assert_false(lane_seek_pts(&lane, pts_of(399) + half, &got)); /* past the last present */
    assert_false(lane_seek_pts(&lane, pts_of(405), &got));

    for (uint64_t seq = 45; seq < 412; seq++)
        for (int64_t d = -2; d <= 2; d++) {
            uint64_t probes[] = {(uint64_t)((int64_t)pts_of(seq) + d),
                                 (uint64_t)((int64_t)(pts_of(seq) + half) + d)};
            for (size_t i = 0; i < 2; i++) {
                bool r = lane_seek_pts(&lane, probes[i], &got), rr = seek_ref(probes[i], &want);
                if (r != rr || (r && got != want))
                    fail_msg("seek %llu µs past seq %llu: got %d/%llu, want %d/%llu",
                             (unsigned long long)(probes[i] - pts_of(seq)), (unsigned long long)seq,
                             r, (unsigned long long)got, rr, (unsigned long long)want);
            }
        }
}

/* After a wrap, seeking only considers held seqs (the binary search's lower bound is the oldest
 * held seq, not first_seq). */
static void test_seek_after_wrap(void **state)
{
    const uint64_t end = 5 * LANE_SLOTS;
    for (uint64_t seq = 0; seq < end; seq++)
        put(seq);
    uint64_t got, want;
    for (uint64_t seq = end - LANE_SLOTS - 3; seq < end + 2; seq += 7) {
        bool r = lane_seek_pts(&lane, pts_of(seq), &got), rr = seek_ref(pts_of(seq), &want);
        assert_int_equal(r, rr);
        if (r)
            assert_int_equal(got, want);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_empty, setup, teardown),
        cmocka_unit_test_setup_teardown(test_put_get, setup, teardown),
        cmocka_unit_test_setup_teardown(test_mdb_codecs, setup, teardown),
        cmocka_unit_test_setup_teardown(test_lost_runs, setup, teardown),
        cmocka_unit_test_setup_teardown(test_wraparound, setup, teardown),
        cmocka_unit_test_setup_teardown(test_oversized, setup, teardown),
        cmocka_unit_test_setup_teardown(test_seek_pts, setup, teardown),
        cmocka_unit_test_setup_teardown(test_seek_after_wrap, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
