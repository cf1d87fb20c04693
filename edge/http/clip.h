/*
 * clip.h - a preroll clip in memory (docs/architecture.md §7.14): an MP3 or ADTS file (or an ad
 * server's media file) split into whole frames with the same framer as any source
 * (shared/framer.h: ID3 tags and Xing/Info frames dropped), held twice, as frames back to back
 * for plain listeners and with ICY blocks every --metaint bytes for ICY listeners (the first
 * block carries the clip's name, later ones are "unchanged"). Both renderings are the same for
 * every listener, so listeners send straight from them (writev) and hold only a reference.
 * Loop thread only (the reference count is not atomic); no callbacks.
 */
#ifndef FC_CLIP_H
#define FC_CLIP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "fc.h"

#define CLIP_MAX_BYTES (8u << 20)  /* a clip's bytes (8 MiB: ~8 min of 128 kbit/s) */
#define CLIP_GARBAGE_PCT 1         /* more than this % of a file that is not frames or tags:
                                      not an audio file */
#define CLIP_NAME_MAX 255          /* bytes of its name (the ICY title during the clip) */
#define CLIP_SRC_MAX 1024          /* bytes of its file path or URL kept, for messages */

struct clip {
    uint32_t refs;                 /* holders: its config or cache entry, listeners sending it */
    char name[CLIP_NAME_MAX + 1];  /* ICY title during the clip */
    char src[CLIP_SRC_MAX + 1];    /* file path or URL (messages, JSON) */
    enum fc_codec codec;           /* FC_CODEC_MP3 or FC_CODEC_ADTS */
    uint32_t sample_rate;          /* Hz, of every frame */
    uint8_t channels;              /* of every frame */
    uint32_t frames;
    double seconds;                /* audio duration (samples / rate) */
    uint8_t *raw;                  /* the frames back to back, owned */
    uint32_t raw_len;
    uint8_t *icy;                  /* the same with ICY blocks every `metaint` bytes, owned */
    uint32_t icy_len;
    uint32_t icy_left;             /* audio bytes to the next ICY block after the clip
                                      (0: the clip ends exactly where a block is due) */
};

/*
 * A clip from `len` bytes of a file's contents (copied): MP3 tried first, then ADTS; `name`
 * and `src` are copied (truncated). `metaint` is the ICY interval (--metaint). FC_OK with *out
 * holding one reference; FC_PROTO with *why ("not MP3 or ADTS audio", "frames of different
 * sample rates or channel counts") when the bytes are not one audio stream (no frame, or more
 * than CLIP_GARBAGE_PCT of them garbage); FC_LIMIT over CLIP_MAX_BYTES; FC_NOMEM.
 */
enum fc_err clip_from_bytes(const uint8_t *data, size_t len, const char *name, const char *src,
                            uint32_t metaint, struct clip **out, const char **why);

/* clip_from_bytes on the file at `path`, named by its base name without the extension. FC_IO
 * (errno set, *why "cannot read") if unreadable; the rest as clip_from_bytes. */
enum fc_err clip_load_file(const char *path, uint32_t metaint, struct clip **out,
                           const char **why);

/* NULL if `c` can be played before a mount of `codec`, `rate` Hz, `channels`; else a
 * description of the difference written into buf ("sample rate 48000 Hz, the mount's 44100"). */
const char *clip_mismatch(const struct clip *c, enum fc_codec codec, uint32_t rate,
                          uint8_t channels, char *buf, size_t n);

/* Another reference to `c`; clip_unref drops one and frees the clip with the last. */
struct clip *clip_ref(struct clip *c);
void clip_unref(struct clip *c);

#endif
