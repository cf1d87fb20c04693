/* worker.c - edge --workers: a worker process (docs/architecture.md §7.9 "Workers").
 *
 * Forked from the core process: it starts with a copy of the core's state, turns every mount into
 * a replica (its rewind buffer maps the core's memfd; rewind_attach), drops everything else the
 * core had (relay links, the core's loop, its listeners), and serves listeners on the shared
 * listening socket with its own loop, applying the core's records (edge/wmsg.h) as they come. A
 * record it cannot apply (unknown mount, a buffer out of step) ends the process with status 3: the
 * core starts a fresh one. It exits when the core's end of its socket closes. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <unistd.h>
#include "edge.h"
#include "handoff.h"
#include "stats.h"
#include "wmsg.h"

#define WORKER_BAD_RECORD 3 /* exit status: out of step with the core */

struct worker {
    struct edge *e;
    struct ehttp *h;
    struct core *c;
    struct ev_loop *loop;
    int fd;                    /* socket to the core */
    uint32_t num;
    char component[24];        /* "edge-w1": its log lines */
    ev_io rio;
    ev_timer tick, counts;
    struct emount **by_id;     /* replicas by mount id (owned array) */
    uint32_t by_id_n;
    uint8_t last_counts[sizeof(struct wrec_head) + sizeof(struct wrec_counts) +
                        sizeof(struct wrec_mcount) * EDGE_MAX_MOUNTS];
    size_t last_counts_len;
    double last_counts_at;
    struct proc_stats proc;    /* its /proc figures, read about once a second */
    double proc_at;
    uint8_t rx[WMSG_DGRAM_MAX + 4096]; /* records are received here */
    bool handing;              /* handoff: listeners paused and handed, awaiting commit */
};

static void fail(struct worker *w, const char *why, uint32_t id)
{
    log_error(&w->c->log, "worker=%u out of step with the core (%s, mount id %u): restarting",
              w->num, why, id);
    _exit(WORKER_BAD_RECORD);
}

static void set_by_id(struct worker *w, struct emount *m)
{
    if (m->id >= w->by_id_n) {
        uint32_t n = m->id + 64;
        struct emount **b = realloc(w->by_id, n * sizeof(*b));
        if (!b)
            fail(w, "out of memory", m->id);
        memset(b + w->by_id_n, 0, (n - w->by_id_n) * sizeof(*b));
        w->by_id = b;
        w->by_id_n = n;
    }
    w->by_id[m->id] = m;
}

static struct emount *replica(struct worker *w, uint32_t id)
{
    if (id >= w->by_id_n || !w->by_id[id])
        fail(w, "unknown mount", id);
    return w->by_id[id];
}

/* ---- records from the core ---- */

static void on_mount(struct worker *w, uint32_t id, const uint8_t *p, size_t len, int *fd)
{
    struct wrec_mount r;
    if (len != sizeof(r) || *fd < 0 || (id < w->by_id_n && w->by_id[id]))
        fail(w, "bad mount record", id);
    memcpy(&r, p, sizeof(r));
    r.name[sizeof(r.name) - 1] = '\0';
    struct emount *m = edge_mount_attach(w->c, id, r.name, (enum fc_codec)r.codec, r.keep_us, *fd);
    *fd = -1;
    if (!m)
        fail(w, "out of memory", id);
    set_by_id(w, m);
}

static void on_append(struct worker *w, struct emount *m, const uint8_t *p, size_t len)
{
    struct wrec_append r;
    if (len != sizeof(r))
        fail(w, "bad append record", m->id);
    memcpy(&r, p, sizeof(r));
    m->rw.codec = (enum fc_codec)r.codec;
    if (rewind_append(&m->rw, NULL, r.len, r.pts_us, r.dur_us) != FC_OK || m->rw.abs_end != r.abs_end)
        fail(w, "rewind buffer out of step", m->id);
    m->has_audio = true;
    m->codec = (enum fc_codec)r.codec;
    m->sample_rate = r.sample_rate;
    m->channels = r.channels;
    m->bitrate = r.bitrate;
    m->frames_out++;
    edge_http_appended(w->h, m);
}

