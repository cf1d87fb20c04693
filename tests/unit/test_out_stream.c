/*
 * test_out_stream.c - unit tests for writing listeners' audio (edge/http/out_stream.c with
 * edge/http/out_icy.c, edge/core/titles.c and edge/core/rewind.c; docs/architecture.md §7.3
 * "Write cadence", §7.4, §7.5).
 *
 * The two halves of the edge are built by hand, without the HTTP server or the merge: a struct
 * core holding one struct emount (its view: the rewind buffer and the title ring) and a struct
 * ehttp (options, timer wheel), wired through struct edge_hooks as edge_start() wires them
 * (appended/tick/mount_freed = edge_http_appended/edge_http_tick/edge_http_mount_freed); the
 * mount's struct hmount (listener lists, wake batching, --max-lag walk time) is made by
 * hmount_of() as listener_serve_span() makes it. There is a real libev loop for the listeners'
 * write watchers and a fake clock (h->test_now, read by out_stream.c through http_now()). The
 * mount's rewind buffer holds synthetic but valid MP3 frames (MPEG-1 Layer III, 128 kbit/s,
 * 44.1 kHz, 417 or 418 bytes with the padding bit, 1152 samples = 26122 µs each) whose bytes
 * encode the frame's number, fed in real time of the fake clock after a prebuffer of PRE_S
 * seconds; each append calls the appended hook, as merge.c's output does, and title changes
 * go into the mount's ring with titles_add() at the buffer's end, as mount.c does. Each listener
 * is set up as router.c's choose_span() and listener_serve_span() would (position, start PTS and
 * wall time, burst, paced, download end; on the hmount's listener list) with a response head
 * pending, on one end of a socketpair(AF_UNIX, SOCK_STREAM) (non-blocking, small SO_SNDBUF to
 * force partial writes); the test reads the other end like a player and checks the bytes it
 * received against the frames appended.
 *
 * tick() is mount.c's edge_tick() without the merge: advance the fake clock by EDGE_TICK_S,
 * append the frames that are due, then run the core's tick hook, edge_http_tick() (wake the
 * hmount's waiting list at most every EDGE_WAKE_S when audio was appended, its paced list, the
 * --max-lag walk and the timer wheel); then settle(): read what the players can read and run
 * the loop (write watchers of blocked listeners) until nothing moves. tick_lag_walk_only()
 * runs only out_stream.c's check_lag() of the mount (nobody is woken).
 *
 * writev() in out_stream.c is routed through test_writev(), which counts and times calls per
 * socket, classifies where a writev ended relative to the ICY block it carried, and, in
 * WV_TARGET mode, cuts writevs on purpose right before, inside and right after the block (and
 * inside the audio before it) and injects EAGAIN.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

static ssize_t test_writev(int fd, const struct iovec *iov, int n);
#define writev test_writev
#include "../../edge/http/out_stream.c"
#undef writev
#include "../../edge/core/rewind.c"
#include "../../edge/core/titles.c"
#include "../../edge/http/out_icy.c"

/* tls.c: no listener here has TLS (l->ssl is NULL), so this is never called. */
ssize_t tls_writev(struct elistener *l, const struct iovec *iov, int n)
{
    (void)l, (void)iov, (void)n;
    fail_msg("tls_writev called for a plain listener");
    return -1;
}

/* preroll.c (no clip in these tests: tests/integration/preroll.sh covers them). */
void preroll_forget(struct elistener *l)
{
    (void)l;
}
void preroll_check_mount(struct ehttp *h, const struct emount *m)
{
    (void)h, (void)m;
}
void preroll_iov(const struct elistener *l, struct iovec *iov)
{
    (void)l, (void)iov;
    fail_msg("preroll_iov called without a clip");
}
void preroll_sent(struct elistener *l, size_t n)
{
    (void)l, (void)n;
    fail_msg("preroll_sent called without a clip");
}

/* metrics.c's time-to-first-byte count (not under test here). */
void http_ttfb(struct elistener *l)
{
    l->accepted = 0;
}

#define BASE_PTS 1700000000000000ull /* PTS of frame 0, µs since the epoch */
#define T0 1024.0                    /* fake clock at the start of a test (s) */
#define PRE_S 30                     /* seconds of audio in the buffer at T0 */
#define MAX_FRAMES 4096              /* ~107 s of audio */
#define MAX_FRAME_LEN 418
#define MAX_CLIENTS 8
#define MAX_TITLES 128
#define MAX_WRITE_T 512
#define HEAD_PAD 700 /* response head length: writevs can end inside it too */

static uint64_t frame_us; /* clock_samples_to_us(1152, 44100) */

/* ---- the mount and its audio ---- */

static struct core K;     /* the core: its mount list and hooks, no merge */
static struct ehttp H;    /* the HTTP side: options, wheel, fake clock */
static struct emount *M;  /* the one mount (view: rw, titles) */
static struct hmount *HM; /* its HTTP state: listener lists, wake-ups, --max-lag walk */
static uint64_t n_frames; /* frames appended */
static uint64_t frame_abs[MAX_FRAMES + 1];      /* abs of frame k; frame_abs[n_frames] = abs_end */
static uint8_t ref[MAX_FRAMES * MAX_FRAME_LEN]; /* every byte appended, by abs */

static uint32_t frame_len(uint64_t k)
{
    return k % 3 == 1 ? 418u : 417u;
}

static uint64_t pts_of(uint64_t k)
{
    return BASE_PTS + k * frame_us;
}

