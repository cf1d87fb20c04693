/*
 * fuzz_metrics_http.c - libFuzzer target for the Prometheus scrape endpoint of the relay and the
 * shim (shared/metrics_http.c: accept, request reading and parsing, routing, the answer written
 * back, the request timeout).
 *
 * metrics_http.c is compiled in unchanged and runs on a real libev loop with real sockets: its
 * listening socket is a Unix stream socket (abstract name, instead of net_tcp_listen's TCP) so
 * its own on_accept() takes each connection; the client writes the input in chunks on the other
 * end, running the loop (EVRUN_NOWAIT, a bounded number of times) between them, and reads back
 * what the server answers.
 *
 * Input: 1 flags byte, 1 byte seeding the chunk sizes, then the bytes the client sends.
 *   flags bit 0: the client half-closes (shutdown SHUT_WR) once everything is written;
 *   bit 1: the render callback fails (503); bit 2: the body is large (~40 KiB) and the server's
 *   send buffer small, so the answer takes many writes; bit 3: the client closes its end once
 *   everything is written, reading nothing more; bit 4: the request timer fires (not after 5 s)
 *   once the client has written everything, if the server is still waiting for the request.
 *
 * Checks, besides the sanitizers: the server never blocks or spins (it closes the connection
 * within a bounded number of loop runs once the client stopped writing: half-close, close or
 * timeout); the connection's descriptor is closed and its slot free; what the client receives is
 * nothing or exactly one answer: a valid HTTP/1.0 status line among those documented (200, 400,
 * 404, 405, 503), headers ending in a blank line, a Content-Length that matches the body (200:
 * exactly the rendered text, for GET or HEAD of /metrics only; HEAD: no body, Content-Length that
 * of the GET), nothing after it.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "../../shared/metrics_http.c"

#include "fuzz_check.h"

#define BIG_BODY 40000
#define REPLY_CAP (BIG_BODY + 4096)
#define MAX_INPUT (64 * 1024)
#define SMALL_BODY "# HELP fz_up Up.\n# TYPE fz_up gauge\nfz_up 1\n"

static struct ev_loop *loop;
static bool verbose; /* FUZZ_VERBOSE=1: each input's answer on stderr */
static struct log lg;
static struct metrics_http mh;
static struct sockaddr_un addr;
static socklen_t addr_len;

static struct {
    bool fail, big;
    char *body; /* what render returned last (its text, kept for the check) */
    size_t body_len;
    int calls;
} rnd;

static char big_body[BIG_BODY];

static char *render(void *ctx, size_t *len)
{
    CHECK(ctx == &rnd);
    rnd.calls++;
    if (rnd.fail)
        return NULL;
    const char *src = rnd.big ? big_body : SMALL_BODY;
    size_t n = rnd.big ? BIG_BODY : strlen(src);
    char *b = malloc(n);
    CHECK(b);
    memcpy(b, src, n);
    *len = n;
    return b;
}

static void init_once(void)
{
    if (loop)
        return;
    loop = ev_loop_new(EVFLAG_AUTO);
    CHECK(loop);
    verbose = getenv("FUZZ_VERBOSE") != NULL;
    log_init(&lg, "fuzz", false);
    lg.min = LOG_ERROR + 1; /* bad requests are logged at info: silence */
    for (size_t i = 0; i < sizeof(big_body); i++)
        big_body[i] = (char)('a' + i % 26);
    big_body[sizeof(big_body) - 1] = '\n';

    /* What metrics_http_start() does, on a Unix socket instead of TCP. */
    memset(&mh, 0, sizeof(mh));
    mh.loop = loop;
    mh.log = &lg;
    mh.render = render;
    mh.ctx = &rnd;
    for (int i = 0; i < METRICS_HTTP_CONNS; i++) {
        mh.conns[i].fd = -1;
        mh.conns[i].mh = &mh;
    }
    mh.fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    CHECK(mh.fd >= 0);
    memset(&addr, 0, sizeof(addr));
    addr.sun_family = AF_UNIX;
    int n = snprintf(addr.sun_path + 1, sizeof(addr.sun_path) - 1, "fuzz_metrics_http.%d",
                     (int)getpid()); /* abstract: no file */
    addr_len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + (size_t)n);
    CHECK(bind(mh.fd, (struct sockaddr *)&addr, addr_len) == 0);
    CHECK(listen(mh.fd, 64) == 0);
    ev_io_init(&mh.accept_io, on_accept, mh.fd, EV_READ);
    ev_io_start(loop, &mh.accept_io);
}

static struct {
    char buf[REPLY_CAP];
    size_t len;
    bool eof;
} reply;

static int client = -1;

