/*
 * test_framer.c - unit tests for the MP3/ADTS header parsers and the streaming framer
 * (shared/mp3.c, shared/adts.c, shared/framer.c). Streams are built synthetically: headers with
 * correct lengths and a deterministic payload free of 0xFF bytes, so only the garbage a test
 * inserts on purpose can look like a sync word.
 *
 * Real files are framed too: tests/data/sample.mp3 (2 s, 44.1 kHz stereo, 128 kbit/s, no Xing
 * frame), sample-id3.mp3 (the same audio behind a 72-byte ID3v2.3 tag) and sample.aac (2 s ADTS
 * AAC-LC), made by tests/data/README.md. A missing file fails the test (run from the repository
 * root, as `make unit` does); FC_TEST_MP3 / FC_TEST_AAC name other files to frame instead.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "framer.h"

#define STREAM_CAP (512 * 1024)

/* MP3 header field values used below (ISO/IEC 11172-3 §2.4.2.3). */
#define V1 3  /* MPEG-1 */
#define V2 2  /* MPEG-2 LSF */
#define V25 0 /* MPEG-2.5 */

/* A synthetic input stream and the frame bytes the framer should hand back from it. */
struct stream {
    uint8_t data[STREAM_CAP];   /* input bytes */
    size_t len;                 /* bytes in data */
    uint8_t expect[STREAM_CAP]; /* concatenation of the frames that should come out */
    size_t expect_len;          /* bytes in expect */
    size_t frames;              /* frames that should come out */
    size_t last_len;            /* length of the last frame added */
    uint32_t seed;              /* payload generator state */
};

/* What one run of the framer over a stream produced. */
struct result {
    struct framer f;         /* the framer, for its counters */
    uint8_t out[STREAM_CAP]; /* concatenation of returned frames */
    size_t out_len;          /* bytes in out */
    size_t frames;           /* frames returned */
};

static struct stream st;
static struct result res;

static uint8_t rnd(uint32_t *seed)
{
    *seed = *seed * 1103515245u + 12345u;
    return (uint8_t)((*seed >> 16) % 255); /* 0..254: never 0xFF */
}

static void stream_reset(void)
{
    st.len = st.expect_len = st.frames = 0;
    st.seed = 12345;
}

static void put(const void *p, size_t n)
{
    assert_true(st.len + n <= STREAM_CAP);
    memcpy(st.data + st.len, p, n);
    st.len += n;
}

/* Write a Layer III header + payload at `out`; returns the frame length. */
static size_t mp3_make(uint8_t *out, unsigned version, unsigned br, unsigned sr, bool pad,
                       bool mono, bool crc)
{
    struct frame_info info;

    out[0] = 0xFF;
    out[1] = (uint8_t)(0xE0 | version << 3 | 1 << 1 | (crc ? 0 : 1));
    out[2] = (uint8_t)(br << 4 | sr << 2 | (pad ? 2 : 0));
    out[3] = mono ? 0xC0 : 0x40; /* joint stereo for two channels, emphasis none */
    assert_int_equal(mp3_header_parse(out, 4, &info), FC_OK);
    for (size_t i = 4; i < info.len; i++)
        out[i] = rnd(&st.seed);
    return info.len;
}

/* Write an ADTS (AAC LC) header + payload of `len` bytes total at `out`. */
static size_t adts_make(uint8_t *out, unsigned sfi, unsigned chan, size_t len, bool crc)
{
    out[0] = 0xFF;
    out[1] = (uint8_t)(0xF0 | (crc ? 0 : 1));
    out[2] = (uint8_t)(1 << 6 | sfi << 2 | ((chan >> 2) & 1));
    out[3] = (uint8_t)((chan & 3) << 6 | ((len >> 11) & 3));
    out[4] = (uint8_t)(len >> 3);
    out[5] = (uint8_t)((len & 7) << 5 | 0x1F);
    out[6] = 0xFC;
    for (size_t i = 7; i < len; i++)
        out[i] = rnd(&st.seed);
    return len;
}

/* Append one audio frame that the framer must return. */
static void add_frame(const uint8_t *frame, size_t len)
{
    put(frame, len);
    memcpy(st.expect + st.expect_len, frame, len);
    st.expect_len += len;
    st.frames++;
    st.last_len = len;
}

