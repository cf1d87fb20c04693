/*
 * handoff.c - handoff restart of framecast-relay (docs/architecture.md §4.7), over the control
 * socket of shared/handoff.h.
 *
 * The old relay sends, after HO_HELLO, these records (numbered from HO_USER), then HO_END:
 *
 *   RHO_COUNTERS  the relay's counters (struct relay_counters, one u64 each)
 *   RHO_SOCKET    one descriptor: u8 kind; RHO_SOCK_LISTEN adds u8 proto, u8 serve, u32 salen,
 *                 salen bytes of sockaddr, str text (an --ingest / --serve socket, TCP listening
 *                 or UDP, multicast membership included); RHO_SOCK_METRICS adds u32 salen and
 *                 the sockaddr, RHO_SOCK_CONTROL str path
 *   RHO_STREAM    u32 id (0, 1, ... in order), str mount, str encoder, u64 session,
 *                 u32 priority, u64 max_seq, u64 expire_seq, u64 frames, f64 last_rx_age_s,
 *                 u64 dups, u64 stale
 *   RHO_SLOTS     a run of slots of stream `id` (see below): u64 seq, f64 rx_age_s, u8 has_msg,
 *                 then the stored message if has_msg
 *   RHO_PEER      the connection (one descriptor): u32 id (in order), u8 upstream, u8 up,
 *                 u8 connecting, u8 subscribed, u8 all_mounts, str peer, u32 salen, salen bytes
 *                 (an upstream's address), f64 opened_age_s, u32 key_index, u64 frames_in,
 *                 u64 frames_out, 7 x u64 link counters, u32 head_off, u32 n_mounts, str mount...
 *   RHO_PEER_IN   u32 id, then bytes received from the peer and not parsed yet (appended)
 *   RHO_PEER_Q    a run of the peer's unsent messages, in order (head_off bytes of the first
 *                 were written)
 *
 * A run (RHO_SLOTS, RHO_PEER_Q) starts with u32 id, u8 cont. A message is u32 total, u32 n and
 * n bytes (its TCP length prefix included); a message that does not fit the record goes on in
 * the next record of the run, which has cont = 1 and starts with u32 n and n more bytes. Ages
 * are seconds before the sender's ev_now (the receiver subtracts them from its own).
 *
 * The receiver checks every length, count, id and order; anything off is a bad record: HO_FAIL
 * and exit 1, the old relay keeps serving.
 */
#include "handoff.h"
#include "clock.h"
#include "relay.h"
#include "sdnotify.h"
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

enum {
    RHO_COUNTERS = HO_USER,
    RHO_SOCKET,
    RHO_STREAM,
    RHO_SLOTS,
    RHO_PEER,
    RHO_PEER_IN,
    RHO_PEER_Q,
};

enum { RHO_SOCK_LISTEN = 1, RHO_SOCK_METRICS, RHO_SOCK_CONTROL };

#define HO_PATH_MAX 108 /* sockaddr_un.sun_path */

#define RHO_RUN_HEAD 5      /* u32 id, u8 cont */
#define RHO_MSG_HEAD 8      /* u32 total, u32 n */
#define RHO_SLOT_HEAD 17    /* u64 seq, f64 rx_age_s, u8 has_msg */
#define RHO_MAX_PEERS 65536 /* peers taken over, at most (the unit's LimitNOFILE) */
#define RHO_MAX_AGE_S 1e7   /* ages are clamped to this: a bad one cannot make rx 0 */
/* The old relay's loop stands still while it serves a takeover, and its peers declare a link
 * dead after LINK_DEAD_S (3 s) of silence: so its waits are bounded well below that (not by
 * HANDOFF_TIMEOUT_S), and a takeover that fails costs peers at most a pause. */
