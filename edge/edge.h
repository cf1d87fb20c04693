/*
 * edge.h - framecast-edge: merge copies from several relays, reorder, keep a rewind buffer per
 * mount, serve listeners over HTTP (docs/architecture.md §5, §6, §7).
 *
 * One event loop. Frames from relay links go into a reorder buffer per stream
 * (mount, encoder, session); the mount's active stream (lowest priority number among the alive
 * ones) feeds the mount's rewind buffer, re-stamped from the sample count. Each listener is a
 * position in that buffer, written with writev straight from the slabs.
 */
#ifndef FC_EDGE_H
#define FC_EDGE_H

#include <ev.h>
#include <http_parser.h>
#include <stdbool.h>
#include <sys/types.h>
#include "link.h"
#include "log.h"
#include "mac.h"
#include "net.h"
#include "alert.h"
#include "align.h"
#include "lane.h"
#include "reorder.h"
#include "rewind.h"
#include "wire.h"

#define EDGE_MAX_RELAYS 16
#define EDGE_MAX_MOUNTS 256
#define EDGE_MAX_STREAMS_PER_MOUNT 16     /* issue 3: a flood of sessions is dropped */
#define EDGE_TICK_S 0.02                  /* reorder deadlines and stream health, 20 ms */
#define EDGE_REQ_MAX 8192                 /* request line + headers; past it: 431 */
#define EDGE_REQ_TIMEOUT_S 10.0           /* an idle half-open request is closed */
#define EDGE_WRITE_MAX (256 * 1024)       /* bytes per writev to one listener */
#define EDGE_STATS_EVERY_S 60.0
#define EDGE_RESYNC_US 1000000            /* output PTS re-based when off by more than 1 s */
#define EDGE_ALIGN_EVERY_S 2.0            /* re-estimate encoder offsets */
#define EDGE_PATCH_WAIT_S 2.0             /* wait this long for a backup to cover a gap */
#define EDGE_START_GRACE_S 2.5            /* --start-grace default: a fresh mount waits this
                                             long for every encoder before output begins (an
                                             encoder 1.7 s late was seen in tests) */
#define EDGE_ALIGN_WAIT_S 6.0             /* dead air: wait this long past --silence-failover
                                             for a trusted offset before splicing by PTS */
#define EDGE_LOUD_RECENT_S 2.0            /* "has sound" = a loud frame this recently */
#define EDGE_TITLES_MAX 256               /* title changes remembered per mount */
#define EDGE_METAINT_DEFAULT 16000        /* icy-metaint, as Icecast sends it */
#define EDGE_HLS_WINDOW 6                 /* segments in a live HLS playlist */
#define EDGE_HLS_GROUPS_MAX 16
#define EDGE_HOST_MAX 96                  /* bytes kept of a request's Host header */
#define EDGE_STATIC_MAX 8                 /* web player files held in memory */
#define EDGE_WAKE_S 0.1                   /* listeners holding little audio (no burst) are
                                             written at most this often as audio arrives */
#define EDGE_WRITE_INTERVAL_S 1.0         /* --write-interval default: a listener holding
                                             seconds of audio is written once a second (bench:
                                             docs/architecture.md §9.4) */
#define EDGE_CADENCE_MARGIN_S 0.5         /* ... if it holds at least the interval + this */
#define EDGE_WHEEL_SLOTS 256              /* timer wheel of EDGE_TICK_S slots: intervals up
                                             to 5.1 s */

/* Headers every HTTP answer carries. */
#define CORS_HEADERS                                                                               \
    "Access-Control-Allow-Origin: *\r\n"                                                           \
    "Access-Control-Allow-Headers: Origin, Accept, X-Requested-With, Content-Type, Icy-MetaData, " \
    "Range\r\n"                                                                                    \
    "Access-Control-Allow-Methods: GET, HEAD, OPTIONS\r\n"                                         \
    "Access-Control-Expose-Headers: Icy-Br, Icy-Description, Icy-Genre, Icy-MetaInt, Icy-Name, "  \
    "Ice-Audio-Info, Icy-Url, Icy-Pub, X-Framecast-Start\r\n"
