/*
 * level.h - per-frame loudness for the FRAME `level` field (docs/architecture.md §3.6).
 *
 * Each frame is decoded (libmpg123 for MP3, libfaad2 for ADTS) and its PCM split into four equal
 * parts; each part's RMS over all channels, in dBFS, rounded and clamped to -127..0, is one
 * level value. Edges use the levels to align encoders and to detect dead air.
 * One meter per input; not thread-safe; no callbacks.
 */
#ifndef FC_LEVEL_H
#define FC_LEVEL_H

#include <mpg123.h>
#include <neaacdec.h>
#include <stdbool.h>
#include <stdint.h>
#include "fc.h"

#define LEVEL_FLOOR_DB (-127) /* digital silence, or nothing decoded */

struct level_meter {
    enum fc_codec codec;     /* of the decoder set up */
    mpg123_handle *mh;       /* MP3 decoder, owned */
    NeAACDecHandle aac;      /* AAC decoder, owned */
    bool aac_ready;          /* NeAACDecInit() done */
    uint64_t errors;         /* frames that did not decode */
};

/* Set up for `codec`. FC_NOMEM / FC_IO if the decoder cannot be created. */
enum fc_err level_init(struct level_meter *lm, enum fc_codec codec);

/* Decode one whole frame (`len` bytes) and write its four levels (dBFS) to `out`. A frame that
 * does not decode (the first frames after a cut, whose bit reservoir is missing) reads as
 * LEVEL_FLOOR_DB. */
void level_frame(struct level_meter *lm, const uint8_t *frame, size_t len, int8_t out[4]);

/* Four levels from interleaved 16-bit PCM: `n` samples per channel, `channels` channels. */
void level_from_pcm(const int16_t *pcm, size_t n, unsigned channels, int8_t out[4]);

void level_free(struct level_meter *lm);

#endif
