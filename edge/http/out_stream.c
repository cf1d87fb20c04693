/*
 * out_stream.c - writing a mount's audio to its listeners (docs/architecture.md §7.3).
 *
 * A listener is a position in the mount's rewind buffer. Each write is one writev straight from
 * the slabs: the rest of the response head, the audio and, for ICY listeners, the metadata block
 * due inside it (Shoutcast/Icecast convention: a block after every icy-metaint audio bytes).
 *
 * Cadence (issue 9): the kernel's cost is per write, not per byte, so a listener whose player
 * already holds seconds of audio (its burst) is written once every --write-interval (default
 * 1 s), with everything due at once, from a timer wheel ticked every EDGE_TICK_S: listeners who
 * connected at different moments sit in different slots, so the writes spread over the second.
 * A listener holding less (`?burst=0`, --burst 0) is written as audio arrives (every
 * EDGE_WAKE_S at most, caught-up live listeners) or as real time allows (time-shifted ones).
 *
 * Bookkeeping is O(1) per listener and write: a parked listener is on exactly one list (the
 * wheel slot, the mount's waiting or paced list, or the mount's blocked list while its socket is
 * full; the lists are the HTTP side's, struct hmount); only blocked listeners can fall behind, so
 * only they are checked against --max-lag, once per second per mount. A time-shifted listener's
 * real-time limit is carried forward frame by frame (the audio duration it has been allowed),
 * not sought in the index per write.
 *
 * The core drives this through its hooks (struct edge_hooks, edge/core/core.h): `appended` marks
 * a mount's waiting listeners due, `tick` writes what is due.
 */
#include <errno.h>
#include <stdlib.h>
#include <sys/uio.h>
#include <unistd.h>
#include "http.h"
#include "preroll.h"

#define STREAM_IOV_MAX 16   /* iovecs per writev: head, ICY block and audio pieces */
#define STREAM_ROUNDS 4     /* writevs per wake-up before yielding to other listeners */

void listener_unlink_wait(struct elistener *l)
{
    if (l->linked) {
        list_del(&l->wlink);
        l->linked = false;
    }
}

static void link_to(struct elistener *l, struct list_node *list)
{
    listener_unlink_wait(l);
    list_add(list, &l->wlink);
    l->linked = true;
}

/* Socket full: wait for writability, on the mount's blocked list (the --max-lag walk). */
static void block(struct elistener *l)
{
    link_to(l, &l->hm->blocked);
    if (!ev_is_active(&l->wio))
        ev_io_start(l->http->loop, &l->wio);
}

/* --max-lag: a listener further behind where real-time playback would be. */
static bool lagging(struct elistener *l, double now)
{
    struct emount *m = l->mount;
    if (l->end_abs || l->state != L_STREAM)
        return false;
    uint64_t at = rewind_pts_at(&m->rw, l->pos);
    uint64_t should = l->paced ? l->start_pts_us + (uint64_t)((now - l->start_wall) * 1e6)
                               : m->rw.end_pts_us;
    double lag = should > at ? (should - at) / 1e6 : 0;
    return lag > l->http->opt.max_lag_s + l->burst_s;
}

/*
 * How far a time-shifted listener may be written now: its burst plus the time since it started,
 * in audio duration from where it started, carried forward from the previous limit frame by
 * frame (no index seek per write).
 */
static uint64_t paced_limit(struct elistener *l)
{
    struct emount *m = l->mount;
    double allowed_s = l->burst_s + http_now(l->http) - l->start_wall;
    uint64_t allowed_us = (uint64_t)(allowed_s * 1e6);
    if (!l->lim_set) {
        l->lim_set = true;
        l->lim_abs = l->pos;
        l->lim_dur_us = 0;
    }
    while (l->lim_dur_us < allowed_us && l->lim_abs < m->rw.abs_end) {
        const uint8_t *frame;
        uint32_t len;
        uint64_t dur;
        uint64_t next = rewind_frame_at(&m->rw, l->lim_abs, 0, &frame, &len, &dur);
        if (!next)
            break;
        l->lim_abs = next;
        l->lim_dur_us += dur;
    }
    return l->lim_abs;
}

