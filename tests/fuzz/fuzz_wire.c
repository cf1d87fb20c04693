/*
 * fuzz_wire.c - libFuzzer target for wire protocol v1 decoding (shared/wire.c, shared/mac.c).
 *
 * Each input is used three ways:
 *   1. as a whole message (body + tag) under a keyring of two fixed keys: almost always FC_AUTH,
 *      which is the point: nothing may be parsed before the tag verifies;
 *   2. as a body, tagged with the ring's second key (as during a key rotation, so verification
 *      goes past the first key), so the msgpack parser and every field check see
 *      arbitrary bytes. A body that decodes must satisfy the documented bounds, and must survive
 *      encode -> decode unchanged;
 *   3. as a TCP byte stream cut into pseudo-random reads for wire_reader, compared with a
 *      straightforward scan of the length prefixes.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "framer.h"
#include "mac.h"
#include "wire.h"

static struct mac_key key;       /* tags what the fuzzer builds */
static struct mac_keyring keys; /* {decoy, key} */
static struct wire_decoder dec;
static struct wire_msg m1, m2;
static struct wire_reader reader;
static uint8_t enc[WIRE_MAX_MSG];

#include "fuzz_check.h"

static void init_once(void)
{
    static bool done;
    if (done)
        return;
    CHECK(mac_global_init() == FC_OK);
    struct mac_key decoy;
    for (int i = 0; i < MAC_KEY_BYTES; i++) {
        key.k[i] = (uint8_t)(i * 7 + 1);
        decoy.k[i] = (uint8_t)(i * 5 + 3);
    }
    CHECK(mac_keyring_add(&keys, &decoy) == FC_OK && mac_keyring_add(&keys, &key) == FC_OK);
    CHECK(keys.n == 2);
    CHECK(wire_decoder_init(&dec) == FC_OK);
    done = true;
}

static bool bounded(const char *s, size_t max)
{
    return memchr(s, '\0', max + 1) != NULL;
}

static void check_frame_fields(const struct wire_frame *f, const uint8_t *msg, size_t len)
{
    struct frame_info info;
    CHECK(bounded(f->mount, WIRE_MOUNT_MAX) &&
          wire_valid_name(f->mount, strlen(f->mount), WIRE_MOUNT_MAX));
    CHECK(bounded(f->encoder, WIRE_ENCODER_MAX) &&
          wire_valid_name(f->encoder, strlen(f->encoder), WIRE_ENCODER_MAX));
    CHECK(bounded(f->title, WIRE_META_MAX) && bounded(f->url, WIRE_META_MAX));
    CHECK(f->codec == FC_CODEC_MP3 || f->codec == FC_CODEC_ADTS);
    CHECK(f->channels >= 1 && f->channels <= 8);
    CHECK(f->payload_len > 0 && f->payload_len <= WIRE_MAX_PAYLOAD);
    CHECK(f->payload >= msg && f->payload + f->payload_len <= msg + len);
    CHECK(frame_header_parse(f->codec, f->payload, f->payload_len, &info) == FC_OK);
    CHECK(info.len == f->payload_len && info.sample_rate == f->sample_rate &&
          info.channels == f->channels && info.samples == f->samples);
    if (!f->has_meta)
        CHECK(f->title[0] == '\0' && f->url[0] == '\0');
}

