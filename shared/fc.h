/*
 * fc.h - framecast's common vocabulary: error values, codecs, frame facts.
 *
 * Every module returns an `enum fc_err`; results travel through out-parameters.
 * FC_AGAIN is the normal "need more input / would block" answer, not an error.
 */
#ifndef FC_H
#define FC_H

#include <stddef.h>
#include <stdint.h>

enum fc_err {
    FC_OK = 0, /* success */
    FC_AGAIN,  /* need more input, or the operation would block: try later */
    FC_EOF,    /* the peer or input ended */
    FC_NOMEM,  /* an allocation failed */
    FC_PROTO,  /* input violates the protocol or format */
    FC_AUTH,   /* a MAC or password did not verify */
    FC_LIMIT,  /* a fixed cap (buffer, count, size) was reached */
    FC_IO,     /* a system call failed; errno holds the reason */
};

/* Returns a static, human-readable name for `err` ("protocol error", ...). Never NULL. */
const char *fc_strerror(enum fc_err err);

/* Codec numbers as carried in wire FRAME messages (docs/architecture.md §2.1). */
enum fc_codec {
    FC_CODEC_NONE = 0,
    FC_CODEC_MP3 = 1,  /* MPEG-1/2/2.5 Layer III, ISO/IEC 11172-3 and 13818-3 */
    FC_CODEC_ADTS = 2, /* AAC in ADTS framing, ISO/IEC 13818-7 §6.2 / 14496-3 §1.A.2 */
};

/* What one frame header says. */
struct frame_info {
    enum fc_codec codec;  /* which header syntax was parsed */
    uint32_t sample_rate; /* Hz */
    uint8_t channels;     /* 1 or 2 for MP3; 1..8 for ADTS (channel_configuration, 7 -> 8) */
    uint16_t samples;     /* PCM samples per channel in this frame (1152, 576, 1024, ...) */
    uint32_t len;         /* bytes of the whole frame, header included */
    uint32_t bitrate;     /* bits/s from the header (MP3), or len*8*rate/samples (ADTS) */
};

/* Recover the struct that embeds `ptr` as `member` (STYLE.md: structs own their watchers). */
#define container_of(ptr, type, member) ((type *)((char *)(ptr)-offsetof(type, member)))

#define FC_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

#endif