/* How far this listener may be written now: live end, download end, or real time. */
static uint64_t write_limit(struct elistener *l)
{
    if (l->end_abs)
        return l->end_abs;
    if (!l->paced)
        return l->mount->rw.abs_end;
    return paced_limit(l);
}

/* Audio the listener's player holds beyond what it has played (µs), if it began playing at once:
 * its burst, for a listener caught up at `limit`. */
static int64_t ahead_us(const struct elistener *l, uint64_t limit)
{
    const struct emount *m = l->mount;
    double played_s = http_now(l->http) - l->start_wall;
    if (l->paced && limit < m->rw.abs_end)
        return (int64_t)(l->burst_s * 1e6); /* the limit is its burst ahead of real time */
    return (int64_t)m->rw.end_pts_us - (int64_t)l->start_pts_us - (int64_t)(played_s * 1e6);
}

/* Caught up at `limit`: wait on the wheel (seconds of audio held), or for the next audio. */
static void park(struct elistener *l, uint64_t limit)
{
    struct ehttp *h = l->http;
    struct emount *m = l->mount;
    struct hmount *hm = l->hm;
    double iv = h->opt.write_interval_s;
    ev_io_stop(h->loop, &l->wio);
    if (iv > 0 && !l->end_abs && ahead_us(l, limit) >= (iv + EDGE_CADENCE_MARGIN_S) * 1e6) {
        uint32_t k = (uint32_t)(iv / EDGE_TICK_S + 0.5);
        if (k < 1)
            k = 1;
        if (k >= EDGE_WHEEL_SLOTS)
            k = EDGE_WHEEL_SLOTS - 1;
        return link_to(l, &h->wheel[(h->wheel_pos + k - 1) % EDGE_WHEEL_SLOTS]);
    }
    link_to(l, l->paced && limit < m->rw.abs_end ? &hm->paced : &hm->waiting);
}

/* A response head still to send goes first, in the same writev as the audio. */
static int add_head(struct elistener *l, struct iovec *iov)
{
    if (!l->out)
        return 0;
    iov[0].iov_base = l->out + l->out_off;
    iov[0].iov_len = l->out_len - l->out_off;
    return 1;
}

static void head_sent(struct elistener *l, size_t n)
{
    if (n)
        http_ttfb(l);
    l->out_off += (uint32_t)n;
    l->bytes_sent += n; /* the response head counts: it went to the listener */
    if (l->out_off < l->out_len)
        return;
    free(l->out);
    l->out = NULL;
    l->state = L_STREAM;
    free(l->req);
    l->req = NULL;
    l->url = NULL;
}

/* What one writev carries; `meta_at` is the iovec of the ICY block, -1 if none. */
struct plan {
    struct iovec iov[STREAM_IOV_MAX];
    int n;
    int head_at, meta_at, pre_at;  /* -1 = none; pre_at: a preroll clip's bytes */
    bool meta_new;          /* the block was begun for this writev (undone if not reached) */
    uint64_t title_before;  /* l->title_sent before it was begun */
    size_t bytes;
};

/* Audio from l->pos up to `limit` (EDGE_WRITE_MAX at most) with, for ICY listeners, at most one
 * metadata block where the metaint count runs out. */
