/* handoff_send.c - the old relay's side of a handoff restart: serve a successor on the control
 * socket, sending the state in the records of handoff_rec.h (docs/architecture.md §4.7). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>
#include "handoff_rec.h"
#include "relay.h"
#include "sdnotify.h"

/* ---- old side: writing the records ---- */

struct ho_out {
    int fd;
    double deadline; /* mono_s() by which everything must be sent */
    uint16_t type;   /* of the run being written */
    uint32_t id;     /* of the run being written */
    struct ho_buf b;
    bool failed;
    int err; /* errno of the failed send, 0 = a record did not fit */
    uint64_t records;
    uint64_t bytes;
    uint64_t queued_msgs;  /* unsent messages handed over, all peers */
    uint64_t unread_bytes; /* received bytes not parsed yet, all peers */
    uint32_t partial;      /* peers whose first queued message is partly written */
    uint8_t buf[HANDOFF_REC_MAX];
};

static void out_begin(struct ho_out *o)
{
    o->b = (struct ho_buf){.p = o->buf, .cap = sizeof(o->buf)};
}

static void out_send(struct ho_out *o, uint16_t type, const int *fds, int nfds)
{
    if (o->failed)
        return;
    if (o->b.bad) {
        o->failed = true;
        o->err = 0;
        return;
    }
    double left = o->deadline - mono_s();
    if (left <= 0 || handoff_send(o->fd, type, o->buf, o->b.len, fds, nfds, left) < 0) {
        o->failed = true;
        o->err = left <= 0 ? ETIMEDOUT : errno;
        return;
    }
    o->records++;
    o->bytes += o->b.len;
}

static void run_begin(struct ho_out *o, uint16_t type, uint32_t id, bool cont)
{
    out_begin(o);
    o->type = type;
    o->id = id;
    ho_put_u32(&o->b, id);
    ho_put_u8(&o->b, cont);
}

static void run_flush(struct ho_out *o)
{
    if (o->b.len > RHO_RUN_HEAD)
        out_send(o, o->type, NULL, 0);
}

/* Make room for `n` bytes in the run's record: send it and start the next if needed. */
static void run_room(struct ho_out *o, size_t n)
{
    if (o->b.cap - o->b.len >= n)
        return;
    run_flush(o);
    run_begin(o, o->type, o->id, false);
}

static void run_put_msg(struct ho_out *o, const struct msgref *m)
{
    run_room(o, RHO_MSG_HEAD + 1);
    size_t n = o->b.cap - o->b.len - RHO_MSG_HEAD;
    if (n > m->len)
        n = m->len;
    ho_put_u32(&o->b, m->len);
    ho_put_u32(&o->b, (uint32_t)n);
    ho_put(&o->b, m->data, n);
    for (size_t off = n; off < m->len && !o->failed; off += n) {
        out_send(o, o->type, NULL, 0);
        run_begin(o, o->type, o->id, true);
        n = o->b.cap - o->b.len - 4;
        if (n > m->len - off)
            n = m->len - off;
        ho_put_u32(&o->b, (uint32_t)n);
        ho_put(&o->b, m->data + off, n);
    }
}

static void put_sockaddr(struct ho_buf *b, const struct sockaddr_storage *ss, socklen_t len)
{
    ho_put_u32(b, len);
    ho_put(b, ss, len);
}

static void send_socket(struct ho_out *o, uint8_t kind, const struct rlisten *ls,
                        const struct net_addr *metrics, const char *control, int fd)
{
    out_begin(o);
    ho_put_u8(&o->b, kind);
    if (metrics)
        put_sockaddr(&o->b, &metrics->ss, metrics->len);
    if (control)
        ho_put_str(&o->b, control);
    if (ls) {
        ho_put_u8(&o->b, (uint8_t)ls->addr.proto);
        ho_put_u8(&o->b, ls->serve);
        put_sockaddr(&o->b, &ls->addr.ss, ls->addr.len);
        ho_put_str(&o->b, ls->addr.text);
    }
    out_send(o, RHO_SOCKET, &fd, 1);
}

