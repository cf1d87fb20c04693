/* out_hls.c - HLS packed audio from the rewind buffer (RFC 8216 §3.4, §4.3, §6.2.2).
 *
 * Segment N of a mount holds the frames whose (output, wall-clock) PTS lies in
 * [N * L, (N + 1) * L), L = --hls-segment: every edge fed the same frames cuts and names the same
 * segments. Each segment starts with an ID3v2.4 PRIV frame
 * `com.apple.streaming.transportStreamTimestamp` carrying the first frame's PTS as a 33-bit
 * 90 kHz MPEG-2 timestamp (RFC 8216 §3.4). The media playlist lists the newest complete segments
 * (a live window of EDGE_HLS_WINDOW, or ?dvr=S seconds of rewind) with
 * EXT-X-PROGRAM-DATE-TIME on each; segments stay downloadable for as long as the rewind buffer
 * holds them, far beyond the §6.2.2 minimum (the playlist's duration plus one segment).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "clock.h"
#include "http.h"

#define HLS_PRIV_OWNER "com.apple.streaming.transportStreamTimestamp"
#define HLS_ID3_BYTES (10 + 10 + sizeof(HLS_PRIV_OWNER) + 8) /* header, frame header, owner+NUL, ts */
#define HLS_PLAYLIST_MAX (64 * 1024)

static uint64_t seg_us(const struct ehttp *h)
{
    return (uint64_t)(h->opt.hls_segment_s * 1e6);
}

static void syncsafe(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 21 & 0x7f), p[1] = (uint8_t)(v >> 14 & 0x7f);
    p[2] = (uint8_t)(v >> 7 & 0x7f), p[3] = (uint8_t)(v & 0x7f);
}

/* The ID3 tag that opens a packed-audio segment (RFC 8216 §3.4). */
static void id3_timestamp(uint64_t pts_us, uint8_t out[HLS_ID3_BYTES])
{
    uint64_t ts = (pts_us * 9 / 100) & ((1ull << 33) - 1); /* 90 kHz, 33 bits */
    uint32_t frame_len = (uint32_t)(sizeof(HLS_PRIV_OWNER) + 8);
    memcpy(out, "ID3\x04\x00\x00", 6);
    syncsafe(out + 6, 10 + frame_len);
    memcpy(out + 10, "PRIV", 4);
    syncsafe(out + 14, frame_len);
    out[18] = out[19] = 0;
    memcpy(out + 20, HLS_PRIV_OWNER, sizeof(HLS_PRIV_OWNER));
    for (int i = 0; i < 8; i++)
        out[20 + sizeof(HLS_PRIV_OWNER) + i] = (uint8_t)(ts >> (56 - 8 * i));
}

/* Bounds of segment n: false unless the buffer holds all of it. */
static bool segment_span(const struct ehttp *h, const struct emount *m, uint64_t n,
                         uint64_t *start_abs, uint64_t *end_abs, uint64_t *start_pts,
                         uint64_t *end_pts)
{
    uint64_t from = n * seg_us(h), to = from + seg_us(h);
    if (from < rewind_first_pts(&m->rw) || to > m->rw.end_pts_us)
        return false;
    *start_abs = rewind_seek(&m->rw, from, start_pts);
    *end_abs = rewind_seek(&m->rw, to, end_pts);
    return *end_abs > *start_abs;
}

static const char *seg_ext(const struct emount *m)
{
    return m->codec == FC_CODEC_ADTS ? "aac" : "mp3";
}

void hls_playlist(struct elistener *l, struct emount *m, double dvr_s)
{
    struct ehttp *h = l->http;
    uint64_t L = seg_us(h);
    if (m->rw.end_pts_us < L)
        return listener_respond_error(l, 404, "no complete segment yet");
    uint64_t last = m->rw.end_pts_us / L; /* the segment still filling */
    uint64_t want = dvr_s > 0 ? (uint64_t)ceil(dvr_s * 1e6 / (double)L) : EDGE_HLS_WINDOW;
    uint64_t first = last > want ? last - want : 0;
    while (first < last && first * L < rewind_first_pts(&m->rw))
        first++;
    if (first >= last)
        return listener_respond_error(l, 404, "no complete segment yet");
    char *pl = malloc(HLS_PLAYLIST_MAX);
    if (!pl)
        return listener_respond_error(l, 503, "out of memory");
    int target = (int)ceil(h->opt.hls_segment_s);
    size_t n = (size_t)snprintf(pl, HLS_PLAYLIST_MAX,
                                "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:%d\n"
                                "#EXT-X-MEDIA-SEQUENCE:%llu\n",
                                target, (unsigned long long)first);
    for (uint64_t seg = first; seg < last && n + 512 < HLS_PLAYLIST_MAX; seg++) {
        uint64_t a, b, p0, p1;
        char when[40];
        if (!segment_span(h, m, seg, &a, &b, &p0, &p1))
            continue;
        clock_iso_ms(p0, when, sizeof(when));
        n += (size_t)snprintf(pl + n, HLS_PLAYLIST_MAX - n,
                              "#EXT-X-PROGRAM-DATE-TIME:%s\n#EXTINF:%.5f,\n%s/hls/%llu.%s\n", when,
                              (p1 - p0) / 1e6, m->name, (unsigned long long)seg, seg_ext(m));
    }
    listener_respond(l, 200, "application/vnd.apple.mpegurl", pl, n, NULL);
    session_hls_playlist(l, m, n);
    free(pl);
}

