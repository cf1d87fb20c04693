/* wire.c - see wire.h. */
#include "wire.h"

#include <string.h>
#include "framer.h"

#define WIRE_ZONE_CHUNK 2048

/* ---- encoding: a msgpack packer writing into a fixed caller buffer ---- */

struct fixbuf {
    uint8_t *p;
    size_t len;
    size_t cap;
    bool overflow;
};

static int fixbuf_write(void *data, const char *buf, size_t len)
{
    struct fixbuf *fb = data;
    if (fb->overflow || len > fb->cap - fb->len) {
        fb->overflow = true;
        return -1;
    }
    memcpy(fb->p + fb->len, buf, len);
    fb->len += len;
    return 0;
}

static void pack_str(msgpack_packer *pk, const char *s)
{
    size_t n = strlen(s);
    msgpack_pack_str(pk, n);
    msgpack_pack_str_body(pk, s, n);
}

static enum fc_err finish(const struct mac_key *key, struct fixbuf *fb, size_t *len)
{
    if (fb->overflow || fb->cap - fb->len < MAC_TAG_BYTES ||
        fb->len + MAC_TAG_BYTES > WIRE_MAX_MSG)
        return FC_LIMIT;
    mac_tag(key, fb->p, fb->len, fb->p + fb->len);
    *len = fb->len + MAC_TAG_BYTES;
    return FC_OK;
}

#define PACKER_START(fb, pk, out, cap, n_items, type)                                              \
    struct fixbuf fb = {(out), 0, (cap), false};                                                   \
    msgpack_packer pk;                                                                             \
    msgpack_packer_init(&pk, &fb, fixbuf_write);                                                   \
    msgpack_pack_array(&pk, (n_items));                                                            \
    msgpack_pack_uint8(&pk, WIRE_VERSION);                                                         \
    msgpack_pack_uint8(&pk, (type))

enum fc_err wire_encode_hello(const struct mac_key *key, const char *role, const char *node,
                              uint8_t *out, size_t cap, size_t *len)
{
    PACKER_START(fb, pk, out, cap, 5, WIRE_HELLO);
    pack_str(&pk, role);
    pack_str(&pk, node);
    msgpack_pack_array(&pk, 1);
    pack_str(&pk, "resume");
    return finish(key, &fb, len);
}

enum fc_err wire_encode_frame(const struct mac_key *key, const struct wire_frame *f, uint8_t *out,
                              size_t cap, size_t *len)
{
    if (!wire_valid_name(f->mount, strlen(f->mount), WIRE_MOUNT_MAX) ||
        !wire_valid_name(f->encoder, strlen(f->encoder), WIRE_ENCODER_MAX) ||
        f->payload_len == 0 || f->payload_len > WIRE_MAX_PAYLOAD)
        return FC_PROTO;
    PACKER_START(fb, pk, out, cap, 15, WIRE_FRAME);
    pack_str(&pk, f->mount);
    pack_str(&pk, f->encoder);
    msgpack_pack_uint32(&pk, f->priority);
    msgpack_pack_uint64(&pk, f->session);
    msgpack_pack_uint64(&pk, f->seq);
    msgpack_pack_uint64(&pk, f->pts_us);
    msgpack_pack_uint8(&pk, (uint8_t)f->codec);
    msgpack_pack_uint32(&pk, f->sample_rate);
    msgpack_pack_uint8(&pk, f->channels);
    msgpack_pack_uint16(&pk, f->samples);
    msgpack_pack_bin(&pk, 4);
    msgpack_pack_bin_body(&pk, f->level, 4);
    msgpack_pack_bin(&pk, f->payload_len);
    msgpack_pack_bin_body(&pk, f->payload, f->payload_len);
    /* meta: nil, or a map of the title (title, url) and/or the station's ice-* fields. */
    if (f->has_meta || f->has_station) {
        msgpack_pack_map(&pk, (f->has_meta ? 2 : 0) + (f->has_station ? 5 : 0));
        if (f->has_meta) {
            pack_str(&pk, "title");
            pack_str(&pk, f->title);
            pack_str(&pk, "url");
            pack_str(&pk, f->url);
        }
        if (f->has_station) {
            pack_str(&pk, "name");
            pack_str(&pk, f->st_name);
            pack_str(&pk, "genre");
            pack_str(&pk, f->st_genre);
            pack_str(&pk, "description");
            pack_str(&pk, f->st_desc);
            pack_str(&pk, "station_url");
            pack_str(&pk, f->st_url);
            pack_str(&pk, "bitrate");
            msgpack_pack_uint32(&pk, f->st_bitrate);
        }
    } else {
        msgpack_pack_nil(&pk);
    }
    return finish(key, &fb, len);
}

