/*
 * test_wire_fast.c - the FRAME fast path of wire_decode() (shared/wire.c, issue 9) against the
 * general msgpack-c path it short-cuts. wire.c is included whole to reach both statics.
 *
 * The rule checked: whenever decode_frame_fast() accepts a body, decode_general() accepts it too
 * and fills every field the same; and the fast path accepts what the encoder sends (so the relay
 * really takes it). Bodies: frames from wire_encode_frame() with fields at their limits, then
 * every byte of each replaced by values chosen to hit msgpack type boundaries, every bit flipped,
 * and every truncation. Non-canonical but valid encodings must fall back and still decode.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <sodium.h>

#include "../../shared/wire.c"

static const char KEY_HEX[] = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";

#define BODY_CAP 16384

static struct mac_key key;
static struct mac_keyring keys; /* {key} */
static struct wire_decoder dec;
static struct wire_msg fast_msg, gen_msg;
static uint8_t body[BODY_CAP];
static uint8_t payload[FRAMER_MAX_FRAME];
static size_t n_fast; /* bodies the fast path accepted, over a test */

static int setup(void **state)
{
    if (mac_global_init() != FC_OK || mac_key_from_hex(KEY_HEX, strlen(KEY_HEX), &key) != FC_OK ||
        mac_keyring_add(&keys, &key) != FC_OK || wire_decoder_init(&dec) != FC_OK)
        return -1;
    return 0;
}

static int teardown(void **state)
{
    wire_decoder_free(&dec);
    return 0;
}

/* An MP3 frame with header `hdr` in `payload`; returns its length. */
static uint32_t make_mp3(uint8_t b0, uint8_t b1, uint8_t b2, uint8_t b3)
{
    const uint8_t hdr[4] = {b0, b1, b2, b3};
    struct frame_info info;
    assert_int_equal(mp3_header_parse(hdr, 4, &info), FC_OK);
    memset(payload, 0x55, info.len);
    memcpy(payload, hdr, 4);
    return (uint32_t)info.len;
}

static void frame_default(struct wire_frame *f)
{
    memset(f, 0, sizeof(*f));
    strcpy(f->mount, "live.mp3");
    strcpy(f->encoder, "enc-A_1");
    f->priority = 1;
    f->session = 0x0123456789ABCDEFull;
    f->seq = 42;
    f->pts_us = 1700000000000000ull;
    f->codec = FC_CODEC_MP3;
    f->sample_rate = 44100;
    f->channels = 2;
    f->samples = 1152;
    f->level[0] = -10;
    f->level[2] = -128;
    f->payload = payload;
    f->payload_len = make_mp3(0xFF, 0xFB, 0x90, 0x64);
}

/* Body (no tag) of `f` into `body`; returns its length. */
static size_t encode_body(const struct wire_frame *f)
{
    static uint8_t out[BODY_CAP];
    size_t len = 0;
    assert_int_equal(wire_encode_frame(&key, f, out, sizeof(out), &len), FC_OK);
    memcpy(body, out, len - MAC_TAG_BYTES);
    return len - MAC_TAG_BYTES;
}

static void assert_same_frame(const struct wire_frame *a, const struct wire_frame *b)
{
    assert_string_equal(a->mount, b->mount);
    assert_string_equal(a->encoder, b->encoder);
    assert_int_equal(a->priority, b->priority);
    assert_true(a->session == b->session);
    assert_true(a->seq == b->seq);
    assert_true(a->pts_us == b->pts_us);
    assert_int_equal(a->codec, b->codec);
    assert_int_equal(a->sample_rate, b->sample_rate);
    assert_int_equal(a->channels, b->channels);
    assert_int_equal(a->samples, b->samples);
    assert_memory_equal(a->level, b->level, 4);
    assert_ptr_equal(a->payload, b->payload);
    assert_int_equal(a->payload_len, b->payload_len);
    assert_int_equal(a->has_meta, b->has_meta);
    assert_int_equal(a->has_station, b->has_station);
    assert_string_equal(a->title, b->title);
    assert_string_equal(a->url, b->url);
    assert_string_equal(a->st_name, b->st_name);
    assert_string_equal(a->st_genre, b->st_genre);
    assert_string_equal(a->st_desc, b->st_desc);
    assert_string_equal(a->st_url, b->st_url);
    assert_int_equal(a->st_bitrate, b->st_bitrate);
}

