/* source_in.c - --source-listen: accept an Icecast source push (ffmpeg icecast://, Liquidsoap,
 * BUTT, darkice, ezstream), and Icecast's /admin/metadata title updates.
 *
 * Handshake (Icecast 2 conventions): `SOURCE /mount ICE/1.0` or `PUT /mount HTTP/1.1` (with
 * `Expect: 100-continue` answered before the body), HTTP Basic auth with user `source` and
 * --source-password, Content-Type audio/mpeg (MP3) or audio/aac / audio/aacp (ADTS), ice-*
 * headers carried to the edge as station fields. 401 wrong password, 404 other mount, 403 a
 * second source on the busy mount, 415 other formats, 400 garbage, 431 headers over
 * SOURCE_REQ_MAX, and a handshake not done in SOURCE_HANDSHAKE_S or a source silent for
 * SOURCE_STALL_S is closed. `GET /admin/metadata?mount=/m&mode=updinfo&song=T[&charset=C]`
 * sets the title (converted to UTF-8 with iconv).
 */
#include <errno.h>
#include <iconv.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>
#include "clock.h"
#include "shim.h"
#include "text.h"

static void on_src_read(EV_P_ ev_io *w, int revents);

static void conn_close(struct source_conn *c, const char *why)
{
    struct shim *s = c->shim;
    ev_io_stop(s->loop, &c->rio);
    ev_timer_stop(s->loop, &c->timer);
    close(c->fd);
    if (s->source == c) {
        shim_flush_batch(s, clock_wall_us());
        s->source = NULL;
        log_warn(&s->log, "source=%s mount=%s disconnected: %s", c->peer, s->opt.mount, why);
    } else {
        log_info(&s->log, "source=%s closed: %s", c->peer, why);
    }
    free(c);
}

/* Answer and close (the handshake failed or it was an admin request). */
static void reply_close(struct source_conn *c, int status, const char *text, const char *body,
                        const char *why)
{
    char buf[768];
    const char *auth = status == 401 ? "WWW-Authenticate: Basic realm=\"framecast\"\r\n" : "";
    int n = snprintf(buf, sizeof(buf),
                     "HTTP/1.0 %d %s\r\nServer: framecast-shim/1\r\n%sContent-Type: %s\r\n"
                     "Content-Length: %zu\r\nConnection: close\r\n\r\n%s",
                     status, text, auth, body[0] == '<' ? "text/xml" : "text/plain", strlen(body),
                     body);
    (void)!write(c->fd, buf, (size_t)n);
    if (status >= 400)
        log_warn(&c->shim->log, "source=%s refused: %d %s (%s)", c->peer, status, text, why);
    conn_close(c, why);
}

static bool header_is(const struct source_conn *c, const char *name)
{
    return c->field_len == strlen(name) && strncasecmp(c->field, name, c->field_len) == 0;
}

static void copy_value(const struct source_conn *c, char *out, size_t max)
{
    size_t n = c->value_len < max ? c->value_len : max;
    memcpy(out, c->value, n);
    out[n] = '\0';
}

static void header_done(struct source_conn *c)
{
    struct shim_station *st = &c->station;
    if (!c->field)
        return;
    if (header_is(c, "authorization"))
        copy_value(c, c->auth, sizeof(c->auth) - 1);
    else if (header_is(c, "content-type"))
        copy_value(c, c->ctype, sizeof(c->ctype) - 1);
    else if (header_is(c, "expect"))
        c->expect_continue = c->value_len >= 12 && strncasecmp(c->value, "100-continue", 12) == 0;
    else if (header_is(c, "ice-name") || header_is(c, "icy-name"))
        copy_value(c, st->name, WIRE_STATION_MAX);
    else if (header_is(c, "ice-genre") || header_is(c, "icy-genre"))
        copy_value(c, st->genre, WIRE_STATION_MAX);
    else if (header_is(c, "ice-description") || header_is(c, "icy-description"))
        copy_value(c, st->desc, WIRE_STATION_MAX);
    else if (header_is(c, "ice-url") || header_is(c, "icy-url"))
        copy_value(c, st->url, WIRE_STATION_MAX);
    else if (header_is(c, "ice-bitrate") || header_is(c, "icy-br")) {
        char v[16];
        copy_value(c, v, sizeof(v) - 1);
        st->bitrate = (uint32_t)strtoul(v, NULL, 10);
    }
    c->field = c->value = NULL;
    c->field_len = c->value_len = 0;
}