static void plan_audio(struct elistener *l, uint64_t limit, struct plan *p)
{
    struct emount *m = l->mount;
    uint64_t at = l->pos;
    size_t budget = limit > at ? (size_t)(limit - at) : 0;
    uint32_t left = l->meta_ptr ? l->http->opt.metaint : l->metaint_left;
    if (budget > EDGE_WRITE_MAX)
        budget = EDGE_WRITE_MAX;
    while (budget > 0 && p->n < STREAM_IOV_MAX - 1) {
        size_t chunk = l->icy && budget > left ? left : budget;
        int k = rewind_iov(&m->rw, at, p->iov + p->n, STREAM_IOV_MAX - 1 - p->n, chunk);
        if (k == 0)
            break;
        size_t got = 0;
        for (int i = 0; i < k; i++)
            got += p->iov[p->n + i].iov_len;
        p->n += k;
        p->bytes += got;
        at += got;
        budget -= got;
        if (!l->icy)
            continue;
        left -= (uint32_t)got;
        if (left > 0)
            continue;
        if (p->meta_at >= 0)
            break; /* one block per writev keeps the bookkeeping simple */
        p->title_before = l->title_sent;
        icy_meta_begin(l, at);
        p->meta_new = true;
        p->meta_at = p->n;
        p->iov[p->n].iov_base = (void *)l->meta_ptr;
        p->iov[p->n++].iov_len = l->meta_len;
        p->bytes += l->meta_len;
        left = l->http->opt.metaint;
    }
}

static void plan_write(struct elistener *l, uint64_t limit, struct plan *p)
{
    p->n = 0;
    p->head_at = p->meta_at = p->pre_at = -1;
    p->meta_new = false;
    p->bytes = 0;
    if (add_head(l, p->iov)) {
        p->head_at = p->n++;
        p->bytes += p->iov[0].iov_len;
    }
    if (l->pre) {
        /* A preroll clip (preroll.c) goes out alone after the head, ICY blocks included; the
         * live audio follows in the next writev. */
        p->pre_at = p->n;
        preroll_iov(l, &p->iov[p->n++]);
        p->bytes += p->iov[p->pre_at].iov_len;
        return;
    }
    if (l->icy && !l->meta_ptr && l->metaint_left == 0)
        icy_meta_begin(l, l->pos); /* the count ran out exactly at the end of the last write */
    if (l->meta_ptr) {
        p->meta_at = p->n;
        p->iov[p->n].iov_base = (void *)(l->meta_ptr + l->meta_off);
        p->iov[p->n++].iov_len = l->meta_len - l->meta_off;
        p->bytes += l->meta_len - l->meta_off;
    }
    plan_audio(l, limit, p);
}

/* A block begun for a writev that did not reach it is given back (the title stays due). */
static void undo_meta(struct elistener *l, const struct plan *p)
{
    if (p->meta_new) {
        icy_release(l);
        l->title_sent = p->title_before;
    }
}

/* Account `w` bytes written of plan `p`. */
static void advance(struct elistener *l, const struct plan *p, size_t w)
{
    l->http->c.bytes_sent += w;
    bool meta_reached = false;
    for (int i = 0; i < p->n; i++) {
        size_t len = p->iov[i].iov_len, done = w < len ? w : len;
        w -= done;
        if (i == p->head_at) {
            head_sent(l, done);
        } else if (i == p->pre_at) {
            preroll_sent(l, done);
        } else if (i == p->meta_at) {
            if (done == 0)
                break;
            meta_reached = true;
            l->meta_off += (uint32_t)done;
            l->bytes_sent += done;
            if (l->meta_off == l->meta_len) {
                icy_release(l);
                l->metaint_left = l->http->opt.metaint;
            }
        } else {
            l->pos += done;
            l->bytes_sent += done;
            if (l->icy)
                l->metaint_left -= (uint32_t)done;
        }
        if (done < len)
            break;
    }
    /* The writev ended before the block (in the head or the audio before it, or just before
     * it): a block begun for it is given back, else it would go out first next time, ahead of
     * the audio still due before it. */
    if (!meta_reached)
        undo_meta(l, p);
}

void listener_write_audio(struct elistener *l)
{
    struct emount *m = l->mount;
    struct plan p;
    if (l->pos < m->rw.abs_start)
        return listener_close(l, "fell behind the rewind buffer");
    for (int round = 0; round < STREAM_ROUNDS; round++) {
        uint64_t limit = write_limit(l);
        if (!l->out && !l->meta_ptr && !l->pre && l->pos >= limit) {
            if (l->end_abs)
                return listener_close(l, "download complete");
            return park(l, limit);
        }
        plan_write(l, limit, &p);
        if (p.n == 0)
            return park(l, limit);
        ssize_t w = l->ssl ? tls_writev(l, p.iov, p.n) : writev(l->fd, p.iov, p.n);
        l->hm->audio_writes++;
        if (w < 0) {
            undo_meta(l, &p);
            if (errno != EAGAIN && errno != EINTR)
                return listener_close(l, strerror(errno));
            return block(l);
        }
        advance(l, &p, (size_t)w);
        if ((size_t)w < p.bytes)
            return block(l); /* socket full: wait for writability */
    }
    block(l); /* more is due: continue when the loop comes back to it */
}

