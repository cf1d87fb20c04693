/* handoff.c - see handoff.h. */
#include "handoff.h"
#include "clock.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

static bool fill_addr(const char *path, struct sockaddr_un *sa)
{
    memset(sa, 0, sizeof(*sa));
    sa->sun_family = AF_UNIX;
    if (strlen(path) >= sizeof(sa->sun_path)) {
        errno = ENAMETOOLONG;
        return false;
    }
    memcpy(sa->sun_path, path, strlen(path));
    return true;
}

int handoff_listen(const char *path)
{
    struct sockaddr_un sa;
    if (!fill_addr(path, &sa))
        return -1;
    int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    unlink(path);
    if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(fd, 4) < 0) {
        int e = errno;
        close(fd);
        errno = e;
        return -1;
    }
    return fd;
}

int handoff_connect(const char *path)
{
    struct sockaddr_un sa;
    if (!fill_addr(path, &sa))
        return -1;
    int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        int e = errno;
        close(fd);
        errno = e;
        return -1;
    }
    return fd;
}

static int wait_for(int fd, short events, double deadline);

static double mono_s(void)
{
    return (double)clock_mono_us() / 1e6;
}

int handoff_wait(int fd, short events, double timeout_s)
{
    return wait_for(fd, events, mono_s() + timeout_s);
}

/* Wait for `events` on fd until `deadline` (mono_s): 0 ready, -1 ETIMEDOUT / error. */
static int wait_for(int fd, short events, double deadline)
{
    for (;;) {
        double left = deadline - mono_s();
        if (left <= 0) {
            errno = ETIMEDOUT;
            return -1;
        }
        struct pollfd p = {.fd = fd, .events = events};
        int r = poll(&p, 1, (int)(left * 1000) + 1);
        if (r > 0)
            return 0;
        if (r < 0 && errno != EINTR)
            return -1;
    }
}

int handoff_send(int fd, uint16_t type, const void *p, size_t len, const int *fds, int nfds,
                 double timeout_s)
{
    if (len > HANDOFF_REC_MAX || nfds < 0 || nfds > HANDOFF_FDS_MAX) {
        errno = EMSGSIZE;
        return -1;
    }
    struct ho_head h = {.type = type, .nfds = (uint16_t)nfds, .len = (uint32_t)len};
    struct iovec iov[2] = {{.iov_base = &h, .iov_len = sizeof(h)},
                           {.iov_base = (void *)p, .iov_len = len}};
    union {
        struct cmsghdr h;
        char buf[CMSG_SPACE(sizeof(int) * HANDOFF_FDS_MAX)];
    } cm;
    struct msghdr msg = {.msg_iov = iov, .msg_iovlen = len ? 2 : 1};
    if (nfds > 0) {
        memset(&cm, 0, sizeof(cm));
        msg.msg_control = cm.buf;
        msg.msg_controllen = CMSG_SPACE(sizeof(int) * (size_t)nfds);
        struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SCM_RIGHTS;
        c->cmsg_len = CMSG_LEN(sizeof(int) * (size_t)nfds);
        memcpy(CMSG_DATA(c), fds, sizeof(int) * (size_t)nfds);
    }
    double deadline = mono_s() + timeout_s;
    for (;;) {
        ssize_t n = sendmsg(fd, &msg, MSG_DONTWAIT | MSG_NOSIGNAL);
        if (n >= 0)
            return 0;
        if (errno == EINTR)
            continue;
        if (errno != EAGAIN && errno != EWOULDBLOCK && errno != ENOBUFS)
            return -1;
        if (wait_for(fd, POLLOUT, deadline) < 0)
            return -1;
    }
}