#define RHO_HELLO_WAIT_S 0.5 /* for HO_HELLO after accepting (the new relay sends it at once) */
#define RHO_SEND_MAX_S 1.5   /* for sending the whole state */
#define RHO_READY_WAIT_S 1.0 /* for HO_READY after HO_END */
#define RHO_READY_WITHIN_S (RHO_READY_WAIT_S / 2) /* see relay_takeover_confirm() */

/* Environment variable of the failure test hook (tests/integration/relay_handoff.sh only). */
#define RHO_TEST_DIE_ENV "FC_TEST_HANDOFF_DIE"

static double mono_s(void)
{
    return (double)clock_mono_us() / 1e6;
}

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

#define RHO_FAIL_SEND_S 0.1 /* best effort: the peer learns of a failure from the close too */

static void send_fail(int fd, const char *why)
{
    handoff_send(fd, HO_FAIL, why, strlen(why), NULL, 0, RHO_FAIL_SEND_S);
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

static void on_control(EV_P_ ev_io *w, int revents)
{
    struct relay *r = container_of(w, struct relay, control_io);
    int fd = accept4(r->control_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0)
        return;
    /* The socket file's mode is the first guard; this is the second: only our own user (or
     * root) may take the relay's sockets. */
    struct ucred cred;
    socklen_t cl = sizeof(cred);
    if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &cl) < 0 ||
        (cred.uid != geteuid() && cred.uid != 0)) {
        log_warn(&r->log, "handoff: refused a control connection from uid %d", (int)cred.uid);
        send_fail(fd, "wrong user");
        close(fd);
        return;
    }
    serve_takeover(r, fd);
    close(fd);
    /* Failed: carry on. The loop did not run meanwhile, so nothing was lost (unread bytes are in
     * the kernel's buffers); only the pause must not count as silence of our peers. */
    ev_now_update(EV_A);
    for (struct rpeer *p = r->peers; p; p = p->next)
        if (p->link.fd >= 0)
            p->link.last_rx = ev_now(EV_A);
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
    ev_io_init(&r->control_io, on_control, r->control_fd, EV_READ);
    ev_io_start(r->loop, &r->control_io);
    log_info(&r->log, "control %s%s", r->opt.control_path, taken ? " taken over" : "");
    return FC_OK;
}

void relay_control_stop(struct relay *r)
{
    if (r->control_fd < 0)
        return;
    if (r->loop)
        ev_io_stop(r->loop, &r->control_io);
    close(r->control_fd);
    r->control_fd = -1;
    /* A clean stop removes the socket file, unless another relay has bound one there since. */
    struct stat st;
    if (r->opt.control_path && r->control_ino != 0 && stat(r->opt.control_path, &st) == 0 &&
        st.st_ino == r->control_ino)
        unlink(r->opt.control_path);
}

/* ---- new side: reading the records ---- */

struct ho_peer {
    struct rpeer *p; /* in r->peers; NULL once adopted or dropped */
    int fd;          /* -1 once adopted or closed */
    bool up, connecting;
    bool drop;      /* not wanted here (an --upstream no longer configured): closed */
    bool kick;      /* its queue does not fit this relay's caps: closed, as a backlog kick */
    int upstream_i; /* index in r->upstream_addr, -1 = inbound */
    uint32_t head_off;
    double opened_age_s;
    uint8_t *unread; /* owned, sizeof(struct wire_reader.buf) */
    size_t unread_len;
};

struct relay_ho_in {
    struct relay *r;
    double now;
    bool have_counters;
    uint32_t n_streams;
    struct rstream *streams[RELAY_MAX_STREAMS]; /* by id */
    uint32_t n_peers;
    uint32_t cap_peers;
    struct ho_peer *peers; /* by id, owned */
    /* The message being assembled over several records of a run. */
    struct msgref *pend; /* owned */
    uint32_t pend_got;   /* bytes of it received */
    uint16_t pend_type;  /* the run it belongs to */
    uint32_t pend_id;
    uint64_t pend_seq; /* RHO_SLOTS: the slot it goes to */
};