static int on_field(http_parser *p, const char *at, size_t len)
{
    struct source_conn *c = p->data;
    if (c->value)
        header_done(c);
    if (!c->field)
        c->field = at;
    c->field_len += len;
    return 0;
}

static int on_value(http_parser *p, const char *at, size_t len)
{
    struct source_conn *c = p->data;
    if (!c->value)
        c->value = at;
    c->value_len += len;
    return 0;
}

static int on_url(http_parser *p, const char *at, size_t len)
{
    struct source_conn *c = p->data;
    if (!c->url)
        c->url = at;
    c->url_len += len;
    return 0;
}

static int on_headers_complete(http_parser *p)
{
    struct source_conn *c = p->data;
    header_done(c);
    c->headers_done = true;
    http_parser_pause(p, 1); /* what follows is audio, not HTTP */
    return 0;
}

/* HTTP Basic with user "source" and the source password, compared in constant time. */
static bool authorized(const struct source_conn *c)
{
    const struct shim *s = c->shim;
    char decoded[256];
    size_t n = 0;
    if (strncasecmp(c->auth, "Basic ", 6) != 0)
        return false;
    if (sodium_base642bin((unsigned char *)decoded, sizeof(decoded) - 1, c->auth + 6,
                          strlen(c->auth + 6), " ", &n, NULL,
                          sodium_base64_VARIANT_ORIGINAL) != 0)
        return false;
    decoded[n] = '\0';
    char *colon = strchr(decoded, ':');
    if (!colon || (size_t)(colon - decoded) != 6 || memcmp(decoded, "source", 6) != 0)
        return false;
    const char *pw = colon + 1;
    size_t want = strlen(s->opt.source_password);
    bool ok = strlen(pw) == want && sodium_memcmp(pw, s->opt.source_password, want) == 0;
    sodium_memzero(decoded, sizeof(decoded));
    return ok;
}

/* The request path names our mount ("/m" for --mount m). */
static bool our_mount(const struct source_conn *c, const char *path, size_t len)
{
    size_t m = strlen(c->shim->opt.mount);
    return len == m + 1 && path[0] == '/' && memcmp(path + 1, c->shim->opt.mount, m) == 0;
}

static enum fc_codec codec_of(const char *ctype)
{
    if (strncasecmp(ctype, "audio/mpeg", 10) == 0 || strncasecmp(ctype, "audio/mp3", 9) == 0)
        return FC_CODEC_MP3;
    if (strncasecmp(ctype, "audio/aac", 9) == 0 || strncasecmp(ctype, "audio/aacp", 10) == 0 ||
        strncasecmp(ctype, "audio/x-aac", 11) == 0)
        return FC_CODEC_ADTS;
    return FC_CODEC_NONE;
}

/* Titles from playout software may be Latin-1 (or another charset): store UTF-8. */
static void to_utf8(const char *charset, const char *in, char *out, size_t cap)
{
    if (!charset[0] || strcasecmp(charset, "utf-8") == 0 || strcasecmp(charset, "utf8") == 0) {
        snprintf(out, cap, "%s", in);
        return;
    }
    iconv_t cd = iconv_open("UTF-8", charset);
    if (cd == (iconv_t)-1) {
        snprintf(out, cap, "%s", in);
        return;
    }
    char *ip = (char *)in, *op = out;
    size_t il = strlen(in), ol = cap - 1;
    iconv(cd, &ip, &il, &op, &ol);
    *op = '\0';
    iconv_close(cd);
}

static void admin_metadata(struct source_conn *c, const char *query, size_t qlen)
{
    struct shim *s = c->shim;
    char song[WIRE_META_MAX + 1], utf8[WIRE_META_MAX + 1];
    char mount[WIRE_MOUNT_MAX + 2] = "", mode[16] = "", charset[32] = "";
    if (!authorized(c))
        return reply_close(c, 401, "Unauthorized", "", "admin: bad credentials");
    text_query_value(query, qlen, "mount", mount, sizeof(mount));
    text_query_value(query, qlen, "mode", mode, sizeof(mode));
    text_query_value(query, qlen, "charset", charset, sizeof(charset));
    if (!our_mount(c, mount, strlen(mount)))
        return reply_close(c, 404, "Not Found", "Source does not exist\n", "admin: other mount");
    if (strcmp(mode, "updinfo") != 0 || !text_query_value(query, qlen, "song", song, sizeof(song)))
        return reply_close(c, 400, "Bad Request", "No such action\n", "admin: need mode=updinfo&song=");
    to_utf8(charset, song, utf8, sizeof(utf8));
    shim_set_meta(s, utf8, s->url);
    reply_close(c, 200, "OK",
                "<?xml version=\"1.0\"?>\n<iceresponse><message>Metadata update successful"
                "</message><return>1</return></iceresponse>\n",
                "admin: title set");
}

