/*
 * ho_accept.h - the listening side of a handoff control socket (docs/architecture.md §4.7,
 * §7.12), shared by the relay and the edge: accept a connection, refuse it unless its peer is this
 * process's user or root (SO_PEERCRED; the socket file's mode is the first guard), and wait for
 * its first record (the successor's HELLO) from the event loop, not by blocking it: a client that
 * connects and says nothing, or sends garbage, costs the running program nothing but a log line.
 * One connection waits at a time; a newer one replaces it (a successor sends its HELLO at once, so
 * a silent one cannot hold a real handoff off). Loop thread only.
 */
#ifndef FC_HO_ACCEPT_H
#define FC_HO_ACCEPT_H

#include <ev.h>
#include "log.h"

#define HO_ACCEPT_HELLO_S 2.0 /* a connection's first record must come within this */

struct ho_accept {
    struct ev_loop *loop;
    struct log *log;
    int listen_fd;                      /* the control socket (not owned) */
    int fd;                             /* the connection waiting for its first record, or -1 */
    ev_io listen_w, fd_w;
    ev_timer hello_t;
    /* Called with the connection once its first record is readable; `fd` is then the caller's.
     * Return false when the caller is busy (a handoff runs): the connection gets HO_FAIL "busy". */
    bool (*ready)(void *ctx, int fd);
    void *ctx;
};

/* Start accepting on `listen_fd`. */
void ho_accept_start(struct ho_accept *a, struct ev_loop *loop, struct log *log, int listen_fd,
                     bool (*ready)(void *ctx, int fd), void *ctx);

/* Stop accepting (a waiting connection is closed). Idempotent. */
void ho_accept_stop(struct ho_accept *a);

#endif