/*
 * The frame just added will not come out: what follows it is not a header, so the framer cannot
 * tell it from a frame cut short. Returns its length (it counts as garbage).
 */
static size_t lose_last_frame(void)
{
    st.expect_len -= st.last_len;
    st.frames--;
    return st.last_len;
}

static void add_mp3(unsigned version, unsigned br, unsigned sr, bool mono, int n)
{
    uint8_t frame[FRAMER_MAX_FRAME];
    for (int i = 0; i < n; i++)
        add_frame(frame, mp3_make(frame, version, br, sr, i % 3 == 1, mono, i % 4 == 2));
}

static void add_adts(unsigned sfi, unsigned chan, int n)
{
    uint8_t frame[FRAMER_MAX_FRAME];
    for (int i = 0; i < n; i++)
        add_frame(frame, adts_make(frame, sfi, chan, 200 + (size_t)(i * 37) % 500, i % 3 == 0));
}

/* Append `n` garbage bytes; with `ff` some of them are 0xFF sync-like bytes. */
static void add_garbage(size_t n, bool ff)
{
    for (size_t i = 0; i < n; i++) {
        uint8_t b = rnd(&st.seed);
        put(ff && i % 5 == 0 ? (const uint8_t[]){0xFF} : &b, 1);
    }
}

/* Append an ID3v2.4 tag with `size` body bytes (and a footer if asked). */
static void add_id3v2(uint32_t size, bool footer)
{
    uint8_t h[10] = {'I', 'D', '3', 4, 0, footer ? 0x10 : 0};

    for (int i = 0; i < 4; i++)
        h[6 + i] = (uint8_t)((size >> (21 - 7 * i)) & 0x7F); /* syncsafe, ID3v2.4 §6.2 */
    put(h, sizeof h);
    for (uint32_t i = 0; i < size; i++)
        put((const uint8_t[]){(uint8_t)(i * 7)}, 1); /* includes 0xFF: tag bodies are opaque */
    if (footer) {
        h[0] = '3', h[1] = 'D', h[2] = 'I';
        put(h, sizeof h);
    }
}

static void add_id3v1(void)
{
    uint8_t t[128];
    memset(t, ' ', sizeof t);
    memcpy(t, "TAGtitle", 8);
    put(t, sizeof t);
}

static void drain(enum fc_codec codec)
{
    const uint8_t *frame;
    struct frame_info info, again;

    while (framer_next(&res.f, &frame, &info) == FC_OK) {
        assert_int_equal(frame_header_parse(codec, frame, info.len, &again), FC_OK);
        assert_int_equal(again.len, info.len);
        assert_true(res.out_len + info.len <= STREAM_CAP);
        memcpy(res.out + res.out_len, frame, info.len);
        res.out_len += info.len;
        res.frames++;
    }
}

/* Frame `len` bytes of `data` fed in `chunk`-byte pieces. */
static void run(enum fc_codec codec, const uint8_t *data, size_t len, size_t chunk, bool finish)
{
    framer_init(&res.f, codec);
    res.out_len = res.frames = 0;
    for (size_t off = 0; off < len;) {
        size_t n = len - off < chunk ? len - off : chunk;
        size_t took = framer_feed(&res.f, data + off, n);
        assert_true(took > 0); /* after draining there is always room */
        off += took;
        drain(codec);
    }
    if (finish) {
        framer_finish(&res.f);
        drain(codec);
    }
}

static void check_result(void)
{
    assert_int_equal(res.frames, st.frames);
    assert_int_equal(res.f.frames, st.frames);
    assert_int_equal(res.out_len, st.expect_len);
    assert_memory_equal(res.out, st.expect, st.expect_len);
}

/* --- header parsers ---------------------------------------------------------------------- */

