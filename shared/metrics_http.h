/*
 * metrics_http.h - a minimal HTTP/1.0 endpoint for Prometheus scrapes (`--metrics HOST:PORT` on
 * the relay and the shim; docs/architecture.md §7.8). GET /metrics answers 200 with the text a
 * callback builds (exposition format 0.0.4); any other path 404, other methods 405, a malformed
 * request 400, a request not complete within 5 s or over 4 KiB is closed. One request per
 * connection; at most METRICS_HTTP_CONNS at once (more are closed at accept). Requests are
 * parsed with http-parser. Loop thread only; no global state.
 */
#ifndef FC_METRICS_HTTP_H
#define FC_METRICS_HTTP_H

#include <ev.h>
#include <stddef.h>
#include "fc.h"
#include "log.h"
#include "net.h"

#define METRICS_HTTP_CONNS 16
#define METRICS_HTTP_REQ_MAX 4096

struct metrics_http;

/* Build the body: return malloc'd text and its length in *len, or NULL (answered 503). */
typedef char *(*metrics_render_fn)(void *ctx, size_t *len);

struct metrics_conn {
    struct metrics_http *mh;
    int fd;                              /* -1 = slot free */
    ev_io io;
    ev_timer timeout;
    char req[METRICS_HTTP_REQ_MAX];
    size_t req_len;
    char *out;                           /* the answer being written (owned) */
    size_t out_len, out_off;
};

struct metrics_http {
    struct ev_loop *loop;
    const struct log *log;
    metrics_render_fn render;
    void *ctx;
    int fd;
    ev_io accept_io;
    struct metrics_conn conns[METRICS_HTTP_CONNS];
};

/* Listen on `addr` (TCP); FC_IO (errno set) if it cannot. */
enum fc_err metrics_http_start(struct metrics_http *mh, struct ev_loop *loop, const struct log *log,
                               const struct net_addr *addr, metrics_render_fn render, void *ctx);
/* The same on `fd`, a listening socket already bound (handoff restart: another process's copy);
 * takes ownership of `fd`. */
void metrics_http_adopt(struct metrics_http *mh, struct ev_loop *loop, const struct log *log,
                        int fd, metrics_render_fn render, void *ctx);
/* Close the listening socket and every connection. Safe on a zeroed struct. */
void metrics_http_stop(struct metrics_http *mh);

#endif
