/* workers.c - see workers.h. The core process's side: fork, queue records, restart. */
#include "workers.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>
#include "wmsg.h"

#define WORKER_RESTART_S 0.5
#define WORKER_RESTART_MAX_S 10.0
#define WORKER_STABLE_S 30.0 /* a worker up this long resets the restart back-off */

static void spawn(struct wproc *w);

/* ---- mounts by id ---- */

struct emount *workers_mount_by_id(struct wsup *s, uint32_t id)
{
    if (id < s->by_id_n && s->by_id[id])
        return s->by_id[id];
    for (struct emount *m = s->core->mounts; m; m = m->next) {
        if (m->id >= s->by_id_n) {
            uint32_t n = m->id + 64;
            struct emount **b = realloc(s->by_id, n * sizeof(*b));
            if (!b)
                return NULL;
            memset(b + s->by_id_n, 0, (n - s->by_id_n) * sizeof(*b));
            s->by_id = b;
            s->by_id_n = n;
        }
        s->by_id[m->id] = m;
    }
    return id < s->by_id_n ? s->by_id[id] : NULL;
}

/* ---- the queue of records to one worker ---- */

bool wproc_running(const struct wproc *w)
{
    return w->pid > 0 && w->fd >= 0;
}

static void kill_worker(struct wproc *w, const char *why)
{
    log_error(&w->sup->core->log, "worker=%u pid=%d killed: %s", w->num, (int)w->pid, why);
    kill(w->pid, SIGKILL);
    ev_io_stop(w->sup->loop, &w->rio);
    ev_io_stop(w->sup->loop, &w->wio);
    close(w->fd);
    w->fd = -1; /* no more records; ev_child reaps it and restarts */
    w->q_off = w->q_len = 0;
}

/* Room for `n` more bytes at the queue's end, or NULL (the worker was killed). */
static uint8_t *reserve(struct wproc *w, size_t n)
{
    if (w->q_off > 0 && w->q_off == w->q_len)
        w->q_off = w->q_len = 0;
    if (w->q_len + n > w->q_cap) {
        if (w->q_off > 0) {
            memmove(w->q, w->q + w->q_off, w->q_len - w->q_off);
            w->q_len -= w->q_off;
            w->q_off = 0;
        }
        size_t cap = w->q_cap ? w->q_cap : 64 * 1024;
        while (cap < w->q_len + n)
            cap *= 2;
        if (cap > WORKER_QUEUE_MAX) {
            kill_worker(w, "it stopped reading (queue full)");
            return NULL;
        }
        if (cap != w->q_cap) {
            uint8_t *q = realloc(w->q, cap);
            if (!q) {
                kill_worker(w, "out of memory for its queue");
                return NULL;
            }
            w->q = q;
            w->q_cap = cap;
        }
    }
    uint8_t *p = w->q + w->q_len;
    w->q_len += n;
    return p;
}

void wproc_put(struct wproc *w, uint16_t type, uint32_t mount, const void *a, size_t alen,
                const void *b, size_t blen)
{
    struct wrec_head hd = {.type = type, .len = (uint16_t)(alen + blen), .mount = mount};
    uint8_t *p = reserve(w, sizeof(hd) + alen + blen);
    if (!p)
        return;
    memcpy(p, &hd, sizeof(hd));
    memcpy(p + sizeof(hd), a, alen);
    if (blen)
        memcpy(p + sizeof(hd) + alen, b, blen);
}

/* Make sure worker `w` holds a replica of `m` before a record about it. */
static void announce(struct wproc *w, struct emount *m)
{
    uint64_t bit = 1ull << (w->num - 1);
    if (m->workers_known & bit)
        return;
    struct wrec_mount r;
    memset(&r, 0, sizeof(r));
    memcpy(r.name, m->name, sizeof(r.name));
    r.codec = (uint8_t)m->rw.codec;
    r.keep_us = m->rw.keep_us;
    wproc_put(w, WREC_MOUNT, m->id, &r, sizeof(r), NULL, 0);
    m->workers_known |= bit;
}

