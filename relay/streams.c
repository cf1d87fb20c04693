/* streams.c - per-stream dedupe ring and catch-up window (docs/architecture.md §4.2, §4.3). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "clock.h"
#include "relay.h"

enum seq_verdict { SEQ_NEW, SEQ_DUP, SEQ_STALE };

/*
 * librist-style dedupe: the slot for `seq` is `seq & (RELAY_RING - 1)`. Same seq there =
 * duplicate; a newer seq there, or a seq a whole ring behind the newest = stale (too old to tell).
 */
static enum seq_verdict classify(const struct rstream *s, uint64_t seq)
{
    const struct rslot *slot = &s->ring[seq & (RELAY_RING - 1)];
    /* rx != 0 marks a used slot; its frame may have expired (m == NULL) but its seq counts. */
    if (slot->rx != 0 && slot->seq == seq)
        return SEQ_DUP;
    if (slot->rx != 0 && slot->seq > seq)
        return SEQ_STALE;
    if (s->frames > 0 && seq < s->max_seq && s->max_seq - seq >= RELAY_RING)
        return SEQ_STALE;
    /* A leap far beyond anything a live stream can skip is a broken or hostile sender: accepting
     * it would make every later, genuine frame look stale. */
    if (s->frames > 0 && seq > s->max_seq && seq - s->max_seq > RELAY_MAX_SEQ_LEAP)
        return SEQ_STALE;
    return SEQ_NEW;
}

/* FNV-1a over mount and encoder (NUL included, so "ab"+"c" differs from "a"+"bc"), then the
 * session mixed in: streams are looked up once per frame, so this must not walk the list. */
static uint64_t stream_hash(const char *mount, const char *encoder, uint64_t session)
{
    uint64_t h = 0xcbf29ce484222325ull;
    for (const char *c = mount;; c++) {
        h = (h ^ (uint8_t)*c) * 0x100000001b3ull;
        if (!*c)
            break;
    }
    for (const char *c = encoder;; c++) {
        h = (h ^ (uint8_t)*c) * 0x100000001b3ull;
        if (!*c)
            break;
    }
    h ^= session;
    h *= 0x9E3779B97F4A7C15ull;
    return h ^ h >> 29;
}

static struct rstream **bucket_of(struct relay *r, uint64_t hash)
{
    return &r->buckets[hash & (RELAY_STREAM_BUCKETS - 1)];
}

/* The stream of `f`, or NULL; then `*n_mount` is the number of streams of its mount (a miss is
 * rare - a new stream or a refused flood - so counting may walk every stream). */
static struct rstream *find_stream(struct relay *r, const struct wire_frame *f, uint64_t hash,
                                   uint32_t *n_mount)
{
    for (struct rstream *s = *bucket_of(r, hash); s; s = s->hnext)
        if (s->hash == hash && s->session == f->session && strcmp(s->mount, f->mount) == 0 &&
            strcmp(s->encoder, f->encoder) == 0)
            return s;
    *n_mount = 0;
    for (struct rstream *s = r->streams; s; s = s->next)
        if (strcmp(s->mount, f->mount) == 0)
            (*n_mount)++;
    return NULL;
}

static struct rstream *new_stream(struct relay *r, const struct wire_frame *f, uint64_t hash)
{
    return relay_stream_new(r, f->mount, f->encoder, f->session, f->priority);
}

struct rstream *relay_stream_find(struct relay *r, const char *mount, const char *encoder,
                                  uint64_t session)
{
    uint64_t hash = stream_hash(mount, encoder, session);
    for (struct rstream *s = *bucket_of(r, hash); s; s = s->hnext)
        if (s->hash == hash && s->session == session && strcmp(s->mount, mount) == 0 &&
            strcmp(s->encoder, encoder) == 0)
            return s;
    return NULL;
}

