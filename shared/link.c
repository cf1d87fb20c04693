/* link.c - see link.h. */
#include "link.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "clock.h"

#define LINK_CTRL_MAX 40000 /* a SUBSCRIBE with every resume entry fits */

static void on_read(EV_P_ ev_io *w, int revents);
static void on_write(EV_P_ ev_io *w, int revents);
static void on_flush(EV_P_ ev_prepare *w, int revents);
static void on_retry(EV_P_ ev_timer *w, int revents);
static void on_beat(EV_P_ ev_timer *w, int revents);

enum fc_err link_init(struct link *l, struct ev_loop *loop, const struct link_ops *ops,
                      const struct mac_keyring *keys, const struct log *log, const char *role,
                      const char *node, uint32_t max_msgs, uint64_t max_bytes)
{
    memset(l, 0, sizeof(*l));
    l->loop = loop;
    l->ops = ops;
    l->keys = keys;
    l->log = log;
    l->role = role;
    l->node = node;
    l->fd = -1;
    backoff_reset(&l->bo);
    ev_init(&l->rio, on_read);
    ev_init(&l->wio, on_write);
    ev_prepare_init(&l->flush, on_flush);
    ev_init(&l->retry, on_retry);
    ev_init(&l->beat, on_beat);
    l->rd = malloc(sizeof(*l->rd));
    l->msg = malloc(sizeof(*l->msg));
    if (!l->rd || !l->msg || wire_decoder_init(&l->dec) != FC_OK ||
        outq_init(&l->q, max_msgs, max_bytes) != FC_OK) {
        free(l->rd);
        free(l->msg);
        return FC_NOMEM;
    }
    wire_reader_reset(l->rd);
    return FC_OK;
}

/*
 * Output is written from an ev_prepare watcher, just before the loop waits for events: whatever
 * this iteration queued (a relay fans out thousands of frames per read batch) goes out in as few
 * writev calls as possible, with no epoll_ctl and no extra loop iteration per batch. Only a full
 * socket arms the write watcher (issue 9).
 */
static void want_write(struct link *l)
{
    if (l->fd >= 0 && !l->connecting && !ev_is_active(&l->wio) && !ev_is_active(&l->flush) &&
        outq_count(&l->q) > 0)
        ev_prepare_start(l->loop, &l->flush);
}

/* Write what is queued; arm the write watcher if the socket is full. Returns false if the link
 * was closed. */
static bool flush_now(struct link *l)
{
    enum fc_err err = outq_flush(&l->q, l->fd);
    if (err == FC_IO) {
        link_close(l, strerror(errno));
        return false;
    }
    if (err == FC_AGAIN && !ev_is_active(&l->wio)) {
        ev_io_set(&l->wio, l->fd, EV_WRITE);
        ev_io_start(l->loop, &l->wio);
    } else if (err == FC_OK && ev_is_active(&l->wio)) {
        ev_io_stop(l->loop, &l->wio);
    }
    return true;
}

static void on_flush(EV_P_ ev_prepare *w, int revents)
{
    struct link *l = container_of(w, struct link, flush);
    ev_prepare_stop(EV_A_ w);
    if (l->fd >= 0 && !l->connecting && !ev_is_active(&l->wio))
        flush_now(l);
}

/* Queue a freshly encoded control message (body + tag at buf + WIRE_LEN_BYTES). */
static enum fc_err queue_ctrl(struct link *l, const uint8_t *buf, size_t len)
{
    struct msgref *m = msgref_new((uint32_t)(WIRE_LEN_BYTES + len));
    if (!m)
        return FC_NOMEM;
    wire_put_len(m->data, (uint32_t)len);
    memcpy(m->data + WIRE_LEN_BYTES, buf, len);
    enum fc_err err = outq_push(&l->q, m);
    msgref_put(m);
    if (err == FC_OK)
        want_write(l);
    else
        l->st.queue_drops++;
    return err;
}

/* HELLO goes straight to the fresh socket, ahead of anything queued (it always fits). */
static bool send_hello(struct link *l)
{
    uint8_t buf[WIRE_LEN_BYTES + 256];
    size_t len;
    if (wire_encode_hello(mac_keyring_send(l->keys), l->role, l->node, buf + WIRE_LEN_BYTES,
                          sizeof(buf) - 4, &len) != FC_OK)
        return false;
    wire_put_len(buf, (uint32_t)len);
    return write(l->fd, buf, WIRE_LEN_BYTES + len) == (ssize_t)(WIRE_LEN_BYTES + len);
}

enum fc_err link_send_subscribe(struct link *l)
{
    if (!l->ops->fill_subscribe)
        return FC_OK;
    struct wire_subscribe *s = calloc(1, sizeof(*s));
    uint8_t *buf = malloc(LINK_CTRL_MAX);
    enum fc_err err = FC_NOMEM;
    size_t len;
    if (s && buf) {
        l->ops->fill_subscribe(l, s);
        err = wire_encode_subscribe(mac_keyring_send(l->keys), s, buf, LINK_CTRL_MAX, &len);
        if (err == FC_OK)
            err = queue_ctrl(l, buf, len);
    }
    free(s);
    free(buf);
    return err;
}