static void check_decoded(const struct wire_msg *m, const uint8_t *msg, size_t len)
{
    switch (m->type) {
    case WIRE_HELLO:
        CHECK(bounded(m->u.hello.role, sizeof(m->u.hello.role) - 1));
        CHECK(bounded(m->u.hello.node, WIRE_NODE_MAX));
        CHECK(m->u.hello.n_features <= WIRE_FEATURES_MAX);
        for (uint32_t i = 0; i < m->u.hello.n_features; i++)
            CHECK(bounded(m->u.hello.features[i], 31));
        break;
    case WIRE_FRAME:
        check_frame_fields(&m->u.frame, msg, len);
        break;
    case WIRE_SUBSCRIBE:
        CHECK(m->u.subscribe.n_mounts <= WIRE_SUB_MOUNTS_MAX);
        CHECK(m->u.subscribe.n_resume <= WIRE_SUB_RESUME_MAX);
        for (uint32_t i = 0; i < m->u.subscribe.n_mounts; i++)
            CHECK(bounded(m->u.subscribe.mounts[i], WIRE_MOUNT_MAX));
        for (uint32_t i = 0; i < m->u.subscribe.n_resume; i++)
            CHECK(bounded(m->u.subscribe.resume[i].mount, WIRE_MOUNT_MAX) &&
                  bounded(m->u.subscribe.resume[i].encoder, WIRE_ENCODER_MAX));
        break;
    case WIRE_HEARTBEAT:
        break;
    default:
        CHECK(0);
    }
}

/* What the decoder accepted, the encoder must reproduce: decode(encode(m1)) == m1. */
static void check_round_trip(const struct wire_msg *a)
{
    size_t len = 0;
    enum fc_err err = FC_PROTO;
    switch (a->type) {
    case WIRE_HELLO:
        err = wire_encode_hello(&key, a->u.hello.role, a->u.hello.node, enc, sizeof(enc), &len);
        break;
    case WIRE_FRAME:
        err = wire_encode_frame(&key, &a->u.frame, enc, sizeof(enc), &len);
        break;
    case WIRE_SUBSCRIBE:
        err = wire_encode_subscribe(&key, &a->u.subscribe, enc, sizeof(enc), &len);
        break;
    case WIRE_HEARTBEAT:
        err = wire_encode_heartbeat(&key, a->u.heartbeat.now_us, enc, sizeof(enc), &len);
        break;
    }
    CHECK(err == FC_OK);
    CHECK(wire_decode(&dec, &keys, enc, len, &m2, NULL) == FC_OK);
    CHECK(m2.type == a->type);
    switch (a->type) {
    case WIRE_HELLO:
        CHECK(strcmp(m2.u.hello.role, a->u.hello.role) == 0);
        CHECK(strcmp(m2.u.hello.node, a->u.hello.node) == 0);
        break;
    case WIRE_FRAME: {
        const struct wire_frame *x = &a->u.frame, *y = &m2.u.frame;
        CHECK(strcmp(x->mount, y->mount) == 0 && strcmp(x->encoder, y->encoder) == 0);
        CHECK(x->priority == y->priority && x->session == y->session && x->seq == y->seq);
        CHECK(x->pts_us == y->pts_us && x->codec == y->codec);
        CHECK(x->sample_rate == y->sample_rate && x->channels == y->channels);
        CHECK(x->samples == y->samples && memcmp(x->level, y->level, 4) == 0);
        CHECK(x->payload_len == y->payload_len);
        CHECK(memcmp(x->payload, y->payload, x->payload_len) == 0);
        CHECK(x->has_meta == y->has_meta);
        CHECK(strcmp(x->title, y->title) == 0 && strcmp(x->url, y->url) == 0);
        break;
    }
    case WIRE_SUBSCRIBE: {
        const struct wire_subscribe *x = &a->u.subscribe, *y = &m2.u.subscribe;
        CHECK(x->n_mounts == y->n_mounts && x->n_resume == y->n_resume);
        for (uint32_t i = 0; i < x->n_mounts; i++)
            CHECK(strcmp(x->mounts[i], y->mounts[i]) == 0);
        for (uint32_t i = 0; i < x->n_resume; i++) {
            CHECK(strcmp(x->resume[i].mount, y->resume[i].mount) == 0);
            CHECK(strcmp(x->resume[i].encoder, y->resume[i].encoder) == 0);
            CHECK(x->resume[i].session == y->resume[i].session);
            CHECK(x->resume[i].next_seq == y->resume[i].next_seq);
        }
        break;
    }
    case WIRE_HEARTBEAT:
        CHECK(m2.u.heartbeat.now_us == a->u.heartbeat.now_us);
        break;
    }
}