#define SERVER_HEADER "Server: framecast/1\r\n"

struct edge;
struct emount;

struct list_node {
    struct list_node *prev, *next;
};

struct estream {
    struct emount *mount;              /* owner */
    char encoder[WIRE_ENCODER_MAX + 1];
    uint64_t session;
    uint32_t priority;
    struct reorder ro;                 /* owned */
    struct lane lane;                  /* decided frames, owned */
    double first_rx;                   /* ev_now of the first frame */
    double last_rx;                    /* ev_now of the latest frame (any copy) */
    double healthy_since;              /* ev_now it became healthy, 0 = not healthy */
    double silent_since;               /* ev_now its level fell below the threshold, 0 = sound */
    double loud_last;                  /* ev_now of its last frame with sound */
    int64_t off_us;                    /* content at the reference's PTS p is at p + off_us */
    enum align_result off_how;         /* how off_us was last estimated */
    double off_at;                     /* ev_now of the last good estimate, 0 = none */
    double off_corr;                   /* correlation of that estimate */
    int64_t cand_us;                   /* latest estimate not yet confirmed by a second one */
    uint32_t cand_n;                   /* successive estimates agreeing with cand_us */
    bool first_time;                   /* its encoder never fed this mount's output: it may
                                          take over as soon as aligned (no --failback-after) */
    uint64_t frames_out;               /* frames this stream gave the mount */
    uint64_t patched;                  /* frames it gave to patch another stream's gaps */
    struct estream *next;
};

/* A title and where in the rewind buffer it starts (out_icy.c). */
struct title_change {
    uint64_t abs;             /* buffer position from which it applies */
    uint64_t id;              /* increasing per mount */
    struct msgref *block;     /* ICY metadata block (length byte + text), reference-counted */
};

struct emount {
    char name[WIRE_MOUNT_MAX + 1];
    struct edge *edge;
    struct estream *streams;
    uint32_t n_streams;
    struct estream *active;            /* feeding the buffer, or NULL */
    uint64_t cur_seq;                  /* next seq of `active` to output */
    uint64_t src_end_us;               /* active's PTS where the output so far ends */
    uint64_t last_dur_us;              /* duration of the last output frame */
    double gap_since;                  /* ev_now a gap began waiting for a backup, 0 = none */
    double first_seen;                 /* ev_now the mount's first frame arrived */
    bool wake_pending;                 /* audio appended since listeners were last woken */
    double next_wake;                  /* ev_now of the next wake-up of caught-up listeners */
    double next_align;                 /* ev_now of the next offset estimate */
    struct estream *ref;               /* offsets are relative to this stream */
    char fed[EDGE_MAX_STREAMS_PER_MOUNT][WIRE_ENCODER_MAX + 1]; /* encoders that fed output */
    uint32_t n_fed;
    bool splice_wait_logged;           /* "waiting for a trusted offset" logged */
    struct rewind rw;                  /* owned */
    bool has_audio;                    /* rw holds at least one frame */
    enum fc_codec codec;               /* of the latest output frame */
    uint32_t sample_rate;
    uint8_t channels;
    uint32_t bitrate;                  /* bits/s from the latest frame header */
    uint64_t out_next_pts_us;          /* re-stamped PTS of the next output frame */
    char title[WIRE_META_MAX + 1];
    bool has_station;                  /* station fields below came from the source */
    char st_name[WIRE_STATION_MAX + 1], st_genre[WIRE_STATION_MAX + 1];
    char st_desc[WIRE_STATION_MAX + 1], st_url[WIRE_STATION_MAX + 1];
    uint32_t st_bitrate;               /* kbit/s as the source declared it, 0 = unknown */
    struct title_change titles[EDGE_TITLES_MAX]; /* ring of recent title changes */
    uint32_t titles_head, n_titles;
    uint64_t title_ids;
    double sourceless_since;           /* ev_now no stream was healthy since, 0 = has one */
    bool sourceless_alerted;           /* the sourceless alert went out */
    struct list_node listeners;        /* all listeners of the mount */
    struct list_node waiting;          /* caught-up listeners, woken by the next append */
    struct list_node paced;            /* time-shifted listeners at their real-time limit */
    struct list_node blocked;          /* listeners whose socket is full (--max-lag walk) */
    double next_lag_walk;              /* ev_now of the next --max-lag check of `blocked` */
    uint64_t audio_writes;             /* writev calls for audio (bench: writes/listener-s) */
    uint32_t n_listeners;
    uint64_t frames_out, lost, gaps, switches, patched, failovers, failbacks, discontinuities;
    struct emount *next;
};