/* Write every listener of a detached list; those that catch up park again elsewhere. */
static void wake_list(struct list_node *list)
{
    struct list_node woken;
    if (list_empty(list))
        return;
    woken.next = list->next;
    woken.prev = list->prev;
    woken.next->prev = &woken;
    woken.prev->next = &woken;
    list_init(list);
    while (!list_empty(&woken)) {
        struct elistener *l = container_of(woken.next, struct elistener, wlink);
        list_del(&l->wlink);
        l->linked = false;
        /* Write now: a listener whose socket takes it all never touches epoll. */
        listener_write_audio(l);
    }
}

/* Only a listener whose socket is full can fall behind: parked ones are caught up. */
static void check_lag(struct hmount *hm, double now)
{
    if (now < hm->next_lag_walk)
        return;
    hm->next_lag_walk = now + 1;
    struct list_node *n = hm->blocked.next;
    while (n != &hm->blocked) {
        struct elistener *l = container_of(n, struct elistener, wlink);
        n = n->next; /* listener_close() unlinks l */
        if (lagging(l, now))
            listener_close(l, "lagging more than --max-lag behind real time");
    }
}

static void wake_wheel(struct ehttp *h, double now)
{
    if (now - h->wheel_next > 1.0)
        h->wheel_next = now; /* the loop stalled: don't replay a second of slots at once */
    for (int i = 0; i < EDGE_WHEEL_SLOTS && now >= h->wheel_next; i++) {
        struct list_node *slot = &h->wheel[h->wheel_pos];
        h->wheel_pos = (h->wheel_pos + 1) % EDGE_WHEEL_SLOTS;
        h->wheel_next += EDGE_TICK_S;
        wake_list(slot);
    }
}

void edge_http_appended(void *ctx, struct emount *m)
{
    struct hmount *hm = m->http;
    preroll_check_mount(ctx, m);
    if (hm)
        hm->wake_pending = true; /* listeners are written in batches (edge_http_tick) */
}

void edge_http_tick(void *ctx)
{
    struct ehttp *h = ctx;
    double now = http_now(h);
    for (struct hmount *hm = h->hmounts; hm; hm = hm->next) {
        if (hm->wake_pending && now >= hm->next_wake) {
            hm->wake_pending = false;
            hm->next_wake = now + EDGE_WAKE_S;
            wake_list(&hm->waiting);
        }
        wake_list(&hm->paced); /* time passed: paced listeners may go on */
        check_lag(hm, now);
    }
    wake_wheel(h, now);
}

struct hmount *hmount_of(struct ehttp *h, struct emount *m)
{
    if (m->http)
        return m->http;
    struct hmount *hm = calloc(1, sizeof(*hm));
    if (!hm)
        return NULL;
    hm->m = m;
    hm->http = h;
    list_init(&hm->listeners);
    list_init(&hm->waiting);
    list_init(&hm->paced);
    list_init(&hm->blocked);
    hm->next = h->hmounts;
    h->hmounts = hm;
    m->http = hm;
    return hm;
}

void edge_http_mount_freed(void *ctx, struct emount *m)
{
    struct ehttp *h = ctx;
    struct hmount *hm = m->http;
    if (!hm)
        return;
    for (struct hmount **pp = &h->hmounts; *pp; pp = &(*pp)->next)
        if (*pp == hm) {
            *pp = hm->next;
            break;
        }
    /* Its listeners were closed by edge_http_free() first (edge_free's order). */
    m->http = NULL;
    free(hm);
}
