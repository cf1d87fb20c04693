/*
 * test_icy.c - unit tests for the ICY metadata demultiplexer, parser and block builder
 * (shared/icy.c). Streams are synthetic: pseudo-random audio bytes (any value, 0 included, so
 * audio that looks like a length byte is covered) with metadata blocks built by
 * icy_meta_block() or by hand every `metaint` bytes.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "icy.h"

#define METAINT 16000          /* the usual icy-metaint of Icecast and Shoutcast */
#define AUDIO_CAP (512 * 1024) /* audio bytes in one synthetic stream */
#define STREAM_CAP (AUDIO_CAP + 64 * (1 + ICY_META_MAX))
#define TITLES_MAX 64

/* A synthetic ICY stream and what the demultiplexer should make of it. */
struct icy_stream {
    uint8_t data[STREAM_CAP];                   /* bytes as received */
    size_t len;                                 /* bytes in data */
    uint8_t audio[AUDIO_CAP];                   /* the audio alone */
    size_t audio_len;                           /* bytes in audio */
    char titles[TITLES_MAX][ICY_FIELD_MAX + 1]; /* titles of non-empty blocks, in order */
    char urls[TITLES_MAX][ICY_FIELD_MAX + 1];   /* urls of non-empty blocks, in order */
    size_t n_titles;                            /* entries in titles/urls */
};

/* What the callbacks received. */
struct sink {
    uint8_t audio[AUDIO_CAP];
    size_t audio_len;
    char titles[TITLES_MAX][ICY_FIELD_MAX + 1];
    char urls[TITLES_MAX][ICY_FIELD_MAX + 1];
    size_t n_titles;
    size_t audio_calls;
};

static struct icy_stream st;
static struct sink out;
static struct icy_demux demux;

static uint32_t lcg(uint32_t *seed)
{
    *seed = *seed * 1103515245u + 12345u;
    return *seed >> 8;
}

static void on_audio(void *ctx, const uint8_t *data, size_t len)
{
    struct sink *s = ctx;
    assert_true(len > 0);
    assert_true(s->audio_len + len <= AUDIO_CAP);
    memcpy(s->audio + s->audio_len, data, len);
    s->audio_len += len;
    s->audio_calls++;
}

static void on_meta(void *ctx, const char *title, const char *url)
{
    struct sink *s = ctx;
    assert_true(s->n_titles < TITLES_MAX);
    assert_true(strlen(title) <= ICY_FIELD_MAX);
    assert_true(strlen(url) <= ICY_FIELD_MAX);
    strcpy(s->titles[s->n_titles], title);
    strcpy(s->urls[s->n_titles], url);
    s->n_titles++;
}

static void sink_reset(void)
{
    out.audio_len = out.n_titles = out.audio_calls = 0;
}

static void stream_put(const void *p, size_t n)
{
    assert_true(st.len + n <= STREAM_CAP);
    memcpy(st.data + st.len, p, n);
    st.len += n;
}

static void stream_audio(size_t n, uint32_t *seed)
{
    assert_true(st.audio_len + n <= AUDIO_CAP);
    for (size_t i = 0; i < n; i++) {
        uint8_t b = (uint8_t)lcg(seed);
        st.audio[st.audio_len++] = b;
        stream_put(&b, 1);
    }
}

/* Append a block for `title`/`url`; expected as a title update unless it is the 0 byte. */
static void stream_meta(const char *title, const char *url)
{
    uint8_t block[1 + ICY_META_MAX];
    size_t n = icy_meta_block(title, url, block);
    stream_put(block, n);
    if (block[0] != 0) {
        assert_true(st.n_titles < TITLES_MAX);
        strcpy(st.titles[st.n_titles], title);
        strcpy(st.urls[st.n_titles], url);
        st.n_titles++;
    }
}

/*
 * `blocks` intervals of `metaint` audio bytes, then a partial interval of `tail` bytes. Block k
 * is, in turn: a title, "unchanged" (0), a title with a url, a title with quotes and UTF-8.
 */
