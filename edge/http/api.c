/* api.c - JSON answers (docs/architecture.md §7.2, §7.7): GET / lists mounts, their streams and
 * relay links (the core's JSON, edge/core/status.c, with the listener counts); GET
 * /<mount>/rewind summarises the mount's rewind buffer. */
#include <jansson.h>
#include <time.h>
#include "../analytics/analytics.h"
#include "clock.h"
#include "http.h"

char *edge_api_mounts_json(struct ehttp *h)
{
    double now = http_now(h);
    json_t *mounts = json_array();
    for (const struct emount *m = h->core->mounts; m; m = m->next) {
        if (!m->has_audio)
            continue; /* not playable yet: listed once it is */
        json_t *jm = core_mount_json(m, now, edge_http_listeners(m));
        char url[WIRE_MOUNT_MAX + 2];
        snprintf(url, sizeof(url), "/%s", m->name);
        json_object_set_new(jm, "url", json_string(url));
        json_array_append_new(mounts, jm);
    }
    json_t *root = json_pack("{s:o, s:o, s:I, s:o}", "mounts", mounts, "relays",
                             core_relays_json(h->core), "listeners",
                             (json_int_t)(h->n_listeners + h->remote_listeners), "counters",
                             core_counters_json(h->core));
    if (!root)
        return NULL;
    if (h->an)
        json_object_set_new(root, "analytics", analytics_json(h->an));
    json_t *extra = h->extra_json ? h->extra_json(h->extra_ctx) : NULL;
    if (extra) {
        json_object_update(root, extra);
        json_decref(extra);
    }
    char *text = json_dumps(root, JSON_INDENT(2));
    json_decref(root);
    return text;
}

char *edge_api_rewind_json(struct emount *m)
{
    char first[40], last[40];
    uint64_t f = rewind_first_pts(&m->rw), l = m->rw.end_pts_us;
    clock_iso_ms(f, first, sizeof(first));
    clock_iso_ms(l, last, sizeof(last));
    json_t *root = json_pack("{s:s, s:I, s:I, s:s, s:s, s:f, s:I, s:I, s:I, s:f}", "mount",
                             m->name, "first_pts_us", (json_int_t)f, "last_pts_us", (json_int_t)l,
                             "first", first, "last", last, "seconds", f ? (l - f) / 1e6 : 0.0,
                             "bytes", (json_int_t)rewind_bytes_held(&m->rw), "frames",
                             (json_int_t)m->rw.frames_held, "memory_bytes",
                             (json_int_t)rewind_mem_bytes(&m->rw), "keep_seconds",
                             m->rw.keep_us / 1e6);
    if (!root)
        return NULL;
    char *text = json_dumps(root, JSON_INDENT(2));
    json_decref(root);
    return text;
}
