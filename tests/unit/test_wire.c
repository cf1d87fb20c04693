/*
 * test_wire.c - unit tests for the wire protocol v1 (shared/wire.c) and message tags
 * (shared/mac.c), docs/architecture.md §2.
 *
 * Valid messages come from the encoders; malformed ones are packed by hand with msgpack-c and
 * tagged with mac_tag(), so each test reaches the field check it aims at rather than stopping
 * at the tag. Every hand-built rejection also checks that `why` names the field, so a test
 * cannot pass because the message failed earlier for another reason.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <msgpack.h>

#include "framer.h"
#include "mac.h"
#include "wire.h"

static const char KEY_HEX[] = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";
static const char OTHER_KEY_HEX[] =
    "ff0102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";

#define MSG_CAP (WIRE_LEN_BYTES + WIRE_MAX_MSG + 64)

static struct mac_key key;
static struct mac_keyring keys; /* {key} */
static struct wire_decoder dec;
static struct wire_msg msg;
static uint8_t buf[MSG_CAP];

/* MPEG-1 Layer III, 128 kbit/s, 44.1 kHz, joint stereo, no padding / padding; MPEG-2 LSF
 * 64 kbit/s 22.05 kHz mono (ISO/IEC 11172-3 §2.4.2.3, 13818-3 §2.4.2.3). */
static const uint8_t MP3_HDR[4] = {0xFF, 0xFB, 0x90, 0x64};
static const uint8_t MP3_HDR_PAD[4] = {0xFF, 0xFB, 0x92, 0x64};
static const uint8_t MP3_HDR_LSF[4] = {0xFF, 0xF3, 0x80, 0xC4};
#define MP3_LEN 417 /* 144 * 128000 / 44100 */
#define ADTS_LEN 300

static uint8_t mp3[MP3_LEN];
static uint8_t mp3_pad[MP3_LEN + 1];
static uint8_t mp3_lsf[FRAMER_MAX_FRAME];
static size_t mp3_lsf_len;
static uint8_t adts[ADTS_LEN];

/* ---- fixtures ---- */

static size_t make_mp3(const uint8_t hdr[4], uint8_t *out)
{
    struct frame_info info;
    assert_int_equal(mp3_header_parse(hdr, 4, &info), FC_OK);
    memset(out, 0, info.len);
    memcpy(out, hdr, 4);
    return info.len;
}

/* ADTS, ISO/IEC 13818-7 §6.2: MPEG-4, no CRC, AAC LC, 48 kHz (index 3), 2 channels. */
static void make_adts(uint8_t *out, size_t len)
{
    memset(out, 0, len);
    out[0] = 0xFF;
    out[1] = 0xF1;                            /* sync, MPEG-4, layer 0, no CRC */
    out[2] = (uint8_t)(1 << 6 | 3 << 2 | 0);  /* profile LC (1), index 3 */
    out[3] = (uint8_t)(2 << 6 | (len >> 11)); /* channel_configuration 2 */
    out[4] = (uint8_t)(len >> 3);
    out[5] = (uint8_t)((len & 7) << 5 | 0x1F); /* buffer fullness 0x7FF (VBR) */
    out[6] = 0xFC;                             /* ...fullness, 1 raw data block */
}

static int group_setup(void **state)
{
    if (mac_global_init() != FC_OK)
        return -1;
    if (mac_key_from_hex(KEY_HEX, strlen(KEY_HEX), &key) != FC_OK ||
        mac_keyring_add(&keys, &key) != FC_OK)
        return -1;
    if (wire_decoder_init(&dec) != FC_OK)
        return -1;
    make_mp3(MP3_HDR, mp3);
    make_mp3(MP3_HDR_PAD, mp3_pad);
    mp3_lsf_len = make_mp3(MP3_HDR_LSF, mp3_lsf);
    make_adts(adts, ADTS_LEN);
    return 0;
}

static int group_teardown(void **state)
{
    wire_decoder_free(&dec);
    mac_key_wipe(&key);
    mac_keyring_wipe(&keys);
    return 0;
}

static void frame_mp3(struct wire_frame *f)
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
    f->level[1] = -20;
    f->level[2] = -128;
    f->level[3] = 0;
    f->payload = mp3;
    f->payload_len = MP3_LEN;
}

static void frame_adts(struct wire_frame *f)
{
    frame_mp3(f);
    strcpy(f->mount, "aac");
    f->codec = FC_CODEC_ADTS;
    f->sample_rate = 48000;
    f->channels = 2;
    f->samples = 1024;
    f->payload = adts;
    f->payload_len = ADTS_LEN;
}

static size_t encode_frame_ok(const struct wire_frame *f)
{
    size_t len = 0;
    assert_int_equal(wire_encode_frame(&key, f, buf, sizeof(buf), &len), FC_OK);
    assert_true(len > MAC_TAG_BYTES && len <= WIRE_MAX_MSG);
    return len;
}

static enum fc_err decode(const uint8_t *m, size_t len, const char **why)
{
    memset(&msg, 0xA5, sizeof(msg));
    return wire_decode(&dec, &keys, m, len, &msg, why);
}

static void expect_ok(const uint8_t *m, size_t len)
{
    const char *why = NULL;
    enum fc_err err = decode(m, len, &why);
    if (err != FC_OK)
        fail_msg("decode: %s (%s)", fc_strerror(err), why ? why : "?");
}

/* FC_PROTO, and `why` mentions `field`. */
static void expect_proto(const uint8_t *m, size_t len, const char *field)
{
    const char *why = NULL;
    enum fc_err err = decode(m, len, &why);
    if (err != FC_PROTO)
        fail_msg("want FC_PROTO for %s, got %s (%s)", field, fc_strerror(err), why ? why : "?");
    assert_non_null(why);
    if (!strstr(why, field))
        fail_msg("want rejection naming \"%s\", got \"%s\"", field, why);
}

static void assert_frames_equal(const struct wire_frame *a, const struct wire_frame *b)
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
    assert_int_equal(a->payload_len, b->payload_len);
    assert_memory_equal(a->payload, b->payload, a->payload_len);
    assert_int_equal(a->has_meta, b->has_meta);
    if (a->has_meta) {
        assert_string_equal(a->title, b->title);
        assert_string_equal(a->url, b->url);
    }
}

/* ---- hand-packed FRAME bodies ---- */

enum meta_kind {
    META_NIL,
    META_MAP,       /* {"title": title, "url": "u"} */
    META_INT,       /* 7 instead of a map */
    META_INT_VALUE, /* {"title": 7} */
    META_INT_KEY,   /* {7: "x"} */
    META_HUGE_MAP,  /* 17 entries: over the cap of 16 */
    META_OTHER_KEY, /* {"mood": 7}: unknown keys are ignored */
};

struct hand {
    uint32_t n_items;   /* array size in the header */
    uint32_t n_written; /* items actually written */
    uint64_t version, type;
    const char *mount;
    size_t mount_len;
    const char *encoder;
    size_t encoder_len;
    uint64_t priority, session, seq, pts, codec, rate, channels, samples;
    const void *level;
    size_t level_len;
    const void *payload;
    size_t payload_len;
    enum meta_kind meta;
    const char *title;
    size_t title_len;
    int wrong_type_at; /* item index written as a str instead, or -1 */
    bool trailing;     /* one more msgpack object after the array */
};

static const int8_t LEVEL[4] = {-1, -2, -3, -4};

