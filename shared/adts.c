/*
 * adts.c - AAC ADTS frame headers, ISO/IEC 13818-7 §6.2 (adts_fixed_header and
 * adts_variable_header) and ISO/IEC 14496-3 §1.A.2. Declarations are in framer.h.
 */
#include "framer.h"

#define ADTS_HEADER_BYTES 7  /* fixed + variable header without CRC */
#define ADTS_CRC_BYTES 2     /* crc_check when protection_absent == 0 */
#define ADTS_SAMPLES 1024    /* one raw_data_block is 1024 samples per channel (AAC-LC) */
#define ADTS_RATE_INDEXES 13 /* sampling_frequency_index 13..15 are reserved/escape */
#define ADTS_CHANNELS_8 7    /* channel_configuration 7 is 7.1: 8 channels */

/* 13818-7 Table 35 / 14496-3 Table 1.18. */
static const uint32_t sample_rate_hz[ADTS_RATE_INDEXES] = {
    96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025, 8000, 7350,
};

enum fc_err adts_header_parse(const uint8_t *p, size_t len, struct frame_info *info)
{
    if (len < ADTS_HEADER_BYTES)
        return FC_AGAIN;
    if (p[0] != 0xFF || (p[1] & 0xF0) != 0xF0)
        return FC_PROTO;

    unsigned layer = (p[1] >> 1) & 3;
    bool crc = (p[1] & 1) == 0;
    unsigned rate_index = (p[2] >> 2) & 0xF;
    unsigned channel_config = ((p[2] & 1u) << 2) | (p[3] >> 6);
    uint32_t frame_len = ((uint32_t)(p[3] & 3) << 11) | ((uint32_t)p[4] << 3) | (p[5] >> 5);
    unsigned raw_blocks = p[6] & 3;

    if (layer != 0 || rate_index >= ADTS_RATE_INDEXES)
        return FC_PROTO;
    /* Configuration 0 defers the layout to an in-band PCE; we need the count up front. */
    if (channel_config == 0)
        return FC_PROTO;
    if (frame_len < ADTS_HEADER_BYTES + (crc ? ADTS_CRC_BYTES : 0u))
        return FC_PROTO;
    /* Several raw blocks per frame would change `samples`; encoders we relay never emit them. */
    if (raw_blocks != 0)
        return FC_PROTO;

    uint32_t rate = sample_rate_hz[rate_index];
    info->codec = FC_CODEC_ADTS;
    info->sample_rate = rate;
    info->channels = (uint8_t)(channel_config == ADTS_CHANNELS_8 ? 8 : channel_config);
    info->samples = ADTS_SAMPLES;
    info->len = frame_len;
    info->bitrate = (uint32_t)((uint64_t)frame_len * 8 * rate / ADTS_SAMPLES);
    return FC_OK;
}