static void append_frame(void)
{
    uint64_t k = n_frames;
    uint32_t len = frame_len(k);
    assert_true(k < MAX_FRAMES);
    uint8_t *buf = ref + frame_abs[k];
    buf[0] = 0xFF, buf[1] = 0xFB, buf[2] = len == 418 ? 0x92 : 0x90, buf[3] = 0x44;
    for (uint32_t i = 4; i < len; i++)
        buf[i] = i < 12 ? (uint8_t)(k >> (8 * (i - 4))) : (uint8_t)(k * 29u + i * 13u + 5u);
    assert_int_equal(rewind_append(&M->rw, buf, len, pts_of(k), frame_us), FC_OK);
    frame_abs[k + 1] = frame_abs[k] + len;
    n_frames++;
    assert_int_equal(M->rw.abs_end, frame_abs[n_frames]);
    K.hooks.appended(K.hooks.ctx, M); /* as merge.c's output does */
}

/* Frame whose bytes hold `abs` (abs < abs_end). */
static uint64_t frame_of(uint64_t abs)
{
    uint64_t lo = 0, hi = n_frames;
    while (hi - lo > 1) {
        uint64_t mid = (lo + hi) / 2;
        if (frame_abs[mid] <= abs)
            lo = mid;
        else
            hi = mid;
    }
    return lo;
}

/* Live: the buffer ends PRE_S seconds after BASE_PTS at T0 and follows the fake clock. */
static void feed(void)
{
    uint64_t live = BASE_PTS + (uint64_t)(PRE_S * 1e6 + (H.test_now - T0) * 1e6);
    while (pts_of(n_frames + 1) <= live)
        append_frame();
}

/* ---- titles: the test's own record, the oracle for ICY blocks ---- */

struct title {
    uint64_t abs;
    char text[400];
    uint8_t block[1 + ICY_META_MAX];
    size_t block_len;
};
static struct title titles[MAX_TITLES];
static int n_titles;

/* ---- players ---- */

struct client {
    struct elistener *l;
    int fd;       /* the player's end */
    size_t chunk; /* read size; 0 = never reads */
    uint8_t *rx;  /* everything received */
    size_t rx_len, rx_cap;
    bool eof;
    bool closed;  /* listener_close() was called */
    char why[96]; /* ... with this reason */
    char head[HEAD_PAD + 128];
    size_t head_len;
    uint64_t pos0;   /* listener's first audio byte */
    uint64_t writes; /* writev calls on its socket */
    double write_t[MAX_WRITE_T];
};
static struct client C[MAX_CLIENTS];
static int n_clients;

static struct client *client_of_fd(int fd)
{
    for (int i = 0; i < n_clients; i++)
        if (!C[i].closed && C[i].l->fd == fd)
            return &C[i];
    return NULL;
}

/* listener.c's listener_close(), minus the log line and the reaping: the test frees. */
void listener_close(struct elistener *l, const char *why)
{
    if (l->closing)
        return;
    struct client *c = client_of_fd(l->fd);
    assert_non_null(c);
    l->closing = true;
    ev_io_stop(H.loop, &l->wio);
    close(l->fd);
    l->fd = -1;
    list_del(&l->mlink);
    if (l->linked)
        list_del(&l->wlink);
    l->linked = false;
    l->hm->n_listeners--;
    c->closed = true;
    snprintf(c->why, sizeof(c->why), "%s", why);
}

/* ---- writev, observed and cut ---- */

enum wv_mode { WV_PASS, WV_TARGET };
enum wv_cut { CUT_AUDIO_BEFORE, CUT_RIGHT_BEFORE, CUT_INSIDE, CUT_RIGHT_AFTER, CUT_PAST, CUT_N };
static enum wv_mode wv_mode;
static int wv_eagain_every; /* WV_TARGET: every Nth call fails with EAGAIN, 0 = never */
static uint64_t wv_rng;
static uint64_t wv_calls, wv_partial, wv_eagain, wv_injected;
static uint64_t wv_cuts[CUT_N]; /* where writevs carrying an ICY block ended */

