/*
 * test_level.c - unit tests for the shim's per-frame loudness (encoder-shim/level.c, docs:
 * level.h): each frame decoded (libmpg123 for MP3, libfaad2 for ADTS), its PCM cut in four
 * quarters, each quarter's RMS over all channels in dBFS.
 *
 * Real frames come from tests/data (see its README.md): sample.mp3 / sample.aac hold 2 s of a
 * 1 kHz sine at amplitude 0.5 in both channels, so every quarter's RMS is 0.5/sqrt(2):
 * 20*log10(0.3536) = -9.03 dBFS; silence.mp3 / silence.aac hold digital silence, which must
 * read as the floor (-127). A missing file fails the test (run from the repository root).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "../../encoder-shim/level.c"
#include "framer.h"

#define TONE_DB (-9.03) /* 20*log10(0.5/sqrt(2)) */
#define MAX_FRAMES 256
#define FILE_MAX (256 * 1024)

/* The frames of one file, as the shim's framer cuts them. */
struct frames {
    uint8_t data[FILE_MAX];
    uint32_t off[MAX_FRAMES], len[MAX_FRAMES];
    size_t n;
};

static struct frames fr;
static struct framer framer;

/* Take every whole frame the framer has ready. */
static void drain(void)
{
    const uint8_t *frame;
    struct frame_info info;
    size_t used = fr.n ? fr.off[fr.n - 1] + fr.len[fr.n - 1] : 0;
    while (framer_next(&framer, &frame, &info) == FC_OK) {
        assert_true(fr.n < MAX_FRAMES && used + info.len <= FILE_MAX);
        memcpy(fr.data + used, frame, info.len);
        fr.off[fr.n] = (uint32_t)used;
        fr.len[fr.n++] = info.len;
        used += info.len;
    }
}

static void load(const char *path, enum fc_codec codec)
{
    static uint8_t file[FILE_MAX];
    FILE *fp = fopen(path, "rb");
    if (!fp)
        fail_msg("%s: cannot open (run from the repository root, as `make unit` does)", path);
    size_t len = fread(file, 1, sizeof(file), fp), fed = 0;
    fclose(fp);
    assert_true(len > 0 && len < sizeof(file));
    framer_init(&framer, codec);
    fr.n = 0;
    do {
        fed += framer_feed(&framer, file + fed, len - fed);
        drain();
    } while (fed < len);
    framer_finish(&framer);
    drain();
    assert_true(fr.n > 10);
}

/* Level every frame of the loaded file through one meter, from frame `from`. */
static void levels(enum fc_codec codec, size_t from, int8_t (*out)[4], uint64_t *errors)
{
    struct level_meter lm;
    assert_int_equal(level_init(&lm, codec), FC_OK);
    for (size_t i = from; i < fr.n; i++)
        level_frame(&lm, fr.data + fr.off[i], fr.len[i], out[i]);
    *errors = lm.errors;
    level_free(&lm);
    assert_null(lm.mh);
    assert_null(lm.aac);
}

/* Frames well inside the tone (past the codec's start-up delay, before its end) read the
 * tone's level within 1 dB in each quarter. */
static void check_tone(const char *path, enum fc_codec codec)
{
    static int8_t lv[MAX_FRAMES][4];
    uint64_t errors;
    load(path, codec);
    levels(codec, 0, lv, &errors);
    assert_int_equal(errors, 0);
    size_t checked = 0;
    for (size_t i = 4; i + 4 < fr.n; i++, checked++)
        for (int q = 0; q < 4; q++)
            if (fabs(lv[i][q] - TONE_DB) > 1.0)
                fail_msg("%s frame %zu quarter %d: %d dBFS, want %.2f ± 1", path, i, q, lv[i][q],
                         TONE_DB);
    assert_true(checked > 60);
}

static void check_silence(const char *path, enum fc_codec codec)
{
    static int8_t lv[MAX_FRAMES][4];
    uint64_t errors;
    load(path, codec);
    levels(codec, 0, lv, &errors);
    assert_int_equal(errors, 0);
    for (size_t i = 0; i < fr.n; i++)
        for (int q = 0; q < 4; q++)
            if (lv[i][q] != LEVEL_FLOOR_DB)
                fail_msg("%s frame %zu quarter %d: %d dBFS, want the floor %d", path, i, q,
                         lv[i][q], LEVEL_FLOOR_DB);
}

