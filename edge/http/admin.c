/* admin.c - the admin API under /api/v1 (docs/architecture.md §7.10).
 *
 * Answered by the process that owns the core (with --workers, the workers hand every /api/
 * request over, like GET /). Auth: `Authorization: Bearer TOKEN` against --api-token-file
 * (`NAME TOKEN [ro]` per line; only a BLAKE2b-256 hash of each token is kept, compared with
 * sodium_memcmp against every entry); 401 without or with an unknown token, 403 for a read-only
 * token on a write. Without the file, reads are open to loopback peers only and writes refused.
 * Listener listing and kicking ask the workers (h->query_workers) and answer when every worker
 * has replied, or after API_QUERY_TIMEOUT_S with what came. Every write is logged with the
 * token's name. Errors are JSON {"error": ..., "status": N}.
 * Analytics (§7.13): GET /api/v1/analytics (figures) and /api/v1/analytics/sessions (NDJSON
 * export) are read endpoints; the SQL runs on the store's writer thread and the answer comes
 * back through analytics_query's callback (the listener may have left meanwhile). */
#include <ctype.h>
#include <errno.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "../analytics/analytics.h"
#include "clock.h"
#include "http.h"
#include "preroll.h"

#define API_QUERY_TIMEOUT_S 1.0
#define API_LIST_MAX 200000 /* listeners in one answer */

struct api_pending {
    struct ehttp *h;
    struct elistener *l;       /* NULL once it closed */
    uint32_t query;
    uint32_t waiting;          /* workers not done yet */
    int kind;
    bool found;
    json_t *list;              /* API_QUERY_LIST: the entries so far */
    ev_timer timeout;
    struct api_pending *next;
};

/* ---- tokens (api_tokens.c holds the file parser) ---- */

static bool loopback(const struct elistener *l)
{
    return strncmp(l->peer, "127.", 4) == 0 || strncmp(l->peer, "[::1]", 5) == 0 ||
           strncmp(l->peer, "::1", 3) == 0;
}

static void api_error(struct elistener *l, int status, const char *msg)
{
    char body[256];
    int n = snprintf(body, sizeof(body), "{\"error\":\"%s\",\"status\":%d}\n", msg, status);
    listener_respond(l, status, "application/json", body, (size_t)n,
                     status == 401 ? "WWW-Authenticate: Bearer realm=\"framecast\"\r\n" : NULL);
}

/* The token's name, "" (no file: loopback) or NULL after answering 401/403. */
static const char *authorize(struct elistener *l, bool write)
{
    struct ehttp *h = l->http;
    if (h->n_tokens == 0) {
        if (write) {
            api_error(l, 403, "writes need --api-token-file");
            return NULL;
        }
        if (!loopback(l)) {
            api_error(l, 403, "without --api-token-file the API answers loopback only");
            return NULL;
        }
        return "";
    }
    if (!l->auth || l->auth_len < 8 || strncasecmp(l->auth, "Bearer ", 7) != 0) {
        api_error(l, 401, "missing bearer token");
        return NULL;
    }
    uint8_t hash[32];
    api_token_hash(l->auth + 7, l->auth_len - 7, hash);
    const struct api_token *match = NULL;
    for (int i = 0; i < h->n_tokens; i++) /* every entry, whatever matched */
        if (sodium_memcmp(hash, h->tokens[i].hash, 32) == 0)
            match = &h->tokens[i];
    if (!match) {
        api_error(l, 401, "unknown token");
        return NULL;
    }
    if (write && match->ro) {
        api_error(l, 403, "read-only token");
        return NULL;
    }
    return match->name;
}

/* ---- answers ---- */

static void send_json_obj(struct elistener *l, int status, json_t *j)
{
    char *text = j ? json_dumps(j, JSON_INDENT(2)) : NULL;
    json_decref(j);
    if (!text)
        return api_error(l, 503, "out of memory");
    listener_respond(l, status, "application/json", text, strlen(text), NULL);
    free(text);
}