static void on_title(struct worker *w, struct emount *m, const uint8_t *p, size_t len)
{
    uint64_t abs;
    if (len < 10 || p[len - 1] != 0)
        fail(w, "bad title record", m->id);
    memcpy(&abs, p, 8);
    const char *title = (const char *)p + 8;
    size_t tl = strnlen(title, len - 8);
    if (8 + tl + 1 >= len)
        fail(w, "bad title record", m->id);
    edge_mount_title(w->c, m, abs, title, title + tl + 1);
}

static void on_station(struct worker *w, struct emount *m, const uint8_t *p, size_t len)
{
    struct wrec_station r;
    if (len != sizeof(r))
        fail(w, "bad station record", m->id);
    memcpy(&r, p, sizeof(r));
    memcpy(m->st_name, r.name, sizeof(m->st_name));
    memcpy(m->st_genre, r.genre, sizeof(m->st_genre));
    memcpy(m->st_desc, r.desc, sizeof(m->st_desc));
    memcpy(m->st_url, r.url, sizeof(m->st_url));
    m->st_name[WIRE_STATION_MAX] = m->st_genre[WIRE_STATION_MAX] = '\0';
    m->st_desc[WIRE_STATION_MAX] = m->st_url[WIRE_STATION_MAX] = '\0';
    m->st_bitrate = r.bitrate;
    m->has_station = true;
}

static void send_rec(struct worker *w, uint16_t type, const void *a, size_t alen, const void *b,
                     size_t blen)
{
    struct wrec_head hd = {.type = type, .len = (uint16_t)(alen + blen), .mount = 0};
    struct iovec iov[3] = {{&hd, sizeof(hd)}, {(void *)a, alen}, {(void *)b, blen}};
    struct msghdr msg = {.msg_iov = iov, .msg_iovlen = 3};
    if (sendmsg(w->fd, &msg, MSG_DONTWAIT | MSG_NOSIGNAL) < 0)
        log_warn(&w->c->log, "worker=%u answer to the core lost: %s", w->num, strerror(errno));
}

/* The admin API asks: list this worker's listeners, or close one. */
static void on_query(struct worker *w, const uint8_t *p, size_t len)
{
    struct wrec_query q;
    if (len != sizeof(q))
        fail(w, "bad query record", 0);
    memcpy(&q, p, sizeof(q));
    q.mount[WIRE_MOUNT_MAX] = '\0';
    struct wrec_done d = {.query = q.query, .found = 0};
    if (q.kind == API_QUERY_KICK) {
        d.found = admin_local_kick(w->h, q.id);
    } else {
        size_t cap = w->h->n_listeners + 1, per = (WMSG_DGRAM_MAX - 4) / sizeof(struct api_listener);
        struct api_listener *ls = calloc(cap, sizeof(*ls));
        size_t n = ls ? admin_local_listeners(w->h, q.mount, ls, cap) : 0;
        for (size_t i = 0; i < n; i += per)
            send_rec(w, WREC_LISTENERS, &q.query, 4, ls + i,
                     (n - i < per ? n - i : per) * sizeof(*ls));
        free(ls);
    }
    send_rec(w, WREC_DONE, &d, sizeof(d), NULL, 0);
}

/* ---- analytics: sessions to the core ---- */

static void worker_session(void *ctx, const struct an_session *s)
{
    send_rec(ctx, WREC_SESSION, s, sizeof(*s), NULL, 0);
}

static void worker_hls_hit(void *ctx, const struct an_hls_hit *hit)
{
    send_rec(ctx, WREC_HLS_HIT, hit, sizeof(*hit), NULL, 0);
}

/* SIGTERM (the core stopping): with analytics, close every listener so its session is sent to
 * the core (which reads what is left on the socket after we exit), then exit. */
