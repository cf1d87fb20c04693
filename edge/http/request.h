/*
 * request.h - what a listener's request asks for: query parameters of GET /<mount>
 * (docs/architecture.md §7.4): `offset=S` (seconds behind live), `at=T` (Unix seconds or
 * ISO-8601 UTC such as 2026-11-22T09:00:00Z), `duration=S` (a download of that span),
 * `burst=S` (seconds sent at once on connect instead of --burst; 0 = none), `preroll=0`
 * (no preroll clip, docs/architecture.md §7.14).
 * Pure parsing; no allocation; no callbacks.
 */
#ifndef FC_REQUEST_H
#define FC_REQUEST_H

#include <stdbool.h>
#include <stddef.h>
#include "fc.h"

#define REQUEST_MAX_DURATION_S (7.0 * 86400)
#define REQUEST_MAX_BURST_S 600.0 /* as --burst */

struct stream_req {
    bool has_offset;   /* offset_s given */
    double offset_s;   /* seconds behind live, >= 0 */
    bool has_at;       /* at_s given */
    double at_s;       /* Unix seconds */
    bool has_duration; /* duration_s given: a download */
    double duration_s; /* > 0 */
    double dvr_s;      /* HLS: seconds of rewind to list (0 = default) */
    bool has_burst;    /* burst_s given */
    double burst_s;    /* seconds sent at once on connect, >= 0 */
    bool no_preroll;   /* preroll=0: no preroll clip before the stream (preroll=1: the default) */
};

/*
 * Parse the query string `q` (`len` bytes, without the '?'); unknown keys are ignored.
 * FC_PROTO with `*why` naming the parameter when a value is malformed or out of range, or when
 * both offset and at are given.
 */
enum fc_err request_parse_query(const char *q, size_t len, struct stream_req *r, const char **why);

/* Parse a time: Unix seconds ("1763802000", "1763802000.5") or ISO-8601 UTC
 * ("2026-11-22T09:00:00Z", optional ".fff", "+00:00" accepted). */
bool request_parse_time(const char *s, size_t len, double *unix_s);

#endif
