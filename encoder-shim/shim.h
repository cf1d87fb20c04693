/*
 * shim.h - framecast-shim: take a station's audio, frame it, stamp it, MAC it, send every frame
 * to every target (docs/architecture.md §1.2, §3).
 *
 * Inputs: --pull URL (libcurl multi-socket API on libev, Icy-MetaData: 1, ICY blocks removed,
 * StreamTitle carried as frame meta, reconnect with backoff), --file PATH (looped in real time).
 * Each target has its own bounded queue and reconnect loop: a dead or slow relay never blocks the
 * others.
 */
#ifndef FC_SHIM_H
#define FC_SHIM_H

#include <curl/curl.h>
#include <ev.h>
#include <http_parser.h>
#include <stdbool.h>
#include "backoff.h"
#include "framer.h"
#include "httpc.h"
#include "icy.h"
#include "level.h"
#include "link.h"
#include "log.h"
#include "mac.h"
#include "metrics_http.h"
#include "net.h"
#include "wire.h"

#define SHIM_MAX_TARGETS 16
#define SHIM_DEBUG_DROP_MAX 16          /* seqs FC_DEBUG_DROP_SEQ may name (test hook) */
#define SHIM_TCP_QUEUE_MSGS 4096        /* frames queued per TCP target (~100 s of MP3) */
#define SHIM_TCP_QUEUE_BYTES (4u << 20)
#define SHIM_META_REPEAT_S 5.0          /* docs/architecture.md §2.1: title every 5 s */
#define SHIM_REANCHOR_US 200000         /* docs/architecture.md §3.4: re-anchor past 200 ms */
#define SHIM_DRIFT_WINDOW_US 5000000    /* late for this long without a break: re-anchor */
#define SHIM_COALESCE_S 0.01            /* a burst's chunks closer than this are one batch */
#define SHIM_BURST_MARGIN_US 200000     /* "faster": the batch holds this much more than its age;
                                           "real-time pace": a chunk brings at most this much
                                           more audio than the time since the previous one */
#define SHIM_BURST_MAX_WAIT_US 2000000  /* a burst waits for real-time pace at most this long */
#define SHIM_HISTORY 4096               /* frame hashes kept to skip a reconnect's re-sent burst */
#define SHIM_FILE_MAX (1u << 30)        /* --file is read into memory: at most 1 GiB */
#define SHIM_PULL_STALL_S 10            /* no byte for this long: the upstream is stalled */
#define SHIM_RESEND_FRAMES 1024         /* recent frames kept to resend after a reconnect */
#define SHIM_RESEND_S 10.0              /* resend what was sent this recently: the old
                                           connection may have died holding it unacknowledged */
#define SHIM_SOURCE_REQ_MAX 8192        /* source handshake bytes; past it: 431 */
#define SHIM_SOURCE_HANDSHAKE_S 10.0    /* a handshake must complete within this */
#define SHIM_SOURCE_STALL_S 10.0        /* a source sending nothing this long is dropped */

/* PTS anchoring (stamp.c), docs/architecture.md §3.3. */
struct stamper {
    bool anchored;           /* anchor_us is valid */
    uint64_t anchor_us;      /* wall-clock µs of sample 0 */
    uint64_t samples;        /* samples stamped since the anchor */
    uint32_t sample_rate;    /* Hz of the samples counted */
    int64_t window_min_lag;  /* smallest lag in the current run of late batches, µs */
    uint64_t window_start_us;/* arrival time the run of late batches began, 0 = none */
    uint64_t reanchors;      /* times the anchor moved forward */
    bool resync;             /* the input was re-opened: re-anchor on the next batch if late */
};

/* Stamp a batch of frames that all arrived at `arrival_us`: computes the anchor from the batch's
 * end, then writes each frame's PTS to pts_us[i]. `samples[i]`, `rates[i]` describe frame i.
 * Returns true if the anchor was moved forward (drift > SHIM_REANCHOR_US) so the caller logs. */
