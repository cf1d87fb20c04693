/*
 * fuzz_source_push.c - libFuzzer target for the shim's Icecast source handshake
 * (encoder-shim/source_in.c: request line, headers, Basic auth, Expect: 100-continue, ice-*
 * station fields, content type, /admin/metadata title updates).
 *
 * source_in.c is compiled in unchanged; only its socket calls (read, write, close) are routed to
 * an in-memory connection, so the product's own on_src_read() drives http_parser and the
 * handshake exactly as on a socket. The shim functions it calls in publish.c are recorders.
 *
 * Input: 1 flags byte, 1 byte seeding the read sizes, then the bytes the client sends.
 *   flags bits 0-1: --codec (0 detect, 1 mp3, 2 adts); bit 2: the mount already has a source;
 *   bit 3: the reply write fails; bit 4: the handshake timer fires instead of the client closing;
 *   bit 5: reads sometimes return EAGAIN.
 * The shim runs with --mount live --source-password hackme
 * (Authorization: Basic c291cmNlOmhhY2ttZQ==).
 *
 * Checks, besides the sanitizers: the connection is always closed and freed (LeakSanitizer) or
 * becomes the source; exactly one well-formed reply (status among those documented, a
 * Content-Length that matches its body) unless the client left first; a connection accepted as
 * the source hands on exactly the bytes after the blank line ending its headers, in order, and
 * nothing else; station fields and titles stay within their bounds.
 */
#include <errno.h>
#include <iconv.h>
#include <sodium.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "../../encoder-shim/shim.h"
#include "clock.h"
#include "text.h"

#include "fuzz_check.h"

#define FZ_FD 1000 /* the fake connection's descriptor (never a real one) */

/* The in-memory connection. */
static struct {
    const uint8_t *data;
    size_t len, off;
    uint32_t seed;
    bool eagain;      /* reads may return EAGAIN */
    bool last_eagain; /* never twice in a row, so every second read progresses */
    bool fail_write;
    bool closed;
    int writes;
    char reply[2048];
    size_t reply_len;
} io;

static uint32_t lcg(uint32_t *seed)
{
    *seed = *seed * 1103515245u + 12345u;
    return *seed >> 8;
}

static ssize_t fz_read(int fd, void *buf, size_t n)
{
    CHECK(fd == FZ_FD && !io.closed);
    if (io.off == io.len)
        return 0; /* the client has closed */
    uint32_t r = lcg(&io.seed);
    if (io.eagain && !io.last_eagain && (r & 3) == 0) {
        io.last_eagain = true;
        errno = EAGAIN;
        return -1;
    }
    io.last_eagain = false;
    size_t k = (r & 7) == 0 ? 1 + r % 9000 : 1 + r % 23;
    if (k > io.len - io.off)
        k = io.len - io.off;
    if (k > n)
        k = n;
    memcpy(buf, io.data + io.off, k);
    io.off += k;
    return (ssize_t)k;
}

static ssize_t fz_write(int fd, const void *buf, size_t n)
{
    CHECK(fd == FZ_FD && !io.closed);
    io.writes++;
    if (io.fail_write) {
        errno = EPIPE;
        return -1;
    }
    CHECK(io.reply_len + n < sizeof(io.reply));
    memcpy(io.reply + io.reply_len, buf, n);
    io.reply_len += n;
    io.reply[io.reply_len] = '\0';
    return (ssize_t)n;
}

static int fz_close(int fd)
{
    CHECK(fd == FZ_FD && !io.closed);
    io.closed = true;
    return 0;
}

#define read fz_read
#define write fz_write
#define close fz_close
#include "../../encoder-shim/source_in.c"
#undef read
#undef write
#undef close

/* ---- recorders for the publish.c functions source_in.c calls ---- */

static struct {
    uint8_t *audio; /* bytes handed to shim_audio_in, in order */
    size_t audio_len;
    int resets, metas, flushes;
} rec;

void shim_audio_in(struct shim *s, const uint8_t *data, size_t len)
{
    CHECK(len > 0 && rec.audio_len + len <= io.len);
    memcpy(rec.audio + rec.audio_len, data, len);
    rec.audio_len += len;
}

void shim_flush_batch(struct shim *s, uint64_t arrival_us)
{
    rec.flushes++;
}

void shim_input_reset(struct shim *s, enum fc_codec codec, bool resync)
{
    CHECK(codec == FC_CODEC_MP3 || codec == FC_CODEC_ADTS);
    CHECK(!resync);
    rec.resets++;
}

void shim_set_meta(struct shim *s, const char *title, const char *url)
{
    CHECK(strlen(title) <= WIRE_META_MAX && strlen(url) <= WIRE_META_MAX);
    rec.metas++;
}

/* ---- the harness ---- */

static struct shim S;
static struct source_conn busy; /* stands for a source already on the mount */

static void init_once(void)
{
    static bool done;
    if (done)
        return;
    CHECK(sodium_init() >= 0);
    rec.audio = malloc(1u << 20);
    CHECK(rec.audio);
    S.loop = ev_loop_new(EVFLAG_AUTO);
    CHECK(S.loop);
    log_init(&S.log, "shim", false);
    S.log.min = LOG_ERROR; /* refusals are warnings: one line per input otherwise */
    snprintf(S.opt.mount, sizeof(S.opt.mount), "live");
    S.opt.source_password = "hackme";
    /* The parser callbacks, as shim_source_start() sets them (without its listening socket). */
    S.src_http.on_url = on_url;
    S.src_http.on_header_field = on_field;
    S.src_http.on_header_value = on_value;
    S.src_http.on_headers_complete = on_headers_complete;
    done = true;
}