static void send_counters(struct ho_out *o, const struct relay_counters *c)
{
    out_begin(o);
    const uint64_t v[] = {c->frames_in,     c->frames_fwd,   c->dups,     c->stale,
                          c->bad_tags,      c->other_key,    c->bad_msgs, c->skew_drops,
                          c->session_drops, c->backlog_kicks};
    for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++)
        ho_put_u64(&o->b, v[i]);
    out_send(o, RHO_COUNTERS, NULL, 0);
}

static void send_stream(struct ho_out *o, const struct rstream *s, uint32_t id, double now)
{
    out_begin(o);
    ho_put_u32(&o->b, id);
    ho_put_str(&o->b, s->mount);
    ho_put_str(&o->b, s->encoder);
    ho_put_u64(&o->b, s->session);
    ho_put_u32(&o->b, s->priority);
    ho_put_u64(&o->b, s->max_seq);
    ho_put_u64(&o->b, s->expire_seq);
    ho_put_u64(&o->b, s->frames);
    ho_put_f64(&o->b, now - s->last_rx);
    ho_put_u64(&o->b, s->dups);
    ho_put_u64(&o->b, s->stale);
    out_send(o, RHO_STREAM, NULL, 0);
    /* Every used slot: expired ones (no message) still hold the seq that dedupes late copies. */
    run_begin(o, RHO_SLOTS, id, false);
    for (uint32_t i = 0; i < RELAY_RING && !o->failed; i++) {
        const struct rslot *slot = &s->ring[i];
        if (slot->rx == 0)
            continue;
        run_room(o, RHO_SLOT_HEAD + RHO_MSG_HEAD + 1);
        ho_put_u64(&o->b, slot->seq);
        ho_put_f64(&o->b, now - slot->rx);
        ho_put_u8(&o->b, slot->m != NULL);
        if (slot->m)
            run_put_msg(o, slot->m);
    }
    run_flush(o);
}

static void send_peer(struct ho_out *o, const struct rpeer *p, uint32_t id, double now)
{
    const struct link *l = &p->link;
    out_begin(o);
    ho_put_u32(&o->b, id);
    ho_put_u8(&o->b, p->upstream);
    ho_put_u8(&o->b, l->up);
    ho_put_u8(&o->b, l->connecting);
    ho_put_u8(&o->b, p->subscribed);
    ho_put_u8(&o->b, p->all_mounts);
    ho_put_str(&o->b, l->peer);
    put_sockaddr(&o->b, &l->addr.ss, p->upstream ? l->addr.len : 0);
    ho_put_f64(&o->b, now - l->opened_at);
    ho_put_u32(&o->b, l->dec.key_index);
    ho_put_u64(&o->b, p->frames_in);
    ho_put_u64(&o->b, p->frames_out);
    const uint64_t st[] = {l->st.msgs_rx,  l->st.bad_tags,    l->st.other_key,  l->st.bad_msgs,
                           l->st.connects, l->st.disconnects, l->st.queue_drops};
    for (size_t i = 0; i < sizeof(st) / sizeof(st[0]); i++)
        ho_put_u64(&o->b, st[i]);
    ho_put_u32(&o->b, l->q.head_off);
    ho_put_u32(&o->b, p->n_mounts);
    for (uint32_t i = 0; i < p->n_mounts; i++)
        ho_put_str(&o->b, p->mounts[i]);
    out_send(o, RHO_PEER, &l->fd, 1);

    /* What was read and not parsed: always less than one message. */
    const struct wire_reader *rd = l->rd;
    for (size_t off = rd->start; off < rd->end && !o->failed;) {
        out_begin(o);
        ho_put_u32(&o->b, id);
        size_t n = rd->end - off;
        if (n > o->b.cap - o->b.len)
            n = o->b.cap - o->b.len;
        ho_put(&o->b, rd->buf + off, n);
        out_send(o, RHO_PEER_IN, NULL, 0);
        off += n;
    }
    if (outq_count(&l->q) == 0)
        return;
    run_begin(o, RHO_PEER_Q, id, false);
    for (uint32_t i = l->q.head; i != l->q.tail && !o->failed; i++)
        run_put_msg(o, l->q.ring[i & l->q.mask]);
    run_flush(o);
}