struct relay_ho_in *relay_ho_in_new(struct relay *r)
{
    struct relay_ho_in *in = calloc(1, sizeof(*in));
    if (!in)
        return NULL;
    in->r = r;
    in->now = ev_now(r->loop);
    return in;
}

void relay_ho_in_free(struct relay_ho_in *in)
{
    if (!in)
        return;
    for (uint32_t i = 0; i < in->n_peers; i++) {
        struct ho_peer *hp = &in->peers[i];
        if (hp->fd >= 0)
            close(hp->fd);
        if (hp->p) {
            if (hp->upstream_i >= 0 && in->r->upstream_peer[hp->upstream_i] == hp->p)
                in->r->upstream_peer[hp->upstream_i] = NULL;
            rpeer_drop(in->r, hp->p);
        }
        free(hp->unread);
    }
    free(in->peers);
    msgref_put(in->pend);
    free(in);
}

static double get_age(struct ho_buf *b)
{
    double age = ho_get_f64(b);
    if (!(age >= 0)) /* NaN too */
        return 0;
    return age > RHO_MAX_AGE_S ? RHO_MAX_AGE_S : age;
}

static bool get_sockaddr(struct ho_buf *b, struct sockaddr_storage *ss, socklen_t *len)
{
    uint32_t n = ho_get_u32(b);
    if (b->bad || n > sizeof(*ss))
        return false;
    memset(ss, 0, sizeof(*ss));
    ho_get(b, ss, n);
    *len = n;
    return !b->bad;
}

static bool same_addr(const struct net_addr *a, const struct sockaddr_storage *ss, socklen_t len)
{
    return a->len == len && len > 0 && memcmp(&a->ss, ss, len) == 0;
}

static enum fc_err bad(const char **why, const char *what)
{
    *why = what;
    return FC_PROTO;
}

static enum fc_err rec_counters(struct relay_ho_in *in, struct ho_buf *b, const char **why)
{
    struct relay_counters *c = &in->r->c;
    uint64_t *v[] = {&c->frames_in,     &c->frames_fwd,   &c->dups,     &c->stale,
                     &c->bad_tags,      &c->other_key,    &c->bad_msgs, &c->skew_drops,
                     &c->session_drops, &c->backlog_kicks};
    if (in->have_counters)
        return bad(why, "counters twice");
    for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++)
        *v[i] = ho_get_u64(b);
    in->have_counters = true;
    return b->bad || ho_left(b) ? bad(why, "counters") : FC_OK;
}

/* Takes `fd`. */
static enum fc_err rec_socket(struct relay_ho_in *in, struct ho_buf *b, int fd, const char **why)
{
    struct relay *r = in->r;
    uint8_t kind = ho_get_u8(b);
    if (kind == RHO_SOCK_METRICS || kind == RHO_SOCK_CONTROL) {
        /* Used only where this relay's own option names the same address or path. */
        int *slot = kind == RHO_SOCK_METRICS ? &r->metrics_fd : &r->control_fd;
        struct sockaddr_storage ss;
        socklen_t len = 0;
        char path[HO_PATH_MAX];
        bool want, ok;
        if (kind == RHO_SOCK_METRICS) {
            ok = get_sockaddr(b, &ss, &len);
            want = r->opt.has_metrics && same_addr(&r->opt.metrics, &ss, len);
        } else {
            ho_get_str(b, path, sizeof(path));
            ok = !b->bad;
            want = ok && r->opt.control_path && strcmp(r->opt.control_path, path) == 0;
        }
        if (!ok || b->bad || ho_left(b) || *slot >= 0) {
            close(fd);
            return bad(why, "metrics or control socket");
        }
        if (want)
            *slot = fd;
        else
            close(fd);
        return FC_OK;
    }
    uint8_t proto = ho_get_u8(b), serve = ho_get_u8(b);
    struct sockaddr_storage ss;
    socklen_t len;
    char text[sizeof(r->listen[0].addr.text)];
    bool ok = kind == RHO_SOCK_LISTEN && get_sockaddr(b, &ss, &len);
    ho_get_str(b, text, sizeof(text));
    if (!ok || b->bad || ho_left(b) || (proto != NET_TCP && proto != NET_UDP) || serve > 1) {
        close(fd);
        return bad(why, "socket");
    }
    /* Matched on protocol and address: a socket the new options no longer name is closed, one
     * they add is bound by relay_start(). --ingest and --serve are alike for TCP. */
    for (int i = 0; i < r->n_listen; i++) {
        struct rlisten *ls = &r->listen[i];
        if (ls->fd < 0 && ls->addr.proto == proto && same_addr(&ls->addr, &ss, len)) {
            ls->fd = fd;
            return FC_OK;
        }
    }
    log_warn(&r->log, "handoff: %s is not in this relay's options: closed", text);
    close(fd);
    return FC_OK;
}