static uint64_t rnd(void)
{
    wv_rng += 0x9e3779b97f4a7c15ull;
    uint64_t x = wv_rng;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

static ssize_t test_writev(int fd, const struct iovec *iov, int n)
{
    struct client *c = client_of_fd(fd);
    assert_non_null(c);
    const struct elistener *l = c->l;
    size_t total = 0, bstart = SIZE_MAX, bend = 0;
    for (int i = 0; i < n; i++) {
        const uint8_t *b = iov[i].iov_base;
        if (l->meta_ptr && b >= l->meta_ptr && b < l->meta_ptr + l->meta_len) {
            assert_true(bstart == SIZE_MAX); /* at most one block per writev */
            bstart = total;
            bend = total + iov[i].iov_len;
        }
        total += iov[i].iov_len;
    }
    wv_calls++;
    if (c->writes < MAX_WRITE_T)
        c->write_t[c->writes] = H.test_now;
    c->writes++;
    size_t cap = total;
    if (wv_mode == WV_TARGET) {
        if (wv_eagain_every && wv_calls % (uint64_t)wv_eagain_every == 0) {
            wv_injected++;
            errno = EAGAIN;
            return -1;
        }
        uint64_t r = rnd();
        if (bstart == SIZE_MAX) {
            cap = r % 3 ? 1 + (size_t)(rnd() % total) : total;
        } else {
            switch (r % 6) {
            case 0:
                cap = bstart ? bstart : total; /* right before the block */
                break;
            case 1:
                cap = bend - bstart > 1 ? bstart + 1 + (size_t)(rnd() % (bend - bstart - 1)) : bend;
                break;
            case 2:
                cap = bend; /* right after it */
                break;
            case 3:
                cap = bstart > 1 ? 1 + (size_t)(rnd() % (bstart - 1)) : total; /* before it */
                break;
            default:
                cap = total;
            }
        }
    }
    struct iovec cut[STREAM_IOV_MAX];
    int k = 0;
    for (size_t left = cap; k < n && left > 0; k++) {
        cut[k] = iov[k];
        if (cut[k].iov_len > left)
            cut[k].iov_len = left;
        left -= cut[k].iov_len;
    }
    ssize_t w = writev(fd, cut, k);
    if (w < 0) {
        if (errno == EAGAIN)
            wv_eagain++;
        return w;
    }
    if ((size_t)w < total)
        wv_partial++;
    if (bstart != SIZE_MAX) {
        size_t u = (size_t)w;
        wv_cuts[u < bstart    ? CUT_AUDIO_BEFORE
                : u == bstart ? CUT_RIGHT_BEFORE
                : u < bend    ? CUT_INSIDE
                : u == bend   ? CUT_RIGHT_AFTER
                              : CUT_PAST]++;
    }
    return w;
}

/* ---- the edge ---- */

static void on_wio(struct ev_loop *loop, ev_io *w, int revents)
{
    listener_write_audio(container_of(w, struct elistener, wio));
}

static int setup(void **state)
{
    frame_us = clock_samples_to_us(1152, 44100);
    memset(&K, 0, sizeof(K));
    memset(&H, 0, sizeof(H));
    K.loop = H.loop = ev_loop_new(EVFLAG_AUTO);
    assert_non_null(H.loop);
    /* Wired as edge_start() does. */
    K.hooks = (struct edge_hooks){
        .ctx = &H,
        .appended = edge_http_appended,
        .tick = edge_http_tick,
        .mount_freed = edge_http_mount_freed,
    };
    H.core = &K;
    H.log = &K.log;
    H.listen_fd = H.spare_fd = -1;
    H.test_now = T0;
    H.opt.burst_s = 4;
    H.opt.max_lag_s = 30;
    H.opt.write_interval_s = EDGE_WRITE_INTERVAL_S;
    H.opt.metaint = EDGE_METAINT_DEFAULT;
    for (int i = 0; i < EDGE_WHEEL_SLOTS; i++)
        list_init(&H.wheel[i]);
    H.wheel_pos = 0;
    H.wheel_next = H.test_now + EDGE_TICK_S; /* as if the last tick ran at T0 */
    M = calloc(1, sizeof(*M));
    assert_non_null(M);
    assert_int_equal(rewind_init(&M->rw, FC_CODEC_MP3, 3600ull * 1000000), FC_OK);
    snprintf(M->name, sizeof(M->name), "live");
    M->core = &K;
    M->codec = FC_CODEC_MP3;
    K.mounts = M;
    K.n_mounts = 1;
    /* Its HTTP state, as listener_serve_span() makes it for a first listener: made before any
     * audio, so the appended hook marks it from the first frame on. */
    HM = hmount_of(&H, M);
    assert_non_null(HM);
    assert_ptr_equal(M->http, HM);
    assert_ptr_equal(H.hmounts, HM);
    assert_ptr_equal(HM->m, M);
    n_frames = 0;
    frame_abs[0] = 0;
    n_titles = 0;
    n_clients = 0;
    memset(C, 0, sizeof(C));
    wv_mode = WV_PASS;
    wv_eagain_every = 0;
    wv_rng = 42;
    wv_calls = wv_partial = wv_eagain = wv_injected = 0;
    memset(wv_cuts, 0, sizeof(wv_cuts));
    return 0;
}

static int teardown(void **state)
{
    for (int i = 0; i < n_clients; i++) {
        struct client *c = &C[i];
        if (!c->closed)
            listener_close(c->l, "teardown");
        icy_release(c->l);
        free(c->l->out);
        free(c->l);
        close(c->fd);
        free(c->rx);
    }
    /* As core_free() does after edge_http_free() closed the listeners. */
    K.hooks.mount_freed(K.hooks.ctx, M);
    assert_null(M->http);
    assert_null(H.hmounts);
    titles_free(&M->titles);
    rewind_free(&M->rw);
    free(M);
    ev_loop_destroy(H.loop);
    return 0;
}

/* A title change at the buffer's end, as merge.c makes them. An ICY block is due every metaint
 * audio bytes from a listener's start; a change exactly there would apply to the block or not
 * depending on whether the listener began the block before it came, so keep off those points. */
static void title_change(const char *text)
{
    for (int tries = 0; tries < 64; tries++) {
        bool clash = false;
        for (int i = 0; i < n_clients; i++)
            if (C[i].l->icy && (M->rw.abs_end - C[i].pos0) % H.opt.metaint == 0)
                clash = true;
        if (!clash)
            break;
        append_frame();
    }
    assert_true(n_titles < MAX_TITLES);
    struct title *t = &titles[n_titles++];
    t->abs = M->rw.abs_end;
    snprintf(t->text, sizeof(t->text), "%s", text);
    t->block_len = icy_meta_block(t->text, "http://example.org/", t->block);
    titles_add(&M->titles, M->rw.abs_end, t->text, "http://example.org/"); /* as mount.c does */
}

/* The title change that applies at `abs` (the first one is at abs 0 in ICY tests). */
static const struct title *oracle_title_at(uint64_t abs)
{
    const struct title *found = NULL;
    for (int i = 0; i < n_titles; i++)
        if (titles[i].abs <= abs)
            found = &titles[i];
    return found;
}

struct lopts {
    double burst_s;
    double behind_s;   /* > 0: time-shifted this far behind live (router's ?offset=) */
    double duration_s; /* > 0: a download (&duration=) */
    bool icy;
    int sndbuf;   /* SO_SNDBUF of the edge's end, 0 = default */
    size_t chunk; /* player's read size, 0 = never reads */
};

/* A listener as router.c's choose_span() and listener_serve_span() make it: head pending,
 * written at once. */
static struct client *connect_listener(const struct lopts *o)
{
    assert_true(n_clients < MAX_CLIENTS);
    struct client *c = &C[n_clients];
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv), 0);
    if (o->sndbuf)
        assert_int_equal(setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &o->sndbuf, sizeof(int)), 0);
    struct elistener *l = calloc(1, sizeof(*l));
    assert_non_null(l);
    c->l = l;
    c->fd = sv[1];
    c->chunk = o->chunk;
    n_clients++;
    l->http = &H;
    l->fd = sv[0];
    snprintf(l->peer, sizeof(l->peer), "test%d", n_clients);
    l->burst_s = o->burst_s;
    uint64_t last = M->rw.end_pts_us, target, found;
    if (o->behind_s > 0) {
        target = last - (uint64_t)(o->behind_s * 1e6);
        l->paced = o->duration_s == 0;
    } else {
        target = last - (uint64_t)(o->burst_s * 1e6);
    }
    l->pos = rewind_seek(&M->rw, target, &found);
    l->start_pts_us = found;
    l->start_wall = http_now(&H);
    if (o->duration_s > 0) {
        uint64_t end_found;
        l->end_abs = rewind_seek(&M->rw, found + (uint64_t)(o->duration_s * 1e6), &end_found);
        assert_true(l->end_abs > l->pos && l->end_abs < M->rw.abs_end);
    }
    l->icy = o->icy && !l->end_abs;
    if (l->icy)
        l->metaint_left = H.opt.metaint;
    c->pos0 = l->pos;
    int n = snprintf(c->head, sizeof(c->head),
                     "HTTP/1.0 200 OK\r\nContent-Type: audio/mpeg\r\n%s%u\r\nX-Pad: ",
                     l->icy ? "icy-metaint: " : "X-No-Metaint: ", H.opt.metaint);
    for (; n < HEAD_PAD; n++)
        c->head[n] = (char)('a' + n % 26);
    memcpy(c->head + n, "\r\n\r\n", 4);
    c->head_len = (size_t)n + 4;
    l->out = malloc(c->head_len);
    assert_non_null(l->out);
    memcpy(l->out, c->head, c->head_len);
    l->out_len = (uint32_t)c->head_len;
    l->state = L_RESPONSE;
    struct hmount *hm = hmount_of(&H, M); /* as listener_serve_span() does */
    assert_ptr_equal(hm, HM);
    l->mount = M;
    l->hm = hm;
    list_add(&hm->listeners, &l->mlink);
    list_init(&l->wlink);
    hm->n_listeners++;
    ev_io_init(&l->wio, on_wio, l->fd, EV_WRITE);
    listener_write_audio(l);
    return c;
}

