/*
 * session.h - one listening session as analytics records it (docs/architecture.md §7.13
 * "Analytics"). Produced by the HTTP side (a stream listener when it closes; HLS requests joined
 * into sessions by the core), passed from workers to the core process as plain data
 * (WREC_SESSION), queued to the analytics writer (analytics.h) and stored one row per session.
 * Times are UTC wall-clock µs (clock_wall_us); durations are seconds.
 */
#ifndef FC_ANALYTICS_SESSION_H
#define FC_ANALYTICS_SESSION_H

#include <stdint.h>
#include "wire.h"

#define AN_ID_MAX 64        /* session id text */
#define AN_UA_MAX 96        /* bytes kept of the User-Agent (= EDGE_UA_MAX) */
#define AN_CLIENT_MAX 48    /* client: 32 hex chars of a keyed hash, or an address as text */

enum an_proto { AN_RAW = 0, AN_ICY = 1, AN_HLS = 2 };

struct an_session {
    char id[AN_ID_MAX + 1];            /* listener id as 16 hex chars; HLS: the session key */
    char mount[WIRE_MOUNT_MAX + 1];
    uint8_t proto;                     /* enum an_proto */
    uint8_t is_short;                  /* listened < --analytics-min-s: counted, flagged */
    uint64_t start_us, end_us;         /* UTC: connected, closed (HLS: first / last request) */
    double listened_s;                 /* seconds of audio heard (preroll excluded) */
    double preroll_s;                  /* seconds of preroll sent */
    uint64_t bytes;                    /* bytes sent (audio, metadata, headers) */
    double timeshift_s;                /* seconds behind live at the start (0 = live) */
    uint64_t pts_first_us, pts_last_us;/* PTS range of the audio sent (0 = none) */
    char ua[AN_UA_MAX];
    char client[AN_CLIENT_MAX];        /* keyed hash (default) or address (--analytics-raw-ip) */
} __attribute__((packed));

/* One HLS request (playlist or segment) of a client, from a worker to the core process
 * (WREC_HLS_HIT), where requests are joined into sessions (hls_join.h). */
struct an_hls_hit {
    char key[AN_ID_MAX + 1];           /* X-Playback-Session-Id, else ?sid=, else derived from
                                          the client and its User-Agent */
    char mount[WIRE_MOUNT_MAX + 1];
    uint64_t at_us;                    /* UTC of the request */
    uint64_t bytes;                    /* bytes sent for it */
    double audio_s;                    /* audio seconds of a segment sent whole; 0: a playlist or
                                          a segment cut short */
    uint64_t pts_first_us, pts_last_us;/* a segment's PTS range (0 = a playlist) */
    char ua[AN_UA_MAX];
    char client[AN_CLIENT_MAX];
} __attribute__((packed));

#endif