ssize_t handoff_recv(int fd, uint16_t *type, void *buf, size_t cap, int *fds, int *nfds,
                     double timeout_s)
{
    *nfds = 0;
    struct ho_head h;
    struct iovec iov[2] = {{.iov_base = &h, .iov_len = sizeof(h)},
                           {.iov_base = buf, .iov_len = cap}};
    union {
        struct cmsghdr h;
        char buf[CMSG_SPACE(sizeof(int) * HANDOFF_FDS_MAX)];
    } cm;
    double deadline = mono_s() + timeout_s;
    for (;;) {
        struct msghdr msg = {.msg_iov = iov, .msg_iovlen = 2, .msg_control = cm.buf,
                             .msg_controllen = sizeof(cm.buf)};
        ssize_t n = recvmsg(fd, &msg, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno != EAGAIN && errno != EWOULDBLOCK)
                return -1;
            if (wait_for(fd, POLLIN, deadline) < 0)
                return -1;
            continue;
        }
        if (n == 0) {
            errno = EPIPE;
            return -1;
        }
        for (struct cmsghdr *c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
            if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
                continue;
            size_t k = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
            for (size_t i = 0; i < k; i++) {
                int f;
                memcpy(&f, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
                if (*nfds < HANDOFF_FDS_MAX)
                    fds[(*nfds)++] = f;
                else
                    close(f);
            }
        }
        if ((size_t)n < sizeof(h) || (msg.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) ||
            h.len != (size_t)n - sizeof(h) || h.nfds != *nfds) {
            handoff_close_fds(fds, *nfds);
            *nfds = 0;
            errno = EPROTO;
            return -1;
        }
        *type = h.type;
        return (ssize_t)h.len;
    }
}

void handoff_close_fds(const int *fds, int n)
{
    for (int i = 0; i < n; i++)
        if (fds[i] >= 0)
            close(fds[i]);
}

/* ---- packed payloads ---- */

void ho_put(struct ho_buf *b, const void *v, size_t n)
{
    if (b->bad || n > b->cap - b->len) {
        b->bad = true;
        return;
    }
    if (n)
        memcpy(b->p + b->len, v, n);
    b->len += n;
}

void ho_put_u8(struct ho_buf *b, uint8_t v)
{
    ho_put(b, &v, 1);
}

void ho_put_u32(struct ho_buf *b, uint32_t v)
{
    ho_put(b, &v, 4);
}

void ho_put_u64(struct ho_buf *b, uint64_t v)
{
    ho_put(b, &v, 8);
}

void ho_put_f64(struct ho_buf *b, double v)
{
    ho_put(b, &v, 8);
}

void ho_put_str(struct ho_buf *b, const char *s)
{
    size_t n = strlen(s);
    if (n > UINT16_MAX) {
        b->bad = true;
        return;
    }
    uint16_t l = (uint16_t)n;
    ho_put(b, &l, 2);
    ho_put(b, s, n);
}

void ho_get(struct ho_buf *b, void *v, size_t n)
{
    if (b->bad || n > b->len - b->off) {
        b->bad = true;
        memset(v, 0, n);
        return;
    }
    if (n)
        memcpy(v, b->p + b->off, n);
    b->off += n;
}

uint8_t ho_get_u8(struct ho_buf *b)
{
    uint8_t v;
    ho_get(b, &v, 1);
    return v;
}

uint32_t ho_get_u32(struct ho_buf *b)
{
    uint32_t v;
    ho_get(b, &v, 4);
    return v;
}

uint64_t ho_get_u64(struct ho_buf *b)
{
    uint64_t v;
    ho_get(b, &v, 8);
    return v;
}

double ho_get_f64(struct ho_buf *b)
{
    double v;
    ho_get(b, &v, 8);
    return v;
}

void ho_get_str(struct ho_buf *b, char *out, size_t cap)
{
    uint16_t l;
    ho_get(b, &l, 2);
    if (b->bad || l >= cap || l > b->len - b->off) {
        b->bad = true;
        if (cap)
            out[0] = '\0';
        return;
    }
    memcpy(out, b->p + b->off, l);
    out[l] = '\0';
    b->off += l;
}

size_t ho_left(const struct ho_buf *b)
{
    return b->len - b->off;
}
