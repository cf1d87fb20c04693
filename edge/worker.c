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
    int keep[EDGE_MAX_MOUNTS + 4], nk = 0;
    keep[nk++] = fd;
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
    __typeof__(h->statics) statics;
    memcpy(statics, h->statics, sizeof(statics));
    memset(h, 0, sizeof(*h));
    h->opt = opt;
    h->tls_ctx = tls_ctx;
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
    edge_http_init(h);
    int lfd = net_tcp_listen_shared(&h->opt.listen, true);
    if (lfd < 0) {
        log_error(&e->core.log, "worker=%u listen %s: %s", num, h->opt.listen.text, strerror(errno));
        _exit(1);
    }
    edge_http_listen(h, lfd);
    if (h->opt.has_tls) {
        int tfd = net_tcp_listen_shared(&h->opt.listen_tls, true);
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
    log_info(&e->core.log, "worker=%u pid=%d serving mounts=%u", num, (int)getpid(),
             e->core.n_mounts);
    ev_run(w.loop, 0);
    _exit(0);
}
