/*
 * http.h - the edge's HTTP side: listeners, routes and outputs (docs/architecture.md §7).
 *
 * Reads the core only through its mount view (edge/core/core.h): a listener is a position in a
 * mount's rewind buffer, written with writev straight from the slabs. Per-mount listener state
 * (struct hmount) hangs off emount.http; the core calls edge_http_appended / edge_http_tick /
 * edge_http_mount_freed through struct edge_hooks.
 */
#ifndef FC_HTTP_H
#define FC_HTTP_H

#include <http_parser.h>
#include <sys/types.h>
#include <sys/uio.h>
#include "../core/core.h"

#define EDGE_REQ_MAX 8192                 /* request line + headers; past it: 431 */
#define EDGE_REQ_TIMEOUT_S 10.0           /* an idle half-open request is closed */
#define EDGE_WRITE_MAX (256 * 1024)       /* bytes per writev to one listener */
#define EDGE_METAINT_DEFAULT 16000        /* icy-metaint, as Icecast sends it */
#define EDGE_HLS_WINDOW 6                 /* segments in a live HLS playlist */
#define EDGE_HLS_GROUPS_MAX 16
#define EDGE_HOST_MAX 96                  /* bytes kept of a request's Host header */
#define EDGE_STATIC_MAX 12                /* web player files held in memory */
#define EDGE_BODY_MAX 4096                /* request body (admin API); past it: 413 */
#define EDGE_UA_MAX 96                    /* bytes kept of a listener's User-Agent */
#define API_TOKENS_MAX 32                 /* --api-token-file lines */
#define API_TOKEN_NAME_MAX 32
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

struct ehttp;
struct analytics;
struct ssl_st;
struct an_session;
struct an_hls_hit;
struct api_pending;
struct http_snap;
struct http_mount_snap;
struct stream_req;
struct clip;
struct ad_wait;
struct preroll;

struct list_node {
    struct list_node *prev, *next;
};

/* The HTTP side's state of one mount (emount.http), made when its first listener streams. */
struct hmount {
    struct emount *m;                  /* the core's mount (view) */
    struct ehttp *http;
    struct list_node listeners;        /* all listeners of the mount */
    struct list_node waiting;          /* caught-up listeners, woken by the next append */
    struct list_node paced;            /* time-shifted listeners at their real-time limit */
    struct list_node blocked;          /* listeners whose socket is full (--max-lag walk) */
    bool wake_pending;                 /* audio appended since listeners were last woken */
    double next_wake;                  /* ev_now of the next wake-up of caught-up listeners */
    double next_lag_walk;              /* ev_now of the next --max-lag check of `blocked` */
    uint64_t audio_writes;             /* writev calls for audio (bench: writes/listener-s) */
    uint32_t n_listeners;
    uint32_t n_icy;                    /* of which asked for ICY metadata */
    struct hmount *next;               /* in ehttp.hmounts */
};

enum listener_state { L_REQUEST, L_RESPONSE, L_STREAM };

