/*
 * fuzz_shim_icy.c - libFuzzer target for the shim's --pull input (encoder-shim/pull.c): the
 * response headers (content type, icy-metaint, icy-name...) as libcurl hands them to
 * header_cb(), then the body, metaint-interleaved audio and ICY metadata blocks, through
 * write_cb() in pseudo-random chunks, split into audio (shim_audio_in) and titles
 * (shim_set_meta), with blocks lacking StreamTitle/StreamUrl dropped and counted.
 *
 * pull.c is compiled in unchanged (its libcurl transfer is never started); the publish.c
 * functions it calls are recorders.
 *
 * Input: 1 byte seeding the chunk sizes, then header lines ending at an empty line (each line is
 * one header_cb call, as libcurl makes them), then the body. Checks, besides the sanitizers:
 *   - metaint is what a well-formed `icy-metaint: N` said (0 when absent or out of range), and
 *     never above ICY_METAINT_MAX; header fields copied stay NUL-terminated in their buffers;
 *   - the body fed whole and in pseudo-random chunks gives the same audio and the same title
 *     calls, and both equal a reference split written here from the convention in icy.h
 *     (N audio bytes, length byte L, 16 L bytes of metadata; L = 0 adds no block);
 *   - every block without a title or url is counted in icy_bad_blocks, every other one reaches
 *     shim_set_meta with the fields icy_parse_meta() finds in it.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "../../encoder-shim/shim.h"
#include "clock.h"

#include "fuzz_check.h"

#include "../../encoder-shim/pull.c"

/* ---- recorders for the publish.c functions pull.c calls ---- */

#define FNV_OFFSET 1469598103934665603ull
#define FNV_PRIME 1099511628211ull

static uint64_t fnv(uint64_t h, const void *p, size_t n)
{
    const uint8_t *b = p;
    for (size_t i = 0; i < n; i++)
        h = (h ^ b[i]) * FNV_PRIME;
    return h;
}

struct trace {
    uint64_t audio_bytes, audio_hash;
    uint64_t metas, meta_hash; /* shim_set_meta calls */
    int resets;
};
static struct trace *cur;

void shim_audio_in(struct shim *s, const uint8_t *data, size_t len)
{
    CHECK(len > 0);
    cur->audio_bytes += len;
    cur->audio_hash = fnv(cur->audio_hash, data, len);
}

void shim_flush_batch(struct shim *s, uint64_t arrival_us)
{
}

void shim_input_reset(struct shim *s, enum fc_codec codec, bool resync)
{
    CHECK(codec == FC_CODEC_MP3 || codec == FC_CODEC_ADTS);
    CHECK(resync);
    cur->resets++;
}

void shim_set_meta(struct shim *s, const char *title, const char *url)
{
    size_t tl = strlen(title), ul = strlen(url);
    CHECK(tl <= ICY_FIELD_MAX && ul <= ICY_FIELD_MAX && (tl || ul));
    cur->metas++;
    cur->meta_hash = fnv(cur->meta_hash, title, tl + 1);
    cur->meta_hash = fnv(cur->meta_hash, url, ul + 1);
}

/* ---- the harness ---- */

static struct shim S;

static void init_once(void)
{
    static bool done;
    if (done)
        return;
    S.loop = ev_loop_new(EVFLAG_AUTO);
    CHECK(S.loop);
    log_init(&S.log, "shim", false);
    S.log.min = LOG_ERROR; /* connect lines and dropped-block warnings: one per input otherwise */
    S.opt.pull_url = "http://upstream.test:8000/live";
    ev_init(&S.pull_flush, on_pull_flush); /* as shim_pull_start() does */
    done = true;
}

static uint32_t lcg(uint32_t *seed)
{
    *seed = *seed * 1103515245u + 12345u;
    return *seed >> 8;
}

/* What a plain `icy-metaint: N` line (N of 1 to 9 digits) says; -1 for other lines. */
static long plain_metaint(const char *line, size_t len)
{
    if (len < 13 || strncasecmp(line, "icy-metaint:", 12) != 0)
        return -1;
    size_t i = 12;
    while (i < len && line[i] == ' ')
        i++;
    long v = 0;
    size_t digits = 0;
    while (i < len && line[i] >= '0' && line[i] <= '9' && digits < 10)
        v = v * 10 + (line[i++] - '0'), digits++;
    if (digits == 0 || digits > 9)
        return -1;
    if (len - i == 2 && line[i] == '\r' && line[i + 1] == '\n')
        return v > 0 && v <= ICY_METAINT_MAX ? v : 0;
    if (len - i == 1 && line[i] == '\n')
        return v > 0 && v <= ICY_METAINT_MAX ? v : 0;
    return -1;
}

