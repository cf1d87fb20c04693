/* publish.c - frame, stamp, MAC and send every frame to every target. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include "clock.h"
#include "shim.h"
#include "text.h"

#define FRAME_MSG_OVERHEAD 256 /* msgpack fields around the payload, tag, prefix */

static void target_on_up(struct link *l);

static const struct link_ops target_ops = {.on_up = target_on_up};

/* A (re)connected relay gets the last SHIM_RESEND_S of frames again, oldest first. */
static void target_on_up(struct link *l)
{
    struct target *t = l->owner;
    struct shim *s = t->shim;
    double since = ev_now(s->loop) - SHIM_RESEND_S;
    uint32_t resent = 0;
    for (uint32_t i = 0; i < SHIM_RESEND_FRAMES; i++) {
        uint32_t k = (s->recent_pos + i) % SHIM_RESEND_FRAMES;
        if (s->recent[k] && s->recent_at[k] >= since && link_send(l, s->recent[k]) == FC_OK)
            resent++;
    }
    if (resent)
        log_info(&s->log, "target=%s reconnected: resent %u recent frames", t->addr.text, resent);
}

enum fc_err shim_targets_start(struct shim *s)
{
    for (int i = 0; i < s->n_targets; i++) {
        struct target *t = &s->targets[i];
        t->shim = s;
        t->udp_fd = -1;
        if (t->addr.proto == NET_UDP) {
            t->udp_fd = net_udp_sender(&t->addr, 1);
            if (t->udp_fd < 0) {
                log_error(&s->log, "target=%s: %s", t->addr.text, strerror(errno));
                return FC_IO;
            }
            continue;
        }
        if (link_init(&t->link, s->loop, &target_ops, &s->keys, &s->log, "shim", s->opt.node,
                      SHIM_TCP_QUEUE_MSGS, SHIM_TCP_QUEUE_BYTES) != FC_OK)
            return FC_NOMEM;
        t->link.owner = t;
        t->link.keep_queue = true; /* frames wait through a reconnect, oldest dropped first */
        link_connect(&t->link, &t->addr);
    }
    return FC_OK;
}

void shim_targets_free(struct shim *s)
{
    for (uint32_t i = 0; i < SHIM_RESEND_FRAMES; i++) {
        msgref_put(s->recent[i]);
        s->recent[i] = NULL;
    }
    for (int i = 0; i < s->n_targets; i++) {
        struct target *t = &s->targets[i];
        if (t->udp_fd >= 0) {
            close(t->udp_fd);
            t->udp_fd = -1;
        } else if (t->link.rd) {
            link_stop(&t->link);
            link_free(&t->link);
        }
    }
}

static void target_send(struct target *t, struct msgref *m)
{
    if (t->udp_fd >= 0) {
        /* One datagram per message, without the TCP length prefix. A refused or full socket
         * loses this copy only; other paths carry it. */
        if (send(t->udp_fd, m->data + WIRE_LEN_BYTES, m->len - WIRE_LEN_BYTES, MSG_DONTWAIT) < 0)
            t->dropped++;
        else
            t->sent++;
        return;
    }
    enum fc_err err = link_send(&t->link, m);
    if (err == FC_LIMIT && outq_shift(&t->link.q)) {
        t->dropped++;
        err = link_send(&t->link, m);
    }
    if (err == FC_OK)
        t->sent++;
    else
        t->dropped++;
}

static uint64_t frame_hash(const uint8_t *p, size_t len)
{
    uint64_t h = 0xcbf29ce484222325ull; /* FNV-1a 64 */
    for (size_t i = 0; i < len; i++)
        h = (h ^ p[i]) * 0x100000001b3ull;
    return h;
}

static bool history_has(const struct shim *s, uint64_t h)
{
    for (uint32_t i = 0; i < SHIM_HISTORY; i++)
        if (s->history[i] == h)
            return true;
    return false;
}

void shim_input_reset(struct shim *s, enum fc_codec codec, bool resync)
{
    framer_init(s->framer, codec);
    /* A fresh decoder for each connection: the bit reservoir does not carry over a cut. */
    level_free(&s->meter);
    if (level_init(&s->meter, codec) != FC_OK)
        log_warn(&s->log, "mount=%s cannot set up the level decoder", s->opt.mount);
    s->codec = codec;
    s->stamp.resync = true;
    s->resyncing = resync && s->seq > 0;
    s->resync_seen = 0;
}

void shim_set_meta(struct shim *s, const char *title, const char *url)
{
    char fixed[WIRE_META_MAX + 1];
    if (!text_utf8_valid(title)) {
        text_latin1_to_utf8(title, fixed, sizeof(fixed)); /* Shoutcast titles are often Latin-1 */
        title = fixed;
    }
    if (strcmp(title, s->title) == 0 && strcmp(url, s->url) == 0)
        return;
    snprintf(s->title, sizeof(s->title), "%s", title);
    snprintf(s->url, sizeof(s->url), "%s", url);
    s->meta_dirty = true;
    log_info(&s->log, "mount=%s title=\"%s\"", s->opt.mount, s->title);
}

/* After a reconnect, skip the frames of the upstream's burst that we already sent. */
static bool already_sent(struct shim *s, const uint8_t *frame, size_t len)
{
    if (!s->resyncing)
        return false;
    bool seen = history_has(s, frame_hash(frame, len));
    if (seen && s->resync_seen++ < SHIM_HISTORY) {
        s->frames_skipped++;
        return true;
    }
    s->resyncing = false;
    log_info(&s->log, "mount=%s reconnect overlap: skipped %u frames already sent",
             s->opt.mount, s->resync_seen);
    return false;
}

