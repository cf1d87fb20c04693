/* peers.c - TCP peers of a relay: accepted connections and --upstream links; fan-out. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include "relay.h"

static void peer_on_msg(struct link *l, const struct wire_msg *msg, const uint8_t *raw,
                        size_t len);
static void peer_on_down(struct link *l, const char *why);
static void upstream_fill_subscribe(struct link *l, struct wire_subscribe *s);

static const struct link_ops inbound_ops = {
    .on_msg = peer_on_msg,
    .on_down = peer_on_down,
};

static void upstream_on_up(struct link *l)
{
    struct rpeer *p = l->owner;
    alert_emit(&p->relay->alert, "relay_up", json_pack("{s:s}", "relay", l->peer));
}

static void upstream_on_down(struct link *l, const char *why)
{
    struct rpeer *p = l->owner;
    if (l->st.msgs_rx > 0)
        alert_emit(&p->relay->alert, "relay_down",
                   json_pack("{s:s, s:s}", "relay", l->peer, "reason", why));
}

static const struct link_ops upstream_ops = {
    .on_msg = peer_on_msg,
    .on_up = upstream_on_up,
    .on_down = upstream_on_down,
    .fill_subscribe = upstream_fill_subscribe,
};

bool rpeer_wants(const struct rpeer *p, const char *mount)
{
    if (p->all_mounts)
        return true;
    for (uint32_t i = 0; i < p->n_mounts; i++)
        if (strcmp(p->mounts[i], mount) == 0)
            return true;
    return false;
}

void rpeer_send_frame(struct rpeer *p, struct msgref *m)
{
    enum fc_err err = link_send(&p->link, m);
    if (err == FC_OK) {
        p->frames_out++;
        return;
    }
    if (err == FC_LIMIT && !p->upstream) {
        p->relay->c.backlog_kicks++;
        log_warn(&p->relay->log, "peer=%s disconnecting: send backlog over --max-backlog (%llu bytes)",
                 p->link.peer, (unsigned long long)p->relay->opt.max_backlog_bytes);
        p->closing = true;
    }
}

static void handle_subscribe(struct rpeer *p, const struct wire_subscribe *s)
{
    free(p->mounts);
    p->mounts = NULL;
    p->n_mounts = 0;
    p->all_mounts = s->n_mounts == 0;
    if (s->n_mounts > 0) {
        p->mounts = calloc(s->n_mounts, sizeof(*p->mounts));
        if (!p->mounts) {
            p->closing = true;
            return;
        }
        memcpy(p->mounts, s->mounts, s->n_mounts * sizeof(*p->mounts));
        p->n_mounts = s->n_mounts;
    }
    p->subscribed = true;
    log_info(&p->relay->log, "peer=%s subscribed mounts=%u resume=%u", p->link.peer, s->n_mounts,
             s->n_resume);
    relay_catchup(p->relay, p, s);
}

static void peer_on_msg(struct link *l, const struct wire_msg *msg, const uint8_t *raw, size_t len)
{
    struct rpeer *p = l->owner;
    if (p->closing)
        return;
    if (msg->type == WIRE_FRAME) {
        p->frames_in++;
        relay_frame_in(p->relay, &msg->u.frame, raw, len, p, l->peer);
    } else if (msg->type == WIRE_SUBSCRIBE) {
        handle_subscribe(p, &msg->u.subscribe);
    }
}

static void peer_on_down(struct link *l, const char *why)
{
    struct rpeer *p = l->owner;
    p->closing = true;
}

/* Resume every stream we know, so the upstream sends only what we miss. */
static void upstream_fill_subscribe(struct link *l, struct wire_subscribe *s)
{
    struct rpeer *p = l->owner;
    s->n_mounts = 0;
    s->n_resume = 0;
    for (struct rstream *st = p->relay->streams; st && s->n_resume < WIRE_SUB_RESUME_MAX;
         st = st->next) {
        struct wire_resume *res = &s->resume[s->n_resume++];
        memcpy(res->mount, st->mount, sizeof(res->mount));
        memcpy(res->encoder, st->encoder, sizeof(res->encoder));
        res->session = st->session;
        res->next_seq = st->max_seq + 1;
    }
}

static struct rpeer *peer_new(struct relay *r, const struct link_ops *ops)
{
    struct rpeer *p = calloc(1, sizeof(*p));
    if (!p)
        return NULL;
    if (link_init(&p->link, r->loop, ops, &r->keys, &r->log, "relay", r->opt.node,
                  RELAY_SUB_MAX_MSGS, r->opt.max_backlog_bytes) != FC_OK) {
        free(p);
        return NULL;
    }
    p->link.owner = p;
    p->relay = r;
    p->next = r->peers;
    r->peers = p;
    return p;
}