static void broadcast(struct wsup *s, struct emount *m, uint16_t type, const void *a, size_t alen,
                      const void *b, size_t blen)
{
    for (uint32_t i = 0; i < s->n; i++) {
        struct wproc *w = &s->w[i];
        if (!wproc_running(w))
            continue;
        announce(w, m);
        if (wproc_running(w))
            wproc_put(w, type, m->id, a, alen, b, blen);
    }
}

/* ---- sending ---- */

static ssize_t send_dgram(int fd, const uint8_t *p, size_t n, int pass_fd)
{
    struct iovec iov = {.iov_base = (void *)p, .iov_len = n};
    union {
        struct cmsghdr h;
        char buf[CMSG_SPACE(sizeof(int))];
    } cm;
    struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1};
    if (pass_fd >= 0) {
        memset(&cm, 0, sizeof(cm));
        msg.msg_control = cm.buf;
        msg.msg_controllen = sizeof(cm.buf);
        struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SCM_RIGHTS;
        c->cmsg_len = CMSG_LEN(sizeof(int));
        memcpy(CMSG_DATA(c), &pass_fd, sizeof(int));
    }
    return sendmsg(fd, &msg, MSG_DONTWAIT | MSG_NOSIGNAL);
}

/* The next datagram from q_off: a run of whole records up to WMSG_DGRAM_MAX, or a WREC_MOUNT
 * alone (its memfd goes with it). Returns its end; *pass_fd = the fd to pass or -1. */
static size_t next_dgram(struct wproc *w, int *pass_fd)
{
    size_t end = w->q_off;
    *pass_fd = -1;
    while (end < w->q_len) {
        struct wrec_head hd;
        memcpy(&hd, w->q + end, sizeof(hd));
        size_t rl = sizeof(hd) + hd.len;
        if (hd.type == WREC_MOUNT) {
            if (end == w->q_off) {
                struct emount *m = workers_mount_by_id(w->sup, hd.mount);
                *pass_fd = m ? m->rw.fd : -1;
                end += rl;
            }
            break;
        }
        if (end > w->q_off && end - w->q_off + rl > WMSG_DGRAM_MAX)
            break;
        end += rl;
    }
    return end;
}

void wproc_flush(struct wproc *w)
{
    while (wproc_running(w) && w->q_off < w->q_len) {
        int pass_fd;
        size_t end = next_dgram(w, &pass_fd);
        if (send_dgram(w->fd, w->q + w->q_off, end - w->q_off, pass_fd) < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK || errno == ENOBUFS) {
                ev_io_start(w->sup->loop, &w->wio);
                return;
            }
            kill_worker(w, strerror(errno));
            return;
        }
        w->q_off = end;
    }
    w->q_off = w->q_len = 0;
    ev_io_stop(w->sup->loop, &w->wio);
}

static void on_flush(EV_P_ ev_prepare *p, int revents)
{
    struct wsup *s = container_of(p, struct wsup, flush);
    for (uint32_t i = 0; i < s->n; i++)
        if (wproc_running(&s->w[i]) && s->w[i].q_len > s->w[i].q_off && !ev_is_active(&s->w[i].wio))
            wproc_flush(&s->w[i]);
}

static void on_writable(EV_P_ ev_io *io, int revents)
{
    wproc_flush(container_of(io, struct wproc, wio));
}

/* ---- the core's hooks ---- */

static void hook_appended(void *ctx, struct emount *m)
{
    struct wsup *s = ctx;
    const struct rewind *rw = &m->rw;
    struct wrec_append r = {
        .pts_us = rw->end_pts_us - m->last_dur_us,
        .dur_us = m->last_dur_us,
        .abs_end = rw->abs_end,
        .len = m->last_len,
        .sample_rate = m->sample_rate,
        .bitrate = m->bitrate,
        .codec = (uint8_t)m->codec,
        .channels = m->channels,
    };
    broadcast(s, m, WREC_APPEND, &r, sizeof(r), NULL, 0);
    edge_http_appended(s->http, m);
}