enum fc_err wire_encode_subscribe(const struct mac_key *key, const struct wire_subscribe *s,
                                  uint8_t *out, size_t cap, size_t *len)
{
    if (s->n_mounts > WIRE_SUB_MOUNTS_MAX || s->n_resume > WIRE_SUB_RESUME_MAX)
        return FC_LIMIT;
    PACKER_START(fb, pk, out, cap, 4, WIRE_SUBSCRIBE);
    msgpack_pack_array(&pk, s->n_mounts);
    for (uint32_t i = 0; i < s->n_mounts; i++)
        pack_str(&pk, s->mounts[i]);
    msgpack_pack_array(&pk, s->n_resume);
    for (uint32_t i = 0; i < s->n_resume; i++) {
        const struct wire_resume *r = &s->resume[i];
        msgpack_pack_array(&pk, 4);
        pack_str(&pk, r->mount);
        pack_str(&pk, r->encoder);
        msgpack_pack_uint64(&pk, r->session);
        msgpack_pack_uint64(&pk, r->next_seq);
    }
    return finish(key, &fb, len);
}

enum fc_err wire_encode_heartbeat(const struct mac_key *key, uint64_t now_us, uint8_t *out,
                                  size_t cap, size_t *len)
{
    PACKER_START(fb, pk, out, cap, 3, WIRE_HEARTBEAT);
    msgpack_pack_uint64(&pk, now_us);
    return finish(key, &fb, len);
}

void wire_put_len(uint8_t *p, uint32_t len)
{
    p[0] = (uint8_t)(len >> 24);
    p[1] = (uint8_t)(len >> 16);
    p[2] = (uint8_t)(len >> 8);
    p[3] = (uint8_t)len;
}

bool wire_valid_name(const char *s, size_t len, size_t max)
{
    if (len == 0 || len > max)
        return false;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '-'))
            return false;
    }
    return true;
}

/* ---- decoding ---- */

enum fc_err wire_decoder_init(struct wire_decoder *d)
{
    d->key_index = 0;
    return msgpack_zone_init(&d->zone, WIRE_ZONE_CHUNK) ? FC_OK : FC_NOMEM;
}

void wire_decoder_free(struct wire_decoder *d)
{
    msgpack_zone_destroy(&d->zone);
}

/* Each getter fails with the field's name in *why, so a rejected message is explained once. */
#define FAIL(name)                                                                                 \
    do {                                                                                           \
        *why = (name);                                                                             \
        return FC_PROTO;                                                                           \
    } while (0)

static bool get_uint(const msgpack_object *o, uint64_t max, uint64_t *out)
{
    if (o->type != MSGPACK_OBJECT_POSITIVE_INTEGER || o->via.u64 > max)
        return false;
    *out = o->via.u64;
    return true;
}

static bool get_str(const msgpack_object *o, char *out, size_t max)
{
    if (o->type != MSGPACK_OBJECT_STR || o->via.str.size > max)
        return false;
    if (o->via.str.size) /* msgpack-c leaves ptr NULL for "" */
        memcpy(out, o->via.str.ptr, o->via.str.size);
    out[o->via.str.size] = '\0';
    return memchr(out, '\0', o->via.str.size) == NULL;
}

