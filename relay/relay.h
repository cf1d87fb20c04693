/*
 * relay.h - framecast-relay: verify, dedupe, catch-up window, fan out (docs/architecture.md §4).
 *
 * One event loop. Frames arrive on TCP links (shims pushing, --upstream relays) and UDP sockets
 * (unicast or multicast). Each stream (mount, encoder, session) has a ring of RELAY_RING slots
 * indexed by seq: same seq = duplicate, an older seq than the slot holds = stale. The ring also
 * holds the last --catchup seconds of frames (as reference-counted wire messages, forwarded
 * verbatim) for subscribers that resume.
 */
#ifndef FC_RELAY_H
#define FC_RELAY_H

#include <ev.h>
#include <stdbool.h>
#include <sys/types.h>
#include "ho_accept.h"
#include "alert.h"
#include "link.h"
#include "log.h"
#include "mac.h"
#include "metrics_http.h"
#include "net.h"
#include "wire.h"

#define RELAY_RING 8192                 /* slots per stream (power of two): > 2 min of frames */
#define RELAY_MAX_SEQ_LEAP (64u * RELAY_RING) /* a seq this far ahead of the newest is bogus */
#define RELAY_MAX_SESSIONS_PER_MOUNT 16 /* issue 3: a flood of sessions is dropped */
#define RELAY_MAX_STREAMS 1024
#define RELAY_STREAM_BUCKETS 2048       /* hash buckets (power of two, 2 x RELAY_MAX_STREAMS) */
#define RELAY_MAX_LISTEN 16
#define RELAY_MAX_UPSTREAMS 16
#define RELAY_UDP_BATCH 32              /* datagrams per recvmmsg */
#define RELAY_UDP_DGRAM_MAX 9216        /* bigger than any FRAME message we send */
#define RELAY_UDP_RCVBUF (8 << 20)
#define RELAY_UDP_ROUNDS 64             /* recvmmsg calls per read-out, at most */
/* After datagrams were read, the socket is read again this much later rather than at the next
 * datagram: a relay fed by many senders wakes once per millisecond, not once per datagram, and
 * fans each batch out in one writev per subscriber (issue 9: a third less CPU per frame at high
 * rates). A datagram arriving at an idle relay is still read at once. */
#define RELAY_UDP_COALESCE_S 0.001
#define RELAY_SUB_MAX_MSGS 65536        /* send queue cap in messages per subscriber */
#define RELAY_STATS_EVERY_S 60.0

struct relay;

struct rslot {
    uint64_t seq;      /* seq held, valid when m != NULL */
    struct msgref *m;  /* the message as received, length prefix included */
    double rx;         /* ev_now when it arrived */
};

struct rstream {
    /* Read for every frame first (lookup, classify), so they share the first cache line. */
    uint64_t hash;         /* stream_hash(mount, encoder, session) */
    struct rstream *hnext; /* in relay->buckets[hash & (RELAY_STREAM_BUCKETS - 1)] */
    uint64_t session;
    struct rslot *ring;    /* RELAY_RING slots, owned */
    uint64_t max_seq;      /* highest seq accepted */
    uint64_t expire_seq;   /* relay_expire() resumes here: no lower seq holds a message */
    uint64_t frames;       /* accepted (first copies) */
    double last_rx;        /* ev_now of the last accepted frame */
    char mount[WIRE_MOUNT_MAX + 1];
    char encoder[WIRE_ENCODER_MAX + 1];
    uint32_t priority;
    uint64_t dups;         /* duplicates dropped */
    uint64_t stale;        /* older than the ring window or the slot: dropped */
    struct rstream *next;  /* in relay->streams */
};

/* A TCP peer: an accepted shim/edge/relay connection, or an --upstream relay we subscribe to. */
struct rpeer {
    struct link link;      /* owned; link.owner = this */
    struct relay *relay;   /* borrowed */
    bool subscribed;       /* sent SUBSCRIBE: receives frames */
    bool all_mounts;       /* subscribed to every mount */
    uint32_t n_mounts;
    char (*mounts)[WIRE_MOUNT_MAX + 1]; /* owned, n_mounts entries */
    bool closing;          /* reap in the check watcher */
    bool upstream;         /* outbound --upstream link (never reaped) */
    uint64_t frames_in;    /* FRAME messages received from this peer */
    uint64_t frames_out;   /* frames queued to this peer */
    struct rpeer *next;
};

