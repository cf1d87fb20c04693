/*
 * fuzz_icy.c - libFuzzer target for the ICY demultiplexer and metadata parser (shared/icy.c).
 *
 * Input: 2 bytes of metaint (little-endian, 0 = no metadata), 1 byte seeding the chunk sizes,
 * then the received stream. Checks, besides the sanitizers:
 *   - feeding the stream whole and in pseudo-random chunks gives the same audio bytes and the
 *     same metadata callbacks in the same order (chunk boundaries are invisible);
 *   - every byte is accounted for: audio + length bytes + block bodies = input;
 *   - icy_parse_meta() on the raw bytes yields bounded fields, and icy_meta_block() of those
 *     fields parses back to the same fields (round trip).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "icy.h"

/* FNV-1a, enough to compare two callback sequences. */
#define FNV_OFFSET 1469598103934665603ull
#define FNV_PRIME 1099511628211ull

struct trace {
    uint64_t audio_bytes; /* total audio handed out */
    uint64_t audio_hash;  /* hash of the audio bytes, in order */
    uint64_t meta_calls;  /* metadata callbacks */
    uint64_t meta_hash;   /* hash of title/url pairs, in order */
};

static uint64_t fnv(uint64_t h, const void *p, size_t n)
{
    const uint8_t *b = p;
    for (size_t i = 0; i < n; i++)
        h = (h ^ b[i]) * FNV_PRIME;
    return h;
}

static void on_audio(void *ctx, const uint8_t *data, size_t len)
{
    struct trace *t = ctx;
    if (len == 0)
        __builtin_trap(); /* callers should never see empty runs */
    t->audio_bytes += len;
    t->audio_hash = fnv(t->audio_hash, data, len);
}

static void on_meta(void *ctx, const char *title, const char *url)
{
    struct trace *t = ctx;
    size_t tl = strlen(title), ul = strlen(url);
    if (tl > ICY_FIELD_MAX || ul > ICY_FIELD_MAX)
        __builtin_trap();
    t->meta_calls++;
    t->meta_hash = fnv(t->meta_hash, title, tl + 1);
    t->meta_hash = fnv(t->meta_hash, url, ul + 1);
}

static uint32_t lcg(uint32_t *seed)
{
    *seed = *seed * 1103515245u + 12345u;
    return *seed >> 8;
}

static void check_round_trip(const char *text, size_t len)
{
    char title[ICY_FIELD_MAX + 1], url[ICY_FIELD_MAX + 1];
    char title2[ICY_FIELD_MAX + 1], url2[ICY_FIELD_MAX + 1];
    static uint8_t block[1 + ICY_META_MAX + 1];

    icy_parse_meta(text, len, title, url);
    if (strlen(title) > ICY_FIELD_MAX || strlen(url) > ICY_FIELD_MAX)
        __builtin_trap();
    block[1 + ICY_META_MAX] = 0xA5;
    size_t n = icy_meta_block(title, url, block);
    if (n < 1 || n > 1 + ICY_META_MAX || n != 1 + (size_t)block[0] * 16 ||
        block[1 + ICY_META_MAX] != 0xA5)
        __builtin_trap();
    if (block[0] == 0) {
        if (title[0] || url[0])
            __builtin_trap();
        return;
    }
    icy_parse_meta((const char *)block + 1, n - 1, title2, url2);
    if (strcmp(title, title2) != 0 || strcmp(url, url2) != 0)
        __builtin_trap();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct icy_demux whole, chunked;
    struct trace a = {0, FNV_OFFSET, 0, FNV_OFFSET};
    struct trace b = {0, FNV_OFFSET, 0, FNV_OFFSET};

    if (size < 3)
        return 0;
    uint32_t metaint = (uint32_t)data[0] | (uint32_t)data[1] << 8;
    uint32_t seed = data[2];
    data += 3;
    size -= 3;

    icy_demux_init(&whole, metaint);
    icy_demux_feed(&whole, data, size, on_audio, on_meta, &a);

    icy_demux_init(&chunked, metaint);
    for (size_t off = 0; off < size;) {
        uint32_t r = lcg(&seed);
        size_t n = (r & 7) == 0 ? 1 + r % 5000 : 1 + r % 17;
        if (n > size - off)
            n = size - off;
        icy_demux_feed(&chunked, data + off, n, on_audio, on_meta, &b);
        off += n;
    }
    icy_demux_feed(&chunked, data, 0, on_audio, on_meta, &b); /* empty feed is a no-op */

    if (a.audio_bytes != b.audio_bytes || a.audio_hash != b.audio_hash ||
        a.meta_calls != b.meta_calls || a.meta_hash != b.meta_hash ||
        whole.blocks != chunked.blocks || whole.blocks != a.meta_calls)
        __builtin_trap();
    if (metaint == 0 && (a.audio_bytes != size || a.meta_calls != 0))
        __builtin_trap();
    if (a.audio_bytes > size)
        __builtin_trap();

    check_round_trip((const char *)data, size);
    return 0;
}