static void stream_build(uint32_t metaint, size_t blocks, size_t tail, uint32_t seed)
{
    char title[128];
    st.len = st.audio_len = st.n_titles = 0;
    for (size_t k = 0; k < blocks; k++) {
        stream_audio(metaint, &seed);
        switch (k % 4) {
        case 0:
            snprintf(title, sizeof(title), "Artist %zu - Song %zu", k, k);
            stream_meta(title, "");
            break;
        case 1:
            stream_meta("", "");
            break;
        case 2:
            snprintf(title, sizeof(title), "Band %zu - Track", k);
            stream_meta(title, "http://example.org/now");
            break;
        default:
            snprintf(title, sizeof(title),
                     "Guns N' Roses - Sweet Child O' Mine (Live) \xC3\xA9 %zu", k);
            stream_meta(title, "");
            break;
        }
    }
    stream_audio(tail, &seed);
}

static void check_output(void)
{
    assert_int_equal(out.audio_len, st.audio_len);
    assert_memory_equal(out.audio, st.audio, st.audio_len);
    assert_int_equal(out.n_titles, st.n_titles);
    for (size_t i = 0; i < st.n_titles; i++) {
        assert_string_equal(out.titles[i], st.titles[i]);
        assert_string_equal(out.urls[i], st.urls[i]);
    }
    assert_int_equal(demux.blocks, st.n_titles);
}

static void feed_chunks(uint32_t metaint, const size_t *sizes, size_t n_sizes)
{
    size_t off = 0, k = 0;
    sink_reset();
    icy_demux_init(&demux, metaint);
    while (off < st.len) {
        size_t n = sizes[k++ % n_sizes];
        if (n > st.len - off)
            n = st.len - off;
        icy_demux_feed(&demux, st.data + off, n, on_audio, on_meta, &out);
        off += n;
    }
}

static void test_demux_whole(void **state)
{
    stream_build(METAINT, 20, 1234, 1);
    size_t whole = st.len;
    feed_chunks(METAINT, &whole, 1);
    check_output();
}

static void test_demux_byte_by_byte(void **state)
{
    const size_t one = 1;
    stream_build(METAINT, 20, 777, 2);
    feed_chunks(METAINT, &one, 1);
    check_output();
}

static void test_demux_random_chunks(void **state)
{
    for (uint32_t seed = 1; seed <= 20; seed++) {
        size_t sizes[257];
        uint32_t s = seed * 7919u;
        /* Mostly small chunks (length byte and block split every way), some large. */
        for (size_t i = 0; i < FC_ARRAY_LEN(sizes); i++)
            sizes[i] = (i % 5 == 0) ? 1 + lcg(&s) % 40000 : 1 + lcg(&s) % 37;
        stream_build(METAINT, 16, seed * 13, seed);
        feed_chunks(METAINT, sizes, FC_ARRAY_LEN(sizes));
        check_output();
    }
}

/* Chunk edges exactly around the length byte: ...audio | L | text... and ...audio L | text. */
static void test_demux_split_at_length_byte(void **state)
{
    stream_build(METAINT, 4, 100, 3);
    const size_t edges[][3] = {
        {METAINT, 1, 5},      /* length byte alone */
        {METAINT - 1, 2, 3},  /* last audio byte + length byte */
        {METAINT + 1, 1, 7},  /* length byte ends a chunk, then one text byte alone */
        {METAINT + 17, 1, 9}, /* a chunk ends mid-text */
    };
    for (size_t e = 0; e < FC_ARRAY_LEN(edges); e++) {
        feed_chunks(METAINT, edges[e], 3);
        check_output();
    }
}

static void test_demux_zero_length_blocks(void **state)
{
    uint32_t seed = 9;
    st.len = st.audio_len = st.n_titles = 0;
    for (int k = 0; k < 10; k++) {
        stream_audio(METAINT, &seed);
        stream_meta("", "");
    }
    stream_audio(10, &seed);
    assert_int_equal(st.len, st.audio_len + 10);
    const size_t sizes[] = {1, 3, 16001, 5000};
    feed_chunks(METAINT, sizes, FC_ARRAY_LEN(sizes));
    check_output();
    assert_int_equal(out.n_titles, 0);
}