static enum fc_err rec_stream(struct relay_ho_in *in, struct ho_buf *b, const char **why)
{
    char mount[WIRE_MOUNT_MAX + 1], encoder[WIRE_ENCODER_MAX + 1];
    uint32_t id = ho_get_u32(b);
    ho_get_str(b, mount, sizeof(mount));
    ho_get_str(b, encoder, sizeof(encoder));
    uint64_t session = ho_get_u64(b);
    uint32_t priority = ho_get_u32(b);
    uint64_t max_seq = ho_get_u64(b), expire_seq = ho_get_u64(b), frames = ho_get_u64(b);
    double last_age = get_age(b);
    uint64_t dups = ho_get_u64(b), stale = ho_get_u64(b);
    if (b->bad || ho_left(b) || id != in->n_streams || !mount[0] || !encoder[0] || priority > 255)
        return bad(why, "stream");
    if (in->n_streams >= RELAY_MAX_STREAMS)
        return bad(why, "too many streams");
    if (relay_stream_find(in->r, mount, encoder, session))
        return bad(why, "stream twice");
    struct rstream *s = relay_stream_new(in->r, mount, encoder, session, priority);
    if (!s)
        return bad(why, "out of memory");
    s->max_seq = max_seq;
    s->expire_seq = expire_seq;
    s->frames = frames;
    s->last_rx = in->now - last_age;
    s->dups = dups;
    s->stale = stale;
    in->streams[in->n_streams++] = s;
    return FC_OK;
}

/* The message `in->pend` is whole: check its length prefix, put it where its run wants it. */
static enum fc_err pend_done(struct relay_ho_in *in, const char **why)
{
    struct msgref *m = in->pend;
    uint32_t n = (uint32_t)m->data[0] << 24 | (uint32_t)m->data[1] << 16 |
                 (uint32_t)m->data[2] << 8 | m->data[3];
    if (n != m->len - WIRE_LEN_BYTES)
        return bad(why, "message length prefix");
    in->pend = NULL;
    if (in->pend_type == RHO_SLOTS) {
        struct rslot *slot = &in->streams[in->pend_id]->ring[in->pend_seq & (RELAY_RING - 1)];
        msgref_put(slot->m);
        slot->m = m;
        return FC_OK;
    }
    struct ho_peer *hp = &in->peers[in->pend_id];
    if (!hp->kick && outq_push(&hp->p->link.q, m) != FC_OK)
        hp->kick = true; /* over this relay's --max-backlog or message cap */
    msgref_put(m);
    return FC_OK;
}

/* Read `n` bytes of the pending message from `b`. */
static enum fc_err pend_take(struct relay_ho_in *in, struct ho_buf *b, uint32_t n, const char **why)
{
    if (n == 0 || n > in->pend->len - in->pend_got || n > ho_left(b))
        return bad(why, "message part");
    ho_get(b, in->pend->data + in->pend_got, n);
    in->pend_got += n;
    return in->pend_got == in->pend->len ? pend_done(in, why) : FC_OK;
}