void shim_batch_add(struct shim *s, const uint8_t *frame, const struct frame_info *info)
{
    if (s->n_batch == SHIM_BATCH_FRAMES || s->batch_used + info->len > sizeof(s->batch_buf))
        shim_flush_batch(s, clock_wall_us());
    size_t i = s->n_batch++;
    memcpy(s->batch_buf + s->batch_used, frame, info->len);
    s->batch_off[i] = (uint32_t)s->batch_used;
    s->batch_len[i] = info->len;
    s->batch_samples[i] = info->samples;
    s->batch_rate[i] = info->sample_rate;
    s->batch_channels[i] = info->channels;
    s->batch_used += info->len;
}

void shim_audio_in(struct shim *s, const uint8_t *data, size_t len)
{
    while (len > 0) {
        size_t took = framer_feed(s->framer, data, len);
        data += took;
        len -= took;
        const uint8_t *frame;
        struct frame_info info;
        while (framer_next(s->framer, &frame, &info) == FC_OK) {
            if (already_sent(s, frame, info.len))
                continue;
            shim_batch_add(s, frame, &info);
        }
    }
}

/* Test hook (like FC_DEBUG_SHORTIO): FC_DEBUG_DROP_SEQ=5,300 makes those seqs vanish on every
 * path, as if lost everywhere, so tests can prove the edge patches them from a backup. */
static bool debug_drop(const struct shim *s, uint64_t seq)
{
    for (int i = 0; i < s->n_debug_drop; i++)
        if (s->debug_drop[i] == seq)
            return true;
    return false;
}

static void send_frame(struct shim *s, size_t i, uint64_t pts_us)
{
    struct wire_frame f;
    memcpy(f.mount, s->opt.mount, sizeof(f.mount));
    memcpy(f.encoder, s->opt.encoder, sizeof(f.encoder));
    f.priority = s->opt.priority;
    f.session = s->session;
    f.seq = s->seq;
    f.pts_us = pts_us;
    f.codec = s->codec;
    f.sample_rate = s->batch_rate[i];
    f.channels = s->batch_channels[i];
    f.samples = s->batch_samples[i];
    f.payload = s->batch_buf + s->batch_off[i];
    f.payload_len = s->batch_len[i];
    level_frame(&s->meter, f.payload, f.payload_len, f.level);
    double now = ev_now(s->loop);
    f.has_meta = s->title[0] && (s->meta_dirty || now - s->meta_last_s >= SHIM_META_REPEAT_S);
    if (f.has_meta) {
        memcpy(f.title, s->title, sizeof(f.title));
        memcpy(f.url, s->url, sizeof(f.url));
        s->meta_dirty = false;
        s->meta_last_s = now;
    }
    const struct shim_station *st = &s->station;
    f.has_station = (st->name[0] || st->genre[0] || st->desc[0] || st->url[0] || st->bitrate) &&
                    (s->station_dirty || f.has_meta);
    if (f.has_station) {
        memcpy(f.st_name, st->name, sizeof(f.st_name));
        memcpy(f.st_genre, st->genre, sizeof(f.st_genre));
        memcpy(f.st_desc, st->desc, sizeof(f.st_desc));
        memcpy(f.st_url, st->url, sizeof(f.st_url));
        f.st_bitrate = st->bitrate;
        s->station_dirty = false;
    }
    size_t cap = FRAME_MSG_OVERHEAD + f.payload_len + (f.has_meta ? 2 * WIRE_META_MAX : 0) +
                 (f.has_station ? 4 * WIRE_STATION_MAX : 0);
    struct msgref *m = msgref_new((uint32_t)cap);
    size_t len;
    if (!m)
        return;
    if (wire_encode_frame(mac_keyring_send(&s->keys), &f, m->data + WIRE_LEN_BYTES,
                          cap - WIRE_LEN_BYTES, &len) != FC_OK) {
        log_error(&s->log, "mount=%s seq=%llu cannot encode frame", s->opt.mount,
                  (unsigned long long)s->seq);
        msgref_put(m);
        return;
    }
    wire_put_len(m->data, (uint32_t)len);
    m->len = (uint32_t)(WIRE_LEN_BYTES + len);
    if (!debug_drop(s, f.seq)) {
        for (int t = 0; t < s->n_targets; t++)
            target_send(&s->targets[t], m);
        uint32_t k = s->recent_pos++ % SHIM_RESEND_FRAMES;
        msgref_put(s->recent[k]);
        s->recent[k] = m; /* the ring keeps our reference */
        s->recent_at[k] = now;
        s->recent_pos %= SHIM_RESEND_FRAMES;
    } else {
        msgref_put(m);
    }
    s->history[s->history_pos++ % SHIM_HISTORY] = frame_hash(f.payload, f.payload_len);
    s->seq++;
    s->frames_sent++;
}

void shim_flush_batch(struct shim *s, uint64_t arrival_us)
{
    uint64_t pts[SHIM_BATCH_FRAMES];
    if (s->n_batch == 0)
        return;
    if (stamper_batch(&s->stamp, arrival_us, s->batch_samples, s->batch_rate, s->n_batch, pts))
        log_info(&s->log, "mount=%s re-anchored PTS: arrivals ran late of the sample clock",
                 s->opt.mount);
    for (size_t i = 0; i < s->n_batch; i++)
        send_frame(s, i, pts[i]);
    s->n_batch = 0;
    s->batch_used = 0;
}
