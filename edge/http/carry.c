/* carry.c - listeners carried across a handoff restart (docs/architecture.md §7.12): paused in the
 * old process, written out as a record, adopted by the new one with the same socket.
 *
 * A listener is a position in a mount's rewind buffer, and the new process adopts the same
 * buffer (the same memfd, the same absolute positions), so carrying one is carrying its few
 * numbers: position, download end, pacing (start PTS and wall time, the real-time limit carried
 * so far), ICY phase (audio bytes to the next block, the block half sent, the last title sent)
 * and whatever response bytes were not written yet. Nothing is re-sent and nothing skipped. */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "handoff.h"
#include "http.h"
#include "request.h"

enum { CARRY_REQUEST = 0, CARRY_RESPONSE = 1, CARRY_STREAM = 2 };

static int kind_of(const struct elistener *l)
{
    if (l->mount)
        return CARRY_STREAM;
    return l->state == L_REQUEST ? CARRY_REQUEST : CARRY_RESPONSE;
}

bool carry_can(const struct elistener *l)
{
    if (l->closing || l->ssl || l->pending || l->fd < 0 || l->pre || l->ad)
        return false; /* a preroll clip or ad request is this process's (docs §7.14) */
    if (kind_of(l) == CARRY_RESPONSE && (!l->out || l->out_len - l->out_off > CARRY_OUT_MAX))
        return false;
    return !l->out || l->out_len - l->out_off <= CARRY_OUT_MAX;
}

void carry_pause(struct elistener *l)
{
    struct ehttp *h = l->http;
    ev_io_stop(h->loop, &l->rio);
    ev_io_stop(h->loop, &l->wio);
    ev_timer_stop(h->loop, &l->idle);
    if (l->mount)
        listener_unlink_wait(l);
    l->paused = true;
}

void carry_resume(struct elistener *l)
{
    struct ehttp *h = l->http;
    if (!l->paused || l->closing)
        return;
    l->paused = false;
    ev_io_start(h->loop, &l->rio);
    if (l->mount)
        return listener_write_audio(l);
    if (l->state == L_REQUEST)
        ev_timer_start(h->loop, &l->idle);
    else
        ev_io_start(h->loop, &l->wio);
}

static void put_bytes(struct ho_buf *b, const void *p, uint32_t n)
{
    ho_put_u32(b, n);
    ho_put(b, p, n);
}

void carry_export(const struct elistener *l, struct ho_buf *b)
{
    int kind = kind_of(l);
    ho_put_u8(b, (uint8_t)kind);
    ho_put_u64(b, l->id);
    ho_put_str(b, l->peer);
    ho_put_str(b, l->ua);
    ho_put_str(b, l->host);
    ho_put_u8(b, (uint8_t)(l->icy | l->head << 1 | l->wants_html << 2));
    ho_put_f64(b, l->accepted);
    if (kind == CARRY_REQUEST)
        return put_bytes(b, l->req ? l->req : "", l->req ? l->req_len : 0);
    put_bytes(b, l->out ? l->out + l->out_off : "", l->out ? l->out_len - l->out_off : 0);
    if (kind == CARRY_RESPONSE)
        return;
    ho_put_str(b, l->mount->name);
    ho_put_u64(b, l->pos);
    ho_put_u64(b, l->end_abs);
    ho_put_u8(b, (uint8_t)(l->paced | l->lim_set << 1));
    ho_put_f64(b, l->burst_s);
    ho_put_u64(b, l->lim_abs);
    ho_put_u64(b, l->lim_dur_us);
    ho_put_u64(b, l->start_pts_us);
    ho_put_f64(b, l->start_wall);
    ho_put_u64(b, l->bytes_sent);
    ho_put_u32(b, l->metaint_left);
    ho_put_u64(b, l->title_sent);
    ho_put_f64(b, l->timeshift_s);
    ho_put_f64(b, l->preroll_s);
    ho_put_u8(b, l->hls_seg);
    ho_put_str(b, l->play_sid);
    put_bytes(b, l->meta_ptr ? l->meta_ptr + l->meta_off : (const uint8_t *)"",
              l->meta_ptr ? l->meta_len - l->meta_off : 0);
}

/* A length-prefixed byte run of at most `max` bytes, pointing into b; NULL (b->bad) if not. */
static const uint8_t *get_bytes(struct ho_buf *b, uint32_t max, uint32_t *n)
{
    *n = ho_get_u32(b);
    if (b->bad || *n > max || *n > ho_left(b)) {
        b->bad = true;
        *n = 0;
        return NULL;
    }
    const uint8_t *p = b->p + b->off;
    b->off += *n;
    return p;
}

static bool set_out(struct elistener *l, const uint8_t *p, uint32_t n)
{
    if (!n)
        return true;
    if (!(l->out = malloc(n)))
        return false;
    memcpy(l->out, p, n);
    l->out_len = n;
    l->out_off = 0;
    return true;
}