/* Parse `h` with the `codec` parser and compare every field of the result. */
static void expect_header(enum fc_codec codec, const uint8_t *h, uint32_t rate, unsigned channels,
                          unsigned samples, uint32_t len, uint32_t bitrate)
{
    struct frame_info info;

    assert_int_equal(frame_header_parse(codec, h, 7, &info), FC_OK);
    assert_int_equal(info.codec, codec);
    assert_int_equal(info.sample_rate, rate);
    assert_int_equal(info.channels, channels);
    assert_int_equal(info.samples, samples);
    assert_int_equal(info.len, len);
    assert_int_equal(info.bitrate, bitrate);
}

static void test_mp3_header_values(void **state)
{
    uint8_t h[FRAMER_MAX_FRAME];
    struct frame_info info;

    mp3_make(h, V1, 9, 0, false, false, false);
    expect_header(FC_CODEC_MP3, h, 44100, 2, 1152, 417, 128000);
    h[2] |= 2; /* padding */
    expect_header(FC_CODEC_MP3, h, 44100, 2, 1152, 418, 128000);
    mp3_make(h, V2, 8, 0, false, true, false);
    expect_header(FC_CODEC_MP3, h, 22050, 1, 576, 208, 64000);
    mp3_make(h, V25, 4, 2, false, false, true);
    expect_header(FC_CODEC_MP3, h, 8000, 2, 576, 288, 32000);
    mp3_make(h, V1, 14, 2, true, false, false); /* the longest Layer III frame */
    expect_header(FC_CODEC_MP3, h, 32000, 2, 1152, 1441, 320000);
    assert_int_equal(mp3_header_parse(h, 3, &info), FC_AGAIN);
}

static void test_mp3_header_rejects(void **state)
{
    uint8_t good[FRAMER_MAX_FRAME], h[FRAMER_MAX_FRAME];
    struct frame_info info;

    mp3_make(good, V1, 9, 0, false, false, false);
#define REJECT(byte, mask, value)                                                                  \
    do {                                                                                           \
        memcpy(h, good, 4);                                                                        \
        h[byte] = (uint8_t)((h[byte] & ~(mask)) | (value));                                        \
        assert_int_equal(mp3_header_parse(h, 4, &info), FC_PROTO);                                 \
    } while (0)
    REJECT(0, 0xFF, 0xFE);   /* sync */
    REJECT(1, 0xE0, 0xC0);   /* sync */
    REJECT(1, 0x18, 1 << 3); /* version 01 reserved */
    REJECT(1, 0x06, 0 << 1); /* layer 00 reserved */
    REJECT(1, 0x06, 2 << 1); /* layer II */
    REJECT(1, 0x06, 3 << 1); /* layer I */
    REJECT(2, 0xF0, 0x00);   /* free format */
    REJECT(2, 0xF0, 0xF0);   /* bitrate index 15 */
    REJECT(2, 0x0C, 3 << 2); /* sample rate index 3 */
    REJECT(3, 0x03, 2);      /* emphasis 10 reserved */
#undef REJECT
    assert_int_equal(mp3_header_parse(good, 4, &info), FC_OK);
}

static void test_adts_header(void **state)
{
    uint8_t h[FRAMER_MAX_FRAME];
    struct frame_info info;

    adts_make(h, 4, 2, 371, false);
    expect_header(FC_CODEC_ADTS, h, 44100, 2, 1024, 371, 371 * 8 * 44100 / 1024);
    assert_int_equal(adts_header_parse(h, 6, &info), FC_AGAIN);
    adts_make(h, 3, 1, 8191, true); /* longest frame, with CRC */
    expect_header(FC_CODEC_ADTS, h, 48000, 1, 1024, 8191, 3071625);
    adts_make(h, 11, 7, 100, false); /* configuration 7 is 8 channels */
    expect_header(FC_CODEC_ADTS, h, 8000, 8, 1024, 100, 6250);
    adts_make(h, 4, 2, 7, false); /* header only is still a frame */
    expect_header(FC_CODEC_ADTS, h, 44100, 2, 1024, 7, 2411);

    static const struct {
        unsigned sfi, chan, len;
        bool crc;
        unsigned byte;
        uint8_t clear, set; /* bits changed in h[byte] after building */
    } bad[] = {
        {13, 2, 100, false, 0, 0, 0},   {14, 2, 100, false, 0, 0, 0}, /* reserved rates */
        {15, 2, 100, false, 0, 0, 0},                                 /* escape: explicit rate */
        {4, 0, 100, false, 0, 0, 0},                                  /* channels in a PCE */
        {4, 2, 6, false, 0, 0, 0},                                    /* shorter than header */
        {4, 2, 8, true, 0, 0, 0},                                     /* shorter than header+CRC */
        {4, 2, 100, false, 6, 0, 1},                                  /* two raw data blocks */
        {4, 2, 100, false, 1, 0, 2},                                  /* layer 01 */
        {4, 2, 100, false, 1, 0x10, 0},                               /* 11-bit (MP3) sync only */
    };
    for (size_t i = 0; i < FC_ARRAY_LEN(bad); i++) {
        adts_make(h, bad[i].sfi, bad[i].chan, bad[i].len, bad[i].crc);
        h[bad[i].byte] = (uint8_t)((h[bad[i].byte] & ~bad[i].clear) | bad[i].set);
        assert_int_equal(adts_header_parse(h, 7, &info), FC_PROTO);
    }
}