/* Everything, in the order the receiver needs it (streams before peers). */
static void send_state(struct relay *r, struct ho_out *o, uint32_t *n_streams, uint32_t *n_peers)
{
    double now = ev_now(r->loop);
    send_counters(o, &r->c);
    for (int i = 0; i < r->n_listen; i++)
        if (r->listen[i].fd >= 0)
            send_socket(o, RHO_SOCK_LISTEN, &r->listen[i], NULL, NULL, r->listen[i].fd);
    if (r->opt.has_metrics && r->metrics.fd >= 0)
        send_socket(o, RHO_SOCK_METRICS, NULL, &r->opt.metrics, NULL, r->metrics.fd);
    if (r->control_fd >= 0)
        send_socket(o, RHO_SOCK_CONTROL, NULL, NULL, r->opt.control_path, r->control_fd);
    *n_streams = 0;
    for (const struct rstream *s = r->streams; s && !o->failed; s = s->next)
        send_stream(o, s, (*n_streams)++, now);
    /* A peer being closed is left behind (closed when we exit); an --upstream link waiting to
     * reconnect has no connection: the new relay connects it. */
    *n_peers = 0;
    for (const struct rpeer *p = r->peers; p && !o->failed; p = p->next)
        if (!p->closing && p->link.fd >= 0) {
            send_peer(o, p, (*n_peers)++, now);
            o->queued_msgs += outq_count(&p->link.q);
            o->partial += p->link.q.head_off > 0;
            o->unread_bytes += p->link.rd->end - p->link.rd->start;
        }
}

static void log_fail_text(struct relay *r, const char *what, const uint8_t *p, ssize_t n)
{
    char text[200];
    size_t k = 0;
    for (ssize_t i = 0; i < n && k + 1 < sizeof(text); i++)
        text[k++] = p[i] >= 0x20 && p[i] < 0x7f ? (char)p[i] : '?';
    text[k] = '\0';
    log_warn(&r->log, "handoff: %s: %s; still serving", what, text);
}

