/* listener.c - HTTP/1.x listeners: requests parsed with http-parser, audio written with writev
 * straight from the mount's rewind buffer (docs/architecture.md §7). */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>
#include "http.h"
#include "preroll.h"
#include "request.h"


static void on_read(EV_P_ ev_io *w, int revents);
static void on_write(EV_P_ ev_io *w, int revents);
static void on_idle(EV_P_ ev_timer *w, int revents);

static const char *status_text(int status)
{
    switch (status) {
    case 200: return "OK";
    case 204: return "No Content";
    case 400: return "Bad Request";
    case 404: return "Not Found";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 405: return "Method Not Allowed";
    case 409: return "Conflict";
    case 413: return "Content Too Large";
    case 416: return "Range Not Satisfiable";
    case 431: return "Request Header Fields Too Large";
    case 503: return "Service Unavailable";
    default: return "Error";
    }
}

void listener_close(struct elistener *l, const char *why)
{
    struct ehttp *h = l->http;
    if (l->closing)
        return;
    l->closing = true;
    if (l->pending)
        admin_forget(l);
    preroll_forget(l);
    ev_io_stop(h->loop, &l->rio);
    ev_io_stop(h->loop, &l->wio);
    ev_timer_stop(h->loop, &l->idle);
    tls_close(l);
    close(l->fd);
    l->fd = -1;
    if (l->mount) {
        session_closed(l);
        log_info(h->log, "listener=%s mount=%s closed bytes=%llu reason=\"%s\"", l->peer,
                 l->mount->name, (unsigned long long)l->bytes_sent, why);
        list_del(&l->mlink);
        if (l->linked)
            list_del(&l->wlink);
        l->linked = false;
        l->hm->n_listeners--;
        if (l->icy)
            l->hm->n_icy--;
        http_count_close(h, why);
    }
    h->n_listeners--;
    list_del(&l->alink);
    l->reap_next = h->reap_list;
    h->reap_list = l;
}

static void listener_free(struct elistener *l)
{
    if (l->ssl)
        tls_free(l);
    icy_release(l);
    free(l->req);
    free(l->out);
    free(l);
}

static void start_write(struct elistener *l)
{
    if (!ev_is_active(&l->wio))
        ev_io_start(l->http->loop, &l->wio);
}

/* Queue a whole response (headers + body); the connection closes once it is written. */
void listener_respond(struct elistener *l, int status, const char *ctype, const char *body,
                      size_t body_len, const char *extra)
{
    char head[1024];
    int n = snprintf(head, sizeof(head),
                     "HTTP/1.0 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
                     "Cache-Control: no-cache\r\n" CORS_HEADERS SERVER_HEADER
                     "%s%sConnection: close\r\n\r\n",
                     status, status_text(status), ctype, body_len, l->http->worker_header,
                     extra ? extra : "");
    if (n < 0 || (size_t)n >= sizeof(head))
        n = 0;
    size_t send_body = l->head ? 0 : body_len;
    free(l->out);
    l->out = malloc((size_t)n + send_body);
    if (!l->out) {
        listener_close(l, "out of memory");
        return;
    }
    memcpy(l->out, head, (size_t)n);
    if (send_body)
        memcpy(l->out + n, body, send_body);
    l->out_len = (uint32_t)((size_t)n + send_body);
    l->out_off = 0;
    l->state = L_RESPONSE;
    if (status >= 400)
        l->http->c.http_errors++;
    start_write(l);
}

void listener_respond_error(struct elistener *l, int status, const char *msg)
{
    char body[256];
    int n = snprintf(body, sizeof(body), "{\"error\":\"%s\",\"status\":%d}\n", msg, status);
    log_info(l->http->log, "listener=%s http=%d %s", l->peer, status, msg);
    listener_respond(l, status, "application/json", body, (size_t)n, NULL);
}

const char *listener_content_type(enum fc_codec codec)
{
    return codec == FC_CODEC_ADTS ? "audio/aac" : "audio/mpeg";
}

