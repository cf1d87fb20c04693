/*
 * preroll.c - see preroll.h. The clip is a separate source in front of the listener's buffer
 * position: out_stream.c writes the response head and the clip (one iovec from the clip's
 * shared rendering) in a writev of their own, then the live audio from l->pos, so the live
 * part is exactly what the listener would have had without a clip.
 */
#include "preroll.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include "adfetch.h"
#include "clip.h"
#include "request.h"

#define FNV64_OFFSET 0xcbf29ce484222325ULL /* FNV-1a parameters, draft-eastlake-fnv §2 */
#define FNV64_PRIME 0x100000001b3ULL
#define PREROLL_CONNECTED_S 86400.0        /* a connected client's entry holds this long at most
                                              (its close renews it; a crash must not pin it) */

static struct preroll *get(struct ehttp *h, char *why, size_t why_len)
{
    if (!h->pre && !(h->pre = calloc(1, sizeof(*h->pre))))
        snprintf(why, why_len, "out of memory");
    return h->pre;
}

/* The entry of `mount` (len bytes; "" = the default), made if `make`. */
static struct preroll_entry *entry_named(struct preroll *pr, const char *mount, size_t len,
                                         bool make)
{
    for (int i = 0; i < pr->n; i++)
        if (strlen(pr->e[i]->mount) == len && memcmp(pr->e[i]->mount, mount, len) == 0)
            return pr->e[i];
    if (!make || pr->n >= PREROLL_MOUNTS_MAX)
        return NULL;
    struct preroll_entry *e = calloc(1, sizeof(*e));
    if (!e)
        return NULL;
    memcpy(e->mount, mount, len);
    pr->e[pr->n++] = e;
    return e;
}

/* A mount's own entry, else the default one (--preroll-url URL), else NULL. */
static struct preroll_entry *entry_of(const struct preroll *pr, const struct emount *m)
{
    struct preroll_entry *dflt = NULL;
    for (int i = 0; i < pr->n; i++) {
        if (strcmp(pr->e[i]->mount, m->name) == 0)
            return pr->e[i];
        if (!pr->e[i]->mount[0])
            dflt = pr->e[i];
    }
    return dflt;
}

/* MOUNT=VALUE: the entry (new or without that kind yet) and the value; NULL with *why. */
static struct preroll_entry *split_arg(struct ehttp *h, const char *arg, bool url,
                                       const char **value, char *why, size_t why_len)
{
    struct preroll *pr = get(h, why, why_len);
    const char *eq = strchr(arg, '=');
    bool dflt = url && (strncmp(arg, "http://", 7) == 0 || strncmp(arg, "https://", 8) == 0);
    if (!pr)
        return NULL;
    if (dflt)
        eq = NULL;
    else if (!eq || !wire_valid_name(arg, (size_t)(eq - arg), WIRE_MOUNT_MAX)) {
        snprintf(why, why_len, "\"%s\": expected MOUNT=%s", arg, url ? "URL (or a URL)" : "PATH");
        return NULL;
    }
    *value = dflt ? arg : eq + 1;
    if (!**value) {
        snprintf(why, why_len, "\"%s\": empty %s", arg, url ? "URL" : "path");
        return NULL;
    }
    if (url && strncmp(*value, "http://", 7) != 0 && strncmp(*value, "https://", 8) != 0) {
        snprintf(why, why_len, "\"%s\": expected an http(s):// URL", *value);
        return NULL;
    }
    struct preroll_entry *e = entry_named(pr, arg, dflt ? 0 : (size_t)(eq - arg), true);
    if (!e)
        snprintf(why, why_len, "at most %d entries", PREROLL_MOUNTS_MAX);
    else if (e->path || e->url) {
        snprintf(why, why_len, "\"%s\": a mount has one preroll source (a file, a directory "
                 "or an ad server)", arg);
        e = NULL;
    }
    return e;
}

bool preroll_add(struct ehttp *h, const char *arg, char *why, size_t why_len)
{
    const char *path;
    struct preroll_entry *e = split_arg(h, arg, false, &path, why, why_len);
    if (e && !(e->path = strdup(path)))
        snprintf(why, why_len, "out of memory");
    return e && e->path;
}