/* Read what the player can (c->chunk bytes per read); returns the bytes read. */
static size_t drain(struct client *c)
{
    size_t got = 0;
    if (!c->chunk || c->eof)
        return 0;
    for (;;) {
        if (c->rx_cap - c->rx_len < c->chunk) {
            c->rx_cap = (c->rx_cap + c->chunk) * 2;
            c->rx = realloc(c->rx, c->rx_cap);
            assert_non_null(c->rx);
        }
        ssize_t r = read(c->fd, c->rx + c->rx_len, c->chunk);
        if (r == 0) {
            c->eof = true;
            return got;
        }
        if (r < 0) {
            assert_int_equal(errno, EAGAIN);
            return got;
        }
        c->rx_len += (size_t)r;
        got += (size_t)r;
    }
}

/* Players read, blocked listeners are written as their sockets drain, until nothing moves. */
static void settle(void)
{
    for (int i = 0; i < 1000000; i++) {
        size_t got = 0;
        uint64_t calls = wv_calls;
        for (int k = 0; k < n_clients; k++)
            got += drain(&C[k]);
        ev_run(H.loop, EVRUN_NOWAIT);
        for (int k = 0; k < n_clients; k++)
            got += drain(&C[k]);
        if (got == 0 && calls == wv_calls)
            return;
    }
    fail_msg("settle: still moving");
}

/* mount.c's edge_tick() without the merge: the clock moves on, the frames due are appended
 * (each through the appended hook), then the core's tick hook (edge_http_tick) runs. */
static void tick(void)
{
    H.test_now += EDGE_TICK_S;
    feed();
    K.hooks.tick(K.hooks.ctx);
    settle();
}

/* A tick in which nobody is woken: of edge_http_tick(), only the --max-lag walk of the mount
 * (its check_lag()) runs. */
static void tick_lag_walk_only(void)
{
    H.test_now += EDGE_TICK_S;
    feed();
    check_lag(HM, http_now(&H));
    settle();
}

static void prebuffer(void)
{
    feed();
    assert_true(M->rw.end_pts_us - rewind_first_pts(&M->rw) >= (PRE_S - 1) * 1000000ull);
}

/* ---- what players received ---- */

static bool on_list(const struct elistener *l, const struct list_node *list)
{
    for (const struct list_node *n = list->next; n != list; n = n->next)
        if (n == &l->wlink)
            return true;
    return false;
}

