/*
 * adfetch.h - prerolls from an ad server (docs/architecture.md §7.14): per listener, one GET of
 * the --preroll-url (a VAST 3/4 answer, edge/http/vast.h); while the answer is a Wrapper, a GET
 * of its VASTAdTagURI (VAST 3.0 §2.4.1, 4.1 §3.4), at most ADFETCH_WRAPPERS_MAX Wrappers; then
 * the InLine ad's chosen MediaFile, unless it is cached by URL. The whole chain and the media
 * file share ADFETCH_TIMEOUT_S in total. VAST answers are never cached (each listener's chain is
 * asked anew: ad servers pick per request); media files are cached by their own URL, whatever
 * chain led to them. The media file becomes a clip (edge/http/clip.h) that must match the
 * mount's codec, sample rate and channels. The Impression URLs of every Wrapper (outermost
 * first) and then of the InLine ad are pinged (GET, answer ignored) once the clip has been
 * sent. Any failure: no preroll, counted in h->c.preroll_failures and logged with the reason:
 * a fetch or parse error (naming the wrapper hop and its URL past the first answer), more than
 * ADFETCH_WRAPPERS_MAX Wrappers, a loop (a VASTAdTagURI already asked in this chain, the
 * --preroll-url included, compared as strings), a Wrapper after one with
 * followAdditionalWrappers="false". libcurl's multi interface on the process's own loop
 * (shared/httpc.h), made on first use in the process serving listeners. Loop thread only.
 */
#ifndef FC_ADFETCH_H
#define FC_ADFETCH_H

#include <stdbool.h>

#define ADFETCH_TIMEOUT_S 2.0     /* issue 11: ad answer and media file, in total */
#define ADFETCH_PENDING_MAX 128   /* listeners waiting for an ad at once, per process; past it,
                                     a listener gets no preroll (counted) rather than a queue */
#define ADFETCH_CACHE_MAX 16      /* media files kept by URL; the least recently used goes */
#define ADFETCH_REDIRECTS_MAX 3   /* HTTP redirects per request */
#define ADFETCH_WRAPPERS_MAX 4    /* Wrapper answers followed per chain (VAST 4.1 recommends at
                                     most 5); the answer after the 4th Wrapper must be InLine */

struct ehttp;
struct elistener;
struct emount;
struct stream_req;
struct adfetch;

/*
 * Ask `url` for an ad for `l` (streaming `m` as asked by `rq`, copied): l->ad is set and
 * preroll_resume() is called later, from the loop, with the clip or NULL. false (nothing
 * started, counted and logged) when ADFETCH_PENDING_MAX ads are pending or out of memory.
 */
bool adfetch_start(struct ehttp *h, struct elistener *l, const char *url, const struct emount *m,
                   const struct stream_req *rq);

/* `l` is closing: its request goes on without it (a media file fetched is still cached). */
void adfetch_forget(struct elistener *l);

/* `l`'s clip was sent whole: ping the ad's impression URLs and release l->ad. */
void adfetch_sent(struct elistener *l);

/* Cancel every transfer and free the cache (at exit; listeners already closed). */
void adfetch_free(struct adfetch *af);

#endif
