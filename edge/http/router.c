/* router.c - what each request path gets (docs/architecture.md §7.2): the mount's audio (live,
 * time-shifted or a download), JSON, playlists, HLS. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "http.h"
#include "preroll.h"
#include "request.h"

/* 416 with the range held, as JSON. */
static void respond_range(struct elistener *l, struct emount *m, const char *why)
{
    char body[320];
    uint64_t first = rewind_first_pts(&m->rw), last = m->rw.end_pts_us;
    int n = snprintf(body, sizeof(body),
                     "{\"error\":\"%s\",\"status\":416,\"first\":%.3f,\"last\":%.3f,"
                     "\"seconds\":%.3f}\n",
                     why, first / 1e6, last / 1e6, first ? (last - first) / 1e6 : 0.0);
    listener_respond(l, 416, "application/json", body, (size_t)n, NULL);
}

/*
 * Where the listener starts: live minus --burst, or ?offset / ?at; with &duration, where it
 * stops. Answers 416 (and returns false) when the time is not in the buffer.
 */
static bool choose_span(struct elistener *l, struct emount *m, const struct stream_req *rq,
                        uint64_t *found_pts)
{
    struct ehttp *h = l->http;
    uint64_t first = rewind_first_pts(&m->rw), last = m->rw.end_pts_us, target;
    l->burst_s = rq->has_burst ? rq->burst_s : h->opt.burst_s;
    uint64_t burst_us = (uint64_t)(l->burst_s * 1e6);
    if (rq->has_offset && rq->offset_s == 0 && !rq->has_duration) {
        /* ?offset=0 is plain live */
        target = last > burst_us ? last - burst_us : 0;
    } else if (rq->has_at || rq->has_offset) {
        double t = rq->has_at ? rq->at_s * 1e6 : (double)last - rq->offset_s * 1e6;
        if (t < (double)first || t >= (double)last) {
            respond_range(l, m, "time outside the rewind buffer");
            return false;
        }
        target = (uint64_t)t;
        l->paced = !rq->has_duration;
    } else {
        target = last > burst_us ? last - burst_us : 0;
    }
    l->pos = rewind_seek(&m->rw, target, found_pts);
    l->start_pts_us = *found_pts;
    l->start_wall = http_now(h);
    if (rq->has_duration) {
        uint64_t end_pts = *found_pts + (uint64_t)(rq->duration_s * 1e6), end_found;
        if (end_pts > last) {
            respond_range(l, m, "span reaches past live");
            return false;
        }
        l->end_abs = rewind_seek(&m->rw, end_pts, &end_found);
        if (l->end_abs <= l->pos) {
            respond_range(l, m, "empty span");
            return false;
        }
    }
    return true;
}

void stream_start(struct elistener *l, struct emount *m, const struct stream_req *rq)
{
    struct ehttp *h = l->http;
    char head[4096], extra[256] = "";
    uint64_t found_pts = 0;
    if (preroll_wait(l, m, rq))
        return; /* an ad server is asked first; called again when it answered */
    if (!choose_span(l, m, rq, &found_pts))
        return;
    l->icy = l->icy && !l->end_abs; /* a download is a file: no ICY blocks in it */
    if (l->icy) {
        snprintf(extra, sizeof(extra), "icy-metaint: %u\r\n", h->opt.metaint);
        l->metaint_left = h->opt.metaint;
    }
    if (l->end_abs) {
        time_t t = (time_t)(found_pts / 1000000);
        struct tm tm;
        char when[32];
        gmtime_r(&t, &tm);
        strftime(when, sizeof(when), "%Y%m%dT%H%M%SZ", &tm);
        snprintf(extra, sizeof(extra),
                 "Content-Length: %llu\r\nContent-Disposition: attachment; "
                 "filename=\"%s-%s.%s\"\r\n",
                 (unsigned long long)(l->end_abs - l->pos), m->name, when,
                 m->codec == FC_CODEC_ADTS ? "aac" : "mp3");
    }
    size_t k = strlen(extra);
    snprintf(extra + k, sizeof(extra) - k, "%s", h->worker_header);
    char station[1200] = "";
    if (m->has_station)
        snprintf(station, sizeof(station), "icy-genre: %s\r\nicy-description: %s\r\nicy-url: %s\r\n",
                 m->st_genre, m->st_desc, m->st_url);
    unsigned br = m->st_bitrate ? m->st_bitrate : m->bitrate / 1000;
    int n = snprintf(head, sizeof(head),
                     "HTTP/1.0 200 OK\r\nContent-Type: %s\r\n%sicy-name: %s\r\n%sicy-br: %u\r\n"
                     "ice-audio-info: ice-samplerate=%u;ice-bitrate=%u;ice-channels=%u\r\n"
                     "icy-pub: 0\r\nX-Framecast-Start: %.6f\r\n"
                     "Cache-Control: no-cache, no-store\r\nPragma: no-cache\r\n"
                     "Expires: Mon, 26 Jul 1997 05:00:00 GMT\r\n" CORS_HEADERS SERVER_HEADER
                     "Connection: close\r\n\r\n",
                     listener_content_type(m->codec), extra,
                     m->has_station && m->st_name[0] ? m->st_name : m->name, station, br,
                     m->sample_rate, br, m->channels, found_pts / 1e6);
    log_info(h->log, "listener=%s mount=%s start behind_live_s=%.1f%s%s", l->peer, m->name,
             (m->rw.end_pts_us - found_pts) / 1e6, l->paced ? " time-shifted" : "",
             l->end_abs ? " download" : "");
    preroll_attach(l, m, rq);
    listener_serve_span(l, m, head, (size_t)n, NULL, 0);
}