static void hand_default(struct hand *h)
{
    memset(h, 0, sizeof(*h));
    h->n_items = h->n_written = 15; /* [1, 1, + 13 fields], docs/architecture.md §2.1 */
    h->version = WIRE_VERSION;
    h->type = WIRE_FRAME;
    h->mount = "live";
    h->mount_len = 4;
    h->encoder = "enc";
    h->encoder_len = 3;
    h->priority = 0;
    h->session = 99;
    h->seq = 7;
    h->pts = 123456789;
    h->codec = FC_CODEC_MP3;
    h->rate = 44100;
    h->channels = 2;
    h->samples = 1152;
    h->level = LEVEL;
    h->level_len = 4;
    h->payload = mp3;
    h->payload_len = MP3_LEN;
    h->meta = META_NIL;
    h->title = "T";
    h->title_len = 1;
    h->wrong_type_at = -1;
}

static void pack_item(msgpack_packer *pk, const struct hand *h, uint32_t i)
{
    if ((int)i == h->wrong_type_at) {
        if (i == 2 || i == 3)
            msgpack_pack_int(pk, 1); /* a number where a string belongs */
        else
            msgpack_pack_str_with_body(pk, "x", 1);
        return;
    }
    switch (i) {
    case 0:
        msgpack_pack_uint64(pk, h->version);
        break;
    case 1:
        msgpack_pack_uint64(pk, h->type);
        break;
    case 2:
        msgpack_pack_str_with_body(pk, h->mount, h->mount_len);
        break;
    case 3:
        msgpack_pack_str_with_body(pk, h->encoder, h->encoder_len);
        break;
    case 4:
        msgpack_pack_uint64(pk, h->priority);
        break;
    case 5:
        msgpack_pack_uint64(pk, h->session);
        break;
    case 6:
        msgpack_pack_uint64(pk, h->seq);
        break;
    case 7:
        msgpack_pack_uint64(pk, h->pts);
        break;
    case 8:
        msgpack_pack_uint64(pk, h->codec);
        break;
    case 9:
        msgpack_pack_uint64(pk, h->rate);
        break;
    case 10:
        msgpack_pack_uint64(pk, h->channels);
        break;
    case 11:
        msgpack_pack_uint64(pk, h->samples);
        break;
    case 12:
        msgpack_pack_bin_with_body(pk, h->level, h->level_len);
        break;
    case 13:
        msgpack_pack_bin_with_body(pk, h->payload, h->payload_len);
        break;
    case 14:
        switch (h->meta) {
        case META_NIL:
            msgpack_pack_nil(pk);
            break;
        case META_MAP:
            msgpack_pack_map(pk, 2);
            msgpack_pack_str_with_body(pk, "title", 5);
            msgpack_pack_str_with_body(pk, h->title, h->title_len);
            msgpack_pack_str_with_body(pk, "url", 3);
            msgpack_pack_str_with_body(pk, "u", 1);
            break;
        case META_INT:
            msgpack_pack_int(pk, 7);
            break;
        case META_INT_VALUE:
            msgpack_pack_map(pk, 1);
            msgpack_pack_str_with_body(pk, "title", 5);
            msgpack_pack_int(pk, 7);
            break;
        case META_INT_KEY:
            msgpack_pack_map(pk, 1);
            msgpack_pack_int(pk, 7);
            msgpack_pack_str_with_body(pk, "x", 1);
            break;
        case META_HUGE_MAP:
            msgpack_pack_map(pk, 17);
            for (int k = 0; k < 17; k++) {
                char name[16];
                snprintf(name, sizeof(name), "k%d", k);
                msgpack_pack_str_with_body(pk, name, strlen(name));
                msgpack_pack_nil(pk);
            }
            break;
        case META_OTHER_KEY:
            msgpack_pack_map(pk, 1);
            msgpack_pack_str_with_body(pk, "mood", 4);
            msgpack_pack_int(pk, 7);
            break;
        }
        break;
    default:
        msgpack_pack_nil(pk); /* extra items: ignored by receivers of this version */
        break;
    }
}

/* Tag `body` with the test key into `out`; returns body + tag length. */
static size_t tag_body(const void *body, size_t body_len, uint8_t *out)
{
    assert_true(body_len + MAC_TAG_BYTES <= MSG_CAP);
    memmove(out, body, body_len);
    mac_tag(&key, out, body_len, out + body_len);
    return body_len + MAC_TAG_BYTES;
}

static size_t hand_pack(const struct hand *h)
{
    msgpack_sbuffer sb;
    msgpack_packer pk;
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_array(&pk, h->n_items);
    for (uint32_t i = 0; i < h->n_written; i++)
        pack_item(&pk, h, i);
    if (h->trailing)
        msgpack_pack_nil(&pk);
    size_t len = tag_body(sb.data, sb.size, buf);
    msgpack_sbuffer_destroy(&sb);
    return len;
}

/* ---- round trips ---- */

static void test_hello_round_trip(void **state)
{
    size_t len = 0;
    const char *roles[] = {"shim", "relay", "edge"};
    for (size_t i = 0; i < FC_ARRAY_LEN(roles); i++) {
        assert_int_equal(
            wire_encode_hello(&key, roles[i], "node-1.example", buf, sizeof(buf), &len), FC_OK);
        expect_ok(buf, len);
        assert_int_equal(msg.type, WIRE_HELLO);
        assert_string_equal(msg.u.hello.role, roles[i]);
        assert_string_equal(msg.u.hello.node, "node-1.example");
        assert_true(msg.u.hello.n_features <= WIRE_FEATURES_MAX);
        for (uint32_t k = 0; k < msg.u.hello.n_features; k++)
            assert_true(strlen(msg.u.hello.features[k]) < 32);
    }
}

static void test_frame_round_trip_mp3(void **state)
{
    struct wire_frame f;
    frame_mp3(&f);
    assert_int_equal(MP3_LEN, 417);
    size_t len = encode_frame_ok(&f);
    expect_ok(buf, len);
    assert_int_equal(msg.type, WIRE_FRAME);
    assert_frames_equal(&msg.u.frame, &f);
    /* The payload is borrowed from the message buffer, not copied. */
    assert_true(msg.u.frame.payload >= buf && msg.u.frame.payload + MP3_LEN <= buf + len);
    assert_false(msg.u.frame.has_meta);
    assert_string_equal(msg.u.frame.title, "");
    assert_string_equal(msg.u.frame.url, "");
}

static void test_frame_round_trip_mp3_padded_and_lsf(void **state)
{
    struct wire_frame f;
    frame_mp3(&f);
    f.payload = mp3_pad;
    f.payload_len = MP3_LEN + 1;
    expect_ok(buf, encode_frame_ok(&f));
    assert_frames_equal(&msg.u.frame, &f);

    frame_mp3(&f);
    f.payload = mp3_lsf;
    f.payload_len = (uint32_t)mp3_lsf_len;
    f.sample_rate = 22050;
    f.channels = 1;
    f.samples = 576;
    expect_ok(buf, encode_frame_ok(&f));
    assert_frames_equal(&msg.u.frame, &f);
}

