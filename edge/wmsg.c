/* wmsg.c - see wmsg.h: a record with a descriptor, sent with a bounded wait (handoff; the wait
 * is shared/handoff.c's). */
#include "wmsg.h"

#include <errno.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include "clock.h"
#include "handoff.h"

int wmsg_send(int fd, uint16_t type, uint32_t mount, const void *p, size_t len, int pass_fd,
              double timeout_s)
{
    if (len > WMSG_DGRAM_MAX - sizeof(struct wrec_head)) {
        errno = EMSGSIZE;
        return -1;
    }
    struct wrec_head hd = {.type = type, .len = (uint16_t)len, .mount = mount};
    struct iovec iov[2] = {{&hd, sizeof(hd)}, {(void *)p, len}};
    union {
        struct cmsghdr h;
        char b[CMSG_SPACE(sizeof(int))];
    } cm;
    memset(&cm, 0, sizeof(cm));
    struct msghdr msg = {.msg_iov = iov, .msg_iovlen = len ? 2 : 1};
    if (pass_fd >= 0) {
        msg.msg_control = cm.b;
        msg.msg_controllen = sizeof(cm.b);
        struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SCM_RIGHTS;
        c->cmsg_len = CMSG_LEN(sizeof(int));
        memcpy(CMSG_DATA(c), &pass_fd, sizeof(int));
    }
    uint64_t deadline = clock_mono_us() + (uint64_t)(timeout_s * 1e6);
    for (;;) {
        if (sendmsg(fd, &msg, MSG_DONTWAIT | MSG_NOSIGNAL) >= 0)
            return 0;
        if (errno != EAGAIN && errno != EWOULDBLOCK && errno != ENOBUFS && errno != EINTR)
            return -1;
        uint64_t now = clock_mono_us();
        if (now >= deadline || handoff_wait(fd, POLLOUT, (deadline - now) / 1e6) < 0) {
            errno = ETIMEDOUT;
            return -1;
        }
    }
}
