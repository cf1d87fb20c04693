/* relays.c - the edge's links to relays: subscribe to every mount, resume after reconnects. */
#include <string.h>
#include "core.h"

#define EDGE_LINK_MAX_MSGS 256
#define EDGE_LINK_MAX_BYTES (1u << 20)

static void relay_on_msg(struct link *l, const struct wire_msg *msg, const uint8_t *raw,
                         size_t len)
{
    struct erelay *r = l->owner;
    if (msg->type != WIRE_FRAME)
        return;
    r->frames++;
    edge_frame_in(r->core, &msg->u.frame, r);
}

static void relay_on_up(struct link *l)
{
    struct erelay *r = l->owner;
    r->was_up = true;
    alert_emit(&r->core->alert, "relay_up", json_pack("{s:s}", "relay", l->peer));
}

static void relay_on_down(struct link *l, const char *why)
{
    struct erelay *r = l->owner;
    if (r->was_up)
        alert_emit(&r->core->alert, "relay_down",
                   json_pack("{s:s, s:s}", "relay", l->peer, "reason", why));
    r->was_up = false;
}

static void relay_fill_subscribe(struct link *l, struct wire_subscribe *s)
{
    struct erelay *r = l->owner;
    s->n_mounts = 0; /* every mount */
    edge_fill_resume(r->core, s);
}

static const struct link_ops relay_ops = {
    .on_msg = relay_on_msg,
    .on_up = relay_on_up,
    .on_down = relay_on_down,
    .fill_subscribe = relay_fill_subscribe,
};

enum fc_err edge_relays_start(struct core *e)
{
    for (int i = 0; i < e->opt.n_relays; i++) {
        struct erelay *r = &e->relays[i];
        r->core = e;
        r->addr = e->opt.relays[i];
        if (link_init(&r->link, e->loop, &relay_ops, &e->keys, &e->log, "edge", e->opt.node,
                      EDGE_LINK_MAX_MSGS, EDGE_LINK_MAX_BYTES) != FC_OK)
            return FC_NOMEM;
        r->link.owner = r;
        link_connect(&r->link, &r->addr);
    }
    return FC_OK;
}

void edge_relays_free(struct core *e)
{
    for (int i = 0; i < e->opt.n_relays; i++) {
        if (!e->relays[i].link.rd)
            continue;
        link_stop(&e->relays[i].link);
        link_free(&e->relays[i].link);
    }
}