static void test_frame_round_trip_meta(void **state)
{
    struct wire_frame f;
    frame_mp3(&f);
    f.has_meta = true;
    strcpy(f.title, "Guns N' Roses - Sweet Child O' Mine \xC3\xA9");
    strcpy(f.url, "http://example.org/now");
    expect_ok(buf, encode_frame_ok(&f));
    assert_frames_equal(&msg.u.frame, &f);

    /* Longest fields. */
    memset(f.title, 'T', WIRE_META_MAX);
    f.title[WIRE_META_MAX] = '\0';
    memset(f.url, 'U', WIRE_META_MAX);
    f.url[WIRE_META_MAX] = '\0';
    memset(f.mount, 'm', WIRE_MOUNT_MAX);
    f.mount[WIRE_MOUNT_MAX] = '\0';
    memset(f.encoder, 'e', WIRE_ENCODER_MAX);
    f.encoder[WIRE_ENCODER_MAX] = '\0';
    f.session = f.pts_us = UINT64_MAX;
    f.seq = UINT64_MAX - 1;
    f.priority = 255;
    expect_ok(buf, encode_frame_ok(&f));
    assert_frames_equal(&msg.u.frame, &f);

    /* Meta present with both fields empty still says "meta present". */
    frame_mp3(&f);
    f.has_meta = true;
    expect_ok(buf, encode_frame_ok(&f));
    assert_true(msg.u.frame.has_meta);
    assert_string_equal(msg.u.frame.title, "");
}

static void test_frame_round_trip_adts(void **state)
{
    struct wire_frame f;
    struct frame_info info;
    assert_int_equal(adts_header_parse(adts, ADTS_LEN, &info), FC_OK);
    assert_int_equal(info.len, ADTS_LEN);
    assert_int_equal(info.sample_rate, 48000);
    assert_int_equal(info.channels, 2);
    frame_adts(&f);
    expect_ok(buf, encode_frame_ok(&f));
    assert_frames_equal(&msg.u.frame, &f);
    f.has_meta = true;
    strcpy(f.title, "aac title");
    expect_ok(buf, encode_frame_ok(&f));
    assert_frames_equal(&msg.u.frame, &f);
}

static void test_subscribe_round_trip(void **state)
{
    static struct wire_subscribe s;
    size_t len = 0;

    /* Empty: all mounts, nothing to resume. */
    memset(&s, 0, sizeof(s));
    assert_int_equal(wire_encode_subscribe(&key, &s, buf, sizeof(buf), &len), FC_OK);
    expect_ok(buf, len);
    assert_int_equal(msg.type, WIRE_SUBSCRIBE);
    assert_int_equal(msg.u.subscribe.n_mounts, 0);
    assert_int_equal(msg.u.subscribe.n_resume, 0);

    s.n_mounts = 3;
    strcpy(s.mounts[0], "live");
    strcpy(s.mounts[1], "jazz.aac");
    strcpy(s.mounts[2], "talk_2-b");
    s.n_resume = 2;
    strcpy(s.resume[0].mount, "live");
    strcpy(s.resume[0].encoder, "a");
    s.resume[0].session = UINT64_MAX;
    s.resume[0].next_seq = 0;
    strcpy(s.resume[1].mount, "jazz.aac");
    strcpy(s.resume[1].encoder, "backup-2");
    s.resume[1].session = 1;
    s.resume[1].next_seq = 123456789012ull;
    assert_int_equal(wire_encode_subscribe(&key, &s, buf, sizeof(buf), &len), FC_OK);
    expect_ok(buf, len);
    assert_int_equal(msg.u.subscribe.n_mounts, 3);
    for (int i = 0; i < 3; i++)
        assert_string_equal(msg.u.subscribe.mounts[i], s.mounts[i]);
    assert_int_equal(msg.u.subscribe.n_resume, 2);
    for (int i = 0; i < 2; i++) {
        assert_string_equal(msg.u.subscribe.resume[i].mount, s.resume[i].mount);
        assert_string_equal(msg.u.subscribe.resume[i].encoder, s.resume[i].encoder);
        assert_true(msg.u.subscribe.resume[i].session == s.resume[i].session);
        assert_true(msg.u.subscribe.resume[i].next_seq == s.resume[i].next_seq);
    }

    /* The largest SUBSCRIBE: every slot used, longest names; must still fit one message. */
    s.n_mounts = WIRE_SUB_MOUNTS_MAX;
    s.n_resume = WIRE_SUB_RESUME_MAX;
    for (uint32_t i = 0; i < WIRE_SUB_MOUNTS_MAX; i++) {
        memset(s.mounts[i], 'a' + i % 26, WIRE_MOUNT_MAX);
        s.mounts[i][WIRE_MOUNT_MAX] = '\0';
    }
    for (uint32_t i = 0; i < WIRE_SUB_RESUME_MAX; i++) {
        memset(s.resume[i].mount, 'M', WIRE_MOUNT_MAX);
        s.resume[i].mount[WIRE_MOUNT_MAX] = '\0';
        memset(s.resume[i].encoder, 'E', WIRE_ENCODER_MAX);
        s.resume[i].encoder[WIRE_ENCODER_MAX] = '\0';
        s.resume[i].session = UINT64_MAX - i;
        s.resume[i].next_seq = i;
    }
    assert_int_equal(wire_encode_subscribe(&key, &s, buf, sizeof(buf), &len), FC_OK);
    expect_ok(buf, len);
    assert_int_equal(msg.u.subscribe.n_mounts, WIRE_SUB_MOUNTS_MAX);
    assert_int_equal(msg.u.subscribe.n_resume, WIRE_SUB_RESUME_MAX);
    assert_true(msg.u.subscribe.resume[255].session == UINT64_MAX - 255);
    assert_string_equal(msg.u.subscribe.mounts[63], s.mounts[63]);

    /* One over either cap. */
    s.n_mounts = WIRE_SUB_MOUNTS_MAX + 1;
    assert_int_equal(wire_encode_subscribe(&key, &s, buf, sizeof(buf), &len), FC_LIMIT);
    s.n_mounts = 0;
    s.n_resume = WIRE_SUB_RESUME_MAX + 1;
    assert_int_equal(wire_encode_subscribe(&key, &s, buf, sizeof(buf), &len), FC_LIMIT);
}

static void test_heartbeat_round_trip(void **state)
{
    const uint64_t values[] = {0, 1, 127, 128, 65535, 1700000000000000ull, UINT64_MAX};
    for (size_t i = 0; i < FC_ARRAY_LEN(values); i++) {
        size_t len = 0;
        assert_int_equal(wire_encode_heartbeat(&key, values[i], buf, sizeof(buf), &len), FC_OK);
        expect_ok(buf, len);
        assert_int_equal(msg.type, WIRE_HEARTBEAT);
        assert_true(msg.u.heartbeat.now_us == values[i]);
    }
}

/* Every encoder: every capacity below the message size is FC_LIMIT, writing nothing past it. */
static void test_encode_small_buffer(void **state)
{
    struct wire_frame f;
    frame_mp3(&f);
    f.has_meta = true;
    strcpy(f.title, "t");
    size_t full = encode_frame_ok(&f);
    for (size_t cap = 0; cap < full; cap++) {
        uint8_t *out = malloc(cap ? cap : 1); /* exact size: ASan catches overruns */
        size_t len = 0;
        assert_non_null(out);
        assert_int_equal(wire_encode_frame(&key, &f, out, cap, &len), FC_LIMIT);
        free(out);
    }
    size_t hb = 0;
    assert_int_equal(wire_encode_heartbeat(&key, 5, buf, sizeof(buf), &hb), FC_OK);
    for (size_t cap = 0; cap < hb; cap++) {
        uint8_t *out = malloc(cap ? cap : 1);
        size_t len = 0;
        assert_non_null(out);
        assert_int_equal(wire_encode_heartbeat(&key, 5, out, cap, &len), FC_LIMIT);
        free(out);
    }
    uint8_t *exact = malloc(hb);
    size_t len = 0;
    assert_non_null(exact);
    assert_int_equal(wire_encode_heartbeat(&key, 5, exact, hb, &len), FC_OK);
    assert_int_equal(len, hb);
    free(exact);
}