static void test_main_data_begin(void **state)
{
    uint8_t f[FRAMER_MAX_FRAME];

    mp3_make(f, V1, 9, 0, false, false, false);
    f[4] = 0xD2, f[5] = 0x80; /* 9 bits: 1 1010 0101 */
    assert_int_equal(mp3_main_data_begin(f, 417), 0x1A5);
    mp3_make(f, V1, 9, 0, false, false, true);
    f[4] = 0xFF, f[5] = 0xFF; /* CRC */
    f[6] = 0x00, f[7] = 0x7F;
    assert_int_equal(mp3_main_data_begin(f, 417), 0);
    f[6] = 0x01, f[7] = 0x80;
    assert_int_equal(mp3_main_data_begin(f, 417), 3);

    mp3_make(f, V2, 8, 0, false, true, false);
    f[4] = 0xAB, f[5] = 0xFF;
    assert_int_equal(mp3_main_data_begin(f, 208), 0xAB);
    mp3_make(f, V2, 8, 0, false, true, true);
    f[4] = 0x12, f[5] = 0x34, f[6] = 0xCD;
    assert_int_equal(mp3_main_data_begin(f, 208), 0xCD);

    assert_int_equal(mp3_main_data_begin(f, 7), -1);
    f[1] = 0xE2 | 1 << 3; /* reserved version */
    assert_int_equal(mp3_main_data_begin(f, 208), -1);
}

static void test_info_frame_detect(void **state)
{
    static const struct {
        unsigned version;
        bool mono, crc;
        size_t off; /* 4-byte header, CRC, side info; VBRI always at 36 */
        const char *magic;
    } tags[] = {
        {V1, false, false, 36, "Xing"}, {V1, true, false, 21, "Info"},
        {V2, true, false, 13, "Xing"},  {V2, false, true, 23, "Info"},
        {V1, true, true, 36, "VBRI"},   {V2, true, false, 36, "VBRI"},
    };
    uint8_t f[FRAMER_MAX_FRAME];
    size_t n;

    for (size_t i = 0; i < FC_ARRAY_LEN(tags); i++) {
        n = mp3_make(f, tags[i].version, 8, 0, false, tags[i].mono, tags[i].crc);
        assert_false(mp3_is_info_frame(f, n));
        memcpy(f + tags[i].off, tags[i].magic, 4);
        assert_true(mp3_is_info_frame(f, n));
        assert_false(mp3_is_info_frame(f, tags[i].off + 3)); /* tag cut short */
    }
}

/* --- the framer -------------------------------------------------------------------------- */

static void test_clean_mp3(void **state)
{
    static const struct {
        unsigned version, br, sr;
        bool mono;
    } kinds[] = {
        {V1, 9, 0, false},  /* MPEG-1 44.1 kHz stereo 128 kbps */
        {V2, 8, 0, true},   /* MPEG-2 22.05 kHz mono 64 kbps */
        {V25, 4, 2, false}, /* MPEG-2.5 8 kHz 32 kbps */
    };
    for (size_t k = 0; k < FC_ARRAY_LEN(kinds); k++) {
        stream_reset();
        add_mp3(kinds[k].version, kinds[k].br, kinds[k].sr, kinds[k].mono, 20);
        run(FC_CODEC_MP3, st.data, st.len, st.len, true);
        check_result();
        assert_int_equal(res.f.garbage_bytes, 0);
        assert_int_equal(res.f.last.channels, kinds[k].mono ? 1 : 2);
    }
}

