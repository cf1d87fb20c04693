/*
 * mp3.c - MPEG-1/2/2.5 Layer III frame headers: parse, tell tag frames from audio, read the bit
 * reservoir back-pointer. ISO/IEC 11172-3 §2.4.2.3, ISO/IEC 13818-3 §2.4.2.3, and the MPEG 2.5
 * extension (Fraunhofer; version bits 00). Declarations are in framer.h.
 */
#include <string.h>

#include "framer.h"

#define MP3_HEADER_BYTES 4 /* 32-bit frame header, 11172-3 §2.4.1.3 */
#define MP3_CRC_BYTES 2    /* 16-bit crc_check when protection_bit == 0, §2.4.1.4 */

/* Version field values (bits 20..19 of the header; bit 20 is the MPEG 2.5 extension). */
#define MP3_VERSION_25 0       /* MPEG 2.5 (unofficial extension) */
#define MP3_VERSION_RESERVED 1 /* reserved */
#define MP3_VERSION_2 2        /* ISO/IEC 13818-3 (LSF) */
#define MP3_VERSION_1 3        /* ISO/IEC 11172-3 */

#define MP3_LAYER_III 1         /* layer field '01' is Layer III, 11172-3 §2.4.2.3 */
#define MP3_BITRATE_FREE 0      /* bitrate_index 0: free format */
#define MP3_BITRATE_BAD 15      /* bitrate_index 15: forbidden */
#define MP3_SAMPLE_RATE_BAD 3   /* sampling_frequency '11': reserved */
#define MP3_MODE_MONO 3         /* mode '11': single channel */
#define MP3_EMPHASIS_RESERVED 2 /* emphasis '10': reserved */

/* VBRI (Fraunhofer) tag: always 32 bytes after the 4-byte header, whatever the mode. */
#define MP3_VBRI_OFFSET 36

/* Layer III bitrates in kbit/s, 11172-3 Table 2.4.2.3 and 13818-3 Table 2.4.2.3 (LSF). */
static const uint16_t bitrate_kbps_v1[16] = {0,   32,  40,  48,  56,  64,  80,  96,
                                             112, 128, 160, 192, 224, 256, 320, 0};
static const uint16_t bitrate_kbps_lsf[16] = {0,  8,  16, 24,  32,  40,  48,  56,
                                              64, 80, 96, 112, 128, 144, 160, 0};

/* Sampling frequencies in Hz by [version field][sampling_frequency]. */
static const uint32_t sample_rate_hz[4][3] = {
    [MP3_VERSION_25] = {11025, 12000, 8000},
    [MP3_VERSION_2] = {22050, 24000, 16000},
    [MP3_VERSION_1] = {44100, 48000, 32000},
};

/* The decoded fields a caller of the static helpers needs beyond `struct frame_info`. */
struct mp3_fields {
    unsigned version; /* MP3_VERSION_* */
    bool crc;         /* a 16-bit CRC follows the header */
    bool mono;        /* single-channel mode */
};

static enum fc_err parse(const uint8_t *p, size_t len, struct frame_info *info,
                         struct mp3_fields *fields)
{
    if (len < MP3_HEADER_BYTES)
        return FC_AGAIN;
    if (p[0] != 0xFF || (p[1] & 0xE0) != 0xE0)
        return FC_PROTO;

    unsigned version = (p[1] >> 3) & 3;
    unsigned layer = (p[1] >> 1) & 3;
    bool crc = (p[1] & 1) == 0;
    unsigned bitrate_index = p[2] >> 4;
    unsigned rate_index = (p[2] >> 2) & 3;
    unsigned padding = (p[2] >> 1) & 1;
    unsigned mode = p[3] >> 6;
    unsigned emphasis = p[3] & 3;

    if (version == MP3_VERSION_RESERVED || layer != MP3_LAYER_III)
        return FC_PROTO;
    /* Free format has no length in the header; a relay cannot frame it without a decoder. */
    if (bitrate_index == MP3_BITRATE_FREE || bitrate_index == MP3_BITRATE_BAD)
        return FC_PROTO;
    if (rate_index == MP3_SAMPLE_RATE_BAD || emphasis == MP3_EMPHASIS_RESERVED)
        return FC_PROTO;

    bool v1 = version == MP3_VERSION_1;
    uint32_t bitrate = (uint32_t)(v1 ? bitrate_kbps_v1 : bitrate_kbps_lsf)[bitrate_index] * 1000;
    uint32_t rate = sample_rate_hz[version][rate_index];
    /* Layer III slot is one byte; 1152 samples (MPEG-1) or 576 (LSF) per frame, so
     * bytes = samples / 8 * bitrate / rate = 144 (or 72) * bitrate / rate, §2.4.3.1. */
    uint32_t samples = v1 ? 1152 : 576;

    info->codec = FC_CODEC_MP3;
    info->sample_rate = rate;
    info->channels = mode == MP3_MODE_MONO ? 1 : 2;
    info->samples = (uint16_t)samples;
    info->len = samples / 8 * bitrate / rate + padding;
    info->bitrate = bitrate;
    if (fields) {
        fields->version = version;
        fields->crc = crc;
        fields->mono = mode == MP3_MODE_MONO;
    }
    return FC_OK;
}

enum fc_err mp3_header_parse(const uint8_t *p, size_t len, struct frame_info *info)
{
    return parse(p, len, info, NULL);
}

/* Bytes of Layer III side information, 11172-3 §2.4.1.7 and 13818-3 §2.4.1.7. */
static size_t side_info_bytes(const struct mp3_fields *fields)
{
    if (fields->version == MP3_VERSION_1)
        return fields->mono ? 17 : 32;
    return fields->mono ? 9 : 17;
}

bool mp3_is_info_frame(const uint8_t *p, size_t len)
{
    struct frame_info info;
    struct mp3_fields fields;

    if (parse(p, len, &info, &fields) != FC_OK)
        return false;
    if (len > info.len)
        len = info.len;
    /* LAME/Xing put the tag where main data would start, i.e. after the side info (and the
     * CRC if the frame has one, as mpg123 and ffmpeg both assume). */
    size_t off = MP3_HEADER_BYTES + (fields.crc ? MP3_CRC_BYTES : 0) + side_info_bytes(&fields);
    if (off + 4 <= len && (memcmp(p + off, "Xing", 4) == 0 || memcmp(p + off, "Info", 4) == 0))
        return true;
    return MP3_VBRI_OFFSET + 4 <= len && memcmp(p + MP3_VBRI_OFFSET, "VBRI", 4) == 0;
}

int mp3_main_data_begin(const uint8_t *p, size_t len)
{
    struct frame_info info;
    struct mp3_fields fields;

    if (parse(p, len, &info, &fields) != FC_OK)
        return -1;
    size_t off = MP3_HEADER_BYTES + (fields.crc ? MP3_CRC_BYTES : 0);
    if (len < off + 2)
        return -1;
    /* main_data_begin opens the side info: 9 bits in MPEG-1, 8 bits in LSF (13818-3 §2.4.1.7). */
    if (fields.version == MP3_VERSION_1)
        return (p[off] << 1) | (p[off + 1] >> 7);
    return p[off];
}