/* ---- authentication ---- */

static void test_frame_every_bit_flip_rejected(void **state)
{
    struct wire_frame f;
    frame_mp3(&f);
    f.has_meta = true;
    strcpy(f.title, "title");
    strcpy(f.url, "url");
    size_t len = encode_frame_ok(&f);
    expect_ok(buf, len);
    for (size_t bit = 0; bit < len * 8; bit++) {
        buf[bit / 8] ^= (uint8_t)(1u << (bit % 8));
        const char *why = NULL;
        enum fc_err err = decode(buf, len, &why);
        if (err != FC_AUTH && err != FC_PROTO)
            fail_msg("bit %zu flipped: %s", bit, fc_strerror(err));
        buf[bit / 8] ^= (uint8_t)(1u << (bit % 8));
    }
    expect_ok(buf, len);
}

/* With a fresh tag after each flip the parser sees every one-bit corruption of a FRAME body:
 * some are valid messages (a seq bit), none may crash or leave a field unterminated. */
static void test_frame_every_bit_flip_retagged(void **state)
{
    struct wire_frame f;
    static uint8_t body[MSG_CAP];
    frame_mp3(&f);
    f.has_meta = true;
    strcpy(f.title, "title");
    size_t len = encode_frame_ok(&f);
    size_t body_len = len - MAC_TAG_BYTES;
    memcpy(body, buf, body_len);
    for (size_t bit = 0; bit < body_len * 8; bit++) {
        body[bit / 8] ^= (uint8_t)(1u << (bit % 8));
        size_t n = tag_body(body, body_len, buf);
        const char *why = NULL;
        enum fc_err err = decode(buf, n, &why);
        if (err != FC_OK && err != FC_PROTO)
            fail_msg("bit %zu flipped and retagged: %s", bit, fc_strerror(err));
        if (err == FC_OK && msg.type == WIRE_FRAME) {
            assert_true(strlen(msg.u.frame.mount) <= WIRE_MOUNT_MAX);
            assert_true(strlen(msg.u.frame.title) <= WIRE_META_MAX);
            assert_true(msg.u.frame.payload_len <= WIRE_MAX_PAYLOAD);
            assert_true(msg.u.frame.payload >= buf &&
                        msg.u.frame.payload + msg.u.frame.payload_len <= buf + n);
        }
        body[bit / 8] ^= (uint8_t)(1u << (bit % 8));
    }
}

static void test_wrong_key(void **state)
{
    struct mac_key other;
    struct wire_frame f;
    const char *why = NULL;
    size_t len = 0;

    assert_int_equal(mac_key_from_hex(OTHER_KEY_HEX, strlen(OTHER_KEY_HEX), &other), FC_OK);
    frame_mp3(&f);
    assert_int_equal(wire_encode_frame(&other, &f, buf, sizeof(buf), &len), FC_OK);
    assert_int_equal(decode(buf, len, &why), FC_AUTH);
    assert_int_equal(wire_encode_heartbeat(&other, 1, buf, sizeof(buf), &len), FC_OK);
    assert_int_equal(decode(buf, len, &why), FC_AUTH);
    assert_int_equal(mac_verify(&other, buf, len), FC_OK);
    assert_int_equal(mac_verify(&key, buf, len), FC_AUTH);
    assert_int_equal(mac_verify(&key, buf, MAC_TAG_BYTES - 1), FC_PROTO);
}

static void test_truncated(void **state)
{
    struct wire_frame f;
    static uint8_t whole[MSG_CAP];
    frame_mp3(&f);
    f.has_meta = true;
    strcpy(f.title, "title");
    size_t len = encode_frame_ok(&f);
    memcpy(whole, buf, len);
    /* Cut short: the tag no longer matches (or there is not even a tag). */
    for (size_t n = 0; n < len; n++) {
        const char *why = NULL;
        uint8_t *m = malloc(n ? n : 1);
        assert_non_null(m);
        memcpy(m, whole, n);
        enum fc_err err = decode(m, n, &why);
        free(m);
        assert_int_equal(err, n <= MAC_TAG_BYTES ? FC_PROTO : FC_AUTH);
    }
    /* Cut short and tagged again: the msgpack parser must see the body is incomplete. */
    size_t body_len = len - MAC_TAG_BYTES;
    for (size_t n = 0; n < body_len; n++) {
        const char *why = NULL;
        uint8_t *m = malloc(n + MAC_TAG_BYTES);
        assert_non_null(m);
        memcpy(m, whole, n);
        mac_tag(&key, m, n, m + n);
        enum fc_err err = decode(m, n + MAC_TAG_BYTES, &why);
        free(m);
        if (err != FC_PROTO)
            fail_msg("body cut to %zu bytes: %s", n, fc_strerror(err));
    }
}

static void test_too_long(void **state)
{
    static uint8_t big[WIRE_MAX_MSG + 1];
    const char *why = NULL;
    mac_tag(&key, big, sizeof(big) - MAC_TAG_BYTES, big + sizeof(big) - MAC_TAG_BYTES);
    assert_int_equal(wire_decode(&dec, &keys, big, sizeof(big), &msg, &why), FC_LIMIT);
    assert_int_equal(wire_decode(&dec, &keys, big, SIZE_MAX, &msg, NULL), FC_LIMIT);
}

/* A HEARTBEAT padded with a stats map to exactly WIRE_MAX_MSG bytes is accepted. */
static void test_exactly_max(void **state)
{
    static uint8_t pad[WIRE_MAX_MSG];
    size_t want_body = WIRE_MAX_MSG - MAC_TAG_BYTES, n_pad = 65000;
    for (int attempt = 0; attempt < 3; attempt++) {
        msgpack_sbuffer sb;
        msgpack_packer pk;
        msgpack_sbuffer_init(&sb);
        msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
        msgpack_pack_array(&pk, 4);
        msgpack_pack_uint8(&pk, WIRE_VERSION);
        msgpack_pack_uint8(&pk, WIRE_HEARTBEAT);
        msgpack_pack_uint64(&pk, 77);
        msgpack_pack_map(&pk, 1);
        msgpack_pack_str_with_body(&pk, "pad", 3);
        msgpack_pack_bin_with_body(&pk, pad, n_pad);
        size_t body = sb.size;
        if (body == want_body) {
            size_t len = tag_body(sb.data, sb.size, buf);
            msgpack_sbuffer_destroy(&sb);
            assert_int_equal(len, WIRE_MAX_MSG);
            expect_ok(buf, len);
            assert_true(msg.u.heartbeat.now_us == 77);
            return;
        }
        msgpack_sbuffer_destroy(&sb);
        n_pad = n_pad + want_body - body;
    }
    fail_msg("could not pad to WIRE_MAX_MSG");
}

/* ---- field checks, on hand-packed bodies ---- */