/* A non-empty block whose text is only padding still counts as a block, with empty fields. */
static void test_demux_padding_only_block(void **state)
{
    uint8_t data[4 + 1 + 32 + 4] = {'a', 'b', 'c', 'd', 2};
    memcpy(data + 4 + 1 + 32, "efgh", 4);
    sink_reset();
    icy_demux_init(&demux, 4);
    icy_demux_feed(&demux, data, sizeof(data), on_audio, on_meta, &out);
    assert_int_equal(out.audio_len, 8);
    assert_memory_equal(out.audio, "abcdefgh", 8);
    assert_int_equal(out.n_titles, 1);
    assert_string_equal(out.titles[0], "");
    assert_string_equal(out.urls[0], "");
    assert_int_equal(demux.blocks, 1);
}

static void test_demux_metaint_zero(void **state)
{
    const size_t sizes[] = {1, 100, 3};
    stream_build(METAINT, 3, 0, 4);
    feed_chunks(0, sizes, FC_ARRAY_LEN(sizes));
    /* With metaint 0 every byte, blocks included, is audio. */
    assert_int_equal(out.audio_len, st.len);
    assert_memory_equal(out.audio, st.data, st.len);
    assert_int_equal(out.n_titles, 0);
    assert_int_equal(demux.blocks, 0);
}

static void test_demux_small_metaint(void **state)
{
    /* metaint 1: a length byte after every audio byte. */
    uint8_t data[] = {'x', 0,   'y', 1,   'S', 't',  'r', 'e',  'a', 'm', 'T',
                      'i', 't', 'l', 'e', '=', '\'', 'a', '\'', ';', 'z', 0};
    for (size_t chunk = 1; chunk <= sizeof(data); chunk++) {
        sink_reset();
        icy_demux_init(&demux, 1);
        for (size_t off = 0; off < sizeof(data); off += chunk) {
            size_t n = sizeof(data) - off < chunk ? sizeof(data) - off : chunk;
            icy_demux_feed(&demux, data + off, n, on_audio, on_meta, &out);
        }
        assert_int_equal(out.audio_len, 3);
        assert_memory_equal(out.audio, "xyz", 3);
        assert_int_equal(out.n_titles, 1);
        assert_string_equal(out.titles[0], "a");
    }
}

static void test_demux_null_callbacks(void **state)
{
    stream_build(METAINT, 4, 10, 5);
    icy_demux_init(&demux, METAINT);
    icy_demux_feed(&demux, st.data, st.len, NULL, NULL, NULL);
    assert_int_equal(demux.blocks, st.n_titles);
}

/* ---- icy_parse_meta ---- */

static void parse(const char *text, const char *want_title, const char *want_url)
{
    char title[ICY_FIELD_MAX + 1], url[ICY_FIELD_MAX + 1];
    icy_parse_meta(text, strlen(text), title, url);
    assert_string_equal(title, want_title);
    assert_string_equal(url, want_url);
}

static void test_parse_basic(void **state)
{
    parse("StreamTitle='Artist - Song';", "Artist - Song", "");
    parse("StreamTitle='Artist - Song';StreamUrl='http://x.org/';", "Artist - Song",
          "http://x.org/");
    parse("StreamUrl='http://x.org/';StreamTitle='T';", "T", "http://x.org/");
    parse("StreamTitle='';", "", "");
    parse("", "", "");
    parse("streamtitle='lower';STREAMURL='U';", "lower", "U");
    parse(" StreamTitle='spaced';", "spaced", "");
    parse("Other='x';StreamTitle='after other';", "after other", "");
}

static void test_parse_quotes(void **state)
{
    parse("StreamTitle='Guns N' Roses - x';", "Guns N' Roses - x", "");
    parse("StreamTitle='Guns N' Roses - x';StreamUrl='u';", "Guns N' Roses - x", "u");
    parse("StreamTitle='It's a ''quoted'' title';", "It's a ''quoted'' title", "");
    parse("StreamTitle='ends with quote'';", "ends with quote'", "");
    parse("StreamTitle='''';", "''", "");
}

static void test_parse_garbage(void **state)
{
    parse("StreamTitle='no closing", "no closing", "");
    parse("StreamTitle='no semicolon'", "no semicolon", "");
    parse("StreamTitle=no quotes;StreamUrl=u;", "no quotes", "u");
    parse("StreamTitle=", "", "");
    parse("StreamTitle='", "", "");
    parse("StreamTitle", "", "");
    parse("'", "", "");
    parse("';", "", "");
    parse("=;=;=';'", "", "");
    parse(";;;;", "", "");
    parse("StreamTitle;StreamTitle='ok';", "ok", "");
    /* A value that mentions a key is not a field. */
    parse("StreamTitle='a StreamUrl='fake' b';StreamUrl='real';", "a StreamUrl='fake' b", "real");
    /* The first occurrence wins. */
    parse("StreamTitle='one';StreamTitle='two';", "one", "");
}