static json_t *mount_obj(struct ehttp *h, const struct emount *m)
{
    json_t *j = core_mount_json(m, http_now(h), edge_http_listeners(m));
    const struct hmount *hm = m->http;
    uint32_t all = edge_http_listeners(m);
    uint32_t icy = (hm ? hm->n_icy : 0) + m->remote_icy;
    uint64_t first = rewind_first_pts(&m->rw);
    json_object_set_new(j, "listeners_by_protocol",
                        json_pack("{s:I, s:I}", "icy", (json_int_t)icy, "raw",
                                  (json_int_t)(all - icy)));
    json_object_set_new(j, "buffer",
                        json_pack("{s:I, s:I, s:f}", "first_pts_us", (json_int_t)first,
                                  "last_pts_us", (json_int_t)m->rw.end_pts_us, "seconds",
                                  first ? (m->rw.end_pts_us - first) / 1e6 : 0.0));
    json_object_set_new(j, "pinned", json_string(m->pinned));
    json_t *pre = preroll_json(h, m);
    if (pre)
        json_object_set_new(j, "preroll", pre);
    return j;
}

static struct emount *mount_of(struct ehttp *h, const char *name, size_t len)
{
    struct emount *m = edge_mount_find(h->core, name, len);
    return m && m->has_audio ? m : NULL;
}

/* The JSON body as an object, or NULL after answering 400. */
static json_t *body_json(struct elistener *l)
{
    json_error_t err;
    json_t *j = l->body ? json_loadb(l->body, l->body_len, 0, &err) : NULL;
    if (!json_is_object(j)) {
        json_decref(j);
        api_error(l, 400, "expected a JSON object body");
        return NULL;
    }
    return j;
}

static void promote(struct elistener *l, struct emount *m, const char *who, bool release)
{
    const char *enc = "";
    json_t *j = NULL;
    if (!release) {
        if (!(j = body_json(l)))
            return;
        enc = json_string_value(json_object_get(j, "encoder"));
        if (!enc || !enc[0] || strlen(enc) > WIRE_ENCODER_MAX) {
            json_decref(j);
            return api_error(l, 400, "\"encoder\": expected an encoder name");
        }
    }
    if (merge_pin(l->http->core, m, enc) != FC_OK) {
        json_decref(j);
        return api_error(l, 409, "no stream of that encoder on this mount");
    }
    log_info(l->http->log, "api token=%s peer=%s mount=%s %s encoder=%s", who, l->peer, m->name,
             release ? "release" : "promote", release ? "-" : enc);
    send_json_obj(l, 200, json_pack("{s:s, s:s}", "mount", m->name, "pinned", m->pinned));
    json_decref(j);
}

static void metadata(struct elistener *l, struct emount *m, const char *who)
{
    json_t *j = body_json(l);
    if (!j)
        return;
    const char *title = json_string_value(json_object_get(j, "title"));
    const char *url = json_string_value(json_object_get(j, "url"));
    if (!title || strlen(title) > WIRE_META_MAX || (url && strlen(url) > WIRE_META_MAX)) {
        json_decref(j);
        return api_error(l, 400, "\"title\": expected a string (\"url\" optional)");
    }
    edge_mount_title(l->http->core, m, m->rw.abs_end, title, url ? url : "");
    log_info(l->http->log, "api token=%s peer=%s mount=%s metadata title=\"%s\"", who, l->peer,
             m->name, m->title);
    send_json_obj(l, 200, json_pack("{s:s, s:s}", "mount", m->name, "title", m->title));
    json_decref(j);
}

/* ---- listeners, here and on the workers ---- */

static json_t *listener_obj(const struct api_listener *a)
{
    return json_pack("{s:I, s:s, s:s, s:s, s:I, s:f, s:I, s:f, s:s}", "id", (json_int_t)a->id,
                     "mount", a->mount, "peer", a->peer, "protocol", a->icy ? "icy" : "raw",
                     "position", (json_int_t)a->pos, "behind_live_s", a->behind_s, "bytes",
                     (json_int_t)a->bytes, "connected_s", a->connected_s, "user_agent", a->ua);
}

