/* level.c - see level.h. */
#include "level.h"

#include <math.h>
#include <string.h>

enum fc_err level_init(struct level_meter *lm, enum fc_codec codec)
{
    memset(lm, 0, sizeof(*lm));
    lm->codec = codec;
    if (codec == FC_CODEC_ADTS) {
        lm->aac = NeAACDecOpen();
        if (!lm->aac)
            return FC_NOMEM;
        NeAACDecConfigurationPtr cfg = NeAACDecGetCurrentConfiguration(lm->aac);
        cfg->outputFormat = FAAD_FMT_16BIT;
        cfg->dontUpSampleImplicitSBR = 1;
        NeAACDecSetConfiguration(lm->aac, cfg);
        return FC_OK;
    }
    int err = MPG123_OK;
    lm->mh = mpg123_new(NULL, &err);
    if (!lm->mh)
        return FC_NOMEM;
    mpg123_param(lm->mh, MPG123_FLAGS, MPG123_QUIET, 0);
    mpg123_format_none(lm->mh);
    const long *rates;
    size_t n_rates;
    mpg123_rates(&rates, &n_rates);
    for (size_t i = 0; i < n_rates; i++)
        mpg123_format(lm->mh, rates[i], MPG123_MONO | MPG123_STEREO, MPG123_ENC_SIGNED_16);
    return mpg123_open_feed(lm->mh) == MPG123_OK ? FC_OK : FC_IO;
}

void level_free(struct level_meter *lm)
{
    if (lm->mh)
        mpg123_delete(lm->mh);
    if (lm->aac)
        NeAACDecClose(lm->aac);
    memset(lm, 0, sizeof(*lm));
}

static int8_t to_db(double sum_sq, size_t count)
{
    if (count == 0 || sum_sq <= 0)
        return LEVEL_FLOOR_DB;
    double db = 10.0 * log10(sum_sq / (double)count / (32768.0 * 32768.0));
    if (db < LEVEL_FLOOR_DB)
        return LEVEL_FLOOR_DB;
    return db > 0 ? 0 : (int8_t)lround(db);
}

void level_from_pcm(const int16_t *pcm, size_t n, unsigned channels, int8_t out[4])
{
    for (int q = 0; q < 4; q++) {
        size_t from = n * (size_t)q / 4, to = n * (size_t)(q + 1) / 4;
        double sum = 0;
        for (size_t i = from * channels; i < to * channels; i++)
            sum += (double)pcm[i] * pcm[i];
        out[q] = to_db(sum, (to - from) * channels);
    }
}

static void mp3_level(struct level_meter *lm, const uint8_t *frame, size_t len, int8_t out[4])
{
    off_t num;
    unsigned char *audio = NULL;
    size_t bytes = 0;
    long rate;
    int channels = 2, enc;
    if (mpg123_feed(lm->mh, frame, len) != MPG123_OK) {
        lm->errors++;
        return;
    }
    /* One frame in, at most one frame out (NEW_FORMAT first comes without audio). */
    for (int i = 0; i < 4; i++) {
        int rc = mpg123_decode_frame(lm->mh, &num, &audio, &bytes);
        if (rc == MPG123_NEW_FORMAT)
            continue;
        if (rc != MPG123_OK)
            break;
        mpg123_getformat(lm->mh, &rate, &channels, &enc);
        if (channels < 1 || bytes == 0)
            break;
        level_from_pcm((const int16_t *)audio, bytes / 2 / (size_t)channels, (unsigned)channels,
                       out);
        return;
    }
}

static void aac_level(struct level_meter *lm, const uint8_t *frame, size_t len, int8_t out[4])
{
    NeAACDecFrameInfo info;
    if (!lm->aac_ready) {
        unsigned long rate;
        unsigned char channels;
        if (NeAACDecInit(lm->aac, (unsigned char *)frame, (unsigned long)len, &rate, &channels) < 0) {
            lm->errors++;
            return;
        }
        lm->aac_ready = true;
    }
    int16_t *pcm = NeAACDecDecode(lm->aac, &info, (unsigned char *)frame, (unsigned long)len);
    if (!pcm || info.error || info.channels == 0) {
        lm->errors++;
        return;
    }
    level_from_pcm(pcm, info.samples / info.channels, info.channels, out);
}

void level_frame(struct level_meter *lm, const uint8_t *frame, size_t len, int8_t out[4])
{
    memset(out, LEVEL_FLOOR_DB, 4);
    if (lm->codec == FC_CODEC_ADTS && lm->aac)
        aac_level(lm, frame, len, out);
    else if (lm->mh)
        mp3_level(lm, frame, len, out);
}