static void on_term(EV_P_ ev_signal *sig, int revents)
{
    struct worker *w = sig->data;
    struct ehttp *h = w->h;
    struct list_node *it = h->all.next;
    while (it != &h->all) {
        struct elistener *l = container_of(it, struct elistener, alink);
        it = it->next;
        listener_close(l, "shutdown");
    }
    _exit(0);
}

/* ---- handoff restart (docs/architecture.md §7.12) ---- */

static bool hand_one(struct worker *w, uint8_t what, struct elistener *l, int fd, uint8_t *buf)
{
    struct ho_buf b = {.p = buf, .cap = WMSG_DGRAM_MAX - sizeof(struct wrec_head)};
    ho_put_u8(&b, what);
    if (l)
        carry_export(l, &b);
    if (b.bad || wmsg_send(w->fd, WREC_HANDED, 0, b.p, b.len, fd, EDGE_HANDOFF_SEND_S) < 0) {
        log_warn(&w->c->log, "worker=%u handoff: cannot hand %s over: %s", w->num,
                 l ? l->peer : "a listening socket", b.bad ? "record too big" : strerror(errno));
        return false;
    }
    return true;
}

/* Stop accepting, pause every listener that can be carried and hand it to the core (which sends
 * it on to the new process); the paused ones stay here until WREC_COMMIT or WREC_RESUME. */
static void on_handoff(struct worker *w)
{
    struct ehttp *h = w->h;
    uint8_t *buf = malloc(WMSG_DGRAM_MAX);
    if (!buf)
        fail(w, "out of memory", 0);
    ev_io_stop(w->loop, &h->accept_w);
    if (h->tls_fd >= 0)
        ev_io_stop(w->loop, &h->tls_accept_w);
    w->handing = true;
    uint32_t n = 0, kept = 0;
    hand_one(w, WHAND_LISTEN, NULL, h->listen_fd, buf);
    if (h->tls_fd >= 0)
        hand_one(w, WHAND_LISTEN_TLS, NULL, h->tls_fd, buf);
    for (struct list_node *it = h->all.next; it != &h->all; it = it->next) {
        struct elistener *l = container_of(it, struct elistener, alink);
        if (!carry_can(l)) {
            kept++;
            continue;
        }
        carry_pause(l);
        n += hand_one(w, WHAND_LISTENER, l, l->fd, buf);
    }
    free(buf);
    wmsg_send(w->fd, WREC_HANDED_END, 0, NULL, 0, -1, EDGE_HANDOFF_SEND_S);
    log_info(&w->c->log, "worker=%u handoff: handed listeners=%u not carried=%u (HTTPS or busy)",
             w->num, n, kept);
}

/* Committed: the new process holds every carried socket. What stayed here (HTTPS, a connection
 * waiting for the admin API, a big response, a preroll) ends now through listener_close, so its
 * session goes to the core, which reads these last records before it exits (workers_hand_end). */
static void on_commit(struct worker *w)
{
    struct ehttp *h = w->h;
    struct list_node *it = h->all.next;
    uint32_t n = 0;
    while (it != &h->all) {
        struct elistener *l = container_of(it, struct elistener, alink);
        it = it->next;
        if (!l->paused) {
            listener_close(l, "handoff (not carried)");
            n++;
        }
    }
    if (n)
        log_info(&w->c->log, "worker=%u handoff: closed %u listeners not carried", w->num, n);
    _exit(0);
}

static void on_resume(struct worker *w)
{
    struct ehttp *h = w->h;
    w->handing = false;
    struct list_node *it = h->all.next;
    while (it != &h->all) {
        struct elistener *l = container_of(it, struct elistener, alink);
        it = it->next; /* resuming may close it */
        carry_resume(l);
    }
    ev_io_start(w->loop, &h->accept_w);
    if (h->tls_fd >= 0)
        ev_io_start(w->loop, &h->tls_accept_w);
    log_info(&w->c->log, "worker=%u handoff failed: serving on", w->num);
}

