/* ho_accept.c - see ho_accept.h. */
#include "ho_accept.h"

#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include "handoff.h"

static void drop(struct ho_accept *a)
{
    ev_io_stop(a->loop, &a->fd_w);
    ev_timer_stop(a->loop, &a->hello_t);
    if (a->fd >= 0)
        close(a->fd);
    a->fd = -1;
}

static void refuse(int fd, const char *why)
{
    handoff_send(fd, HO_FAIL, why, strlen(why), NULL, 0, 0.1);
    close(fd);
}

static void on_first(EV_P_ ev_io *w, int revents)
{
    struct ho_accept *a = (struct ho_accept *)((char *)w - offsetof(struct ho_accept, fd_w));
    int fd = a->fd;
    ev_io_stop(a->loop, &a->fd_w);
    ev_timer_stop(a->loop, &a->hello_t);
    a->fd = -1;
    if (!a->ready(a->ctx, fd))
        refuse(fd, "busy");
}

static void on_silent(EV_P_ ev_timer *t, int revents)
{
    struct ho_accept *a = (struct ho_accept *)((char *)t - offsetof(struct ho_accept, hello_t));
    log_warn(a->log, "handoff: a control connection sent nothing in %.0f s: closed",
             HO_ACCEPT_HELLO_S);
    drop(a);
}

static void on_conn(EV_P_ ev_io *w, int revents)
{
    struct ho_accept *a = (struct ho_accept *)((char *)w - offsetof(struct ho_accept, listen_w));
    int fd = accept4(a->listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0)
        return;
    struct ucred cred;
    socklen_t cl = sizeof(cred);
    if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &cl) < 0 ||
        (cred.uid != geteuid() && cred.uid != 0)) {
        log_warn(a->log, "handoff: refused a control connection from uid %d", (int)cred.uid);
        return refuse(fd, "wrong user");
    }
    if (a->fd >= 0) {
        /* A successor sends its HELLO at once: the one still silent is the stuck one. */
        log_warn(a->log, "handoff: a control connection that had sent nothing replaced");
        drop(a);
    }
    a->fd = fd;
    ev_io_init(&a->fd_w, on_first, fd, EV_READ);
    ev_io_start(a->loop, &a->fd_w);
    ev_timer_init(&a->hello_t, on_silent, HO_ACCEPT_HELLO_S, 0);
    ev_timer_start(a->loop, &a->hello_t);
}

void ho_accept_start(struct ho_accept *a, struct ev_loop *loop, struct log *log, int listen_fd,
                     bool (*ready)(void *ctx, int fd), void *ctx)
{
    a->loop = loop;
    a->log = log;
    a->listen_fd = listen_fd;
    a->fd = -1;
    a->ready = ready;
    a->ctx = ctx;
    ev_io_init(&a->listen_w, on_conn, listen_fd, EV_READ);
    ev_io_start(loop, &a->listen_w);
}

void ho_accept_stop(struct ho_accept *a)
{
    if (!a->loop)
        return;
    ev_io_stop(a->loop, &a->listen_w);
    drop(a);
}
