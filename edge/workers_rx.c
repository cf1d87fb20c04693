/* workers_rx.c - see workers.h: what the core process receives from its workers (listener
 * counts, forwarded requests, admin API answers, handoff records, sessions) and the admin API's
 * questions to them. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include "workers.h"
#include "wmsg.h"

static void set_count(struct wproc *w, uint32_t id, uint32_t n, uint32_t icy)
{
    if (id >= w->per_mount_n) {
        uint32_t cap = id + 64;
        struct wcount *p = realloc(w->per_mount, cap * sizeof(*p));
        if (!p)
            return;
        memset(p + w->per_mount_n, 0, (cap - w->per_mount_n) * sizeof(*p));
        w->per_mount = p;
        w->per_mount_n = cap;
    }
    struct emount *m = workers_mount_by_id(w->sup, id);
    if (m) {
        m->remote_listeners = m->remote_listeners - w->per_mount[id].n + n;
        m->remote_icy = m->remote_icy - w->per_mount[id].icy + icy;
    }
    w->per_mount[id] = (struct wcount){n, icy};
}

static void total_connections(struct wsup *s)
{
    uint32_t total = 0;
    for (uint32_t i = 0; i < s->n; i++)
        total += s->w[i].connections;
    s->http->remote_listeners = total;
}

static void on_counts(struct wproc *w, const uint8_t *p, size_t len)
{
    struct wrec_counts c;
    if (len < sizeof(c))
        return;
    memcpy(&c, p, sizeof(c));
    if (len < sizeof(c) + (size_t)c.n * sizeof(struct wrec_mcount))
        return;
    /* Mounts missing from the report have no listeners on it. */
    for (uint32_t id = 0; id < w->per_mount_n; id++)
        if (w->per_mount[id].n)
            set_count(w, id, 0, 0);
    for (uint32_t i = 0; i < c.n; i++) {
        struct wrec_mcount mc;
        memcpy(&mc, p + sizeof(c) + sizeof(mc) * i, sizeof(mc));
        set_count(w, mc.mount, mc.listeners, mc.icy);
    }
    w->connections = c.connections;
    w->cpu_s = c.cpu_s;
    w->rss_bytes = c.rss_bytes;
    w->fds = c.fds;
    w->c = c.c;
    total_connections(w->sup);
}

static void on_forward(struct wproc *w, const uint8_t *p, size_t len, int fd)
{
    if (fd < 0)
        return;
    if (len < 64) {
        close(fd);
        return;
    }
    char peer[64];
    memcpy(peer, p, 64);
    peer[63] = '\0';
    edge_http_adopt(w->sup->http, fd, peer, (const char *)p + 64, len - 64);
}

static void on_listeners(struct wproc *w, const uint8_t *p, size_t len)
{
    uint32_t query;
    if (len < 4 || (len - 4) % sizeof(struct api_listener) != 0)
        return;
    memcpy(&query, p, 4);
    size_t n = (len - 4) / sizeof(struct api_listener);
    struct api_listener ls[WMSG_DGRAM_MAX / sizeof(struct api_listener) + 1];
    memcpy(ls, p + 4, n * sizeof(*ls));
    for (size_t i = 0; i < n; i++) {
        ls[i].mount[WIRE_MOUNT_MAX] = ls[i].peer[63] = ls[i].ua[EDGE_UA_MAX - 1] = '\0';
    }
    api_query_reply(w->sup->http, query, ls, n);
}

static void on_done(struct wproc *w, const uint8_t *p, size_t len)
{
    struct wrec_done d;
    if (len != sizeof(d))
        return;
    memcpy(&d, p, sizeof(d));
    api_query_done(w->sup->http, d.query, d.found);
}