struct rlisten {
    ev_io io;               /* accept (TCP) or recvmmsg (UDP); UDP: stopped while coalescing */
    ev_timer coalesce;      /* UDP: the next read-out, RELAY_UDP_COALESCE_S after the last */
    int fd;
    struct net_addr addr;
    bool serve;             /* a --serve socket (subscribers) rather than --ingest */
    struct relay *relay;
    struct sockaddr_storage peer_sa; /* UDP: sender of the last datagram */
    socklen_t peer_salen;            /* bytes of peer_sa in use, 0 before the first */
    char peer_name[96];              /* UDP: peer_sa as text, for log lines */
};

struct relay_opts {
    char node[WIRE_NODE_MAX + 1];
    double catchup_s;          /* --catchup, seconds */
    uint64_t max_backlog_bytes;/* --max-backlog */
    double max_skew_s;         /* --max-skew: PTS replay guard */
    bool log_json;
    const char *alert_webhook;    /* --alert-webhook URL or NULL */
    bool has_metrics;             /* --metrics given */
    struct net_addr metrics;      /* --metrics HOST:PORT: GET /metrics (Prometheus) */
    const char *control_path;     /* --control PATH: handoff restarts are offered there */
    const char *takeover_path;    /* --takeover PATH: take over the relay serving PATH */
};

struct relay_counters {
    uint64_t frames_in;     /* FRAME messages seen (all copies) */
    uint64_t frames_fwd;    /* first copies accepted */
    uint64_t dups;
    uint64_t stale;
    uint64_t bad_tags;      /* UDP; TCP ones are in each link */
    uint64_t other_key;     /* UDP frames verified with a key other than the first (§2.2) */
    uint64_t bad_msgs;
    uint64_t skew_drops;
    uint64_t session_drops; /* new sessions refused (flood) */
    uint64_t backlog_kicks; /* subscribers disconnected for --max-backlog */
};

struct relay {
    struct ev_loop *loop;
    struct log log;
    struct mac_keyring keys;      /* --key: the first tags HELLO etc.; frames pass verbatim */
    struct mac_key_files key_files; /* --key FILE..., read again on SIGHUP */
    struct relay_opts opt;
    struct rlisten listen[RELAY_MAX_LISTEN];
    int n_listen;
    struct net_addr upstream_addr[RELAY_MAX_UPSTREAMS];
    int n_upstream;
    struct rpeer *peers;          /* all TCP peers */
    struct rstream *streams;
    uint32_t n_streams;
    struct rstream *buckets[RELAY_STREAM_BUCKETS]; /* the same streams by hash: O(1) lookup */
    struct msgpool pool;          /* stored frames are carved from it (no malloc per frame) */
    double wall_at;               /* ev_now when wall_us was read */
    uint64_t wall_us;             /* clock_wall_us() once per loop iteration (PTS guard) */
    ev_check reap;                /* frees closing peers */
    ev_timer tick;                /* every second: expire catch-up, drop idle streams */
    ev_timer stats;               /* counters to the log every RELAY_STATS_EVERY_S */
    ev_signal sigint, sigterm;
    ev_signal sighup;             /* re-read the --key files */
    struct wire_decoder udp_dec;  /* for datagrams */
    struct wire_msg *udp_msg;     /* scratch, owned */
    uint8_t *udp_bufs;            /* RELAY_UDP_BATCH * RELAY_UDP_DGRAM_MAX, owned */
    struct log_limit udp_ll;
    struct relay_counters c;
    bool inited;                  /* relay_start() got as far as the decoder and alerter */
    struct alerter alert;         /* relay_up / relay_down of --upstream links */
    struct metrics_http metrics;  /* --metrics */
    /* Handoff restart (handoff_send.c, handoff_take.c, docs/architecture.md §4.7). */
    int control_fd;               /* --control listening socket, -1 without */
    struct ho_accept control_acc; /* its connections, one takeover at a time */
    ino_t control_ino;            /* the socket file's inode: unlinked at exit only if still ours */
    int metrics_fd;               /* taken over: the --metrics socket to use, -1 = bind it */
    struct rpeer *upstream_peer[RELAY_MAX_UPSTREAMS]; /* taken over: --upstream links adopted */
    uint32_t takeover_old_pid;    /* taken over: the relay we took over from */
    double takeover_end_s;        /* taken over: mono_s() when its HO_END arrived */
};

