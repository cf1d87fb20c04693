/*
 * wmsg.h - records between the edge's core process and its workers (edge --workers;
 * docs/architecture.md §7.9 "Workers").
 *
 * Both ends are the same binary, forked from one process, on a SOCK_SEQPACKET socketpair: a
 * datagram is a run of records, each a struct wrec_head followed by `len` payload bytes. The
 * core sends, in the order things happened: WREC_MOUNT (a mount the worker has no replica of
 * yet; the mount's memfd rides along as SCM_RIGHTS, alone in its datagram), WREC_TITLE,
 * WREC_STATION and WREC_APPEND (one per frame appended to a rewind buffer). A worker sends
 * WREC_COUNTS (its listeners, every WORKER_COUNTS_S) and WREC_FORWARD (a connection, as
 * SCM_RIGHTS, with the request bytes read from it, for the core to answer). For the admin API
 * the core sends WREC_QUERY; the worker answers with WREC_LISTENERS records and a WREC_DONE.
 * Payloads are packed byte strings read with memcpy (no alignment assumed); a worker that
 * receives a record it cannot apply exits and is restarted with a fresh replica.
 */
#ifndef FC_WMSG_H
#define FC_WMSG_H

#include <stdint.h>
#include "wire.h"
#include "http/http.h"
#include "analytics/session.h"

#define WMSG_DGRAM_MAX (60 * 1024)      /* bytes per datagram */
#define WORKER_COUNTS_S 0.25            /* a worker reports its listener counts this often */

enum wrec_type {
    WREC_MOUNT = 1,   /* core → worker: struct wrec_mount, + the memfd */
    WREC_APPEND,      /* core → worker: struct wrec_append */
    WREC_TITLE,       /* core → worker: u64 abs, title NUL, url NUL */
    WREC_STATION,     /* core → worker: struct wrec_station */
    WREC_COUNTS,      /* worker → core: struct wrec_counts, then n × struct wrec_mcount */
    WREC_FORWARD,     /* worker → core: peer[64], then the request bytes; + the socket */
    WREC_QUERY,       /* core → worker: struct wrec_query (admin API: list or kick listeners) */
    WREC_LISTENERS,   /* worker → core: u32 query, then n × struct api_listener */
    WREC_DONE,        /* worker → core: struct wrec_done (the query's last record) */
    WREC_TLS_RELOAD,  /* core → worker: read the certificate and key again (no payload) */
    /* Handoff restart (edge/edge_handoff.c, docs/architecture.md §7.12): */
    WREC_HANDOFF,     /* core → worker: pause and hand over every listener (no payload) */
    WREC_HANDED,      /* worker → core: u8 what (WHAND_*), then a carry record; + the socket */
    WREC_HANDED_END,  /* worker → core: all handed (no payload) */
    WREC_COMMIT,      /* core → worker: the new process has them all: exit at once, silently */
    WREC_RESUME,      /* core → worker: the handoff failed: resume the paused listeners */
    WREC_ADOPT,       /* core → worker (the new process): a carry record; + the socket */
    /* Analytics (docs/architecture.md §7.13), only with --analytics: */
    WREC_SESSION,     /* worker → core: struct an_session (a stream listener's, at its close) */
    WREC_HLS_HIT,     /* worker → core: struct an_hls_hit (an HLS request answered) */
};

enum { WHAND_LISTENER = 0, WHAND_LISTEN = 1, WHAND_LISTEN_TLS = 2 };

/* Send one record (`len` payload bytes, at most WMSG_DGRAM_MAX - header) with `pass_fd` (-1 =
 * none) on the socketpair `fd`, waiting up to `timeout_s` for room (edge/wmsg.c). 0, or -1 with
 * errno (ETIMEDOUT, EPIPE, EMSGSIZE). */
int wmsg_send(int fd, uint16_t type, uint32_t mount, const void *p, size_t len, int pass_fd,
              double timeout_s);

struct wrec_query {
    uint32_t query;   /* id to answer with */
    uint8_t kind;     /* API_QUERY_LIST or API_QUERY_KICK */
    uint64_t id;      /* KICK: the listener */
    char mount[WIRE_MOUNT_MAX + 1]; /* LIST: "" = every mount */
} __attribute__((packed));

struct wrec_done {
    uint32_t query;
    uint8_t found;    /* KICK: the listener was here and is closed */
} __attribute__((packed));

struct wrec_head {
    uint16_t type;    /* enum wrec_type */
    uint16_t len;     /* payload bytes that follow */
    uint32_t mount;   /* emount.id, 0 = none */
};

struct wrec_mount {
    char name[WIRE_MOUNT_MAX + 1];
    uint8_t codec;    /* enum fc_codec */
    uint64_t keep_us; /* the rewind buffer's --rewind */
} __attribute__((packed));

/* One frame appended: the replica calls rewind_append(NULL, len, pts_us, dur_us) and must then
 * end at abs_end, else it is out of step. */
struct wrec_append {
    uint64_t pts_us, dur_us, abs_end;
    uint32_t len, sample_rate, bitrate;
    uint8_t codec, channels;
} __attribute__((packed));

struct wrec_station {
    char name[WIRE_STATION_MAX + 1], genre[WIRE_STATION_MAX + 1];
    char desc[WIRE_STATION_MAX + 1], url[WIRE_STATION_MAX + 1];
    uint32_t bitrate;
} __attribute__((packed));

struct wrec_counts {
    uint32_t connections;      /* open HTTP connections on the worker */
    double cpu_s;              /* its CPU time (s), resident memory (bytes), open fds; read */
    uint64_t rss_bytes;        /* from /proc about once a second */
    uint32_t fds;
    struct http_counters c;    /* its HTTP counters, whole */
    uint32_t n;                /* struct wrec_mcount that follow */
} __attribute__((packed));

struct wrec_mcount {
    uint32_t mount;            /* emount.id */
    uint32_t listeners, icy;   /* streaming now, of which with ICY metadata */
} __attribute__((packed));

#endif
