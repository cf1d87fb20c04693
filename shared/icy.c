/*
 * icy.c - ICY in-band metadata: demultiplexer, StreamTitle/StreamUrl parser, block builder.
 * See icy.h for the convention (Shoutcast/Icecast practice; there is no formal spec).
 *
 * The demultiplexer is a byte-exact state machine that keeps no audio: it can be fed chunks
 * of any size, split anywhere (the length byte may arrive alone, a block may span many reads),
 * and hands audio runs straight out of the caller's buffer.
 */
#include "icy.h"

#include <string.h>

#define ICY_BLOCK_UNIT 16 /* the length byte counts 16-byte units */
#define ICY_KEY_TITLE "StreamTitle"
#define ICY_KEY_URL "StreamUrl"

void icy_demux_init(struct icy_demux *d, uint32_t metaint)
{
    d->metaint = metaint;
    d->audio_left = metaint;
    d->meta_left = 0;
    d->in_meta = false;
    d->meta_len = 0;
    d->meta[0] = '\0';
    d->blocks = 0;
}

static void finish_block(struct icy_demux *d, icy_meta_fn meta, void *ctx)
{
    char title[ICY_FIELD_MAX + 1];
    char url[ICY_FIELD_MAX + 1];

    d->meta[d->meta_len] = '\0';
    d->in_meta = false;
    d->audio_left = d->metaint;
    d->blocks++;
    icy_parse_meta(d->meta, d->meta_len, title, url);
    if (meta)
        meta(ctx, title, url);
}

void icy_demux_feed(struct icy_demux *d, const uint8_t *data, size_t len, icy_audio_fn audio,
                    icy_meta_fn meta, void *ctx)
{
    if (d->metaint == 0) {
        if (len > 0 && audio)
            audio(ctx, data, len);
        return;
    }
    while (len > 0) {
        if (d->in_meta) {
            size_t n = len < d->meta_left ? len : d->meta_left;
            memcpy(d->meta + d->meta_len, data, n);
            d->meta_len += (uint32_t)n;
            d->meta_left -= (uint32_t)n;
            data += n;
            len -= n;
            if (d->meta_left == 0)
                finish_block(d, meta, ctx);
        } else if (d->audio_left > 0) {
            size_t n = len < d->audio_left ? len : d->audio_left;
            if (audio)
                audio(ctx, data, n);
            d->audio_left -= (uint32_t)n;
            data += n;
            len -= n;
        } else {
            /* The length byte; L = 0 ("unchanged") is followed directly by audio. */
            uint32_t units = *data++;
            len--;
            if (units == 0) {
                d->audio_left = d->metaint;
            } else {
                d->in_meta = true;
                d->meta_len = 0;
                d->meta_left = units * ICY_BLOCK_UNIT;
            }
        }
    }
}

/* Bytes of `s` (length `n`) that fit in `max`, not splitting a UTF-8 sequence. */
static size_t fit_utf8(const char *s, size_t n, size_t max)
{
    if (n <= max)
        return n;
    size_t k = max;
    while (k > 0 && ((uint8_t)s[k] & 0xC0) == 0x80 && max - k < 3)
        k--;
    return ((uint8_t)s[k] & 0xC0) == 0x80 ? max : k;
}

/* Copy `n` bytes of `src` into `dst`, truncated to ICY_FIELD_MAX bytes, NUL-terminated. */
static void copy_field(char dst[ICY_FIELD_MAX + 1], const char *src, size_t n)
{
    n = fit_utf8(src, n, ICY_FIELD_MAX);
    memcpy(dst, src, n);
    dst[n] = '\0';
}

static bool key_is(const char *k, size_t klen, const char *want)
{
    size_t n = strlen(want);
    if (klen != n)
        return false;
    for (size_t i = 0; i < n; i++) {
        char a = k[i], b = want[i];
        if (a >= 'A' && a <= 'Z')
            a = (char)(a - 'A' + 'a');
        if (b >= 'A' && b <= 'Z')
            b = (char)(b - 'A' + 'a');
        if (a != b)
            return false;
    }
    return true;
}

