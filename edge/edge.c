/* edge.c - start-up, timers and counters of framecast-edge. */
#include <stdlib.h>
#include "edge.h"
#include "persist.h"

static void on_tick(EV_P_ ev_timer *w, int revents)
{
    edge_tick(container_of(w, struct edge, tick));
}

static void on_stats(EV_P_ ev_timer *w, int revents)
{
    struct edge *e = container_of(w, struct edge, stats);
    for (struct emount *m = e->mounts; m; m = m->next)
        log_info(&e->log,
                 "stats mount=%s listeners=%u frames_out=%llu lost=%llu gaps=%llu patched=%llu "
                 "failovers=%llu failbacks=%llu buffer_bytes=%llu",
                 m->name, m->n_listeners, (unsigned long long)m->frames_out,
                 (unsigned long long)m->lost, (unsigned long long)m->gaps,
                 (unsigned long long)m->patched, (unsigned long long)m->failovers,
                 (unsigned long long)m->failbacks, (unsigned long long)rewind_bytes_held(&m->rw));
    for (struct emount *m = e->mounts; m; m = m->next)
        for (struct estream *s = m->streams; s; s = s->next)
            log_info(&e->log,
                     "stats mount=%s encoder=%s priority=%u received=%llu duplicates=%llu "
                     "late=%llu lost=%llu patched=%llu offset_ms=%.1f",
                     m->name, s->encoder, s->priority, (unsigned long long)s->ro.received,
                     (unsigned long long)s->ro.duplicates, (unsigned long long)s->ro.late,
                     (unsigned long long)s->ro.lost, (unsigned long long)s->patched,
                     s->off_us / 1000.0);
    for (int i = 0; i < e->opt.n_relays; i++) {
        const struct erelay *r = &e->relays[i];
        log_info(&e->log, "stats relay=%s up=%d frames=%llu first_copies=%llu bad_tags=%llu",
                 r->addr.text, r->link.up, (unsigned long long)r->frames,
                 (unsigned long long)r->first_copies, (unsigned long long)r->link.st.bad_tags);
    }
}

static void on_signal(EV_P_ ev_signal *w, int revents)
{
    ev_break(EV_A_ EVBREAK_ALL);
}

enum fc_err edge_start(struct edge *e, struct ev_loop *loop)
{
    e->loop = loop;
    e->listen_fd = e->spare_fd = -1;
    e->align = malloc(sizeof(*e->align));
    if (!e->align)
        return FC_NOMEM;
    if (alert_init(&e->alert, loop, &e->log, e->opt.node, e->opt.alert_webhook) != FC_OK)
        return FC_NOMEM;
    ev_timer_init(&e->tick, on_tick, EDGE_TICK_S, EDGE_TICK_S);
    ev_timer_start(loop, &e->tick);
    ev_timer_init(&e->stats, on_stats, EDGE_STATS_EVERY_S, EDGE_STATS_EVERY_S);
    ev_timer_start(loop, &e->stats);
    ev_signal_init(&e->sigint, on_signal, SIGINT);
    ev_signal_start(loop, &e->sigint);
    ev_signal_init(&e->sigterm, on_signal, SIGTERM);
    ev_signal_start(loop, &e->sigterm);
    if (e->opt.rewind_dir) {
        persist_load_all(e);
        persist_start(e);
    }
    static_load(e);
    if (edge_http_start(e) != FC_OK)
        return FC_IO;
    return edge_relays_start(e);
}

void edge_free(struct edge *e)
{
    on_stats(e->loop, &e->stats, 0);
    if (e->opt.rewind_dir) {
        persist_stop(e);
        persist_save_all(e);
        log_info(&e->log, "rewind saved to %s", e->opt.rewind_dir);
    }
    edge_http_free(e);
    static_free(e);
    edge_relays_free(e);
    edge_mounts_free(e);
    free(e->align);
    alert_free(&e->alert);
    mac_key_wipe(&e->key);
}
