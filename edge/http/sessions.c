/* sessions.c - listening sessions for analytics (docs/architecture.md §7.13): what a stream
 * listener heard, recorded when it closes; each HLS request, for the core to join into sessions
 * (edge/analytics/hls_join.c). The client's address is kept as a keyed hash unless
 * --analytics-raw-ip. Nothing here runs when analytics is off (the hooks are NULL). */
#include <sodium.h>
#include <stdio.h>
#include <string.h>
#include "../analytics/session.h"
#include "clock.h"
#include "http.h"
#include "text.h"

void sessions_init(struct ehttp *h)
{
    static const char ctx[] = "framecast analytics client hash v1";
    crypto_generichash(h->client_key, sizeof(h->client_key), (const uint8_t *)ctx,
                       sizeof(ctx) - 1, mac_keyring_send(&h->core->keys)->k, MAC_KEY_BYTES);
}

/* The address part of "1.2.3.4:5678" or "[::1]:5678". */
static size_t peer_ip(const char *peer, char *out, size_t cap)
{
    const char *end = strrchr(peer, ':');
    const char *start = peer;
    size_t n = end ? (size_t)(end - peer) : strlen(peer);
    if (n >= 2 && peer[0] == '[' && peer[n - 1] == ']')
        start++, n -= 2;
    if (n >= cap)
        n = cap - 1;
    memcpy(out, start, n);
    out[n] = '\0';
    return n;
}

static void client_of(const struct ehttp *h, const char *peer, char *out, size_t cap)
{
    char ip[64];
    size_t n = peer_ip(peer, ip, sizeof(ip));
    if (h->opt.analytics_raw_ip) {
        size_t k = n < cap - 1 ? n : cap - 1;
        memcpy(out, ip, k);
        out[k] = '\0';
        return;
    }
    uint8_t d[16];
    crypto_generichash(d, sizeof(d), (const uint8_t *)ip, n, h->client_key,
                       sizeof(h->client_key));
    sodium_bin2hex(out, cap, d, sizeof(d));
}

static void hls_hit(struct elistener *l, const struct emount *m, uint64_t bytes, double audio_s,
                    uint64_t p0, uint64_t p1)
{
    struct ehttp *h = l->http;
    struct an_hls_hit hit;
    memset(&hit, 0, sizeof(hit));
    snprintf(hit.mount, sizeof(hit.mount), "%s", m->name);
    hit.at_us = clock_wall_us();
    hit.bytes = bytes;
    hit.audio_s = audio_s;
    hit.pts_first_us = p0;
    hit.pts_last_us = p1;
    snprintf(hit.ua, sizeof(hit.ua), "%s", l->ua);
    client_of(h, l->peer, hit.client, sizeof(hit.client));
    if (l->play_sid[0]) {
        snprintf(hit.key, sizeof(hit.key), "%s", l->play_sid);
    } else { /* derived: the same client and player make one session */
        uint8_t d[8];
        crypto_generichash_state st;
        crypto_generichash_init(&st, NULL, 0, sizeof(d));
        crypto_generichash_update(&st, (const uint8_t *)hit.client, strlen(hit.client) + 1);
        crypto_generichash_update(&st, (const uint8_t *)l->ua, strlen(l->ua));
        crypto_generichash_final(&st, d, sizeof(d));
        hit.key[0] = 'h';
        sodium_bin2hex(hit.key + 1, sizeof(hit.key) - 1, d, sizeof(d));
    }
    h->hls_hit(h->session_ctx, &hit);
}

void session_hls_playlist(struct elistener *l, const struct emount *m, size_t bytes)
{
    if (l->http->hls_hit)
        hls_hit(l, m, bytes, 0, 0, 0);
}

void session_query_sid(struct elistener *l, const char *q, size_t len)
{
    if (l->play_sid[0] || !l->http->hls_hit)
        return;
    for (size_t i = 0; i + 4 <= len;) {
        const char *amp = memchr(q + i, '&', len - i);
        size_t end = amp ? (size_t)(amp - q) : len;
        if (end - i > 4 && memcmp(q + i, "sid=", 4) == 0) {
            char v[sizeof(l->play_sid)];
            if (text_unescape(q + i + 4, end - i - 4, v, sizeof(v)) && v[0])
                memcpy(l->play_sid, v, sizeof(v));
            return;
        }
        i = end + 1;
    }
}

void session_closed(struct elistener *l)
{
    struct ehttp *h = l->http;
    const struct emount *m = l->mount;
    if (!m || l->paused)
        return;
    const struct rewind *rw = &m->rw;
    uint64_t last_pts = l->pos > rw->abs_start && l->pos <= rw->abs_end
                            ? rewind_pts_at(rw, l->pos) : l->start_pts_us;
    if (l->hls_seg) {
        if (!h->hls_hit)
            return;
        bool whole = l->end_abs && l->pos >= l->end_abs;
        double audio_s = whole && last_pts > l->start_pts_us ? (last_pts - l->start_pts_us) / 1e6 : 0;
        return hls_hit(l, m, l->bytes_sent, audio_s, l->start_pts_us, whole ? last_pts : 0);
    }
    if (!h->session_out)
        return;
    struct an_session s;
    memset(&s, 0, sizeof(s));
    snprintf(s.id, sizeof(s.id), "%016llx", (unsigned long long)l->id);
    snprintf(s.mount, sizeof(s.mount), "%s", m->name);
    s.proto = l->icy ? AN_ICY : AN_RAW;
    s.start_us = (uint64_t)(l->start_wall * 1e6);
    s.end_us = clock_wall_us();
    double connected = s.end_us > s.start_us ? (s.end_us - s.start_us) / 1e6 : 0;
    s.preroll_s = l->preroll_s;
    s.listened_s = connected > l->preroll_s ? connected - l->preroll_s : 0;
    s.is_short = s.listened_s < h->opt.analytics_min_s;
    s.bytes = l->bytes_sent;
    s.timeshift_s = l->timeshift_s;
    s.pts_first_us = l->start_pts_us;
    s.pts_last_us = last_pts;
    snprintf(s.ua, sizeof(s.ua), "%s", l->ua);
    client_of(h, l->peer, s.client, sizeof(s.client));
    h->session_out(h->session_ctx, &s);
}