/* The reference split of `body` under `metaint`. */
static void reference(const uint8_t *body, size_t n, uint32_t metaint, struct trace *t,
                      uint64_t *bad)
{
    static char text[ICY_META_MAX + 1];
    char title[ICY_FIELD_MAX + 1], url[ICY_FIELD_MAX + 1];
    *bad = 0;
    if (metaint == 0) {
        if (n) {
            t->audio_bytes = n;
            t->audio_hash = fnv(t->audio_hash, body, n);
        }
        return;
    }
    size_t at = 0;
    while (at < n) {
        size_t a = n - at < metaint ? n - at : metaint;
        t->audio_bytes += a;
        t->audio_hash = fnv(t->audio_hash, body + at, a);
        at += a;
        if (at >= n)
            break;
        size_t meta = (size_t)body[at++] * 16;
        if (meta == 0)
            continue;
        if (n - at < meta)
            break; /* the block is not complete: no call yet */
        memcpy(text, body + at, meta);
        text[meta] = '\0';
        at += meta;
        icy_parse_meta(text, meta, title, url);
        if (!title[0] && !url[0]) {
            (*bad)++;
            continue;
        }
        t->metas++;
        t->meta_hash = fnv(t->meta_hash, title, strlen(title) + 1);
        t->meta_hash = fnv(t->meta_hash, url, strlen(url) + 1);
    }
}

static bool terminated(const char *s, size_t cap)
{
    return memchr(s, '\0', cap) != NULL;
}

/* One response: the header lines, then the body in chunks (chunked) or at once. Returns where
 * the body starts; *want_metaint is what a plain icy-metaint line said (-1: not plain). */
static size_t run(const uint8_t *data, size_t size, bool chunked, uint32_t seed, struct trace *t,
                  long *want_metaint)
{
    memset(t, 0, sizeof(*t));
    t->audio_hash = t->meta_hash = FNV_OFFSET;
    cur = t;
    /* What pull_connect() resets for a new transfer. */
    S.got_body = false;
    S.metaint = 0;
    S.content_type[0] = '\0';
    S.icy_bad_blocks = 0;
    memset(&S.icy_ll, 0, sizeof(S.icy_ll));
    memset(&S.station, 0, sizeof(S.station));
    *want_metaint = 0;

    /* Header lines up to and including the empty one. */
    size_t at = 0;
    bool end = false;
    while (at < size && !end) {
        const uint8_t *nl = memchr(data + at, '\n', size - at);
        size_t len = nl ? (size_t)(nl - (data + at)) + 1 : size - at;
        if (len > CURL_MAX_HTTP_HEADER)
            len = CURL_MAX_HTTP_HEADER;
        char *line = malloc(len); /* exactly the line, not NUL-terminated, as libcurl gives it */
        CHECK(line);
        memcpy(line, data + at, len);
        end = (len == 1 && line[0] == '\n') || (len == 2 && line[0] == '\r' && line[1] == '\n');
        if (len > 12 && strncasecmp(line, "icy-metaint:", 12) == 0)
            *want_metaint = plain_metaint(line, len);
        CHECK(header_cb(line, 1, len, &S) == len);
        free(line);
        at += len;
    }
    CHECK(S.metaint <= ICY_METAINT_MAX);
    CHECK(terminated(S.content_type, sizeof(S.content_type)) &&
          terminated(S.station.name, sizeof(S.station.name)) &&
          terminated(S.station.genre, sizeof(S.station.genre)) &&
          terminated(S.station.desc, sizeof(S.station.desc)) &&
          terminated(S.station.url, sizeof(S.station.url)));

    const uint8_t *body = data + at;
    size_t n = size - at;
    if (!chunked) {
        if (n)
            CHECK(write_cb((char *)body, 1, n, &S) == n);
        return at;
    }
    for (size_t off = 0; off < n;) {
        uint32_t r = lcg(&seed);
        size_t k = (r & 7) == 0 ? 1 + r % 5000 : 1 + r % 17;
        if (k > n - off)
            k = n - off;
        /* libcurl's (size, nmemb) is (1, bytes); now and then split as nmemb elements. */
        if ((r & 0x30) == 0 && k % 2 == 0)
            CHECK(write_cb((char *)body + off, 2, k / 2, &S) == k);
        else
            CHECK(write_cb((char *)body + off, 1, k, &S) == k);
        off += k;
    }
    return at;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    init_once();
    if (size < 1)
        return 0;
    uint32_t seed = data[0];
    data++;
    size--;

    struct trace whole, chunked, ref = {0, FNV_OFFSET, 0, FNV_OFFSET, 0};
    long want;
    size_t at = run(data, size, false, seed, &whole, &want);
    uint32_t metaint = S.metaint;
    uint64_t bad_whole = S.icy_bad_blocks;
    bool body_whole = S.got_body;
    CHECK(want < 0 || (uint32_t)want == metaint);

    CHECK(run(data, size, true, seed, &chunked, &want) == at);
    CHECK(S.metaint == metaint && S.got_body == body_whole);
    CHECK(whole.audio_bytes == chunked.audio_bytes && whole.audio_hash == chunked.audio_hash &&
          whole.metas == chunked.metas && whole.meta_hash == chunked.meta_hash &&
          whole.resets == chunked.resets && bad_whole == S.icy_bad_blocks);
    CHECK(whole.resets == (body_whole ? 1 : 0));

    uint64_t bad_ref;
    reference(data + at, size - at, metaint, &ref, &bad_ref);
    CHECK(whole.audio_bytes == ref.audio_bytes && whole.audio_hash == ref.audio_hash);
    CHECK(whole.metas == ref.metas && whole.meta_hash == ref.meta_hash && bad_whole == bad_ref);
    return 0;
}