/* Read what the server sent so far (unless the client has closed). */
static void client_read(void)
{
    if (client < 0 || reply.eof)
        return;
    for (;;) {
        CHECK(reply.len < sizeof(reply.buf)); /* never more than one answer */
        ssize_t n = recv(client, reply.buf + reply.len, sizeof(reply.buf) - reply.len, 0);
        if (n > 0) {
            reply.len += (size_t)n;
            continue;
        }
        if (n == 0) {
            reply.eof = true;
            return;
        }
        CHECK(errno == EAGAIN || errno == EINTR || errno == ECONNRESET);
        if (errno == ECONNRESET)
            reply.eof = true;
        return;
    }
}

static struct metrics_conn *live_conn(void)
{
    struct metrics_conn *c = NULL;
    for (int i = 0; i < METRICS_HTTP_CONNS; i++)
        if (mh.conns[i].fd >= 0) {
            CHECK(!c); /* one client at a time here */
            c = &mh.conns[i];
        }
    return c;
}

static uint32_t lcg(uint32_t *seed)
{
    *seed = *seed * 1103515245u + 12345u;
    return *seed >> 8;
}

/* http_parser skips CR and LF before the request line. */
static bool starts_with_method(const uint8_t *d, size_t n, const char *m)
{
    size_t i = 0;
    while (i < n && (d[i] == '\r' || d[i] == '\n'))
        i++;
    size_t k = strlen(m);
    return n - i >= k && memcmp(d + i, m, k) == 0;
}

/* The request target is /metrics, with or without a query: "METHOD /metrics" then one of " ?\r\n"
 * (after the CR and LF http_parser skips, and the spaces it allows). */
static bool asks_metrics(const uint8_t *d, size_t n)
{
    size_t i = 0;
    while (i < n && (d[i] == '\r' || d[i] == '\n'))
        i++;
    while (i < n && d[i] >= 'A' && d[i] <= 'Z')
        i++;
    while (i < n && d[i] == ' ')
        i++;
    return n - i > 8 && memcmp(d + i, "/metrics", 8) == 0 && memchr(" ?\r\n", d[i + 8], 4);
}