/* The wheel slot a listener parked now is woken from: interval / tick ahead. */
static const struct list_node *wheel_slot_ahead(void)
{
    uint32_t k = (uint32_t)(H.opt.write_interval_s / EDGE_TICK_S + 0.5);
    return &H.wheel[(H.wheel_pos + k - 1) % EDGE_WHEEL_SLOTS];
}

/* Audio bytes a plain (or download) player received; checks the head and every audio byte. */
static uint64_t check_plain(const struct client *c)
{
    assert_true(c->rx_len >= c->head_len);
    assert_memory_equal(c->rx, c->head, c->head_len);
    uint64_t audio = c->rx_len - c->head_len;
    assert_true(c->pos0 + audio <= M->rw.abs_end);
    if (audio && memcmp(c->rx + c->head_len, ref + c->pos0, audio) != 0) {
        uint64_t i = 0;
        while (c->rx[c->head_len + i] == ref[c->pos0 + i])
            i++;
        fail_msg("audio differs at byte %llu of %llu", (unsigned long long)i,
                 (unsigned long long)audio);
    }
    return audio;
}

/*
 * Parse what an ICY player received (head, then metaint audio bytes, a length byte L and L * 16
 * bytes, ...): the audio must be the buffer's bytes from the listener's start, and each block
 * either the title that applies at its audio position (when that title is new to the player) or
 * a lone zero. A trailing block cut short must be a prefix of the expected one. Returns the
 * audio bytes; `*blocks` gets the blocks and `*title_blocks` those that carried a title.
 */
static uint64_t check_icy(const struct client *c, unsigned *blocks, unsigned *title_blocks)
{
    const uint32_t metaint = H.opt.metaint;
    assert_true(c->rx_len >= c->head_len);
    assert_memory_equal(c->rx, c->head, c->head_len);
    const uint8_t *p = c->rx + c->head_len;
    size_t n = c->rx_len - c->head_len, i = 0;
    uint64_t abs = c->pos0;
    const struct title *sent = NULL;
    *blocks = *title_blocks = 0;
    for (;;) {
        size_t a = n - i < metaint ? n - i : metaint;
        if (abs + a > M->rw.abs_end)
            fail_msg("block %u: audio past the buffer's end (%zu bytes)", *blocks, a);
        if (memcmp(p + i, ref + abs, a) != 0) {
            size_t j = 0;
            while (p[i + j] == ref[abs + j])
                j++;
            fail_msg("audio differs in metaint period %u at byte %zu (abs %llu)", *blocks, j,
                     (unsigned long long)(abs + j));
        }
        i += a;
        abs += a;
        if (a < metaint || i == n)
            break;
        const struct title *t = oracle_title_at(abs);
        assert_non_null(t);
        const uint8_t zero = 0, *want = &zero;
        size_t want_len = 1;
        if (t != sent) {
            want = t->block;
            want_len = t->block_len;
        }
        size_t got = n - i < 1 + (size_t)p[i] * 16 ? n - i : 1 + (size_t)p[i] * 16;
        if (got > want_len || memcmp(p + i, want, got) != 0)
            fail_msg("block %u at audio byte %llu: got length byte %u (%zu bytes), want %s",
                     *blocks, (unsigned long long)(abs - c->pos0), p[i], got,
                     t != sent ? t->text : "a zero byte");
        if (got < want_len)
            break; /* the rest is still in flight */
        if (t != sent) {
            char key[440];
            snprintf(key, sizeof(key), "StreamTitle='%s';", t->text);
            assert_non_null(memmem(p + i + 1, got - 1, key, strlen(key)));
            (*title_blocks)++;
            sent = t;
        }
        (*blocks)++;
        i += got;
    }
    return abs - c->pos0;
}

/* Bytes a paced listener may have been sent by now: its burst plus the time since it started,
 * carried frame by frame (the first frame reaching that much audio is included). */
static uint64_t paced_bytes_allowed(const struct client *c)
{
    const struct elistener *l = c->l;
    uint64_t allowed_us = (uint64_t)((l->burst_s + H.test_now - l->start_wall) * 1e6);
    uint64_t k0 = frame_of(c->pos0), k = k0, dur = 0;
    assert_int_equal(frame_abs[k0], c->pos0);
    while (dur < allowed_us && k < n_frames) {
        dur += frame_us;
        k++;
    }
    return frame_abs[k] - c->pos0;
}

/* ---- tests ---- */

/*
 * A live listener with a burst, on a 4 KiB socket read 1000 bytes at a time: the head and the
 * burst arrive byte-identical across many partial writes; caught up, it parks on the wheel slot
 * one --write-interval ahead and is not written before that slot, whatever is appended; then it
 * gets everything appended, in order. A listener without a burst parks on the mount's waiting
 * list and gets each append at the next wake-up.
 */
