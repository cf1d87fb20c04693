/* edge_handoff.c - see edge_handoff.h. The old process's side is a small state machine on the loop (the
 * workers hand their listeners over asynchronously); the new process's side runs once, with
 * bounded blocking reads, before its loop starts. */
#include "edge_handoff.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include "edge.h"
#include "handoff.h"
#include "analytics/analytics.h"
#include "sdnotify.h"

enum { HS_IDLE, HS_COLLECT, HS_WAIT_READY };

static struct edge_handoff *ho_of(struct edge *e)
{
    return &e->ho;
}

/* ---- the old process ---- */

static void freeze(struct edge *e, bool on)
{
    struct core *c = &e->core;
    for (int i = 0; i < c->opt.n_relays; i++) {
        if (!c->relays[i].link.rd)
            continue;
        if (on)
            link_pause(&c->relays[i].link);
        else
            link_resume(&c->relays[i].link);
    }
    if (on) {
        ev_timer_stop(c->loop, &c->tick);
        if (c->opt.rewind_dir)
            ev_timer_stop(c->loop, &c->save_timer);
    } else {
        ev_timer_start(c->loop, &c->tick);
        if (c->opt.rewind_dir)
            ev_timer_start(c->loop, &c->save_timer);
    }
}

static void end_session(struct edge *e)
{
    struct edge_handoff *ho = ho_of(e);
    ev_io_stop(e->core.loop, &ho->ctl_w);
    ev_timer_stop(e->core.loop, &ho->timeout);
    if (ho->ctl >= 0)
        close(ho->ctl);
    ho->ctl = -1;
    ho->state = HS_IDLE;
}

static void give_up(struct edge *e, const char *why)
{
    struct edge_handoff *ho = ho_of(e);
    log_error(&e->core.log, "handoff failed: %s; serving on (listeners and relay links resumed)",
              why);
    if (ho->ctl >= 0) {
        char msg[200];
        int n = snprintf(msg, sizeof(msg), "%s", why);
        handoff_send(ho->ctl, HO_FAIL, msg, (size_t)n, NULL, 0, 0.5);
    }
    if (e->workers)
        workers_hand_end(&e->sup, false);
    struct list_node *it = e->http.all.next;
    while (it != &e->http.all) {
        struct elistener *l = container_of(it, struct elistener, alink);
        it = it->next;
        carry_resume(l);
    }
    if (e->http.listen_fd >= 0)
        ev_io_start(e->core.loop, &e->http.accept_w);
    if (e->http.tls_fd >= 0 && e->http.tls_ctx)
        ev_io_start(e->core.loop, &e->http.tls_accept_w);
    freeze(e, false);
    end_session(e);
}

static bool send_listen(struct edge *e, bool tls, uint32_t worker, int fd)
{
    struct edge_handoff *ho = ho_of(e);
    struct ho_buf b = {.p = ho->buf, .cap = HANDOFF_REC_MAX};
    ho_put_u8(&b, tls);
    ho_put_u32(&b, worker);
    if (handoff_send(ho->ctl, EH_LISTEN, b.p, b.len, &fd, 1, EDGE_HANDOFF_SEND_S) < 0)
        return false;
    ho->sent_listen++;
    return true;
}

/* A carry record `rec` (`len` bytes) from `worker` (0 = this process) with its socket. */
static bool send_listener(struct edge *e, uint32_t worker, const uint8_t *rec, size_t len, int fd)
{
    struct edge_handoff *ho = ho_of(e);
    if (len + 4 > HANDOFF_REC_MAX)
        return false;
    memcpy(ho->buf, &worker, 4);
    memcpy(ho->buf + 4, rec, len);
    if (handoff_send(ho->ctl, EH_LISTENER, ho->buf, len + 4, &fd, 1, EDGE_HANDOFF_SEND_S) < 0)
        return false;
    ho->sent_listeners++;
    return true;
}

static void collected(struct edge *e)
{
    struct edge_handoff *ho = ho_of(e);
    if (handoff_send(ho->ctl, HO_END, NULL, 0, NULL, 0, EDGE_HANDOFF_SEND_S) < 0)
        return give_up(e, strerror(errno));
    ho->state = HS_WAIT_READY;
    log_info(&e->core.log, "handoff: sent mounts=%u listeners=%u listening=%u; waiting for the "
             "successor to confirm", e->core.n_mounts, ho->sent_listeners, ho->sent_listen);
}