static uint32_t lcg(uint32_t *seed)
{
    *seed = *seed * 1103515245u + 12345u;
    return *seed >> 8;
}

/* The reference scan: offset of the next message and its length, or AGAIN / PROTO. */
static enum fc_err ref_next(const uint8_t *data, size_t size, size_t *off, size_t *msg_off,
                            size_t *msg_len)
{
    if (size - *off < WIRE_LEN_BYTES)
        return FC_AGAIN;
    const uint8_t *p = data + *off;
    uint32_t n = (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
    if (n <= MAC_TAG_BYTES || n > WIRE_MAX_MSG)
        return FC_PROTO;
    if (size - *off - WIRE_LEN_BYTES < n)
        return FC_AGAIN;
    *msg_off = *off + WIRE_LEN_BYTES;
    *msg_len = n;
    *off += WIRE_LEN_BYTES + n;
    return FC_OK;
}

static void fuzz_reader(const uint8_t *data, size_t size)
{
    uint32_t seed = (uint32_t)size * 2654435761u ^ (size ? data[0] : 0);
    size_t fed = 0, ref_off = 0;
    enum fc_err last = FC_AGAIN;

    wire_reader_reset(&reader);
    while (fed < size && last != FC_PROTO) {
        size_t space;
        uint8_t *p = wire_reader_space(&reader, &space);
        CHECK(space > 0); /* a valid prefix always leaves room to finish its message */
        uint32_t r = lcg(&seed);
        size_t n = (r & 3) == 0 ? 1 + r % 70000 : 1 + r % 64;
        if (n > space)
            n = space;
        if (n > size - fed)
            n = size - fed;
        memcpy(p, data + fed, n);
        wire_reader_commit(&reader, n);
        fed += n;
        for (;;) {
            const uint8_t *msg;
            size_t len, want_off = 0, want_len = 0;
            last = wire_reader_next(&reader, &msg, &len);
            /* The reference sees only what has been fed so far. */
            enum fc_err want = ref_next(data, fed, &ref_off, &want_off, &want_len);
            CHECK(last == want);
            if (last != FC_OK)
                break;
            CHECK(len == want_len && memcmp(msg, data + want_off, len) == 0);
            (void)wire_decode(&dec, &keys, msg, len, &m1, NULL);
        }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *why = NULL;
    init_once();

    /* 1. The input as a message: the tag decides first. */
    enum fc_err err = wire_decode(&dec, &keys, data, size, &m1, &why);
    CHECK(why != NULL);
    if (size > WIRE_MAX_MSG)
        CHECK(err == FC_LIMIT);
    else if (size <= MAC_TAG_BYTES)
        CHECK(err == FC_PROTO);
    else if (err == FC_OK)
        check_decoded(&m1, data, size);
    else
        CHECK(err == FC_AUTH || err == FC_PROTO);

    /* 2. The input as a body with a valid tag: the parser and the field checks. */
    if (size + MAC_TAG_BYTES <= WIRE_MAX_MSG) {
        uint8_t *msg = malloc(size + MAC_TAG_BYTES);
        CHECK(msg != NULL);
        memcpy(msg, data, size);
        mac_tag(&key, msg, size, msg + size);
        err = wire_decode(&dec, &keys, msg, size + MAC_TAG_BYTES, &m1, &why);
        CHECK(err == FC_OK || err == FC_PROTO);
        /* The tag verified, with the second key (an empty body is refused before the tag). */
        CHECK(size == 0 || dec.key_index == 1);
        CHECK(why != NULL && (err == FC_OK || why[0] != '\0'));
        if (err == FC_OK) {
            check_decoded(&m1, msg, size + MAC_TAG_BYTES);
            check_round_trip(&m1);
        }
        free(msg);
    }

    /* 3. The input as a TCP stream. */
    fuzz_reader(data, size);
    return 0;
}