struct rstream *relay_stream_new(struct relay *r, const char *mount, const char *encoder,
                                 uint64_t session, uint32_t priority)
{
    uint64_t hash = stream_hash(mount, encoder, session);
    struct rstream *s = calloc(1, sizeof(*s));
    if (!s)
        return NULL;
    s->ring = calloc(RELAY_RING, sizeof(*s->ring));
    if (!s->ring) {
        free(s);
        return NULL;
    }
    snprintf(s->mount, sizeof(s->mount), "%s", mount);
    snprintf(s->encoder, sizeof(s->encoder), "%s", encoder);
    s->session = session;
    s->priority = priority;
    s->hash = hash;
    s->next = r->streams;
    r->streams = s;
    struct rstream **b = bucket_of(r, hash);
    s->hnext = *b;
    *b = s;
    r->n_streams++;
    log_info(&r->log, "stream new mount=%s encoder=%s session=%016llx priority=%u", s->mount,
             s->encoder, (unsigned long long)s->session, s->priority);
    return s;
}

static void bucket_unlink(struct relay *r, struct rstream *s)
{
    for (struct rstream **pp = bucket_of(r, s->hash); *pp; pp = &(*pp)->hnext)
        if (*pp == s) {
            *pp = s->hnext;
            return;
        }
}

static void stream_free(struct rstream *s)
{
    for (uint32_t i = 0; i < RELAY_RING; i++)
        msgref_put(s->ring[i].m);
    free(s->ring);
    free(s);
}

static void warn_limited(struct relay *r, const char *peer, const char *what,
                         const struct wire_frame *f)
{
    uint64_t suppressed;
    if (log_limit_pass(&r->udp_ll, ev_now(r->loop), &suppressed))
        log_warn(&r->log, "peer=%s dropped frame: %s mount=%s encoder=%s seq=%llu suppressed=%llu",
                 peer, what, f->mount, f->encoder, (unsigned long long)f->seq,
                 (unsigned long long)suppressed);
}

static bool pts_in_range(struct relay *r, uint64_t pts_us)
{
    /* A ±max-skew guard (seconds) needs the wall clock once per loop iteration, not per frame. */
    if (r->wall_at != ev_now(r->loop) || r->wall_us == 0) {
        r->wall_at = ev_now(r->loop);
        r->wall_us = clock_wall_us();
    }
    uint64_t now = r->wall_us, skew = (uint64_t)(r->opt.max_skew_s * 1e6);
    return pts_us + skew >= now && pts_us <= now + skew;
}

void relay_frame_in(struct relay *r, const struct wire_frame *f, const uint8_t *raw, size_t len,
                    struct rpeer *from, const char *peer_name)
{
    uint32_t n_mount;
    uint64_t hash = stream_hash(f->mount, f->encoder, f->session);
    r->c.frames_in++;
    struct rstream *s = find_stream(r, f, hash, &n_mount);
    if (!s) {
        if (!pts_in_range(r, f->pts_us)) {
            r->c.skew_drops++;
            warn_limited(r, peer_name, "pts outside --max-skew", f);
            return;
        }
        if (n_mount >= RELAY_MAX_SESSIONS_PER_MOUNT || r->n_streams >= RELAY_MAX_STREAMS) {
            r->c.session_drops++;
            warn_limited(r, peer_name, "too many sessions for mount", f);
            return;
        }
        if (!(s = new_stream(r, f, hash)))
            return;
    }
    enum seq_verdict v = classify(s, f->seq);
    if (v == SEQ_DUP) {
        s->dups++;
        r->c.dups++;
        return;
    }
    if (v == SEQ_STALE) {
        s->stale++;
        r->c.stale++;
        warn_limited(r, peer_name, "stale seq (behind the dedupe window)", f);
        return;
    }
    if (!pts_in_range(r, f->pts_us)) {
        r->c.skew_drops++;
        warn_limited(r, peer_name, "pts outside --max-skew", f);
        return;
    }
    struct msgref *m = msgpool_new(&r->pool, (uint32_t)(WIRE_LEN_BYTES + len));
    if (!m)
        return;
    wire_put_len(m->data, (uint32_t)len);
    memcpy(m->data + WIRE_LEN_BYTES, raw, len);

    struct rslot *slot = &s->ring[f->seq & (RELAY_RING - 1)];
    msgref_put(slot->m);
    slot->m = m; /* the ring's reference */
    slot->seq = f->seq;
    slot->rx = ev_now(r->loop);
    if (s->frames == 0 || f->seq < s->expire_seq)
        s->expire_seq = f->seq;
    if (s->frames == 0 || f->seq > s->max_seq)
        s->max_seq = f->seq;
    s->frames++;
    s->last_rx = slot->rx;
    r->c.frames_fwd++;