static void on_adopt(struct worker *w, const uint8_t *p, size_t len, int *fd)
{
    const char *why;
    if (*fd < 0)
        fail(w, "adopt record without a socket", 0);
    if (carry_adopt(w->h, *fd, p, len, &why) != FC_OK)
        log_warn(&w->c->log, "worker=%u handoff: listener not adopted: %s", w->num, why);
    *fd = -1;
}

static void apply(struct worker *w, const uint8_t *p, size_t n, int *fd)
{
    size_t off = 0;
    while (off < n) {
        struct wrec_head hd;
        if (n - off < sizeof(hd))
            fail(w, "truncated record", 0);
        memcpy(&hd, p + off, sizeof(hd));
        off += sizeof(hd);
        if (n - off < hd.len)
            fail(w, "truncated record", hd.mount);
        const uint8_t *q = p + off;
        off += hd.len;
        switch (hd.type) {
        case WREC_MOUNT: on_mount(w, hd.mount, q, hd.len, fd); break;
        case WREC_APPEND: on_append(w, replica(w, hd.mount), q, hd.len); break;
        case WREC_TITLE: on_title(w, replica(w, hd.mount), q, hd.len); break;
        case WREC_STATION: on_station(w, replica(w, hd.mount), q, hd.len); break;
        case WREC_QUERY: on_query(w, q, hd.len); break;
        case WREC_TLS_RELOAD: tls_reload(w->h); break;
        case WREC_HANDOFF: on_handoff(w); break;
        case WREC_COMMIT: on_commit(w); break;
        case WREC_RESUME: on_resume(w); break;
        case WREC_ADOPT: on_adopt(w, q, hd.len, fd); break;
        default: fail(w, "unknown record", hd.mount);
        }
    }
}

static void on_core(EV_P_ ev_io *io, int revents)
{
    struct worker *w = container_of(io, struct worker, rio);
    uint8_t *buf = w->rx;
    for (int k = 0; k < 256; k++) {
        union {
            struct cmsghdr h;
            char b[CMSG_SPACE(sizeof(int))];
        } cm;
        struct iovec iov = {.iov_base = buf, .iov_len = sizeof(w->rx)};
        struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = cm.b,
                             .msg_controllen = sizeof(cm.b)};
        ssize_t n = recvmsg(w->fd, &msg, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
        if (n == 0)
            _exit(0); /* the core is gone: so are we */
        if (n < 0) {
            if (errno != EAGAIN && errno != EINTR)
                _exit(0);
            return;
        }
        int fd = -1;
        struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
        if (c && c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS)
            memcpy(&fd, CMSG_DATA(c), sizeof(int));
        apply(w, buf, (size_t)n, &fd);
        if (fd >= 0)
            close(fd);
    }
}

/* ---- to the core ---- */

static bool forward(void *ctx, struct elistener *l, const char *req, size_t len)
{
    struct worker *w = ctx;
    struct wrec_head hd = {.type = WREC_FORWARD, .len = (uint16_t)(64 + len), .mount = 0};
    char peer[64] = "";
    snprintf(peer, sizeof(peer), "%s", l->peer);
    struct iovec iov[3] = {{&hd, sizeof(hd)}, {peer, sizeof(peer)}, {(void *)req, len}};
    union {
        struct cmsghdr h;
        char b[CMSG_SPACE(sizeof(int))];
    } cm;
    memset(&cm, 0, sizeof(cm));
    struct msghdr msg = {.msg_iov = iov, .msg_iovlen = 3, .msg_control = cm.b,
                         .msg_controllen = sizeof(cm.b)};
    struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int));
    memcpy(CMSG_DATA(c), &l->fd, sizeof(int));
    if (sendmsg(w->fd, &msg, MSG_DONTWAIT | MSG_NOSIGNAL) < 0) {
        log_warn(&w->c->log, "worker=%u listener=%s cannot hand the request to the core: %s",
                 w->num, l->peer, strerror(errno));
        return false;
    }
    listener_close(l, "handed to the core");
    return true;
}