static void test_hand_packed_valid(void **state)
{
    struct hand h;
    hand_default(&h);
    expect_ok(buf, hand_pack(&h));
    assert_int_equal(msg.type, WIRE_FRAME);
    assert_string_equal(msg.u.frame.mount, "live");
    assert_false(msg.u.frame.has_meta);

    h.meta = META_MAP;
    expect_ok(buf, hand_pack(&h));
    assert_true(msg.u.frame.has_meta);
    assert_string_equal(msg.u.frame.title, "T");
    assert_string_equal(msg.u.frame.url, "u");

    h.meta = META_OTHER_KEY;
    expect_ok(buf, hand_pack(&h));

    /* Later protocol versions may append fields. */
    hand_default(&h);
    h.n_items = h.n_written = 17;
    expect_ok(buf, hand_pack(&h));
}

static void test_frame_mount_and_encoder(void **state)
{
    char long_name[WIRE_MOUNT_MAX + 2];
    struct hand h;
    struct wire_frame f;
    size_t len;

    memset(long_name, 'a', sizeof(long_name) - 1);
    long_name[sizeof(long_name) - 1] = '\0';

    /* The encoder refuses what the decoder would. */
    frame_mp3(&f);
    strcpy(f.mount, "live/stream");
    assert_int_equal(wire_encode_frame(&key, &f, buf, sizeof(buf), &len), FC_PROTO);
    frame_mp3(&f);
    f.mount[0] = '\0';
    assert_int_equal(wire_encode_frame(&key, &f, buf, sizeof(buf), &len), FC_PROTO);
    frame_mp3(&f);
    strcpy(f.encoder, "a b");
    assert_int_equal(wire_encode_frame(&key, &f, buf, sizeof(buf), &len), FC_PROTO);

    const struct {
        const char *s;
        size_t len;
    } bad_mounts[] = {
        {"live/stream", 11}, {"/live", 5},       {"", 0},     {long_name, WIRE_MOUNT_MAX + 1},
        {"a b", 3},          {"caf\xC3\xA9", 5}, {"a\0b", 3}, {"..%2f", 5},
    };
    for (size_t i = 0; i < FC_ARRAY_LEN(bad_mounts); i++) {
        hand_default(&h);
        h.mount = bad_mounts[i].s;
        h.mount_len = bad_mounts[i].len;
        expect_proto(buf, hand_pack(&h), "mount");
    }
    hand_default(&h);
    h.mount = long_name;
    h.mount_len = WIRE_MOUNT_MAX;
    expect_ok(buf, hand_pack(&h));

    hand_default(&h);
    h.encoder = long_name;
    h.encoder_len = WIRE_ENCODER_MAX + 1;
    expect_proto(buf, hand_pack(&h), "encoder");
    h.encoder_len = WIRE_ENCODER_MAX;
    expect_ok(buf, hand_pack(&h));
    h.encoder = "x/y";
    h.encoder_len = 3;
    expect_proto(buf, hand_pack(&h), "encoder");
}

static void test_frame_ranges(void **state)
{
    struct hand h;
    static const uint8_t level3[3];

    hand_default(&h);
    h.priority = 256;
    expect_proto(buf, hand_pack(&h), "priority");

    for (uint64_t c = 0; c < 6; c++) {
        if (c == FC_CODEC_MP3)
            continue;
        hand_default(&h);
        h.codec = c; /* ADTS with an MP3 payload is rejected too, by the payload check */
        expect_proto(buf, hand_pack(&h), c == FC_CODEC_ADTS ? "payload" : "codec");
    }
    hand_default(&h);
    h.codec = UINT64_MAX;
    expect_proto(buf, hand_pack(&h), "codec");

    hand_default(&h);
    h.rate = 7999;
    expect_proto(buf, hand_pack(&h), "sample_rate");
    h.rate = 96001;
    expect_proto(buf, hand_pack(&h), "sample_rate");
    h.rate = UINT64_MAX;
    expect_proto(buf, hand_pack(&h), "sample_rate");

    hand_default(&h);
    h.channels = 0;
    expect_proto(buf, hand_pack(&h), "channels");
    h.channels = 9;
    expect_proto(buf, hand_pack(&h), "channels");
    h.channels = 258; /* would wrap to 2 in a uint8_t */
    expect_proto(buf, hand_pack(&h), "channels");

    hand_default(&h);
    h.samples = 0;
    expect_proto(buf, hand_pack(&h), "samples");
    h.samples = 4097;
    expect_proto(buf, hand_pack(&h), "samples");
    h.samples = 65536 + 1152; /* would wrap to 1152 in a uint16_t */
    expect_proto(buf, hand_pack(&h), "samples");

    hand_default(&h);
    h.level = level3;
    h.level_len = 3;
    expect_proto(buf, hand_pack(&h), "level");

    hand_default(&h);
    h.payload_len = 0;
    expect_proto(buf, hand_pack(&h), "payload");

    hand_default(&h);
    h.version = 2;
    expect_proto(buf, hand_pack(&h), "version");
    h.version = 0;
    expect_proto(buf, hand_pack(&h), "version");

    hand_default(&h);
    h.type = 4;
    expect_proto(buf, hand_pack(&h), "type");
}

static void test_frame_wrong_types(void **state)
{
    static const char *fields[] = {
        "version", "type",        "mount",    "encoder", "priority", "session", "seq",  "pts",
        "codec",   "sample_rate", "channels", "samples", "level",    "payload", "meta",
    };
    for (int i = 0; i < (int)FC_ARRAY_LEN(fields); i++) {
        struct hand h;
        hand_default(&h);
        h.wrong_type_at = i;
        expect_proto(buf, hand_pack(&h), fields[i]);
    }
}

static void test_frame_arity_and_syntax(void **state)
{
    struct hand h;
    hand_default(&h);
    h.n_items = h.n_written = 14;
    expect_proto(buf, hand_pack(&h), "arity");

    /* The header promises more items than the body holds. */
    hand_default(&h);
    h.n_items = 16;
    expect_proto(buf, hand_pack(&h), "msgpack");

    /* Bytes after the array. */
    hand_default(&h);
    h.trailing = true;
    assert_int_equal(decode(buf, hand_pack(&h), NULL), FC_PROTO);

    /* Not an array at all; an array of one. */
    uint8_t body[] = {0x01};
    assert_int_equal(decode(buf, tag_body(body, 1, buf), NULL), FC_PROTO);
    uint8_t one[] = {0x91, 0x01};
    assert_int_equal(decode(buf, tag_body(one, 2, buf), NULL), FC_PROTO);
}

/*
 * Container headers claiming far more items than the body has bytes (2^32-1 in a 7-byte body).
 * Must be rejected without asking malloc for item_count * sizeof(msgpack_object): under ASan
 * such a request aborts the process. Placed last so the other tests report first.
 */
static void test_decode_bounded_allocation(void **state)
{
    const uint8_t huge_array[] = {0xDD, 0xFF, 0xFF, 0xFF, 0xFF, 0x01, 0x01};
    const uint8_t huge_map[] = {0xDF, 0xFF, 0xFF, 0xFF, 0xFF, 0x01, 0x01};
    const uint8_t nested[] = {0x9F, 0x01, 0x01, 0xDD, 0x10, 0x00, 0x00, 0x00};
    assert_int_equal(decode(buf, tag_body(huge_array, sizeof(huge_array), buf), NULL), FC_PROTO);
    assert_int_equal(decode(buf, tag_body(huge_map, sizeof(huge_map), buf), NULL), FC_PROTO);
    assert_int_equal(decode(buf, tag_body(nested, sizeof(nested), buf), NULL), FC_PROTO);
}

