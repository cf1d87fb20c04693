/* core.c - start-up and shutdown of the edge's core: the tick timer, alerts, the alignment
 * scratch and, with --rewind-dir, the saved buffers and the periodic saver (docs/architecture.md
 * §5.1, §6.5). */
#include <stdlib.h>
#include "core.h"
#include "persist.h"

static void on_tick(EV_P_ ev_timer *w, int revents)
{
    edge_tick(container_of(w, struct core, tick));
}

enum fc_err core_start(struct core *e, struct ev_loop *loop)
{
    e->loop = loop;
    e->align = malloc(sizeof(*e->align));
    if (!e->align)
        return FC_NOMEM;
    if (alert_init(&e->alert, loop, &e->log, e->opt.node, e->opt.alert_webhook) != FC_OK)
        return FC_NOMEM;
    ev_timer_init(&e->tick, on_tick, EDGE_TICK_S, EDGE_TICK_S);
    ev_timer_start(loop, &e->tick);
    if (e->opt.rewind_dir) {
        if (!e->opt.taking_over)
            persist_load_all(e);
        persist_start(e);
    }
    return FC_OK;
}

void core_stop(struct core *e)
{
    if (e->opt.rewind_dir) {
        persist_stop(e);
        persist_save_all(e);
        log_info(&e->log, "rewind saved to %s", e->opt.rewind_dir);
    }
}

void core_free(struct core *e)
{
    edge_relays_free(e);
    edge_mounts_free(e);
    free(e->align);
    alert_free(&e->alert);
    mac_keyring_wipe(&e->keys);
}
