/* clip.c - see clip.h. */
#include "clip.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "framer.h"
#include "icy.h"

static const char *codec_name(enum fc_codec c)
{
    return c == FC_CODEC_ADTS ? "aac" : "mp3";
}

/* Frame `data` as `codec` into c->raw; false if it is not that codec (or mixes formats). */
static bool frame_as(struct clip *c, enum fc_codec codec, const uint8_t *data, size_t len,
                     const char **why)
{
    static struct framer f; /* 32 KiB: off the stack; loop thread only */
    uint64_t samples = 0;
    size_t fed = 0;
    framer_init(&f, codec);
    c->raw_len = c->frames = 0;
    for (;;) {
        const uint8_t *frame;
        struct frame_info fi;
        if (framer_next(&f, &frame, &fi) != FC_OK) {
            if (fed == len && f.eof)
                break;
            if (fed == len) {
                framer_finish(&f);
                continue;
            }
            size_t took = framer_feed(&f, data + fed, len - fed);
            if (took == 0)
                break; /* the framer's buffer stays full: not a stream it can split */
            fed += took;
            continue;
        }
        if (c->frames == 0) {
            c->sample_rate = fi.sample_rate;
            c->channels = fi.channels;
        } else if (fi.sample_rate != c->sample_rate || fi.channels != c->channels) {
            *why = "frames of different sample rates or channel counts";
            return false;
        }
        memcpy(c->raw + c->raw_len, frame, fi.len); /* frames never outgrow their input */
        c->raw_len += fi.len;
        c->frames++;
        samples += fi.samples;
    }
    if (c->frames == 0 || f.garbage_bytes * 100 > (uint64_t)len * CLIP_GARBAGE_PCT) {
        *why = "not MP3 or ADTS audio";
        return false;
    }
    c->codec = codec;
    c->seconds = (double)samples / c->sample_rate;
    return true;
}

/* The ICY rendering: a block after every `metaint` audio bytes while more audio follows. */
static bool render_icy(struct clip *c, uint32_t metaint)
{
    uint8_t first[1 + ICY_META_MAX];
    size_t first_len = icy_meta_block(c->name, "", first);
    size_t blocks = c->raw_len / metaint + 1;
    if (!(c->icy = malloc(c->raw_len + blocks * first_len)))
        return false;
    uint32_t off = 0, left = metaint;
    bool titled = false;
    c->icy_len = 0;
    while (off < c->raw_len) {
        uint32_t take = c->raw_len - off < left ? c->raw_len - off : left;
        memcpy(c->icy + c->icy_len, c->raw + off, take);
        c->icy_len += take;
        off += take;
        left -= take;
        if (left > 0 || off == c->raw_len)
            continue;
        /* The name once; "unchanged" after it, as for a live title (docs §7.5). */
        memcpy(c->icy + c->icy_len, titled ? (const uint8_t *)"" : first, titled ? 1 : first_len);
        c->icy_len += titled ? 1 : (uint32_t)first_len;
        titled = true;
        left = metaint;
    }
    c->icy_left = left; /* 0 when the clip ends exactly where a block is due */
    return true;
}

enum fc_err clip_from_bytes(const uint8_t *data, size_t len, const char *name, const char *src,
                            uint32_t metaint, struct clip **out, const char **why)
{
    *out = NULL;
    if (len > CLIP_MAX_BYTES) {
        *why = "larger than 8 MiB";
        return FC_LIMIT;
    }
    struct clip *c = calloc(1, sizeof(*c));
    if (!c || !(c->raw = malloc(len ? len : 1))) {
        free(c);
        *why = "out of memory";
        return FC_NOMEM;
    }
    c->refs = 1;
    snprintf(c->name, sizeof(c->name), "%s", name);
    snprintf(c->src, sizeof(c->src), "%s", src);
    const char *why_mp3 = "", *why_adts = "";
    if (!frame_as(c, FC_CODEC_MP3, data, len, &why_mp3) &&
        !frame_as(c, FC_CODEC_ADTS, data, len, &why_adts)) {
        *why = strcmp(why_mp3, "not MP3 or ADTS audio") != 0 ? why_mp3 : why_adts;
        clip_unref(c);
        return FC_PROTO;
    }
    if (!render_icy(c, metaint)) {
        clip_unref(c);
        *why = "out of memory";
        return FC_NOMEM;
    }
    *out = c;
    return FC_OK;
}

enum fc_err clip_load_file(const char *path, uint32_t metaint, struct clip **out,
                           const char **why)
{
    enum fc_err err = FC_IO;
    uint8_t *data = NULL;
    *out = NULL;
    *why = "cannot read";
    FILE *f = fopen(path, "rb");
    if (!f)
        return FC_IO;
    if (fseek(f, 0, SEEK_END) != 0)
        goto out;
    long size = ftell(f);
    if (size < 0 || fseek(f, 0, SEEK_SET) != 0)
        goto out;
    if ((unsigned long)size > CLIP_MAX_BYTES) {
        *why = "larger than 8 MiB";
        err = FC_LIMIT;
        goto out;
    }
    if (!(data = malloc((size_t)size + 1)) || fread(data, 1, (size_t)size, f) != (size_t)size)
        goto out;
    char name[CLIP_NAME_MAX + 1];
    const char *base = strrchr(path, '/') ? strrchr(path, '/') + 1 : path;
    snprintf(name, sizeof(name), "%s", base);
    char *dot = strrchr(name, '.');
    if (dot && dot != name)
        *dot = '\0';
    err = clip_from_bytes(data, (size_t)size, name, path, metaint, out, why);
out:
    free(data);
    fclose(f);
    return err;
}

const char *clip_mismatch(const struct clip *c, enum fc_codec codec, uint32_t rate,
                          uint8_t channels, char *buf, size_t n)
{
    if (c->codec != codec)
        snprintf(buf, n, "codec %s, the mount's %s", codec_name(c->codec), codec_name(codec));
    else if (c->sample_rate != rate)
        snprintf(buf, n, "sample rate %u Hz, the mount's %u", c->sample_rate, rate);
    else if (c->channels != channels)
        snprintf(buf, n, "%u channels, the mount's %u", c->channels, channels);
    else
        return NULL;
    return buf;
}

struct clip *clip_ref(struct clip *c)
{
    c->refs++;
    return c;
}

void clip_unref(struct clip *c)
{
    if (!c || --c->refs > 0)
        return;
    free(c->raw);
    free(c->icy);
    free(c);
}
