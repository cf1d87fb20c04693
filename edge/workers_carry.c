/* workers_carry.c - see workers.h: the workers' part of a handoff restart. */
#include <errno.h>
#include <poll.h>
#include <string.h>
#include <unistd.h>
#include "clock.h"
#include "handoff.h"
#include "workers.h"

/* Send everything queued to `w`, waiting for room (bounded). */
static bool drain(struct wproc *w)
{
    for (int k = 0; k < 1000 && wproc_running(w) && w->q_len > w->q_off; k++) {
        wproc_flush(w);
        if (w->q_len > w->q_off) {
            struct pollfd pf = {.fd = w->fd, .events = POLLOUT};
            poll(&pf, 1, 10);
        }
    }
    return wproc_running(w) && w->q_len <= w->q_off;
}

uint32_t workers_hand_begin(struct wsup *s)
{
    uint32_t asked = 0;
    for (uint32_t i = 0; i < s->n; i++) {
        struct wproc *w = &s->w[i];
        if (!wproc_running(w))
            continue;
        wproc_put(w, WREC_HANDOFF, 0, "", 0, NULL, 0);
        if (drain(w)) {
            w->handing = true;
            asked++;
        }
    }
    return asked;
}

/* After WREC_COMMIT a worker closes the listeners it kept and exits: read its last records (the
 * sessions of those listeners) until it has closed its end, or until `until` (monotonic µs). */
static void read_last(struct wsup *s, struct wproc *w, uint64_t until)
{
    for (int k = 0; k < 1000; k++) {
        uint64_t now = clock_mono_us();
        if (now >= until)
            return;
        struct pollfd pf = {.fd = w->fd, .events = POLLIN};
        if (poll(&pf, 1, (int)((until - now) / 1000) + 1) <= 0)
            return;
        workers_on_readable(s->loop, &w->rio, EV_READ);
        if (pf.revents & (POLLHUP | POLLERR | POLLNVAL))
            return; /* its end is closed: everything it sent has been read */
    }
}

void workers_hand_end(struct wsup *s, bool commit)
{
    for (uint32_t i = 0; i < s->n; i++) {
        struct wproc *w = &s->w[i];
        w->handing = false;
        if (!wproc_running(w))
            continue;
        wproc_put(w, commit ? WREC_COMMIT : WREC_RESUME, 0, "", 0, NULL, 0);
        drain(w);
    }
    uint64_t until = clock_mono_us() + WORKERS_LAST_WAIT_US;
    for (uint32_t i = 0; commit && i < s->n; i++)
        if (wproc_running(&s->w[i]))
            read_last(s, &s->w[i], until);
}

bool workers_adopt(struct wsup *s, uint32_t num, const uint8_t *p, size_t len, int fd)
{
    struct wproc *w = num >= 1 && num <= s->n ? &s->w[num - 1] : NULL;
    bool ok = w && drain(w) &&
              wmsg_send(w->fd, WREC_ADOPT, 0, p, len, fd, HANDOFF_TIMEOUT_S) == 0;
    close(fd);
    return ok;
}
