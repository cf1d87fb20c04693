/* pull.c - --pull URL: an Icecast/Shoutcast mount read with libcurl's multi-socket API on libev.
 *
 * Sends `Icy-MetaData: 1`; when the answer carries `icy-metaint`, ICY blocks are split off the
 * audio (icy.h) and StreamTitle becomes frame meta. Any end of the transfer (HTTP error, upstream
 * closed, stalled for SHIM_PULL_STALL_S) is logged and retried with backoff.
 */
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include "clock.h"
#include "shim.h"

static void pull_connect(struct shim *s);

static void on_pull_done(struct httpc *h, CURL *easy, CURLcode rc)
{
    struct shim *s = h->owner;
    long code = 0;
    curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &code);
    ev_timer_stop(s->loop, &s->pull_flush);
    shim_flush_batch(s, s->batch_arrival_us);
    log_warn(&s->log, "upstream=%s ended: %s (HTTP %ld)", s->opt.pull_url,
             rc == CURLE_OK ? "server closed the stream" : curl_easy_strerror(rc), code);
    httpc_remove(h, easy);
    curl_easy_cleanup(easy);
    s->easy = NULL;
    double delay = backoff_next(&s->pull_bo);
    log_info(&s->log, "upstream=%s reconnecting in %.1f s", s->opt.pull_url, delay);
    ev_timer_set(&s->pull_retry, delay, 0);
    ev_timer_start(s->loop, &s->pull_retry);
}

static void on_icy_audio(void *ctx, const uint8_t *data, size_t len)
{
    shim_audio_in(ctx, data, len);
}

/* A block with neither StreamTitle nor StreamUrl is malformed (or padding): the audio around it
 * is kept, the block dropped and logged (rate-limited), and the title stays as it was. */
static void on_icy_meta(void *ctx, const char *title, const char *url)
{
    struct shim *s = ctx;
    uint64_t suppressed;
    if (!title[0] && !url[0]) {
        s->icy_bad_blocks++;
        if (log_limit_pass(&s->icy_ll, ev_now(s->loop), &suppressed))
            log_warn(&s->log, "upstream=%s dropped an ICY block without StreamTitle "
                     "(total=%llu)", s->opt.pull_url, (unsigned long long)s->icy_bad_blocks);
        return;
    }
    shim_set_meta(s, title, url);
}

static enum fc_codec codec_from_type(const char *type)
{
    if (strncasecmp(type, "audio/aac", 9) == 0 || strncasecmp(type, "audio/aacp", 10) == 0 ||
        strncasecmp(type, "audio/x-aac", 11) == 0)
        return FC_CODEC_ADTS;
    return FC_CODEC_MP3;
}

/* First body bytes: the headers are complete, so pick the codec and set up the ICY demux. */
static void start_body(struct shim *s)
{
    enum fc_codec codec = s->opt.codec != FC_CODEC_NONE ? s->opt.codec
                                                        : codec_from_type(s->content_type);
    s->got_body = true;
    backoff_reset(&s->pull_bo);
    icy_demux_init(&s->icy, s->metaint);
    shim_input_reset(s, codec, true);
    log_info(&s->log, "upstream=%s connected content_type=%s codec=%s icy_metaint=%u",
             s->opt.pull_url, s->content_type[0] ? s->content_type : "?",
             codec == FC_CODEC_ADTS ? "adts" : "mp3", s->metaint);
}

static uint64_t batch_audio_us(const struct shim *s)
{
    uint64_t us = 0;
    for (size_t i = 0; i < s->n_batch; i++)
        us += clock_samples_to_us(s->batch_samples[i], s->batch_rate[i]);
    return us;
}

static size_t write_cb(char *data, size_t size, size_t n, void *userp)
{
    struct shim *s = userp;
    uint64_t now = clock_wall_us();
    uint64_t gap_us = s->got_body ? now - s->batch_arrival_us : 0; /* since the last chunk */
    if (!s->got_body)
        start_body(s);
    if (s->n_batch == 0)
        s->batch_first_us = now;
    uint64_t before_us = batch_audio_us(s);
    icy_demux_feed(&s->icy, (const uint8_t *)data, size * n, on_icy_audio, on_icy_meta, s);
    /* Chunks of a burst arrive back to back: stamp them as one batch, so the whole burst lands
     * in the past instead of each chunk pulling the anchor back (stamp.c). While the batch holds
     * much more audio than the time it took to arrive (a server's burst on connect), it waits for
     * a chunk that comes at real-time pace (the server's live edge) and is stamped with that
     * chunk's arrival, for at most SHIM_BURST_MAX_WAIT_US. Stamped at the burst's own last chunk,
     * the anchor would be late by the burst's transfer time, and the first real-time batch would
     * pull it back: PTS stepping backwards. In steady state a batch is stamped SHIM_COALESCE_S
     * after it came. */
    uint64_t audio_us = batch_audio_us(s), age_us = now - s->batch_first_us;
    bool bursting = audio_us > age_us + SHIM_BURST_MARGIN_US && age_us < SHIM_BURST_MAX_WAIT_US;
    bool live = gap_us >= (uint64_t)(SHIM_COALESCE_S * 1e6) && audio_us >= before_us &&
                audio_us - before_us <= gap_us + SHIM_BURST_MARGIN_US;
    s->batch_arrival_us = now;
    ev_timer_stop(s->loop, &s->pull_flush);
    ev_timer_set(&s->pull_flush,
                 bursting && !live ? (double)(SHIM_BURST_MAX_WAIT_US - age_us) / 1e6
                                   : SHIM_COALESCE_S, 0);
    ev_timer_start(s->loop, &s->pull_flush);
    return size * n;
}