struct erelay {
    struct link link;                  /* owned; link.owner = this */
    struct edge *edge;
    struct net_addr addr;
    uint64_t frames;                   /* FRAME messages received */
    uint64_t first_copies;             /* of which were new to the edge */
    bool was_up;
};

enum listener_state { L_REQUEST, L_RESPONSE, L_STREAM };

struct elistener {
    struct edge *edge;
    int fd;
    ev_io rio;                         /* request bytes */
    ev_io wio;                         /* started only while output is pending */
    ev_timer idle;                     /* request timeout */
    enum listener_state state;
    http_parser parser;
    char *req;                         /* request bytes, EDGE_REQ_MAX, freed after parsing */
    uint32_t req_len;
    const char *url;                   /* in req */
    size_t url_len;
    bool head;                         /* HEAD request */
    bool icy;                          /* sent Icy-MetaData: 1 */
    bool wants_html;                   /* Accept: text/html (a browser) */
    char host[EDGE_HOST_MAX];          /* Host header, for absolute URLs in playlists */
    const char *hfield;                /* header being parsed (in req) */
    size_t hfield_len;
    const char *hvalue;
    size_t hvalue_len;
    uint32_t metaint_left;             /* audio bytes until the next ICY block */
    struct msgref *meta;               /* ICY block being sent (reference), or NULL */
    const uint8_t *meta_ptr;           /* bytes of the block being sent, NULL = none */
    uint32_t meta_len, meta_off;
    uint64_t title_sent;               /* id of the last title sent */
    bool done;                         /* message complete */
    char *out;                         /* response bytes pending (owned) */
    uint32_t out_len, out_off;
    struct emount *mount;              /* streaming: which mount */
    uint64_t pos;                      /* streaming: abs position in mount->rw */
    uint64_t end_abs;                  /* download: stop here; 0 = no end */
    bool paced;                        /* time-shifted: real time after the burst */
    double burst_s;                    /* its burst (--burst or ?burst=) */
    bool lim_set;                      /* paced: lim_abs / lim_dur_us are set */
    uint64_t lim_abs;                  /* paced: may be written up to here ... */
    uint64_t lim_dur_us;               /* ... which is this much audio after its start */
    uint64_t start_pts_us;             /* PTS of the first frame served */
    double start_wall;                 /* ev_now when it started */
    uint64_t bytes_sent;
    bool linked;                       /* wlink is on a list (see wlink) */
    struct list_node mlink;            /* in mount->listeners */
    struct list_node wlink;            /* in one of: a wheel slot, mount->waiting, mount->paced,
                                          mount->blocked (out_stream.c) */
    bool closing;                      /* reaped by the check watcher */
    struct elistener *reap_next;
    char peer[64];
};

/* --hls-group NAME=mount1,mount2: a master playlist /hls/NAME.m3u8 */
struct hls_group {
    char name[WIRE_MOUNT_MAX + 1];
    char mounts[8][WIRE_MOUNT_MAX + 1];
    int n_mounts;
};