static bool get_name(const msgpack_object *o, char *out, size_t max)
{
    return get_str(o, out, max) && wire_valid_name(out, o->via.str.size, max);
}

static enum fc_err decode_hello(const msgpack_object_array *a, struct wire_hello *h,
                                const char **why)
{
    if (a->size < 5)
        FAIL("hello arity");
    if (!get_str(&a->ptr[2], h->role, sizeof(h->role) - 1))
        FAIL("role");
    if (!get_str(&a->ptr[3], h->node, WIRE_NODE_MAX))
        FAIL("node");
    const msgpack_object *f = &a->ptr[4];
    if (f->type != MSGPACK_OBJECT_ARRAY)
        FAIL("features");
    h->n_features = 0;
    for (uint32_t i = 0; i < f->via.array.size && h->n_features < WIRE_FEATURES_MAX; i++)
        if (get_str(&f->via.array.ptr[i], h->features[h->n_features], 31))
            h->n_features++;
    return FC_OK;
}

static enum fc_err decode_meta(const msgpack_object *o, struct wire_frame *f, const char **why)
{
    f->has_meta = f->has_station = false;
    f->title[0] = f->url[0] = '\0';
    f->st_name[0] = f->st_genre[0] = f->st_desc[0] = f->st_url[0] = '\0';
    f->st_bitrate = 0;
    if (o->type == MSGPACK_OBJECT_NIL)
        return FC_OK;
    if (o->type != MSGPACK_OBJECT_MAP || o->via.map.size > 16)
        FAIL("meta");
    static const struct {
        const char *key;
        size_t off, max;
        bool station;
    } fields[] = {
        {"title", offsetof(struct wire_frame, title), WIRE_META_MAX, false},
        {"url", offsetof(struct wire_frame, url), WIRE_META_MAX, false},
        {"name", offsetof(struct wire_frame, st_name), WIRE_STATION_MAX, true},
        {"genre", offsetof(struct wire_frame, st_genre), WIRE_STATION_MAX, true},
        {"description", offsetof(struct wire_frame, st_desc), WIRE_STATION_MAX, true},
        {"station_url", offsetof(struct wire_frame, st_url), WIRE_STATION_MAX, true},
    };
    for (uint32_t i = 0; i < o->via.map.size; i++) {
        const msgpack_object_kv *kv = &o->via.map.ptr[i];
        if (kv->key.type != MSGPACK_OBJECT_STR)
            FAIL("meta key");
        const char *k = kv->key.via.str.ptr;
        uint32_t kn = kv->key.via.str.size;
        if (kn == 7 && memcmp(k, "bitrate", 7) == 0) {
            uint64_t v;
            if (!get_uint(&kv->val, 100000, &v))
                FAIL("meta bitrate");
            f->st_bitrate = (uint32_t)v;
            f->has_station = true;
            continue;
        }
        for (size_t j = 0; j < FC_ARRAY_LEN(fields); j++) {
            if (strlen(fields[j].key) != kn || memcmp(fields[j].key, k, kn) != 0)
                continue;
            if (!get_str(&kv->val, (char *)f + fields[j].off, fields[j].max))
                FAIL("meta value");
            if (fields[j].station)
                f->has_station = true;
            else
                f->has_meta = true;
        }
    }
    return FC_OK;
}

static enum fc_err check_payload(const struct wire_frame *f, const char **why)
{
    struct frame_info info;
    if (frame_header_parse(f->codec, f->payload, f->payload_len, &info) != FC_OK)
        FAIL("payload header");
    if (info.len != f->payload_len)
        FAIL("payload length");
    if (info.sample_rate != f->sample_rate || info.channels != f->channels ||
        info.samples != f->samples)
        FAIL("payload header disagrees with fields");
    return FC_OK;
}