static void header_value(const char *line, size_t len, char *out, size_t max)
{
    const char *colon = memchr(line, ':', len);
    size_t i = 0;
    if (!colon)
        return;
    const char *p = colon + 1, *end = line + len;
    while (p < end && (*p == ' ' || *p == '\t'))
        p++;
    while (end > p && (end[-1] == '\r' || end[-1] == '\n' || end[-1] == ' '))
        end--;
    for (; p < end && i + 1 < max; p++)
        out[i++] = *p;
    out[i] = '\0';
}

static size_t header_cb(char *line, size_t size, size_t n, void *userp)
{
    struct shim *s = userp;
    size_t len = size * n;
    char value[64] = "";
    if (len > 13 && strncasecmp(line, "content-type:", 13) == 0) {
        header_value(line, len, s->content_type, sizeof(s->content_type));
    } else if (len > 9 && strncasecmp(line, "icy-name:", 9) == 0) {
        header_value(line, len, s->station.name, sizeof(s->station.name));
        s->station_dirty = true;
    } else if (len > 10 && strncasecmp(line, "icy-genre:", 10) == 0) {
        header_value(line, len, s->station.genre, sizeof(s->station.genre));
        s->station_dirty = true;
    } else if (len > 16 && strncasecmp(line, "icy-description:", 16) == 0) {
        header_value(line, len, s->station.desc, sizeof(s->station.desc));
        s->station_dirty = true;
    } else if (len > 8 && strncasecmp(line, "icy-url:", 8) == 0) {
        header_value(line, len, s->station.url, sizeof(s->station.url));
        s->station_dirty = true;
    } else if (len > 12 && strncasecmp(line, "icy-metaint:", 12) == 0) {
        header_value(line, len, value, sizeof(value));
        long v = strtol(value, NULL, 10);
        s->metaint = v > 0 && v <= ICY_METAINT_MAX ? (uint32_t)v : 0;
    }
    return len;
}

static void pull_connect(struct shim *s)
{
    s->easy = curl_easy_init();
    if (!s->easy) {
        ev_timer_set(&s->pull_retry, backoff_next(&s->pull_bo), 0);
        ev_timer_start(s->loop, &s->pull_retry);
        return;
    }
    s->got_body = false;
    s->metaint = 0;
    s->content_type[0] = '\0';
    s->connects++;
    curl_easy_setopt(s->easy, CURLOPT_URL, s->opt.pull_url);
    curl_easy_setopt(s->easy, CURLOPT_HTTPHEADER, s->pull_headers);
    curl_easy_setopt(s->easy, CURLOPT_USERAGENT, "framecast-shim/1");
    curl_easy_setopt(s->easy, CURLOPT_WRITEFUNCTION, write_cb);
    curl_easy_setopt(s->easy, CURLOPT_WRITEDATA, s);
    curl_easy_setopt(s->easy, CURLOPT_HEADERFUNCTION, header_cb);
    curl_easy_setopt(s->easy, CURLOPT_HEADERDATA, s);
    curl_easy_setopt(s->easy, CURLOPT_FAILONERROR, 1L);
    curl_easy_setopt(s->easy, CURLOPT_FOLLOWLOCATION, 1L);
    curl_easy_setopt(s->easy, CURLOPT_MAXREDIRS, 5L);
    curl_easy_setopt(s->easy, CURLOPT_CONNECTTIMEOUT, 5L);
    curl_easy_setopt(s->easy, CURLOPT_LOW_SPEED_LIMIT, 1L);
    curl_easy_setopt(s->easy, CURLOPT_LOW_SPEED_TIME, (long)SHIM_PULL_STALL_S);
    curl_easy_setopt(s->easy, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(s->easy, CURLOPT_TCP_NODELAY, 1L);
    curl_easy_setopt(s->easy, CURLOPT_HTTP09_ALLOWED, 1L); /* "ICY 200 OK" servers */
    httpc_add(&s->http, s->easy);
}

static void on_pull_flush(EV_P_ ev_timer *w, int revents)
{
    struct shim *s = container_of(w, struct shim, pull_flush);
    shim_flush_batch(s, s->batch_arrival_us);
}

static void on_pull_retry(EV_P_ ev_timer *w, int revents)
{
    pull_connect(container_of(w, struct shim, pull_retry));
}

enum fc_err shim_pull_start(struct shim *s)
{
    s->pull_headers = curl_slist_append(NULL, "Icy-MetaData: 1");
    if (!s->pull_headers || httpc_init(&s->http, s->loop, on_pull_done, s) != FC_OK)
        return FC_NOMEM;
    ev_init(&s->pull_retry, on_pull_retry);
    ev_init(&s->pull_flush, on_pull_flush);
    backoff_reset(&s->pull_bo);
    pull_connect(s);
    return FC_OK;
}

void shim_pull_free(struct shim *s)
{
    if (!s->http.multi)
        return;
    ev_timer_stop(s->loop, &s->pull_retry);
    ev_timer_stop(s->loop, &s->pull_flush);
    if (s->easy) {
        httpc_remove(&s->http, s->easy);
        curl_easy_cleanup(s->easy);
        s->easy = NULL;
    }
    httpc_free(&s->http);
    curl_slist_free_all(s->pull_headers);
    s->pull_headers = NULL;
}