/* Headers complete: decide. Returns false if the connection was closed. */
static bool handshake(struct source_conn *c)
{
    struct shim *s = c->shim;
    struct http_parser_url u;
    http_parser_url_init(&u);
    if (!c->url || http_parser_parse_url(c->url, c->url_len, 0, &u) != 0 ||
        !(u.field_set & (1 << UF_PATH))) {
        reply_close(c, 400, "Bad Request", "", "malformed request line");
        return false;
    }
    const char *path = c->url + u.field_data[UF_PATH].off;
    size_t plen = u.field_data[UF_PATH].len;
    if (c->parser.method == HTTP_GET && plen == 15 && memcmp(path, "/admin/metadata", 15) == 0) {
        const char *q = (u.field_set & (1 << UF_QUERY)) ? c->url + u.field_data[UF_QUERY].off : "";
        admin_metadata(c, q, (u.field_set & (1 << UF_QUERY)) ? u.field_data[UF_QUERY].len : 0);
        return false;
    }
    if (c->parser.method != HTTP_SOURCE && c->parser.method != HTTP_PUT) {
        reply_close(c, 405, "Method Not Allowed", "", "not SOURCE or PUT");
        return false;
    }
    if (!authorized(c)) {
        reply_close(c, 401, "Unauthorized", "", "bad credentials");
        return false;
    }
    if (!our_mount(c, path, plen)) {
        reply_close(c, 404, "Not Found", "", "not our mount");
        return false;
    }
    enum fc_codec codec = s->opt.codec != FC_CODEC_NONE ? s->opt.codec : codec_of(c->ctype);
    if (codec == FC_CODEC_NONE) {
        reply_close(c, 415, "Unsupported Media Type", "", "content type not MP3 or AAC");
        return false;
    }
    if (s->source) {
        reply_close(c, 403, "Forbidden", "Mountpoint in use\n", "mount busy");
        return false;
    }
    const char *ok = c->expect_continue ? "HTTP/1.1 100 Continue\r\n\r\n"
                                        : "HTTP/1.0 200 OK\r\nServer: framecast-shim/1\r\n\r\n";
    if (write(c->fd, ok, strlen(ok)) < 0) {
        conn_close(c, strerror(errno));
        return false;
    }
    s->source = c;
    s->station = c->station;
    s->station_dirty = true;
    shim_input_reset(s, codec, false);
    ev_timer_stop(s->loop, &c->timer);
    c->last_audio = ev_now(s->loop);
    ev_timer_set(&c->timer, 1.0, 1.0); /* checks the stall limit every second */
    ev_timer_start(s->loop, &c->timer);
    log_info(&s->log, "source=%s mount=%s connected method=%s codec=%s name=\"%s\"", c->peer,
             s->opt.mount, http_method_str(c->parser.method),
             codec == FC_CODEC_ADTS ? "adts" : "mp3", c->station.name);
    return true;
}

static void audio_in(struct source_conn *c, const uint8_t *data, size_t len)
{
    c->last_audio = ev_now(c->shim->loop);
    shim_audio_in(c->shim, data, len);
    shim_flush_batch(c->shim, clock_wall_us());
}