static enum fc_err decode_frame(const msgpack_object_array *a, struct wire_frame *f,
                                const char **why)
{
    uint64_t v;
    const msgpack_object *p = a->ptr;
    if (a->size < 15)
        FAIL("frame arity");
    if (!get_name(&p[2], f->mount, WIRE_MOUNT_MAX))
        FAIL("mount");
    if (!get_name(&p[3], f->encoder, WIRE_ENCODER_MAX))
        FAIL("encoder");
    if (!get_uint(&p[4], 255, &v))
        FAIL("priority");
    f->priority = (uint32_t)v;
    if (!get_uint(&p[5], UINT64_MAX, &f->session))
        FAIL("session");
    if (!get_uint(&p[6], UINT64_MAX - 1, &f->seq))
        FAIL("seq");
    if (!get_uint(&p[7], UINT64_MAX, &f->pts_us))
        FAIL("pts");
    if (!get_uint(&p[8], 2, &v) || v == 0)
        FAIL("codec");
    f->codec = (enum fc_codec)v;
    if (!get_uint(&p[9], 96000, &v) || v < 8000)
        FAIL("sample_rate");
    f->sample_rate = (uint32_t)v;
    if (!get_uint(&p[10], 8, &v) || v == 0)
        FAIL("channels");
    f->channels = (uint8_t)v;
    if (!get_uint(&p[11], 4096, &v) || v == 0)
        FAIL("samples");
    f->samples = (uint16_t)v;
    if (p[12].type != MSGPACK_OBJECT_BIN || p[12].via.bin.size != 4)
        FAIL("level");
    memcpy(f->level, p[12].via.bin.ptr, 4);
    if (p[13].type != MSGPACK_OBJECT_BIN || p[13].via.bin.size == 0 ||
        p[13].via.bin.size > WIRE_MAX_PAYLOAD)
        FAIL("payload");
    f->payload = (const uint8_t *)p[13].via.bin.ptr;
    f->payload_len = p[13].via.bin.size;
    enum fc_err err = decode_meta(&p[14], f, why);
    if (err != FC_OK)
        return err;
    return check_payload(f, why);
}

static enum fc_err decode_resume(const msgpack_object *o, struct wire_resume *r, const char **why)
{
    if (o->type != MSGPACK_OBJECT_ARRAY || o->via.array.size != 4)
        FAIL("resume entry");
    const msgpack_object *p = o->via.array.ptr;
    if (!get_name(&p[0], r->mount, WIRE_MOUNT_MAX) ||
        !get_name(&p[1], r->encoder, WIRE_ENCODER_MAX) ||
        !get_uint(&p[2], UINT64_MAX, &r->session) || !get_uint(&p[3], UINT64_MAX, &r->next_seq))
        FAIL("resume entry");
    return FC_OK;
}

static enum fc_err decode_subscribe(const msgpack_object_array *a, struct wire_subscribe *s,
                                    const char **why)
{
    if (a->size < 4)
        FAIL("subscribe arity");
    const msgpack_object *m = &a->ptr[2], *r = &a->ptr[3];
    if (m->type != MSGPACK_OBJECT_ARRAY || m->via.array.size > WIRE_SUB_MOUNTS_MAX)
        FAIL("mounts");
    if (r->type != MSGPACK_OBJECT_ARRAY || r->via.array.size > WIRE_SUB_RESUME_MAX)
        FAIL("resume");
    s->n_mounts = m->via.array.size;
    for (uint32_t i = 0; i < s->n_mounts; i++)
        if (!get_name(&m->via.array.ptr[i], s->mounts[i], WIRE_MOUNT_MAX))
            FAIL("mounts");
    s->n_resume = r->via.array.size;
    for (uint32_t i = 0; i < s->n_resume; i++) {
        enum fc_err err = decode_resume(&r->via.array.ptr[i], &s->resume[i], why);
        if (err != FC_OK)
            return err;
    }
    return FC_OK;
}

