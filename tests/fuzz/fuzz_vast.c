/*
 * fuzz_vast.c - libFuzzer target for the edge's VAST parser (edge/http/vast.c, libxml2).
 *
 * The first byte picks the mount's codec (even: MP3, odd: AAC), the rest is the ad server's
 * answer. Checks, besides the sanitizers: an accepted answer is an InLine ad with a
 * NUL-terminated http(s) media URL of at most VAST_URL_MAX bytes whose type is one of the
 * codec's and no ad tag URI, or a Wrapper with an http(s) VASTAdTagURI of at most VAST_URL_MAX
 * bytes and no media URL or title; either has at most VAST_IMPRESSIONS_MAX impression URLs, all
 * http(s); a refused one leaves a reason.
 */
#include <stdint.h>
#include <string.h>
#include <strings.h>

#include "../../edge/http/vast.c"

#include "fuzz_check.h"

static bool http_url(const char *u, size_t max)
{
    size_t n = strnlen(u, max + 1);
    return n <= max && (strncasecmp(u, "http://", 7) == 0 || strncasecmp(u, "https://", 8) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct vast_ad ad; /* 20 KiB */
    const char *why = NULL;
    if (size < 1)
        return 0;
    enum fc_codec codec = data[0] & 1 ? FC_CODEC_ADTS : FC_CODEC_MP3;
    enum fc_err err = vast_parse((const char *)data + 1, size - 1, codec, &ad, &why);
    if (err != FC_OK) {
        CHECK(why && why[0]);
        CHECK(err == FC_EOF || err == FC_PROTO || err == FC_LIMIT || err == FC_NOMEM);
        return 0;
    }
    if (ad.kind == VAST_WRAPPER) {
        CHECK(http_url(ad.ad_tag_uri, VAST_URL_MAX));
        CHECK(!ad.media_url[0] && !ad.media_type[0] && !ad.title[0]);
    } else {
        CHECK(ad.kind == VAST_INLINE);
        CHECK(http_url(ad.media_url, VAST_URL_MAX));
        CHECK(type_matches(ad.media_type, codec));
        CHECK(!ad.ad_tag_uri[0] && !ad.follow_wrappers);
    }
    CHECK(strnlen(ad.title, VAST_TITLE_MAX + 1) <= VAST_TITLE_MAX);
    CHECK(ad.n_impressions >= 0 && ad.n_impressions <= VAST_IMPRESSIONS_MAX);
    for (int i = 0; i < ad.n_impressions; i++)
        CHECK(http_url(ad.impressions[i], VAST_URL_MAX));
    return 0;
}
