/*
 * adfetch.c - see adfetch.h. One struct ad_wait per listener asking for an ad: it holds the
 * transfer (the VAST answer, the answers of the Wrapper chain if any, then the media file) and,
 * once the clip is chosen, the impression URLs of every level until the clip has been sent. A
 * listener that leaves detaches from it; the transfer (the rest of the chain included) finishes
 * on its own (a media file fetched is still cached) and frees it.
 */
#include "adfetch.h"

#include <stdlib.h>
#include <string.h>
#include "clip.h"
#include "httpc.h"
#include "preroll.h"
#include "request.h"
#include "vast.h"

enum ad_stage { AD_VAST = 1, AD_MEDIA, AD_SENDING, AD_PING };

/* A body being received, with the cap fixed when the transfer starts. */
struct body {
    char *p;
    size_t len, max;
    bool over;                         /* the answer passed `max`: refused */
};

struct ad_wait {
    enum ad_stage stage;
    struct adfetch *af;
    struct elistener *l;               /* NULL once the listener left */
    CURL *easy;                        /* the running transfer, or NULL */
    struct body body;
    double deadline;                   /* ev_now by which the clip must be here */
    char mount[WIRE_MOUNT_MAX + 1];
    enum fc_codec codec;               /* the mount's format when the listener came */
    uint32_t sample_rate;
    uint8_t channels;
    struct stream_req rq;              /* what the listener asked for (copy) */
    struct vast_ad *ad;                /* the last parsed answer (owned), NULL before */
    int hops;                          /* VASTAdTagURIs followed (0: asking --preroll-url) */
    bool last_hop;                     /* a Wrapper said followAdditionalWrappers="false" */
    char *chain[ADFETCH_WRAPPERS_MAX + 1]; /* the URLs asked, --preroll-url first (owned) */
    char *imps[ADFETCH_WRAPPERS_MAX * VAST_IMPRESSIONS_MAX]; /* the Wrappers' impression URLs,
                                                                outermost first (owned) */
    int n_imps;
};

/* An impression ping: nothing but its transfer. */
struct ad_ping {
    enum ad_stage stage;               /* AD_PING */
    struct adfetch *af;
    CURL *easy;
};

struct cache_entry {
    char url[VAST_URL_MAX + 1];
    struct clip *clip;                 /* a reference, NULL = free */
    double used;                       /* ev_now of its last use */
};

struct adfetch {
    struct ehttp *h;
    struct httpc hc;                   /* on this process's loop */
    uint32_t pending;                  /* ad_waits in AD_VAST or AD_MEDIA */
    struct cache_entry cache[ADFETCH_CACHE_MAX];
};

static size_t on_body(char *data, size_t size, size_t n, void *ctx)
{
    struct body *b = ctx;
    size_t k = size * n;
    if (!b->max) /* a ping: the answer does not matter */
        return k;
    if (b->len + k > b->max) {
        b->over = true;
        return 0; /* aborts the transfer (CURLE_WRITE_ERROR) */
    }
    if (!b->p && !(b->p = malloc(b->max)))
        return 0;
    memcpy(b->p + b->len, data, k);
    b->len += k;
    return k;
}

/* A GET of `url` within `timeout_s`, its body into `b` (capped at b->max), owner `priv`. */
static CURL *get(struct adfetch *af, const char *url, double timeout_s, struct body *b,
                 void *priv)
{
    CURL *e = curl_easy_init();
    if (!e)
        return NULL;
    long ms = (long)(timeout_s * 1000);
    curl_easy_setopt(e, CURLOPT_URL, url);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, ms > 1 ? ms : 1);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 1L);
    curl_easy_setopt(e, CURLOPT_MAXREDIRS, (long)ADFETCH_REDIRECTS_MAX);
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(e, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(e, CURLOPT_FAILONERROR, 1L);
    curl_easy_setopt(e, CURLOPT_USERAGENT, "framecast/1");
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, b);
    curl_easy_setopt(e, CURLOPT_PRIVATE, priv);
    httpc_add(&af->hc, e);
    return e;
}

static void end_transfer(struct adfetch *af, CURL **e)
{
    if (!*e)
        return;
    httpc_remove(&af->hc, *e);
    curl_easy_cleanup(*e);
    *e = NULL;
}