/* The one answer in reply.buf: status line, headers, Content-Length vs the body. */
static void check_reply(const uint8_t *req, size_t req_len, bool complete)
{
    const char *r = reply.buf;
    if (reply.len == 0)
        return;
    /* once it began answering, the server only closes after writing the whole answer */
    const char *end = memmem(r, reply.len, "\r\n\r\n", 4);
    if (complete)
        CHECK(end);
    if (!end)
        return;
    CHECK(reply.len >= 13 && memcmp(r, "HTTP/1.0 ", 9) == 0 && r[12] == ' ');
    int status = (r[9] - '0') * 100 + (r[10] - '0') * 10 + (r[11] - '0');
    static const struct {
        int status;
        const char *line;
    } known[] = {
        {200, "HTTP/1.0 200 OK\r\n"},
        {400, "HTTP/1.0 400 Bad Request\r\n"},
        {404, "HTTP/1.0 404 Not Found\r\n"},
        {405, "HTTP/1.0 405 Method Not Allowed\r\n"},
        {503, "HTTP/1.0 503 Service Unavailable\r\n"},
    };
    const char *line = NULL;
    for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++)
        if (known[i].status == status)
            line = known[i].line;
    CHECK(line && strncmp(r, line, strlen(line)) == 0);
    size_t head_len = (size_t)(end + 4 - r);
    /* headers: "Name: value" lines, no bare CR or LF */
    for (const char *h = r + strlen(line); h < end + 2;) {
        const char *eol = memmem(h, (size_t)(end + 2 - h), "\r\n", 2);
        CHECK(eol);
        const char *colon = memchr(h, ':', (size_t)(eol - h));
        CHECK(colon && colon > h && colon[1] == ' ');
        for (const char *p = h; p < eol; p++)
            CHECK(*p != '\r' && *p != '\n' && *p != '\0');
        h = eol + 2;
    }
    char head[512];
    CHECK(head_len < sizeof(head));
    memcpy(head, r, head_len);
    head[head_len] = '\0';
    const char *cl = strstr(head, "\r\nContent-Length: ");
    CHECK(cl);
    char *num_end;
    unsigned long long announced = strtoull(cl + 18, &num_end, 10);
    CHECK(num_end > cl + 18 && num_end[0] == '\r' && num_end[1] == '\n');
    CHECK(strstr(head, "\r\nConnection: close\r\n"));
    bool head_req = starts_with_method(req, req_len, "HEAD ");
    size_t body_len = reply.len - head_len;
    bool no_body = head_req && status != 400; /* HEAD: headers only (400: maybe no request) */
    CHECK(!head_req || status != 405);
    if (complete) {
        if (no_body)
            CHECK(body_len == 0);
        else
            CHECK(body_len == announced);
    } else {
        CHECK(body_len <= announced);
    }
    if (status == 200) {
        CHECK(rnd.calls == 1 && !rnd.fail);
        CHECK(starts_with_method(req, req_len, "GET ") || head_req);
        CHECK(asks_metrics(req, req_len));
        CHECK(strstr(head, "\r\nContent-Type: text/plain; version=0.0.4"));
        CHECK(announced == rnd.body_len); /* HEAD too: the length of the GET's body */
        if (!head_req)
            CHECK(memcmp(r + head_len, rnd.big ? big_body : SMALL_BODY, body_len) == 0);
    } else if (status == 503) {
        CHECK(rnd.fail && rnd.calls == 1 && asks_metrics(req, req_len));
    } else {
        CHECK(rnd.calls == 0);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    init_once();
    if (size < 2 || size > MAX_INPUT)
        return 0;
    uint8_t flags = data[0];
    uint32_t seed = data[1] | (uint32_t)flags << 8;
    const uint8_t *req = data + 2;
    size_t req_len = size - 2;
    bool half_close = flags & 1, close_early = flags & 8, fire_timer = flags & 16;
    rnd.fail = flags & 2;
    rnd.big = flags & 4;
    rnd.calls = 0;
    rnd.body_len = rnd.big ? BIG_BODY : strlen(SMALL_BODY);
    reply.len = 0;
    reply.eof = false;

    client = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    CHECK(client >= 0);
    CHECK(connect(client, (struct sockaddr *)&addr, addr_len) == 0);
    struct metrics_conn *c = NULL;
    for (int i = 0; i < 8 && !c; i++) {
        ev_run(loop, EVRUN_NOWAIT);
        c = live_conn();
    }
    CHECK(c); /* accepted */
    int server_fd = c->fd;
    if (rnd.big) {
        int small = 4096;
        CHECK(setsockopt(server_fd, SOL_SOCKET, SO_SNDBUF, &small, sizeof(small)) == 0);
    }

    /* Write the input in chunks, the loop running between them; reading what comes back. */
    size_t off = 0;
    int runs = 0;
    while (off < req_len && c->fd >= 0) {
        uint32_t r = lcg(&seed);
        size_t k = (r & 7) == 0 ? 1 + r % 5000 : 1 + r % 64;
        if (k > req_len - off)
            k = req_len - off;
        ssize_t n = send(client, req + off, k, MSG_NOSIGNAL);
        if (n < 0) {
            CHECK(errno == EAGAIN || errno == EPIPE || errno == ECONNRESET);
            if (errno != EAGAIN)
                break; /* the server closed (it answered, or gave up) */
        } else {
            off += (size_t)n;
        }
        ev_run(loop, EVRUN_NOWAIT);
        client_read();
        CHECK(++runs < 4 * (int)req_len + 64); /* every other round makes progress */
    }
    /* The client stops writing; the server must close within a few runs of the loop. */
    if (close_early) {
        close(client);
        client = -1;
    } else if (half_close) {
        shutdown(client, SHUT_WR);
    }
    bool timer_fired = false;
    for (int i = 0; c->fd >= 0; i++) {
        ev_run(loop, EVRUN_NOWAIT);
        client_read();
        if (c->fd < 0)
            break;
        if (i == 16 && fire_timer && !c->out) {
            /* as if the 5 s had passed while waiting for the request (not mid-answer: a slow
             * reader is cut off by the same timer, truncating the answer by design) */
            ev_feed_event(loop, &c->timeout, EV_TIMER);
            timer_fired = true;
        }
        if (i >= 64) {
            /* still open: only while waiting for more of the request, with the client there */
            CHECK(!c->out && !half_close && !close_early && !timer_fired);
            CHECK(ev_is_active(&c->timeout) && ev_is_active(&c->io));
            CHECK(c->req_len < sizeof(c->req));
            ev_feed_event(loop, &c->timeout, EV_TIMER);
            timer_fired = true;
            ev_run(loop, EVRUN_NOWAIT);
            CHECK(c->fd < 0);
            break;
        }
    }
    CHECK(c->fd < 0 && c->out == NULL && live_conn() == NULL);
    CHECK(!ev_is_active(&c->io) && !ev_is_active(&c->timeout)); /* nothing left in the loop */
    if (verbose) {
        const char *cr = memchr(reply.buf, '\r', reply.len);
        fprintf(stderr, "flags=%02x sent=%zu/%zu timer=%d reply=%zu bytes: %.*s\n", flags, off,
                req_len, timer_fired, reply.len, cr ? (int)(cr - reply.buf) : 0, reply.buf);
    }
    CHECK(fcntl(server_fd, F_GETFD) == -1); /* closed, not leaked */
    if (client >= 0) {
        for (int i = 0; i < 4 && !reply.eof; i++)
            client_read();
        CHECK(reply.eof); /* the server closed: the client sees the end */
        /* an answer is complete unless the server stopped writing because the client left */
        check_reply(req, req_len, true);
        close(client);
        client = -1;
    } else {
        check_reply(req, req_len, false); /* what it read before leaving */
    }
    return 0;
}