static enum fc_err msg_begin(struct relay_ho_in *in, struct ho_buf *b, uint16_t type, uint32_t id,
                             uint64_t seq, const char **why)
{
    uint32_t total = ho_get_u32(b), n = ho_get_u32(b);
    if (b->bad || total <= WIRE_LEN_BYTES + MAC_TAG_BYTES || total > WIRE_LEN_BYTES + WIRE_MAX_MSG)
        return bad(why, "message length");
    in->pend = type == RHO_SLOTS ? msgpool_new(&in->r->pool, total) : msgref_new(total);
    if (!in->pend)
        return bad(why, "out of memory");
    in->pend_got = 0;
    in->pend_type = type;
    in->pend_id = id;
    in->pend_seq = seq;
    return pend_take(in, b, n, why);
}

static enum fc_err rec_run(struct relay_ho_in *in, uint16_t type, struct ho_buf *b,
                           const char **why)
{
    uint32_t id = ho_get_u32(b);
    uint8_t cont = ho_get_u8(b);
    if (b->bad || cont > 1)
        return bad(why, "run header");
    if (type == RHO_SLOTS ? id >= in->n_streams : id >= in->n_peers)
        return bad(why, "run of an unknown stream or peer");
    enum fc_err err;
    if (cont) {
        if (!in->pend || in->pend_type != type || in->pend_id != id)
            return bad(why, "continuation of no message");
        if ((err = pend_take(in, b, ho_get_u32(b), why)) != FC_OK)
            return err;
    } else if (in->pend) {
        return bad(why, "a message left unfinished");
    }
    while (ho_left(b) > 0) {
        if (in->pend)
            return bad(why, "a record after an unfinished message");
        if (type == RHO_PEER_Q) {
            if ((err = msg_begin(in, b, type, id, 0, why)) != FC_OK)
                return err;
            continue;
        }
        struct rstream *s = in->streams[id];
        uint64_t seq = ho_get_u64(b);
        double age = get_age(b);
        uint8_t has_msg = ho_get_u8(b);
        if (b->bad || has_msg > 1)
            return bad(why, "slot");
        struct rslot *slot = &s->ring[seq & (RELAY_RING - 1)];
        msgref_put(slot->m);
        slot->m = NULL;
        slot->seq = seq;
        slot->rx = in->now - age; /* never 0: rx != 0 marks a used slot */
        if (has_msg && (err = msg_begin(in, b, type, id, seq, why)) != FC_OK)
            return err;
    }
    return FC_OK;
}