bool stamper_batch(struct stamper *st, uint64_t arrival_us, const uint16_t *samples,
                   const uint32_t *rates, size_t n, uint64_t *pts_us);

struct target {
    struct net_addr addr;
    struct link link;      /* TCP targets */
    int udp_fd;            /* UDP / multicast targets, -1 otherwise */
    uint64_t sent;         /* frames handed to the socket or queue */
    uint64_t dropped;      /* frames dropped: queue full or send error */
    struct shim *shim;
};

/* Station fields from a source's ice-* headers, carried to the edge. */
struct shim_station {
    char name[WIRE_STATION_MAX + 1];
    char genre[WIRE_STATION_MAX + 1];
    char desc[WIRE_STATION_MAX + 1];
    char url[WIRE_STATION_MAX + 1];
    uint32_t bitrate; /* kbit/s */
};

/* One connection on --source-listen: a handshake in progress, an admin request, or the source. */
struct source_conn {
    struct shim *shim;
    int fd;
    ev_io rio;
    ev_timer timer;             /* handshake deadline, then the stall check */
    http_parser parser;
    char req[SHIM_SOURCE_REQ_MAX];
    uint32_t req_len;
    const char *url, *field, *value; /* pieces in req */
    size_t url_len, field_len, value_len;
    char auth[256];
    char ctype[64];
    bool expect_continue;
    bool headers_done;
    double last_audio;          /* ev_now of the last audio bytes */
    struct shim_station station;
    char peer[64];
};

struct file_frame {
    uint32_t off;             /* offset in file_data */
    struct frame_info info;
};

struct shim_opts {
    char mount[WIRE_MOUNT_MAX + 1];
    char encoder[WIRE_ENCODER_MAX + 1];
    uint32_t priority;
    const char *pull_url;  /* --pull */
    const char *file;      /* --file */
    bool source_listen_set;
    struct net_addr source_listen; /* --source-listen */
    const char *source_password;   /* --source-password */
    enum fc_codec codec;   /* --codec, FC_CODEC_NONE = detect */
    char node[WIRE_NODE_MAX + 1];
    bool log_json;
    bool has_metrics;      /* --metrics given */
    struct net_addr metrics; /* --metrics HOST:PORT: GET /metrics (Prometheus) */
};

#define SHIM_BATCH_FRAMES 512

struct shim {
    struct ev_loop *loop;
    struct log log;
    struct mac_keyring keys; /* --key: frames and HELLO are tagged with the first */
    struct mac_key_files key_files; /* --key FILE..., read again on SIGHUP */
    struct shim_opts opt;
    struct target targets[SHIM_MAX_TARGETS];
    int n_targets;

    uint64_t session;      /* random per start */
    uint64_t seq;          /* next seq */
    struct stamper stamp;
    struct framer *framer; /* owned */
    enum fc_codec codec;   /* of the current input */
    struct level_meter meter; /* loudness of each frame sent */
    char title[WIRE_META_MAX + 1];
    char url[WIRE_META_MAX + 1];
    bool meta_dirty;       /* title changed: send with the next frame */
    double meta_last_s;    /* ev_now when meta was last sent */

    /* Frames of one input chunk, stamped together (stamp.c). */
    uint8_t batch_buf[SHIM_BATCH_FRAMES * 1024];
    size_t batch_used;
    uint32_t batch_off[SHIM_BATCH_FRAMES];
    uint32_t batch_len[SHIM_BATCH_FRAMES];
    uint16_t batch_samples[SHIM_BATCH_FRAMES];
    uint32_t batch_rate[SHIM_BATCH_FRAMES];
    uint8_t batch_channels[SHIM_BATCH_FRAMES];
    size_t n_batch;

    /* Recent messages: a TCP target that reconnects gets the last SHIM_RESEND_S again (frames
     * still in the dead connection's buffers were never delivered; relays drop duplicates). */
    struct msgref *recent[SHIM_RESEND_FRAMES];
    double recent_at[SHIM_RESEND_FRAMES];
    uint32_t recent_pos;

