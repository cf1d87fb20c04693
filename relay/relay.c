/* relay.c - start-up, timers, counters of framecast-relay. */
#include <stdlib.h>
#include <string.h>
#include "relay.h"

static void on_tick(EV_P_ ev_timer *w, int revents)
{
    struct relay *r = container_of(w, struct relay, tick);
    relay_expire(r);
    for (int i = 0; i < r->n_listen; i++) /* resume accepting after EMFILE (UDP: see ingest.c) */
        if (r->listen[i].addr.proto == NET_TCP && r->listen[i].fd >= 0 &&
            !ev_is_active(&r->listen[i].io))
            ev_io_start(EV_A_ & r->listen[i].io);
}

static void on_stats(EV_P_ ev_timer *w, int revents)
{
    struct relay *r = container_of(w, struct relay, stats);
    const struct relay_counters *c = &r->c;
    log_info(&r->log,
             "stats streams=%u frames_in=%llu forwarded=%llu dups=%llu stale=%llu bad_tags=%llu "
             "bad_msgs=%llu skew_drops=%llu session_drops=%llu backlog_kicks=%llu",
             r->n_streams, (unsigned long long)c->frames_in, (unsigned long long)c->frames_fwd,
             (unsigned long long)c->dups, (unsigned long long)c->stale,
             (unsigned long long)c->bad_tags, (unsigned long long)c->bad_msgs,
             (unsigned long long)c->skew_drops, (unsigned long long)c->session_drops,
             (unsigned long long)c->backlog_kicks);
    for (struct rpeer *p = r->peers; p; p = p->next)
        log_info(&r->log,
                 "stats peer=%s%s up=%d frames_in=%llu frames_out=%llu bad_tags=%llu bad_msgs=%llu "
                 "queue_drops=%llu",
                 p->link.peer, p->upstream ? " upstream=1" : "", p->link.up,
                 (unsigned long long)p->frames_in, (unsigned long long)p->frames_out,
                 (unsigned long long)p->link.st.bad_tags, (unsigned long long)p->link.st.bad_msgs,
                 (unsigned long long)p->link.st.queue_drops);
}

static void on_signal(EV_P_ ev_signal *w, int revents)
{
    struct relay *r = w->signum == SIGINT ? container_of(w, struct relay, sigint)
                                          : container_of(w, struct relay, sigterm);
    log_info(&r->log, "signal %d: stopping", w->signum);
    ev_break(EV_A_ EVBREAK_ALL);
}

enum fc_err relay_start(struct relay *r, struct ev_loop *loop)
{
    r->loop = loop;
    r->udp_msg = malloc(sizeof(*r->udp_msg));
    r->udp_bufs = malloc((size_t)RELAY_UDP_BATCH * RELAY_UDP_DGRAM_MAX);
    if (!r->udp_msg || !r->udp_bufs || wire_decoder_init(&r->udp_dec) != FC_OK)
        return FC_NOMEM;
    for (int i = 0; i < r->n_listen; i++)
        r->listen[i].fd = -1;
    if (alert_init(&r->alert, loop, &r->log, r->opt.node, r->opt.alert_webhook) != FC_OK)
        return FC_NOMEM;
    ev_timer_init(&r->tick, on_tick, 1.0, 1.0);
    ev_timer_start(loop, &r->tick);
    ev_timer_init(&r->stats, on_stats, RELAY_STATS_EVERY_S, RELAY_STATS_EVERY_S);
    ev_timer_start(loop, &r->stats);
    ev_signal_init(&r->sigint, on_signal, SIGINT);
    ev_signal_start(loop, &r->sigint);
    ev_signal_init(&r->sigterm, on_signal, SIGTERM);
    ev_signal_start(loop, &r->sigterm);
    return relay_peers_start(r);
}

void relay_free(struct relay *r)
{
    on_stats(r->loop, &r->stats, 0);
    relay_peers_free(r);
    relay_streams_free(r);
    alert_free(&r->alert);
    wire_decoder_free(&r->udp_dec);
    free(r->udp_msg);
    free(r->udp_bufs);
    mac_key_wipe(&r->key);
}
