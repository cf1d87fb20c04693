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

/* Read and handle what the socket holds (RELAY_UDP_ROUNDS batches at most); returns the number
 * of datagrams read. */
static int udp_read_out(struct rlisten *ls)
{
    struct relay *r = ls->relay;
    int total = 0;
    struct mmsghdr hdr[RELAY_UDP_BATCH];
    struct iovec iov[RELAY_UDP_BATCH];
    struct sockaddr_storage from[RELAY_UDP_BATCH];

    for (int round = 0; round < RELAY_UDP_ROUNDS; round++) {
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
            return total;
        total += n;
        for (int i = 0; i < n; i++) {
            const struct sockaddr *sa = (const struct sockaddr *)&from[i];
            const uint8_t *buf = iov[i].iov_base;
            const char *why = "";
            if (hdr[i].msg_hdr.msg_flags & MSG_TRUNC) {
                udp_drop(r, sa, FC_LIMIT, "datagram too long");
                continue;
            }
            enum fc_err err = wire_decode(&r->udp_dec, &r->keys, buf, hdr[i].msg_len, r->udp_msg,
                                          &why);
            if (err != FC_OK) {
                udp_drop(r, sa, err, why);
                continue;
            }
            if (r->udp_dec.key_index != 0)
                r->c.other_key++;
            if (r->udp_msg->type != WIRE_FRAME)
                continue; /* UDP carries frames only */
            /* The sender's name is for the rare log line, but formatting it per datagram cost
             * as much as verifying the frame: keep the last sender's text. */
            if (hdr[i].msg_hdr.msg_namelen != ls->peer_salen ||
                memcmp(sa, &ls->peer_sa, ls->peer_salen) != 0) {
                ls->peer_salen = hdr[i].msg_hdr.msg_namelen;
                memcpy(&ls->peer_sa, sa, ls->peer_salen);
                net_sockaddr_str(sa, ls->peer_name, sizeof(ls->peer_name));
            }
            relay_frame_in(r, &r->udp_msg->u.frame, buf, hdr[i].msg_len, NULL, ls->peer_name);
        }
        if (n < RELAY_UDP_BATCH)
            return total;
    }
    return total;
}

static void on_udp(EV_P_ ev_io *w, int revents)
{
    struct rlisten *ls = container_of(w, struct rlisten, io);
    if (udp_read_out(ls) > 0) {
        ev_io_stop(EV_A_ w);
        if (!ev_is_active(&ls->coalesce)) {
            ev_timer_set(&ls->coalesce, RELAY_UDP_COALESCE_S, 0);
            ev_timer_start(EV_A_ & ls->coalesce);
        }
    }
}

/* Busy: read again a little later. Quiet (nothing came meanwhile): wait for the next datagram. */
static void on_coalesce(EV_P_ ev_timer *w, int revents)
{
    struct rlisten *ls = container_of(w, struct rlisten, coalesce);
    if (udp_read_out(ls) > 0) {
        ev_timer_set(w, RELAY_UDP_COALESCE_S, 0);
        ev_timer_start(EV_A_ w);
    } else {
        ev_io_start(EV_A_ & ls->io);
    }
}

enum fc_err relay_udp_start(struct relay *r, struct rlisten *ls)
{
    ev_timer_init(&ls->coalesce, on_coalesce, RELAY_UDP_COALESCE_S, 0);
    bool taken = ls->fd >= 0; /* handoff: its group membership came with it */
    if (!taken)
        ls->fd = net_udp_bind(&ls->addr, RELAY_UDP_RCVBUF);
    if (ls->fd < 0) {
        log_error(&r->log, "bind %s: %s", ls->addr.text, strerror(errno));
        return FC_IO;
    }
    ev_io_init(&ls->io, on_udp, ls->fd, EV_READ);
    ev_io_start(r->loop, &ls->io);
    log_info(&r->log, "listening %s (udp%s)%s", ls->addr.text,
             ls->addr.multicast ? ", multicast" : "", taken ? " taken over" : "");
    return FC_OK;
}