static void on_handed(void *ctx, struct wproc *w, uint16_t type, const uint8_t *p, size_t len,
                      int fd)
{
    struct edge *e = ctx;
    struct edge_handoff *ho = ho_of(e);
    if (ho->state != HS_COLLECT) {
        if (fd >= 0)
            close(fd);
        return;
    }
    bool ok = true;
    if (type == WREC_HANDED && fd >= 0 && len >= 1) {
        if (p[0] == WHAND_LISTENER)
            ok = send_listener(e, w->num, p + 1, len - 1, fd);
        else
            ok = send_listen(e, p[0] == WHAND_LISTEN_TLS, w->num, fd);
    }
    if (fd >= 0)
        close(fd);
    if (!ok)
        return give_up(e, "the successor stopped reading the control socket");
    if (type == WREC_HANDED_END && ho->waiting > 0 && --ho->waiting == 0)
        collected(e);
}

/* The HLS sessions being joined (analytics), EH_HLS records of whole struct hls_open. */
struct hls_send {
    struct edge *e;
    struct ho_buf b;
    bool failed;
};

static void hls_flush_rec(struct hls_send *hs)
{
    if (hs->b.len && !hs->failed &&
        handoff_send(hs->e->ho.ctl, EH_HLS, hs->b.p, hs->b.len, NULL, 0, EDGE_HANDOFF_SEND_S) < 0)
        hs->failed = true;
    hs->b.len = 0;
}

static void hls_one(void *ctx, const struct hls_open *o)
{
    struct hls_send *hs = ctx;
    if (hs->b.cap - hs->b.len < sizeof(*o))
        hls_flush_rec(hs);
    ho_put(&hs->b, o, sizeof(*o));
}

static bool hand_hls(struct edge *e)
{
    if (!hls_join_count(&e->hls))
        return true;
    struct hls_send hs = {.e = e, .b = {.p = malloc(HANDOFF_REC_MAX), .cap = HANDOFF_REC_MAX}};
    if (!hs.b.p)
        return false;
    hls_join_each(&e->hls, hls_one, &hs);
    hls_flush_rec(&hs);
    free(hs.b.p);
    return !hs.failed;
}

/* This process's own connections (all of them without workers; forwarded requests with). */
static bool hand_local(struct edge *e)
{
    struct ehttp *h = &e->http;
    uint8_t *rec = malloc(HANDOFF_REC_MAX);
    if (!rec)
        return false;
    bool ok = true;
    if (h->listen_fd >= 0) {
        ev_io_stop(h->loop, &h->accept_w);
        ok = send_listen(e, false, 0, h->listen_fd);
    }
    if (ok && h->tls_fd >= 0 && h->tls_ctx) {
        ev_io_stop(h->loop, &h->tls_accept_w);
        ok = send_listen(e, true, 0, h->tls_fd);
    }
    for (struct list_node *it = h->all.next; ok && it != &h->all; it = it->next) {
        struct elistener *l = container_of(it, struct elistener, alink);
        if (!carry_can(l))
            continue;
        carry_pause(l);
        struct ho_buf b = {.p = rec, .cap = HANDOFF_REC_MAX - 4};
        carry_export(l, &b);
        ok = !b.bad && send_listener(e, 0, rec, b.len, l->fd);
    }
    free(rec);
    return ok;
}

/* Committed: this process's own connections that were not carried (HTTPS, busy) end through
 * listener_close, so their sessions reach the store before it is flushed. */
static void close_kept(struct edge *e)
{
    struct ehttp *h = &e->http;
    struct list_node *it = h->all.next;
    while (it != &h->all) {
        struct elistener *l = container_of(it, struct elistener, alink);
        it = it->next;
        if (!l->paused)
            listener_close(l, "handoff (not carried)");
    }
}

