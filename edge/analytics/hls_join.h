/*
 * hls_join.h - HLS requests joined into listening sessions (docs/architecture.md §7.13), in the
 * edge's core process: one session per (mount, key) where the key is the client's
 * X-Playback-Session-Id, its ?sid=, or a hash of its address and User-Agent; a session with no
 * request for HLS_JOIN_IDLE_S is closed and submitted (start = its first request, end = its last
 * request plus the audio of the last segment; listened = the audio seconds of the segments sent
 * whole). At most HLS_JOIN_MAX sessions are open: past it the oldest is closed early.
 * Loop thread only.
 */
#ifndef FC_HLS_JOIN_H
#define FC_HLS_JOIN_H

#include <ev.h>
#include <stdbool.h>
#include <stddef.h>
#include "session.h"

#define HLS_JOIN_IDLE_S 60.0
#define HLS_JOIN_SWEEP_S 5.0
#define HLS_JOIN_BUCKETS 4096
#define HLS_JOIN_MAX 100000

struct hls_open {
    struct an_session s;               /* filled as requests come */
    double last_at;                    /* ev_now of the last request */
    double last_audio_s;               /* audio of the last segment */
    uint32_t requests;
    uint64_t hash;
    struct hls_open *next;             /* in its bucket */
};

struct hls_join {
    struct ev_loop *loop;
    struct hls_open *buckets[HLS_JOIN_BUCKETS];
    size_t n;
    ev_timer sweep;
    double min_s;                      /* --analytics-min-s: shorter sessions flagged */
    /* Where closed sessions go (the analytics writer); never NULL once started. */
    void (*submit)(void *ctx, const struct an_session *s);
    void *ctx;
};

/* Start the sweep timer. */
void hls_join_start(struct hls_join *j, struct ev_loop *loop, double min_s,
                    void (*submit)(void *ctx, const struct an_session *s), void *ctx);
/* Count one request into its session (a new one if none is open). */
void hls_join_hit(struct hls_join *j, const struct an_hls_hit *h);
/* Handoff restart: every open session to `out` (count first); the new process re-opens them with
 * hls_join_adopt (false: malformed or full). */
size_t hls_join_count(const struct hls_join *j);
void hls_join_each(const struct hls_join *j, void (*fn)(void *ctx, const struct hls_open *o),
                   void *ctx);
bool hls_join_adopt(struct hls_join *j, const struct hls_open *o);
/* Close and submit every open session (shutdown), then stop. */
void hls_join_flush(struct hls_join *j);
/* Stop and free without submitting (the process hands them over). */
void hls_join_free(struct hls_join *j);

#endif
