/*
 * framer.c - streaming splitter of MP3 / ADTS byte streams into whole frames. See framer.h for
 * the contract; the header parsers live in mp3.c and adts.c.
 *
 * The buffer holds the unconsumed input buf[pos, len). A candidate frame at `pos` is accepted
 * only when what follows it is a consistent header, an ID3 tag, or (after framer_finish()) the end
 * of input: a lone 0xFFE sync inside garbage or a cut-short frame is then skipped, one byte at a
 * time, rather than handed out. Everything the framer waits for (a frame of at most
 * FRAMER_MAX_FRAME bytes plus the next header, or a 128-byte ID3v1 tag plus a header) fits in the
 * buffer, so FC_AGAIN from framer_next() always leaves framer_feed() room to make progress.
 */
#include <string.h>

#include "framer.h"

#define ID3V2_HEADER_BYTES 10 /* ID3v2.4 §3.1: "ID3", version (2), flags, size (4) */
#define ID3V2_FOOTER_BYTES 10 /* ID3v2.4 §3.4, present when flag bit 4 is set */
#define ID3V2_FLAG_FOOTER 0x10
#define ID3V1_BYTES 128 /* "TAG" + title, artist, album, year, comment, genre */

/* Outcome of looking at bytes that may be incomplete. */
enum probe {
    PROBE_NO,   /* it is not that */
    PROBE_YES,  /* it is that */
    PROBE_MORE, /* undecided until more input arrives */
};

enum fc_err frame_header_parse(enum fc_codec codec, const uint8_t *p, size_t len,
                               struct frame_info *info)
{
    switch (codec) {
    case FC_CODEC_MP3:
        return mp3_header_parse(p, len, info);
    case FC_CODEC_ADTS:
        return adts_header_parse(p, len, info);
    case FC_CODEC_NONE:
        break;
    }
    return FC_PROTO;
}

/* The sync bits that the first `avail` (< header size) bytes can show. */
static bool sync_prefix(enum fc_codec codec, const uint8_t *p, size_t avail)
{
    uint8_t mask = codec == FC_CODEC_ADTS ? 0xF0 : 0xE0; /* 12-bit vs 11-bit syncword */

    if (avail >= 1 && p[0] != 0xFF)
        return false;
    return avail < 2 || (p[1] & mask) == mask;
}

/* A frame header at `p`? MORE when too few bytes are there to tell but the sync so far fits. */
static enum probe header_probe(enum fc_codec codec, const uint8_t *p, size_t avail,
                               struct frame_info *info)
{
    enum fc_err err = frame_header_parse(codec, p, avail, info);

    if (err == FC_OK)
        return PROBE_YES;
    if (err == FC_AGAIN && sync_prefix(codec, p, avail))
        return PROBE_MORE;
    return PROBE_NO;
}

/*
 * Frames that may follow one another: same codec, sample rate and channel count. For MP3 the
 * sample rate also fixes the MPEG version (each version has its own three rates) and the parser
 * admits Layer III only, so equal rates mean equal version and layer.
 */
static bool consistent(const struct frame_info *a, const struct frame_info *b)
{
    return a->codec == b->codec && a->sample_rate == b->sample_rate && a->channels == b->channels &&
           a->samples == b->samples;
}

/* First `n` bytes of `p` equal to the first `n` of `magic` (n <= strlen(magic)). */
static bool prefix_is(const uint8_t *p, size_t n, const char *magic)
{
    return memcmp(p, magic, n) == 0;
}

/*
 * An ID3v2 tag header at `p` (ID3v2.4 §3.1: version bytes are never 0xFF, the size is four
 * syncsafe bytes). On YES `*total` is the whole tag's size, footer included. At end of input a
 * truncated header is NO.
 */
static enum probe id3v2_probe(const uint8_t *p, size_t avail, bool eof, uint32_t *total)
{
    size_t n = avail < ID3V2_HEADER_BYTES ? avail : ID3V2_HEADER_BYTES;

    if (!prefix_is(p, n < 3 ? n : 3, "ID3"))
        return PROBE_NO;
    if ((n > 3 && p[3] == 0xFF) || (n > 4 && p[4] == 0xFF))
        return PROBE_NO;
    for (size_t i = 6; i < n; i++)
        if (p[i] & 0x80)
            return PROBE_NO;
    if (n < ID3V2_HEADER_BYTES)
        return eof ? PROBE_NO : PROBE_MORE;

    uint32_t size = ((uint32_t)p[6] << 21) | ((uint32_t)p[7] << 14) | ((uint32_t)p[8] << 7) | p[9];
    *total = ID3V2_HEADER_BYTES + size + ((p[5] & ID3V2_FLAG_FOOTER) ? ID3V2_FOOTER_BYTES : 0);
    return PROBE_YES;
}

/*
 * A 128-byte ID3v1 tag at `p`, believed only when a frame header, an ID3v2 tag or the end of
 * input follows it: "TAG" alone is too common in garbage. Never MORE once `eof` is set.
 */
static enum probe id3v1_probe(enum fc_codec codec, const uint8_t *p, size_t avail, bool eof)
{
    struct frame_info next;
    uint32_t total;

    if (!prefix_is(p, avail < 3 ? avail : 3, "TAG"))
        return PROBE_NO;
    if (avail < ID3V1_BYTES)
        return eof ? PROBE_NO : PROBE_MORE;

