/*
 * fuzz_carry_listener.c - libFuzzer target for a listener carried across a handoff restart
 * (edge/http/carry.c, docs/architecture.md §8.4): carry_adopt() of an arbitrary record, then the
 * adopted listener written to (out_stream.c, out_icy.c) as the new process would, on real libev
 * watchers over a socketpair.
 *
 * Input: the record as carry_export() writes it (the seeds in
 * tests/fuzz/corpus/fuzz_carry_listener/ are real exports: tests/unit/test_carry.c with
 * FC_CARRY_CORPUS=DIR writes them). The edge around it is built once: a core with one mount,
 * "live.mp3", of synthetic valid MP3 frames (MPEG-1 Layer III, 128 kbit/s, 44.1 kHz) with an index
 * and two title changes, and an HTTP side on a loop with a fake clock; router.c, admin.c,
 * metrics.c and tls.c are stubbed (a complete carried request is answered 404).
 *
 * Checks besides the sanitizers: a refusal has FC_PROTO / FC_NOMEM, a reason, no listener left
 * and its socket closed; an adopted streaming listener is on the mount's lists with a position
 * inside the buffer; writing it (at once, then three ticks of the fake clock, reading the peer)
 * never goes past the buffer's end and ICY blocks never exceed a title's size; closing every
 * connection leaves the counts at zero, no memory (LeakSanitizer) and no descriptor behind.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "fuzz_check.h"

#include "../../edge/core/lane.c"
#undef MASK
#include "../../edge/core/reorder.c"
#include "../../edge/core/mount.c"
#include "../../edge/core/rewind.c"
#include "../../edge/core/titles.c"
#include "../../edge/http/listener.c"
#include "../../edge/http/out_stream.c"
#include "../../edge/http/out_icy.c"
#include "../../edge/http/carry.c"

#include "../unit/edge_http_stubs.h"
STUB ssize_t tls_writev(struct elistener *l, const struct iovec *iov, int n)
{
    CHECK(!"tls_writev on a plain listener");
    return -1;
}
STUB void tls_close(struct elistener *l)
{
    (void)l;
}
STUB void tls_free(struct elistener *l)
{
    (void)l;
}
STUB void tls_ctx_free(void *ctx)
{
    (void)ctx;
}

#define BASE_PTS 1700000000000000ull
#define N_FRAMES 240 /* ~6.3 s, ~100 KB */
#define T0 1000.0

static struct core K;
static struct ehttp H;
static struct emount *M;

static void init_once(void)
{
    if (M)
        return;
    K.loop = H.loop = ev_loop_new(EVFLAG_AUTO);
    CHECK(K.loop);
    log_init(&K.log, "fuzz-carry", false);
    K.log.min = LOG_ERROR + 1; /* quiet */
    K.opt.rewind_us = 4ull * 3600 * 1000000;
    K.test_now = T0;
    H.core = &K;
    H.log = &K.log;
    H.listen_fd = H.tls_fd = -1;
    H.test_now = T0;
    H.opt.burst_s = 4;
    H.opt.max_lag_s = 30;
    H.opt.write_interval_s = 1.0;
    H.opt.metaint = 16000;
    edge_http_init(&H);
    K.hooks = (struct edge_hooks){.ctx = &H, .appended = edge_http_appended,
                                  .tick = edge_http_tick, .mount_freed = edge_http_mount_freed};
    M = edge_mount_new(&K, "live.mp3", FC_CODEC_MP3);
    CHECK(M);
    uint8_t f[418];
    uint64_t frame_us = clock_samples_to_us(1152, 44100);
    edge_mount_title(&K, M, 0, "First title", "");
    for (uint32_t k = 0; k < N_FRAMES; k++) {
        uint32_t len = k % 3 == 0 ? 418 : 417;
        f[0] = 0xFF, f[1] = 0xFB, f[2] = len == 418 ? 0x92 : 0x90, f[3] = 0x44;
        for (uint32_t i = 4; i < len; i++)
            f[i] = (uint8_t)(k * 29u + i * 13u + 5u);
        if (k == N_FRAMES / 2)
            edge_mount_title(&K, M, M->rw.abs_end, "Second title", "http://example.com/");
        CHECK(rewind_append(&M->rw, f, len, BASE_PTS + k * frame_us, frame_us) == FC_OK);
    }
    M->has_audio = true;
}

static int lowest_free_fd(void)
{
    int fd = dup(0);
    CHECK(fd >= 0);
    close(fd);
    return fd;
}

static void drain(int fd)
{
    static uint8_t buf[65536];
    while (read(fd, buf, sizeof(buf)) > 0)
        ;
}

static void check_listener(const struct elistener *l)
{
    const struct rewind *rw = &M->rw;
    CHECK(l->pos >= rw->abs_start && l->pos <= rw->abs_end);
    CHECK(!l->end_abs || l->end_abs <= rw->abs_end);
    CHECK(!l->meta_ptr || (l->meta_off <= l->meta_len && l->meta_len <= 16 * 255 + 1));
    CHECK(!l->out || l->out_off <= l->out_len);
    if (l->mount) {
        CHECK(l->mount == M && l->hm == M->http);
        CHECK(l->metaint_left <= H.opt.metaint);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    init_once();
    int mark = lowest_free_fd();
    int sp[2];
    CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sp) == 0);
    uint32_t before = H.n_listeners;
    CHECK(before == 0);
    H.test_now = K.test_now = T0;
    /* The record on the heap, exactly its size: a read past it is caught. */
    uint8_t *rec = malloc(size ? size : 1);
    CHECK(rec);
    memcpy(rec, data, size);
    const char *why = NULL;
    enum fc_err err = carry_adopt(&H, sp[0], rec, size, &why);
    free(rec);
    if (err != FC_OK) {
        CHECK((err == FC_PROTO || err == FC_NOMEM) && why && why[0]);
        CHECK(H.n_listeners == 0 && list_empty(&H.all));
    } else {
        /* adopted, possibly closed already (a download complete, a request answered) */
        CHECK(H.n_listeners <= 1 && H.n_listeners == !list_empty(&H.all));
        struct elistener *l = NULL;
        if (!list_empty(&H.all)) {
            l = container_of(H.all.next, struct elistener, alink);
            check_listener(l);
        }
        /* A few ticks of the fake clock: the wheel, the paced and waiting lists, --max-lag. */
        for (int t = 0; t < 3 && !list_empty(&H.all); t++) {
            drain(sp[1]);
            H.test_now += 1.0;
            K.test_now = H.test_now;
            edge_http_tick(&H);
            if (!list_empty(&H.all)) {
                l = container_of(H.all.next, struct elistener, alink);
                if (l->mount && !l->closing)
                    listener_write_audio(l);
            }
            if (!list_empty(&H.all))
                check_listener(container_of(H.all.next, struct elistener, alink));
        }
    }
    while (!list_empty(&H.all))
        listener_close(container_of(H.all.next, struct elistener, alink), "done");
    on_reap(H.loop, &H.reap, 0);
    CHECK(H.n_listeners == 0);
    if (M->http) {
        const struct hmount *hm = M->http;
        CHECK(hm->n_listeners == 0 && hm->n_icy == 0 && list_empty(&hm->listeners));
        CHECK(list_empty(&hm->waiting) && list_empty(&hm->paced) && list_empty(&hm->blocked));
    }
    for (int i = 0; i < EDGE_WHEEL_SLOTS; i++)
        CHECK(list_empty(&H.wheel[i]));
    close(sp[1]);
    CHECK(lowest_free_fd() == mark);
    return 0;
}