/* ---- tests ---- */

static void test_mp3_tone(void **state)
{
    check_tone("tests/data/sample.mp3", FC_CODEC_MP3);
}

static void test_aac_tone(void **state)
{
    check_tone("tests/data/sample.aac", FC_CODEC_ADTS);
}

static void test_mp3_silence(void **state)
{
    check_silence("tests/data/silence.mp3", FC_CODEC_MP3);
}

static void test_aac_silence(void **state)
{
    check_silence("tests/data/silence.aac", FC_CODEC_ADTS);
}

/* A join mid-stream: the first MP3 frame's main_data_begin points into frames the decoder never
 * saw, so it cannot be decoded and reads as the floor; a few frames on, the tone's level. */
static void test_mp3_join_mid_stream(void **state)
{
    static int8_t lv[MAX_FRAMES][4];
    uint64_t errors;
    load("tests/data/sample.mp3", FC_CODEC_MP3);
    const size_t join = 30;
    assert_true(mp3_main_data_begin(fr.data + fr.off[join], fr.len[join]) > 0);
    levels(FC_CODEC_MP3, join, lv, &errors);
    for (int q = 0; q < 4; q++)
        assert_int_equal(lv[join][q], LEVEL_FLOOR_DB);
    for (size_t i = join + 3; i + 4 < fr.n; i++)
        for (int q = 0; q < 4; q++)
            assert_true(fabs(lv[i][q] - TONE_DB) <= 1.0);
}

/* Bytes that are no frame: the floor, counted as an error; the meter goes on working. */
static void test_garbage(void **state)
{
    uint8_t junk[417];
    int8_t out[4] = {1, 2, 3, 4};
    memset(junk, 0x5A, sizeof(junk));
    struct level_meter lm;
    assert_int_equal(level_init(&lm, FC_CODEC_ADTS), FC_OK);
    level_frame(&lm, junk, sizeof(junk), out);
    for (int q = 0; q < 4; q++)
        assert_int_equal(out[q], LEVEL_FLOOR_DB);
    assert_true(lm.errors >= 1);
    level_free(&lm);
}

/* level_from_pcm: quarters are independent; full scale is 0 dB, half scale -6, one LSB -90,
 * zero the floor; channels are pooled. */
static void test_from_pcm(void **state)
{
    enum { N = 1152 };
    static int16_t pcm[N * 2];
    int8_t out[4];
    for (size_t i = 0; i < N; i++) {
        int16_t v;
        switch (i * 4 / N) {
        case 0:
            v = (i % 2) ? 32767 : -32767;
            break; /* full-scale square */
        case 1:
            v = (i % 2) ? 16384 : -16384;
            break; /* half scale: -6.02 dB */
        case 2:
            v = 0;
            break;
        default:
            v = (i % 2) ? 1 : -1;
            break; /* one LSB: -90.3 dB */
        }
        pcm[2 * i] = v;
        pcm[2 * i + 1] = v;
    }
    level_from_pcm(pcm, N, 2, out);
    assert_int_equal(out[0], 0);
    assert_int_equal(out[1], -6);
    assert_int_equal(out[2], LEVEL_FLOOR_DB);
    assert_int_equal(out[3], -90);

    /* Left at half scale, right silent: power halves, -6.02 - 3.01 = -9 dB. */
    for (size_t i = 0; i < N; i++) {
        pcm[2 * i] = (i % 2) ? 16384 : -16384;
        pcm[2 * i + 1] = 0;
    }
    level_from_pcm(pcm, N, 2, out);
    for (int q = 0; q < 4; q++)
        assert_int_equal(out[q], -9);

    /* Mono, no samples at all: the floor. */
    level_from_pcm(pcm, 0, 1, out);
    for (int q = 0; q < 4; q++)
        assert_int_equal(out[q], LEVEL_FLOOR_DB);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_mp3_tone),
        cmocka_unit_test(test_aac_tone),
        cmocka_unit_test(test_mp3_silence),
        cmocka_unit_test(test_aac_silence),
        cmocka_unit_test(test_mp3_join_mid_stream),
        cmocka_unit_test(test_garbage),
        cmocka_unit_test(test_from_pcm),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