size_t admin_local_listeners(struct ehttp *h, const char *mount, struct api_listener *out,
                             size_t max)
{
    size_t n = 0;
    double now = ev_time();
    for (const struct hmount *hm = h->hmounts; hm; hm = hm->next) {
        const struct emount *m = hm->m;
        if (mount[0] && strcmp(mount, m->name) != 0)
            continue;
        for (const struct list_node *k = hm->listeners.next; k != &hm->listeners && n < max;
             k = k->next) {
            const struct elistener *l = container_of(k, struct elistener, mlink);
            struct api_listener *a = &out[n++];
            memset(a, 0, sizeof(*a));
            a->id = l->id;
            a->pos = l->pos;
            a->bytes = l->bytes_sent;
            uint64_t pts = l->pos < m->rw.abs_end && l->pos >= m->rw.abs_start
                               ? rewind_pts_at(&m->rw, l->pos) : m->rw.end_pts_us;
            a->behind_s = (m->rw.end_pts_us - pts) / 1e6;
            a->connected_s = now - (l->start_wall > 0 ? l->start_wall : now);
            a->icy = l->icy;
            snprintf(a->mount, sizeof(a->mount), "%s", m->name);
            snprintf(a->peer, sizeof(a->peer), "%s", l->peer);
            snprintf(a->ua, sizeof(a->ua), "%s", l->ua);
        }
    }
    return n;
}

bool admin_local_kick(struct ehttp *h, uint64_t id)
{
    for (struct hmount *hm = h->hmounts; hm; hm = hm->next)
        for (struct list_node *k = hm->listeners.next; k != &hm->listeners; k = k->next) {
            struct elistener *l = container_of(k, struct elistener, mlink);
            if (l->id == id) {
                listener_close(l, "kicked by the admin API");
                return true;
            }
        }
    return false;
}

static void pending_finish(struct api_pending *p)
{
    struct ehttp *h = p->h;
    for (struct api_pending **pp = &h->pendings; *pp; pp = &(*pp)->next)
        if (*pp == p) {
            *pp = p->next;
            break;
        }
    ev_timer_stop(h->loop, &p->timeout);
    if (p->l) {
        p->l->pending = NULL;
        if (p->kind == API_QUERY_LIST)
            send_json_obj(p->l, 200, json_pack("{s:O}", "listeners", p->list));
        else if (p->found)
            listener_respond(p->l, 204, "application/json", "", 0, NULL);
        else
            api_error(p->l, 404, "no such listener");
    }
    json_decref(p->list);
    free(p);
}

static struct api_pending *pending_find(struct ehttp *h, uint32_t query)
{
    for (struct api_pending *p = h->pendings; p; p = p->next)
        if (p->query == query)
            return p;
    return NULL;
}

void api_query_reply(struct ehttp *h, uint32_t query, const struct api_listener *ls, size_t n)
{
    struct api_pending *p = pending_find(h, query);
    for (size_t i = 0; p && p->list && i < n && json_array_size(p->list) < API_LIST_MAX; i++)
        json_array_append_new(p->list, listener_obj(&ls[i]));
}

void api_query_done(struct ehttp *h, uint32_t query, bool found)
{
    struct api_pending *p = pending_find(h, query);
    if (!p)
        return;
    p->found |= found;
    if (--p->waiting == 0)
        pending_finish(p);
}

void admin_forget(struct elistener *l)
{
    l->pending->l = NULL;
    l->pending = NULL;
}

static void on_query_timeout(EV_P_ ev_timer *t, int revents)
{
    struct api_pending *p = container_of(t, struct api_pending, timeout);
    log_warn(p->h->log, "api query %u: %u worker(s) did not answer within %.1f s", p->query,
             p->waiting, API_QUERY_TIMEOUT_S);
    pending_finish(p);
}