struct elistener {
    struct ehttp *http;
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
    const char *auth;                  /* Authorization value (in the parse buffer), routing only */
    size_t auth_len;
    const char *body;                  /* request body (in the parse buffer), routing only */
    size_t body_len;
    bool too_big;                      /* Content-Length over EDGE_BODY_MAX: 413 */
    char ua[EDGE_UA_MAX];              /* User-Agent, truncated */
    uint64_t id;                       /* (worker << 40) | n: names it in the admin API */
    struct api_pending *pending;       /* an admin API answer waiting for the workers */
    struct ssl_st *ssl;                /* HTTPS (tls.c), NULL = plain */
    bool tls_ready;                    /* handshake done */
    bool tls_ktls;                     /* the kernel encrypts: writev straight from the slabs */
    bool tls_want_write;               /* the last TLS call waits for writability */
    uint32_t tls_retry;                /* bytes a failed SSL_write must be retried with */
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
    struct hmount *hm;                 /* streaming: its HTTP state */
    uint64_t pos;                      /* streaming: abs position in mount->rw */
    uint64_t end_abs;                  /* download: stop here; 0 = no end */
    bool paced;                        /* time-shifted: real time after the burst */
    double burst_s;                    /* its burst (--burst or ?burst=) */
    bool lim_set;                      /* paced: lim_abs / lim_dur_us are set */
    uint64_t lim_abs;                  /* paced: may be written up to here ... */
    uint64_t lim_dur_us;               /* ... which is this much audio after its start */
    uint64_t start_pts_us;             /* PTS of the first frame served */
    double start_wall;                 /* ev_now when it started */
    double accepted;                   /* ev_time() at accept, 0 once the TTFB is counted */
    uint64_t bytes_sent;
    double preroll_s;                  /* seconds of preroll clip sent before live (analytics) */
    double timeshift_s;                /* seconds behind live where it started (0 = live) */
    bool hls_seg;                      /* an HLS segment request (sessions.c joins them) */
    char play_sid[40];                 /* X-Playback-Session-Id or ?sid= (HLS sessions) */
    struct clip *pre;                  /* preroll clip being sent before live (a reference), or
                                          NULL (preroll.c) */
    uint32_t pre_off;                  /* bytes of its plain or ICY rendering sent */
    struct ad_wait *ad;                /* its ad server request, then its impressions (adfetch.c) */
    uint64_t pre_key;                  /* once-per-session key of the client after a preroll */
    bool pre_done;                     /* the preroll decision is made (after an ad request) */
    bool linked;                       /* wlink is on a list (see wlink) */
    struct list_node mlink;            /* in hm->listeners */
    struct list_node wlink;            /* in one of: a wheel slot, hm->waiting, hm->paced,
                                          hm->blocked (out_stream.c) */
    bool closing;                      /* reaped by the check watcher */
    bool paused;                       /* handed over in a handoff, not yet confirmed (carry.c) */
    struct list_node alink;            /* in ehttp.all */
    struct elistener *reap_next;
    char peer[64];
};

/* --hls-group NAME=mount1,mount2: a master playlist /hls/NAME.m3u8 */
struct hls_group {
    char name[WIRE_MOUNT_MAX + 1];
    char mounts[8][WIRE_MOUNT_MAX + 1];
    int n_mounts;
};

struct http_opts {
    struct net_addr listen;            /* --listen */
    double burst_s;                    /* --burst */
    double max_lag_s;                  /* --max-lag */
    double write_interval_s;           /* --write-interval, 0 = write as audio arrives */
    uint32_t metaint;                  /* --metaint: audio bytes between ICY blocks */
    double hls_segment_s;              /* --hls-segment */
    struct hls_group hls_groups[EDGE_HLS_GROUPS_MAX];
    int n_hls_groups;
    const char *web_root;              /* --web-root: player files, NULL = built-in only */
    const char *api_token_file;        /* --api-token-file, NULL = reads on loopback only */
    bool has_tls;                      /* --listen-tls given */
    struct net_addr listen_tls;        /* --listen-tls: HTTPS for listeners */
    const char *tls_cert, *tls_key;    /* --tls-cert, --tls-key (PEM) */
    bool analytics_raw_ip;             /* --analytics-raw-ip: sessions keep the address */
    double analytics_min_s;            /* --analytics-min-s: shorter sessions are flagged */
};

/* An admin API token (admin.c): only a hash of it is kept; compared in constant time. */
struct api_token {
    char name[API_TOKEN_NAME_MAX + 1];
    uint8_t hash[32];                  /* BLAKE2b-256 of the token */
    bool ro;                           /* read-only: 403 on writes */
};

#define HTTP_TTFB_BUCKETS 11        /* upper bounds in http_ttfb_le (metrics.c), + one over */