static void test_parse_nul_padding(void **state)
{
    char title[ICY_FIELD_MAX + 1], url[ICY_FIELD_MAX + 1];
    char text[48] = "StreamTitle='padded';";
    icy_parse_meta(text, sizeof(text), title, url);
    assert_string_equal(title, "padded");
    /* Nothing after the first NUL is read as metadata. */
    char hidden[] = "StreamTitle='cut\0off';StreamUrl='u';";
    icy_parse_meta(hidden, sizeof(hidden) - 1, title, url);
    assert_string_equal(title, "cut");
    assert_string_equal(url, "");
    /* `len` bounds the text: no terminator needed. */
    const char nonterm[] = "StreamTitle='abc';XXXXXXXX";
    icy_parse_meta(nonterm, 18, title, url);
    assert_string_equal(title, "abc");
    icy_parse_meta(nonterm, 14, title, url);
    assert_string_equal(title, "a");
    icy_parse_meta(nonterm, 0, title, url);
    assert_string_equal(title, "");
}

static void test_parse_truncation(void **state)
{
    char text[2 * ICY_FIELD_MAX + 64], want[ICY_FIELD_MAX + 1];
    char title[ICY_FIELD_MAX + 1], url[ICY_FIELD_MAX + 1];

    memset(want, 'a', ICY_FIELD_MAX);
    want[ICY_FIELD_MAX] = '\0';
    snprintf(text, sizeof(text), "StreamTitle='%s%s';StreamUrl='u';", want, "bcdef");
    icy_parse_meta(text, strlen(text), title, url);
    assert_string_equal(title, want);
    assert_string_equal(url, "u");

    /* A two-byte UTF-8 character straddling the cut is dropped whole. */
    char body[ICY_FIELD_MAX + 16];
    memset(body, 'a', ICY_FIELD_MAX - 1);
    body[ICY_FIELD_MAX - 1] = '\xC3';
    body[ICY_FIELD_MAX] = '\xA9';
    strcpy(body + ICY_FIELD_MAX + 1, "tail");
    snprintf(text, sizeof(text), "StreamTitle='%s';", body);
    icy_parse_meta(text, strlen(text), title, url);
    assert_int_equal(strlen(title), ICY_FIELD_MAX - 1);
    assert_memory_equal(title, body, ICY_FIELD_MAX - 1);
}

static void test_parse_random_garbage(void **state)
{
    char text[600], title[ICY_FIELD_MAX + 1], url[ICY_FIELD_MAX + 1];
    const char alphabet[] = "StreamTitleUrl='; \0\xC3\xA9x";
    uint32_t seed = 42;
    for (int round = 0; round < 20000; round++) {
        size_t n = lcg(&seed) % sizeof(text);
        for (size_t i = 0; i < n; i++)
            text[i] = alphabet[lcg(&seed) % (sizeof(alphabet) - 1)];
        /* Exact-size heap copy so ASan sees any read past `len`. */
        char *heap = malloc(n ? n : 1);
        assert_non_null(heap);
        memcpy(heap, text, n);
        icy_parse_meta(heap, n, title, url);
        free(heap);
        assert_true(strlen(title) <= ICY_FIELD_MAX);
        assert_true(strlen(url) <= ICY_FIELD_MAX);
    }
}

/* ---- icy_meta_block ---- */

static void test_block_empty(void **state)
{
    uint8_t block[1 + ICY_META_MAX];
    memset(block, 0xAA, sizeof(block));
    assert_int_equal(icy_meta_block("", "", block), 1);
    assert_int_equal(block[0], 0);
    assert_int_equal(block[1], 0xAA);
}