void hls_segment(struct elistener *l, struct emount *m, uint64_t seg)
{
    uint64_t a, b, p0, p1;
    if (!segment_span(l->http, m, seg, &a, &b, &p0, &p1))
        return listener_respond_error(l, 404, "no such segment (not complete, or evicted)");
    uint8_t id3[HLS_ID3_BYTES];
    char head[768];
    id3_timestamp(p0, id3);
    int n = snprintf(head, sizeof(head),
                     "HTTP/1.0 200 OK\r\nContent-Type: %s\r\nContent-Length: %llu\r\n"
                     "Cache-Control: public, max-age=86400, immutable\r\n" CORS_HEADERS
                     SERVER_HEADER "%sConnection: close\r\n\r\n",
                     listener_content_type(m->codec),
                     (unsigned long long)(sizeof(id3) + (b - a)), l->http->worker_header);
    l->pos = a;
    l->end_abs = b;
    l->icy = false; /* a segment is a file; ffmpeg asks for ICY on every request */
    l->hls_seg = true;
    l->start_pts_us = p0;
    l->http->c.hls_segments++;
    listener_serve_span(l, m, head, (size_t)n, id3, sizeof(id3));
}

/* RFC 6381 codecs: MP3 is mp4a.40.34; AAC-LC mp4a.40.2. */
static const char *codecs(const struct emount *m)
{
    return m->codec == FC_CODEC_ADTS ? "mp4a.40.2" : "mp4a.40.34";
}

/*
 * RFC 8216 §4.3.4.2: BANDWIDTH is the peak segment bit rate, AVERAGE-BANDWIDTH the average,
 * ID3 tags included. Measured over the newest complete segments (VBR and ADTS frames vary),
 * with a 10% margin on the peak for segments yet to come; the frame header's rate before any.
 */
static void segment_rates(const struct ehttp *h, const struct emount *m, uint32_t *peak,
                          uint32_t *avg)
{
    uint64_t L = seg_us(h), last = m->rw.end_pts_us / L, bytes = 0, us = 0;
    double best = 0;
    for (uint64_t seg = last > 10 ? last - 10 : 0; seg < last; seg++) {
        uint64_t a, b, p0, p1;
        if (!segment_span(h, m, seg, &a, &b, &p0, &p1) || p1 <= p0)
            continue;
        double bps = (double)(b - a + HLS_ID3_BYTES) * 8e6 / (double)(p1 - p0);
        if (bps > best)
            best = bps;
        bytes += b - a + HLS_ID3_BYTES;
        us += p1 - p0;
    }
    if (us == 0) {
        *peak = m->bitrate + m->bitrate / 10 + 1000;
        *avg = m->bitrate + 200;
        return;
    }
    *peak = (uint32_t)(best * 1.1) + 1;
    *avg = (uint32_t)((double)bytes * 8e6 / (double)us) + 1;
}

void hls_master(struct elistener *l, const char *group, size_t len)
{
    struct ehttp *h = l->http;
    char pl[8192];
    size_t n = (size_t)snprintf(pl, sizeof(pl), "#EXTM3U\n#EXT-X-VERSION:3\n");
    int found = 0;
    for (int g = 0; g < h->opt.n_hls_groups; g++) {
        const struct hls_group *hg = &h->opt.hls_groups[g];
        if (strlen(hg->name) != len || memcmp(hg->name, group, len) != 0)
            continue;
        for (int i = 0; i < hg->n_mounts; i++) {
            struct emount *m = edge_mount_find(h->core, hg->mounts[i], strlen(hg->mounts[i]));
            if (!m || !m->has_audio || n + 256 > sizeof(pl))
                continue;
            uint32_t peak, avg;
            segment_rates(h, m, &peak, &avg);
            n += (size_t)snprintf(pl + n, sizeof(pl) - n,
                                  "#EXT-X-STREAM-INF:BANDWIDTH=%u,AVERAGE-BANDWIDTH=%u,"
                                  "CODECS=\"%s\"\n/%s.m3u8\n",
                                  peak, avg, codecs(m), m->name);
            found++;
        }
    }
    if (!found)
        return listener_respond_error(l, 404, "no such HLS group (or no mount of it has audio)");
    listener_respond(l, 200, "application/vnd.apple.mpegurl", pl, n, NULL);
}