/* List (kind LIST) or kick (KICK) across the workers, or here without workers. */
static void listeners_query(struct elistener *l, int kind, const char *mount, uint64_t id,
                            const char *who)
{
    struct ehttp *h = l->http;
    if (kind == API_QUERY_KICK)
        log_info(h->log, "api token=%s peer=%s kick listener=%llu", who, l->peer,
                 (unsigned long long)id);
    if (!h->query_workers) {
        if (kind == API_QUERY_KICK)
            return admin_local_kick(h, id) ? listener_respond(l, 204, "application/json", "", 0, NULL)
                                           : api_error(l, 404, "no such listener");
        size_t cap = h->n_listeners + 1;
        struct api_listener *ls = calloc(cap, sizeof(*ls));
        json_t *arr = json_array();
        size_t n = ls ? admin_local_listeners(h, mount, ls, cap) : 0;
        for (size_t i = 0; i < n; i++)
            json_array_append_new(arr, listener_obj(&ls[i]));
        free(ls);
        return send_json_obj(l, 200, json_pack("{s:o}", "listeners", arr));
    }
    struct api_pending *p = calloc(1, sizeof(*p));
    if (!p)
        return api_error(l, 503, "out of memory");
    p->h = h;
    p->l = l;
    p->kind = kind;
    p->query = ++h->next_query;
    p->list = kind == API_QUERY_LIST ? json_array() : NULL;
    p->next = h->pendings;
    h->pendings = p;
    l->pending = p;
    l->state = L_RESPONSE; /* routed: further bytes only tell us if it leaves */
    ev_timer_init(&p->timeout, on_query_timeout, API_QUERY_TIMEOUT_S, 0);
    ev_timer_start(h->loop, &p->timeout);
    p->waiting = h->query_workers(h->extra_ctx, p->query, kind, mount, id);
    if (p->waiting == 0)
        pending_finish(p);
}

/* ---- analytics (the store answers on its own time) ---- */

static void analytics_done(void *ctx, int status, char *body, size_t len)
{
    struct api_pending *p = ctx;
    struct ehttp *h = p->h;
    for (struct api_pending **pp = &h->pendings; *pp; pp = &(*pp)->next)
        if (*pp == p) {
            *pp = p->next;
            break;
        }
    if (p->l) {
        p->l->pending = NULL;
        const char *ctype = status == 200 && p->kind == API_QUERY_AN_SESSIONS
                                ? "application/x-ndjson" : "application/json";
        if (body || status == 200)
            listener_respond(p->l, status, ctype, body ? body : "", len, NULL);
        else
            api_error(p->l, status, "analytics database unavailable");
    }
    free(body);
    free(p);
}

static void analytics_route(struct elistener *l, bool sessions, const char *query, size_t qn)
{
    struct ehttp *h = l->http;
    if (!authorize(l, false))
        return;
    if (!h->an)
        return api_error(l, 404, "analytics is off (start the edge with --analytics)");
    struct an_query q;
    const char *why;
    if (an_query_parse(query, qn, sessions ? AN_Q_SESSIONS : AN_Q_FIGURES,
                       (int64_t)clock_wall_us(), &q, &why) != FC_OK)
        return api_error(l, 400, why);
    struct api_pending *p = calloc(1, sizeof(*p));
    if (!p)
        return api_error(l, 503, "out of memory");
    p->h = h;
    p->l = l;
    p->kind = sessions ? API_QUERY_AN_SESSIONS : API_QUERY_AN_FIGURES;
    p->next = h->pendings;
    h->pendings = p;
    l->pending = p;
    l->state = L_RESPONSE; /* routed: further bytes only tell us if it leaves */
    analytics_query(h->an, &q, analytics_done, p);
}

/* ---- routing ---- */

static bool seg_is(const char *p, size_t n, const char *want)
{
    return n == strlen(want) && memcmp(p, want, n) == 0;
}

/* `mount=NAME` from the query, into out ("" if absent or invalid). */
static void query_mount(const char *q, size_t qn, char *out, size_t cap)
{
    out[0] = '\0';
    for (size_t i = 0; i + 6 <= qn; i++)
        if ((i == 0 || q[i - 1] == '&') && memcmp(q + i, "mount=", 6) == 0) {
            size_t k = 0;
            for (i += 6; i < qn && q[i] != '&' && k + 1 < cap; i++)
                out[k++] = q[i];
            out[k] = '\0';
            return;
        }
}