static void test_clean_adts(void **state)
{
    stream_reset();
    add_adts(4, 2, 20); /* 44.1 kHz stereo */
    run(FC_CODEC_ADTS, st.data, st.len, 4096, true);
    check_result();
    assert_int_equal(res.f.garbage_bytes, 0);

    stream_reset();
    add_adts(3, 1, 20); /* 48 kHz mono */
    run(FC_CODEC_ADTS, st.data, st.len, 1000, true);
    check_result();
    assert_int_equal(res.f.last.sample_rate, 48000);
    assert_int_equal(res.f.last.channels, 1);
}

static void test_needs_successor_or_eof(void **state)
{
    stream_reset();
    add_mp3(V1, 9, 0, false, 1);
    run(FC_CODEC_MP3, st.data, st.len, st.len, false);
    assert_int_equal(res.frames, 0);
    framer_finish(&res.f);
    drain(FC_CODEC_MP3);
    check_result();
}

static void test_garbage_between_frames(void **state)
{
    size_t lost = 0;

    stream_reset();
    add_garbage(333, true);
    add_mp3(V1, 9, 0, false, 5);
    lost += lose_last_frame();
    add_garbage(1000, true);
    add_mp3(V1, 9, 0, false, 5);
    lost += lose_last_frame();
    add_garbage(1, false);
    add_mp3(V1, 9, 0, false, 5);
    run(FC_CODEC_MP3, st.data, st.len, 777, true);
    check_result();
    assert_int_equal(res.f.garbage_bytes, 1334 + lost);

    stream_reset();
    add_garbage(50, true);
    add_adts(4, 2, 5);
    lost = lose_last_frame();
    add_garbage(400, true);
    add_adts(4, 2, 5);
    run(FC_CODEC_ADTS, st.data, st.len, 100, true);
    check_result();
    assert_int_equal(res.f.garbage_bytes, 450 + lost);
}

static void test_fake_sync_rejected(void **state)
{
    static const uint8_t fake[4] = {0xFF, 0xFB, 0x90, 0x64}; /* MPEG-1 128k 44.1k: 417 bytes */
    uint8_t hdr[FRAMER_MAX_FRAME];

    stream_reset();
    put(fake, 4); /* fake sync first thing in the stream */
    add_garbage(100, false);
    add_mp3(V1, 9, 0, false, 3);
    put(fake, 4); /* and between frames, consistent with them */
    add_garbage(50, false);
    add_mp3(V1, 9, 0, false, 3);
    run(FC_CODEC_MP3, st.data, st.len, st.len, true);
    check_result();
    assert_int_equal(res.f.garbage_bytes, 158);

    stream_reset();
    add_adts(4, 2, 2);
    adts_make(hdr, 4, 2, 300, true); /* only the header: its "frame" runs into the next one */
    put(hdr, 7);
    add_garbage(20, false);
    add_adts(4, 2, 2);
    run(FC_CODEC_ADTS, st.data, st.len, 64, true);
    check_result();
    assert_int_equal(res.f.garbage_bytes, 27);
}

static void test_every_chunk_size(void **state)
{
    size_t lost;

    stream_reset();
    add_id3v2(300, false);
    add_mp3(V1, 14, 2, false, 3); /* 1440/1441-byte frames */
    lost = lose_last_frame();
    add_garbage(77, true);
    add_mp3(V1, 14, 2, false, 3);
    add_id3v2(20, true);
    add_mp3(V1, 14, 2, false, 2);
    add_id3v1();
    for (size_t chunk = 1; chunk <= 1600; chunk++) {
        run(FC_CODEC_MP3, st.data, st.len, chunk, true);
        check_result();
        assert_int_equal(res.f.garbage_bytes, 77 + lost);
        assert_int_equal(res.f.tags_skipped, 3);
    }

    stream_reset();
    add_adts(7, 1, 4);
    lost = lose_last_frame();
    add_garbage(10, true);
    add_adts(7, 1, 4);
    for (size_t chunk = 1; chunk <= 800; chunk++) {
        run(FC_CODEC_ADTS, st.data, st.len, chunk, true);
        check_result();
        assert_int_equal(res.f.garbage_bytes, 10 + lost);
    }
}