void listener_serve_span(struct elistener *l, struct emount *m, const char *head, size_t head_len,
                         const uint8_t *prefix, size_t prefix_len)
{
    struct ehttp *h = l->http;
    size_t n = head_len + (l->head ? 0 : prefix_len);
    l->out = malloc(n);
    if (!l->out) {
        listener_close(l, "out of memory");
        return;
    }
    memcpy(l->out, head, head_len);
    if (!l->head && prefix_len)
        memcpy(l->out + head_len, prefix, prefix_len);
    l->out_len = (uint32_t)n;
    l->out_off = 0;
    l->state = L_RESPONSE;
    if (l->head)
        return start_write(l);
    struct hmount *hm = hmount_of(h, m);
    if (!hm)
        return listener_close(l, "out of memory");
    l->mount = m;
    l->hm = hm;
    if (l->paced || l->end_abs)
        l->timeshift_s = (m->rw.end_pts_us - l->start_pts_us) / 1e6;
    list_add(&hm->listeners, &l->mlink);
    list_init(&l->wlink);
    hm->n_listeners++;
    hm->n_icy += l->icy;
    h->c.listeners_total++;
    /* Head and burst in one writev, now: no epoll round trip (time to first byte in a storm). */
    listener_write_audio(l);
}

static int on_url(http_parser *p, const char *at, size_t len)
{
    struct elistener *l = p->data;
    if (!l->url)
        l->url = at;
    l->url_len += len; /* pieces are contiguous: they all live in l->req */
    return 0;
}

/* Header pieces are contiguous in l->req, so a field or value is one (pointer, length). */
static void header_done(struct elistener *l)
{
    if (l->hfield && l->hfield_len == 13 && strncasecmp(l->hfield, "authorization", 13) == 0 &&
        l->hvalue) {
        l->auth = l->hvalue;
        l->auth_len = l->hvalue_len;
    } else if (l->hfield && l->hfield_len == 10 && strncasecmp(l->hfield, "user-agent", 10) == 0 &&
               l->hvalue) {
        size_t n = l->hvalue_len < sizeof(l->ua) - 1 ? l->hvalue_len : sizeof(l->ua) - 1;
        memcpy(l->ua, l->hvalue, n);
        l->ua[n] = '\0';
    } else if (l->hfield && l->hfield_len == 12 && strncasecmp(l->hfield, "icy-metadata", 12) == 0 &&
        l->hvalue && l->hvalue_len >= 1 && l->hvalue[0] == '1')
        l->icy = true;
    else if (l->hfield && l->hfield_len == 21 &&
             strncasecmp(l->hfield, "x-playback-session-id", 21) == 0 && l->hvalue)
        snprintf(l->play_sid, sizeof(l->play_sid), "%.*s",
                 (int)(l->hvalue_len < sizeof(l->play_sid) - 1 ? l->hvalue_len
                                                                 : sizeof(l->play_sid) - 1),
                 l->hvalue);
    else if (l->hfield && l->hfield_len == 4 && strncasecmp(l->hfield, "host", 4) == 0 &&
             l->hvalue && l->hvalue_len < sizeof(l->host))
        snprintf(l->host, sizeof(l->host), "%.*s", (int)l->hvalue_len, l->hvalue);
    else if (l->hfield && l->hfield_len == 6 && strncasecmp(l->hfield, "accept", 6) == 0 &&
             l->hvalue && memmem(l->hvalue, l->hvalue_len, "text/html", 9))
        l->wants_html = true;
    l->hfield = l->hvalue = NULL;
    l->hfield_len = l->hvalue_len = 0;
}

static int on_header_field(http_parser *p, const char *at, size_t len)
{
    struct elistener *l = p->data;
    if (l->hvalue)
        header_done(l);
    if (!l->hfield)
        l->hfield = at;
    l->hfield_len += len;
    return 0;
}

static int on_header_value(http_parser *p, const char *at, size_t len)
{
    struct elistener *l = p->data;
    if (!l->hvalue)
        l->hvalue = at;
    l->hvalue_len += len;
    return 0;
}