/* Serve one takeover on the accepted control connection `fd`. Returns only if it failed. */
static void serve_takeover(struct relay *r, int fd)
{
    static uint8_t in[HANDOFF_REC_MAX];
    int fds[HANDOFF_FDS_MAX], nfds;
    uint16_t type;
    double t0 = mono_s();
    ssize_t n = handoff_recv(fd, &type, in, sizeof(in), fds, &nfds, RHO_HELLO_WAIT_S);
    if (n < 0) {
        log_warn(&r->log, "handoff: no HELLO on the control socket: %s", strerror(errno));
        return;
    }
    handoff_close_fds(fds, nfds);
    struct ho_buf b = {.p = in, .len = (size_t)n};
    uint32_t version = ho_get_u32(&b), pid = ho_get_u32(&b);
    if (type != HO_HELLO || b.bad) {
        log_warn(&r->log, "handoff: the first record is not a HELLO (type %u)", type);
        send_fail(fd, "expected HELLO");
        return;
    }
    if (version != RELAY_HANDOFF_VERSION) {
        char why[80];
        snprintf(why, sizeof(why), "version %u, this relay speaks %u", version,
                 RELAY_HANDOFF_VERSION);
        log_warn(&r->log, "handoff: refused pid %u: %s", pid, why);
        send_fail(fd, why);
        return;
    }
    log_info(&r->log, "handoff: pid %u takes over: sending the state", pid);

    static struct ho_out o; /* 60 KiB: not on the stack */
    memset(&o, 0, sizeof(o));
    o.fd = fd;
    o.deadline = mono_s() + RHO_SEND_MAX_S;
    out_begin(&o);
    ho_put_u32(&o.b, RELAY_HANDOFF_VERSION);
    ho_put_u32(&o.b, (uint32_t)getpid());
    out_send(&o, HO_HELLO, NULL, 0);
    uint32_t n_streams = 0, n_peers = 0;
    if (!o.failed)
        send_state(r, &o, &n_streams, &n_peers);
    out_begin(&o);
    out_send(&o, HO_END, NULL, 0);
    if (o.failed) {
        log_warn(&r->log, "handoff: sending the state to pid %u failed: %s; still serving", pid,
                 o.err ? strerror(o.err) : "a record overflowed");
        send_fail(fd, "the old relay could not send its state");
        return;
    }
    n = handoff_recv(fd, &type, in, sizeof(in), fds, &nfds, RHO_READY_WAIT_S);
    if (n < 0) {
        log_warn(&r->log, "handoff: pid %u did not confirm: %s; still serving", pid,
                 errno == EPIPE ? "it closed the control connection (it failed?)"
                                : strerror(errno));
        return;
    }
    handoff_close_fds(fds, nfds);
    if (type == HO_FAIL) {
        log_fail_text(r, "the new relay failed", in, n);
        return;
    }
    if (type != HO_READY) {
        log_warn(&r->log, "handoff: pid %u answered record type %u, not READY; still serving", pid,
                 type);
        send_fail(fd, "expected READY");
        return;
    }
    /* Handed over. Nothing more may be read from or written to any socket: exit from here, not
     * through the loop (a pending flush would write what the new relay now sends). */
    log_info(&r->log,
             "handoff: pid %u took over streams=%u peers=%u queued=%llu partial=%u unread=%llu "
             "records=%llu bytes=%llu in %.0f ms; exiting",
             pid, n_streams, n_peers, (unsigned long long)o.queued_msgs, o.partial,
             (unsigned long long)o.unread_bytes, (unsigned long long)o.records,
             (unsigned long long)o.bytes, (mono_s() - t0) * 1e3);
    relay_log_stats(r);
    exit(0);
}

/* A control connection whose first record has come (shared/ho_accept.c checked its user). */
static bool on_control(void *ctx, int fd)
{
    struct relay *r = ctx;
    serve_takeover(r, fd);
    close(fd);
    /* Failed: carry on. The loop did not run meanwhile, so nothing was lost (unread bytes are in
     * the kernel's buffers); only the pause must not count as silence of our peers. */
    ev_now_update(r->loop);
    for (struct rpeer *p = r->peers; p; p = p->next)
        if (p->link.fd >= 0)
            p->link.last_rx = ev_now(r->loop);
    return true;
}

enum fc_err relay_control_start(struct relay *r)
{
    if (!r->opt.control_path) {
        if (r->control_fd >= 0) /* taken over, but this relay offers no handoff */
            close(r->control_fd);
        r->control_fd = -1;
        return FC_OK;
    }
    bool taken = r->control_fd >= 0;
    if (!taken)
        r->control_fd = handoff_listen(r->opt.control_path);
    if (r->control_fd < 0) {
        log_error(&r->log, "control %s: %s", r->opt.control_path, strerror(errno));
        return FC_IO;
    }
    struct stat st;
    r->control_ino = stat(r->opt.control_path, &st) == 0 ? st.st_ino : 0;
    ho_accept_start(&r->control_acc, r->loop, &r->log, r->control_fd, on_control, r);
    log_info(&r->log, "control %s%s", r->opt.control_path, taken ? " taken over" : "");
    return FC_OK;
}

void relay_control_stop(struct relay *r)
{
    if (r->control_fd < 0)
        return;
    if (r->loop)
        ho_accept_stop(&r->control_acc);
    close(r->control_fd);
    r->control_fd = -1;
    /* A clean stop removes the socket file, unless another relay has bound one there since. */
    struct stat st;
    if (r->opt.control_path && r->control_ino != 0 && stat(r->opt.control_path, &st) == 0 &&
        st.st_ino == r->control_ino)
        unlink(r->opt.control_path);
}

