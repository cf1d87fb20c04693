/*
 * core.h - the edge's core: relay links, reorder, lanes, alignment, merge, one rewind buffer per
 * mount, titles, persistence (docs/architecture.md §5, §6). Nothing here knows HTTP.
 *
 * Frames from relay links go into a reorder buffer per stream (mount, encoder, session); the
 * mount's active stream (lowest priority number among the healthy ones) feeds the mount's rewind
 * buffer, re-stamped from the sample count.
 *
 * What the HTTP side (edge/http/) may use is the mount view: the fields of struct emount marked
 * "view" (read-only outside the core), the rewind buffer through rewind.h's const functions,
 * titles through titles_at(), mounts by edge_mount_find() or the `mounts` list, and the JSON of
 * status.c. Merge state (streams, the active stream, lanes, reorder buffers) is the core's alone.
 * The core tells the HTTP side about new audio and time passing through struct edge_hooks.
 */
#ifndef FC_CORE_H
#define FC_CORE_H

#include <ev.h>
#include <jansson.h>
#include <stdbool.h>
#include <sys/types.h>
#include "alert.h"
#include "link.h"
#include "log.h"
#include "mac.h"
#include "net.h"
#include "wire.h"
#include "align.h"
#include "lane.h"
#include "reorder.h"
#include "rewind.h"
#include "titles.h"

#define EDGE_MAX_RELAYS 16
#define EDGE_MAX_MOUNTS 256
#define EDGE_MAX_STREAMS_PER_MOUNT 16     /* issue 3: a flood of sessions is dropped */
#define EDGE_TICK_S 0.02                  /* reorder deadlines and stream health, 20 ms */
#define EDGE_RESYNC_US 1000000            /* output PTS re-based when off by more than 1 s */
#define EDGE_ALIGN_EVERY_S 2.0            /* re-estimate encoder offsets */
#define EDGE_PATCH_WAIT_S 2.0             /* wait this long for a backup to cover a gap */
#define EDGE_START_GRACE_S 2.5            /* --start-grace default: a fresh mount waits this
                                             long for every encoder before output begins (an
                                             encoder 1.7 s late was seen in tests) */
#define EDGE_ALIGN_WAIT_S 6.0             /* dead air: wait this long past --silence-failover
                                             for a trusted offset before splicing by PTS */
#define EDGE_LOUD_RECENT_S 2.0            /* "has sound" = a loud frame this recently */

struct core;
struct emount;

struct estream {
    struct emount *mount;              /* owner */
    char encoder[WIRE_ENCODER_MAX + 1];
    uint64_t session;
    uint32_t priority;
    struct reorder ro;                 /* owned */
    struct lane lane;                  /* decided frames, owned */
    double first_rx;                   /* core_now of the first frame */
    double last_rx;                    /* core_now of the latest frame (any copy) */
    double healthy_since;              /* core_now it became healthy, 0 = not healthy */
    double silent_since;               /* core_now its level fell below the threshold, 0 = sound */
    double loud_last;                  /* core_now of its last frame with sound */
    int64_t off_us;                    /* content at the reference's PTS p is at p + off_us */
    enum align_result off_how;         /* how off_us was last estimated */
    double off_at;                     /* core_now of the last good estimate, 0 = none */
    double off_corr;                   /* correlation of that estimate */
    int64_t cand_us;                   /* latest estimate not yet confirmed by a second one */
    uint32_t cand_n;                   /* successive estimates agreeing with cand_us */
    bool first_time;                   /* its encoder never fed this mount's output: it may
                                          take over as soon as aligned (no --failback-after) */
    uint64_t frames_out;               /* frames this stream gave the mount */
    uint64_t patched;                  /* frames it gave to patch another stream's gaps */
    struct estream *next;
};

