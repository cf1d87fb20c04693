/* edge.c - framecast-edge's wiring: the core's hooks to the HTTP side, start-up and shutdown
 * order, stats and signals. No logic of its own. */
#include "edge.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include "cli.h"
#include "clock.h"
#include "http/preroll.h"

static void on_stats(EV_P_ ev_timer *w, int revents)
{
    core_log_stats(&container_of(w, struct edge, stats)->core);
}

static uint32_t hook_listeners(void *ctx, const struct emount *m)
{
    return edge_http_listeners(m);
}

static void on_signal(EV_P_ ev_signal *w, int revents)
{
    ev_break(EV_A_ EVBREAK_ALL);
}

static void on_sighup(EV_P_ ev_signal *w, int revents)
{
    struct edge *e = container_of(w, struct edge, sighup);
    struct core *c = &e->core;
    cli_keys_reload(&c->key_files, &c->keys, &c->log);
    if (e->http.opt.has_tls) {
        tls_reload(&e->http);
        workers_tls_reload(&e->sup);
    }
}

/* ---- analytics: sessions from this process's listeners and the workers' ---- */

static void core_session(void *ctx, const struct an_session *s)
{
    edge_analytics_submit(ctx, s);
}

static void core_hls_hit(void *ctx, const struct an_hls_hit *hit)
{
    hls_join_hit(&((struct edge *)ctx)->hls, hit);
}

static void analytics_hooks(struct edge *e, struct ev_loop *loop)
{
    struct ehttp *h = &e->http;
    if (!e->analytics_on)
        return;
    sessions_init(h);
    h->session_out = core_session;
    h->hls_hit = core_hls_hit;
    h->session_ctx = e;
    hls_join_start(&e->hls, loop, h->opt.analytics_min_s, core_session, e);
}

void edge_analytics_submit(struct edge *e, const struct an_session *s)
{
    if (e->an)
        analytics_submit(e->an, s);
}

/* Test hook: FC_DEBUG_AN_SYNTH=N submits N made-up sessions a second (mount "synth.mp3", ten
 * seconds long, ending now), so a test can load the store while the edge streams. */
static void on_an_synth(EV_P_ ev_timer *w, int revents)
{
    struct edge *e = container_of(w, struct edge, an_synth);
    struct an_session s = {.proto = AN_RAW, .listened_s = 10};
    s.end_us = clock_wall_us();
    s.start_us = s.end_us - 10000000;
    snprintf(s.mount, sizeof(s.mount), "synth.mp3");
    snprintf(s.ua, sizeof(s.ua), "synth");
    snprintf(s.id, sizeof(s.id), "synth-%llu", (unsigned long long)++e->an_synth_n);
    snprintf(s.client, sizeof(s.client), "synth-%llu", (unsigned long long)(e->an_synth_n % 97));
    edge_analytics_submit(e, &s);
}

static void analytics_start(struct edge *e, struct ev_loop *loop)
{
    e->an_opt.node = e->core.opt.node;
    if (!e->an_opt.url || analytics_open(&e->an, &e->an_opt, loop, &e->core.log) != FC_OK)
        return; /* a bad URL exits 2 in main; anything else leaves analytics off, logged */
    e->http.an = e->an;
    const char *synth = getenv("FC_DEBUG_AN_SYNTH");
    double rate = synth ? strtod(synth, NULL) : 0;
    if (rate > 0) {
        log_warn(&e->core.log, "FC_DEBUG_AN_SYNTH: %g made-up sessions a second", rate);
        ev_timer_init(&e->an_synth, on_an_synth, 1 / rate, 1 / rate);
        ev_timer_start(loop, &e->an_synth);
    }
}

/* --listen-tls in this process (no workers): the context was made by main. */
static enum fc_err listen_tls(struct ehttp *h)
{
    if (!h->opt.has_tls)
        return FC_OK;
    int fd = net_tcp_listen(&h->opt.listen_tls);
    if (fd < 0) {
        log_error(h->log, "listen %s: %s", h->opt.listen_tls.text, strerror(errno));
        return FC_IO;
    }
    edge_http_listen_tls(h, fd);
    log_info(h->log, "listening https=%s", h->opt.listen_tls.text);
    return FC_OK;
}