static void hook_titled(void *ctx, struct emount *m, uint64_t abs, const char *title,
                        const char *url)
{
    struct wsup *s = ctx;
    uint8_t buf[8 + 2 * (WIRE_META_MAX + 1)];
    size_t tl = strnlen(title, WIRE_META_MAX), ul = strnlen(url, WIRE_META_MAX);
    memcpy(buf, &abs, 8);
    memcpy(buf + 8, title, tl);
    buf[8 + tl] = 0;
    memcpy(buf + 9 + tl, url, ul);
    buf[9 + tl + ul] = 0;
    broadcast(s, m, WREC_TITLE, buf, 10 + tl + ul, NULL, 0);
}

static void hook_station(void *ctx, struct emount *m)
{
    struct wsup *s = ctx;
    struct wrec_station r;
    memset(&r, 0, sizeof(r));
    memcpy(r.name, m->st_name, sizeof(r.name));
    memcpy(r.genre, m->st_genre, sizeof(r.genre));
    memcpy(r.desc, m->st_desc, sizeof(r.desc));
    memcpy(r.url, m->st_url, sizeof(r.url));
    r.bitrate = m->st_bitrate;
    broadcast(s, m, WREC_STATION, &r, sizeof(r), NULL, 0);
}

static void hook_tick(void *ctx)
{
    edge_http_tick(((struct wsup *)ctx)->http);
}

static void hook_mount_freed(void *ctx, struct emount *m)
{
    struct wsup *s = ctx;
    if (m->id < s->by_id_n)
        s->by_id[m->id] = NULL;
    edge_http_mount_freed(s->http, m);
}

static uint32_t hook_listeners(void *ctx, const struct emount *m)
{
    return edge_http_listeners(m);
}

/* ---- life and death ---- */

static void on_restart(EV_P_ ev_timer *t, int revents)
{
    struct wproc *w = container_of(t, struct wproc, restart);
    w->restarts++;
    spawn(w);
}

static void on_child(EV_P_ ev_child *c, int revents)
{
    struct wproc *w = container_of(c, struct wproc, child);
    struct wsup *s = w->sup;
    ev_child_stop(EV_A_ c);
    int st = c->rstatus;
    if (WIFSIGNALED(st))
        log_error(&s->core->log, "worker=%u pid=%d died: signal %d; its listeners are lost",
                  w->num, (int)w->pid, WTERMSIG(st));
    else
        log_error(&s->core->log, "worker=%u pid=%d exited: status %d; its listeners are lost",
                  w->num, (int)w->pid, WEXITSTATUS(st));
    if (w->fd >= 0) {
        ev_io_stop(EV_A_ & w->rio);
        ev_io_stop(EV_A_ & w->wio);
        close(w->fd);
        w->fd = -1;
    }
    w->pid = 0;
    w->q_off = w->q_len = 0;
    wproc_clear_counts(w);
    if (w->handing && s->handed) { /* a handoff waits for it: it has nothing more to hand */
        w->handing = false;
        s->handed(s->handed_ctx, w, WREC_HANDED_END, NULL, 0, -1);
    }
    uint64_t bit = 1ull << (w->num - 1);
    for (struct emount *m = s->core->mounts; m; m = m->next)
        m->workers_known &= ~bit;
    if (ev_now(EV_A) - w->started > WORKER_STABLE_S)
        w->backoff_s = WORKER_RESTART_S;
    ev_timer_set(&w->restart, w->backoff_s, 0);
    ev_timer_start(EV_A_ & w->restart);
    w->backoff_s = w->backoff_s * 2 < WORKER_RESTART_MAX_S ? w->backoff_s * 2 : WORKER_RESTART_MAX_S;
}

static void bigger_buffers(int fd)
{
    int sz = 4 << 20;
    if (setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &sz, sizeof(sz)) < 0)
        setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sz, sizeof(sz));
    if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &sz, sizeof(sz)) < 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &sz, sizeof(sz));
}