    for (struct rpeer *p = r->peers; p; p = p->next)
        if (p != from && p->subscribed && !p->closing && rpeer_wants(p, s->mount))
            rpeer_send_frame(p, m);
}

static const struct wire_resume *find_resume(const struct wire_subscribe *sub,
                                             const struct rstream *s)
{
    for (uint32_t i = 0; i < sub->n_resume; i++) {
        const struct wire_resume *res = &sub->resume[i];
        if (res->session == s->session && strcmp(res->mount, s->mount) == 0 &&
            strcmp(res->encoder, s->encoder) == 0)
            return res;
    }
    return NULL;
}

void relay_catchup(struct relay *r, struct rpeer *p, const struct wire_subscribe *sub)
{
    double oldest_rx = ev_now(r->loop) - r->opt.catchup_s;
    for (struct rstream *s = r->streams; s && !p->closing; s = s->next) {
        if (s->frames == 0 || !rpeer_wants(p, s->mount))
            continue;
        uint64_t lo = s->max_seq >= RELAY_RING - 1 ? s->max_seq - (RELAY_RING - 1) : 0;
        const struct wire_resume *res = find_resume(sub, s);
        if (res && res->next_seq > lo)
            lo = res->next_seq;
        uint64_t sent = 0;
        for (uint64_t seq = lo; seq <= s->max_seq && !p->closing; seq++) {
            struct rslot *slot = &s->ring[seq & (RELAY_RING - 1)];
            if (slot->m && slot->seq == seq && slot->rx >= oldest_rx) {
                rpeer_send_frame(p, slot->m);
                sent++;
            }
        }
        log_info(&r->log, "peer=%s catch-up mount=%s encoder=%s from_seq=%llu frames=%llu",
                 p->link.peer, s->mount, s->encoder, (unsigned long long)lo,
                 (unsigned long long)sent);
    }
}

void relay_expire(struct relay *r)
{
    double now = ev_now(r->loop), oldest_rx = now - r->opt.catchup_s;
    struct rstream **pp = &r->streams;
    while (*pp) {
        struct rstream *s = *pp;
        /* Frames arrive in seq order, give or take a reorder: walk up from the oldest held one
         * while they are expired - a few slots a tick, not the whole ring of every stream. A
         * late frame below newer ones holds them until it expires itself (bounded by the ring). */
        uint64_t seq = s->expire_seq;
        if (s->max_seq >= RELAY_RING && seq < s->max_seq - (RELAY_RING - 1)) {
            /* A seq leap left frames below the ring window: one scan of every slot. */
            for (uint32_t i = 0; i < RELAY_RING; i++) {
                struct rslot *slot = &s->ring[i];
                if (slot->m && slot->rx < oldest_rx) {
                    msgref_put(slot->m);
                    slot->m = NULL;
                }
            }
            seq = s->max_seq - (RELAY_RING - 1);
        }
        for (; s->frames > 0 && seq <= s->max_seq; seq++) {
            struct rslot *slot = &s->ring[seq & (RELAY_RING - 1)];
            if (!slot->m || slot->seq != seq)
                continue;
            if (slot->rx >= oldest_rx)
                break;
            msgref_put(slot->m);
            slot->m = NULL; /* seq stays: late copies of it are still caught as stale */
        }
        s->expire_seq = seq;
        /* Keep an idle stream's dedupe state a while: a late copy must not look new. */
        if (now - s->last_rx > r->opt.catchup_s + 60) {
            log_info(&r->log, "stream expired mount=%s encoder=%s session=%016llx frames=%llu",
                     s->mount, s->encoder, (unsigned long long)s->session,
                     (unsigned long long)s->frames);
            *pp = s->next;
            bucket_unlink(r, s);
            r->n_streams--;
            stream_free(s);
            continue;
        }
        pp = &s->next;
    }
}

void relay_streams_free(struct relay *r)
{
    while (r->streams) {
        struct rstream *s = r->streams;
        r->streams = s->next;
        stream_free(s);
    }
    r->n_streams = 0;
    memset(r->buckets, 0, sizeof(r->buckets));
    msgpool_free(&r->pool);
}