static void start_io(struct link *l)
{
    l->last_rx = ev_now(l->loop);
    l->opened_at = l->last_rx;
    wire_reader_reset(l->rd);
    ev_io_set(&l->rio, l->fd, EV_READ);
    ev_io_start(l->loop, &l->rio);
    ev_timer_set(&l->beat, LINK_HEARTBEAT_S, LINK_HEARTBEAT_S);
    ev_timer_start(l->loop, &l->beat);
}

static void schedule_retry(struct link *l)
{
    if (!l->outbound || l->stopped)
        return;
    ev_timer_set(&l->retry, backoff_next(&l->bo), 0);
    ev_timer_start(l->loop, &l->retry);
}

void link_close(struct link *l, const char *why)
{
    if (l->fd < 0)
        return;
    bool was_up = l->up;
    ev_io_stop(l->loop, &l->rio);
    ev_io_stop(l->loop, &l->wio);
    ev_prepare_stop(l->loop, &l->flush);
    ev_timer_stop(l->loop, &l->beat);
    close(l->fd);
    l->fd = -1;
    l->connecting = false;
    l->up = false;
    l->st.disconnects++;
    /* A message half written is resent whole on the next connection. */
    l->q.bytes += l->q.head_off;
    l->q.head_off = 0;
    if (!l->keep_queue)
        outq_clear(&l->q);
    if (was_up || !l->outbound)
        log_warn(l->log, "peer=%s link down: %s", l->peer, why);
    else
        log_debug(l->log, "peer=%s connect failed: %s", l->peer, why);
    schedule_retry(l);
    if (l->ops->on_down)
        l->ops->on_down(l, why);
}

static void try_connect(struct link *l)
{
    l->fd = net_tcp_connect(&l->addr);
    if (l->fd < 0) {
        log_debug(l->log, "peer=%s connect: %s", l->peer, strerror(errno));
        schedule_retry(l);
        return;
    }
    l->connecting = true;
    l->st.connects++;
    /* Writability tells when the connect finished (or failed). */
    ev_io_set(&l->wio, l->fd, EV_WRITE);
    ev_io_start(l->loop, &l->wio);
    start_io(l);
}

void link_connect(struct link *l, const struct net_addr *addr)
{
    l->addr = *addr;
    l->outbound = true;
    snprintf(l->peer, sizeof(l->peer), "%s", addr->text);
    try_connect(l);
}

void link_accept(struct link *l, int fd, const struct sockaddr *peer)
{
    l->fd = fd;
    l->outbound = false;
    net_sockaddr_str(peer, l->peer, sizeof(l->peer));
    net_tcp_nodelay(fd);
    start_io(l);
    if (!send_hello(l))
        link_close(l, "cannot send HELLO");
}

enum fc_err link_adopt(struct link *l, int fd, const struct net_addr *addr, const char *peer,
                       bool up, bool connecting, const uint8_t *unread, size_t unread_len,
                       uint32_t head_off, double opened_age_s)
{
    if (unread_len > sizeof(l->rd->buf) || (connecting && (!addr || up)))
        return FC_LIMIT;
    if (outq_count(&l->q) == 0 ? head_off != 0
                               : head_off >= l->q.ring[l->q.head & l->q.mask]->len)
        return FC_LIMIT;
    l->fd = fd;
    l->outbound = addr != NULL;
    if (addr)
        l->addr = *addr;
    if (peer != l->peer)
        snprintf(l->peer, sizeof(l->peer), "%s", peer);
    l->up = up;
    l->connecting = connecting;
    l->q.head_off = head_off;
    l->q.bytes -= head_off;
    start_io(l);
    if (unread_len > 0)
        memcpy(l->rd->buf, unread, unread_len);
    l->rd->end = unread_len;
    if (opened_age_s > 0 && opened_age_s < LINK_HELLO_S)
        l->opened_at -= opened_age_s;
    else if (opened_age_s >= LINK_HELLO_S)
        l->opened_at -= LINK_HELLO_S;
    if (connecting) {
        ev_io_set(&l->wio, l->fd, EV_WRITE); /* writability tells when the connect finished */
        ev_io_start(l->loop, &l->wio);
    } else {
        want_write(l);
    }
    return FC_OK;
}

enum fc_err link_send(struct link *l, struct msgref *m)
{
    if (l->fd < 0 && !l->keep_queue)
        return FC_AGAIN;
    enum fc_err err = outq_push(&l->q, m);
    if (err != FC_OK) {
        l->st.queue_drops++;
        return err;
    }
    want_write(l);
    return FC_OK;
}

static void on_retry(EV_P_ ev_timer *w, int revents)
{
    struct link *l = container_of(w, struct link, retry);
    if (!l->stopped && l->fd < 0)
        try_connect(l);
}

