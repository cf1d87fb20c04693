/*
 * edge_http_stubs.h - weak stand-ins for the parts of the edge a test or fuzz target of the HTTP
 * side does not compile in (merge.c, router.c, admin.c, preroll.c, sessions.c, metrics.c, tls.c):
 * no listener here routes a request, has TLS, a preroll or an admin answer waiting. A build that
 * links the real ones wins. Used by tests/unit/test_carry.c and tests/fuzz/fuzz_carry_listener.c.
 */
#ifndef FC_EDGE_HTTP_STUBS_H
#define FC_EDGE_HTTP_STUBS_H

#include "edge_merge_stubs.h"

STUB void edge_route(struct elistener *l)
{
    listener_respond_error(l, 404, "no routes here");
}
STUB void admin_forget(struct elistener *l)
{
    l->pending = NULL;
}
STUB void preroll_forget(struct elistener *l)
{
    (void)l; /* prerolls (preroll.c): none here */
}
STUB void preroll_check_mount(struct ehttp *h, const struct emount *m)
{
    (void)h, (void)m;
}
STUB void preroll_iov(const struct elistener *l, struct iovec *iov)
{
    (void)l, (void)iov;
}
STUB void preroll_sent(struct elistener *l, size_t n)
{
    (void)l, (void)n;
}
STUB void session_closed(struct elistener *l)
{
    (void)l; /* analytics (sessions.c): off here */
}
STUB void http_count_close(struct ehttp *h, const char *why)
{
    (void)h, (void)why;
}
STUB void http_ttfb(struct elistener *l)
{
    l->accepted = 0;
}
STUB bool tls_start(struct elistener *l)
{
    (void)l;
    return false;
}
STUB int tls_handshake(struct elistener *l)
{
    (void)l;
    return -1;
}
STUB ssize_t tls_read(struct elistener *l, void *buf, size_t n)
{
    (void)l, (void)buf, (void)n;
    return -1;
}
STUB ssize_t tls_write(struct elistener *l, const void *buf, size_t n)
{
    (void)l, (void)buf, (void)n;
    return -1;
}

#endif