struct emount {
    /* ---- view: read by the HTTP side, written by the core only ---- */
    char name[WIRE_MOUNT_MAX + 1];
    uint32_t id;                       /* 1, 2, ... in order of creation; names it to workers */
    struct rewind rw;                  /* owned; readers use rewind.h's const functions */
    bool has_audio;                    /* rw holds at least one frame */
    enum fc_codec codec;               /* of the latest output frame */
    uint32_t sample_rate;
    uint8_t channels;
    uint32_t bitrate;                  /* bits/s from the latest frame header */
    char title[WIRE_META_MAX + 1];     /* current title, valid UTF-8 */
    struct title_ring titles;          /* recent title changes by buffer position (titles_at) */
    bool has_station;                  /* station fields below came from the source */
    char st_name[WIRE_STATION_MAX + 1], st_genre[WIRE_STATION_MAX + 1];
    char st_desc[WIRE_STATION_MAX + 1], st_url[WIRE_STATION_MAX + 1];
    uint32_t st_bitrate;               /* kbit/s as the source declared it, 0 = unknown */
    uint64_t frames_out, lost, gaps, switches, patched, failovers, failbacks, discontinuities;
    struct emount *next;
    void *http;                        /* the HTTP side's state of this mount, set and freed
                                          by it (edge_hooks.mount_freed); NULL = none */
    uint32_t remote_listeners;         /* listeners of it on worker processes (edge/workers.c;
                                          0 in a single process or in a worker) */
    uint32_t remote_icy;               /* ... of which with ICY metadata */
    uint64_t workers_known;            /* workers.c: bit w = worker w holds a replica of it */

    /* ---- merge state: the core's alone ---- */
    struct core *core;
    struct estream *streams;
    uint32_t n_streams;
    struct estream *active;            /* feeding the buffer, or NULL */
    uint64_t cur_seq;                  /* next seq of `active` to output */
    uint64_t src_end_us;               /* active's PTS where the output so far ends */
    uint64_t last_dur_us;              /* duration of the last output frame */
    uint32_t last_len;                 /* its bytes */
    double gap_since;                  /* core_now a gap began waiting for a backup, 0 = none */
    double first_seen;                 /* core_now the mount's first frame arrived */
    double next_align;                 /* core_now of the next offset estimate */
    struct estream *ref;               /* offsets are relative to this stream */
    char fed[EDGE_MAX_STREAMS_PER_MOUNT][WIRE_ENCODER_MAX + 1]; /* encoders that fed output */
    uint32_t n_fed;
    bool splice_wait_logged;           /* "waiting for a trusted offset" logged */
    uint64_t out_next_pts_us;          /* re-stamped PTS of the next output frame */
    double sourceless_since;           /* core_now no stream was healthy since, 0 = has one */
    bool sourceless_alerted;           /* the sourceless alert went out */
    uint64_t carry_abs_end;            /* handoff: the old process's abs_end (carry_core.c) */
    char pinned[WIRE_ENCODER_MAX + 1]; /* admin API promote: this encoder feeds the output while
                                          it is healthy ("" = the usual choice) */
};

struct erelay {
    struct link link;                  /* owned; link.owner = this */
    struct core *core;
    struct net_addr addr;
    uint64_t frames;                   /* FRAME messages received */
    uint64_t first_copies;             /* of which were new to the edge */
    bool was_up;
};

/*
 * How the core tells the HTTP side (or a test) what happened; every member may be NULL. All are
 * called on the loop thread, from inside the core; none may free a mount or call back into
 * merge (edge_frame_in, edge_tick, merge_pump).
 */
struct edge_hooks {
    void *ctx;                                         /* passed to every hook */
    /* A frame was appended to m->rw (its view fields are updated). Once per output frame. */
    void (*appended)(void *ctx, struct emount *m);
    /* End of every core tick (EDGE_TICK_S), after every mount was pumped. */
    void (*tick)(void *ctx);
    /* `m` is about to be freed: release m->http. */
    void (*mount_freed)(void *ctx, struct emount *m);
    /* `m`'s title changed to `title` / `url` (raw, as the frame carried them) from buffer
       position `abs`; m->title and m->titles are updated. */
    void (*titled)(void *ctx, struct emount *m, uint64_t abs, const char *title, const char *url);
    /* `m`'s station fields (st_*) were set from a frame. */
    void (*station)(void *ctx, struct emount *m);
    /* Listeners of `m` now, for the stats lines; NULL = 0. */
    uint32_t (*listeners)(void *ctx, const struct emount *m);
};