static void on_counts(EV_P_ ev_timer *t, int revents)
{
    struct worker *w = container_of(t, struct worker, counts);
    double t_proc = ev_now(EV_A);
    if (t_proc - w->proc_at >= 1.0) {
        proc_self(&w->proc);
        w->proc_at = t_proc;
    }
    struct wrec_counts c = {.connections = w->h->n_listeners, .cpu_s = w->proc.cpu_s,
                            .rss_bytes = w->proc.rss_bytes, .fds = w->proc.fds, .c = w->h->c};
    uint8_t now[sizeof(w->last_counts)];
    size_t len = sizeof(struct wrec_head) + sizeof(c);
    for (struct hmount *hm = w->h->hmounts; hm && c.n < EDGE_MAX_MOUNTS; hm = hm->next) {
        if (!hm->n_listeners)
            continue;
        struct wrec_mcount mc = {hm->m->id, hm->n_listeners, hm->n_icy};
        memcpy(now + len, &mc, sizeof(mc));
        len += sizeof(mc);
        c.n++;
    }
    struct wrec_head hd = {.type = WREC_COUNTS, .len = (uint16_t)(len - sizeof(hd)), .mount = 0};
    memcpy(now, &hd, sizeof(hd));
    memcpy(now + sizeof(hd), &c, sizeof(c));
    double t_now = ev_now(EV_A);
    if (len == w->last_counts_len && memcmp(now, w->last_counts, len) == 0 &&
        t_now - w->last_counts_at < 5)
        return;
    if (send(w->fd, now, len, MSG_DONTWAIT | MSG_NOSIGNAL) == (ssize_t)len) {
        memcpy(w->last_counts, now, len);
        w->last_counts_len = len;
        w->last_counts_at = t_now;
    }
}

static void on_tick(EV_P_ ev_timer *t, int revents)
{
    edge_http_tick(container_of(t, struct worker, tick)->h);
}

/* ---- becoming a worker ---- */

static int cmp_int(const void *a, const void *b)
{
    return *(const int *)a - *(const int *)b;
}

/* Close every descriptor the core had except `keep` (sorted here). */
static void close_others(int *keep, int n)
{
    qsort(keep, (size_t)n, sizeof(int), cmp_int);
    int from = 3;
    for (int i = 0; i < n; i++) {
        if (keep[i] < from)
            continue;
        if (keep[i] > from)
            close_range((unsigned)from, (unsigned)keep[i] - 1, 0);
        from = keep[i] + 1;
    }
    close_range((unsigned)from, ~0u, 0);
}

static void default_signals(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = SIG_DFL;
    int sigs[] = {SIGINT, SIGTERM, SIGCHLD, SIGUSR1, SIGUSR2};
    for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++)
        sigaction(sigs[i], &sa, NULL);
    sa.sa_handler = SIG_IGN; /* SIGHUP (key reload) is the core's; a group-wide one must not kill us */
    sigaction(SIGHUP, &sa, NULL);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
}