struct edge_opts {
    struct net_addr listen;
    struct net_addr relays[EDGE_MAX_RELAYS];
    int n_relays;
    double burst_s;                    /* --burst */
    uint64_t reorder_us;               /* --reorder-ms */
    uint64_t rewind_us;                /* --rewind */
    double stream_timeout_s;           /* --stream-timeout */
    double max_skew_s;                 /* --max-skew */
    double max_lag_s;                  /* --max-lag */
    double failback_after_s;           /* --failback-after */
    double start_grace_s;              /* --start-grace */
    double silence_failover_s;         /* --silence-failover, 0 = off */
    double write_interval_s;           /* --write-interval, 0 = write as audio arrives */
    int silence_threshold_db;          /* --silence-threshold, dBFS */
    uint32_t metaint;                  /* --metaint: audio bytes between ICY blocks */
    double hls_segment_s;              /* --hls-segment */
    struct hls_group hls_groups[EDGE_HLS_GROUPS_MAX];
    int n_hls_groups;
    const char *web_root;              /* --web-root: player files, NULL = built-in only */
    double sourceless_after_s;         /* --sourceless-after */
    const char *alert_webhook;         /* --alert-webhook URL or NULL */
    const char *rewind_dir;            /* --rewind-dir or NULL */
    double rewind_save_every_s;        /* --rewind-save-every */
    char node[WIRE_NODE_MAX + 1];
    bool log_json;
};

struct edge_counters {
    uint64_t frames_in, first_copies, skew_drops, stream_drops, listeners_total, http_errors;
};

struct edge {
    struct ev_loop *loop;
    struct log log;
    struct mac_key key;
    struct edge_opts opt;
    struct erelay relays[EDGE_MAX_RELAYS];
    struct emount *mounts;
    uint32_t n_mounts;
    int listen_fd;
    int spare_fd;                      /* closed to accept-and-drop at EMFILE */
    ev_io accept_w;
    ev_timer tick;
    ev_timer stats;
    ev_check reap;
    ev_signal sigint, sigterm;
    struct elistener *reap_list;
    struct list_node wheel[EDGE_WHEEL_SLOTS]; /* listeners to write, by tick (out_stream.c) */
    uint32_t wheel_pos;                /* slot woken next */
    double wheel_next;                 /* ev_now when it is due */
    uint32_t n_listeners;
    struct log_limit ll;
    struct edge_counters c;
    http_parser_settings http;
    struct align_scratch *align;       /* owned scratch for align_estimate() */
    char req_scratch[EDGE_REQ_MAX];    /* requests are read and parsed here (listener.c) */
    struct alerter alert;              /* log lines and webhook posts */
    struct {
        char *data;                    /* file contents, owned; NULL if missing */
        size_t len;
    } statics[EDGE_STATIC_MAX];        /* web player files (out_static.c) */
    ev_timer save_timer;               /* periodic rewind save (persist.c) */
    ev_child save_child;               /* the forked saver */
    pid_t save_pid;                    /* 0 when no save runs */
    double test_now;                   /* unit tests: a fake clock for merge (s); 0 = ev_now */
};

/* The time merge and mount decisions use (s, libev's loop time): ev_now(), or the fake clock a
 * unit test set in e->test_now. Loop thread only. */
static inline double edge_now(const struct edge *e)
{
    return e->test_now > 0 ? e->test_now : ev_now(e->loop);
}

/* list helpers (intrusive, circular, with a head node) */
static inline void list_init(struct list_node *h)
{
    h->prev = h->next = h;
}
static inline void list_add(struct list_node *h, struct list_node *n)
{
    n->next = h->next;
    n->prev = h;
    h->next->prev = n;
    h->next = n;
}
static inline void list_del(struct list_node *n)
{
    n->prev->next = n->next;
    n->next->prev = n->prev;
    n->prev = n->next = n;
}
static inline bool list_empty(const struct list_node *h)
{
    return h->next == h;
}

/* edge.c: start listening, connecting, timers (after opts are set); free after ev_run. */
enum fc_err edge_start(struct edge *e, struct ev_loop *loop);
void edge_free(struct edge *e);

/* relays.c: connect to every --relay. */
enum fc_err edge_relays_start(struct edge *e);
void edge_relays_free(struct edge *e);