    const uint8_t *q = p + ID3V1_BYTES;
    size_t qa = avail - ID3V1_BYTES;
    enum probe r = header_probe(codec, q, qa, &next);
    if (r == PROBE_NO)
        r = id3v2_probe(q, qa, false, &total);
    if (r == PROBE_MORE && eof)
        return PROBE_YES; /* the tag ends the input, or only a stub of a header follows it */
    return r;
}

/*
 * Does what follows the candidate frame `cand` (starting at `q`, `qa` bytes available) vouch
 * for it? A consistent header or an ID3 tag does; at end of input, running out of bytes does
 * too. Never MORE once f->eof is set.
 */
static enum probe successor_probe(const struct framer *f, const struct frame_info *cand,
                                  const uint8_t *q, size_t qa)
{
    struct frame_info next;
    uint32_t total;

    switch (header_probe(f->codec, q, qa, &next)) {
    case PROBE_YES:
        return consistent(cand, &next) ? PROBE_YES : PROBE_NO;
    case PROBE_MORE:
        return f->eof ? PROBE_YES : PROBE_MORE;
    case PROBE_NO:
        break;
    }
    enum probe r = id3v2_probe(q, qa, false, &total);
    if (r == PROBE_MORE)
        return f->eof ? PROBE_YES : PROBE_MORE;
    if (r == PROBE_YES)
        return PROBE_YES;
    return id3v1_probe(f->codec, q, qa, f->eof);
}

/* Discard a `total`-byte tag at pos; what is not buffered yet is dropped by framer_feed(). */
static void skip_tag(struct framer *f, uint32_t total)
{
    size_t avail = f->len - f->pos;

    f->tags_skipped++;
    if (total <= avail) {
        f->pos += total;
        return;
    }
    f->skip = total - (uint32_t)avail;
    f->pos = f->len = 0;
}

void framer_init(struct framer *f, enum fc_codec codec)
{
    /* The buffer is left as it is: only buf[pos, len) is ever read. */
    f->codec = codec;
    f->len = 0;
    f->pos = 0;
    f->skip = 0;
    f->eof = false;
    memset(&f->last, 0, sizeof f->last);
    f->have_last = false;
    f->frames = 0;
    f->garbage_bytes = 0;
    f->tags_skipped = 0;
    f->info_frames_dropped = 0;
}

size_t framer_feed(struct framer *f, const uint8_t *data, size_t len)
{
    size_t taken = 0;

    /* skip_tag() leaves the buffer empty whenever it sets `skip`, so tag bytes still to come are
     * the very next input bytes and never need copying: tags bigger than the buffer are fine. */
    if (f->skip > 0) {
        size_t n = len < f->skip ? len : f->skip;
        f->skip -= (uint32_t)n;
        data += n;
        len -= n;
        taken = n;
    }
    if (len == 0)
        return taken;

    if (f->pos == f->len) {
        f->pos = f->len = 0;
    } else if (FRAMER_BUF_BYTES - f->len < len && f->pos > 0) {
        memmove(f->buf, f->buf + f->pos, f->len - f->pos);
        f->len -= f->pos;
        f->pos = 0;
    }
    size_t room = FRAMER_BUF_BYTES - f->len;
    size_t n = len < room ? len : room;
    memcpy(f->buf + f->len, data, n);
    f->len += n;
    return taken + n;
}

void framer_finish(struct framer *f)
{
    f->eof = true;
}

enum fc_err framer_next(struct framer *f, const uint8_t **frame, struct frame_info *info)
{
    for (;;) {
        const uint8_t *p = f->buf + f->pos;
        size_t avail = f->len - f->pos;
        struct frame_info cand;
        uint32_t total;
        enum probe r;

        if (avail == 0)
            return FC_AGAIN;

        r = header_probe(f->codec, p, avail, &cand);
        if (r == PROBE_MORE && !f->eof)
            return FC_AGAIN;
        if (r == PROBE_YES && cand.len > avail && !f->eof)
            return FC_AGAIN;
        if (r == PROBE_YES && cand.len <= avail) {
            r = successor_probe(f, &cand, p + cand.len, avail - cand.len);
            if (r == PROBE_MORE)
                return FC_AGAIN;
            /* Junk after a frame condemns it even at the end of input: by then the junk may
             * already have been seen (and the frame skipped) before framer_finish(), and the
             * outcome must not depend on where the chunks happened to end. */
            if (r == PROBE_YES) {
                f->pos += cand.len;
                if (f->codec == FC_CODEC_MP3 && mp3_is_info_frame(p, cand.len)) {
                    f->info_frames_dropped++;
                    continue;
                }
                f->last = cand;
                f->have_last = true;
                f->frames++;
                *frame = p;
                *info = cand;
                return FC_OK;
            }
        } else if (r == PROBE_NO) {
            r = id3v2_probe(p, avail, f->eof, &total);
            if (r == PROBE_MORE)
                return FC_AGAIN;
            if (r == PROBE_YES) {
                skip_tag(f, total);
                continue;
            }
            r = id3v1_probe(f->codec, p, avail, f->eof);
            if (r == PROBE_MORE)
                return FC_AGAIN;
            if (r == PROBE_YES) {
                f->tags_skipped++;
                f->pos += ID3V1_BYTES;
                continue;
            }
        }
        /* Not a frame start: resynchronise one byte further on. */
        f->pos++;
        f->garbage_bytes++;
    }
}