static enum fc_err decode_heartbeat(const msgpack_object_array *a, struct wire_heartbeat *h,
                                    const char **why)
{
    if (a->size < 3 || !get_uint(&a->ptr[2], UINT64_MAX, &h->now_us))
        FAIL("heartbeat now");
    if (a->size > 3 && a->ptr[3].type != MSGPACK_OBJECT_MAP && a->ptr[3].type != MSGPACK_OBJECT_NIL)
        FAIL("heartbeat stats");
    return FC_OK;
}

static enum fc_err decode_body(const msgpack_object *root, struct wire_msg *out, const char **why)
{
    uint64_t version, type;
    if (root->type != MSGPACK_OBJECT_ARRAY || root->via.array.size < 2)
        FAIL("not an array");
    const msgpack_object_array *a = &root->via.array;
    if (!get_uint(&a->ptr[0], UINT64_MAX, &version) || version != WIRE_VERSION)
        FAIL("version");
    if (!get_uint(&a->ptr[1], WIRE_HEARTBEAT, &type))
        FAIL("type");
    out->type = (enum wire_type)type;
    switch (out->type) {
    case WIRE_HELLO:
        return decode_hello(a, &out->u.hello, why);
    case WIRE_FRAME:
        return decode_frame(a, &out->u.frame, why);
    case WIRE_SUBSCRIBE:
        return decode_subscribe(a, &out->u.subscribe, why);
    case WIRE_HEARTBEAT:
        return decode_heartbeat(a, &out->u.heartbeat, why);
    }
    FAIL("type");
}

static uint32_t be(const uint8_t *p, int n)
{
    uint32_t v = 0;
    for (int i = 0; i < n; i++)
        v = v << 8 | p[i];
    return v;
}

/*
 * Walk the msgpack tokens of `p` without allocating and check that every array or map claims no
 * more items than bytes remain. msgpack-c reserves memory for the claimed count before reading
 * the items, so a 5-byte body could otherwise ask for gigabytes.
 */
static bool msgpack_sane(const uint8_t *p, size_t len)
{
    uint64_t pending = 1; /* tokens still expected */
    size_t i = 0;
    while (pending > 0) {
        if (i >= len || pending > len - i)
            return false;
        uint8_t c = p[i];
        uint64_t hdr = 1, body = 0, items = 0;
        if (c <= 0x7f || c >= 0xe0 || c == 0xc0 || c == 0xc2 || c == 0xc3) {
        } else if (c >= 0x80 && c <= 0x8f) {
            items = 2u * (c & 0x0f);
        } else if (c >= 0x90 && c <= 0x9f) {
            items = c & 0x0f;
        } else if (c >= 0xa0 && c <= 0xbf) {
            body = c & 0x1f;
        } else {
            static const uint8_t fixed[] = {
                /* c4..df: header bytes incl. the type byte; 0 = invalid */
                2, 3, 5, 3, 4, 6, 5, 9, 2, 3, 5, 9, 2, 3, 5, 9, 3, 4, 6, 10, 18, 2, 3, 5, 3, 5, 3, 5};
            if (c < 0xc4)
                return false; /* 0xc1 is never used */
            hdr = fixed[c - 0xc4];
            if (len - i < hdr)
                return false;
            const uint8_t *q = p + i + 1;
            switch (c) {
            case 0xc4: case 0xd9: body = q[0]; break;
            case 0xc5: case 0xda: body = be(q, 2); break;
            case 0xc6: case 0xdb: body = be(q, 4); break;
            case 0xc7: body = q[0]; break;
            case 0xc8: body = be(q, 2); break;
            case 0xc9: body = be(q, 4); break;
            case 0xdc: items = be(q, 2); break;
            case 0xdd: items = be(q, 4); break;
            case 0xde: items = 2u * be(q, 2); break;
            case 0xdf: items = 2ull * be(q, 4); break; /* 64-bit: 2 * 2^31 wrapped to 0 */
            default: break;
            }
        }
        if (len - i < hdr || len - i - hdr < body)
            return false;
        i += hdr + body;
        pending = pending - 1 + items;
    }
    return i == len;
}

/* ---- FRAME fast path ---- */