struct core_opts {
    struct net_addr relays[EDGE_MAX_RELAYS];
    int n_relays;
    uint64_t reorder_us;               /* --reorder-ms */
    uint64_t rewind_us;                /* --rewind */
    double stream_timeout_s;           /* --stream-timeout */
    double max_skew_s;                 /* --max-skew */
    double failback_after_s;           /* --failback-after */
    double start_grace_s;              /* --start-grace */
    double silence_failover_s;         /* --silence-failover, 0 = off */
    int silence_threshold_db;          /* --silence-threshold, dBFS */
    double sourceless_after_s;         /* --sourceless-after */
    const char *alert_webhook;         /* --alert-webhook URL or NULL */
    const char *rewind_dir;            /* --rewind-dir or NULL */
    double rewind_save_every_s;        /* --rewind-save-every */
    char node[WIRE_NODE_MAX + 1];      /* --node */
    bool taking_over;                  /* --takeover: mounts come from the old process, not
                                          from --rewind-dir */
};

struct core_counters {
    uint64_t frames_in, first_copies, skew_drops, stream_drops;
};

struct core {
    struct ev_loop *loop;
    struct log log;
    struct mac_keyring keys;           /* --key: the first tags HELLO etc., any verifies */
    struct mac_key_files key_files;    /* --key FILE..., read again on SIGHUP */
    struct core_opts opt;
    struct edge_hooks hooks;
    struct erelay relays[EDGE_MAX_RELAYS];
    struct emount *mounts;
    uint32_t n_mounts;
    uint32_t mount_ids;                /* id of the newest mount */
    ev_timer tick;
    struct log_limit ll;
    struct core_counters c;
    struct align_scratch *align;       /* owned scratch for align_estimate() */
    struct alerter alert;              /* log lines and webhook posts */
    ev_timer save_timer;               /* periodic rewind save (persist.c) */
    ev_child save_child;               /* the forked saver */
    pid_t save_pid;                    /* 0 when no save runs */
    double test_now;                   /* unit tests: a fake clock for merge (s); 0 = ev_now */
};

/* The time merge and mount decisions use (s, libev's loop time): ev_now(), or the fake clock a
 * unit test set in c->test_now. Loop thread only. */
static inline double core_now(const struct core *c)
{
    return c->test_now > 0 ? c->test_now : ev_now(c->loop);
}

/* core.c: the tick timer, alerts, align scratch and, with --rewind-dir, the saved buffers
 * (loaded now) and the periodic saver. Hooks must be set before (loading makes mounts). */
enum fc_err core_start(struct core *c, struct ev_loop *loop);
/* core.c: stop the saver and save every mount (with --rewind-dir). Listeners may still read. */
void core_stop(struct core *c);
/* core.c: close relay links, free mounts (edge_hooks.mount_freed first), scratch, alerts. */
void core_free(struct core *c);

/* relays.c: connect to every --relay. */
enum fc_err edge_relays_start(struct core *c);
void edge_relays_free(struct core *c);

/* mount.c */
void edge_frame_in(struct core *c, const struct wire_frame *f, struct erelay *from);
void edge_tick(struct core *c);                 /* release due frames, stream health, hooks */

/* merge.c: move decided frames into lanes, choose the stream, splice, patch, output. */
void merge_pump(struct core *c, struct emount *m);
/* merge.c: true if `encoder` has fed the output of `m` (its next session is a returning
 * primary, held back by --failback-after, not a new encoder). */