bool preroll_add_url(struct ehttp *h, const char *arg, char *why, size_t why_len)
{
    const char *url;
    struct preroll_entry *e = split_arg(h, arg, true, &url, why, why_len);
    if (e && !(e->url = strdup(url)))
        snprintf(why, why_len, "out of memory");
    return e && e->url;
}

static bool load_one(struct preroll_entry *e, const char *path, uint32_t metaint, char *why,
                     size_t why_len)
{
    const char *reason = "";
    if (e->n_clips >= PREROLL_DIR_MAX) {
        snprintf(why, why_len, "%s: more than %d files", e->path, PREROLL_DIR_MAX);
        return false;
    }
    if (clip_load_file(path, metaint, &e->clips[e->n_clips], &reason) != FC_OK) {
        snprintf(why, why_len, "%s: %s%s%s", path, reason, errno && !strcmp(reason, "cannot read")
                 ? ": " : "", errno && !strcmp(reason, "cannot read") ? strerror(errno) : "");
        return false;
    }
    e->n_clips++;
    return true;
}

static int not_hidden(const struct dirent *d)
{
    return d->d_name[0] != '.';
}

/* A --preroll PATH: one file, or a directory's regular files in name order. */
static bool load_entry(struct preroll_entry *e, uint32_t metaint, char *why, size_t why_len)
{
    struct stat st;
    errno = 0;
    if (stat(e->path, &st) != 0) {
        snprintf(why, why_len, "%s: %s", e->path, strerror(errno));
        return false;
    }
    if (!S_ISDIR(st.st_mode))
        return load_one(e, e->path, metaint, why, why_len);
    struct dirent **names;
    int n = scandir(e->path, &names, not_hidden, alphasort);
    if (n < 0) {
        snprintf(why, why_len, "%s: %s", e->path, strerror(errno));
        return false;
    }
    bool ok = true;
    for (int i = 0; i < n; i++) {
        char path[4096];
        snprintf(path, sizeof(path), "%s/%s", e->path, names[i]->d_name);
        errno = 0;
        if (ok && stat(path, &st) == 0 && S_ISREG(st.st_mode))
            ok = load_one(e, path, metaint, why, why_len);
        free(names[i]);
    }
    free(names);
    if (ok && e->n_clips == 0) {
        snprintf(why, why_len, "%s: no files in the directory", e->path);
        ok = false;
    }
    return ok;
}

bool preroll_setup(struct ehttp *h, char *why, size_t why_len)
{
    struct preroll *pr = h->pre;
    if (!pr)
        return true;
    for (int i = 0; i < pr->n; i++)
        if (pr->e[i]->path && !load_entry(pr->e[i], h->opt.metaint, why, why_len))
            return false;
    /* Shared before the workers fork: a client reconnecting lands on any worker, and the
     * rotation of a directory's clips is one sequence whichever worker serves. */
    size_t sz = PREROLL_ONCE_SLOTS * sizeof(struct preroll_once) +
                PREROLL_MOUNTS_MAX * sizeof(uint32_t);
    void *p = mmap(NULL, sz, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) {
        snprintf(why, why_len, "once-per-session table: %s", strerror(errno));
        return false;
    }
    pr->once = p;
    for (int i = 0; i < pr->n; i++)
        pr->e[i]->next = (uint32_t *)(pr->once + PREROLL_ONCE_SLOTS) + i;
    return true;
}

void preroll_free(struct ehttp *h)
{
    struct preroll *pr = h->pre;
    if (!pr)
        return;
    adfetch_free(pr->af);
    for (int i = 0; i < pr->n; i++) {
        struct preroll_entry *e = pr->e[i];
        for (int k = 0; k < e->n_clips; k++) {
            clip_unref(e->clips[k]);
            free(e->why[k]);
        }
        free(e->path);
        free(e->url);
        free(e);
    }
    if (pr->once)
        munmap(pr->once, PREROLL_ONCE_SLOTS * sizeof(struct preroll_once) +
                             PREROLL_MOUNTS_MAX * sizeof(uint32_t));
    free(pr);
    h->pre = NULL;
}

/* ---- once per session ---- */

static uint64_t fnv(uint64_t h, const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        h = (h ^ (uint8_t)s[i]) * FNV64_PRIME;
    return (h ^ 0xff) * FNV64_PRIME; /* a separator, so ("ab","c") != ("a","bc") */
}

