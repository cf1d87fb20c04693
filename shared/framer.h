/*
 * framer.h - streaming splitter of MP3 and ADTS byte streams into whole frames.
 *
 * Accepts arbitrary byte chunks (as they come off a socket or file), resynchronises after garbage,
 * accepts a frame only when the header that follows it also parses and agrees (same codec, sample
 * rate, channel count, MPEG version / layer) or at end of input, skips ID3v2 tags (anywhere in the
 * stream, ID3v2.4 §3.1) and ID3v1 tags ("TAG", 128 bytes), and drops Xing/Info/VBRI frames.
 *
 * Specs: MP3 headers per ISO/IEC 11172-3 §2.4.2.3 and 13818-3 §2.4.2.3 (plus the MPEG 2.5
 * extension); ADTS per ISO/IEC 13818-7 §6.2 / 14496-3 §1.A.2. Free-format bitrate (index 0) and
 * reserved values (bitrate index 15, sample-rate index 3, layer 00, MPEG version 01, ADTS
 * sampling_frequency_index >= 13, ADTS frames with raw_data_blocks != 0 or length < header) are
 * rejected as "not a header": the framer resynchronises past them.
 *
 * Memory: a `struct framer` is fixed-size (no allocation); one frame is at most FRAMER_MAX_FRAME
 * bytes. Loop rules: not thread-safe; one framer per input. No callbacks.
 */
#ifndef FC_FRAMER_H
#define FC_FRAMER_H

#include <stdbool.h>
#include "fc.h"

#define FRAMER_MAX_FRAME 8192          /* ADTS max is 8191 (13-bit length); MP3 max 2881 */
#define FRAMER_BUF_BYTES (4 * FRAMER_MAX_FRAME)

struct framer {
    enum fc_codec codec;          /* FC_CODEC_MP3 or FC_CODEC_ADTS, fixed at init */
    uint8_t buf[FRAMER_BUF_BYTES];/* unconsumed input */
    size_t len;                   /* bytes valid in buf */
    size_t pos;                   /* start of unconsumed bytes in buf */
    uint32_t skip;                /* bytes of an ID3 tag still to discard */
    bool eof;                     /* framer_finish() was called: last frame needs no successor */
    struct frame_info last;       /* the last accepted frame's header (for consistency checks) */
    bool have_last;               /* `last` is valid */
    uint64_t frames;              /* frames returned */
    uint64_t garbage_bytes;       /* bytes skipped while resynchronising */
    uint64_t tags_skipped;        /* ID3v2/ID3v1 tags skipped */
    uint64_t info_frames_dropped; /* Xing/Info/VBRI frames dropped */
};

/* Prepare `f` for a stream of `codec` (FC_CODEC_MP3 or FC_CODEC_ADTS). */
void framer_init(struct framer *f, enum fc_codec codec);

/*
 * Copy up to `len` bytes of input into the framer. Returns the number of bytes taken, which is
 * less than `len` when the internal buffer is full: call framer_next() until FC_AGAIN, then feed
 * the rest. Never fails.
 */
size_t framer_feed(struct framer *f, const uint8_t *data, size_t len);

/*
 * Return the next whole frame. On FC_OK `*frame` points at `info->len` bytes inside the framer,
 * valid until the next framer_feed()/framer_next()/framer_init() call. FC_AGAIN: more input is
 * needed (or, after framer_finish(), the input is exhausted). Never returns other values.
 */
enum fc_err framer_next(struct framer *f, const uint8_t **frame, struct frame_info *info);

/* Mark end of input: a final frame with no following header is then accepted. */
void framer_finish(struct framer *f);

/*
 * Parse one MP3 (Layer III only) frame header at `p` (needs 4 bytes). FC_OK fills `info`;
 * FC_AGAIN if len < 4; FC_PROTO if it is not a valid Layer III header (incl. free format and
 * reserved values). ISO/IEC 11172-3 §2.4.2.3, 13818-3 §2.4.2.3.
 */
enum fc_err mp3_header_parse(const uint8_t *p, size_t len, struct frame_info *info);

/*
 * True when the MP3 frame `p` (whole frame, `len` bytes) is a Xing, Info or VBRI tag frame
 * rather than audio.
 */
bool mp3_is_info_frame(const uint8_t *p, size_t len);

/*
 * main_data_begin of an MP3 Layer III frame (bit reservoir back-pointer, bytes): 9 bits for
 * MPEG-1, 8 bits for MPEG-2/2.5, read after the header and the 16-bit CRC when protection_bit
 * is 0. ISO/IEC 11172-3 §2.4.1.7. Returns -1 if the frame is too short or not a valid header.
 */
int mp3_main_data_begin(const uint8_t *p, size_t len);

/*
 * Parse one ADTS header at `p` (needs 7 bytes). FC_OK fills `info` (samples = 1024);
 * FC_AGAIN if len < 7; FC_PROTO if invalid or reserved. ISO/IEC 13818-7 §6.2.
 */
enum fc_err adts_header_parse(const uint8_t *p, size_t len, struct frame_info *info);

/* Dispatch on `codec` to mp3_header_parse() or adts_header_parse(). */
enum fc_err frame_header_parse(enum fc_codec codec, const uint8_t *p, size_t len,
                               struct frame_info *info);

#endif