static void on_ctl(EV_P_ ev_io *io, int revents)
{
    struct edge *e = container_of(io, struct edge, ho.ctl_w);
    struct edge_handoff *ho = ho_of(e);
    uint16_t type = 0;
    int fds[HANDOFF_FDS_MAX], nfds;
    ssize_t n = handoff_recv(ho->ctl, &type, ho->buf, HANDOFF_REC_MAX, fds, &nfds, 0.5);
    handoff_close_fds(fds, nfds);
    if (n >= 0 && type == HO_READY && ho->state == HS_WAIT_READY) {
        /* Committed: acknowledge, let the workers go, and leave without a byte on any socket. */
        handoff_send(ho->ctl, HO_READY, NULL, 0, NULL, 0, EDGE_HANDOFF_SEND_S);
        if (e->workers)
            workers_hand_end(&e->sup, true);
        close_kept(e);
        log_info(&e->core.log, "handoff: done, listeners=%u listening=%u handed over; exiting",
                 ho->sent_listeners, ho->sent_listen);
        /* Sessions that ended here are written before we go (open HLS sessions were carried). */
        analytics_close(e->an);
        e->an = NULL;
        fflush(NULL);
        _exit(0);
    }
    char why[160];
    if (n >= 0 && type == HO_FAIL)
        snprintf(why, sizeof(why), "the successor failed: %.*s", (int)(n < 120 ? n : 120),
                 (const char *)ho->buf);
    else if (n >= 0)
        snprintf(why, sizeof(why), "unexpected record %u from the successor", type);
    else
        snprintf(why, sizeof(why), "the successor went away (%s)", strerror(errno));
    give_up(e, why);
}

static void on_timeout(EV_P_ ev_timer *t, int revents)
{
    give_up(container_of(t, struct edge, ho.timeout), "the successor did not confirm in time");
}

/* A successor: greet it, freeze, send the core's state, then collect the listeners. */
static bool begin(void *ctx, int fd)
{
    struct edge *e = ctx;
    struct edge_handoff *ho = ho_of(e);
    if (ho->state != HS_IDLE)
        return false;
    ho->ctl = fd;
    ho->sent_listeners = ho->sent_listen = 0;
    uint16_t type;
    int fds[HANDOFF_FDS_MAX], nfds;
    ssize_t n = handoff_recv(fd, &type, ho->buf, HANDOFF_REC_MAX, fds, &nfds, 0.5);
    handoff_close_fds(fds, nfds);
    uint32_t ver = 0, pid = 0;
    if (n == 8 && type == HO_HELLO) {
        memcpy(&ver, ho->buf, 4);
        memcpy(&pid, ho->buf + 4, 4);
    }
    if (n != 8 || type != HO_HELLO) {
        log_error(&e->core.log, "handoff refused: the first record is not a HELLO (type %u, %zd "
                  "bytes)", n >= 0 ? type : 0, n);
        handoff_send(fd, HO_FAIL, "expected HELLO", 14, NULL, 0, 0.5);
        end_session(e);
        return true;
    }
    if (ver != EDGE_HANDOFF_VERSION) {
        log_error(&e->core.log, "handoff refused: successor speaks version %u, we speak %u",
                  ver, EDGE_HANDOFF_VERSION);
        handoff_send(fd, HO_FAIL, "version", 7, NULL, 0, 0.5);
        end_session(e);
        return true;
    }
    uint32_t me[2] = {EDGE_HANDOFF_VERSION, (uint32_t)getpid()};
    log_info(&e->core.log, "handoff: successor pid=%u connected; handing over", pid);
    freeze(e, true);
    ho->state = HS_COLLECT;
    ev_io_init(&ho->ctl_w, on_ctl, fd, EV_READ);
    ev_io_start(e->core.loop, &ho->ctl_w);
    ev_timer_init(&ho->timeout, on_timeout, EDGE_HANDOFF_READY_S, 0);
    ev_timer_start(e->core.loop, &ho->timeout);
    if (handoff_send(fd, HO_HELLO, me, sizeof(me), NULL, 0, EDGE_HANDOFF_SEND_S) < 0 ||
        core_carry_send(&e->core, fd) < 0 || !hand_hls(e) || !hand_local(e)) {
        give_up(e, "the control socket failed while sending the state");
        return true;
    }
    ho->waiting = e->workers ? workers_hand_begin(&e->sup) : 0;
    if (ho->waiting == 0)
        collected(e);
    return true;
}

enum fc_err edge_handoff_listen(struct edge *e)
{
    struct edge_handoff *ho = ho_of(e);
    ho->ctl = -1;
    if (!ho->control)
        return FC_OK;
    if (!ho->buf && !(ho->buf = malloc(HANDOFF_REC_MAX)))
        return FC_NOMEM;
    ho->listen_fd = handoff_listen(ho->control);
    if (ho->listen_fd < 0) {
        log_error(&e->core.log, "control %s: %s", ho->control, strerror(errno));
        return FC_IO;
    }
    e->sup.handed = on_handed;
    e->sup.handed_ctx = e;
    ho_accept_start(&ho->acc, e->core.loop, &e->core.log, ho->listen_fd, begin, e);
    log_info(&e->core.log, "control socket %s: a successor may take over", ho->control);
    return FC_OK;
}