static int on_headers_complete(http_parser *p)
{
    struct elistener *l = p->data;
    header_done(l);
    if (p->content_length != ULLONG_MAX && p->content_length > EDGE_BODY_MAX) {
        l->too_big = true;
        http_parser_pause(p, 1);
    }
    return 0;
}

static int on_body(http_parser *p, const char *at, size_t len)
{
    struct elistener *l = p->data;
    if (!l->body)
        l->body = at;
    l->body_len += len; /* pieces are contiguous: the whole request is parsed at once */
    return 0;
}

static int on_message_complete(http_parser *p)
{
    struct elistener *l = p->data;
    l->done = true;
    l->head = p->method == HTTP_HEAD;
    http_parser_pause(p, 1); /* one request per connection */
    return 0;
}

/* Streaming listeners send nothing more; a read tells us they left. */
static void drain_input(struct elistener *l)
{
    char buf[512];
    ssize_t n = l->ssl ? tls_read(l, buf, sizeof(buf)) : read(l->fd, buf, sizeof(buf));
    if (n == 0)
        listener_close(l, "listener disconnected");
    else if (n < 0 && errno != EAGAIN && errno != EINTR)
        listener_close(l, strerror(errno));
}

/* Parse everything received so far from the start (a request is at most EDGE_REQ_MAX bytes):
 * callbacks' pointers then all point into `buf`, which stays put until the request is routed. */
void listener_parse(struct elistener *l, char *buf, size_t len)
{
    http_parser_init(&l->parser, HTTP_REQUEST);
    l->parser.data = l;
    l->url = l->hfield = l->hvalue = NULL;
    l->url_len = l->hfield_len = l->hvalue_len = 0;
    l->icy = l->wants_html = l->done = l->too_big = false;
    l->host[0] = l->ua[0] = l->play_sid[0] = '\0';
    l->auth = l->body = NULL;
    l->auth_len = l->body_len = 0;
    size_t parsed = http_parser_execute(&l->parser, &l->http->parser, buf, len);
    enum http_errno err = HTTP_PARSER_ERRNO(&l->parser);
    if (l->too_big) {
        ev_timer_stop(l->http->loop, &l->idle);
        return listener_respond_error(l, 413, "request body too large");
    }
    if (l->done) {
        ev_timer_stop(l->http->loop, &l->idle);
        l->http->req_cur = buf;
        l->http->req_cur_len = len;
        return edge_route(l);
    }
    if (err != HPE_OK || parsed != len)
        return listener_respond_error(l, 400, http_errno_description(err));
    if (len >= EDGE_REQ_MAX)
        return listener_respond_error(l, 431, "request headers too large");
}

/* Drive a TLS handshake from either watcher; true once it is done (then go on reading). */
static bool handshake(struct elistener *l)
{
    int r = tls_handshake(l);
    if (r < 0) {
        listener_close(l, "TLS handshake failed");
        return false;
    }
    if (r == 0) {
        if (l->tls_want_write)
            ev_io_start(l->http->loop, &l->wio);
        return false;
    }
    if (!l->out)
        ev_io_stop(l->http->loop, &l->wio);
    return true;
}

/*
 * Requests are read into the edge's scratch buffer; most arrive whole and need no memory of
 * their own. Only a request split across reads is kept, in a per-listener buffer freed once it
 * is routed (memory per listener, docs/architecture.md §9.4).
 */
