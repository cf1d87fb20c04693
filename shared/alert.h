/*
 * alert.h - operator alerts (issue 3): `sourceless`, `failover`, `failback`, `relay_down`,
 * `relay_up`, ... Each alert is one log line (`alert event=NAME {json}`) and, with
 * --alert-webhook URL, an HTTP POST of the same JSON object sent by libcurl on the program's
 * loop (never blocking it). Failed posts are retried with backoff up to ALERT_TRIES times; the
 * queue holds at most ALERT_QUEUE_MAX alerts (the oldest is dropped and counted past it).
 * Loop rules: all calls on the loop's thread.
 */
#ifndef FC_ALERT_H
#define FC_ALERT_H

#include <jansson.h>
#include "backoff.h"
#include "httpc.h"
#include "log.h"

#define ALERT_QUEUE_MAX 64
#define ALERT_TRIES 5
#define ALERT_TIMEOUT_S 5L

struct alerter {
    const struct log *log;      /* borrowed */
    const char *node;           /* borrowed: added to every alert */
    const char *url;            /* webhook, NULL = log only (borrowed) */
    struct httpc http;          /* owned when url is set */
    char *queue[ALERT_QUEUE_MAX]; /* JSON texts, owned; queue[head] is being sent */
    unsigned head, count;
    unsigned tries;             /* attempts at queue[head] */
    CURL *easy;                 /* the POST in flight, or NULL */
    struct curl_slist *headers; /* Content-Type: application/json */
    ev_timer retry;
    struct backoff bo;
    uint64_t sent, failed, dropped;
};

/* Set up. `url` may be NULL. FC_NOMEM / FC_IO if libcurl cannot be set up. */
enum fc_err alert_init(struct alerter *a, struct ev_loop *loop, const struct log *log,
                       const char *node, const char *url);

/* Emit alert `event` with the fields of `fields` (a JSON object; ownership taken, may be NULL).
 * Adds "event", "time" (ISO-8601 UTC) and "node". */
void alert_emit(struct alerter *a, const char *event, json_t *fields);

void alert_free(struct alerter *a);

#endif
