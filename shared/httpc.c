/* httpc.c - see httpc.h. */
#include "httpc.h"

#include <stdlib.h>

struct sock_watch {
    ev_io io;
    struct httpc *h;
    curl_socket_t fd;
};

static void check_done(struct httpc *h)
{
    CURLMsg *msg;
    int left;
    while ((msg = curl_multi_info_read(h->multi, &left)))
        if (msg->msg == CURLMSG_DONE)
            h->on_done(h, msg->easy_handle, msg->data.result);
}

static void on_sock(EV_P_ ev_io *w, int revents)
{
    struct sock_watch *sw = container_of(w, struct sock_watch, io);
    struct httpc *h = sw->h;
    int running, action = (revents & EV_READ ? CURL_CSELECT_IN : 0) |
                          (revents & EV_WRITE ? CURL_CSELECT_OUT : 0);
    curl_multi_socket_action(h->multi, sw->fd, action, &running);
    check_done(h);
}

static void on_timer(EV_P_ ev_timer *w, int revents)
{
    struct httpc *h = container_of(w, struct httpc, timer);
    int running;
    curl_multi_socket_action(h->multi, CURL_SOCKET_TIMEOUT, 0, &running);
    check_done(h);
}

static int sock_cb(CURL *e, curl_socket_t fd, int what, void *userp, void *socketp)
{
    struct httpc *h = userp;
    struct sock_watch *sw = socketp;
    if (what == CURL_POLL_REMOVE) {
        if (sw) {
            ev_io_stop(h->loop, &sw->io);
            free(sw);
            curl_multi_assign(h->multi, fd, NULL);
        }
        return 0;
    }
    if (!sw) {
        sw = calloc(1, sizeof(*sw));
        if (!sw)
            return -1;
        sw->h = h;
        sw->fd = fd;
        ev_init(&sw->io, on_sock);
        curl_multi_assign(h->multi, fd, sw);
    }
    int events = (what & CURL_POLL_IN ? EV_READ : 0) | (what & CURL_POLL_OUT ? EV_WRITE : 0);
    ev_io_stop(h->loop, &sw->io); /* libev: stop before changing */
    ev_io_set(&sw->io, fd, events);
    ev_io_start(h->loop, &sw->io);
    return 0;
}

static int timer_cb(CURLM *m, long timeout_ms, void *userp)
{
    struct httpc *h = userp;
    ev_timer_stop(h->loop, &h->timer);
    if (timeout_ms >= 0) {
        ev_timer_set(&h->timer, timeout_ms / 1000.0, 0);
        ev_timer_start(h->loop, &h->timer);
    }
    return 0;
}

enum fc_err httpc_init(struct httpc *h, struct ev_loop *loop, httpc_done_fn on_done, void *owner)
{
    /* Safe to repeat: libcurl counts init/cleanup pairs. */
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
        return FC_IO;
    h->loop = loop;
    h->on_done = on_done;
    h->owner = owner;
    h->multi = curl_multi_init();
    if (!h->multi)
        return FC_NOMEM;
    curl_multi_setopt(h->multi, CURLMOPT_SOCKETFUNCTION, sock_cb);
    curl_multi_setopt(h->multi, CURLMOPT_SOCKETDATA, h);
    curl_multi_setopt(h->multi, CURLMOPT_TIMERFUNCTION, timer_cb);
    curl_multi_setopt(h->multi, CURLMOPT_TIMERDATA, h);
    ev_init(&h->timer, on_timer);
    return FC_OK;
}

void httpc_add(struct httpc *h, CURL *easy)
{
    curl_multi_add_handle(h->multi, easy);
}

void httpc_remove(struct httpc *h, CURL *easy)
{
    curl_multi_remove_handle(h->multi, easy);
}

void httpc_free(struct httpc *h)
{
    if (!h->multi)
        return;
    ev_timer_stop(h->loop, &h->timer);
    curl_multi_cleanup(h->multi);
    curl_global_cleanup();
    h->multi = NULL;
}