static void on_src_read(EV_P_ ev_io *w, int revents)
{
    struct source_conn *c = container_of(w, struct source_conn, rio);
    if (c->shim->source == c) {
        uint8_t buf[16384];
        ssize_t n = read(c->fd, buf, sizeof(buf));
        if (n > 0) {
            audio_in(c, buf, (size_t)n);
        } else if (n == 0 || (errno != EAGAIN && errno != EINTR)) {
            conn_close(c, n == 0 ? "source closed" : strerror(errno));
        }
        return;
    }
    if (c->req_len == SHIM_SOURCE_REQ_MAX)
        return reply_close(c, 431, "Request Header Fields Too Large", "", "handshake too long");
    ssize_t n = read(c->fd, c->req + c->req_len, SHIM_SOURCE_REQ_MAX - c->req_len);
    if (n == 0)
        return conn_close(c, "closed during the handshake");
    if (n < 0) {
        if (errno != EAGAIN && errno != EINTR)
            conn_close(c, strerror(errno));
        return;
    }
    size_t parsed = http_parser_execute(&c->parser, &c->shim->src_http, c->req + c->req_len,
                                        (size_t)n);
    size_t start = c->req_len;
    c->req_len += (uint32_t)n;
    if (c->headers_done) {
        if (!handshake(c))
            return;
        /* Bytes after the headers in this read are already audio. Paused in on_headers_complete,
         * http_parser returns the count up to, not including, the byte that ended the headers
         * (the final LF): that byte is not audio. */
        parsed++;
        if (start + parsed < c->req_len)
            audio_in(c, (const uint8_t *)c->req + start + parsed, c->req_len - start - parsed);
        return;
    }
    if (HTTP_PARSER_ERRNO(&c->parser) != HPE_OK)
        return reply_close(c, 400, "Bad Request", "", http_errno_description(HTTP_PARSER_ERRNO(&c->parser)));
    if (c->req_len == SHIM_SOURCE_REQ_MAX)
        return reply_close(c, 431, "Request Header Fields Too Large", "", "handshake too long");
}

static void on_src_timer(EV_P_ ev_timer *w, int revents)
{
    struct source_conn *c = container_of(w, struct source_conn, timer);
    if (c->shim->source != c)
        return conn_close(c, "handshake not completed in time");
    if (ev_now(EV_A) - c->last_audio >= SHIM_SOURCE_STALL_S)
        return conn_close(c, "no audio for 10 s (stalled source)");
}

static void on_src_accept(EV_P_ ev_io *w, int revents)
{
    struct shim *s = container_of(w, struct shim, src_accept);
    for (int i = 0; i < 16; i++) {
        struct sockaddr_storage ss;
        socklen_t sl = sizeof(ss);
        int fd = accept4(s->src_fd, (struct sockaddr *)&ss, &sl, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EMFILE || errno == ENFILE) {
                /* Out of descriptors: pause accepting for a second instead of spinning. */
                log_warn(&s->log, "source-listen: %s (pausing 1 s)", strerror(errno));
                ev_io_stop(EV_A_ w);
                ev_timer_start(EV_A_ & s->src_pause);
            }
            return;
        }
        struct source_conn *c = calloc(1, sizeof(*c));
        if (!c) {
            close(fd);
            continue;
        }
        c->shim = s;
        c->fd = fd;
        net_sockaddr_str((struct sockaddr *)&ss, c->peer, sizeof(c->peer));
        http_parser_init(&c->parser, HTTP_REQUEST);
        c->parser.data = c;
        ev_io_init(&c->rio, on_src_read, fd, EV_READ);
        ev_io_start(EV_A_ & c->rio);
        ev_timer_init(&c->timer, on_src_timer, SHIM_SOURCE_HANDSHAKE_S, 0);
        ev_timer_start(EV_A_ & c->timer);
    }
}

static void on_src_pause(EV_P_ ev_timer *w, int revents)
{
    struct shim *s = container_of(w, struct shim, src_pause);
    ev_io_start(EV_A_ & s->src_accept);
}

enum fc_err shim_source_start(struct shim *s)
{
    ev_timer_init(&s->src_pause, on_src_pause, 1.0, 0);
    s->src_fd = net_tcp_listen(&s->opt.source_listen);
    if (s->src_fd < 0) {
        log_error(&s->log, "source-listen %s: %s", s->opt.source_listen.text, strerror(errno));
        return FC_IO;
    }
    memset(&s->src_http, 0, sizeof(s->src_http));
    s->src_http.on_url = on_url;
    s->src_http.on_header_field = on_field;
    s->src_http.on_header_value = on_value;
    s->src_http.on_headers_complete = on_headers_complete;
    ev_io_init(&s->src_accept, on_src_accept, s->src_fd, EV_READ);
    ev_io_start(s->loop, &s->src_accept);
    log_info(&s->log, "source-listen %s mount=/%s", s->opt.source_listen.text, s->opt.mount);
    return FC_OK;
}

void shim_source_free(struct shim *s)
{
    if (s->source)
        conn_close(s->source, "shutdown");
    if (s->src_fd > 0) {
        ev_io_stop(s->loop, &s->src_accept);
        ev_timer_stop(s->loop, &s->src_pause);
        close(s->src_fd);
        s->src_fd = -1;
    }
}