static void test_plain_burst_wheel_and_waiting(void **state)
{
    prebuffer();
    struct client *a =
        connect_listener(&(struct lopts){.burst_s = 4, .sndbuf = 4096, .chunk = 1000});
    /* Head + 4 s of audio (~64 KB) don't fit: a partial write, then the blocked list. */
    assert_true(on_list(a->l, &HM->blocked));
    assert_true(ev_is_active(&a->l->wio));
    assert_true(wv_partial >= 1);
    settle();
    uint64_t burst = check_plain(a);
    assert_int_equal(a->pos0 + burst, M->rw.abs_end);
    assert_true(burst >= 4 * 16000 - 420 && burst <= 4 * 16000 + 420);
    assert_true(wv_partial >= 4); /* writevs cut short by the socket */
    assert_null(a->l->out);       /* the head went out */
    assert_int_equal(a->l->state, L_STREAM);
    /* Caught up, holding 4 s: on the wheel, one interval ahead, not writing. */
    assert_true(on_list(a->l, wheel_slot_ahead()));
    assert_false(ev_is_active(&a->l->wio));

    struct client *b = connect_listener(&(struct lopts){.burst_s = 0, .chunk = 65536});
    settle();
    assert_int_equal(check_plain(b), 0); /* head only: nothing to burst */
    assert_true(on_list(b->l, &HM->waiting));

    size_t a_rx = a->rx_len;
    unsigned b_wakes = 0;
    for (int t = 1; t <= 160; t++) {
        double next_wake = HM->next_wake;
        tick();
        /* The waiting listener gets every append at the mount's next wake-up. */
        if (HM->next_wake != next_wake) {
            b_wakes++;
            assert_int_equal(b->pos0 + check_plain(b), M->rw.abs_end);
        }
        assert_true(on_list(b->l, &HM->waiting));
        /* The wheel listener (1 s = 50 slots) is written on ticks 50, 100, 150 only, with all
         * that's due, and parks 50 slots on. */
        if (t % 50) {
            assert_int_equal(a->rx_len, a_rx);
        } else {
            assert_true(a->rx_len > a_rx + 15000);
            assert_int_equal(a->pos0 + check_plain(a), M->rw.abs_end);
            a_rx = a->rx_len;
        }
        assert_true(on_list(a->l, &H.wheel[(H.wheel_pos + 49 - t % 50) % EDGE_WHEEL_SLOTS]));
    }
    assert_true(b_wakes >= 25 && b_wakes <= 33); /* every EDGE_WAKE_S (3.2 s of ticks) */
    check_plain(a);
    check_plain(b);
    assert_false(a->closed || b->closed);
}

/*
 * ICY listeners, a title change every ~0.35 s (every 2 s in the prebuffer; every third title
 * hundreds of bytes long): a live one with a burst (wheel), one without (waiting list) and a
 * time-shifted one (wheel, titles of its own time), for 8 s. What each player receives, parsed
 * as an ICY client parses it, is the buffer's audio byte for byte with a block after every
 * metaint audio bytes, each the title that applies at its position when that title is new to
 * the player, else a lone zero: no block lost, duplicated, cut or moved.
 * Configurations: --metaint 1000 with writevs cut right before, inside and right after the
 * block and inside the audio before it, and every 7th writev failing with EAGAIN (each case
 * must occur at least 5 times); then real sockets only, SO_SNDBUF from the minimum to 8 KiB,
 * players reading 1 to 4096 bytes at a time, --metaint 1000 to 16000 (AF_UNIX sockets cut a
 * writev only at their buffer's segment boundaries, so these mostly meet a full socket, and
 * sometimes end a writev in the audio before a block).
 */
struct icy_cfg {
    enum wv_mode mode;
    uint32_t metaint;
    int sndbuf;
    size_t chunk;
    int eagain_every;
};

static void long_title(char *out, size_t cap, int i)
{
    int n = snprintf(out, cap, "Artist %d - Track %d", i, i * 7);
    if (i % 3 == 0) /* a block of hundreds of bytes: room to cut a writev inside it */
        for (int k = 0; k < 300 && (size_t)n + 1 < cap; k++)
            out[n++] = (char)('A' + (i + k) % 26);
    out[n] = '\0';
}

static void test_icy_blocks(void **state)
{
    const struct icy_cfg *cfg = *state;
    H.opt.metaint = cfg->metaint;
    wv_mode = cfg->mode;
    wv_eagain_every = cfg->eagain_every;
    char text[400];
    int ti = 0;
    long_title(text, sizeof(text), ti++);
    title_change(text); /* at abs 0 */
    while (pts_of(n_frames + 1) <= BASE_PTS + PRE_S * 1000000ull) {
        append_frame();
        if (n_frames % 77 == 0) {
            long_title(text, sizeof(text), ti++);
            title_change(text);
        }
    }
    int n_prebuffer_titles = n_titles;
    struct lopts o = {.icy = true, .sndbuf = cfg->sndbuf, .chunk = cfg->chunk};
    o.burst_s = 4;
    struct client *live = connect_listener(&o);
    o.burst_s = 0;
    struct client *now = connect_listener(&o);
    o.burst_s = 2;
    o.behind_s = 20;
    struct client *shifted = connect_listener(&o);
    settle();
    for (int t = 1; t <= 400; t++) {
        tick();
        if (t % 17 == 0) {
            long_title(text, sizeof(text), ti++);
            title_change(text);
        }
    }
    unsigned blocks, title_blocks;
    struct client *all[] = {live, now, shifted};
    const unsigned min_titles[] = {20, 18, 4};
    for (int i = 0; i < 3; i++) {
        assert_false(all[i]->closed);
        uint64_t audio = check_icy(all[i], &blocks, &title_blocks);
        /* 7 s of audio at least, a block per 1000 bytes, titles on the way. */
        assert_true(audio >= 7 * 16000);
        assert_true(blocks >= audio / cfg->metaint - 1);
        /* (with a big metaint, fewer blocks than title changes: half of them carry one) */
        assert_true(title_blocks >= (min_titles[i] < blocks / 2 ? min_titles[i] : blocks / 2));
    }
    /* The one without a burst is caught up to its last wake-up (EDGE_WAKE_S at most ago). */
    assert_true(check_icy(now, &blocks, &title_blocks) + 3000 >= M->rw.abs_end - now->pos0);
    /* The time-shifted one started under a title of its own time, not the current one. */
    assert_true(oracle_title_at(shifted->pos0 + 1000) < &titles[n_prebuffer_titles - 2]);
    assert_true(wv_partial + wv_eagain > 0); /* the socket was full, often */
    if (cfg->mode == WV_TARGET) {
        /* Every way a writev can end around a block was taken, many times. */
        for (int k = 0; k < CUT_N; k++)
            assert_true(wv_cuts[k] >= 5);
        assert_true(wv_injected >= 5);
    }
}