static void on_read(EV_P_ ev_io *w, int revents)
{
    struct elistener *l = container_of(w, struct elistener, rio);
    struct ehttp *h = l->http;
    if (l->ssl && !l->tls_ready && !handshake(l))
        return;
    if (l->state != L_REQUEST)
        return drain_input(l);
    size_t have = l->req ? l->req_len : 0;
    memcpy(h->req_scratch, l->req ? l->req : "", have);
    ssize_t n = l->ssl ? tls_read(l, h->req_scratch + have, EDGE_REQ_MAX - have)
                       : read(l->fd, h->req_scratch + have, EDGE_REQ_MAX - have);
    if (n == 0)
        return listener_close(l, "closed before completing the request");
    if (n < 0) {
        if (errno != EAGAIN && errno != EINTR)
            listener_close(l, strerror(errno));
        return;
    }
    size_t len = have + (size_t)n;
    listener_parse(l, h->req_scratch, len);
    if (l->closing || l->state != L_REQUEST)
        return;
    /* Incomplete: keep what came for the next read. */
    if (!l->req && !(l->req = malloc(EDGE_REQ_MAX)))
        return listener_close(l, "out of memory");
    memcpy(l->req, h->req_scratch, len);
    l->req_len = (uint32_t)len;
}

static void on_idle(EV_P_ ev_timer *w, int revents)
{
    struct elistener *l = container_of(w, struct elistener, idle);
    listener_close(l, "request not completed within 10 s");
}

static void on_write(EV_P_ ev_io *w, int revents)
{
    struct elistener *l = container_of(w, struct elistener, wio);
    if (l->ssl && !l->tls_ready) {
        if (handshake(l))
            on_read(EV_A_ & l->rio, EV_READ); /* the request may already be in */
        return;
    }
    if (l->mount)
        return listener_write_audio(l); /* the response head goes with the first audio */
    ssize_t n = l->ssl ? tls_write(l, l->out + l->out_off, l->out_len - l->out_off)
                       : write(l->fd, l->out + l->out_off, l->out_len - l->out_off);
    if (n < 0) {
        if (errno != EAGAIN && errno != EINTR)
            listener_close(l, strerror(errno));
        return;
    }
    http_ttfb(l);
    l->out_off += (uint32_t)n;
    if (l->out_off == l->out_len)
        listener_close(l, "response sent");
}

struct elistener *listener_accept(struct ehttp *h, int fd, const struct sockaddr *sa,
                                  const char *peer)
{
    struct elistener *l = calloc(1, sizeof(*l));
    if (!l) {
        close(fd);
        return NULL;
    }
    l->http = h;
    l->fd = fd;
    l->req = NULL;
    if (sa)
        net_sockaddr_str(sa, l->peer, sizeof(l->peer));
    else
        snprintf(l->peer, sizeof(l->peer), "%s", peer);
    http_parser_init(&l->parser, HTTP_REQUEST);
    l->parser.data = l;
    list_init(&l->mlink);
    list_init(&l->wlink);
    ev_io_init(&l->rio, on_read, fd, EV_READ);
    ev_io_init(&l->wio, on_write, fd, EV_WRITE);
    ev_timer_init(&l->idle, on_idle, EDGE_REQ_TIMEOUT_S, 0);
    ev_io_start(h->loop, &l->rio);
    ev_timer_start(h->loop, &l->idle);
    h->n_listeners++;
    list_add(&h->all, &l->alink);
    l->accepted = ev_time();
    l->id = (uint64_t)h->worker << 40 | ++h->next_id;
    return l;
}

void edge_http_adopt(struct ehttp *h, int fd, const char *peer, const char *req, size_t len)
{
    struct elistener *l = listener_accept(h, fd, NULL, peer);
    if (!l)
        return;
    len = len < EDGE_REQ_MAX ? len : EDGE_REQ_MAX;
    memcpy(h->req_scratch, req, len);
    listener_parse(l, h->req_scratch, len);
    if (!l->closing && l->state == L_REQUEST && !l->pending)
        listener_respond_error(l, 400, "incomplete request handed over");
}