void icy_parse_meta(const char *text, size_t len, char title[ICY_FIELD_MAX + 1],
                    char url[ICY_FIELD_MAX + 1])
{
    bool have_title = false, have_url = false;
    size_t i = 0;

    title[0] = url[0] = '\0';
    /* The text ends at the NUL padding; nothing after it is metadata. */
    const char *nul = memchr(text, '\0', len);
    if (nul)
        len = (size_t)(nul - text);

    /* Fields are walked in order, so a value that happens to contain "StreamUrl='" is not
     * mistaken for a field. */
    while (i < len) {
        while (i < len && (text[i] == ';' || text[i] == ' ' || text[i] == '\t' || text[i] == '\r' ||
                           text[i] == '\n'))
            i++;
        size_t key = i;
        while (i < len && text[i] != '=' && text[i] != ';')
            i++;
        if (i >= len)
            break;
        if (text[i] == ';')
            continue; /* a key without '=': skip it */
        size_t key_len = i - key;
        i++; /* '=' */

        size_t val, val_end;
        if (i < len && text[i] == '\'') {
            /* Quoted: the value ends at the first "';" - a quote followed by anything else
             * (Guns N' Roses) is part of the title. Unterminated: up to the end, minus a
             * final quote. */
            val = ++i;
            val_end = len;
            for (size_t j = val; j + 1 < len; j++) {
                if (text[j] == '\'' && text[j + 1] == ';') {
                    val_end = j;
                    break;
                }
            }
            if (val_end == len) {
                if (val_end > val && text[val_end - 1] == '\'')
                    val_end--;
                i = len;
            } else {
                i = val_end + 2;
            }
        } else {
            /* Unquoted (non-conforming servers): up to the next ';'. */
            val = i;
            while (i < len && text[i] != ';')
                i++;
            val_end = i;
        }

        if (!have_title && key_is(text + key, key_len, ICY_KEY_TITLE)) {
            copy_field(title, text + val, val_end - val);
            have_title = true;
        } else if (!have_url && key_is(text + key, key_len, ICY_KEY_URL)) {
            copy_field(url, text + val, val_end - val);
            have_url = true;
        }
    }
}

static size_t put(uint8_t *out, size_t at, const char *s, size_t n)
{
    memcpy(out + at, s, n);
    return at + n;
}

size_t icy_meta_block(const char *title, const char *url, uint8_t *out)
{
    static const char title_open[] = ICY_KEY_TITLE "='";
    static const char url_open[] = ICY_KEY_URL "='";
    static const char close[] = "';";
    size_t tlen = strlen(title), ulen = strlen(url);

    if (tlen == 0 && ulen == 0) {
        out[0] = 0;
        return 1;
    }
    /* Cut the values, not the syntax: the closing "';" must survive or listeners' parsers
     * would run the title into the padding. */
    size_t overhead = (sizeof(title_open) - 1) + (sizeof(close) - 1);
    if (ulen > 0)
        overhead += (sizeof(url_open) - 1) + (sizeof(close) - 1);
    size_t room = ICY_META_MAX - overhead;
    tlen = fit_utf8(title, tlen, room);
    ulen = fit_utf8(url, ulen, room - tlen);

    size_t at = 1;
    at = put(out, at, title_open, sizeof(title_open) - 1);
    at = put(out, at, title, tlen);
    at = put(out, at, close, sizeof(close) - 1);
    if (ulen > 0) {
        at = put(out, at, url_open, sizeof(url_open) - 1);
        at = put(out, at, url, ulen);
        at = put(out, at, close, sizeof(close) - 1);
    }
    size_t text = at - 1;
    size_t units = (text + ICY_BLOCK_UNIT - 1) / ICY_BLOCK_UNIT;
    memset(out + at, 0, units * ICY_BLOCK_UNIT - text);
    out[0] = (uint8_t)units;
    return 1 + units * ICY_BLOCK_UNIT;
}