/* Set up sockets and timers (after opts, listen[] and upstream_addr[] are filled). Exit-worthy
 * failures are logged; returns FC_IO then. */
enum fc_err relay_start(struct relay *r, struct ev_loop *loop);

/* metrics.c: the counters as `stats` log lines; as Prometheus text (metrics_render_fn,
 * ctx = the relay: malloc'd text, NULL out of memory). */
void relay_log_stats(struct relay *r);
char *relay_metrics(void *ctx, size_t *len);

/* Stop everything and free (after ev_run returns). */
void relay_free(struct relay *r);

/* streams.c: accept one verified FRAME from `from` (NULL for UDP); `raw` is body + tag. */
void relay_frame_in(struct relay *r, const struct wire_frame *f, const uint8_t *raw, size_t len,
                    struct rpeer *from, const char *peer_name);

/* streams.c: queue to `p` the catch-up frames its SUBSCRIBE asks for. */
void relay_catchup(struct relay *r, struct rpeer *p, const struct wire_subscribe *s);

/* streams.c: expire frames older than --catchup and streams idle for long. */
void relay_expire(struct relay *r);

/* streams.c: free all streams. */
void relay_streams_free(struct relay *r);

/* peers.c: true if peer `p` wants frames of `mount`. */
bool rpeer_wants(const struct rpeer *p, const char *mount);

/* peers.c: queue one frame to subscriber `p`; disconnects it past --max-backlog. */
void rpeer_send_frame(struct rpeer *p, struct msgref *m);

/* streams.c: a new, empty stream (no limits checked, logged); NULL out of memory. */
struct rstream *relay_stream_new(struct relay *r, const char *mount, const char *encoder,
                                 uint64_t session, uint32_t priority);

/* streams.c: the stream (mount, encoder, session), or NULL. */
struct rstream *relay_stream_find(struct relay *r, const char *mount, const char *encoder,
                                  uint64_t session);

/* peers.c: a new peer in r->peers (no connection yet): an --upstream link or an inbound one.
 * NULL out of memory. rpeer_drop() unlinks and frees one (stopping its link). */
struct rpeer *rpeer_new(struct relay *r, bool upstream);
void rpeer_drop(struct relay *r, struct rpeer *p);

/* peers.c / ingest.c: socket set-up. A listen[] entry whose fd is already open (taken over) is
 * used as it is. */
enum fc_err relay_peers_start(struct relay *r);
enum fc_err relay_udp_start(struct relay *r, struct rlisten *l);
void relay_peers_free(struct relay *r);

/*
 * handoff_send.c, handoff_take.c: handoff restart (docs/architecture.md §4.7).
 *
 * Old side: relay_control_start() listens on --control (or adopts the socket taken over); a
 * takeover is served synchronously inside the accept callback: the loop does not run while the
 * state is sent, so nothing is read from or written to any socket. On HO_READY the process exits
 * 0 from there; on any failure it logs and returns to the loop as if nothing happened.
 *
 * New side: relay_takeover_recv() connects to --takeover, receives everything into `r` (before
 * relay_start(), which then uses the sockets taken over instead of binding);
 * relay_takeover_confirm() sends HO_READY (the loop may run once it returned FC_OK);
 * relay_takeover_fail() sends HO_FAIL. All log what went wrong.
 */
#define RELAY_HANDOFF_VERSION 1 /* payload layout of the relay's records (handoff_rec.h) */

enum fc_err relay_control_start(struct relay *r);
void relay_control_stop(struct relay *r);
enum fc_err relay_takeover_recv(struct relay *r, int *ctl_fd);
enum fc_err relay_takeover_confirm(struct relay *r, int ctl_fd);
void relay_takeover_fail(struct relay *r, int ctl_fd, const char *why);

/* The record parser of the new side, alone (tests/fuzz/fuzz_relay_handoff.c): feed each record
 * (ownership of `fds` passes: adopted or closed, even on error), then end. FC_PROTO with `*why`
 * on a bad record; relay_ho_in_free() then releases what was not adopted into `r`. */
struct relay_ho_in;
struct relay_ho_in *relay_ho_in_new(struct relay *r);
enum fc_err relay_ho_in_record(struct relay_ho_in *in, uint16_t type, const uint8_t *p,
                               size_t len, const int *fds, int nfds, const char **why);
enum fc_err relay_ho_in_end(struct relay_ho_in *in, const char **why);
void relay_ho_in_free(struct relay_ho_in *in);

#endif