/* Takes `fd`. */
static enum fc_err rec_peer(struct relay_ho_in *in, struct ho_buf *b, int fd, const char **why)
{
    struct relay *r = in->r;
    char peer[sizeof(((struct link *)0)->peer)];
    struct sockaddr_storage ss;
    socklen_t salen = 0;
    uint32_t id = ho_get_u32(b);
    uint8_t upstream = ho_get_u8(b), up = ho_get_u8(b), connecting = ho_get_u8(b);
    uint8_t subscribed = ho_get_u8(b), all_mounts = ho_get_u8(b);
    ho_get_str(b, peer, sizeof(peer));
    bool ok = get_sockaddr(b, &ss, &salen);
    double opened_age = get_age(b);
    uint32_t key_index = ho_get_u32(b);
    uint64_t v[9];
    for (int i = 0; i < 9; i++)
        v[i] = ho_get_u64(b);
    uint32_t head_off = ho_get_u32(b), n_mounts = ho_get_u32(b);
    if (!ok || b->bad || id != in->n_peers || upstream > 1 || up > 1 || connecting > 1 ||
        subscribed > 1 || all_mounts > 1 || n_mounts > WIRE_SUB_MOUNTS_MAX ||
        (all_mounts && n_mounts) || (upstream && salen == 0)) {
        close(fd);
        return bad(why, "peer");
    }
    if (in->n_peers >= RHO_MAX_PEERS) {
        close(fd);
        return bad(why, "too many peers");
    }
    if (in->n_peers == in->cap_peers) {
        uint32_t cap = in->cap_peers ? in->cap_peers * 2 : 64;
        struct ho_peer *np = realloc(in->peers, cap * sizeof(*np));
        if (!np) {
            close(fd);
            return bad(why, "out of memory");
        }
        in->peers = np;
        in->cap_peers = cap;
    }
    struct ho_peer *hp = &in->peers[in->n_peers++];
    memset(hp, 0, sizeof(*hp));
    hp->fd = fd;
    hp->upstream_i = -1;
    hp->up = up;
    hp->connecting = connecting;
    hp->head_off = head_off;
    hp->opened_age_s = opened_age;
    if (upstream) {
        for (int i = 0; i < r->n_upstream && hp->upstream_i < 0; i++)
            if (!r->upstream_peer[i] && same_addr(&r->upstream_addr[i], &ss, salen))
                hp->upstream_i = i;
        hp->drop = hp->upstream_i < 0;
    }
    if (!(hp->p = rpeer_new(r, upstream)))
        return bad(why, "out of memory");
    struct rpeer *p = hp->p;
    if (hp->upstream_i >= 0)
        r->upstream_peer[hp->upstream_i] = p;
    snprintf(p->link.peer, sizeof(p->link.peer), "%s", peer);
    p->subscribed = subscribed;
    p->all_mounts = all_mounts;
    p->link.dec.key_index = key_index < r->keys.n ? key_index : 0;
    p->frames_in = v[0];
    p->frames_out = v[1];
    struct link_stats *st = &p->link.st;
    uint64_t *sv[] = {&st->msgs_rx,  &st->bad_tags,    &st->other_key,  &st->bad_msgs,
                      &st->connects, &st->disconnects, &st->queue_drops};
    for (int i = 0; i < 7; i++)
        *sv[i] = v[2 + i];
    if (n_mounts > 0) {
        if (!(p->mounts = calloc(n_mounts, sizeof(*p->mounts))))
            return bad(why, "out of memory");
        p->n_mounts = n_mounts;
        for (uint32_t i = 0; i < n_mounts; i++)
            ho_get_str(b, p->mounts[i], sizeof(p->mounts[i]));
    }
    if (b->bad || ho_left(b))
        return bad(why, "peer mounts");
    return FC_OK;
}

static enum fc_err rec_peer_in(struct relay_ho_in *in, struct ho_buf *b, const char **why)
{
    uint32_t id = ho_get_u32(b);
    if (b->bad || id >= in->n_peers)
        return bad(why, "input of an unknown peer");
    struct ho_peer *hp = &in->peers[id];
    const size_t cap = sizeof(((struct wire_reader *)0)->buf);
    size_t n = ho_left(b);
    if (n == 0 || n > cap - hp->unread_len)
        return bad(why, "peer input length");
    if (!hp->unread && !(hp->unread = malloc(cap)))
        return bad(why, "out of memory");
    ho_get(b, hp->unread + hp->unread_len, n);
    hp->unread_len += n;
    return FC_OK;
}

enum fc_err relay_ho_in_record(struct relay_ho_in *in, uint16_t type, const uint8_t *p, size_t len,
                               const int *fds, int nfds, const char **why)
{
    struct ho_buf b = {.p = (uint8_t *)p, .len = len};
    bool one_fd = type == RHO_SOCKET || type == RHO_PEER;
    if (nfds != (one_fd ? 1 : 0)) {
        handoff_close_fds(fds, nfds);
        return bad(why, "descriptors");
    }
    if (in->pend && type != RHO_SLOTS && type != RHO_PEER_Q) {
        if (one_fd)
            close(fds[0]);
        return bad(why, "a message left unfinished");
    }
    switch (type) {
    case RHO_COUNTERS:
        return rec_counters(in, &b, why);
    case RHO_SOCKET:
        return rec_socket(in, &b, fds[0], why);
    case RHO_STREAM:
        return rec_stream(in, &b, why);
    case RHO_SLOTS:
    case RHO_PEER_Q:
        return rec_run(in, type, &b, why);
    case RHO_PEER:
        return rec_peer(in, &b, fds[0], why);
    case RHO_PEER_IN:
        return rec_peer_in(in, &b, why);
    default:
        return bad(why, "unknown record type");
    }
}