/* The streaming part of the record; *why on error. */
static enum fc_err adopt_stream(struct elistener *l, struct ho_buf *b, const char **why)
{
    struct ehttp *h = l->http;
    char name[WIRE_MOUNT_MAX + 1];
    ho_get_str(b, name, sizeof(name));
    l->pos = ho_get_u64(b);
    l->end_abs = ho_get_u64(b);
    uint8_t f = ho_get_u8(b);
    l->paced = f & 1;
    l->lim_set = f >> 1 & 1;
    l->burst_s = ho_get_f64(b);
    l->lim_abs = ho_get_u64(b);
    l->lim_dur_us = ho_get_u64(b);
    l->start_pts_us = ho_get_u64(b);
    l->start_wall = ho_get_f64(b);
    l->bytes_sent = ho_get_u64(b);
    l->metaint_left = ho_get_u32(b);
    l->title_sent = ho_get_u64(b);
    l->timeshift_s = ho_get_f64(b);
    l->preroll_s = ho_get_f64(b);
    l->hls_seg = ho_get_u8(b);
    ho_get_str(b, l->play_sid, sizeof(l->play_sid));
    uint32_t mn;
    const uint8_t *meta = get_bytes(b, 16 * 255 + 1, &mn);
    if (b->bad || ho_left(b))
        return *why = "malformed listener record", FC_PROTO;
    struct emount *m = edge_mount_find(h->core, name, strlen(name));
    if (!m)
        return *why = "unknown mount", FC_PROTO;
    const struct rewind *rw = &m->rw;
    if (l->pos < rw->abs_start || l->pos > rw->abs_end || l->end_abs > rw->abs_end ||
        (l->lim_set && (l->lim_abs < l->pos || l->lim_abs > rw->abs_end)) ||
        l->metaint_left > h->opt.metaint || l->start_pts_us > rw->end_pts_us)
        return *why = "position outside the rewind buffer", FC_PROTO;
    /* Pacing turns these into integer µs (out_stream.c): NaN, infinite or huge ones would not
     * convert. A start later than our clock (a listener accepted while this process started)
     * counts from now. */
    if (!(l->burst_s >= 0 && l->burst_s <= REQUEST_MAX_BURST_S) ||
        !(l->start_wall >= 0 && l->start_wall < 1e12))
        return *why = "malformed listener record", FC_PROTO;
    if (l->start_wall > http_now(h))
        l->start_wall = http_now(h);
    if (mn && !l->icy)
        return *why = "an ICY block for a listener without ICY", FC_PROTO;
    if (mn) {
        if (!(l->meta = msgref_new(mn)))
            return *why = "out of memory", FC_NOMEM;
        memcpy(l->meta->data, meta, mn);
        l->meta_ptr = l->meta->data;
        l->meta_len = mn;
        l->meta_off = 0;
    }
    struct hmount *hm = hmount_of(h, m);
    if (!hm)
        return *why = "out of memory", FC_NOMEM;
    l->mount = m;
    l->hm = hm;
    list_add(&hm->listeners, &l->mlink);
    hm->n_listeners++;
    hm->n_icy += l->icy;
    l->state = l->out ? L_RESPONSE : L_STREAM;
    return FC_OK;
}

enum fc_err carry_adopt(struct ehttp *h, int fd, const uint8_t *p, size_t len, const char **why)
{
    struct ho_buf b = {.p = (uint8_t *)p, .len = len};
    int kind = ho_get_u8(&b);
    uint64_t id = ho_get_u64(&b);
    char peer[64];
    ho_get_str(&b, peer, sizeof(peer));
    if (b.bad || kind > CARRY_STREAM) {
        close(fd);
        return *why = "malformed listener record", FC_PROTO;
    }
    struct elistener *l = listener_accept(h, fd, NULL, peer);
    if (!l)
        return *why = "out of memory", FC_NOMEM;
    if (id >> 40 == h->worker)
        l->id = id; /* the admin API's id names the worker: kept when it stays on that one */
    ho_get_str(&b, l->ua, sizeof(l->ua));
    ho_get_str(&b, l->host, sizeof(l->host));
    uint8_t f = ho_get_u8(&b);
    l->icy = f & 1;
    l->head = f >> 1 & 1;
    l->wants_html = f >> 2 & 1;
    l->accepted = ho_get_f64(&b);
    if (!(l->accepted >= 0 && l->accepted < 1e12)) /* NaN too: the TTFB sum would be NaN */
        l->accepted = 0;
    uint32_t n;
    const uint8_t *bytes = get_bytes(&b, kind == CARRY_REQUEST ? EDGE_REQ_MAX - 1 : CARRY_OUT_MAX,
                                     &n);
    enum fc_err err = FC_OK;
    if (b.bad || (kind != CARRY_STREAM && ho_left(&b)) || (kind == CARRY_RESPONSE && !n))
        err = (*why = "malformed listener record", FC_PROTO);
    else if (kind == CARRY_REQUEST && n) {
        memcpy(h->req_scratch, bytes, n);
        listener_parse(l, h->req_scratch, n);
        if (!l->closing && l->state == L_REQUEST) { /* still incomplete: keep the bytes */
            if (!(l->req = malloc(EDGE_REQ_MAX)))
                err = (*why = "out of memory", FC_NOMEM);
            else
                memcpy(l->req, bytes, n), l->req_len = n;
        }
        return err == FC_OK ? FC_OK : (listener_close(l, *why), err);
    } else if (kind != CARRY_REQUEST && !set_out(l, bytes, n))
        err = (*why = "out of memory", FC_NOMEM);
    if (err == FC_OK && kind != CARRY_REQUEST) {
        ev_timer_stop(h->loop, &l->idle);
        l->state = L_RESPONSE;
        if (kind == CARRY_STREAM)
            err = adopt_stream(l, &b, why);
    }
    if (err != FC_OK) {
        listener_close(l, *why);
        return err;
    }
    if (l->mount)
        listener_write_audio(l);
    else if (kind == CARRY_RESPONSE)
        ev_io_start(h->loop, &l->wio);
    return FC_OK;
}