static void spawn(struct wproc *w)
{
    struct wsup *s = w->sup;
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0) {
        log_error(&s->core->log, "worker=%u socketpair: %s", w->num, strerror(errno));
        ev_timer_set(&w->restart, WORKER_RESTART_MAX_S, 0);
        ev_timer_start(s->loop, &w->restart);
        return;
    }
    bigger_buffers(sv[0]);
    bigger_buffers(sv[1]);
    pid_t pid = fork();
    if (pid == 0) {
        close(sv[0]);
        s->child_main(s->child_ctx, w->num, sv[1]);
        _exit(0);
    }
    close(sv[1]);
    if (pid < 0) {
        log_error(&s->core->log, "worker=%u fork: %s", w->num, strerror(errno));
        close(sv[0]);
        ev_timer_set(&w->restart, WORKER_RESTART_MAX_S, 0);
        ev_timer_start(s->loop, &w->restart);
        return;
    }
    fcntl(sv[0], F_SETFL, fcntl(sv[0], F_GETFL) | O_NONBLOCK);
    w->pid = pid;
    w->fd = sv[0];
    w->started = ev_now(s->loop);
    w->q_off = w->q_len = 0;
    ev_io_init(&w->rio, workers_on_readable, w->fd, EV_READ);
    ev_io_init(&w->wio, on_writable, w->fd, EV_WRITE);
    ev_io_start(s->loop, &w->rio);
    ev_child_init(&w->child, on_child, pid, 0);
    ev_child_start(s->loop, &w->child);
    uint64_t bit = 1ull << (w->num - 1);
    for (struct emount *m = s->core->mounts; m; m = m->next)
        m->workers_known |= bit; /* the fork copied them */
    log_info(&s->core->log, "worker=%u pid=%d started", w->num, (int)pid);
}

static json_t *workers_json(void *ctx)
{
    struct wsup *s = ctx;
    json_t *arr = json_array();
    for (uint32_t i = 0; i < s->n; i++) {
        const struct wproc *w = &s->w[i];
        json_array_append_new(
            arr, json_pack("{s:i, s:i, s:b, s:i, s:I, s:I, s:i}", "worker", (int)w->num, "pid",
                           (int)w->pid, "up", wproc_running(w), "connections", (int)w->connections,
                           "listeners_total", (json_int_t)w->c.listeners_total, "http_errors",
                           (json_int_t)w->c.http_errors, "restarts", (int)w->restarts));
    }
    return json_pack("{s:o}", "workers", arr);
}

static size_t remote_snaps(void *ctx, struct http_snap *out, size_t max)
{
    struct wsup *s = ctx;
    size_t n = 0;
    for (uint32_t i = 0; i < s->n && n < max; i++) {
        const struct wproc *w = &s->w[i];
        out[n++] = (struct http_snap){.worker = w->num, .up = wproc_running(w), .restarts = w->restarts,
                                      .connections = w->connections, .cpu_s = w->cpu_s,
                                      .rss_bytes = w->rss_bytes, .fds = w->fds, .c = w->c};
    }
    return n;
}

static size_t remote_mount_snaps(void *ctx, struct http_mount_snap *out, size_t max)
{
    struct wsup *s = ctx;
    size_t n = 0;
    for (uint32_t i = 0; i < s->n; i++) {
        const struct wproc *w = &s->w[i];
        for (uint32_t id = 0; id < w->per_mount_n && n < max; id++) {
            struct emount *m = w->per_mount[id].n ? workers_mount_by_id(s, id) : NULL;
            if (m)
                out[n++] = (struct http_mount_snap){.worker = w->num, .m = m,
                                                    .listeners = w->per_mount[id].n,
                                                    .icy = w->per_mount[id].icy};
        }
    }
    return n;
}

void workers_init(struct wsup *s, struct core *c, struct ehttp *h, uint32_t n)
{
    s->core = c;
    s->http = h;
    s->n = n;
    c->hooks = (struct edge_hooks){
        .ctx = s,
        .appended = hook_appended,
        .titled = hook_titled,
        .station = hook_station,
        .tick = hook_tick,
        .mount_freed = hook_mount_freed,
        .listeners = hook_listeners,
    };
    h->extra_json = workers_json;
    h->remote_snaps = remote_snaps;
    h->query_workers = workers_query;
    h->remote_mount_snaps = remote_mount_snaps;
    h->extra_ctx = s;
    s->listen_fd = -1;
    for (uint32_t i = 0; i < WORKERS_MAX; i++)
        s->inherit_fd[i] = s->inherit_tls_fd[i] = -1;
}

