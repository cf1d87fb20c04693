/* metrics_http.c - see metrics_http.h. */
#include "metrics_http.h"

#include <errno.h>
#include <http_parser.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define CONTAINER(p, type, member) ((type *)(void *)((char *)(p) - offsetof(type, member)))

static void conn_close(struct metrics_conn *c)
{
    if (c->fd < 0)
        return;
    ev_io_stop(c->mh->loop, &c->io);
    ev_timer_stop(c->mh->loop, &c->timeout);
    close(c->fd);
    c->fd = -1;
    free(c->out);
    c->out = NULL;
}

static void on_write(EV_P_ ev_io *w, int revents)
{
    struct metrics_conn *c = CONTAINER(w, struct metrics_conn, io);
    ssize_t n = send(c->fd, c->out + c->out_off, c->out_len - c->out_off, MSG_NOSIGNAL);
    if (n < 0 && (errno == EAGAIN || errno == EINTR))
        return;
    if (n < 0 || (c->out_off += (size_t)n) == c->out_len)
        conn_close(c);
}

/* Answer `status` with `body` (len bytes; a HEAD request gets the headers only, Content-Length
 * still that of the body, RFC 9110 §9.3.2) and close once written. */
static void answer(struct metrics_conn *c, int status, const char *ctype, const char *body,
                   size_t len, bool head)
{
    const char *text = status == 200 ? "OK" : status == 404 ? "Not Found" : status == 405 ? "Method Not Allowed" : status == 503 ? "Service Unavailable" : "Bad Request";
    char head_buf[256];
    int k = snprintf(head_buf, sizeof(head_buf),
                     "HTTP/1.0 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
                     "Connection: close\r\n\r\n", status, text, ctype, len);
    size_t send_len = head ? 0 : len;
    c->out = malloc((size_t)k + send_len);
    if (!c->out)
        return conn_close(c);
    memcpy(c->out, head_buf, (size_t)k);
    memcpy(c->out + k, body, send_len);
    c->out_len = (size_t)k + send_len;
    c->out_off = 0;
    ev_io_stop(c->mh->loop, &c->io);
    ev_io_init(&c->io, on_write, c->fd, EV_WRITE);
    ev_io_start(c->mh->loop, &c->io);
}

struct parsed {
    const char *url;
    size_t url_len;
    bool done;
};

static int on_url(http_parser *p, const char *at, size_t len)
{
    struct parsed *r = p->data;
    r->url = at;
    r->url_len = len;
    return 0;
}

static int on_complete(http_parser *p)
{
    ((struct parsed *)p->data)->done = true;
    http_parser_pause(p, 1);
    return 0;
}

static void route(struct metrics_conn *c)
{
    http_parser_settings s;
    memset(&s, 0, sizeof(s));
    s.on_url = on_url;
    s.on_message_complete = on_complete;
    http_parser p;
    struct parsed r = {0};
    http_parser_init(&p, HTTP_REQUEST);
    p.data = &r;
    size_t used = http_parser_execute(&p, &s, c->req, c->req_len);
    enum http_errno err = HTTP_PARSER_ERRNO(&p);
    if (!r.done) {
        if ((err != HPE_OK && err != HPE_PAUSED) || used != c->req_len) {
            log_info(c->mh->log, "metrics: bad request: %s", http_errno_description(err));
            static const char bad[] = "bad request\n";
            answer(c, 400, "text/plain", bad, sizeof(bad) - 1, false);
        }
        return; /* incomplete: read on */
    }
    bool head = p.method == HTTP_HEAD;
    if (p.method != HTTP_GET && !head)
        return answer(c, 405, "text/plain", "method not allowed\n", 19, false);
    size_t path = r.url_len;
    for (size_t i = 0; i < r.url_len; i++)
        if (r.url[i] == '?') {
            path = i;
            break;
        }
    if (path != 8 || memcmp(r.url, "/metrics", 8) != 0)
        return answer(c, 404, "text/plain", "not found\n", 10, head);
    size_t len = 0;
    char *body = c->mh->render(c->mh->ctx, &len);
    if (!body)
        return answer(c, 503, "text/plain", "out of memory\n", 14, head);
    answer(c, 200, "text/plain; version=0.0.4; charset=utf-8", body, len, head);
    free(body);
}

static void on_read(EV_P_ ev_io *w, int revents)
{
    struct metrics_conn *c = CONTAINER(w, struct metrics_conn, io);
    ssize_t n = recv(c->fd, c->req + c->req_len, sizeof(c->req) - c->req_len, 0);
    if (n < 0 && (errno == EAGAIN || errno == EINTR))
        return;
    if (n <= 0)
        return conn_close(c);
    c->req_len += (size_t)n;
    route(c);
    if (c->fd >= 0 && !c->out && c->req_len == sizeof(c->req)) {
        static const char big[] = "request too large\n";
        answer(c, 400, "text/plain", big, sizeof(big) - 1, false);
    }
}

static void on_timeout(EV_P_ ev_timer *w, int revents)
{
    conn_close(CONTAINER(w, struct metrics_conn, timeout));
}

static void on_accept(EV_P_ ev_io *w, int revents)
{
    struct metrics_http *mh = CONTAINER(w, struct metrics_http, accept_io);
    for (int k = 0; k < 16; k++) {
        int fd = accept4(mh->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0)
            return;
        struct metrics_conn *c = NULL;
        for (int i = 0; i < METRICS_HTTP_CONNS && !c; i++)
            if (mh->conns[i].fd < 0)
                c = &mh->conns[i];
        if (!c) {
            close(fd);
            continue;
        }
        c->fd = fd;
        c->req_len = 0;
        ev_io_init(&c->io, on_read, fd, EV_READ);
        ev_io_start(mh->loop, &c->io);
        ev_timer_init(&c->timeout, on_timeout, 5.0, 0);
        ev_timer_start(mh->loop, &c->timeout);
    }
}

enum fc_err metrics_http_start(struct metrics_http *mh, struct ev_loop *loop, const struct log *log,
                               const struct net_addr *addr, metrics_render_fn render, void *ctx)
{
    int fd = net_tcp_listen(addr);
    if (fd < 0)
        return FC_IO;
    metrics_http_adopt(mh, loop, log, fd, render, ctx);
    return FC_OK;
}

void metrics_http_adopt(struct metrics_http *mh, struct ev_loop *loop, const struct log *log,
                        int fd, metrics_render_fn render, void *ctx)
{
    memset(mh, 0, sizeof(*mh));
    mh->loop = loop;
    mh->log = log;
    mh->render = render;
    mh->ctx = ctx;
    for (int i = 0; i < METRICS_HTTP_CONNS; i++) {
        mh->conns[i].fd = -1;
        mh->conns[i].mh = mh;
    }
    mh->fd = fd;
    ev_io_init(&mh->accept_io, on_accept, mh->fd, EV_READ);
    ev_io_start(loop, &mh->accept_io);
}

void metrics_http_stop(struct metrics_http *mh)
{
    if (!mh->loop)
        return;
    for (int i = 0; i < METRICS_HTTP_CONNS; i++)
        conn_close(&mh->conns[i]);
    ev_io_stop(mh->loop, &mh->accept_io);
    if (mh->fd >= 0)
        close(mh->fd);
    mh->fd = -1;
    mh->loop = NULL;
}