/* The client's key: its address without the port, its User-Agent, the mount. */
static uint64_t client_key(const struct elistener *l, const struct emount *m)
{
    const char *colon = strrchr(l->peer, ':');
    size_t alen = colon ? (size_t)(colon - l->peer) : strlen(l->peer);
    uint64_t k = fnv(fnv(fnv(FNV64_OFFSET, l->peer, alen), l->ua, strlen(l->ua)), m->name,
                     strlen(m->name));
    return k ? k : 1;
}

static uint64_t now_ms(const struct ehttp *h)
{
    return (uint64_t)(ev_now(h->loop) * 1000);
}

/* The slot holding `key`, or NULL. Slots are shared with other processes: plain atomic loads
 * and stores; two workers writing one slot at once cost at most a repeated preroll. */
static struct preroll_once *once_find(struct preroll *pr, uint64_t key)
{
    for (uint32_t i = 0; i < PREROLL_ONCE_PROBE; i++) {
        struct preroll_once *s = &pr->once[(key + i) % PREROLL_ONCE_SLOTS];
        if (__atomic_load_n(&s->key, __ATOMIC_ACQUIRE) == key)
            return s;
    }
    return NULL;
}

static bool once_seen(struct preroll *pr, uint64_t key, uint64_t now)
{
    struct preroll_once *s = pr->once ? once_find(pr, key) : NULL;
    return s && __atomic_load_n(&s->until_ms, __ATOMIC_ACQUIRE) > now;
}

static void once_mark(struct preroll *pr, uint64_t key, uint64_t until)
{
    if (!pr->once)
        return;
    struct preroll_once *s = once_find(pr, key);
    for (uint32_t i = 0; !s && i < PREROLL_ONCE_PROBE; i++) {
        /* The probe window's slot that expires first is reused. */
        struct preroll_once *c = &pr->once[(key + i) % PREROLL_ONCE_SLOTS];
        if (!s || __atomic_load_n(&c->until_ms, __ATOMIC_RELAXED) <
                      __atomic_load_n(&s->until_ms, __ATOMIC_RELAXED))
            s = c;
    }
    __atomic_store_n(&s->until_ms, until, __ATOMIC_RELEASE);
    __atomic_store_n(&s->key, key, __ATOMIC_RELEASE);
}

/* ---- listeners ---- */

/* Live listeners only (issue 11): no time-shift, no download, no HEAD, no &preroll=0. */
static bool eligible(const struct elistener *l, const struct stream_req *rq)
{
    return !l->head && !rq->has_offset && !rq->has_at && !rq->has_duration && !rq->no_preroll;
}

bool preroll_wait(struct elistener *l, struct emount *m, const struct stream_req *rq)
{
    struct ehttp *h = l->http;
    struct preroll *pr = h->pre;
    if (!pr || l->pre_done)
        return false;
    l->pre_done = true;
    struct preroll_entry *e = entry_of(pr, m);
    if (!e || !e->url || !eligible(l, rq) || once_seen(pr, client_key(l, m), now_ms(h)))
        return false;
    if (!adfetch_start(h, l, e->url, m, rq))
        return false;
    l->state = L_RESPONSE; /* a read now only tells of a disconnect (listener.c) */
    return true;
}

void preroll_resume(struct elistener *l, struct clip *c, const char *mount,
                    const struct stream_req *rq)
{
    struct emount *m = edge_mount_find(l->http->core, mount, strlen(mount));
    l->pre = c;
    if (!m || !m->has_audio)
        return listener_respond_error(l, 404, "no such mount");
    stream_start(l, m, rq);
}

/* The next enabled clip of a file entry that fits the mount as it is now, or NULL. */
static struct clip *pick(struct preroll_entry *e, const struct emount *m)
{
    char buf[160];
    for (int tries = 0; tries < e->n_clips; tries++) {
        int k = (int)(__atomic_fetch_add(e->next, 1, __ATOMIC_RELAXED) % (uint32_t)e->n_clips);
        if (!e->why[k] &&
            !clip_mismatch(e->clips[k], m->codec, m->sample_rate, m->channels, buf, sizeof(buf)))
            return clip_ref(e->clips[k]);
    }
    return NULL;
}