static void mount_routes(struct elistener *l, const char *rest, size_t n, int method)
{
    struct ehttp *h = l->http;
    const char *slash = memchr(rest, '/', n);
    size_t name_len = slash ? (size_t)(slash - rest) : n;
    const char *action = slash ? slash + 1 : "";
    size_t action_len = slash ? n - name_len - 1 : 0;
    bool write = method != HTTP_GET && method != HTTP_HEAD;
    if (action_len == 0 && write)
        return api_error(l, 405, "method not allowed");
    if (action_len && !seg_is(action, action_len, "promote") && !seg_is(action, action_len, "metadata"))
        return api_error(l, 404, "no such endpoint");
    if (action_len && (method == HTTP_GET || method == HTTP_HEAD ||
                       (method == HTTP_DELETE && !seg_is(action, action_len, "promote"))))
        return api_error(l, 405, "method not allowed");
    const char *who = authorize(l, write);
    if (!who)
        return;
    struct emount *m = mount_of(h, rest, name_len);
    if (!m)
        return api_error(l, 404, "no such mount");
    if (!action_len)
        return send_json_obj(l, 200, mount_obj(h, m));
    if (seg_is(action, action_len, "promote"))
        return promote(l, m, who, method == HTTP_DELETE);
    return metadata(l, m, who);
}

bool admin_route(struct elistener *l, const char *path, size_t n, const char *query, size_t qn)
{
    if (n < 5 || memcmp(path, "/api/", 5) != 0)
        return false;
    struct ehttp *h = l->http;
    int method = l->parser.method;
    if (n < 8 || memcmp(path, "/api/v1/", 8) != 0) {
        api_error(l, 404, "no such endpoint (the API is under /api/v1/)");
        return true;
    }
    const char *r = path + 8;
    size_t rn = n - 8;
    bool get = method == HTTP_GET || method == HTTP_HEAD;
    if (seg_is(r, rn, "mounts") || seg_is(r, rn, "relays") || seg_is(r, rn, "listeners")) {
        if (!get) {
            api_error(l, 405, "method not allowed");
            return true;
        }
        if (!authorize(l, false))
            return true;
        if (seg_is(r, rn, "relays")) {
            send_json_obj(l, 200, json_pack("{s:o}", "relays", core_relays_json(h->core)));
        } else if (seg_is(r, rn, "mounts")) {
            json_t *arr = json_array();
            for (const struct emount *m = h->core->mounts; m; m = m->next)
                if (m->has_audio)
                    json_array_append_new(arr, mount_obj(h, m));
            send_json_obj(l, 200, json_pack("{s:o}", "mounts", arr));
        } else {
            char mount[WIRE_MOUNT_MAX + 1];
            query_mount(query, qn, mount, sizeof(mount));
            listeners_query(l, API_QUERY_LIST, mount, 0, "");
        }
        return true;
    }
    if (seg_is(r, rn, "analytics") || seg_is(r, rn, "analytics/sessions")) {
        if (!get)
            api_error(l, 405, "method not allowed");
        else
            analytics_route(l, rn > 9, query, qn);
        return true;
    }
    if (rn > 7 && memcmp(r, "mounts/", 7) == 0) {
        mount_routes(l, r + 7, rn - 7, method);
        return true;
    }
    if (rn > 10 && memcmp(r, "listeners/", 10) == 0) {
        if (method != HTTP_DELETE) {
            api_error(l, 405, "method not allowed");
            return true;
        }
        const char *who = authorize(l, true);
        if (!who)
            return true;
        char idtext[24];
        size_t k = rn - 10 < sizeof(idtext) - 1 ? rn - 10 : sizeof(idtext) - 1;
        memcpy(idtext, r + 10, k);
        idtext[k] = '\0';
        char *end;
        errno = 0;
        unsigned long long id = strtoull(idtext, &end, 10);
        if (!isdigit((unsigned char)idtext[0]) || *end || errno || k != rn - 10) {
            api_error(l, 400, "expected a listener id");
            return true;
        }
        listeners_query(l, API_QUERY_KICK, "", id, who);
        return true;
    }
    api_error(l, 404, "no such endpoint");
    return true;
}
