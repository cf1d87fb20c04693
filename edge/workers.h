/*
 * workers.h - edge --workers N: the core process's side (docs/architecture.md §7.9 "Workers").
 *
 * One process (the core) receives from the relays, merges and appends to the rewind buffers; N
 * worker processes, forked from it, accept listeners (each its own SO_REUSEPORT socket on
 * --listen) and write them from the same memfd slabs (one copy of the audio in memory). A worker starts as a copy of
 * the core's state at its fork (its mounts become replicas: edge/worker.c) and is then kept in
 * step by records (edge/wmsg.h) sent for every frame appended, title and station change and new
 * mount, in the order they happened. Workers report their listener counts and hand the core the
 * requests only it can answer (GET / as JSON, /status-json.xsl). A worker that exits or is killed
 * loses its own listeners only; it is forked again (0.5 s, doubling to 10 s while it keeps
 * failing within 30 s of its start). A worker whose queue passes WORKER_QUEUE_MAX (it stopped
 * reading) is killed and restarted.
 * Loop thread only (libev default loop: ev_child).
 */
#ifndef FC_WORKERS_H
#define FC_WORKERS_H

#include <ev.h>
#include <jansson.h>
#include <stdint.h>
#include <sys/types.h>
#include "core/core.h"
#include "http/http.h"
#include "wmsg.h"

#define WORKERS_MAX 64
#define WORKERS_LAST_WAIT_US 1000000 /* a committed handoff: the workers' last records, at most */
#define WORKER_QUEUE_MAX (64u << 20) /* bytes queued to one worker before it is restarted */

struct wsup;

struct wproc {
    struct wsup *sup;
    uint32_t num;                      /* 1..n, also in its log lines and X-Framecast-Worker */
    pid_t pid;                         /* 0 = not running */
    int fd;                            /* our end of its socketpair, -1 = none */
    ev_io rio, wio;
    ev_child child;
    ev_timer restart;
    uint8_t *q;                        /* records not yet sent (owned) */
    size_t q_off, q_len, q_cap;
    uint32_t connections;              /* from its last WREC_COUNTS */
    double cpu_s;                      /* ... its CPU time, memory and fds */
    uint64_t rss_bytes;
    uint32_t fds;
    struct http_counters c;            /* ... its HTTP counters */
    struct wcount {
        uint32_t n, icy;
    } *per_mount;                      /* listeners by mount id, as last reported (owned) */
    uint32_t per_mount_n;
    uint32_t restarts;
    double backoff_s;
    double started;                    /* ev_now of its fork */
    bool handing;                      /* handoff: asked to hand over, not done yet */
};

struct wsup {
    struct core *core;
    struct ehttp *http;                /* the core process's (answers forwarded requests) */
    struct ev_loop *loop;
    int listen_fd;                     /* unused: each worker listens with SO_REUSEPORT */
    uint32_t n;
    struct wproc w[WORKERS_MAX];
    ev_prepare flush;                  /* queued records go out once per loop iteration */
    uint8_t rx[WMSG_DGRAM_MAX + 16 * 1024]; /* records from the workers are received here */
    struct emount **by_id;             /* mounts by id, filled on demand (owned array) */
    uint32_t by_id_n;
    /* Runs in a new worker right after fork (num, its socket); must not return. */
    void (*child_main)(void *ctx, uint32_t num, int fd);
    void *child_ctx;
    /* Handoff (edge/edge_handoff.c): a WREC_HANDED record (its payload and socket `fd`, owned) or
     * WREC_HANDED_END (also when a worker asked to hand over dies) from worker `w`. */
    void (*handed)(void *ctx, struct wproc *w, uint16_t type, const uint8_t *p, size_t len,
                   int fd);
    void *handed_ctx;
    /* Handoff, the new process: listening sockets taken over, given to workers 1..n at their
     * first fork (-1 = the worker listens itself), then closed here. */
    int inherit_fd[WORKERS_MAX], inherit_tls_fd[WORKERS_MAX];
};

/* Set the core's hooks (records to the workers, then the core process's own HTTP side `h`,
 * initialised without listening) and h->extra_json, for `n` workers (1..WORKERS_MAX); before
 * core_start. s->child_main / child_ctx must be set. */
void workers_init(struct wsup *s, struct core *c, struct ehttp *h, uint32_t n);

/* Listen on h->opt.listen and fork the workers. After core_start (mounts loaded, c->loop set)
 * and before the relay links start. FC_IO if it cannot listen or fork (logged). */
enum fc_err workers_start(struct wsup *s);

/* Tell every worker to read --tls-cert / --tls-key again (SIGHUP). */
void workers_tls_reload(struct wsup *s);

/* Internal to workers.c, workers_rx.c and workers_carry.c. */
bool wproc_running(const struct wproc *w);
struct emount *workers_mount_by_id(struct wsup *s, uint32_t id);
void workers_on_readable(struct ev_loop *loop, ev_io *io, int revents);
uint32_t workers_query(void *ctx, uint32_t query, int kind, const char *mount, uint64_t id);
void wproc_clear_counts(struct wproc *w);
void wproc_put(struct wproc *w, uint16_t type, uint32_t mount, const void *a, size_t alen,
               const void *b, size_t blen);
void wproc_flush(struct wproc *w);

/* workers_carry.c, handoff restart (docs/architecture.md §7.12). The old process:
 * workers_hand_begin sends every queued record, then WREC_HANDOFF to each running worker (their
 * records come back through s->handed); returns how many were asked. workers_hand_end: WREC_COMMIT
 * (the new process confirmed: they close the listeners they kept, whose sessions are read here
 * until each worker's end closes, WORKERS_LAST_WAIT_US for all at most, and exit) or WREC_RESUME,
 * sent before returning. The new process:
 * workers_adopt sends the carry record `p` and socket `fd` (closed here) to worker `num`
 * (1..n); false if it could not. All wait at most HANDOFF_TIMEOUT_S per record. */
uint32_t workers_hand_begin(struct wsup *s);
void workers_hand_end(struct wsup *s, bool commit);
bool workers_adopt(struct wsup *s, uint32_t num, const uint8_t *p, size_t len, int fd);

/* Stop the workers (SIGTERM, then SIGKILL after 2 s) and free the queues. */
void workers_stop(struct wsup *s);

#endif