static void accept_all(struct ehttp *h, int lfd, bool tls)
{
    for (int i = 0; i < 256; i++) {
        struct sockaddr_storage ss;
        socklen_t sl = sizeof(ss);
        int fd = accept4(lfd, (struct sockaddr *)&ss, &sl, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd >= 0) {
            struct elistener *l = listener_accept(h, fd, (struct sockaddr *)&ss, NULL);
            if (l && tls && !tls_start(l))
                listener_close(l, "TLS setup failed");
            continue;
        }
        if ((errno == EMFILE || errno == ENFILE) && h->spare_fd >= 0) {
            /* Out of descriptors: accept with the spare and close, so the loop doesn't spin. */
            close(h->spare_fd);
            fd = accept(lfd, NULL, NULL);
            if (fd >= 0)
                close(fd);
            h->spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
            log_warn(h->log, "accept: out of file descriptors, connection refused");
        }
        return;
    }
}

static void on_accept(EV_P_ ev_io *w, int revents)
{
    struct ehttp *h = container_of(w, struct ehttp, accept_w);
    accept_all(h, h->listen_fd, false);
}

static void on_accept_tls(EV_P_ ev_io *w, int revents)
{
    struct ehttp *h = container_of(w, struct ehttp, tls_accept_w);
    accept_all(h, h->tls_fd, true);
}

void edge_http_listen_tls(struct ehttp *h, int fd)
{
    h->tls_fd = fd;
    ev_io_init(&h->tls_accept_w, on_accept_tls, fd, EV_READ);
    ev_io_start(h->loop, &h->tls_accept_w);
}

static void on_reap(EV_P_ ev_check *w, int revents)
{
    struct ehttp *h = container_of(w, struct ehttp, reap);
    while (h->reap_list) {
        struct elistener *l = h->reap_list;
        h->reap_list = l->reap_next;
        listener_free(l);
    }
}

void edge_http_init(struct ehttp *h)
{
    memset(&h->parser, 0, sizeof(h->parser));
    h->parser.on_url = on_url;
    h->parser.on_message_complete = on_message_complete;
    h->parser.on_header_field = on_header_field;
    h->parser.on_header_value = on_header_value;
    h->parser.on_headers_complete = on_headers_complete;
    h->parser.on_body = on_body;
    h->spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    for (int i = 0; i < EDGE_WHEEL_SLOTS; i++)
        list_init(&h->wheel[i]);
    list_init(&h->all);
    ev_check_init(&h->reap, on_reap);
    ev_check_start(h->loop, &h->reap);
}

void edge_http_listen(struct ehttp *h, int fd)
{
    h->listen_fd = fd;
    ev_io_init(&h->accept_w, on_accept, h->listen_fd, EV_READ);
    ev_io_start(h->loop, &h->accept_w);
}

enum fc_err edge_http_start(struct ehttp *h)
{
    edge_http_init(h);
    int fd = net_tcp_listen(&h->opt.listen);
    if (fd < 0) {
        log_error(h->log, "listen %s: %s", h->opt.listen.text, strerror(errno));
        return FC_IO;
    }
    edge_http_listen(h, fd);
    log_info(h->log, "listening http=%s", h->opt.listen.text);
    return FC_OK;
}

void edge_http_free(struct ehttp *h)
{
    for (struct hmount *hm = h->hmounts; hm; hm = hm->next)
        while (!list_empty(&hm->listeners))
            listener_close(container_of(hm->listeners.next, struct elistener, mlink), "shutdown");
    on_reap(h->loop, &h->reap, 0);
    while (h->hmounts) {
        struct hmount *hm = h->hmounts;
        h->hmounts = hm->next;
        hm->m->http = NULL;
        free(hm);
    }
    ev_io_stop(h->loop, &h->accept_w);
    if (h->listen_fd >= 0)
        close(h->listen_fd);
    if (h->tls_ctx) {
        ev_io_stop(h->loop, &h->tls_accept_w);
        if (h->tls_fd >= 0)
            close(h->tls_fd);
        tls_ctx_free(h->tls_ctx);
        h->tls_ctx = NULL;
    }
    if (h->spare_fd >= 0)
        close(h->spare_fd);
}

uint32_t edge_http_listeners(const struct emount *m)
{
    const struct hmount *hm = m->http;
    return (hm ? hm->n_listeners : 0) + m->remote_listeners;
}
