/*
 * fuzz_framer.c - libFuzzer target for the MP3/ADTS framer and header parsers.
 *
 * The input (after its first byte) is fed to an MP3 framer and an ADTS framer in chunks whose
 * sizes come from a small generator seeded by the first byte, so chunk edges land everywhere.
 * Every frame handed out must re-parse with frame_header_parse() to the same length, lie inside
 * the framer's buffer, and be no longer than FRAMER_MAX_FRAME; bytes out never exceed bytes in.
 */
#include <stdlib.h>

#include "framer.h"

#include "fuzz_check.h"

static struct framer framers[2]; /* 32 KiB each: keep them off the stack */

static uint64_t drain(struct framer *f)
{
    const uint8_t *frame;
    struct frame_info info, again;
    uint64_t bytes = 0;

    while (framer_next(f, &frame, &info) == FC_OK) {
        CHECK(info.len > 0 && info.len <= FRAMER_MAX_FRAME);
        CHECK(frame >= f->buf && frame + info.len <= f->buf + FRAMER_BUF_BYTES);
        CHECK(frame_header_parse(f->codec, frame, info.len, &again) == FC_OK);
        CHECK(again.len == info.len && again.sample_rate == info.sample_rate);
        CHECK(again.channels == info.channels && info.codec == f->codec);
        if (f->codec == FC_CODEC_MP3) {
            CHECK(!mp3_is_info_frame(frame, info.len));
            CHECK(mp3_main_data_begin(frame, info.len) >= 0);
        }
        bytes += info.len;
    }
    return bytes;
}

static void run(struct framer *f, enum fc_codec codec, uint8_t seed, const uint8_t *data,
                size_t size)
{
    uint32_t state = seed * 2654435761u + 1;
    uint64_t out = 0;

    framer_init(f, codec);
    for (size_t off = 0; off < size;) {
        /* Mostly small chunks, now and then a large one that fills the buffer. */
        state = state * 1103515245u + 12345u;
        size_t chunk = (state >> 16) % 8 == 0 ? 40000 : 1 + (state >> 16) % (seed + 1u);
        size_t n = size - off < chunk ? size - off : chunk;
        size_t took = framer_feed(f, data + off, n);
        CHECK(took <= n);
        off += took;
        out += drain(f);
        CHECK(took > 0 || n == 0);
    }
    framer_finish(f);
    out += drain(f);
    CHECK(out <= size);
    CHECK(f->garbage_bytes <= size);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct frame_info info;

    if (size < 1)
        return 0;
    /* The parsers alone, on the raw bytes: must not read past `size`. */
    (void)mp3_header_parse(data, size, &info);
    (void)adts_header_parse(data, size, &info);
    (void)mp3_is_info_frame(data, size);
    (void)mp3_main_data_begin(data, size);

    run(&framers[0], FC_CODEC_MP3, data[0], data + 1, size - 1);
    run(&framers[1], FC_CODEC_ADTS, data[0], data + 1, size - 1);
    return 0;
}