static void test_frame_meta(void **state)
{
    struct hand h;
    char long_title[WIRE_META_MAX + 1];
    memset(long_title, 't', sizeof(long_title));

    hand_default(&h);
    h.meta = META_INT;
    expect_proto(buf, hand_pack(&h), "meta");
    h.meta = META_INT_VALUE;
    expect_proto(buf, hand_pack(&h), "meta");
    h.meta = META_INT_KEY;
    expect_proto(buf, hand_pack(&h), "meta");
    h.meta = META_HUGE_MAP;
    expect_proto(buf, hand_pack(&h), "meta");

    h.meta = META_MAP;
    h.title = long_title;
    h.title_len = WIRE_META_MAX + 1;
    expect_proto(buf, hand_pack(&h), "meta");
    h.title_len = WIRE_META_MAX;
    expect_ok(buf, hand_pack(&h));
    assert_int_equal(strlen(msg.u.frame.title), WIRE_META_MAX);
    h.title = "a\0b";
    h.title_len = 3;
    expect_proto(buf, hand_pack(&h), "meta");
}

/* The payload's own header must agree with codec, sample_rate, channels, samples. Built with
 * the encoder, which does not check these (only receivers do). */
static void test_frame_payload_disagrees(void **state)
{
    struct wire_frame f;

    frame_mp3(&f);
    f.sample_rate = 48000;
    expect_proto(buf, encode_frame_ok(&f), "payload");
    frame_mp3(&f);
    f.channels = 1;
    expect_proto(buf, encode_frame_ok(&f), "payload");
    frame_mp3(&f);
    f.samples = 576;
    expect_proto(buf, encode_frame_ok(&f), "payload");
    frame_mp3(&f);
    f.codec = FC_CODEC_ADTS; /* an MP3 frame labelled ADTS */
    expect_proto(buf, encode_frame_ok(&f), "payload");
    frame_adts(&f);
    f.codec = FC_CODEC_MP3; /* an ADTS frame labelled MP3 */
    expect_proto(buf, encode_frame_ok(&f), "payload");
    frame_adts(&f);
    f.channels = 1;
    expect_proto(buf, encode_frame_ok(&f), "payload");
    frame_adts(&f);
    f.sample_rate = 44100;
    expect_proto(buf, encode_frame_ok(&f), "payload");
    frame_mp3(&f);
    f.codec = (enum fc_codec)3;
    expect_proto(buf, encode_frame_ok(&f), "codec");

    /* Payload length must be exactly the header's frame length. */
    static uint8_t mp3_long[MP3_LEN + 1];
    memcpy(mp3_long, mp3, MP3_LEN);
    frame_mp3(&f);
    f.payload = mp3_long; /* 418 bytes, header says 417 */
    f.payload_len = MP3_LEN + 1;
    expect_proto(buf, encode_frame_ok(&f), "payload");
    frame_mp3(&f);
    f.payload = mp3_pad; /* header says 418 (padding), 417 carried */
    f.payload_len = MP3_LEN;
    expect_proto(buf, encode_frame_ok(&f), "payload");
    frame_mp3(&f);
    f.payload_len = MP3_LEN - 1;
    expect_proto(buf, encode_frame_ok(&f), "payload");
    frame_adts(&f);
    f.payload_len = ADTS_LEN - 1;
    expect_proto(buf, encode_frame_ok(&f), "payload");
    /* Shorter than a header. */
    frame_mp3(&f);
    f.payload_len = 3;
    expect_proto(buf, encode_frame_ok(&f), "payload");
    /* Not a header at all. */
    static const uint8_t zeros[MP3_LEN];
    frame_mp3(&f);
    f.payload = zeros;
    expect_proto(buf, encode_frame_ok(&f), "payload");
}

static void test_hello_fields(void **state)
{
    uint8_t b[600];
    size_t n;
    msgpack_sbuffer sb;
    msgpack_packer pk;

    /* 20 features: the first WIRE_FEATURES_MAX are kept; an over-long one is skipped. */
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_array(&pk, 5);
    msgpack_pack_uint8(&pk, 1);
    msgpack_pack_uint8(&pk, WIRE_HELLO);
    msgpack_pack_str_with_body(&pk, "relay", 5);
    msgpack_pack_str_with_body(&pk, "r1", 2);
    msgpack_pack_array(&pk, 20);
    msgpack_pack_str_with_body(&pk, "0123456789012345678901234567890123456789", 40);
    for (int i = 1; i < 20; i++) {
        char feat[16];
        snprintf(feat, sizeof(feat), "f%d", i);
        msgpack_pack_str_with_body(&pk, feat, strlen(feat));
    }
    assert_true(sb.size <= sizeof(b));
    memcpy(b, sb.data, sb.size);
    n = sb.size;
    msgpack_sbuffer_destroy(&sb);
    expect_ok(buf, tag_body(b, n, buf));
    assert_int_equal(msg.u.hello.n_features, WIRE_FEATURES_MAX);
    assert_string_equal(msg.u.hello.features[0], "f1");
    assert_string_equal(msg.u.hello.features[15], "f16");

    /* Role longer than the field, node longer than WIRE_NODE_MAX, features not an array. */
    char node[WIRE_NODE_MAX + 2];
    memset(node, 'n', sizeof(node));
    for (int which = 0; which < 3; which++) {
        msgpack_sbuffer_init(&sb);
        msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
        msgpack_pack_array(&pk, 5);
        msgpack_pack_uint8(&pk, 1);
        msgpack_pack_uint8(&pk, WIRE_HELLO);
        if (which == 0)
            msgpack_pack_str_with_body(&pk, "relayrelayrelayrelay", 20);
        else
            msgpack_pack_str_with_body(&pk, "relay", 5);
        msgpack_pack_str_with_body(&pk, node, which == 1 ? WIRE_NODE_MAX + 1 : 4);
        if (which == 2)
            msgpack_pack_nil(&pk);
        else
            msgpack_pack_array(&pk, 0);
        memcpy(b, sb.data, sb.size);
        n = sb.size;
        msgpack_sbuffer_destroy(&sb);
        expect_proto(buf, tag_body(b, n, buf),
                     which == 0   ? "role"
                     : which == 1 ? "node"
                                  : "features");
    }
}

static void test_subscribe_fields(void **state)
{
    static struct wire_subscribe s;
    size_t len;

    /* The encoder does not check names; the decoder must. */
    memset(&s, 0, sizeof(s));
    s.n_mounts = 1;
    strcpy(s.mounts[0], "a/b");
    assert_int_equal(wire_encode_subscribe(&key, &s, buf, sizeof(buf), &len), FC_OK);
    expect_proto(buf, len, "mounts");

    memset(&s, 0, sizeof(s));
    s.n_resume = 1;
    strcpy(s.resume[0].mount, "ok");
    strcpy(s.resume[0].encoder, "bad encoder");
    assert_int_equal(wire_encode_subscribe(&key, &s, buf, sizeof(buf), &len), FC_OK);
    expect_proto(buf, len, "resume");

    /* Too many mounts / resume entries, a short resume entry: packed by hand. */
    for (int which = 0; which < 3; which++) {
        msgpack_sbuffer sb;
        msgpack_packer pk;
        msgpack_sbuffer_init(&sb);
        msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
        msgpack_pack_array(&pk, 4);
        msgpack_pack_uint8(&pk, 1);
        msgpack_pack_uint8(&pk, WIRE_SUBSCRIBE);
        uint32_t n_mounts = which == 0 ? WIRE_SUB_MOUNTS_MAX + 1 : 0;
        msgpack_pack_array(&pk, n_mounts);
        for (uint32_t i = 0; i < n_mounts; i++)
            msgpack_pack_str_with_body(&pk, "m", 1);
        uint32_t n_resume = which == 1 ? WIRE_SUB_RESUME_MAX + 1 : which == 2 ? 1 : 0;
        msgpack_pack_array(&pk, n_resume);
        for (uint32_t i = 0; i < n_resume; i++) {
            msgpack_pack_array(&pk, which == 2 ? 3 : 4);
            msgpack_pack_str_with_body(&pk, "m", 1);
            msgpack_pack_str_with_body(&pk, "e", 1);
            msgpack_pack_uint64(&pk, 1);
            if (which != 2)
                msgpack_pack_uint64(&pk, 2);
        }
        size_t n = tag_body(sb.data, sb.size, buf);
        msgpack_sbuffer_destroy(&sb);
        expect_proto(buf, n, which == 0 ? "mounts" : "resume");
    }
}