/*
 * The common FRAME - exactly the 15 items wire_encode_frame() packs, meta nil - decoded straight
 * from the bytes, without building msgpack-c's object tree: a relay decodes every frame it
 * forwards (issue 9). Anything else, valid or not, returns false and wire_decode() takes the
 * general path, so what is accepted, what is rejected and the `why` are the general path's.
 * Every token taken here is one msgpack-c unpacks to the type the general path requires
 * (positive fixint/uint 8-64 -> POSITIVE_INTEGER, fixstr/str 8-32 -> STR, bin 8-32 -> BIN).
 */
struct fast_rd {
    const uint8_t *p;   /* next token */
    const uint8_t *end; /* one past the body */
};

static inline bool fast_uint(struct fast_rd *r, uint64_t max, uint64_t *v)
{
    if (r->p >= r->end)
        return false;
    uint8_t c = *r->p;
    size_t n;
    if (c <= 0x7f) {
        n = 0;
        *v = c;
    } else if (c >= 0xcc && c <= 0xcf) {
        n = (size_t)1 << (c - 0xcc);
        if ((size_t)(r->end - r->p) <= n)
            return false;
        *v = be(r->p + 1, n > 4 ? 4 : (int)n);
        if (n == 8)
            *v = *v << 32 | be(r->p + 5, 4);
    } else {
        return false;
    }
    r->p += 1 + n;
    return *v <= max;
}

/* A str token of 1..max bytes of [A-Za-z0-9._-] (get_name()), copied NUL-terminated to `out`. */
static bool fast_name(struct fast_rd *r, char *out, size_t max)
{
    size_t avail = (size_t)(r->end - r->p), hdr, n;
    if (avail < 1)
        return false;
    uint8_t c = *r->p;
    if (c >= 0xa0 && c <= 0xbf) {
        hdr = 1;
        n = c & 0x1f;
    } else if (c == 0xd9 && avail >= 2) {
        hdr = 2;
        n = r->p[1];
    } else {
        return false; /* str 16/32 would be longer than any name */
    }
    if (n > max || avail - hdr < n || !wire_valid_name((const char *)r->p + hdr, n, max))
        return false;
    memcpy(out, r->p + hdr, n);
    out[n] = '\0';
    r->p += hdr + n;
    return true;
}

static bool fast_bin(struct fast_rd *r, const uint8_t **data, uint32_t *n)
{
    size_t avail = (size_t)(r->end - r->p), hdr;
    if (avail < 2)
        return false;
    switch (*r->p) {
    case 0xc4: hdr = 2; break;
    case 0xc5: hdr = 3; break;
    case 0xc6: hdr = 5; break;
    default: return false;
    }
    if (avail < hdr)
        return false;
    *n = be(r->p + 1, (int)hdr - 1);
    if (avail - hdr < *n)
        return false;
    *data = r->p + hdr;
    r->p += hdr + *n;
    return true;
}