static void on_beat(EV_P_ ev_timer *w, int revents)
{
    struct link *l = container_of(w, struct link, beat);
    /* A peer that never proves the key (no valid HELLO) is not kept alive by sending bytes. */
    if (!l->up && !l->connecting && ev_now(EV_A) - l->opened_at > LINK_HELLO_S) {
        link_close(l, "no valid HELLO (wrong key?)");
        return;
    }
    if (ev_now(EV_A) - l->last_rx > LINK_DEAD_S) {
        link_close(l, l->connecting ? "connect timed out" : "peer silent for 3 s");
        return;
    }
    uint8_t buf[64];
    size_t len;
    if (!l->connecting && wire_encode_heartbeat(mac_keyring_send(l->keys), clock_wall_us(), buf,
                                                sizeof(buf), &len) == FC_OK)
        queue_ctrl(l, buf, len);
}

static void on_write(EV_P_ ev_io *w, int revents)
{
    struct link *l = container_of(w, struct link, wio);
    if (l->connecting) {
        int err = 0;
        socklen_t n = sizeof(err);
        getsockopt(l->fd, SOL_SOCKET, SO_ERROR, &err, &n);
        if (err != 0) {
            link_close(l, strerror(err));
            return;
        }
        l->connecting = false;
        if (!send_hello(l)) {
            link_close(l, "cannot send HELLO");
            return;
        }
    }
    flush_now(l);
}

static void bad_message(struct link *l, enum fc_err err, const char *why)
{
    uint64_t suppressed;
    if (err == FC_AUTH)
        l->st.bad_tags++;
    else
        l->st.bad_msgs++;
    if (log_limit_pass(&l->ll, ev_now(l->loop), &suppressed))
        log_warn(l->log, "peer=%s dropped message: %s (%s) suppressed=%llu", l->peer,
                 fc_strerror(err), why, (unsigned long long)suppressed);
}

/* Returns false if the link was closed. */
static bool handle_message(struct link *l, const uint8_t *raw, size_t len)
{
    const char *why = "";
    enum fc_err err = wire_decode(&l->dec, l->keys, raw, len, l->msg, &why);
    if (err != FC_OK) {
        bad_message(l, err, why);
        return true;
    }
    l->st.msgs_rx++;
    if (l->dec.key_index != 0)
        l->st.other_key++;
    if (!l->up) {
        if (l->msg->type != WIRE_HELLO) {
            link_close(l, "first message is not HELLO");
            return false;
        }
        l->up = true;
        backoff_reset(&l->bo);
        log_info(l->log, "peer=%s link up role=%s node=%s", l->peer, l->msg->u.hello.role,
                 l->msg->u.hello.node);
        link_send_subscribe(l);
        if (l->ops->on_up)
            l->ops->on_up(l);
        return l->fd >= 0;
    }
    if (l->msg->type == WIRE_HELLO || l->msg->type == WIRE_HEARTBEAT)
        return true;
    l->ops->on_msg(l, l->msg, raw, len);
    return l->fd >= 0;
}

static void on_read(EV_P_ ev_io *w, int revents)
{
    struct link *l = container_of(w, struct link, rio);
    for (int i = 0; i < LINK_READS_PER_WAKE; i++) {
        size_t space;
        uint8_t *p = wire_reader_space(l->rd, &space);
        ssize_t n = read(l->fd, p, space);
        if (n == 0) {
            link_close(l, "peer closed");
            return;
        }
        if (n < 0) {
            if (errno == EAGAIN || errno == EINTR)
                return;
            link_close(l, strerror(errno));
            return;
        }
        l->last_rx = ev_now(EV_A);
        wire_reader_commit(l->rd, (size_t)n);
        const uint8_t *msg;
        size_t len;
        enum fc_err err;
        while ((err = wire_reader_next(l->rd, &msg, &len)) == FC_OK)
            if (!handle_message(l, msg, len))
                return;
        if (err == FC_PROTO) {
            l->st.bad_msgs++;
            link_close(l, "bad length prefix (framing broken)");
            return;
        }
    }
}

void link_stop(struct link *l)
{
    l->stopped = true;
    ev_timer_stop(l->loop, &l->retry);
    if (l->fd >= 0) {
        const struct link_ops *ops = l->ops;
        static const struct link_ops quiet = {0};
        l->ops = &quiet; /* no callbacks once stopped */
        link_close(l, "stopped");
        l->ops = ops;
    }
}

void link_free(struct link *l)
{
    outq_free(&l->q);
    wire_decoder_free(&l->dec);
    free(l->rd);
    free(l->msg);
    l->rd = NULL;
    l->msg = NULL;
}

void link_pause(struct link *l)
{
    l->paused_retry = ev_is_active(&l->retry);
    ev_io_stop(l->loop, &l->rio);
    ev_timer_stop(l->loop, &l->beat);
    ev_timer_stop(l->loop, &l->retry);
}

void link_resume(struct link *l)
{
    if (l->fd >= 0) {
        l->last_rx = ev_now(l->loop);
        ev_io_start(l->loop, &l->rio);
        ev_timer_start(l->loop, &l->beat);
    } else if (l->paused_retry) {
        ev_timer_start(l->loop, &l->retry);
    }
    l->paused_retry = false;
}