/* The rule, for one body of `len` bytes. Returns whether the fast path took it. */
static bool check_body(size_t len)
{
    memset(&fast_msg, 0xA5, sizeof(fast_msg));
    memset(&gen_msg, 0x5A, sizeof(gen_msg));
    bool fast = decode_frame_fast(body, len, &fast_msg);
    const char *why = NULL;
    enum fc_err err = decode_general(&dec, body, len, &gen_msg, &why);
    if (!fast)
        return false;
    n_fast++;
    if (err != FC_OK)
        fail_msg("fast path accepted a body the general path rejects (%s), len %zu", why, len);
    assert_int_equal(fast_msg.type, WIRE_FRAME);
    assert_int_equal(gen_msg.type, WIRE_FRAME);
    assert_same_frame(&fast_msg.u.frame, &gen_msg.u.frame);
    return true;
}

/* Frames as the encoder sends them, fields at their limits: all take the fast path. */
static void test_encoded_frames_take_fast_path(void **state)
{
    struct wire_frame f;
    frame_default(&f);
    assert_true(check_body(encode_body(&f)));

    static const uint64_t u64s[] = {
        0, 1, 127, 128, 255, 256, 65535, 65536, 0xFFFFFFFFull, 0x100000000ull, UINT64_MAX - 1};
    for (size_t i = 0; i < FC_ARRAY_LEN(u64s); i++) {
        frame_default(&f);
        f.session = u64s[i];
        f.seq = u64s[i];
        f.pts_us = u64s[i];
        f.priority = (uint32_t)(u64s[i] & 0xFF);
        assert_true(check_body(encode_body(&f)));
    }
    frame_default(&f);
    f.session = UINT64_MAX;
    f.pts_us = UINT64_MAX;
    assert_true(check_body(encode_body(&f)));

    /* Names of 1, 31 (last fixstr) and 32+ bytes (str 8), at the maximum. */
    frame_default(&f);
    strcpy(f.mount, "a");
    strcpy(f.encoder, "Z");
    assert_true(check_body(encode_body(&f)));
    memset(f.mount, 'm', WIRE_MOUNT_MAX);
    f.mount[WIRE_MOUNT_MAX] = '\0';
    memset(f.encoder, 'e', WIRE_ENCODER_MAX);
    f.encoder[WIRE_ENCODER_MAX] = '\0';
    assert_true(check_body(encode_body(&f)));
    memset(f.mount, '.', 31);
    f.mount[31] = '\0';
    assert_true(check_body(encode_body(&f)));

    /* MPEG-2 LSF mono, a padded frame, and ADTS (bin 16 payloads past 255 bytes). */
    frame_default(&f);
    f.sample_rate = 22050;
    f.channels = 1;
    f.samples = 576;
    f.payload_len = make_mp3(0xFF, 0xF3, 0x80, 0xC4);
    assert_true(check_body(encode_body(&f)));
    frame_default(&f);
    f.payload_len = make_mp3(0xFF, 0xFB, 0x92, 0x64);
    assert_true(check_body(encode_body(&f)));
    frame_default(&f);
    f.codec = FC_CODEC_ADTS;
    f.sample_rate = 48000;
    f.channels = 2;
    f.samples = 1024;
    f.payload_len = 300;
    memset(payload, 0, 300);
    payload[0] = 0xFF;
    payload[1] = 0xF1;
    payload[2] = (uint8_t)(1 << 6 | 3 << 2);
    payload[3] = (uint8_t)(2 << 6 | (300 >> 11));
    payload[4] = (uint8_t)(300 >> 3);
    payload[5] = (uint8_t)((300 & 7) << 5 | 0x1F);
    payload[6] = 0xFC;
    assert_true(check_body(encode_body(&f)));

    /* A frame with a title is not the fast path's (meta is a map): the general path decodes it. */
    frame_default(&f);
    f.has_meta = true;
    strcpy(f.title, "Artist - Song");
    size_t len = encode_body(&f);
    assert_false(check_body(len));
    const char *why = NULL;
    assert_int_equal(decode_general(&dec, body, len, &gen_msg, &why), FC_OK);
    assert_string_equal(gen_msg.u.frame.title, "Artist - Song");
}