/* The HTTP side's counters (one set per process; the core sums the workers'). Plain data: a
 * worker sends it whole in WREC_COUNTS. Listed for JSON and /metrics in metrics.c. */
struct http_counters {
    uint64_t listeners_total;          /* connections accepted */
    uint64_t http_errors;              /* answers with status >= 400 */
    uint64_t bytes_sent;               /* audio, ICY and response bytes to streaming listeners */
    uint64_t hls_segments;             /* HLS segments answered */
    uint64_t prerolls;                 /* preroll clips begun (preroll.c) */
    uint64_t preroll_failures;         /* ad requests that gave no preroll (adfetch.c) */
    uint64_t closed_client, closed_lag, closed_done, closed_error, closed_shutdown;
                                       /* streaming listeners closed, by reason */
    uint64_t ttfb[HTTP_TTFB_BUCKETS + 1]; /* accept → first response byte written, by bucket */
    double ttfb_sum_s;
};

struct ehttp {
    struct core *core;                 /* the mount view (read-only), set before start */
    struct ev_loop *loop;
    struct log *log;                   /* the core's */
    struct http_opts opt;
    struct hmount *hmounts;            /* every mount's HTTP state, owned */
    int listen_fd;
    int spare_fd;                      /* closed to accept-and-drop at EMFILE */
    ev_io accept_w;
    ev_check reap;
    struct elistener *reap_list;
    struct list_node wheel[EDGE_WHEEL_SLOTS]; /* listeners to write, by tick (out_stream.c) */
    uint32_t wheel_pos;                /* slot woken next */
    double wheel_next;                 /* http_now when it is due */
    double test_now;                   /* unit tests: a fake clock (s); 0 = ev_now */
    uint32_t n_listeners;
    struct list_node all;              /* every connection (elistener.alink) */
    struct http_counters c;
    /* ---- analytics (sessions.c); NULL hooks = analytics off, nothing recorded ---- */
    void (*session_out)(void *ctx, const struct an_session *s); /* a stream session ended */
    void (*hls_hit)(void *ctx, const struct an_hls_hit *hit);   /* an HLS request was answered */
    void *session_ctx;
    uint8_t client_key[32];            /* keys the client address hash (sessions_init) */
    /* ---- edge --workers (edge/workers.c, edge/worker.c); zero in a single process ---- */
    uint32_t worker;                   /* this process's worker number (1..N), 0 = not a worker */
    char worker_header[40];            /* "X-Framecast-Worker: N\r\n" in a worker, else "" */
    uint32_t remote_listeners;         /* the core process: connections on the workers */
    /* A worker: hand the request `req` (`len` bytes, as received) of `l` to the core process,
     * which answers it (JSON of the core's state); true if handed over (l is closed then). */
    bool (*forward)(void *ctx, struct elistener *l, const char *req, size_t len);
    void *forward_ctx;
    /* The core process: more members for GET /'s JSON ("workers"), new reference or NULL. */
    json_t *(*extra_json)(void *ctx);
    void *extra_ctx;
    /* The core process: the workers' snapshots for /metrics (workers.c); return how many were
     * written (at most `max`). ctx = extra_ctx. */
    size_t (*remote_snaps)(void *ctx, struct http_snap *out, size_t max);
    size_t (*remote_mount_snaps)(void *ctx, struct http_mount_snap *out, size_t max);
    uint64_t next_id;                  /* listener ids handed out */
    void *tls_ctx;                     /* SSL_CTX for --listen-tls (tls.c), NULL = none */
    int tls_fd;                        /* its listening socket, -1 = none */
    ev_io tls_accept_w;
    uint8_t tls_scratch[16384];        /* records are assembled here (tls.c) */
    struct api_token tokens[API_TOKENS_MAX]; /* --api-token-file (admin.c) */
    int n_tokens;
    struct api_pending *pendings;      /* admin answers waiting for the workers (admin.c) */
    struct analytics *an;              /* the core process: the analytics store (NULL = off),
                                          for /api/v1/analytics, GET / and /metrics */
    uint32_t next_query;               /* their ids */
    /* The core process: ask every worker about listeners (admin.c → workers.c): kind
     * API_QUERY_LIST (of `mount`, "" = all) or API_QUERY_KICK (listener `id`); returns the
     * workers asked. Replies come back through api_query_reply / api_query_done. */
    uint32_t (*query_workers)(void *ctx, uint32_t query, int kind, const char *mount, uint64_t id);
    const char *req_cur;               /* the request being routed (listener.c) ... */
    size_t req_cur_len;                /* ... and its length */
    http_parser_settings parser;
    char req_scratch[EDGE_REQ_MAX];    /* requests are read and parsed here (listener.c) */
    struct preroll *pre;               /* --preroll / --preroll-url (preroll.c), NULL = none */
    struct {
        char *data;                    /* file contents, owned; NULL if missing */
        size_t len;
    } statics[EDGE_STATIC_MAX];        /* web player files (out_static.c) */
};