bool merge_encoder_fed(const struct emount *m, const char *encoder);
/* merge.c: true if some stream of `m` is healthy (alive, not dead air). */
bool merge_has_source(struct core *c, struct emount *m);
/* mount.c: the mount named by `len` bytes of `name`, or NULL. Part of the view. */
struct emount *edge_mount_find(struct core *c, const char *name, size_t len);
struct emount *edge_mount_new(struct core *c, const char *name, enum fc_codec codec);
/* mount.c: a worker's replica of the core's mount `id` (edge/worker.c): its rewind buffer maps
 * the core's memfd `fd` (owned from now on; rewind_attach). NULL (fd closed) out of memory. */
struct emount *edge_mount_attach(struct core *c, uint32_t id, const char *name,
                                 enum fc_codec codec, uint64_t keep_us, int fd);
/* merge.c: pin `encoder` as `m`'s source ("" releases): output splices to it at the aligned
 * point, like a failover, and stays while it is healthy. FC_PROTO if no stream of `m` has
 * that encoder. */
enum fc_err merge_pin(struct core *c, struct emount *m, const char *encoder);

/* mount.c: set `m`'s title from buffer position `abs` (m->title sanitized to UTF-8, the ICY
 * block in m->titles), then call hooks.titled. */
void edge_mount_title(struct core *c, struct emount *m, uint64_t abs, const char *title,
                      const char *url);
struct estream *edge_stream_new(struct core *c, struct emount *m, const char *encoder,
                                uint64_t session, uint32_t priority);
void edge_mounts_free(struct core *c);
void edge_fill_resume(struct core *c, struct wire_subscribe *s);

/* status.c: JSON of the core's state for GET / (docs/architecture.md §7.7); new references.
 * `listeners` is the HTTP side's count for the mount, placed among the mount's fields. */
json_t *core_mount_json(const struct emount *m, double now, uint32_t listeners);
json_t *core_relays_json(const struct core *c);
json_t *core_counters_json(const struct core *c);
/* status.c: log the `stats` lines of every mount, stream and relay (every EDGE_STATS_EVERY_S). */
void core_log_stats(struct core *c);
/* status.c: the core's Prometheus families (mounts, streams, relay links, counters; names
 * `prefix`…, e.g. "framecast_edge_") appended to `p` (stats.h). Loop thread. */
struct prom;
void core_metrics(const struct core *c, struct prom *p, const char *prefix);

/*
 * carry_core.c: the core across a handoff restart (docs/architecture.md §7.12; records on the
 * control socket, shared/handoff.h). core_carry_send (the old process, its relay links paused
 * and its tick stopped): the counters, then per mount, oldest first, EH_MOUNT with the memfd,
 * its streams, slab table, index and titles; 0, or -1 with errno from handoff_send.
 * core_carry_take (the new one, before core_start's timers run): apply one such record (`fds`
 * are owned: kept or closed); FC_PROTO with *why on a malformed or out-of-order record,
 * FC_NOMEM. core_carry_check: after the last record, every buffer arrived whole.
 */
/* The old edge's loop stands still while it sends (its listeners pause, its relay links stop
 * their heartbeats, declared dead after 3 s): each record waits at most EDGE_HANDOFF_SEND_S for
 * room, and a successor that has not confirmed EDGE_HANDOFF_READY_S after the start is given up. */
#define EDGE_HANDOFF_SEND_S 1.0
#define EDGE_HANDOFF_READY_S 5.0
enum {
    EH_CORE = 16, /* HO_USER */
    EH_MOUNT,
    EH_STREAM,
    EH_SLABS,
    EH_INDEX,
    EH_TITLE,
    EH_LISTEN,    /* edge/edge_handoff.c: a listening socket */
    EH_LISTENER,  /* edge/edge_handoff.c: a listener (edge/http/carry.c) */
    EH_HLS,       /* edge/edge_handoff.c: HLS sessions being joined (analytics/hls_join.h) */
};
int core_carry_send(struct core *c, int ctl);
enum fc_err core_carry_take(struct core *c, uint16_t type, const uint8_t *p, size_t len,
                            const int *fds, int nfds, const char **why);
enum fc_err core_carry_check(struct core *c, const char **why);

#endif
