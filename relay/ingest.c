/* ingest.c - UDP and multicast ingest with recvmmsg batching. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include "relay.h"

static void udp_drop(struct relay *r, const struct sockaddr *from, enum fc_err err,
                     const char *why)
{
    char peer[96];
    uint64_t suppressed;
    if (err == FC_AUTH)
        r->c.bad_tags++;
    else
        r->c.bad_msgs++;
    if (log_limit_pass(&r->udp_ll, ev_now(r->loop), &suppressed))
        log_warn(&r->log, "peer=%s dropped datagram: %s (%s) suppressed=%llu",
                 net_sockaddr_str(from, peer, sizeof(peer)), fc_strerror(err), why,
                 (unsigned long long)suppressed);
}

static void on_udp(EV_P_ ev_io *w, int revents)
{
    struct rlisten *ls = container_of(w, struct rlisten, io);
    struct relay *r = ls->relay;
    struct mmsghdr hdr[RELAY_UDP_BATCH];
    struct iovec iov[RELAY_UDP_BATCH];
    struct sockaddr_storage from[RELAY_UDP_BATCH];

    for (int round = 0; round < 8; round++) {
        for (int i = 0; i < RELAY_UDP_BATCH; i++) {
            iov[i].iov_base = r->udp_bufs + (size_t)i * RELAY_UDP_DGRAM_MAX;
            iov[i].iov_len = RELAY_UDP_DGRAM_MAX;
            memset(&hdr[i].msg_hdr, 0, sizeof(hdr[i].msg_hdr));
            hdr[i].msg_hdr.msg_iov = &iov[i];
            hdr[i].msg_hdr.msg_iovlen = 1;
            hdr[i].msg_hdr.msg_name = &from[i];
            hdr[i].msg_hdr.msg_namelen = sizeof(from[i]);
        }
        int n = recvmmsg(ls->fd, hdr, RELAY_UDP_BATCH, MSG_DONTWAIT, NULL);
        if (n <= 0)
            return;
        for (int i = 0; i < n; i++) {
            const struct sockaddr *sa = (const struct sockaddr *)&from[i];
            const uint8_t *buf = iov[i].iov_base;
            const char *why = "";
            if (hdr[i].msg_hdr.msg_flags & MSG_TRUNC) {
                udp_drop(r, sa, FC_LIMIT, "datagram too long");
                continue;
            }
            enum fc_err err = wire_decode(&r->udp_dec, &r->key, buf, hdr[i].msg_len, r->udp_msg,
                                          &why);
            if (err != FC_OK) {
                udp_drop(r, sa, err, why);
                continue;
            }
            if (r->udp_msg->type != WIRE_FRAME)
                continue; /* UDP carries frames only */
            char peer[96];
            relay_frame_in(r, &r->udp_msg->u.frame, buf, hdr[i].msg_len, NULL,
                           net_sockaddr_str(sa, peer, sizeof(peer)));
        }
        if (n < RELAY_UDP_BATCH)
            return;
    }
}

enum fc_err relay_udp_start(struct relay *r, struct rlisten *ls)
{
    ls->fd = net_udp_bind(&ls->addr, RELAY_UDP_RCVBUF);
    if (ls->fd < 0) {
        log_error(&r->log, "bind %s: %s", ls->addr.text, strerror(errno));
        return FC_IO;
    }
    ev_io_init(&ls->io, on_udp, ls->fd, EV_READ);
    ev_io_start(r->loop, &ls->io);
    log_info(&r->log, "listening %s (udp%s)", ls->addr.text, ls->addr.multicast ? ", multicast" : "");
    return FC_OK;
}