/* Valid but not as the encoder packs it: falls back, and wire_decode() still accepts it. */
static void test_other_encodings_fall_back(void **state)
{
    struct wire_frame f;
    frame_default(&f);
    size_t len = encode_body(&f);
    static uint8_t msg[BODY_CAP + MAC_TAG_BYTES];
    const char *why = NULL;

    /* The version as a uint 8 (0xcc 0x01) instead of a fixint. */
    memmove(body + 2, body + 1, len - 1);
    body[1] = 0xcc;
    body[2] = 0x01;
    assert_false(check_body(len + 1));
    memcpy(msg, body, len + 1);
    mac_tag(&key, msg, len + 1, msg + len + 1);
    assert_int_equal(wire_decode(&dec, &keys, msg, len + 1 + MAC_TAG_BYTES, &gen_msg, &why), FC_OK);
    assert_int_equal(gen_msg.u.frame.seq, 42);

    /* A 16th item (a later protocol version): the array header is 0xdc 0x00 0x10. */
    len = encode_body(&f);
    memmove(body + 3, body + 1, len - 1);
    body[0] = 0xdc;
    body[1] = 0x00;
    body[2] = 0x10;
    body[len + 2] = 0xc0;
    assert_false(check_body(len + 3));
    memcpy(msg, body, len + 3);
    mac_tag(&key, msg, len + 3, msg + len + 3);
    assert_int_equal(wire_decode(&dec, &keys, msg, len + 3 + MAC_TAG_BYTES, &gen_msg, &why), FC_OK);
    assert_string_equal(gen_msg.u.frame.mount, "live.mp3");
}

/* Offset of the level bin header (0xc4 0x04) in a body from frame_default(). */
static size_t level_at(size_t len)
{
    for (size_t i = 0; i + 6 <= len; i++)
        if (body[i] == 0xc4 && body[i + 1] == 4 && memcmp(body + i + 2, "\xf6\0\x80\0", 4) == 0)
            return i;
    fail_msg("no level field");
    return 0;
}

/* A level of 3 or 5 bytes is refused by both paths (the byte mutations cannot make one). */
static void test_level_length_refused(void **state)
{
    struct wire_frame f;
    frame_default(&f);
    size_t len = encode_body(&f), at = level_at(len);
    const char *why = NULL;
    /* 5 bytes: one more after the four. */
    memmove(body + at + 7, body + at + 6, len - at - 6);
    body[at + 1] = 5;
    body[at + 6] = 0;
    assert_false(check_body(len + 1));
    assert_int_equal(decode_general(&dec, body, len + 1, &gen_msg, &why), FC_PROTO);
    assert_string_equal(why, "level");
    /* 3 bytes. */
    len = encode_body(&f);
    memmove(body + at + 5, body + at + 6, len - at - 6);
    body[at + 1] = 3;
    assert_false(check_body(len - 1));
    assert_int_equal(decode_general(&dec, body, len - 1, &gen_msg, &why), FC_PROTO);
    assert_string_equal(why, "level");
}

/* Every byte replaced by type-boundary values, every bit flipped, every truncation: the fast
 * path never accepts what the general path would not, nor decodes it differently. */
static void test_mutations_agree(void **state)
{
    static const uint8_t values[] = {0x00, 0x01, 0x02, 0x7f, 0x80, 0x8f, 0x90, 0x9e,
                                     0x9f, 0xa0, 0xa1, 0xbf, 0xc0, 0xc1, 0xc2, 0xc4,
                                     0xc5, 0xc6, 0xcc, 0xcd, 0xce, 0xcf, 0xd0, 0xd9,
                                     0xda, 0xdb, 0xdc, 0xe0, 0xff, '.',  'a',  '/'};
    struct wire_frame f;
    frame_default(&f);
    f.seq = 1000;     /* uint 16 */
    f.priority = 200; /* uint 8 */
    static uint8_t orig[BODY_CAP];
    size_t len = encode_body(&f);
    memcpy(orig, body, len);
    n_fast = 0;
    size_t n_bodies = 0;
    for (size_t i = 0; i < len; i++) {
        for (size_t v = 0; v < FC_ARRAY_LEN(values) + 8; v++) {
            memcpy(body, orig, len);
            body[i] = v < FC_ARRAY_LEN(values)
                          ? values[v]
                          : (uint8_t)(orig[i] ^ (1u << (v - FC_ARRAY_LEN(values))));
            check_body(len);
            n_bodies++;
        }
    }
    for (size_t n = 0; n <= len + 1; n++) {
        memcpy(body, orig, len);
        body[len] = 0xc0; /* n = len + 1: one byte too many */
        check_body(n);
        n_bodies++;
    }
    /* Some mutations are valid frames (a seq or payload byte changed): the fast path must have
     * taken a good share of them, or it would be dead code. */
    assert_true(n_fast > n_bodies / 10);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_encoded_frames_take_fast_path),
        cmocka_unit_test(test_other_encodings_fall_back),
        cmocka_unit_test(test_level_length_refused),
        cmocka_unit_test(test_mutations_agree),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