static void test_heartbeat_fields(void **state)
{
    for (int which = 0; which < 4; which++) {
        msgpack_sbuffer sb;
        msgpack_packer pk;
        msgpack_sbuffer_init(&sb);
        msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
        msgpack_pack_array(&pk, which == 3 ? 2 : 4);
        msgpack_pack_uint8(&pk, 1);
        msgpack_pack_uint8(&pk, WIRE_HEARTBEAT);
        if (which != 3) {
            if (which == 2)
                msgpack_pack_int(&pk, -5);
            else
                msgpack_pack_uint64(&pk, 5);
            if (which == 0) {
                msgpack_pack_map(&pk, 1);
                msgpack_pack_str_with_body(&pk, "frames", 6);
                msgpack_pack_uint64(&pk, 10);
            } else {
                msgpack_pack_int(&pk, 3);
            }
        }
        size_t n = tag_body(sb.data, sb.size, buf);
        msgpack_sbuffer_destroy(&sb);
        if (which == 0) {
            expect_ok(buf, n);
            assert_true(msg.u.heartbeat.now_us == 5);
        } else {
            expect_proto(buf, n, "heartbeat");
        }
    }
}

/* ---- wire_reader ---- */

#define STREAM_MSGS 5
static uint8_t stream[4 * MSG_CAP];
static size_t stream_len;
static size_t msg_off[STREAM_MSGS], msg_len[STREAM_MSGS];

static void stream_add(size_t body_len)
{
    assert_true(stream_len + WIRE_LEN_BYTES + body_len <= sizeof(stream));
    size_t i = 0;
    while (i < STREAM_MSGS && msg_len[i])
        i++;
    assert_true(i < STREAM_MSGS);
    wire_put_len(stream + stream_len, (uint32_t)body_len);
    memcpy(stream + stream_len + WIRE_LEN_BYTES, buf, body_len);
    msg_off[i] = stream_len + WIRE_LEN_BYTES;
    msg_len[i] = body_len;
    stream_len += WIRE_LEN_BYTES + body_len;
}

static void build_stream(void)
{
    static struct wire_subscribe s;
    struct wire_frame f;
    size_t len;

    stream_len = 0;
    memset(msg_len, 0, sizeof(msg_len));
    assert_int_equal(wire_encode_hello(&key, "edge", "e1", buf, sizeof(buf), &len), FC_OK);
    stream_add(len);
    frame_mp3(&f);
    f.has_meta = true;
    strcpy(f.title, "x");
    stream_add(encode_frame_ok(&f));
    memset(&s, 0, sizeof(s));
    s.n_mounts = 1;
    strcpy(s.mounts[0], "live");
    assert_int_equal(wire_encode_subscribe(&key, &s, buf, sizeof(buf), &len), FC_OK);
    stream_add(len);
    assert_int_equal(wire_encode_heartbeat(&key, 9, buf, sizeof(buf), &len), FC_OK);
    stream_add(len);
    frame_adts(&f);
    stream_add(encode_frame_ok(&f));
}

/* Feed `stream` in chunks of `chunk` bytes; every message must come out whole and in order. */
static void read_in_chunks(struct wire_reader *r, size_t chunk)
{
    size_t off = 0, got = 0;
    wire_reader_reset(r);
    while (off < stream_len) {
        size_t space;
        uint8_t *p = wire_reader_space(r, &space);
        assert_true(space > 0);
        size_t n = chunk;
        if (n > space)
            n = space;
        if (n > stream_len - off)
            n = stream_len - off;
        memcpy(p, stream + off, n);
        wire_reader_commit(r, n);
        off += n;
        for (;;) {
            const uint8_t *m;
            size_t len;
            enum fc_err err = wire_reader_next(r, &m, &len);
            if (err == FC_AGAIN)
                break;
            assert_int_equal(err, FC_OK);
            assert_true(got < STREAM_MSGS);
            assert_int_equal(len, msg_len[got]);
            assert_memory_equal(m, stream + msg_off[got], len);
            expect_ok(m, len);
            got++;
        }
    }
    assert_int_equal(got, STREAM_MSGS);
}

static void test_reader_every_chunk_size(void **state)
{
    static struct wire_reader r;
    build_stream();
    for (size_t chunk = 1; chunk <= stream_len; chunk++)
        read_in_chunks(&r, chunk);
}

static void test_reader_bad_lengths(void **state)
{
    static struct wire_reader r;
    const uint32_t bad[] = {0, 1, MAC_TAG_BYTES, WIRE_MAX_MSG + 1, UINT32_MAX};
    for (size_t i = 0; i < FC_ARRAY_LEN(bad); i++) {
        size_t space;
        const uint8_t *m;
        size_t len;
        wire_reader_reset(&r);
        uint8_t *p = wire_reader_space(&r, &space);
        assert_true(space >= WIRE_LEN_BYTES);
        wire_put_len(p, bad[i]);
        /* Three bytes of prefix say nothing yet. */
        wire_reader_commit(&r, 3);
        assert_int_equal(wire_reader_next(&r, &m, &len), FC_AGAIN);
        wire_reader_commit(&r, 1);
        assert_int_equal(wire_reader_next(&r, &m, &len), FC_PROTO);
    }
    const uint32_t good[] = {MAC_TAG_BYTES + 1, WIRE_MAX_MSG};
    for (size_t i = 0; i < FC_ARRAY_LEN(good); i++) {
        size_t space;
        const uint8_t *m;
        size_t len;
        wire_reader_reset(&r);
        wire_put_len(wire_reader_space(&r, &space), good[i]);
        wire_reader_commit(&r, WIRE_LEN_BYTES);
        assert_int_equal(wire_reader_next(&r, &m, &len), FC_AGAIN);
    }
}