/* The HTTP side's time (s): the loop's ev_now, or a unit test's fake clock in h->test_now.
 * Loop thread only. */
static inline double http_now(const struct ehttp *h)
{
    return h->test_now > 0 ? h->test_now : ev_now(h->loop);
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

/* listener.c: listen on --listen (h->core, h->loop, h->log and h->opt set, listen_fd and
 * spare_fd -1): edge_http_init() then edge_http_listen() on a new socket. FC_IO if it cannot
 * listen (logged). edge_http_free closes every listener and frees every hmount. */
enum fc_err edge_http_start(struct ehttp *h);
/* listener.c: set up parser callbacks, wheel and reaping, without accepting. */
void edge_http_init(struct ehttp *h);
/* listener.c: accept listeners on `fd` (a listening socket, owned from now on). */
void edge_http_listen(struct ehttp *h, int fd);
/* listener.c: take over a connection accepted elsewhere (a worker's forward): `fd` (owned),
 * `peer` its address as text, `req` / `len` the request bytes already read from it, which are
 * parsed and routed at once. */
void edge_http_adopt(struct ehttp *h, int fd, const char *peer, const char *req, size_t len);
void edge_http_free(struct ehttp *h);
void listener_close(struct elistener *l, const char *why);
/* listener.c: listeners of `m` here plus, in the core process, on the workers. */
uint32_t edge_http_listeners(const struct emount *m);

/* out_stream.c: the struct edge_hooks members (ctx = the struct ehttp). appended: mark the
 * mount's caught-up listeners due (written from the tick, every EDGE_WAKE_S at most); tick:
 * write the due ones, the paced ones real time allows, the wheel's due slots, and check blocked
 * listeners against --max-lag (once a second per mount); mount_freed: release m->http. */
void edge_http_appended(void *ctx, struct emount *m);
void edge_http_tick(void *ctx);
void edge_http_mount_freed(void *ctx, struct emount *m);
/* listener.c: a connection on socket `fd` (owned) from `sa` (or named `peer`), reading its
 * request (idle timeout running); NULL when out of memory (fd closed). */
struct elistener *listener_accept(struct ehttp *h, int fd, const struct sockaddr *sa,
                                  const char *peer);
/* listener.c: parse the `len` request bytes in `buf` (all received so far) and route the request
 * if complete; an incomplete one stays in L_REQUEST (the caller keeps the bytes). */
void listener_parse(struct elistener *l, char *buf, size_t len);
/* out_stream.c: take `l` off whichever wait list it is on. */
void listener_unlink_wait(struct elistener *l);

/*
 * carry.c: listeners across a handoff restart (docs/architecture.md §7.12). carry_can: `l` can be
 * carried (not closing, not TLS, no admin answer pending, pending response bytes under
 * CARRY_OUT_MAX). carry_pause: stop its watchers and take it off every list (state kept; it no
 * longer counts among the mount's listeners). carry_resume undoes that (the handoff failed).
 * carry_export: its state into `b` (request bytes so far, response bytes pending, position,
 * pacing, ICY phase and half-sent block, bytes sent, id). carry_adopt: a listener from such a
 * record and its socket `fd` (owned; closed on error): FC_PROTO with *why (a malformed record, an
 * unknown mount, a position outside the buffer), FC_NOMEM. An adopted streaming listener is
 * written at once from its position. Loop thread.
 */
#define CARRY_OUT_MAX (32 * 1024)
struct ho_buf;
bool carry_can(const struct elistener *l);
void carry_pause(struct elistener *l);
void carry_resume(struct elistener *l);
void carry_export(const struct elistener *l, struct ho_buf *b);
enum fc_err carry_adopt(struct ehttp *h, int fd, const uint8_t *p, size_t len, const char **why);

/* out_stream.c: the HTTP state of `m`, made on first use; NULL when out of memory. */
struct hmount *hmount_of(struct ehttp *h, struct emount *m);

/* out_stream.c (loop thread): write audio (and a pending response head, and ICY blocks) to `l`
 * from its position; parks it when caught up, closes it on error or at a download's end. */
void listener_write_audio(struct elistener *l);
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
void static_load(struct ehttp *h);
void static_free(struct ehttp *h);
bool static_serve(struct elistener *l, const char *path, size_t len);

/* router.c: answer a complete request. */
void edge_route(struct elistener *l);
/* router.c: stream `m` to `l` as `rq` asks (live, time-shifted or a download); 416 when the time
 * is not held. preroll.c calls it again once an ad request ended. */
void stream_start(struct elistener *l, struct emount *m, const struct stream_req *rq);

/* out_icy.c: begin the ICY block due at buffer position `abs` for `l` (the title that applies
 * there, from the mount's titles, or a lone zero byte if `l` already has it): sets l->meta,
 * meta_ptr, meta_len, meta_off = 0 (a reference, released by icy_release()) and l->title_sent. */
void icy_meta_begin(struct elistener *l, uint64_t abs);
void icy_release(struct elistener *l);

/* What /metrics reports of one process's HTTP side (metrics.c); the core process gets the
 * workers' from workers.c (h->remote_snaps). */
struct http_snap {
    uint32_t worker;                   /* 0 = the process serving listeners itself */
    bool up;
    uint32_t restarts;
    uint32_t connections;              /* open HTTP connections */
    double cpu_s;                      /* the process's CPU time (s), resident memory (bytes), */
    uint64_t rss_bytes;                /* open fds (shared/stats.h proc_self) */
    uint32_t fds;
    struct http_counters c;
};
struct http_mount_snap {
    uint32_t worker;
    const struct emount *m;
    uint32_t listeners, icy;
};

/* metrics.c: the Prometheus text for GET /metrics (the core's families, the HTTP side's with a
 * `worker` label, the process's); malloc'd, NULL out of memory. */
char *edge_http_metrics(struct ehttp *h, size_t *len);

/* admin.c: the admin API (docs/architecture.md §7.10). */
enum { API_QUERY_LIST = 1, API_QUERY_KICK = 2, API_QUERY_AN_FIGURES = 3, API_QUERY_AN_SESSIONS = 4 };
/* One listener as the API lists it (also the worker → core record, packed). */
struct api_listener {
    uint64_t id, pos, bytes;
    double behind_s, connected_s;
    uint8_t icy;
    char mount[WIRE_MOUNT_MAX + 1];
    char peer[64];
    char ua[EDGE_UA_MAX];
} __attribute__((packed));
/* api_tokens.c: BLAKE2b-256 of a token's `len` bytes. */
void api_token_hash(const char *tok, size_t len, uint8_t out[32]);
/* api_tokens.c: load --api-token-file into h->tokens: false with *why set on a bad file (a
 * line not "NAME TOKEN" or "NAME TOKEN ro", a name over API_TOKEN_NAME_MAX bytes, a token not of
 * 16..254 bytes, a line over 510 bytes, more than API_TOKENS_MAX lines, no token at all); comments start with '#'. */
bool admin_load_tokens(struct ehttp *h, const char *path, char *why, size_t why_len);
/* Answer `l` if its path is under /api/; true if it was. */
bool admin_route(struct elistener *l, const char *path, size_t path_len, const char *query,
                 size_t query_len);
/* The listeners of this process (of `mount`, "" = all) into out (max); returns the count. */
size_t admin_local_listeners(struct ehttp *h, const char *mount, struct api_listener *out,
                             size_t max);
/* Close this process's listener `id` (kicked); false if there is none. */
bool admin_local_kick(struct ehttp *h, uint64_t id);
/* A worker's answer to query `query`: n listeners, or the end (kick: found or not). */
void api_query_reply(struct ehttp *h, uint32_t query, const struct api_listener *ls, size_t n);
void api_query_done(struct ehttp *h, uint32_t query, bool found);
/* listener.c: `l` is closing: forget its pending admin answer. */
void admin_forget(struct elistener *l);

/* tls.c: HTTPS (docs/architecture.md §7.11). tls_ctx_new: an SSL_CTX (TLS 1.2+) from PEM files,
 * NULL with *why; tls_reload: read h->opt's files again (SIGHUP), keeping the old ones on error.
 * tls_start: SSL for l->fd. tls_handshake: 1 done, 0 wait (l->tls_want_write says for what), -1
 * failed. tls_read / tls_write / tls_writev: like read / write / writev (-1 with errno EAGAIN
 * when the TLS layer waits, 0 at the peer's close). tls_close: close_notify, once, best effort;
 * tls_free: release. Loop thread only. */
void *tls_ctx_new(const char *cert, const char *key, char *why, size_t why_len);
void tls_ctx_free(void *ctx);
bool tls_reload(struct ehttp *h);
bool tls_start(struct elistener *l);
int tls_handshake(struct elistener *l);
ssize_t tls_read(struct elistener *l, void *buf, size_t n);
ssize_t tls_write(struct elistener *l, const void *buf, size_t n);
ssize_t tls_writev(struct elistener *l, const struct iovec *iov, int n);
void tls_close(struct elistener *l);
void tls_free(struct elistener *l);
/* listener.c: accept HTTPS on `fd` too (h->tls_ctx set). */
void edge_http_listen_tls(struct ehttp *h, int fd);

/* sessions.c: listening sessions for analytics (docs/architecture.md §7.13). sessions_init: the
 * client-hash key, derived from the first mesh key (every edge of a mesh hashes an address
 * alike). session_closed: `l` is closing: a stream listener's session to h->session_out, an HLS
 * segment's request to h->hls_hit (no-op when they are NULL or `l` was handed over).
 * session_hls_playlist: an HLS playlist of `bytes` was answered to `l`. session_query_sid: keep
 * a `sid` query parameter as `l`'s HLS session id (unless X-Playback-Session-Id gave one).
 * Loop thread. */
void sessions_init(struct ehttp *h);
void session_closed(struct elistener *l);
void session_hls_playlist(struct elistener *l, const struct emount *m, size_t bytes);
void session_query_sid(struct elistener *l, const char *q, size_t len);

/* metrics.c: count `l`'s time to first byte (accept → now), once. */
void http_ttfb(struct elistener *l);
/* metrics.c: the reason class of a streaming listener's close, counted in h->c. */
void http_count_close(struct ehttp *h, const char *why);

/* api.c: JSON for GET / and GET /<mount>/rewind; return malloc'd text. */
char *edge_api_mounts_json(struct ehttp *h);
char *edge_api_rewind_json(struct emount *m);

#endif