enum fc_err relay_ho_in_end(struct relay_ho_in *in, const char **why)
{
    struct relay *r = in->r;
    if (in->pend)
        return bad(why, "a message left unfinished");
    if (!in->have_counters)
        return bad(why, "no counters");
    for (uint32_t i = 0; i < in->n_peers; i++) {
        struct ho_peer *hp = &in->peers[i];
        struct rpeer *p = hp->p;
        if (hp->drop || hp->kick) {
            if (hp->kick && !p->upstream)
                r->c.backlog_kicks++;
            log_warn(&r->log, "handoff: peer=%s %s: closed", p->link.peer,
                     hp->drop ? "is no --upstream of this relay"
                              : "has more unsent data than this relay's caps");
            continue; /* closed and freed by relay_ho_in_free(); relay_start() reconnects an
                       * --upstream link */
        }
        const struct net_addr *addr =
            hp->upstream_i >= 0 ? &r->upstream_addr[hp->upstream_i] : NULL;
        if (link_adopt(&p->link, hp->fd, addr, p->link.peer, hp->up, hp->connecting, hp->unread,
                       hp->unread_len, hp->head_off, hp->opened_age_s) != FC_OK)
            return bad(why, "peer state (unread input, partly sent message or connect)");
        hp->fd = -1; /* the link's now */
        hp->p = NULL;
    }
    return FC_OK;
}

/* ---- new side: the conversation ---- */