/* A message of WIRE_MAX_MSG bytes fills the reader's buffer exactly. */
static void test_reader_max_message(void **state)
{
    static struct wire_reader r;
    static uint8_t big[WIRE_LEN_BYTES + WIRE_MAX_MSG];
    const uint8_t *m;
    size_t len, space;

    wire_put_len(big, WIRE_MAX_MSG);
    for (size_t i = WIRE_LEN_BYTES; i < sizeof(big); i++)
        big[i] = (uint8_t)i;
    wire_reader_reset(&r);
    /* A small message first, so the big one starts mid-buffer and compaction is needed. */
    uint8_t small[WIRE_LEN_BYTES + 20] = {0};
    wire_put_len(small, 20);
    memcpy(wire_reader_space(&r, &space), small, sizeof(small));
    wire_reader_commit(&r, sizeof(small));
    size_t off = 0;
    while (off < sizeof(big)) {
        uint8_t *p = wire_reader_space(&r, &space);
        size_t n = sizeof(big) - off < 7000 ? sizeof(big) - off : 7000;
        if (n > space) {
            assert_int_equal(wire_reader_next(&r, &m, &len), FC_OK);
            assert_int_equal(len, 20);
            continue;
        }
        memcpy(p, big + off, n);
        wire_reader_commit(&r, n);
        off += n;
    }
    enum fc_err err = wire_reader_next(&r, &m, &len);
    if (err == FC_OK && len == 20)
        err = wire_reader_next(&r, &m, &len);
    assert_int_equal(err, FC_OK);
    assert_int_equal(len, WIRE_MAX_MSG);
    assert_memory_equal(m, big + WIRE_LEN_BYTES, WIRE_MAX_MSG);
    assert_int_equal(wire_reader_next(&r, &m, &len), FC_AGAIN);
    wire_reader_space(&r, &space);
    assert_int_equal(space, sizeof(r.buf));
}

static void test_put_len(void **state)
{
    uint8_t p[4];
    wire_put_len(p, 0x01020304u);
    assert_int_equal(p[0], 1);
    assert_int_equal(p[1], 2);
    assert_int_equal(p[2], 3);
    assert_int_equal(p[3], 4);
}

/* ---- mac ---- */

static void test_key_from_hex(void **state)
{
    struct mac_key k;
    char hex[200];

    snprintf(hex, sizeof(hex), "%s\n", KEY_HEX);
    assert_int_equal(mac_key_from_hex(hex, strlen(hex), &k), FC_OK);
    for (int i = 0; i < MAC_KEY_BYTES; i++)
        assert_int_equal(k.k[i], i);
    assert_int_equal(mac_key_from_hex(KEY_HEX, 64, &k), FC_OK);
    snprintf(hex, sizeof(hex), "%s \r\n\t", KEY_HEX);
    assert_int_equal(mac_key_from_hex(hex, strlen(hex), &k), FC_OK);
    /* Upper case. */
    snprintf(hex, sizeof(hex), "%s", KEY_HEX);
    for (char *c = hex; *c; c++)
        if (*c >= 'a' && *c <= 'f')
            *c = (char)(*c - 'a' + 'A');
    assert_int_equal(mac_key_from_hex(hex, 64, &k), FC_OK);
    assert_int_equal(k.k[10], 10);

    /* 63 and 65 characters, with and without a newline. */
    assert_int_equal(mac_key_from_hex(KEY_HEX, 63, &k), FC_PROTO);
    snprintf(hex, sizeof(hex), "%.63s\n", KEY_HEX);
    assert_int_equal(mac_key_from_hex(hex, strlen(hex), &k), FC_PROTO);
    snprintf(hex, sizeof(hex), "%s0", KEY_HEX);
    assert_int_equal(mac_key_from_hex(hex, 65, &k), FC_PROTO);
    snprintf(hex, sizeof(hex), "%s0\n", KEY_HEX);
    assert_int_equal(mac_key_from_hex(hex, strlen(hex), &k), FC_PROTO);
    snprintf(hex, sizeof(hex), "%s%s", KEY_HEX, KEY_HEX);
    assert_int_equal(mac_key_from_hex(hex, 128, &k), FC_PROTO);
    /* Non-hex characters anywhere. */
    const size_t positions[] = {0, 1, 31, 62, 63};
    const char bad_chars[] = {'g', 'x', ' ', '\n', ':', '\0'};
    for (size_t i = 0; i < FC_ARRAY_LEN(positions); i++) {
        for (size_t j = 0; j < sizeof(bad_chars); j++) {
            memcpy(hex, KEY_HEX, 64);
            hex[positions[i]] = bad_chars[j];
            hex[64] = '\n';
            assert_int_equal(mac_key_from_hex(hex, 65, &k), FC_PROTO);
        }
    }
    /* Junk after the whitespace; leading whitespace; empty. */
    snprintf(hex, sizeof(hex), "%s\nx", KEY_HEX);
    assert_int_equal(mac_key_from_hex(hex, strlen(hex), &k), FC_PROTO);
    snprintf(hex, sizeof(hex), " %s", KEY_HEX);
    assert_int_equal(mac_key_from_hex(hex, strlen(hex), &k), FC_PROTO);
    assert_int_equal(mac_key_from_hex("", 0, &k), FC_PROTO);
    /* `len` bounds the input: a valid key beyond it is not read. */
    assert_int_equal(mac_key_from_hex(KEY_HEX, 0, &k), FC_PROTO);
}

static void test_key_load(void **state)
{
    char path[] = "/tmp/test_wire_keyXXXXXX";
    struct mac_key k;
    const char *why = NULL;
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    char text[300];
    int n = snprintf(text, sizeof(text), "%s\n", KEY_HEX);
    assert_int_equal(write(fd, text, (size_t)n), n);
    assert_int_equal(mac_key_load(path, &k, &why), FC_OK);
    assert_memory_equal(k.k, key.k, MAC_KEY_BYTES);

    /* A file too long to be a key. */
    memset(text, ' ', sizeof(text));
    memcpy(text, KEY_HEX, 64);
    assert_int_equal(lseek(fd, 0, SEEK_SET), 0);
    assert_int_equal(write(fd, text, sizeof(text)), (ssize_t)sizeof(text));
    assert_int_equal(mac_key_load(path, &k, &why), FC_PROTO);
    assert_non_null(why);
    close(fd);
    unlink(path);
    assert_int_equal(mac_key_load(path, &k, &why), FC_IO);
    assert_non_null(why);

    mac_key_wipe(&k);
    for (int i = 0; i < MAC_KEY_BYTES; i++)
        assert_int_equal(k.k[i], 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hello_round_trip),
        cmocka_unit_test(test_frame_round_trip_mp3),
        cmocka_unit_test(test_frame_round_trip_mp3_padded_and_lsf),
        cmocka_unit_test(test_frame_round_trip_meta),
        cmocka_unit_test(test_frame_round_trip_adts),
        cmocka_unit_test(test_subscribe_round_trip),
        cmocka_unit_test(test_heartbeat_round_trip),
        cmocka_unit_test(test_encode_small_buffer),
        cmocka_unit_test(test_frame_every_bit_flip_rejected),
        cmocka_unit_test(test_wrong_key),
        cmocka_unit_test(test_truncated),
        cmocka_unit_test(test_too_long),
        cmocka_unit_test(test_exactly_max),
        cmocka_unit_test(test_hand_packed_valid),
        cmocka_unit_test(test_frame_mount_and_encoder),
        cmocka_unit_test(test_frame_ranges),
        cmocka_unit_test(test_frame_wrong_types),
        cmocka_unit_test(test_frame_arity_and_syntax),
        cmocka_unit_test(test_frame_meta),
        cmocka_unit_test(test_frame_payload_disagrees),
        cmocka_unit_test(test_hello_fields),
        cmocka_unit_test(test_subscribe_fields),
        cmocka_unit_test(test_heartbeat_fields),
        cmocka_unit_test(test_reader_every_chunk_size),
        cmocka_unit_test(test_reader_bad_lengths),
        cmocka_unit_test(test_reader_max_message),
        cmocka_unit_test(test_put_len),
        cmocka_unit_test(test_key_from_hex),
        cmocka_unit_test(test_key_load),
        cmocka_unit_test(test_frame_every_bit_flip_retagged),
        cmocka_unit_test(test_decode_bounded_allocation),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