enum fc_err workers_start(struct wsup *s)
{
    struct core *c = s->core;
    struct ehttp *h = s->http;
    uint32_t n = s->n;
    s->loop = c->loop;
    /* Each worker listens with SO_REUSEPORT (worker.c): the kernel spreads connections evenly,
     * where a shared accept queue lets whichever worker wakes first take them all. Bind once
     * here so a taken address fails at start, then let go. */
    bool taken = s->inherit_fd[0] >= 0; /* handoff: no probe joins the listening group */
    int probe = taken ? -1 : net_tcp_listen_shared(&h->opt.listen, true);
    if (probe < 0 && !taken) {
        log_error(&c->log, "listen %s: %s", h->opt.listen.text, strerror(errno));
        return FC_IO;
    }
    if (probe >= 0)
        close(probe);
    s->listen_fd = -1;
    if (h->opt.has_tls && !taken) {
        probe = net_tcp_listen_shared(&h->opt.listen_tls, true);
        if (probe < 0) {
            log_error(&c->log, "listen %s: %s", h->opt.listen_tls.text, strerror(errno));
            return FC_IO;
        }
        close(probe);
        log_info(&c->log, "listening https=%s workers=%u", h->opt.listen_tls.text, n);
    }
    log_info(&c->log, "listening http=%s workers=%u", h->opt.listen.text, n);
    ev_prepare_init(&s->flush, on_flush);
    ev_prepare_start(s->loop, &s->flush);
    for (uint32_t i = 0; i < n; i++) {
        struct wproc *w = &s->w[i];
        w->sup = s;
        w->num = i + 1;
        w->fd = -1;
        w->backoff_s = WORKER_RESTART_S;
        ev_timer_init(&w->restart, on_restart, 0, 0);
        spawn(w);
        if (!w->pid)
            return FC_IO;
    }
    for (uint32_t i = 0; i < WORKERS_MAX; i++) { /* taken over: now the workers' alone */
        if (s->inherit_fd[i] >= 0)
            close(s->inherit_fd[i]);
        if (s->inherit_tls_fd[i] >= 0)
            close(s->inherit_tls_fd[i]);
        s->inherit_fd[i] = s->inherit_tls_fd[i] = -1;
    }
    return FC_OK;
}

void workers_tls_reload(struct wsup *s)
{
    for (uint32_t i = 0; i < s->n; i++)
        if (wproc_running(&s->w[i]))
            wproc_put(&s->w[i], WREC_TLS_RELOAD, 0, "", 0, NULL, 0);
}

void workers_stop(struct wsup *s)
{
    if (!s->loop)
        return;
    for (uint32_t i = 0; i < s->n; i++) {
        struct wproc *w = &s->w[i];
        ev_timer_stop(s->loop, &w->restart);
        if (w->pid > 0) {
            ev_child_stop(s->loop, &w->child);
            kill(w->pid, SIGTERM);
        }
    }
    for (uint32_t i = 0; i < s->n; i++) {
        struct wproc *w = &s->w[i];
        for (int k = 0; w->pid > 0 && k < 200; k++) {
            if (waitpid(w->pid, NULL, WNOHANG) == w->pid) {
                for (int r = 0; r < 256 && w->fd >= 0; r++) /* the sessions it sent as it */
                    workers_on_readable(s->loop, &w->rio, EV_READ);  /* closed its listeners */
                w->pid = 0;
            } else {
                usleep(10000);
            }
        }
        if (w->pid > 0) {
            kill(w->pid, SIGKILL);
            waitpid(w->pid, NULL, 0);
            w->pid = 0;
        }
        if (w->fd >= 0) {
            ev_io_stop(s->loop, &w->rio);
            ev_io_stop(s->loop, &w->wio);
            close(w->fd);
            w->fd = -1;
        }
        free(w->q);
        free(w->per_mount);
        w->q = NULL;
        w->per_mount = NULL;
    }
    ev_prepare_stop(s->loop, &s->flush);
    if (s->listen_fd >= 0)
        close(s->listen_fd);
    s->listen_fd = -1;
    free(s->by_id);
    s->by_id = NULL;
    s->by_id_n = 0;
}
