/*
 * vast.h - the part of an ad server's VAST answer a radio preroll needs (IAB VAST 3.0 / 4.x,
 * "Digital Video Ad Serving Template"; audio ads are Linear creatives with audio MediaFiles,
 * VAST 4.1 §3.9): the first InLine ad's title, its Impression URLs and the MediaFile whose MIME
 * type is the mount's codec; or, when the answer holds no InLine ad, the first Wrapper ad's
 * VASTAdTagURI (the next ad server to ask, VAST 3.0 §2.4.1, 4.1 §3.4) and Impression URLs.
 * Following wrappers is the caller's (edge/http/adfetch.c). Pure parsing with libxml2 (no
 * network access, no entity expansion, no DTD loading); no callbacks; thread-safe. Fuzz target:
 * tests/fuzz/fuzz_vast.c.
 */
#ifndef FC_VAST_H
#define FC_VAST_H

#include <stdbool.h>
#include <stddef.h>
#include "fc.h"

#define VAST_DOC_MAX (256 * 1024) /* bytes of a VAST answer we read; past it: refused */
#define VAST_URL_MAX 2048         /* bytes of one URL (media file, impression, ad tag) */
#define VAST_TITLE_MAX 255        /* bytes of AdTitle kept (the ICY title during the clip) */
#define VAST_IMPRESSIONS_MAX 8    /* Impression URLs kept per ad (InLine or Wrapper level) */

enum vast_kind {
    VAST_INLINE = 1,   /* an InLine ad: title, media_url, media_type, impressions */
    VAST_WRAPPER,      /* a Wrapper ad: ad_tag_uri, follow_wrappers, impressions */
};

/* One linear audio ad, or one Wrapper level of it. Strings NUL-terminated, trimmed of
 * surrounding whitespace; the fields of the other kind are "" (false for follow_wrappers). */
struct vast_ad {
    enum vast_kind kind;
    char title[VAST_TITLE_MAX + 1];                       /* AdTitle, "" when absent */
    char media_url[VAST_URL_MAX + 1];                     /* the chosen MediaFile (http/https) */
    char media_type[64];                                  /* its type attribute */
    char ad_tag_uri[VAST_URL_MAX + 1];                    /* Wrapper: VASTAdTagURI (http/https) */
    /* Wrapper: false when its followAdditionalWrappers attribute (VAST 4.x) is "false" or "0":
     * the document its ad_tag_uri answers must then be an InLine ad. */
    bool follow_wrappers;
    char impressions[VAST_IMPRESSIONS_MAX][VAST_URL_MAX + 1]; /* http(s) URLs, in order */
    int n_impressions;
};

/*
 * Parse the VAST document `doc` (`len` bytes, not NUL-terminated) into `*out` (caller-owned,
 * overwritten; nothing to free). The first Ad with an InLine element wins, wherever a Wrapper
 * stands: out->kind VAST_INLINE, with its first MediaFile (VAST 3.0 §2.3.5.5, 4.1 §3.9.1) whose
 * `type` is an MP3 type (audio/mpeg, audio/mp3, audio/mpeg3, audio/x-mpeg) for `codec`
 * FC_CODEC_MP3 or an AAC type (audio/aac, audio/aacp, audio/x-aac, audio/adts) for
 * FC_CODEC_ADTS, with a http(s) URL and delivery not "streaming". Without one, the first Ad
 * with a Wrapper element whose VASTAdTagURI is an http(s) URL of at most VAST_URL_MAX bytes:
 * out->kind VAST_WRAPPER (the MediaFiles and tracking a Wrapper may carry are ignored).
 * Impressions: the chosen ad's first VAST_IMPRESSIONS_MAX http(s) Impression URLs, either kind.
 * Errors, with *why a static reason: FC_EOF the answer holds no ad (a VAST "no fill"); FC_PROTO
 * not well-formed XML, not a VAST 2-4 root, no MediaFile of the codec, a URL over VAST_URL_MAX,
 * only Wrapper ads without a usable VASTAdTagURI, neither InLine nor Wrapper ads; FC_LIMIT
 * len > VAST_DOC_MAX; FC_NOMEM.
 */
enum fc_err vast_parse(const char *doc, size_t len, enum fc_codec codec, struct vast_ad *out,
                       const char **why);

#endif