static void test_id3v2(void **state)
{
    stream_reset();
    add_id3v2(1000, false); /* at the start */
    add_mp3(V2, 8, 0, true, 4);
    add_id3v2(500, true); /* mid-stream, with footer */
    add_mp3(V2, 8, 0, true, 4);
    run(FC_CODEC_MP3, st.data, st.len, 333, true);
    check_result();
    assert_int_equal(res.f.tags_skipped, 2);
    assert_int_equal(res.f.garbage_bytes, 0);

    stream_reset();
    add_adts(4, 2, 3);
    add_id3v2(73, false); /* HLS packed audio puts an ID3 tag in front of each segment */
    add_adts(4, 2, 3);
    run(FC_CODEC_ADTS, st.data, st.len, 1, true);
    check_result();
    assert_int_equal(res.f.tags_skipped, 1);
}

static void test_id3v2_larger_than_buffer(void **state)
{
    static const size_t chunks[] = {1, 7, 4096, FRAMER_BUF_BYTES, STREAM_CAP};

    stream_reset();
    add_id3v2(3 * FRAMER_BUF_BYTES + 123, true);
    add_mp3(V1, 9, 0, false, 4);
    add_id3v2(FRAMER_BUF_BYTES * 2, false);
    add_mp3(V1, 9, 0, false, 4);
    for (size_t i = 0; i < FC_ARRAY_LEN(chunks); i++) {
        run(FC_CODEC_MP3, st.data, st.len, chunks[i], true);
        check_result();
        assert_int_equal(res.f.tags_skipped, 2);
        assert_int_equal(res.f.garbage_bytes, 0);
    }
}

static void test_id3v1(void **state)
{
    stream_reset();
    add_mp3(V1, 9, 0, false, 3);
    add_id3v1(); /* where a header was expected, followed by one */
    add_mp3(V1, 9, 0, false, 3);
    add_id3v1(); /* at the end */
    run(FC_CODEC_MP3, st.data, st.len, 50, true);
    check_result();
    assert_int_equal(res.f.tags_skipped, 2);
    assert_int_equal(res.f.garbage_bytes, 0);

    /* "TAG" followed by neither a header nor the end is garbage, like any other bytes. */
    stream_reset();
    add_mp3(V1, 9, 0, false, 2);
    add_id3v1();
    add_garbage(10, false);
    add_mp3(V1, 9, 0, false, 2);
    run(FC_CODEC_MP3, st.data, st.len, st.len, true);
    assert_int_equal(res.f.tags_skipped, 0);
    assert_int_equal(res.f.garbage_bytes, 418 + 128 + 10); /* frame 2 lost: junk follows it */
    assert_int_equal(res.frames, 3);
}

/* Append a tag frame (dropped by the framer) with `magic` at byte `off`. */
static void put_info_frame(unsigned version, bool mono, size_t off, const char *magic)
{
    uint8_t f[FRAMER_MAX_FRAME];
    size_t n = mp3_make(f, version, 8, 0, false, mono, false);

    memcpy(f + off, magic, 4);
    put(f, n);
}

static void test_info_frames_dropped(void **state)
{
    stream_reset();
    put_info_frame(V1, false, 36, "Xing");
    add_mp3(V1, 8, 0, false, 3);
    put_info_frame(V1, false, 36, "Info");
    add_mp3(V1, 8, 0, false, 3);
    run(FC_CODEC_MP3, st.data, st.len, 100, true);
    check_result();
    assert_int_equal(res.f.info_frames_dropped, 2);

    stream_reset();
    add_id3v2(40, false);
    put_info_frame(V2, true, 36, "VBRI");
    add_mp3(V2, 8, 0, true, 3);
    run(FC_CODEC_MP3, st.data, st.len, 1, true);
    check_result();
    assert_int_equal(res.f.info_frames_dropped, 1);
    assert_int_equal(res.f.tags_skipped, 1);
}