static void send_json(struct elistener *l, char *json)
{
    if (!json)
        return listener_respond_error(l, 503, "out of memory");
    listener_respond(l, 200, "application/json", json, strlen(json), NULL);
    free(json);
}

static void send_metrics(struct elistener *l)
{
    size_t len = 0;
    char *text = edge_http_metrics(l->http, &len);
    if (!text)
        return listener_respond_error(l, 503, "out of memory");
    listener_respond(l, 200, "text/plain; version=0.0.4; charset=utf-8", text, len, NULL);
    free(text);
}

static bool path_is(const char *p, size_t n, const char *want)
{
    return n == strlen(want) && memcmp(p, want, n) == 0;
}

static bool ends_with(const char *p, size_t n, const char *suffix)
{
    size_t k = strlen(suffix);
    return n > k && memcmp(p + n - k, suffix, k) == 0;
}

/* A mount with audio named by `name` minus `suffix_len` trailing bytes, or NULL. */
static struct emount *mount_named(struct ehttp *h, const char *name, size_t len)
{
    struct emount *m = edge_mount_find(h->core, name, len);
    return m && m->has_audio ? m : NULL;
}

/* /<mount>/hls/<N>.<ext>: returns true (and the segment number) if `rest` has that shape. */
static bool segment_path(const char *rest, size_t len, uint64_t *seg)
{
    char num[24];
    const char *dot = memchr(rest, '.', len);
    size_t digits = dot ? (size_t)(dot - rest) : 0;
    if (digits == 0 || digits >= sizeof(num))
        return false;
    for (size_t i = 0; i < digits; i++)
        if (rest[i] < '0' || rest[i] > '9')
            return false;
    memcpy(num, rest, digits);
    num[digits] = '\0';
    *seg = strtoull(num, NULL, 10);
    return true;
}

/* Everything under a mount: the audio, playlists, HLS, the rewind summary. An exact mount name
 * wins over a suffix, so a mount may itself be called "x.m3u". */
static void route_mount(struct elistener *l, const char *name, size_t len,
                        const struct stream_req *rq)
{
    struct ehttp *h = l->http;
    struct emount *m = mount_named(h, name, len);
    if (m)
        return stream_start(l, m, rq);
    static const char *const suffixes[] = {".m3u8", ".pls", ".m3u", "/rewind"};
    for (size_t i = 0; i < FC_ARRAY_LEN(suffixes); i++) {
        size_t k = strlen(suffixes[i]);
        if (!ends_with(name, len, suffixes[i]) || !(m = mount_named(h, name, len - k)))
            continue;
        switch (i) {
        case 0: return hls_playlist(l, m, rq->dvr_s);
        case 1: return playlist_pls(l, m);
        case 2: return playlist_m3u(l, m);
        default: return send_json(l, edge_api_rewind_json(m));
        }
    }
    const char *hls = memmem(name, len, "/hls/", 5);
    uint64_t seg;
    if (hls && (m = mount_named(h, name, (size_t)(hls - name))) &&
        segment_path(hls + 5, len - (size_t)(hls + 5 - name), &seg))
        return hls_segment(l, m, seg);
    listener_respond_error(l, 404, "no such mount");
}

void edge_route(struct elistener *l)
{
    struct ehttp *h = l->http;
    struct http_parser_url u;
    struct stream_req rq;
    const char *why = "";
    http_parser_url_init(&u);
    if (l->url_len == 0 || http_parser_parse_url(l->url, l->url_len, 0, &u) != 0 ||
        !(u.field_set & (1 << UF_PATH)))
        return listener_respond_error(l, 400, "malformed URL");
    const char *path = l->url + u.field_data[UF_PATH].off;
    size_t path_len = u.field_data[UF_PATH].len;
    bool has_query = u.field_set & (1 << UF_QUERY);
    const char *query = has_query ? l->url + u.field_data[UF_QUERY].off : "";
    size_t query_len = has_query ? u.field_data[UF_QUERY].len : 0;
    session_query_sid(l, query, query_len);
    if (l->parser.method == HTTP_OPTIONS)
        return listener_respond(l, 204, "text/plain", "", 0, NULL);
    /* The admin API needs the core: a worker hands it over. */
    bool api = path_len >= 5 && memcmp(path, "/api/", 5) == 0;
    if (api && h->forward && h->forward(h->forward_ctx, l, h->req_cur, h->req_cur_len))
        return;
    if (api && admin_route(l, path, path_len, query, query_len))
        return;
    if (l->parser.method != HTTP_GET && l->parser.method != HTTP_HEAD)
        return listener_respond_error(l, 405, "method not allowed");
    if (request_parse_query(query, query_len, &rq, &why) != FC_OK)
        return listener_respond_error(l, 400, why);
    /* "/" is the player page for browsers and the JSON list for everyone else (issue 2). The
     * core process answers what needs its state (streams, links, every worker's listeners). */
    bool core_json = (path_len == 1 && !l->wants_html) || path_is(path, path_len, "/status-json.xsl") ||
                     path_is(path, path_len, "/metrics");
    if (core_json && h->forward && h->forward(h->forward_ctx, l, h->req_cur, h->req_cur_len))
        return;
    if (path_len == 1 && !l->wants_html)
        return send_json(l, edge_api_mounts_json(h));
    if (static_serve(l, path, path_len))
        return;
    if (path_len == 1)
        return send_json(l, edge_api_mounts_json(h));
    if (path_is(path, path_len, "/status-json.xsl"))
        return playlist_status_json(l);
    if (path_is(path, path_len, "/metrics"))
        return send_metrics(l);
    if (path_len > 10 && memcmp(path, "/hls/", 5) == 0 && ends_with(path, path_len, ".m3u8"))
        return hls_master(l, path + 5, path_len - 10);
    return route_mount(l, path + 1, path_len - 1, &rq);
}