void preroll_attach(struct elistener *l, struct emount *m, const struct stream_req *rq)
{
    struct ehttp *h = l->http;
    struct preroll *pr = h->pre;
    if (!pr)
        return;
    uint64_t key = client_key(l, m), now = now_ms(h);
    if (!l->pre) {
        struct preroll_entry *e = entry_of(pr, m);
        if (!e || !e->n_clips || !eligible(l, rq) || once_seen(pr, key, now) || !(l->pre = pick(e, m)))
            return;
    }
    l->pre_off = 0;
    l->pre_key = key;
    once_mark(pr, key, now + (uint64_t)(PREROLL_CONNECTED_S * 1000));
    if (l->icy) {
        /* The metaint count runs through the clip; the live title is due at the next block. */
        l->metaint_left = l->pre->icy_left;
        l->title_sent = PREROLL_TITLE_ID;
    }
    h->c.prerolls++;
    log_info(h->log, "listener=%s mount=%s preroll clip=\"%s\" seconds=%.2f", l->peer, m->name,
             l->pre->src, l->pre->seconds);
}

void preroll_iov(const struct elistener *l, struct iovec *iov)
{
    const struct clip *c = l->pre;
    iov->iov_base = (l->icy ? c->icy : c->raw) + l->pre_off;
    iov->iov_len = (l->icy ? c->icy_len : c->raw_len) - l->pre_off;
}

void preroll_sent(struct elistener *l, size_t n)
{
    struct clip *c = l->pre;
    uint32_t len = l->icy ? c->icy_len : c->raw_len;
    l->pre_off += (uint32_t)n;
    l->bytes_sent += n;
    l->preroll_s = c->seconds * l->pre_off / len;
    if (l->pre_off < len)
        return;
    clip_unref(c);
    l->pre = NULL;
    if (l->ad)
        adfetch_sent(l);
}

void preroll_forget(struct elistener *l)
{
    struct ehttp *h = l->http;
    clip_unref(l->pre);
    l->pre = NULL;
    if (l->ad)
        adfetch_forget(l);
    if (l->pre_key && h->pre) /* the session ended now: a reconnect soon is the same one */
        once_mark(h->pre, l->pre_key, now_ms(h) + (uint64_t)(PREROLL_SESSION_GAP_S * 1000));
    l->pre_key = 0;
}

/* ---- the mount's format ---- */

void preroll_check_mount(struct ehttp *h, const struct emount *m)
{
    struct preroll *pr = h->pre;
    if (!pr)
        return;
    for (int i = 0; i < pr->n; i++) {
        struct preroll_entry *e = pr->e[i];
        if (e->checked == m || !e->n_clips || strcmp(e->mount, m->name) != 0)
            continue;
        e->checked = m;
        for (int k = 0; k < e->n_clips; k++) {
            char buf[160];
            const char *d = clip_mismatch(e->clips[k], m->codec, m->sample_rate, m->channels,
                                          buf, sizeof(buf));
            free(e->why[k]);
            e->why[k] = d ? strdup(d) : NULL;
            /* The core process logs; its workers check the same frames silently. */
            if (d && !h->worker)
                log_error(h->log, "preroll %s disabled for mount=%s: %s", e->clips[k]->src,
                          m->name, d);
        }
    }
}

json_t *preroll_json(const struct ehttp *h, const struct emount *m)
{
    const struct preroll_entry *e = h->pre ? entry_of(h->pre, m) : NULL;
    if (!e)
        return NULL;
    if (e->url)
        return json_pack("{s:s, s:s}", "source", "vast", "url", e->url);
    json_t *clips = json_array();
    for (int k = 0; k < e->n_clips; k++) {
        const struct clip *c = e->clips[k];
        json_array_append_new(
            clips, json_pack("{s:s, s:s, s:s, s:i, s:i, s:f, s:b, s:o}", "file", c->src, "name",
                             c->name, "codec", c->codec == FC_CODEC_ADTS ? "aac" : "mp3",
                             "sample_rate", (int)c->sample_rate, "channels", (int)c->channels,
                             "seconds", c->seconds, "enabled", e->why[k] == NULL, "error",
                             e->why[k] ? json_string(e->why[k]) : json_null()));
    }
    return json_pack("{s:s, s:s, s:b, s:o}", "source", "file", "path", e->path, "checked",
                     e->checked != NULL, "clips", clips);
}