static void wait_free(struct ad_wait *w)
{
    end_transfer(w->af, &w->easy);
    free(w->body.p);
    free(w->ad);
    for (int i = 0; i <= w->hops; i++)
        free(w->chain[i]);
    for (int i = 0; i < w->n_imps; i++)
        free(w->imps[i]);
    free(w);
}

/* Where in the Wrapper chain the last answer came from, for a log line: "" for --preroll-url. */
static const char *hop_of(const struct ad_wait *w, char *buf, size_t len)
{
    if (!w->hops)
        return "";
    snprintf(buf, len, " at wrapper hop %d (%s)", w->hops, w->chain[w->hops]);
    return buf;
}

/* The ad request ended: the listener (if still there) goes on, with `c` or without. */
static void finish(struct ad_wait *w, struct clip *c, const char *why)
{
    struct adfetch *af = w->af;
    struct elistener *l = w->l;
    struct stream_req rq = w->rq;
    char mount[WIRE_MOUNT_MAX + 1];
    memcpy(mount, w->mount, sizeof(mount));
    af->pending--;
    end_transfer(af, &w->easy);
    free(w->body.p);
    w->body.p = NULL;
    if (!c) {
        af->h->c.preroll_failures++;
        log_warn(af->h->log, "listener=%s mount=%s no preroll: %s", l ? l->peer : "(left)",
                 w->mount, why);
    }
    if (!l || !c) {
        /* Kept only while a clip is being sent, for its impressions. */
        if (l)
            l->ad = NULL;
        clip_unref(c);
        wait_free(w);
        if (!l)
            return;
    } else {
        w->stage = AD_SENDING;
    }
    preroll_resume(l, c, mount, &rq);
}

static struct cache_entry *cache_find(struct adfetch *af, const char *url)
{
    for (int i = 0; i < ADFETCH_CACHE_MAX; i++)
        if (af->cache[i].clip && strcmp(af->cache[i].url, url) == 0)
            return &af->cache[i];
    return NULL;
}

static void cache_put(struct adfetch *af, const char *url, struct clip *c)
{
    struct cache_entry *victim = &af->cache[0];
    for (int i = 0; i < ADFETCH_CACHE_MAX; i++) {
        if (!af->cache[i].clip) {
            victim = &af->cache[i];
            break;
        }
        if (af->cache[i].used < victim->used)
            victim = &af->cache[i];
    }
    clip_unref(victim->clip);
    snprintf(victim->url, sizeof(victim->url), "%s", url);
    victim->clip = clip_ref(c);
    victim->used = ev_now(af->h->loop);
}

/* A clip for the waiting listener, if it fits the mount. */
static void offer(struct ad_wait *w, struct clip *c)
{
    char buf[160];
    const char *d = clip_mismatch(c, w->codec, w->sample_rate, w->channels, buf, sizeof(buf));
    if (d) {
        char why[CLIP_SRC_MAX + 200];
        snprintf(why, sizeof(why), "media file %s: %s", c->src, d);
        return finish(w, NULL, why);
    }
    finish(w, clip_ref(c), NULL);
}

/* Start the GET of `url` for `w` (its body capped at `max`) within what is left of its
 * deadline: one budget for the whole chain. NULL, or why it could not start. */
static const char *get_next(struct ad_wait *w, const char *url, size_t max)
{
    struct adfetch *af = w->af;
    end_transfer(af, &w->easy);
    free(w->body.p);
    w->body = (struct body){.max = max};
    double left = w->deadline - ev_now(af->h->loop);
    if (left <= 0)
        return "no time left";
    return (w->easy = get(af, url, left, &w->body, w)) ? NULL : "out of memory";
}

/* Why the Wrapper just parsed may not be followed, into why; NULL if it may. */
static const char *refuse_wrapper(const struct ad_wait *w, char *why, size_t len)
{
    char at[VAST_URL_MAX + 64];
    const char *uri = w->ad->ad_tag_uri;
    if (w->hops >= ADFETCH_WRAPPERS_MAX)
        snprintf(why, len, "VAST: more than %d Wrappers%s", ADFETCH_WRAPPERS_MAX,
                 hop_of(w, at, sizeof(at)));
    else if (w->last_hop)
        snprintf(why, len, "VAST: a Wrapper%s after followAdditionalWrappers=\"false\"",
                 hop_of(w, at, sizeof(at)));
    for (int i = 0; !why[0] && i <= w->hops; i++)
        if (strcmp(w->chain[i], uri) == 0)
            snprintf(why, len, "VAST: Wrapper loop%s: back to %s", hop_of(w, at, sizeof(at)), uri);
    return why[0] ? why : NULL;
}