/* "HTTP/1.x NNN ...": the status, or -1. */
static int reply_status(const char *r)
{
    if (strncmp(r, "HTTP/1.0 ", 9) != 0 && strncmp(r, "HTTP/1.1 ", 9) != 0)
        return -1;
    if (r[9] < '1' || r[9] > '5' || r[10] < '0' || r[10] > '9' || r[11] < '0' || r[11] > '9' ||
        r[12] != ' ')
        return -1;
    return (r[9] - '0') * 100 + (r[10] - '0') * 10 + (r[11] - '0');
}

/* A refusal or admin answer: status line, headers with a Content-Length that matches the body. */
static void check_final_reply(int status)
{
    static const int ok[] = {200, 400, 401, 403, 404, 405, 415, 431};
    bool known = false;
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++)
        known |= status == ok[i];
    CHECK(known);
    const char *end = strstr(io.reply, "\r\n\r\n");
    CHECK(end);
    const char *cl = strstr(io.reply, "\r\nContent-Length: ");
    CHECK(cl && cl < end);
    size_t body = strtoul(cl + 18, NULL, 10);
    CHECK(io.reply_len == (size_t)(end + 4 - io.reply) + body);
    CHECK((status == 401) == (strstr(io.reply, "\r\nWWW-Authenticate: Basic") != NULL));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    init_once();
    if (size < 2 || size > (1u << 20))
        return 0;
    uint8_t flags = data[0];
    memset(&io, 0, sizeof(io));
    io.seed = data[1];
    io.data = data + 2;
    io.len = size - 2;
    io.fail_write = flags & 8;
    io.eagain = flags & 32;
    rec.audio_len = 0;
    rec.resets = rec.metas = rec.flushes = 0;

    S.opt.codec = (flags & 3) == 1 ? FC_CODEC_MP3 : (flags & 3) == 2 ? FC_CODEC_ADTS : FC_CODEC_NONE;
    S.source = (flags & 4) ? &busy : NULL;
    memset(&S.station, 0, sizeof(S.station));
    S.station_dirty = false;

    /* What on_src_accept() does for a new connection (but no ev_io_start: the fd is fake). */
    struct source_conn *c = calloc(1, sizeof(*c));
    CHECK(c);
    c->shim = &S;
    c->fd = FZ_FD;
    snprintf(c->peer, sizeof(c->peer), "127.0.0.1:40000");
    http_parser_init(&c->parser, HTTP_REQUEST);
    c->parser.data = c;
    ev_io_init(&c->rio, on_src_read, FZ_FD, EV_READ);
    ev_timer_init(&c->timer, on_src_timer, SHIM_SOURCE_HANDSHAKE_S, 0);
    ev_timer_start(S.loop, &c->timer);

    bool accepted = false;
    size_t header_end = 0; /* input offset where the audio starts, once accepted */
    for (int calls = 0; !io.closed && io.off < io.len; calls++) {
        CHECK(calls < 4 * (int)io.len + 8); /* every other read makes progress */
        size_t before = io.off;
        on_src_read(S.loop, &c->rio, EV_READ);
        if (!accepted && S.source == c) {
            accepted = true;
            header_end = before + (io.off - before) - rec.audio_len;
        }
    }
    if (!io.closed) {
        if ((flags & 16) && S.source != c)
            on_src_timer(S.loop, &c->timer, EV_TIMER);
        else
            on_src_read(S.loop, &c->rio, EV_READ); /* the client closes: read() returns 0 */
    }
    /* c is freed now. */
    CHECK(io.closed);
    CHECK(S.source == ((flags & 4) ? &busy : NULL));
    CHECK(rec.resets == (accepted ? 1 : 0));

    if (accepted) {
        CHECK(!(flags & 4) && !io.fail_write && io.writes == 1);
        CHECK(strcmp(io.reply, "HTTP/1.1 100 Continue\r\n\r\n") == 0 ||
              strcmp(io.reply, "HTTP/1.0 200 OK\r\nServer: framecast-shim/1\r\n\r\n") == 0);
        /* Everything after the headers, and only that, went on as audio. */
        CHECK(io.off == io.len && header_end <= io.len);
        CHECK(rec.audio_len == io.len - header_end);
        CHECK(memcmp(rec.audio, io.data + header_end, rec.audio_len) == 0);
        /* The headers end with an empty line: its LF, or CR and one more byte (LF; the distro's
         * http_parser is not built strict, so it takes any byte after that CR). */
        CHECK(header_end >= 2 &&
              (io.data[header_end - 1] == '\n' || io.data[header_end - 2] == '\r'));
        CHECK(strlen(S.station.name) <= WIRE_STATION_MAX &&
              strlen(S.station.genre) <= WIRE_STATION_MAX &&
              strlen(S.station.desc) <= WIRE_STATION_MAX &&
              strlen(S.station.url) <= WIRE_STATION_MAX && S.station_dirty);
        CHECK(rec.metas == 0);
        return 0;
    }
    CHECK(rec.audio_len == 0 && rec.flushes == 0 && !S.station_dirty);
    CHECK(io.writes <= 1);
    if (io.writes == 1 && !io.fail_write) {
        int status = reply_status(io.reply);
        check_final_reply(status);
        CHECK(rec.metas == (status == 200 ? 1 : 0));
    } else {
        CHECK(rec.metas <= 1);
    }
    return 0;
}