void worker_main(void *ctx, uint32_t num, int fd)
{
    struct edge *e = ctx;
    static struct worker w; /* this process's context: worker_main never returns */
    pid_t core_pid = getppid();
    prctl(PR_SET_PDEATHSIG, SIGTERM);
    if (getppid() != core_pid)
        _exit(0);
    default_signals();
    /* The core's SIGINT/SIGTERM/SIGHUP watchers came with the fork, started on the default loop;
     * libev attaches a signal to one loop only, so they must go before ours starts on w.loop. */
    struct ev_loop *core_loop = ev_default_loop(0);
    ev_signal_stop(core_loop, &e->sigint);
    ev_signal_stop(core_loop, &e->sigterm);
    ev_signal_stop(core_loop, &e->sighup);
    int keep[EDGE_MAX_MOUNTS + 4], nk = 0;
    keep[nk++] = fd;
    int in_fd = e->sup.inherit_fd[num - 1], in_tls = e->sup.inherit_tls_fd[num - 1];
    if (in_fd >= 0)
        keep[nk++] = in_fd;
    if (in_tls >= 0)
        keep[nk++] = in_tls;
    for (struct emount *m = e->core.mounts; m && nk < EDGE_MAX_MOUNTS + 4; m = m->next)
        keep[nk++] = m->rw.fd;
    close_others(keep, nk);

    w.e = e;
    w.c = &e->core;
    w.h = &e->http;
    w.fd = fd;
    w.num = num;
    snprintf(w.component, sizeof(w.component), "edge-w%u", num);
    w.loop = ev_loop_new(EVFLAG_AUTO);
    if (!w.loop)
        _exit(1);
    /* The core's state as of the fork: keep the mounts' view, as replicas; forget the rest. */
    e->core.loop = w.loop;
    e->core.hooks = (struct edge_hooks){0};
    e->core.log.component = w.component;
    for (struct emount *m = e->core.mounts; m; m = m->next) {
        m->http = NULL;
        m->remote_listeners = 0;
        m->workers_known = 0;
        m->rw.replica = true;
        set_by_id(&w, m);
    }
    struct ehttp *h = w.h;
    struct http_opts opt = h->opt;
    void *tls_ctx = h->tls_ctx; /* made by main before the fork */
    bool analytics = h->session_out != NULL;
    uint8_t client_key[sizeof(h->client_key)];
    memcpy(client_key, h->client_key, sizeof(client_key));
    struct preroll *pre = h->pre; /* clips loaded by main; the once table is shared memory */
    __typeof__(h->statics) statics;
    memcpy(statics, h->statics, sizeof(statics));
    memset(h, 0, sizeof(*h));
    h->opt = opt;
    h->tls_ctx = tls_ctx;
    h->pre = pre;
    h->tls_fd = -1;
    memcpy(h->statics, statics, sizeof(statics));
    h->core = &e->core;
    h->loop = w.loop;
    h->log = &e->core.log;
    h->listen_fd = h->spare_fd = -1;
    h->worker = num;
    snprintf(h->worker_header, sizeof(h->worker_header), "X-Framecast-Worker: %u\r\n", num);
    h->forward = forward;
    h->forward_ctx = &w;
    if (analytics) {
        h->session_out = worker_session;
        h->hls_hit = worker_hls_hit;
        h->session_ctx = &w;
        memcpy(h->client_key, client_key, sizeof(client_key));
    }
    edge_http_init(h);
    int lfd = in_fd >= 0 ? in_fd : net_tcp_listen_shared(&h->opt.listen, true);
    if (lfd < 0) {
        log_error(&e->core.log, "worker=%u listen %s: %s", num, h->opt.listen.text, strerror(errno));
        _exit(1);
    }
    edge_http_listen(h, lfd);
    if (h->opt.has_tls) {
        int tfd = in_tls >= 0 ? in_tls : net_tcp_listen_shared(&h->opt.listen_tls, true);
        if (tfd < 0) {
            log_error(&e->core.log, "worker=%u listen %s: %s", num, h->opt.listen_tls.text,
                      strerror(errno));
            _exit(1);
        }
        edge_http_listen_tls(h, tfd);
    }

    ev_io_init(&w.rio, on_core, fd, EV_READ);
    ev_io_start(w.loop, &w.rio);
    ev_timer_init(&w.tick, on_tick, EDGE_TICK_S, EDGE_TICK_S);
    ev_timer_start(w.loop, &w.tick);
    ev_timer_init(&w.counts, on_counts, WORKER_COUNTS_S, WORKER_COUNTS_S);
    ev_timer_start(w.loop, &w.counts);
    static ev_signal term;
    if (analytics) {
        ev_signal_init(&term, on_term, SIGTERM);
        term.data = &w;
        ev_signal_start(w.loop, &term);
    }
    log_info(&e->core.log, "worker=%u pid=%d serving mounts=%u", num, (int)getpid(),
             e->core.n_mounts);
    ev_run(w.loop, 0);
    _exit(0);
}
