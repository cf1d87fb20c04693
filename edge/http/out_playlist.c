/* out_playlist.c - player playlists (.pls, .m3u) and Icecast's /status-json.xsl shape, so
 * players and existing dashboards and exporters work unchanged. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "http.h"

/* The URL listeners use for this edge, from the request's Host header or the listen address. */
static void base_url(const struct elistener *l, char *out, size_t n)
{
    if (l->host[0])
        snprintf(out, n, "http://%s", l->host);
    else
        snprintf(out, n, "http://%s", l->http->opt.listen.text);
}

void playlist_pls(struct elistener *l, struct emount *m)
{
    char base[160], body[512];
    base_url(l, base, sizeof(base));
    int n = snprintf(body, sizeof(body),
                     "[playlist]\nNumberOfEntries=1\nFile1=%s/%s\nTitle1=%s\nLength1=-1\n"
                     "Version=2\n",
                     base, m->name, m->name);
    listener_respond(l, 200, "audio/x-scpls", body, (size_t)n, NULL);
}

void playlist_m3u(struct elistener *l, struct emount *m)
{
    char base[160], body[512];
    base_url(l, base, sizeof(base));
    int n = snprintf(body, sizeof(body), "#EXTM3U\n#EXTINF:-1,%s\n%s/%s\n", m->name, base,
                     m->name);
    listener_respond(l, 200, "audio/x-mpegurl", body, (size_t)n, NULL);
}

static json_t *source_json(const struct elistener *l, const struct emount *m, const char *base)
{
    char url[256], info[128], start[40];
    time_t t = (time_t)(rewind_first_pts(&m->rw) / 1000000);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(start, sizeof(start), "%Y-%m-%dT%H:%M:%S+0000", &tm);
    snprintf(url, sizeof(url), "%s/%s", base, m->name);
    snprintf(info, sizeof(info), "samplerate=%u;channels=%u;bitrate=%u", m->sample_rate,
             m->channels, m->bitrate / 1000);
    return json_pack("{s:s, s:I, s:s, s:s, s:I, s:I, s:s, s:s, s:s, s:s, s:s, s:s, s:n}",
                     "audio_info", info, "bitrate", (json_int_t)(m->bitrate / 1000), "genre",
                     "various", "listenurl", url, "listeners", (json_int_t)edge_http_listeners(m),
                     "listener_peak", (json_int_t)edge_http_listeners(m), "server_description",
                     "framecast edge", "server_name", m->name, "server_type",
                     listener_content_type(m->codec), "stream_start_iso8601", start, "title",
                     m->title, "server_url", url, "dummy");
}

void playlist_status_json(struct elistener *l)
{
    struct ehttp *h = l->http;
    char base[160];
    base_url(l, base, sizeof(base));
    json_t *sources = json_array();
    for (struct emount *m = h->core->mounts; m; m = m->next)
        if (m->has_audio)
            json_array_append_new(sources, source_json(l, m, base));
    /* Icecast gives one source as an object and several as an array; dashboards expect that. */
    json_t *source = json_array_size(sources) == 1 ? json_incref(json_array_get(sources, 0))
                                                   : json_incref(sources);
    json_decref(sources);
    json_t *root = json_pack("{s:{s:s, s:s, s:s, s:s, s:o}}", "icestats", "admin",
                             "admin@localhost", "host", l->host[0] ? l->host : "localhost",
                             "location", h->core->opt.node, "server_id", "framecast/1", "source",
                             source);
    char *text = root ? json_dumps(root, JSON_INDENT(2)) : NULL;
    json_decref(root);
    if (!text)
        return listener_respond_error(l, 503, "out of memory");
    listener_respond(l, 200, "application/json", text, strlen(text), NULL);
    free(text);
}