/* The answer was a Wrapper: keep its impressions and ask its VASTAdTagURI (one more hop). */
static void follow(struct ad_wait *w)
{
    char why[2 * VAST_URL_MAX + 128] = "";
    if (refuse_wrapper(w, why, sizeof(why)))
        return finish(w, NULL, why);
    const struct vast_ad *ad = w->ad;
    for (int i = 0; i < ad->n_impressions; i++) {
        if (!(w->imps[w->n_imps] = strdup(ad->impressions[i])))
            return finish(w, NULL, "out of memory");
        w->n_imps++;
    }
    if (!(w->chain[w->hops + 1] = strdup(ad->ad_tag_uri)))
        return finish(w, NULL, "out of memory");
    w->hops++;
    w->last_hop = !ad->follow_wrappers;
    const char *err = get_next(w, w->chain[w->hops], VAST_DOC_MAX);
    if (err) {
        char at[VAST_URL_MAX + 64];
        snprintf(why, sizeof(why), "%s for the answer%s", err, hop_of(w, at, sizeof(at)));
        return finish(w, NULL, why);
    }
}

/* An InLine ad: its media file, from the cache or fetched. */
static void media_start(struct ad_wait *w)
{
    struct adfetch *af = w->af;
    struct cache_entry *ce = cache_find(af, w->ad->media_url);
    if (ce) {
        ce->used = ev_now(af->h->loop);
        return offer(w, ce->clip);
    }
    w->stage = AD_MEDIA;
    const char *err = get_next(w, w->ad->media_url, CLIP_MAX_BYTES);
    if (err) {
        char why[64];
        snprintf(why, sizeof(why), "%s for the media file", err);
        return finish(w, NULL, why);
    }
}

static void vast_done(struct ad_wait *w, CURLcode rc)
{
    char why[2 * VAST_URL_MAX + 128], at[VAST_URL_MAX + 64];
    const char *reason = "";
    if (rc != CURLE_OK) {
        snprintf(why, sizeof(why), "ad server%s: %s", hop_of(w, at, sizeof(at)),
                 w->body.over ? "answer too large" : curl_easy_strerror(rc));
        return finish(w, NULL, why);
    }
    if (!w->ad && !(w->ad = malloc(sizeof(*w->ad))))
        return finish(w, NULL, "out of memory");
    enum fc_err err = vast_parse(w->body.p ? w->body.p : "", w->body.len, w->codec, w->ad,
                                 &reason);
    if (err != FC_OK) {
        snprintf(why, sizeof(why), "VAST: %s%s", reason, hop_of(w, at, sizeof(at)));
        return finish(w, NULL, why);
    }
    if (w->ad->kind == VAST_WRAPPER)
        return follow(w);
    media_start(w);
}

static void media_done(struct ad_wait *w, CURLcode rc)
{
    struct adfetch *af = w->af;
    struct clip *c = NULL;
    const char *reason = "";
    char why[VAST_URL_MAX + 128];
    if (rc != CURLE_OK) {
        snprintf(why, sizeof(why), "media file %s: %s", w->ad->media_url,
                 w->body.over ? "larger than 8 MiB" : curl_easy_strerror(rc));
        return finish(w, NULL, why);
    }
    if (clip_from_bytes((const uint8_t *)(w->body.p ? w->body.p : ""), w->body.len,
                        w->ad->title[0] ? w->ad->title : "advertisement", w->ad->media_url,
                        af->h->opt.metaint, &c, &reason) != FC_OK) {
        snprintf(why, sizeof(why), "media file %s: %s", w->ad->media_url, reason);
        return finish(w, NULL, why);
    }
    cache_put(af, w->ad->media_url, c);
    offer(w, c);
    clip_unref(c);
}