/*
 * Write cadence: a listener holding its burst is written once per --write-interval with
 * everything due, not per append: head + burst in one writev at connect, then one writev per
 * second; a second listener connecting 0.3 s later is written 0.3 s out of phase (another
 * slot). A listener without a burst, for comparison, is written at every wake-up of the mount
 * (EDGE_WAKE_S). hm->audio_writes counts them all.
 */
static void test_wheel_cadence(void **state)
{
    prebuffer();
    struct lopts o = {.burst_s = 4, .sndbuf = 1 << 20, .chunk = 1 << 20};
    struct client *a = connect_listener(&o);
    settle();
    assert_int_equal(HM->audio_writes, 1); /* head and burst in one writev */
    assert_int_equal(a->pos0 + check_plain(a), M->rw.abs_end);
    for (int t = 0; t < 15; t++)
        tick();
    struct client *b = connect_listener(&o);
    settle();
    assert_int_equal(HM->audio_writes, 2);
    assert_int_equal(b->writes, 1);
    o.burst_s = 0;
    struct client *z = connect_listener(&o);
    uint64_t z0 = z->writes;
    for (int t = 0; t < 500; t++)
        tick();
    /* a: connect + one write per second over 10.3 s; b: connect + 10 over 10 s. */
    assert_int_equal(a->writes, 1 + 10);
    assert_int_equal(b->writes, 1 + 10);
    for (uint64_t i = 2; i < a->writes; i++)
        assert_true(fabs(a->write_t[i] - a->write_t[i - 1] - 1.0) < 1e-6);
    for (uint64_t i = 2; i < b->writes; i++)
        assert_true(fabs(b->write_t[i] - b->write_t[i - 1] - 1.0) < 1e-6);
    double phase = fmod(b->write_t[1] - a->write_t[1] + 10.0, 1.0);
    assert_true(fabs(phase - 0.3) < EDGE_TICK_S / 2);
    /* Each wheel write carried a second of audio: the listener is caught up to its last one. */
    assert_true(check_plain(a) >= 13.5 * 16000);
    assert_true(check_plain(b) >= 13.5 * 16000);
    /* Without a burst: ~10 writes a second. */
    assert_true(z->writes - z0 >= 80 && z->writes - z0 <= 101);
    assert_true(z->pos0 + check_plain(z) + 2500 >= M->rw.abs_end); /* as of its last wake-up */
    assert_int_equal(HM->audio_writes, a->writes + b->writes + z->writes);
}

/*
 * Time-shifted (paced) listeners, 20 s and 15 s behind, with a 2 s burst (on the wheel) and
 * without (on the mount's paced list): at every tick neither has received more audio than its
 * burst plus the time since it started, in whole frames (the first frame reaching it included);
 * the one without a burst has received exactly that; the one with a burst at least what was
 * due a write interval ago.
 */
static void test_paced_limit(void **state)
{
    prebuffer();
    struct client *p = connect_listener(
        &(struct lopts){.burst_s = 2, .behind_s = 20, .sndbuf = 16384, .chunk = 4096});
    struct client *q =
        connect_listener(&(struct lopts){.burst_s = 0, .behind_s = 15, .chunk = 65536});
    assert_true(p->l->paced && q->l->paced);
    settle();
    assert_int_equal(check_plain(p), paced_bytes_allowed(p));
    assert_true(check_plain(p) >= 2 * 16000 - 420);
    assert_true(on_list(p->l, wheel_slot_ahead()));
    assert_true(on_list(q->l, &HM->paced));
    uint64_t p_due_before[60] = {0}; /* allowed bytes of the last 60 ticks */
    for (int t = 1; t <= 600; t++) {
        tick();
        uint64_t pa = paced_bytes_allowed(p), qa = paced_bytes_allowed(q);
        uint64_t pr = check_plain(p), qr = check_plain(q);
        assert_true(pr <= pa);
        assert_int_equal(qr, qa);
        /* Written at least once per interval: it has what was allowed 51 ticks ago. */
        if (t > 51)
            assert_true(pr >= p_due_before[(t - 51) % 60]);
        p_due_before[t % 60] = pa;
        assert_true(on_list(q->l, &HM->paced));
        assert_true(p->l->linked && !on_list(p->l, &HM->paced) && !on_list(p->l, &HM->blocked));
    }
    /* 12 s on: 14 s of audio each way, well behind live. */
    assert_true(check_plain(p) >= 13 * 16000);
    assert_true(p->writes <= 1 + 16 + 12 + 2); /* the burst in pieces, then once a second */
    assert_true(q->l->pos < M->rw.abs_end - 100000);
}

/*
 * A download (&duration=3, 12 s back) receives exactly [pos, end_abs) after its head, across
 * partial writes (a 4 KiB socket read 700 bytes at a time, then cut and EAGAIN writevs), and is
 * closed with "download complete" (the player reads the end of the stream); what is appended
 * meanwhile does not extend it.
 */