/* ---- the new process ---- */

static enum fc_err take_listen(struct edge_handoff *ho, const uint8_t *p, size_t len, int fd)
{
    if (len != 5) {
        close(fd);
        return FC_PROTO;
    }
    int *arr = p[0] ? ho->tls_in : ho->listen_in, *n = p[0] ? &ho->n_tls_in : &ho->n_listen_in;
    if (*n >= 64) {
        close(fd);
        return FC_OK;
    }
    arr[(*n)++] = fd;
    return FC_OK;
}

static enum fc_err take_listener(struct edge_handoff *ho, const uint8_t *p, size_t len, int fd)
{
    if (len < 5) {
        close(fd);
        return FC_PROTO;
    }
    if (ho->n_carried == ho->cap_carried) {
        size_t cap = ho->cap_carried ? ho->cap_carried * 2 : 256;
        struct carried *c = realloc(ho->carried, cap * sizeof(*c));
        if (!c) {
            close(fd);
            return FC_NOMEM;
        }
        ho->carried = c;
        ho->cap_carried = cap;
    }
    struct carried *c = &ho->carried[ho->n_carried];
    if (!(c->rec = malloc(len - 4))) {
        close(fd);
        return FC_NOMEM;
    }
    memcpy(&c->worker, p, 4);
    memcpy(c->rec, p + 4, len - 4);
    c->len = len - 4;
    c->fd = fd;
    ho->n_carried++;
    return FC_OK;
}

/* Receive records until HO_END; *why on failure. */
static enum fc_err take_records(struct edge *e, int ctl, const char **why)
{
    struct edge_handoff *ho = ho_of(e);
    for (;;) {
        uint16_t type;
        int fds[HANDOFF_FDS_MAX], nfds;
        ssize_t n = handoff_recv(ctl, &type, ho->buf, HANDOFF_REC_MAX, fds, &nfds,
                                 HANDOFF_TIMEOUT_S);
        if (n < 0)
            return *why = errno == ETIMEDOUT ? "the old process stopped sending"
                                             : "the control socket closed",
                   FC_IO;
        if (type == HO_END)
            return nfds ? (*why = "unexpected descriptors", FC_PROTO) : FC_OK;
        if (type == HO_FAIL) {
            handoff_close_fds(fds, nfds);
            return *why = "the old process gave up", FC_PROTO;
        }
        enum fc_err err;
        if (type == EH_HLS) {
            handoff_close_fds(fds, nfds);
            if (nfds || n % sizeof(struct hls_open))
                return *why = "malformed HLS session record", FC_PROTO;
            for (size_t off = 0; off < (size_t)n; off += sizeof(struct hls_open)) {
                struct hls_open o;
                memcpy(&o, ho->buf + off, sizeof(o));
                if (!hls_join_adopt(&e->hls, &o))
                    return *why = "malformed HLS session record", FC_PROTO;
            }
            continue;
        }
        if (type == EH_LISTEN || type == EH_LISTENER) {
            if (nfds != 1) {
                handoff_close_fds(fds, nfds);
                return *why = "a socket record without its socket", FC_PROTO;
            }
            err = type == EH_LISTEN ? take_listen(ho, ho->buf, (size_t)n, fds[0])
                                    : take_listener(ho, ho->buf, (size_t)n, fds[0]);
            if (err != FC_OK)
                *why = "malformed socket record";
        } else {
            err = core_carry_take(&e->core, type, ho->buf, (size_t)n, fds, nfds, why);
        }
        if (err != FC_OK)
            return err;
    }
}

