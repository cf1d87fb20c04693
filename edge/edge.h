/*
 * edge.h - framecast-edge: the program's context, wiring the core (edge/core/: relay links,
 * reorder, merge, rewind buffers; docs/architecture.md §5, §6) to the HTTP side (edge/http/:
 * listeners and outputs; §7). The core knows nothing of HTTP: it reports new audio and its tick
 * through struct edge_hooks, and the HTTP side reads mounts through the core's view (core.h).
 */
#ifndef FC_EDGE_H
#define FC_EDGE_H

#include "analytics/analytics.h"
#include "core/core.h"
#include "http/http.h"
#include "analytics/hls_join.h"
#include "edge_handoff.h"
#include "workers.h"

#define EDGE_STATS_EVERY_S 60.0

struct edge {
    struct core core;                  /* merge and rewind buffers */
    struct ehttp http;                 /* listeners; reads `core` (with workers: only what
                                          the workers hand over) */
    uint32_t workers;                  /* --workers, 0 = listeners in this process */
    struct wsup sup;                   /* the workers */
    ev_timer stats;                    /* `stats` log lines every EDGE_STATS_EVERY_S */
    ev_signal sigint, sigterm;
    ev_signal sighup;                  /* re-read the --key files */
    struct edge_handoff ho;            /* --control / --takeover (edge_handoff.c) */
    bool analytics_on;                 /* --analytics given: sessions are recorded */
    struct hls_join hls;               /* HLS requests joined into sessions (the core's) */
    struct analytics_opts an_opt;      /* --analytics*; an_opt.url NULL = analytics off */
    struct analytics *an;              /* the session store (core process only; NULL = off) */
    ev_timer an_synth;                 /* test hook FC_DEBUG_AN_SYNTH (edge.c) */
    uint64_t an_synth_n;
};

/* Start the core (loading --rewind-dir), listening, then the relay links; the options in
 * e->core.opt and e->http.opt are set. Free after ev_run, whatever edge_start returned. */
enum fc_err edge_start(struct edge *e, struct ev_loop *loop);
void edge_free(struct edge *e);

/* The single entry point for finished listening sessions (edge/analytics/session.h): queue `s`
 * (copied) for the analytics store; a no-op when analytics is off. Never blocks (a full queue
 * drops it: counted and logged). Core process, loop thread. */
void edge_analytics_submit(struct edge *e, const struct an_session *s);

/* worker.c: a worker's life after the fork (workers.h's child_main; ctx = the struct edge). */
void worker_main(void *ctx, uint32_t num, int fd);

#endif
