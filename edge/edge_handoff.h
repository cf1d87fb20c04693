/*
 * edge_handoff.h - framecast-edge's handoff restart (docs/architecture.md §7.12 "Handoff restart").
 *
 * `--control PATH`: the running edge listens for a successor on a unix socket (shared/handoff.h).
 * `--takeover PATH`: a new edge (same flags, possibly a newer binary) connects there; the old one
 * pauses its relay links and its tick (nothing more is appended), sends the core's mounts
 * (edge/core/carry_core.c: the rewind buffers' memfds and tables, titles, merge position and
 * streams), its listening sockets and every listener that can be carried (edge/http/carry.c;
 * collected from its workers), then HO_END. The new one adopts all of it, answers HO_READY and,
 * once the old one acknowledges (the old one is committed from then on and exits 0 without a
 * byte on the handed sockets), forks its workers on the same listening sockets, hands them the
 * listeners and subscribes to the relays from each stream's next seq. Before HO_READY the old one
 * is not committed: a failure (the new one exits, times out or sends HO_FAIL) makes it resume
 * every paused listener and link as if nothing happened.
 * Not carried: HTTPS connections (their TLS state lives in OpenSSL; they are closed and
 * reconnect), answers waiting for an admin API query, responses over CARRY_OUT_MAX.
 */
#ifndef FC_EDGE_HANDOFF_H
#define FC_EDGE_HANDOFF_H

#include <ev.h>
#include "ho_accept.h"
#include <stddef.h>
#include <stdint.h>
#include "fc.h"

#define EDGE_HANDOFF_VERSION 1

struct edge;

struct carried {                   /* a listener received, adopted once committed */
    uint8_t *rec;                  /* its carry record (owned) */
    size_t len;
    int fd;
    uint32_t worker;               /* its worker in the old process, 0 = the core */
};

struct edge_handoff {
    const char *control;           /* --control PATH, NULL = none */
    const char *takeover;          /* --takeover PATH, NULL = a normal start */
    int listen_fd;                 /* the control socket */
    struct ho_accept acc;          /* its connections (shared/ho_accept.h) */
    /* the old process, during one handoff */
    int ctl;                       /* the successor's connection, -1 = none */
    ev_io ctl_w;
    ev_timer timeout;
    int state;                     /* HS_* (handoff.c) */
    uint32_t waiting;              /* workers still handing over */
    uint32_t sent_listeners, sent_listen;
    uint8_t *buf;                  /* HANDOFF_REC_MAX (owned) */
    /* the new process */
    uint32_t old_pid;              /* the old process (its HO_HELLO) */
    int listen_in[64], tls_in[64]; /* listening sockets taken over, in order */
    int n_listen_in, n_tls_in;
    struct carried *carried;
    size_t n_carried, cap_carried;
};

/* Start listening on --control (after edge_start). FC_IO if it cannot (logged). */
enum fc_err edge_handoff_listen(struct edge *e);

/* The new process, inside edge_start after core_start: take the old process's state over
 * (mounts now; listening sockets and listeners kept for edge_handoff_adopt). FC_IO / FC_PROTO,
 * logged, if the handoff failed (the old one keeps serving; exit non-zero). */
enum fc_err edge_handoff_take(struct edge *e);

/* The new process, once listening (workers forked): adopt the listeners taken over. */
void edge_handoff_adopt(struct edge *e);

void edge_handoff_free(struct edge *e);

#endif
