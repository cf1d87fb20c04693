/*
 * httpc.h - libcurl's multi-socket interface driven by a libev loop.
 *
 * Transfers run without blocking the loop: libcurl tells which sockets to watch and when to
 * time out; when a transfer ends, `on_done` is called with its easy handle (the callee removes
 * and cleans it up, or re-adds it). Used by the shim's --pull and by alert webhooks.
 * Loop rules: all calls on the loop's thread.
 */
#ifndef FC_HTTPC_H
#define FC_HTTPC_H

#include <curl/curl.h>
#include <ev.h>
#include "fc.h"

struct httpc;

/* A transfer ended (`rc` is CURLE_OK when it completed). `easy` is still in the multi: call
 * httpc_remove() before cleaning it up. May add new transfers. */
typedef void (*httpc_done_fn)(struct httpc *h, CURL *easy, CURLcode rc);

struct httpc {
    struct ev_loop *loop; /* borrowed */
    CURLM *multi;         /* owned */
    ev_timer timer;       /* libcurl's timeout */
    httpc_done_fn on_done;
    void *owner;          /* for the callback */
};

/* Set up (calls curl_global_init once per process). FC_NOMEM / FC_IO on failure. */
enum fc_err httpc_init(struct httpc *h, struct ev_loop *loop, httpc_done_fn on_done, void *owner);

/* Start a transfer. */
void httpc_add(struct httpc *h, CURL *easy);

/* Detach a transfer (before curl_easy_cleanup). */
void httpc_remove(struct httpc *h, CURL *easy);

/* Stop the timer and free the multi handle (transfers must have been removed). */
void httpc_free(struct httpc *h);

#endif