static void on_done(struct httpc *hc, CURL *easy, CURLcode rc)
{
    void *priv = NULL;
    curl_easy_getinfo(easy, CURLINFO_PRIVATE, (char **)&priv);
    enum ad_stage *stage = priv;
    if (*stage == AD_PING) {
        struct ad_ping *p = priv;
        if (rc != CURLE_OK) {
            char *url = NULL;
            curl_easy_getinfo(easy, CURLINFO_EFFECTIVE_URL, &url);
            log_warn(p->af->h->log, "preroll impression %s: %s", url ? url : "?",
                     curl_easy_strerror(rc));
        }
        end_transfer(p->af, &p->easy);
        free(p);
        return;
    }
    struct ad_wait *w = priv;
    if (w->stage == AD_VAST)
        vast_done(w, rc);
    else
        media_done(w, rc);
}

bool adfetch_start(struct ehttp *h, struct elistener *l, const char *url, const struct emount *m,
                   const struct stream_req *rq)
{
    struct preroll *pr = h->pre;
    struct adfetch *af = pr->af;
    if (!af) {
        if (!(af = calloc(1, sizeof(*af))))
            return false;
        af->h = h;
        if (httpc_init(&af->hc, h->loop, on_done, af) != FC_OK) {
            free(af);
            log_error(h->log, "preroll: libcurl failed to initialise");
            return false;
        }
        pr->af = af;
    }
    if (af->pending >= ADFETCH_PENDING_MAX) {
        h->c.preroll_failures++;
        log_warn(h->log, "listener=%s mount=%s no preroll: %u ad requests pending", l->peer,
                 m->name, af->pending);
        return false;
    }
    struct ad_wait *w = calloc(1, sizeof(*w));
    if (!w)
        return false;
    *w = (struct ad_wait){.stage = AD_VAST, .af = af, .l = l, .codec = m->codec,
                          .sample_rate = m->sample_rate, .channels = m->channels, .rq = *rq,
                          .body = {.max = VAST_DOC_MAX},
                          .deadline = ev_now(h->loop) + ADFETCH_TIMEOUT_S};
    memcpy(w->mount, m->name, sizeof(w->mount));
    if (!(w->chain[0] = strdup(url)) ||
        !(w->easy = get(af, url, ADFETCH_TIMEOUT_S, &w->body, w))) {
        free(w->chain[0]);
        free(w);
        return false;
    }
    af->pending++;
    l->ad = w;
    return true;
}

void adfetch_forget(struct elistener *l)
{
    struct ad_wait *w = l->ad;
    l->ad = NULL;
    if (w->stage == AD_SENDING)
        return wait_free(w); /* the clip was not sent whole: no impression */
    w->l = NULL;
}

/* A GET of the impression URL `url`, its answer dropped; failures are logged (on_done). */
static void ping(struct adfetch *af, const char *url)
{
    struct ad_ping *p = calloc(1, sizeof(*p));
    if (!p)
        return;
    *p = (struct ad_ping){.stage = AD_PING, .af = af};
    static struct body discard; /* max 0: bodies are dropped, nothing is written to it */
    if (!(p->easy = get(af, url, ADFETCH_TIMEOUT_S, &discard, p)))
        free(p);
}

void adfetch_sent(struct elistener *l)
{
    struct ad_wait *w = l->ad;
    struct adfetch *af = w->af;
    l->ad = NULL;
    /* VAST 3.0 §2.4.1, 4.1 §3.4: every level's impressions count; the Wrappers' first. */
    for (int i = 0; i < w->n_imps; i++)
        ping(af, w->imps[i]);
    for (int i = 0; i < w->ad->n_impressions; i++)
        ping(af, w->ad->impressions[i]);
    log_info(af->h->log, "listener=%s preroll sent, impressions=%d wrappers=%d", l->peer,
             w->n_imps + w->ad->n_impressions, w->hops);
    wait_free(w);
}

void adfetch_free(struct adfetch *af)
{
    if (!af)
        return;
    for (int i = 0; i < ADFETCH_CACHE_MAX; i++)
        clip_unref(af->cache[i].clip);
    /* Transfers still running (pings, requests of listeners that left) go with the multi. */
    httpc_free(&af->hc);
    free(af);
}