static void test_truncated(void **state)
{
    uint8_t f[FRAMER_MAX_FRAME];
    size_t n;

    for (size_t cut = 1; cut < 417; cut += 13) {
        stream_reset();
        add_mp3(V1, 9, 0, false, 4);
        n = mp3_make(f, V1, 9, 0, false, false, false);
        assert_true(cut < n);
        put(f, cut);
        run(FC_CODEC_MP3, st.data, st.len, 64, cut >= 4); /* 4 bytes confirm the 4th frame */
        if (cut < 4) {
            assert_int_equal(res.frames, 3);
            framer_finish(&res.f);
            drain(FC_CODEC_MP3);
        }
        check_result();
        assert_int_equal(res.f.garbage_bytes, cut);
    }

    stream_reset();
    add_adts(4, 2, 3);
    n = adts_make(f, 4, 2, 400, false);
    put(f, 399);
    run(FC_CODEC_ADTS, st.data, st.len, 3, true);
    check_result();
    assert_int_equal(res.f.garbage_bytes, 399);
}

static void test_trailing_junk(void **state)
{
    size_t lost;

    /* Junk after the last frame costs that frame, as anywhere else, whatever the chunking. */
    stream_reset();
    add_adts(4, 2, 5);
    lost = lose_last_frame();
    add_garbage(50, false);
    for (size_t chunk = 1; chunk <= st.len; chunk += 97) {
        run(FC_CODEC_ADTS, st.data, st.len, chunk, true);
        check_result();
        assert_int_equal(res.f.garbage_bytes, 50 + lost);
    }
}

static void test_feed_when_full(void **state)
{
    uint8_t junk[FRAMER_BUF_BYTES + 100];
    const uint8_t *frame;
    struct frame_info info;

    memset(junk, 0x11, sizeof junk);
    framer_init(&res.f, FC_CODEC_MP3);
    assert_int_equal(framer_feed(&res.f, junk, sizeof junk), FRAMER_BUF_BYTES);
    assert_int_equal(framer_feed(&res.f, junk, 1), 0);
    assert_int_equal(framer_next(&res.f, &frame, &info), FC_AGAIN);
    assert_int_equal(res.f.garbage_bytes, FRAMER_BUF_BYTES);
    assert_int_equal(framer_feed(&res.f, junk, 100), 100);
    assert_string_equal(fc_strerror(FC_PROTO), "protocol error");
}

#define REAL_MAX_BYTES (1024 * 1024) /* frames kept from one real file */

/* What framing a real file gave. */
struct real_result {
    size_t frames;         /* frames returned */
    size_t frame_bytes;    /* their total length */
    size_t file_bytes;     /* bytes read */
    struct frame_info first;
    uint64_t tags_skipped;
    uint8_t *audio;        /* the frames, concatenated (malloc'd) */
};

/*
 * Frame a real file in odd-sized chunks: every frame agrees with the first (rate, channels,
 * samples) and no byte is garbage. `path` (or the file named by `env`, if set) must exist.
 */
static struct real_result frame_real_file(enum fc_codec codec, const char *env, const char *path)
{
    struct real_result r = {0};
    bool custom = env && getenv(env);
    if (custom)
        path = getenv(env);
    FILE *fp = fopen(path, "rb");
    uint8_t chunk[1500]; /* odd size: chunk edges fall inside frames */
    const uint8_t *frame;
    struct frame_info info;
    size_t n;