/* --takeover: the old process's listening sockets, one per worker (or this process's). */
static void inherit(struct edge *e)
{
    struct edge_handoff *ho = &e->ho;
    uint32_t slots = e->workers ? e->workers : 1;
    for (int i = 0; i < ho->n_listen_in; i++) {
        int fd = ho->listen_in[i];
        if ((uint32_t)i >= slots) {
            log_warn(&e->core.log, "takeover: fewer workers than before: a listening socket "
                     "closed (connections waiting in it are refused)");
            close(fd);
        } else if (e->workers) {
            e->sup.inherit_fd[i] = fd;
        } else {
            edge_http_listen(&e->http, fd);
        }
    }
    for (int i = 0; i < ho->n_tls_in; i++) {
        int fd = ho->tls_in[i];
        if ((uint32_t)i >= slots || !e->http.opt.has_tls)
            close(fd);
        else if (e->workers)
            e->sup.inherit_tls_fd[i] = fd;
        else
            edge_http_listen_tls(&e->http, fd);
    }
    ho->n_listen_in = ho->n_tls_in = 0;
    if (!e->workers && e->http.opt.has_tls && e->http.tls_fd < 0)
        listen_tls(&e->http);
}

enum fc_err edge_start(struct edge *e, struct ev_loop *loop)
{
    struct ehttp *h = &e->http;
    e->core.hooks = (struct edge_hooks){
        .ctx = h,
        .appended = edge_http_appended,
        .tick = edge_http_tick,
        .mount_freed = edge_http_mount_freed,
        .listeners = hook_listeners,
    };
    h->core = &e->core;
    h->loop = loop;
    h->log = &e->core.log;
    h->listen_fd = h->spare_fd = h->tls_fd = -1;
    e->core.loop = loop;
    e->sup.listen_fd = -1;
    if (e->workers) {
        e->sup.child_main = worker_main;
        e->sup.child_ctx = e;
        workers_init(&e->sup, &e->core, h, e->workers);
    }
    ev_timer_init(&e->stats, on_stats, EDGE_STATS_EVERY_S, EDGE_STATS_EVERY_S);
    ev_timer_start(loop, &e->stats);
    ev_signal_init(&e->sigint, on_signal, SIGINT);
    ev_signal_start(loop, &e->sigint);
    ev_signal_init(&e->sigterm, on_signal, SIGTERM);
    ev_signal_start(loop, &e->sigterm);
    ev_signal_init(&e->sighup, on_sighup, SIGHUP);
    ev_signal_start(loop, &e->sighup);
    if (core_start(&e->core, loop) != FC_OK)
        return FC_NOMEM;
    static_load(h);
    analytics_hooks(e, loop);
    if (e->ho.takeover && edge_handoff_take(e) != FC_OK)
        return FC_IO;
    if (e->workers) {
        edge_http_init(h);
        inherit(e);
        if (workers_start(&e->sup) != FC_OK)
            return FC_IO;
    } else if (e->ho.n_listen_in) {
        edge_http_init(h);
        inherit(e);
        log_info(h->log, "listening http=%s (taken over)", h->opt.listen.text);
    } else if (edge_http_start(h) != FC_OK || listen_tls(h) != FC_OK) {
        return FC_IO;
    }
    if (e->ho.takeover)
        edge_handoff_adopt(e);
    /* after the workers' fork: they never touch the store or its thread */
    analytics_start(e, loop);
    char ids[MAC_KEYRING_IDS_MAX];
    log_info(&e->core.log, "started node=%s workers=%u keys=%s", e->core.opt.node, e->workers,
             mac_keyring_ids(&e->core.keys, ids));
    return edge_relays_start(&e->core);
}

void edge_free(struct edge *e)
{
    edge_handoff_free(e);
    if (e->an)
        ev_timer_stop(e->core.loop, &e->an_synth);
    core_log_stats(&e->core);
    workers_stop(&e->sup);
    core_stop(&e->core);
    edge_http_free(&e->http);
    hls_join_flush(&e->hls);
    hls_join_free(&e->hls);
    /* last: the listeners closed above and the open HLS sessions are submitted first; an admin
     * request still waiting for it had its listener closed (analytics_done sees NULL) */
    analytics_close(e->an);
    e->an = e->http.an = NULL;
    static_free(&e->http);
    preroll_free(&e->http);
    core_free(&e->core);
}
