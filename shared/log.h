/*
 * log.h - one line per event on stderr: `LEVEL component key=value ...`, or JSON with --log-json.
 *
 * A `struct log` is embedded in each program's context (no global logger). Calls are cheap when
 * the level is filtered. Rate limiting for per-peer warnings lives in `struct log_limit`: a caller
 * logs once per interval per peer and counts what it suppressed.
 */
#ifndef FC_LOG_H
#define FC_LOG_H

#include <stdbool.h>
#include <stdint.h>

enum log_level { LOG_DEBUG = 0, LOG_INFO, LOG_WARN, LOG_ERROR };

struct log {
    const char *component; /* "relay", "edge", "shim": borrowed, must outlive the log */
    enum log_level min;    /* lines below this level are dropped */
    bool json;             /* emit {"ts":..,"level":..,"component":..,"msg":..} */
};

/* Set up `lg` for `component` (borrowed). Level from FC_LOG_LEVEL env (debug/info/warn/error). */
void log_init(struct log *lg, const char *component, bool json);

/* Write one line at `level`; `fmt` is printf-style and should read `key=value ...`. */
void log_msg(const struct log *lg, enum log_level level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#define log_debug(lg, ...) log_msg((lg), LOG_DEBUG, __VA_ARGS__)
#define log_info(lg, ...) log_msg((lg), LOG_INFO, __VA_ARGS__)
#define log_warn(lg, ...) log_msg((lg), LOG_WARN, __VA_ARGS__)
#define log_error(lg, ...) log_msg((lg), LOG_ERROR, __VA_ARGS__)

/* Once-per-interval gate for noisy per-peer warnings (bad tags, garbage, drops). */
struct log_limit {
    double last_s;       /* monotonic time (ev_now) of the last line logged, seconds */
    uint64_t suppressed; /* events not logged since that line */
};

#define LOG_LIMIT_INTERVAL_S 10.0 /* issue 2: "logged once per peer per 10 s" */

/*
 * True when the caller should log now (first event, or LOG_LIMIT_INTERVAL_S since the last line);
 * then `*suppressed_out` gets the count skipped since and is reset. False counts a suppression.
 * `now_s` is monotonic seconds.
 */
bool log_limit_pass(struct log_limit *ll, double now_s, uint64_t *suppressed_out);

#endif