static void peer_free(struct rpeer *p)
{
    link_stop(&p->link);
    link_free(&p->link);
    free(p->mounts);
    free(p);
}

struct rpeer *rpeer_new(struct relay *r, bool upstream)
{
    struct rpeer *p = peer_new(r, upstream ? &upstream_ops : &inbound_ops);
    if (p)
        p->upstream = upstream;
    return p;
}

void rpeer_drop(struct relay *r, struct rpeer *p)
{
    for (struct rpeer **pp = &r->peers; *pp; pp = &(*pp)->next)
        if (*pp == p) {
            *pp = p->next;
            break;
        }
    peer_free(p);
}

static void on_accept(EV_P_ ev_io *w, int revents)
{
    struct rlisten *ls = container_of(w, struct rlisten, io);
    struct relay *r = ls->relay;
    for (int i = 0; i < 64; i++) {
        struct sockaddr_storage ss;
        socklen_t sl = sizeof(ss);
        int fd = accept4(ls->fd, (struct sockaddr *)&ss, &sl, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EMFILE || errno == ENFILE) {
                log_error(&r->log, "accept on %s: %s (pausing 1 s)", ls->addr.text,
                          strerror(errno));
                ev_io_stop(EV_A_ w); /* resumed by the tick timer */
            }
            return;
        }
        struct rpeer *p = peer_new(r, &inbound_ops);
        if (!p) {
            close(fd);
            continue;
        }
        link_accept(&p->link, fd, (struct sockaddr *)&ss);
    }
}

/* Free closed peers outside their callbacks (STYLE.md: callbacks never free their object). */
static void on_reap(EV_P_ ev_check *w, int revents)
{
    struct relay *r = container_of(w, struct relay, reap);
    struct rpeer **pp = &r->peers;
    while (*pp) {
        struct rpeer *p = *pp;
        if (p->closing && !p->upstream) {
            *pp = p->next;
            log_info(&r->log,
                     "peer=%s closed frames_in=%llu frames_out=%llu bad_tags=%llu other_key=%llu",
                     p->link.peer, (unsigned long long)p->frames_in,
                     (unsigned long long)p->frames_out, (unsigned long long)p->link.st.bad_tags,
                     (unsigned long long)p->link.st.other_key);
            peer_free(p);
            continue;
        }
        if (p->closing && p->upstream) {
            /* Too slow to take our frames is impossible upstream; just clear the flag. */
            p->closing = false;
        }
        pp = &p->next;
    }
}

enum fc_err relay_peers_start(struct relay *r)
{
    ev_check_init(&r->reap, on_reap);
    ev_check_start(r->loop, &r->reap);
    for (int i = 0; i < r->n_listen; i++) {
        struct rlisten *ls = &r->listen[i];
        ls->relay = r;
        if (ls->addr.proto == NET_UDP) {
            if (relay_udp_start(r, ls) != FC_OK)
                return FC_IO;
            continue;
        }
        bool taken = ls->fd >= 0;
        if (!taken)
            ls->fd = net_tcp_listen(&ls->addr);
        if (ls->fd < 0) {
            log_error(&r->log, "listen %s: %s", ls->addr.text, strerror(errno));
            return FC_IO;
        }
        ev_io_init(&ls->io, on_accept, ls->fd, EV_READ);
        ev_io_start(r->loop, &ls->io);
        log_info(&r->log, "listening %s%s%s", ls->addr.text, ls->serve ? " (serve)" : " (ingest)",
                 taken ? " taken over" : "");
    }
    for (int i = 0; i < r->n_upstream; i++) {
        if (r->upstream_peer[i])
            continue; /* taken over, connected */
        struct rpeer *p = peer_new(r, &upstream_ops);
        if (!p)
            return FC_NOMEM;
        p->upstream = true;
        link_connect(&p->link, &r->upstream_addr[i]);
    }
    return FC_OK;
}

void relay_peers_free(struct relay *r)
{
    while (r->peers) {
        struct rpeer *p = r->peers;
        r->peers = p->next;
        peer_free(p);
    }
    for (int i = 0; i < r->n_listen; i++) {
        ev_io_stop(r->loop, &r->listen[i].io);
        if (r->listen[i].addr.proto == NET_UDP)
            ev_timer_stop(r->loop, &r->listen[i].coalesce);
        if (r->listen[i].fd >= 0)
            close(r->listen[i].fd);
    }
}
