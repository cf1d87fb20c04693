/* alert.c - see alert.h. */
#include "alert.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

static void send_next(struct alerter *a);

static void pop(struct alerter *a)
{
    free(a->queue[a->head]);
    a->queue[a->head] = NULL;
    a->head = (a->head + 1) % ALERT_QUEUE_MAX;
    a->count--;
    a->tries = 0;
}

static void on_done(struct httpc *h, CURL *easy, CURLcode rc)
{
    struct alerter *a = h->owner;
    long code = 0;
    curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &code);
    httpc_remove(h, easy);
    curl_easy_cleanup(easy);
    a->easy = NULL;
    if (rc == CURLE_OK && code >= 200 && code < 300) {
        a->sent++;
        backoff_reset(&a->bo);
        pop(a);
        send_next(a);
        return;
    }
    log_warn(a->log, "alert webhook=%s failed: %s (HTTP %ld) try=%u", a->url,
             rc == CURLE_OK ? "bad status" : curl_easy_strerror(rc), code, a->tries);
    if (a->tries >= ALERT_TRIES) {
        a->failed++;
        pop(a);
        send_next(a);
        return;
    }
    ev_timer_set(&a->retry, backoff_next(&a->bo), 0);
    ev_timer_start(a->http.loop, &a->retry);
}

static void on_retry(EV_P_ ev_timer *w, int revents)
{
    send_next(container_of(w, struct alerter, retry));
}

static void send_next(struct alerter *a)
{
    if (!a->url || a->easy || a->count == 0 || ev_is_active(&a->retry))
        return;
    a->easy = curl_easy_init();
    if (!a->easy)
        return;
    a->tries++;
    curl_easy_setopt(a->easy, CURLOPT_URL, a->url);
    curl_easy_setopt(a->easy, CURLOPT_POSTFIELDS, a->queue[a->head]);
    curl_easy_setopt(a->easy, CURLOPT_HTTPHEADER, a->headers);
    curl_easy_setopt(a->easy, CURLOPT_TIMEOUT, ALERT_TIMEOUT_S);
    curl_easy_setopt(a->easy, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(a->easy, CURLOPT_USERAGENT, "framecast-alert/1");
    httpc_add(&a->http, a->easy);
}

enum fc_err alert_init(struct alerter *a, struct ev_loop *loop, const struct log *log,
                       const char *node, const char *url)
{
    memset(a, 0, sizeof(*a));
    a->log = log;
    a->node = node;
    a->url = url;
    a->http.loop = loop;
    backoff_reset(&a->bo);
    ev_init(&a->retry, on_retry);
    if (!url)
        return FC_OK;
    a->headers = curl_slist_append(NULL, "Content-Type: application/json");
    if (!a->headers)
        return FC_NOMEM;
    return httpc_init(&a->http, loop, on_done, a);
}

void alert_emit(struct alerter *a, const char *event, json_t *fields)
{
    char when[32];
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm);
    json_t *o = fields ? fields : json_object();
    json_object_set_new(o, "event", json_string(event));
    json_object_set_new(o, "time", json_string(when));
    json_object_set_new(o, "node", json_string(a->node));
    char *text = json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(o);
    if (!text)
        return;
    log_warn(a->log, "alert event=%s %s", event, text);
    if (!a->url) {
        free(text);
        return;
    }
    if (a->count == ALERT_QUEUE_MAX) {
        /* Keep the newest: drop the oldest that is not in flight. */
        unsigned victim = (a->head + (a->easy ? 1 : 0)) % ALERT_QUEUE_MAX;
        free(a->queue[victim]);
        for (unsigned i = victim; i != (a->head + a->count - 1) % ALERT_QUEUE_MAX;
             i = (i + 1) % ALERT_QUEUE_MAX)
            a->queue[i] = a->queue[(i + 1) % ALERT_QUEUE_MAX];
        a->count--;
        a->dropped++;
    }
    a->queue[(a->head + a->count) % ALERT_QUEUE_MAX] = text;
    a->count++;
    send_next(a);
}

void alert_free(struct alerter *a)
{
    ev_timer_stop(a->http.loop, &a->retry);
    if (a->easy) {
        httpc_remove(&a->http, a->easy);
        curl_easy_cleanup(a->easy);
        a->easy = NULL;
    }
    while (a->count)
        pop(a);
    if (a->url)
        httpc_free(&a->http);
    curl_slist_free_all(a->headers);
    a->headers = NULL;
}
