/* handoff_take.c - the new relay's side of a handoff restart: take the old relay's state from
 * the records of handoff_rec.h, check every length, count, id and order, adopt it, confirm
 * (docs/architecture.md §4.7). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>
#include "handoff_rec.h"
#include "relay.h"
#include "sdnotify.h"

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