static void check_block(const char *title, const char *url, const char *want_text)
{
    uint8_t block[1 + ICY_META_MAX];
    size_t text = strlen(want_text);
    size_t units = (text + 15) / 16;
    memset(block, 0xAA, sizeof(block));
    size_t n = icy_meta_block(title, url, block);
    assert_int_equal(n, 1 + units * 16);
    assert_int_equal(block[0], units);
    assert_memory_equal(block + 1, want_text, text);
    for (size_t i = 1 + text; i < n; i++)
        assert_int_equal(block[i], 0);
}

static void test_block_layout(void **state)
{
    check_block("Artist - Song", "", "StreamTitle='Artist - Song';");
    check_block("A", "http://x/", "StreamTitle='A';StreamUrl='http://x/';");
    check_block("", "http://x/", "StreamTitle='';StreamUrl='http://x/';");
    check_block("Guns N' Roses", "", "StreamTitle='Guns N' Roses';");
    /* 15 + 17 = 32 bytes of text: exactly two units, no padding. */
    check_block("12345678901234567", "", "StreamTitle='12345678901234567';");
    check_block("123456789012345678", "", "StreamTitle='123456789012345678';");
    check_block("1234567890123456", "", "StreamTitle='1234567890123456';");
}

static void test_block_cut(void **state)
{
    static char big[10000], url[10000];
    uint8_t block[1 + ICY_META_MAX + 1];
    char title[ICY_FIELD_MAX + 1], url_out[ICY_FIELD_MAX + 1];

    memset(big, 'x', sizeof(big) - 1);
    memset(url, 'u', 100);
    url[100] = '\0';
    block[1 + ICY_META_MAX] = 0x5A;
    size_t n = icy_meta_block(big, url, block);
    assert_int_equal(n, 1 + ICY_META_MAX);
    assert_int_equal(block[0], 255);
    assert_int_equal(block[1 + ICY_META_MAX], 0x5A); /* nothing written past the block */
    /* The syntax survives the cut: the text still ends with "';". */
    size_t text = strnlen((char *)block + 1, ICY_META_MAX);
    assert_true(text >= 2);
    assert_memory_equal(block + 1 + text - 2, "';", 2);
    icy_parse_meta((char *)block + 1, ICY_META_MAX, title, url_out);
    /* The title was cut to fit the block beside the url and the field syntax. */
    assert_true(strlen(title) > ICY_META_MAX - 200 && strlen(title) <= ICY_FIELD_MAX);
}

static void test_block_round_trip(void **state)
{
    static const char *titles[] = {
        "Artist - Song",
        "Guns N' Roses - Paradise City",
        "M\xC3\xB6tley Cr\xC3\xBC\x65 - Kickstart My Heart",
        "x",
        "1234567890123456",
        "Title with ; semicolon and = equals",
    };
    static const char *urls[] = {"", "http://example.org/a?b=c", ""};
    uint32_t seed = 77;
    st.len = st.audio_len = st.n_titles = 0;
    for (size_t k = 0; k < FC_ARRAY_LEN(titles) * FC_ARRAY_LEN(urls); k++) {
        stream_audio(METAINT, &seed);
        stream_meta(titles[k % FC_ARRAY_LEN(titles)], urls[k % FC_ARRAY_LEN(urls)]);
    }
    stream_audio(5, &seed);
    for (size_t chunk = 1; chunk < 20000; chunk = chunk * 3 + 1) {
        feed_chunks(METAINT, &chunk, 1);
        check_output();
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_demux_whole),
        cmocka_unit_test(test_demux_byte_by_byte),
        cmocka_unit_test(test_demux_random_chunks),
        cmocka_unit_test(test_demux_split_at_length_byte),
        cmocka_unit_test(test_demux_zero_length_blocks),
        cmocka_unit_test(test_demux_padding_only_block),
        cmocka_unit_test(test_demux_metaint_zero),
        cmocka_unit_test(test_demux_small_metaint),
        cmocka_unit_test(test_demux_null_callbacks),
        cmocka_unit_test(test_parse_basic),
        cmocka_unit_test(test_parse_quotes),
        cmocka_unit_test(test_parse_garbage),
        cmocka_unit_test(test_parse_nul_padding),
        cmocka_unit_test(test_parse_truncation),
        cmocka_unit_test(test_parse_random_garbage),
        cmocka_unit_test(test_block_empty),
        cmocka_unit_test(test_block_layout),
        cmocka_unit_test(test_block_cut),
        cmocka_unit_test(test_block_round_trip),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