    /* Hashes of recent frames: after a reconnect the upstream's burst repeats audio we sent. */
    uint64_t history[SHIM_HISTORY];
    uint32_t history_pos;
    bool resyncing;        /* skipping frames already sent since the reconnect */
    uint32_t resync_seen;  /* frames examined while resyncing */

    /* --pull */
    struct httpc http;     /* libcurl on our loop */
    CURL *easy;
    struct curl_slist *pull_headers; /* Icy-MetaData: 1 */
    ev_timer pull_flush;   /* stamps the batch SHIM_COALESCE_S after the last chunk */
    uint64_t batch_arrival_us; /* wall clock of the batch's last chunk */
    uint64_t batch_first_us;   /* wall clock of the batch's first chunk */
    ev_timer pull_retry;   /* reconnect with backoff */
    struct backoff pull_bo;
    struct icy_demux icy;
    uint64_t icy_bad_blocks;  /* ICY blocks dropped: no StreamTitle/StreamUrl */
    struct log_limit icy_ll;
    char content_type[64];
    uint32_t metaint;
    bool got_body;
    uint64_t connects;

    /* --file */
    uint8_t *file_data;       /* the whole file */
    size_t file_len;
    struct file_frame *file_frames; /* index of its frames, owned */
    size_t file_n;
    size_t file_next;         /* next frame to release */
    uint64_t file_start_us;   /* wall clock at which file sample 0 plays */
    uint64_t file_samples;    /* samples released so far */
    ev_timer file_timer;

    /* --source-listen */
    int src_fd;
    ev_io src_accept;
    ev_timer src_pause;           /* accepting paused at EMFILE */
    http_parser_settings src_http;
    struct source_conn *source;   /* the connected source, or NULL */
    struct shim_station station;  /* its ice-* fields */
    bool station_dirty;           /* send with the next frame */

    ev_timer stats;
    struct metrics_http metrics; /* --metrics */
    ev_signal sigint, sigterm;
    ev_signal sighup;      /* re-read the --key files */
    uint64_t debug_drop[SHIM_DEBUG_DROP_MAX]; /* FC_DEBUG_DROP_SEQ: seqs never sent (tests) */
    int n_debug_drop;
    uint64_t frames_sent;
    uint64_t frames_skipped;  /* re-sent burst frames skipped after reconnect */
};

/* metrics.c: the counters as `stats` log lines; as Prometheus text (metrics_render_fn, ctx =
 * the shim: malloc'd text, NULL out of memory). */
void shim_log_stats(struct shim *s);
char *shim_metrics(void *ctx, size_t *len);

/* publish.c */
enum fc_err shim_targets_start(struct shim *s);
void shim_targets_free(struct shim *s);
/* Feed raw audio bytes (ICY blocks already removed) through the framer into the batch. */
void shim_audio_in(struct shim *s, const uint8_t *data, size_t len);
/* Append one whole frame to the batch (flushing first if it is full). */
void shim_batch_add(struct shim *s, const uint8_t *frame, const struct frame_info *info);
/* Stamp and send every frame in the batch as arriving at `arrival_us`. */
void shim_flush_batch(struct shim *s, uint64_t arrival_us);
/* New input connection: reset the framer for `codec`, start skipping re-sent frames. */
void shim_input_reset(struct shim *s, enum fc_codec codec, bool resync);
/* A new title from ICY metadata. */
void shim_set_meta(struct shim *s, const char *title, const char *url);

/* pull.c */
enum fc_err shim_pull_start(struct shim *s);
void shim_pull_free(struct shim *s);

/* source_in.c */
enum fc_err shim_source_start(struct shim *s);
void shim_source_free(struct shim *s);

/* file_in.c */
enum fc_err shim_file_start(struct shim *s);
void shim_file_free(struct shim *s);

#endif