uint32_t workers_query(void *ctx, uint32_t query, int kind, const char *mount, uint64_t id)
{
    struct wsup *s = ctx;
    struct wrec_query q;
    memset(&q, 0, sizeof(q));
    q.query = query;
    q.kind = (uint8_t)kind;
    q.id = id;
    snprintf(q.mount, sizeof(q.mount), "%s", mount);
    uint32_t asked = 0;
    for (uint32_t i = 0; i < s->n; i++) {
        struct wproc *w = &s->w[i];
        if (kind == API_QUERY_KICK && (uint32_t)(id >> 40) != w->num)
            continue; /* a listener id names its worker */
        if (!wproc_running(w))
            continue;
        wproc_put(w, WREC_QUERY, 0, &q, sizeof(q), NULL, 0);
        asked += wproc_running(w);
    }
    return asked;
}

void wproc_clear_counts(struct wproc *w)
{
    for (uint32_t id = 0; id < w->per_mount_n; id++)
        if (w->per_mount[id].n)
            set_count(w, id, 0, 0);
    w->connections = 0;
    total_connections(w->sup);
}

void workers_on_readable(EV_P_ ev_io *io, int revents)
{
    struct wproc *w = container_of(io, struct wproc, rio);
    uint8_t *buf = w->sup->rx;
    for (int k = 0; k < 64 && wproc_running(w); k++) {
        union {
            struct cmsghdr h;
            char buf[CMSG_SPACE(sizeof(int))];
        } cm;
        struct iovec iov = {.iov_base = buf, .iov_len = sizeof(w->sup->rx)};
        struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = cm.buf,
                             .msg_controllen = sizeof(cm.buf)};
        ssize_t n = recvmsg(w->fd, &msg, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
        if (n <= 0) {
            if (n == 0 || (errno != EAGAIN && errno != EINTR))
                ev_io_stop(EV_A_ io); /* it exited: ev_child reaps and restarts it */
            return;
        }
        int fd = -1;
        struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
        if (c && c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS)
            memcpy(&fd, CMSG_DATA(c), sizeof(int));
        struct wrec_head hd;
        if ((size_t)n < sizeof(hd) || (memcpy(&hd, buf, sizeof(hd)), sizeof(hd) + hd.len > (size_t)n)) {
            if (fd >= 0)
                close(fd);
            continue;
        }
        if (hd.type == WREC_COUNTS)
            on_counts(w, buf + sizeof(hd), hd.len);
        if (hd.type == WREC_LISTENERS)
            on_listeners(w, buf + sizeof(hd), hd.len);
        if (hd.type == WREC_DONE)
            on_done(w, buf + sizeof(hd), hd.len);
        if (hd.type == WREC_SESSION && hd.len == sizeof(struct an_session) &&
            w->sup->http->session_out) {
            struct an_session ss;
            memcpy(&ss, buf + sizeof(hd), sizeof(ss));
            ss.id[AN_ID_MAX] = ss.mount[WIRE_MOUNT_MAX] = '\0';
            ss.ua[AN_UA_MAX - 1] = ss.client[AN_CLIENT_MAX - 1] = '\0';
            w->sup->http->session_out(w->sup->http->session_ctx, &ss);
        }
        if (hd.type == WREC_HLS_HIT && hd.len == sizeof(struct an_hls_hit) &&
            w->sup->http->hls_hit) {
            struct an_hls_hit hh;
            memcpy(&hh, buf + sizeof(hd), sizeof(hh));
            hh.key[AN_ID_MAX] = hh.mount[WIRE_MOUNT_MAX] = '\0';
            hh.ua[AN_UA_MAX - 1] = hh.client[AN_CLIENT_MAX - 1] = '\0';
            w->sup->http->hls_hit(w->sup->http->session_ctx, &hh);
        }
        if (hd.type == WREC_FORWARD) {
            on_forward(w, buf + sizeof(hd), hd.len, fd);
        } else if ((hd.type == WREC_HANDED || hd.type == WREC_HANDED_END) && w->sup->handed) {
            if (hd.type == WREC_HANDED_END)
                w->handing = false;
            w->sup->handed(w->sup->handed_ctx, w, hd.type, buf + sizeof(hd), hd.len, fd);
        } else if (fd >= 0) {
            close(fd);
        }
    }
}

