/* relay.c - start-up, timers, counters of framecast-relay. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "cli.h"
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
    relay_log_stats(container_of(w, struct relay, stats));
}

static void on_signal(EV_P_ ev_signal *w, int revents)
{
    struct relay *r = w->signum == SIGINT ? container_of(w, struct relay, sigint)
                                          : container_of(w, struct relay, sigterm);
    log_info(&r->log, "signal %d: stopping", w->signum);
    ev_break(EV_A_ EVBREAK_ALL);
}

static void on_sighup(EV_P_ ev_signal *w, int revents)
{
    struct relay *r = container_of(w, struct relay, sighup);
    cli_keys_reload(&r->key_files, &r->keys, &r->log);
}

enum fc_err relay_start(struct relay *r, struct ev_loop *loop)
{
    r->loop = loop;
    r->udp_msg = malloc(sizeof(*r->udp_msg));
    r->udp_bufs = malloc((size_t)RELAY_UDP_BATCH * RELAY_UDP_DGRAM_MAX);
    if (!r->udp_msg || !r->udp_bufs || wire_decoder_init(&r->udp_dec) != FC_OK)
        return FC_NOMEM;
    if (alert_init(&r->alert, loop, &r->log, r->opt.node, r->opt.alert_webhook) != FC_OK) {
        wire_decoder_free(&r->udp_dec);
        return FC_NOMEM;
    }
    r->inited = true;
    ev_timer_init(&r->tick, on_tick, 1.0, 1.0);
    ev_timer_start(loop, &r->tick);
    ev_timer_init(&r->stats, on_stats, RELAY_STATS_EVERY_S, RELAY_STATS_EVERY_S);
    ev_timer_start(loop, &r->stats);
    ev_signal_init(&r->sigint, on_signal, SIGINT);
    ev_signal_start(loop, &r->sigint);
    ev_signal_init(&r->sigterm, on_signal, SIGTERM);
    ev_signal_start(loop, &r->sigterm);
    ev_signal_init(&r->sighup, on_sighup, SIGHUP);
    ev_signal_start(loop, &r->sighup);
    if (r->opt.has_metrics && r->metrics_fd >= 0) {
        metrics_http_adopt(&r->metrics, loop, &r->log, r->metrics_fd, relay_metrics, r);
        r->metrics_fd = -1;
        log_info(&r->log, "metrics http=%s taken over", r->opt.metrics.text);
    } else if (r->opt.has_metrics) {
        if (metrics_http_start(&r->metrics, loop, &r->log, &r->opt.metrics, relay_metrics, r) != FC_OK) {
            log_error(&r->log, "metrics %s: %s", r->opt.metrics.text, strerror(errno));
            return FC_IO;
        }
        log_info(&r->log, "metrics http=%s", r->opt.metrics.text);
    }
    if (relay_peers_start(r) != FC_OK)
        return FC_IO;
    return relay_control_start(r);
}

void relay_free(struct relay *r)
{
    if (r->inited)
        on_stats(r->loop, &r->stats, 0);
    metrics_http_stop(&r->metrics);
    relay_control_stop(r);
    if (r->metrics_fd >= 0)
        close(r->metrics_fd);
    r->metrics_fd = -1;
    relay_peers_free(r);
    relay_streams_free(r);
    if (r->inited) {
        alert_free(&r->alert);
        wire_decoder_free(&r->udp_dec);
        r->inited = false;
    }
    free(r->udp_msg);
    free(r->udp_bufs);
    mac_keyring_wipe(&r->keys);
}