enum fc_err edge_handoff_take(struct edge *e)
{
    struct edge_handoff *ho = ho_of(e);
    struct log *log = &e->core.log;
    if (!(ho->buf = malloc(HANDOFF_REC_MAX)))
        return FC_NOMEM;
    int ctl = handoff_connect(ho->takeover);
    if (ctl < 0) {
        log_error(log, "takeover %s: %s (is an edge running with --control there?)", ho->takeover,
                  strerror(errno));
        return FC_IO;
    }
    const char *why = NULL;
    uint32_t hello[2] = {EDGE_HANDOFF_VERSION, (uint32_t)getpid()};
    uint16_t type = 0;
    int fds[HANDOFF_FDS_MAX], nfds = 0;
    enum fc_err err = FC_OK;
    if (handoff_send(ctl, HO_HELLO, hello, sizeof(hello), NULL, 0, HANDOFF_TIMEOUT_S) < 0 ||
        handoff_recv(ctl, &type, ho->buf, HANDOFF_REC_MAX, fds, &nfds, HANDOFF_TIMEOUT_S) < 0)
        err = FC_IO, why = "no answer from the old process";
    else if (handoff_close_fds(fds, nfds), type != HO_HELLO)
        err = FC_PROTO, why = "the old process refused (busy, or another handoff version)";
    else
        memcpy(&ho->old_pid, ho->buf + 4, 4);
    if (err == FC_OK)
        err = take_records(e, ctl, &why);
    if (err == FC_OK)
        err = core_carry_check(&e->core, &why);
    if (err == FC_OK && getenv("FC_TEST_HANDOFF_DIE")) {
        log_error(log, "takeover: FC_TEST_HANDOFF_DIE set: dying before confirming (test only)");
        _exit(7);
    }
    /* systemd (Type=notify, NotifyAccess=all) follows us from before we confirm: the old
     * process exits as soon as it has acknowledged, and must not be taken for the service's end.
     * If the confirmation fails, the old one is named main again. */
    char st[64];
    if (err == FC_OK) {
        snprintf(st, sizeof(st), "MAINPID=%d\nREADY=1", (int)getpid());
        sdnotify(st);
    }
    if (err == FC_OK &&
        (handoff_send(ctl, HO_READY, NULL, 0, NULL, 0, HANDOFF_TIMEOUT_S) < 0 ||
         handoff_recv(ctl, &type, ho->buf, HANDOFF_REC_MAX, fds, &nfds, HANDOFF_TIMEOUT_S) < 0 ||
         (handoff_close_fds(fds, nfds), type != HO_READY))) {
        err = FC_IO, why = "the old process did not acknowledge";
        snprintf(st, sizeof(st), "MAINPID=%u", ho->old_pid);
        sdnotify(st);
    }
    if (err != FC_OK) {
        handoff_send(ctl, HO_FAIL, why, strlen(why), NULL, 0, 0.5);
        close(ctl);
        log_error(log, "takeover %s failed: %s; the old process keeps serving", ho->takeover, why);
        return err;
    }
    close(ctl);
    log_info(log, "takeover: took mounts=%u listeners=%zu listening=%d+%d from %s",
             e->core.n_mounts, ho->n_carried, ho->n_listen_in, ho->n_tls_in, ho->takeover);
    return FC_OK;
}

void edge_handoff_adopt(struct edge *e)
{
    struct edge_handoff *ho = ho_of(e);
    size_t ok = 0;
    for (size_t i = 0; i < ho->n_carried; i++) {
        struct carried *c = &ho->carried[i];
        const char *why = "no worker took it";
        bool stream = c->len > 0 && c->rec[0] == 2;
        bool done;
        if (e->workers && (stream || c->worker != 0)) {
            uint32_t num = c->worker >= 1 && c->worker <= e->workers
                               ? c->worker
                               : (uint32_t)(i % e->workers) + 1;
            done = workers_adopt(&e->sup, num, c->rec, c->len, c->fd);
        } else {
            done = carry_adopt(&e->http, c->fd, c->rec, c->len, &why) == FC_OK;
        }
        if (!done)
            log_warn(&e->core.log, "takeover: a listener was not adopted: %s", why);
        ok += done;
        free(c->rec);
        c->rec = NULL;
    }
    log_info(&e->core.log, "takeover: listeners adopted=%zu of %zu", ok, ho->n_carried);
    free(ho->carried);
    ho->carried = NULL;
    ho->n_carried = ho->cap_carried = 0;
}

void edge_handoff_free(struct edge *e)
{
    struct edge_handoff *ho = ho_of(e);
    if (ho->listen_fd > 0) {
        ho_accept_stop(&ho->acc);
        close(ho->listen_fd);
    }
    for (size_t i = 0; i < ho->n_carried; i++) {
        free(ho->carried[i].rec);
        close(ho->carried[i].fd);
    }
    free(ho->carried);
    free(ho->buf);
    memset(ho, 0, sizeof(*ho));
}