    if (!fp)
        fail_msg("%s: cannot open (run from the repository root, as `make unit` does)", path);
    r.audio = malloc(REAL_MAX_BYTES);
    assert_non_null(r.audio);
    framer_init(&res.f, codec);
    for (bool eof = false; !eof;) {
        n = fread(chunk, 1, sizeof chunk, fp);
        r.file_bytes += n;
        eof = n == 0;
        if (eof)
            framer_finish(&res.f);
        size_t off = 0;
        do {
            off += framer_feed(&res.f, chunk + off, n - off);
            while (framer_next(&res.f, &frame, &info) == FC_OK) {
                if (r.frames++ == 0)
                    r.first = info;
                assert_int_equal(info.sample_rate, r.first.sample_rate);
                assert_int_equal(info.channels, r.first.channels);
                assert_int_equal(info.samples, r.first.samples);
                assert_true(r.frame_bytes + info.len <= REAL_MAX_BYTES);
                memcpy(r.audio + r.frame_bytes, frame, info.len);
                r.frame_bytes += info.len;
            }
        } while (off < n);
    }
    fclose(fp);
    assert_int_equal(res.f.garbage_bytes, 0);
    assert_int_equal(res.f.info_frames_dropped, 0);
    r.tags_skipped = res.f.tags_skipped;
    if (!custom)
        assert_true(r.frames > 10);
    return r;
}

/* 2 s of a 1 kHz tone, LAME at 128 kbit/s: 78 frames (ffprobe -count_packets), every byte a
 * frame byte. */
static void test_real_mp3(void **state)
{
    struct real_result r = frame_real_file(FC_CODEC_MP3, "FC_TEST_MP3", "tests/data/sample.mp3");
    if (!getenv("FC_TEST_MP3")) {
        assert_int_equal(r.frames, 78);
        assert_int_equal(r.frame_bytes, r.file_bytes);
        assert_int_equal(r.tags_skipped, 0);
        assert_int_equal(r.first.sample_rate, 44100);
        assert_int_equal(r.first.channels, 2);
        assert_int_equal(r.first.samples, 1152);
        assert_int_equal(r.first.bitrate, 128000);
    }
    free(r.audio);
}

/* The same audio behind an ID3v2.3 tag: the tag is skipped and the frames are byte for byte
 * those of the untagged file. */
static void test_real_mp3_id3(void **state)
{
    struct real_result plain = frame_real_file(FC_CODEC_MP3, NULL, "tests/data/sample.mp3");
    struct real_result tagged = frame_real_file(FC_CODEC_MP3, NULL, "tests/data/sample-id3.mp3");
    assert_int_equal(tagged.tags_skipped, 1);
    assert_int_equal(tagged.frames, plain.frames);
    assert_int_equal(tagged.frame_bytes, plain.frame_bytes);
    assert_int_equal(tagged.file_bytes, plain.file_bytes + 72); /* 10-byte header + 62 */
    assert_memory_equal(tagged.audio, plain.audio, plain.frame_bytes);
    free(plain.audio);
    free(tagged.audio);
}

/* 2 s of the tone, FFmpeg's AAC-LC in ADTS: 88 frames of 1024 samples. */
static void test_real_aac(void **state)
{
    struct real_result r = frame_real_file(FC_CODEC_ADTS, "FC_TEST_AAC", "tests/data/sample.aac");
    if (!getenv("FC_TEST_AAC")) {
        assert_int_equal(r.frames, 88);
        assert_int_equal(r.frame_bytes, r.file_bytes);
        assert_int_equal(r.first.sample_rate, 44100);
        assert_int_equal(r.first.channels, 2);
        assert_int_equal(r.first.samples, 1024);
    }
    free(r.audio);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_mp3_header_values),
        cmocka_unit_test(test_mp3_header_rejects),
        cmocka_unit_test(test_adts_header),
        cmocka_unit_test(test_main_data_begin),
        cmocka_unit_test(test_info_frame_detect),
        cmocka_unit_test(test_clean_mp3),
        cmocka_unit_test(test_clean_adts),
        cmocka_unit_test(test_needs_successor_or_eof),
        cmocka_unit_test(test_garbage_between_frames),
        cmocka_unit_test(test_fake_sync_rejected),
        cmocka_unit_test(test_every_chunk_size),
        cmocka_unit_test(test_id3v2),
        cmocka_unit_test(test_id3v2_larger_than_buffer),
        cmocka_unit_test(test_id3v1),
        cmocka_unit_test(test_info_frames_dropped),
        cmocka_unit_test(test_truncated),
        cmocka_unit_test(test_trailing_junk),
        cmocka_unit_test(test_feed_when_full),
        cmocka_unit_test(test_real_mp3),
        cmocka_unit_test(test_real_mp3_id3),
        cmocka_unit_test(test_real_aac),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