static bool decode_frame_fast(const uint8_t *body, size_t len, struct wire_msg *out)
{
    struct fast_rd r = {body, body + len};
    struct wire_frame *f = &out->u.frame;
    uint64_t v;
    const char *why;
    if (len < 3 || body[0] != 0x9f || body[1] != WIRE_VERSION || body[2] != WIRE_FRAME)
        return false; /* 0x9f: an array of exactly 15 items */
    r.p += 3;
    if (!fast_name(&r, f->mount, WIRE_MOUNT_MAX) || !fast_name(&r, f->encoder, WIRE_ENCODER_MAX))
        return false;
    if (!fast_uint(&r, 255, &v))
        return false;
    f->priority = (uint32_t)v;
    if (!fast_uint(&r, UINT64_MAX, &f->session) || !fast_uint(&r, UINT64_MAX - 1, &f->seq) ||
        !fast_uint(&r, UINT64_MAX, &f->pts_us))
        return false;
    if (!fast_uint(&r, 2, &v) || v == 0)
        return false;
    f->codec = (enum fc_codec)v;
    if (!fast_uint(&r, 96000, &v) || v < 8000)
        return false;
    f->sample_rate = (uint32_t)v;
    if (!fast_uint(&r, 8, &v) || v == 0)
        return false;
    f->channels = (uint8_t)v;
    if (!fast_uint(&r, 4096, &v) || v == 0)
        return false;
    f->samples = (uint16_t)v;
    const uint8_t *level;
    uint32_t n;
    if (!fast_bin(&r, &level, &n) || n != 4)
        return false;
    memcpy(f->level, level, 4);
    if (!fast_bin(&r, &f->payload, &f->payload_len) || f->payload_len == 0 ||
        f->payload_len > WIRE_MAX_PAYLOAD)
        return false;
    if (r.p + 1 != r.end || *r.p != 0xc0) /* meta nil, and nothing after it */
        return false;
    if (decode_meta(&(const msgpack_object){.type = MSGPACK_OBJECT_NIL}, f, &why) != FC_OK ||
        check_payload(f, &why) != FC_OK)
        return false;
    out->type = WIRE_FRAME;
    return true;
}

/* Any message, through msgpack-c: `body` is `len` bytes without the tag. */
static enum fc_err decode_general(struct wire_decoder *d, const uint8_t *body, size_t len,
                                  struct wire_msg *out, const char **why)
{
    if (!msgpack_sane(body, len))
        FAIL("msgpack syntax");
    msgpack_object root;
    size_t off = 0;
    msgpack_zone_clear(&d->zone);
    msgpack_unpack_return rc = msgpack_unpack((const char *)body, len, &off, &d->zone, &root);
    if (rc != MSGPACK_UNPACK_SUCCESS)
        FAIL(rc == MSGPACK_UNPACK_NOMEM_ERROR ? "out of memory" : "msgpack syntax");
    return decode_body(&root, out, why);
}

enum fc_err wire_decode(struct wire_decoder *d, const struct mac_keyring *keys,
                        const uint8_t *msg, size_t len, struct wire_msg *out, const char **why)
{
    const char *dummy;
    if (!why)
        why = &dummy;
    *why = "";
    if (len > WIRE_MAX_MSG) {
        *why = "message too long";
        return FC_LIMIT;
    }
    if (len <= MAC_TAG_BYTES)
        FAIL("message too short");
    enum fc_err err = mac_verify_any(keys, msg, len, &d->key_index);
    if (err != FC_OK) {
        *why = "bad tag";
        return err;
    }
    if (decode_frame_fast(msg, len - MAC_TAG_BYTES, out))
        return FC_OK;
    return decode_general(d, msg, len - MAC_TAG_BYTES, out, why);
}

/* ---- TCP length-prefix framing ---- */

void wire_reader_reset(struct wire_reader *r)
{
    r->start = r->end = 0;
}

uint8_t *wire_reader_space(struct wire_reader *r, size_t *space)
{
    if (r->start > 0) {
        memmove(r->buf, r->buf + r->start, r->end - r->start);
        r->end -= r->start;
        r->start = 0;
    }
    *space = sizeof(r->buf) - r->end;
    return r->buf + r->end;
}

void wire_reader_commit(struct wire_reader *r, size_t n)
{
    r->end += n;
}

enum fc_err wire_reader_next(struct wire_reader *r, const uint8_t **msg, size_t *len)
{
    size_t avail = r->end - r->start;
    if (avail < WIRE_LEN_BYTES)
        return FC_AGAIN;
    const uint8_t *p = r->buf + r->start;
    uint32_t n = (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
    if (n <= MAC_TAG_BYTES || n > WIRE_MAX_MSG)
        return FC_PROTO;
    if (avail < WIRE_LEN_BYTES + (size_t)n)
        return FC_AGAIN;
    *msg = p + WIRE_LEN_BYTES;
    *len = n;
    r->start += WIRE_LEN_BYTES + n;
    return FC_OK;
}