static void test_download(void **state)
{
    prebuffer();
    struct client *d = connect_listener(
        &(struct lopts){.behind_s = 12, .duration_s = 3, .sndbuf = 4096, .chunk = 700});
    assert_false(d->l->paced);
    uint64_t end = d->l->end_abs;
    for (int t = 0; t < 100 && !d->eof; t++)
        tick();
    assert_true(d->closed && d->eof);
    assert_string_equal(d->why, "download complete");
    assert_int_equal(d->pos0 + check_plain(d), end);
    assert_true(end - d->pos0 >= 3 * 16000 - 420);
    assert_true(wv_partial >= 4);

    wv_mode = WV_TARGET;
    wv_eagain_every = 2;
    struct client *e =
        connect_listener(&(struct lopts){.behind_s = 25, .duration_s = 10, .chunk = 65536});
    for (int t = 0; t < 100 && !e->eof; t++)
        tick();
    assert_true(e->closed && e->eof);
    assert_string_equal(e->why, "download complete");
    assert_int_equal(e->pos0 + check_plain(e), e->l->end_abs);
    assert_true(wv_injected >= 1);
    assert_int_equal(HM->n_listeners, 0);
}

/* Lag of a listener at `pos`, as --max-lag measures it (s). */
static double lag_s(const struct elistener *l)
{
    uint64_t at = pts_of(frame_of(l->pos));
    uint64_t should = l->paced ? l->start_pts_us + (uint64_t)((H.test_now - l->start_wall) * 1e6)
                               : M->rw.end_pts_us;
    return should > at ? (should - at) / 1e6 : 0;
}

/*
 * --max-lag 2: a live listener and a time-shifted one (burst 1 s each) whose players stop
 * reading land on the blocked list; the once-a-second walk closes each at the first walk where
 * it is more than max_lag + burst behind (live, or its own real-time position), not before.
 * Parked listeners (waiting list, wheel) that are not woken fall as far behind and are left
 * alone: only the blocked list is walked.
 */
static void test_lag(void **state)
{
    H.opt.max_lag_s = 2;
    prebuffer();
    struct client *x = connect_listener(&(struct lopts){.burst_s = 1, .sndbuf = 4096});
    struct client *w =
        connect_listener(&(struct lopts){.burst_s = 1, .behind_s = 20, .sndbuf = 4096});
    struct client *y = connect_listener(&(struct lopts){.burst_s = 0, .chunk = 65536});
    struct client *z = connect_listener(&(struct lopts){.burst_s = 4, .chunk = 1 << 20});
    settle();
    assert_true(on_list(x->l, &HM->blocked) && on_list(w->l, &HM->blocked));
    assert_true(on_list(y->l, &HM->waiting));
    assert_true(on_list(z->l, wheel_slot_ahead()));
    const struct list_node *z_slot = wheel_slot_ahead();
    double x_closed_at = 0, w_closed_at = 0;
    for (int t = 1; t <= 400 && !(x->closed && w->closed); t++) {
        bool walk = H.test_now + EDGE_TICK_S >= HM->next_lag_walk;
        bool x_open = !x->closed, w_open = !w->closed;
        tick_lag_walk_only(); /* nobody is woken: only the walk runs */
        if (x_open) {
            assert_int_equal(x->closed, walk && lag_s(x->l) > 2 + 1);
            if (x->closed)
                x_closed_at = H.test_now;
        }
        if (w_open) {
            assert_int_equal(w->closed, walk && lag_s(w->l) > 2 + 1);
            if (w->closed)
                w_closed_at = H.test_now;
        }
        assert_true(on_list(y->l, &HM->waiting) && !y->closed);
        assert_true(on_list(z->l, z_slot) && !z->closed);
    }
    assert_true(x->closed && w->closed);
    assert_string_equal(x->why, "lagging more than --max-lag behind real time");
    assert_string_equal(w->why, "lagging more than --max-lag behind real time");
    /* Each had part of its 1 s burst written when its player stopped reading. */
    assert_true(x_closed_at - T0 > 2.0 && x_closed_at - T0 < 4.5);
    assert_true(w_closed_at - T0 > 2.0 && w_closed_at - T0 < 5.5);
    /* The parked ones are as far behind by now, and untouched. */
    assert_true(lag_s(y->l) > 3 && lag_s(z->l) > 3);
    /* Woken, they catch up. */
    wake_list(&HM->waiting);
    settle();
    assert_int_equal(y->pos0 + check_plain(y), M->rw.abs_end);
}

static const struct icy_cfg icy_target = {WV_TARGET, 1000, 1 << 20, 1 << 20, 7};
static const struct icy_cfg icy_a = {WV_PASS, 1000, 1, 1, 0};
static const struct icy_cfg icy_b = {WV_PASS, 2500, 1, 333, 0};
static const struct icy_cfg icy_c = {WV_PASS, 4000, 1, 4096, 0};
static const struct icy_cfg icy_d = {WV_PASS, 6000, 4096, 1000, 0};
static const struct icy_cfg icy_e = {WV_PASS, 16000, 8192, 1500, 0};

#define ICY_TEST(cfg)                                                                              \
    cmocka_unit_test_prestate_setup_teardown(test_icy_blocks, setup, teardown, (void *)&cfg)

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_plain_burst_wheel_and_waiting, setup, teardown),
        ICY_TEST(icy_target),
        ICY_TEST(icy_a),
        ICY_TEST(icy_b),
        ICY_TEST(icy_c),
        ICY_TEST(icy_d),
        ICY_TEST(icy_e),
        cmocka_unit_test_setup_teardown(test_wheel_cadence, setup, teardown),
        cmocka_unit_test_setup_teardown(test_paced_limit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_download, setup, teardown),
        cmocka_unit_test_setup_teardown(test_lag, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
