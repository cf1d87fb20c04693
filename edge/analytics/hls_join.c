/* hls_join.c - see hls_join.h. */
#include "hls_join.h"

#include <stdlib.h>
#include <string.h>
#include <sodium.h>

static uint64_t key_hash(const char *mount, const char *key)
{
    uint8_t d[8];
    crypto_generichash_state st;
    crypto_generichash_init(&st, NULL, 0, sizeof(d));
    crypto_generichash_update(&st, (const uint8_t *)mount, strlen(mount) + 1);
    crypto_generichash_update(&st, (const uint8_t *)key, strlen(key));
    crypto_generichash_final(&st, d, sizeof(d));
    uint64_t h;
    memcpy(&h, d, sizeof(h));
    return h;
}

static struct hls_open **find(struct hls_join *j, uint64_t hash, const char *mount,
                              const char *key)
{
    struct hls_open **pp = &j->buckets[hash % HLS_JOIN_BUCKETS];
    for (; *pp; pp = &(*pp)->next)
        if ((*pp)->hash == hash && strcmp((*pp)->s.mount, mount) == 0 &&
            strcmp((*pp)->s.id, key) == 0)
            return pp;
    return pp;
}

/* Finish `o` (unlinked by the caller) and submit it. */
static void close_one(struct hls_join *j, struct hls_open *o)
{
    struct an_session *s = &o->s;
    s->end_us = s->end_us + (uint64_t)(o->last_audio_s * 1e6);
    s->is_short = s->listened_s < j->min_s;
    j->submit(j->ctx, s);
    free(o);
    j->n--;
}

static void sweep(struct hls_join *j, double idle_s)
{
    double now = ev_now(j->loop);
    for (size_t b = 0; b < HLS_JOIN_BUCKETS; b++) {
        struct hls_open **pp = &j->buckets[b];
        while (*pp) {
            struct hls_open *o = *pp;
            if (now - o->last_at >= idle_s) {
                *pp = o->next;
                close_one(j, o);
            } else {
                pp = &o->next;
            }
        }
    }
}

static void on_sweep(EV_P_ ev_timer *t, int revents)
{
    sweep(container_of(t, struct hls_join, sweep), HLS_JOIN_IDLE_S);
}

void hls_join_start(struct hls_join *j, struct ev_loop *loop, double min_s,
                    void (*submit)(void *ctx, const struct an_session *s), void *ctx)
{
    j->loop = loop;
    j->min_s = min_s;
    j->submit = submit;
    j->ctx = ctx;
    ev_timer_init(&j->sweep, on_sweep, HLS_JOIN_SWEEP_S, HLS_JOIN_SWEEP_S);
    ev_timer_start(loop, &j->sweep);
}

/* Close the session idle longest (the table is full). */
static void close_oldest(struct hls_join *j)
{
    struct hls_open **best = NULL;
    for (size_t b = 0; b < HLS_JOIN_BUCKETS; b++)
        for (struct hls_open **pp = &j->buckets[b]; *pp; pp = &(*pp)->next)
            if (!best || (*pp)->last_at < (*best)->last_at)
                best = pp;
    if (best) {
        struct hls_open *o = *best;
        *best = o->next;
        close_one(j, o);
    }
}

void hls_join_hit(struct hls_join *j, const struct an_hls_hit *h)
{
    if (!j->submit)
        return;
    uint64_t hash = key_hash(h->mount, h->key);
    struct hls_open **pp = find(j, hash, h->mount, h->key), *o = *pp;
    if (!o) {
        if (j->n >= HLS_JOIN_MAX)
            close_oldest(j), pp = find(j, hash, h->mount, h->key);
        if (!(o = calloc(1, sizeof(*o))))
            return;
        o->hash = hash;
        memcpy(o->s.id, h->key, sizeof(o->s.id));
        memcpy(o->s.mount, h->mount, sizeof(o->s.mount));
        o->s.proto = AN_HLS;
        o->s.start_us = h->at_us;
        memcpy(o->s.ua, h->ua, sizeof(o->s.ua));
        memcpy(o->s.client, h->client, sizeof(o->s.client));
        *pp = o;
        j->n++;
    }
    struct an_session *s = &o->s;
    o->last_at = ev_now(j->loop);
    o->requests++;
    s->end_us = h->at_us > s->end_us ? h->at_us : s->end_us;
    s->bytes += h->bytes;
    if (h->pts_first_us) {
        o->last_audio_s = h->audio_s;
        s->listened_s += h->audio_s;
        if (!s->pts_first_us || h->pts_first_us < s->pts_first_us)
            s->pts_first_us = h->pts_first_us;
        if (h->pts_last_us > s->pts_last_us)
            s->pts_last_us = h->pts_last_us;
    }
}

size_t hls_join_count(const struct hls_join *j)
{
    return j->n;
}

void hls_join_each(const struct hls_join *j, void (*fn)(void *ctx, const struct hls_open *o),
                   void *ctx)
{
    for (size_t b = 0; b < HLS_JOIN_BUCKETS; b++)
        for (const struct hls_open *o = j->buckets[b]; o; o = o->next)
            fn(ctx, o);
}

bool hls_join_adopt(struct hls_join *j, const struct hls_open *in)
{
    if (j->n >= HLS_JOIN_MAX || memchr(in->s.id, 0, sizeof(in->s.id)) == NULL ||
        memchr(in->s.mount, 0, sizeof(in->s.mount)) == NULL)
        return false;
    uint64_t hash = key_hash(in->s.mount, in->s.id);
    struct hls_open **pp = find(j, hash, in->s.mount, in->s.id);
    if (*pp)
        return false;
    struct hls_open *o = malloc(sizeof(*o));
    if (!o)
        return false;
    *o = *in;
    o->hash = hash;
    o->next = NULL;
    o->s.ua[sizeof(o->s.ua) - 1] = o->s.client[sizeof(o->s.client) - 1] = '\0';
    *pp = o;
    j->n++;
    return true;
}

void hls_join_flush(struct hls_join *j)
{
    if (!j->loop)
        return;
    sweep(j, -1);
    ev_timer_stop(j->loop, &j->sweep);
}

void hls_join_free(struct hls_join *j)
{
    for (size_t b = 0; b < HLS_JOIN_BUCKETS; b++)
        while (j->buckets[b]) {
            struct hls_open *o = j->buckets[b];
            j->buckets[b] = o->next;
            free(o);
        }
    j->n = 0;
    if (j->loop)
        ev_timer_stop(j->loop, &j->sweep);
}