/* mount.c */
void edge_frame_in(struct edge *e, const struct wire_frame *f, struct erelay *from);
void edge_tick(struct edge *e);                 /* release due frames, stream health */

/* merge.c: move decided frames into lanes, choose the stream, splice, patch, output. */
void merge_pump(struct edge *e, struct emount *m);
/* merge.c: true if `encoder` has fed the output of `m` (its next session is a returning
 * primary, held back by --failback-after, not a new encoder). */
bool merge_encoder_fed(const struct emount *m, const char *encoder);
/* merge.c: true if some stream of `m` is healthy (alive, not dead air). */
bool merge_has_source(struct edge *e, struct emount *m);
struct emount *edge_mount_find(struct edge *e, const char *name, size_t len);
struct emount *edge_mount_new(struct edge *e, const char *name, enum fc_codec codec);
struct estream *edge_stream_new(struct edge *e, struct emount *m, const char *encoder,
                                uint64_t session, uint32_t priority);
void edge_mounts_free(struct edge *e);
void edge_fill_resume(struct edge *e, struct wire_subscribe *s);

/* listener.c */
enum fc_err edge_http_start(struct edge *e);
void edge_http_free(struct edge *e);
void listener_close(struct elistener *l, const char *why);

/* out_stream.c (loop thread): write audio (and a pending response head, and ICY blocks) to `l`
 * from its position; parks it when caught up, closes it on error or at a download's end. */
void listener_write_audio(struct elistener *l);
void edge_wake_listeners(struct emount *m);     /* new audio appended */
void edge_wake_paced(struct emount *m);         /* time passed: paced listeners may go on */
void edge_wake_wheel(struct edge *e);           /* every tick: the wheel's due slots */
void edge_check_lag(struct emount *m);          /* blocked listeners past --max-lag (1/s) */
/* Queue a whole response; the connection closes once it is written. `extra` = more headers. */
void listener_respond(struct elistener *l, int status, const char *ctype, const char *body,
                      size_t body_len, const char *extra);
void listener_respond_error(struct elistener *l, int status, const char *msg);
const char *listener_content_type(enum fc_codec codec);
/* Send `head` (status line + headers), then `prefix` (body bytes, e.g. an ID3 tag), then the
 * mount's buffer from l->pos (to l->end_abs if set). HEAD requests get `head` only. */
void listener_serve_span(struct elistener *l, struct emount *m, const char *head, size_t head_len,
                         const uint8_t *prefix, size_t prefix_len);

/* out_hls.c (RFC 8216 packed audio) */
void hls_playlist(struct elistener *l, struct emount *m, double dvr_s);
void hls_segment(struct elistener *l, struct emount *m, uint64_t seg);
void hls_master(struct elistener *l, const char *group, size_t len);

/* out_playlist.c */
void playlist_pls(struct elistener *l, struct emount *m);
void playlist_m3u(struct elistener *l, struct emount *m);
void playlist_status_json(struct elistener *l);

/* out_static.c: the web player's files, loaded at start. static_serve() answers and returns
 * true if `path` is one of them. */
void static_load(struct edge *e);
void static_free(struct edge *e);
bool static_serve(struct elistener *l, const char *path, size_t len);

/* router.c: answer a complete request. */
void edge_route(struct elistener *l);

/* out_icy.c */
void icy_title_changed(struct emount *m, const char *title, const char *url);
void icy_titles_free(struct emount *m);
/* Begin the ICY block due at buffer position `abs` for `l`: sets l->meta, meta_ptr, meta_len,
 * meta_off = 0 (a reference, released by icy_release()) and l->title_sent. */
void icy_meta_begin(struct elistener *l, uint64_t abs);
void icy_release(struct elistener *l);

/* api.c: JSON for GET / and GET /<mount>/rewind; return malloc'd text. */
char *edge_api_mounts_json(struct edge *e);
char *edge_api_rewind_json(struct emount *m);

#endif