enum fc_err relay_takeover_recv(struct relay *r, int *ctl_fd)
{
    static uint8_t buf[HANDOFF_REC_MAX];
    const char *path = r->opt.takeover_path, *why = "";
    int fds[HANDOFF_FDS_MAX], nfds;
    uint16_t type;
    *ctl_fd = -1;
    int fd = handoff_connect(path);
    if (fd < 0) {
        log_error(&r->log, "takeover %s: %s (is a relay with --control %s running?)", path,
                  strerror(errno), path);
        return FC_IO;
    }
    struct ho_buf b = {.p = buf, .cap = sizeof(buf)};
    ho_put_u32(&b, RELAY_HANDOFF_VERSION);
    ho_put_u32(&b, (uint32_t)getpid());
    ssize_t n;
    if (handoff_send(fd, HO_HELLO, buf, b.len, NULL, 0, HANDOFF_TIMEOUT_S) < 0 ||
        (n = handoff_recv(fd, &type, buf, sizeof(buf), fds, &nfds, HANDOFF_TIMEOUT_S)) < 0) {
        log_error(&r->log, "takeover %s: %s", path, strerror(errno));
        close(fd);
        return FC_IO;
    }
    handoff_close_fds(fds, nfds);
    if (type == HO_FAIL) {
        log_error(&r->log, "takeover %s: refused: %.*s", path, (int)(n > 200 ? 200 : n), buf);
        close(fd);
        return FC_IO;
    }
    b = (struct ho_buf){.p = buf, .len = (size_t)n};
    uint32_t version = ho_get_u32(&b), old_pid = ho_get_u32(&b);
    if (type != HO_HELLO || b.bad || version != RELAY_HANDOFF_VERSION) {
        log_error(&r->log, "takeover %s: bad HELLO (type %u version %u)", path, type, version);
        send_fail(fd, "bad HELLO");
        close(fd);
        return FC_IO;
    }
    double t0 = mono_s();
    struct relay_ho_in *in = relay_ho_in_new(r);
    enum fc_err err = in ? FC_OK : FC_NOMEM;
    uint64_t records = 0;
    while (err == FC_OK) {
        n = handoff_recv(fd, &type, buf, sizeof(buf), fds, &nfds, HANDOFF_TIMEOUT_S);
        if (n < 0) {
            log_error(&r->log, "takeover %s: receiving the state: %s", path, strerror(errno));
            err = FC_IO;
            break;
        }
        records++;
        if (type == HO_END) {
            handoff_close_fds(fds, nfds);
            err = relay_ho_in_end(in, &why);
            break;
        }
        if (type == HO_FAIL) {
            handoff_close_fds(fds, nfds);
            log_error(&r->log, "takeover %s: the old relay gave up: %.*s", path,
                      (int)(n > 200 ? 200 : n), buf);
            err = FC_IO;
            break;
        }
        err = relay_ho_in_record(in, type, buf, (size_t)n, fds, nfds, &why);
    }
    if (err == FC_PROTO || err == FC_NOMEM) {
        char msg[120];
        snprintf(msg, sizeof(msg), "bad record %llu: %s", (unsigned long long)records,
                 err == FC_NOMEM ? "out of memory" : why);
        log_error(&r->log, "takeover %s: %s", path, msg);
        send_fail(fd, msg);
    }
    if (err != FC_OK) {
        relay_ho_in_free(in);
        close(fd);
        return FC_IO;
    }
    uint32_t n_streams = in->n_streams, n_peers = in->n_peers;
    relay_ho_in_free(in);
    log_info(&r->log, "takeover: from pid %u streams=%u peers=%u records=%llu in %.0f ms", old_pid,
             n_streams, n_peers, (unsigned long long)records, (mono_s() - t0) * 1e3);
    r->takeover_old_pid = old_pid;
    r->takeover_end_s = mono_s();
    *ctl_fd = fd;
    return FC_OK;
}

void relay_takeover_fail(struct relay *r, int ctl_fd, const char *why)
{
    r->control_ino = 0; /* the socket file is the old relay's, which serves on: leave it */
    log_error(&r->log, "takeover: %s; the old relay keeps serving", why);
    send_fail(ctl_fd, why);
    close(ctl_fd);
}

enum fc_err relay_takeover_confirm(struct relay *r, int ctl_fd)
{
    /* The old relay waits RHO_READY_WAIT_S for READY, counted from before we got HO_END: one
     * sent later might arrive after it gave up and resumed, and two relays would read the same
     * sockets. */
    if (mono_s() - r->takeover_end_s > RHO_READY_WITHIN_S) {
        relay_takeover_fail(r, ctl_fd, "took too long to start");
        return FC_IO;
    }
    const char *die = getenv(RHO_TEST_DIE_ENV);
    if (die && strcmp(die, "1") == 0) {
        log_error(&r->log, "takeover: %s=1: dying before READY (test hook)", RHO_TEST_DIE_ENV);
        _exit(7);
    }
    /* systemd (Type=notify, NotifyAccess=all) follows us from now on. */
    char st[64];
    snprintf(st, sizeof(st), "MAINPID=%d\nREADY=1", (int)getpid());
    sdnotify(st);
    if (handoff_send(ctl_fd, HO_READY, NULL, 0, NULL, 0, HANDOFF_TIMEOUT_S) < 0) {
        log_error(&r->log, "takeover: sending READY: %s; the old relay keeps serving",
                  strerror(errno));
        r->control_ino = 0;
        snprintf(st, sizeof(st), "MAINPID=%u", r->takeover_old_pid);
        sdnotify(st);
        close(ctl_fd);
        return FC_IO;
    }
    close(ctl_fd);
    log_info(&r->log, "takeover: READY sent; pid %u exits", r->takeover_old_pid);
    return FC_OK;
}
