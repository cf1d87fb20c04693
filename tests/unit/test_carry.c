/*
 * test_carry.c - unit tests for a handoff restart's state transfer (docs/architecture.md §8.4):
 * edge/core/carry_core.c (core_carry_send / core_carry_take / core_carry_check: a mount's memfd,
 * slab table, index, titles and streams), edge/core/rewind.c's adopt functions, titles_adopt, and
 * edge/http/carry.c (one plain-HTTP listener: carry_pause / carry_export / carry_adopt).
 *
 * Two struct core in one process, each with its own mounts: the exporter (A) builds a mount from
 * real MP3 frames (tests/data/sample.mp3, its 78 frames repeated; run from the repository root as
 * `make unit` does), two title changes and two streams (the active one with cur_seq behind its
 * reorder's next_seq); core_carry_send writes the records on one end of a unix SOCK_SEQPACKET
 * socketpair from a thread, the main thread reads them with handoff_recv and feeds
 * core_carry_take of the taker (B). The memfd travels by SCM_RIGHTS, so B maps the very file A
 * wrote: a frame B appends is visible through A's descriptor.
 *
 *   (a) round trip, one slab (4 h --rewind) and with evicted slabs (a 300 s --rewind over ~3.5
 *       slabs of audio: two slabs evicted and punched, two held): same abs_start/abs_end, bytes,
 *       seeks, PTS, frame walk, titles, streams (reorder resuming at cur_seq for the active one);
 *   (b) refusals: a slab out of order, an index point outside the buffer, a slab past the memfd's
 *       end, a stream of an unknown mount, an active stream whose seq is not cur_seq, EH_MOUNT
 *       without (or with two) descriptors, a buffer left incomplete, a next file slab whose
 *       offset wraps, a punch range over a slab held: FC_PROTO with a reason, no descriptor left
 *       open;
 *   (c) listeners: two streaming listeners (time-shifted and paced, ICY; one with metaint_left
 *       counting, one half-way through an ICY block) paused, exported and adopted by B's HTTP
 *       side on a dup of the socket: every field equal, and what B then writes on the socket
 *       continues exactly (the rest of the block, then the audio from the carried position with
 *       the next block where the carried count runs out); a position outside the buffer and an
 *       unknown mount are refused.
 *
 * Set FC_CARRY_CORPUS=DIR to also write the records of the smallest round trip as inputs of
 * tests/fuzz/fuzz_handoff.c (its recipe format) and the listener records as inputs of
 * tests/fuzz/fuzz_carry_listener.c (that is how their seed corpora were made).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../../edge/core/lane.c"
#undef MASK /* lane.c and reorder.c each define their own ring mask */
#include "../../edge/core/reorder.c"
#include "../../edge/core/mount.c"
#include "../../edge/core/rewind.c"
#include "../../edge/core/titles.c"
#include "../../edge/core/carry_core.c"
#include "../../edge/http/listener.c"
#include "../../edge/http/out_stream.c"
#include "../../edge/http/out_icy.c"
#include "../../edge/http/carry.c"
#include "handoff.h"

/* ---- stubs for the rest of the edge: merge.c, router.c, admin.c, metrics.c, sessions.c, tls.c ----
 * Weak, so a build that links the real ones wins; no listener here routes a request, has TLS or
 * waits for an admin answer. */
#include "edge_http_stubs.h"
STUB ssize_t tls_writev(struct elistener *l, const struct iovec *iov, int n)
{
    (void)l, (void)iov, (void)n;
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

#define BASE_PTS 1700000000000000ull     /* PTS of frame 0, µs since the epoch */
#define JUMP_AT 150u                     /* the output PTS jumps (re-based) before this frame */
#define JUMP_US 5000000ull
#define MOUNT "live.mp3"
#define KEEP_LONG_US (4ull * 3600 * 1000000)  /* --rewind default: nothing evicted */
#define KEEP_SHORT_US (300ull * 1000000)      /* ~1.1 slabs of 128 kbit/s: evicts */
#define FEW_FRAMES 200u                         /* ~5 s, one slab */
#define SEED_FRAMES 12u                         /* ~0.3 s: a small fuzz seed */
#define MANY_FRAMES 35000u                      /* ~14 MiB, ~3.5 slabs */
#define T0 1000.0                               /* the HTTP sides' fake clock (s) */
#define MAX_RECS 64

/* ---- real frames ---- */

static uint8_t *mp3;              /* tests/data/sample.mp3 */
static size_t mp3_len;
static uint32_t fr_off[128], fr_len[128], n_fr;
static uint64_t frame_us;

static const uint8_t *frame_bytes(uint64_t k, uint32_t *len)
{
    *len = fr_len[k % n_fr];
    return mp3 + fr_off[k % n_fr];
}

static uint64_t pts_of(uint64_t k)
{
    return BASE_PTS + k * frame_us + (k >= JUMP_AT ? JUMP_US : 0);
}

static int group_setup(void **state)
{
    FILE *f = fopen("tests/data/sample.mp3", "rb");
    assert_non_null(f); /* run from the repository root */
    mp3 = malloc(64 * 1024);
    assert_non_null(mp3);
    mp3_len = fread(mp3, 1, 64 * 1024, f);
    fclose(f);
    size_t at = 0;
    while (at < mp3_len) {
        struct frame_info info;
        assert_int_equal(mp3_header_parse(mp3 + at, mp3_len - at, &info), FC_OK);
        assert_true(info.len <= mp3_len - at && n_fr < 128);
        fr_off[n_fr] = (uint32_t)at;
        fr_len[n_fr++] = info.len;
        frame_us = clock_samples_to_us(info.samples, info.sample_rate);
        at += info.len;
    }
    assert_int_equal(n_fr, 78); /* tests/data/README.md */
    return 0;
}

static int group_teardown(void **state)
{
    free(mp3);
    return 0;
}

/* ---- a side of the handoff: a core, its HTTP side, a loop ---- */

struct side {
    struct core c;
    struct ehttp h;
};

static void side_init(struct side *s, uint64_t keep_us)
{
    memset(s, 0, sizeof(*s));
    s->c.loop = ev_loop_new(EVFLAG_AUTO);
    assert_non_null(s->c.loop);
    log_init(&s->c.log, "test-carry", false);
    s->c.log.min = LOG_ERROR;
    s->c.opt.rewind_us = keep_us;
    s->c.opt.reorder_us = 300000;
    s->c.test_now = T0;
    s->h.core = &s->c;
    s->h.loop = s->c.loop;
    s->h.log = &s->c.log;
    s->h.listen_fd = s->h.tls_fd = -1;
    s->h.test_now = T0;
    s->h.opt.burst_s = 4;
    s->h.opt.max_lag_s = 30;
    s->h.opt.write_interval_s = EDGE_WRITE_INTERVAL_S;
    s->h.opt.metaint = EDGE_METAINT_DEFAULT;
    edge_http_init(&s->h);
    s->c.hooks = (struct edge_hooks){.ctx = &s->h, .appended = edge_http_appended,
                                     .tick = edge_http_tick, .mount_freed = edge_http_mount_freed};
}

/* As edge_free: every connection closed and reaped, the HTTP side, then the mounts. */
static void side_free(struct side *s)
{
    while (!list_empty(&s->h.all))
        listener_close(container_of(s->h.all.next, struct elistener, alink), "teardown");
    edge_http_free(&s->h);
    ev_check_stop(s->h.loop, &s->h.reap);
    edge_mounts_free(&s->c);
    ev_loop_destroy(s->c.loop);
}

static uint32_t open_fds(void)
{
    uint32_t n = 0;
    DIR *d = opendir("/proc/self/fd");
    assert_non_null(d);
    while (readdir(d))
        n++;
    closedir(d);
    return n;
}

/* The exporter's mount: `n` real frames (PTS jump at JUMP_AT), two titles, two streams. */
static struct emount *build_mount(struct side *a, uint32_t n)
{
    struct emount *m = edge_mount_new(&a->c, MOUNT, FC_CODEC_MP3);
    assert_non_null(m);
    edge_mount_title(&a->c, m, 0, "First title", "");
    for (uint32_t k = 0; k < n; k++) {
        uint32_t len;
        const uint8_t *f = frame_bytes(k, &len);
        if (k == n / 2)
            edge_mount_title(&a->c, m, m->rw.abs_end, "Second title", "http://example.com/");
        assert_int_equal(rewind_append(&m->rw, f, len, pts_of(k), frame_us), FC_OK);
    }
    m->has_audio = true;
    m->sample_rate = 44100;
    m->channels = 2;
    m->bitrate = 128000;
    m->frames_out = n;
    m->lost = 3, m->gaps = 1, m->switches = 2, m->failovers = 1;
    m->last_dur_us = frame_us;
    m->last_len = fr_len[(n - 1) % n_fr];
    m->out_next_pts_us = pts_of(n - 1) + frame_us;
    m->src_end_us = m->out_next_pts_us - 777;
    m->n_fed = 2;
    snprintf(m->fed[0], sizeof(m->fed[0]), "studio");
    snprintf(m->fed[1], sizeof(m->fed[1]), "backup");
    struct estream *s1 = edge_stream_new(&a->c, m, "studio", 0xdeadbeefcafef00dull, 0);
    struct estream *s2 = edge_stream_new(&a->c, m, "backup", 0x0123456789abcdefull, 5);
    assert_non_null(s1);
    assert_non_null(s2);
    reorder_resume(&s1->ro, 987654); /* decided but not yet output: 987650..987653 */
    reorder_resume(&s2->ro, 123456789012ull);
    s1->ro.received = 1000, s1->ro.duplicates = 7, s1->ro.lost = 2;
    s2->ro.received = 999, s2->ro.late = 4;
    s1->frames_out = n, s2->patched = 3;
    s1->healthy_since = 12.5, s2->off_us = -1234, s2->off_how = ALIGN_OK, s2->off_at = 40.0;
    m->active = s1;
    m->ref = s1;
    m->cur_seq = 987650;
    return m;
}

/* ---- moving the records ---- */

struct rec {
    uint16_t type;
    uint8_t *p;
    size_t len;
    bool fd;          /* came with a descriptor (EH_MOUNT) */
};

static struct rec recs[MAX_RECS];
static int n_recs;

struct sender {
    struct core *c;
    int fd;
    int ret;
};

static void *send_thread(void *arg)
{
    struct sender *s = arg;
    s->ret = core_carry_send(s->c, s->fd);
    if (s->ret == 0)
        s->ret = handoff_send(s->fd, HO_END, NULL, 0, NULL, 0, HANDOFF_TIMEOUT_S);
    return NULL;
}

static void recs_free(void)
{
    for (int i = 0; i < n_recs; i++)
        free(recs[i].p);
    n_recs = 0;
}

/* Export A's core over a socketpair, take it into B record by record (each FC_OK, kept in
 * recs[]), then core_carry_check. Returns B's copy of the memfd of the (one) mount, a dup. */
static int transfer(struct side *a, struct side *b)
{
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv), 0);
    struct sender snd = {.c = &a->c, .fd = sv[0], .ret = -1};
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, send_thread, &snd), 0);
    uint8_t *buf = malloc(HANDOFF_REC_MAX);
    assert_non_null(buf);
    int memfd = -1;
    recs_free();
    for (;;) {
        uint16_t type;
        int fds[HANDOFF_FDS_MAX], nfds;
        ssize_t n = handoff_recv(sv[1], &type, buf, HANDOFF_REC_MAX, fds, &nfds, 10.0);
        assert_true(n >= 0);
        if (type == HO_END)
            break;
        assert_true(n_recs < MAX_RECS);
        recs[n_recs] = (struct rec){.type = type, .len = (size_t)n, .fd = nfds == 1};
        recs[n_recs].p = malloc(n ? (size_t)n : 1);
        assert_non_null(recs[n_recs].p);
        memcpy(recs[n_recs].p, buf, (size_t)n);
        n_recs++;
        if (nfds == 1 && memfd < 0)
            memfd = dup(fds[0]);
        const char *why = NULL;
        enum fc_err err = core_carry_take(&b->c, type, buf, (size_t)n, fds, nfds, &why);
        if (err != FC_OK)
            fail_msg("record type %u refused: %s", type, why ? why : "(no reason)");
    }
    assert_int_equal(pthread_join(th, NULL), 0);
    assert_int_equal(snd.ret, 0);
    const char *why = NULL;
    if (core_carry_check(&b->c, &why) != FC_OK)
        fail_msg("core_carry_check: %s", why);
    free(buf);
    close(sv[0]);
    close(sv[1]);
    return memfd;
}

/* ---- fuzz seeds (FC_CARRY_CORPUS) in tests/fuzz/fuzz_handoff.c's recipe format ---- */

static void put16(FILE *f, uint16_t v)
{
    fputc(v & 0xff, f);
    fputc(v >> 8, f);
}

static void write_seed(const char *name, const struct emount *mb, int skip_type, int corrupt_type)
{
    const char *dir = getenv("FC_CARRY_CORPUS");
    if (!dir)
        return;
    char path[512];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    fputc(1, f); /* flags: append after the check */
    for (int i = 0; i < n_recs; i++) {
        if (recs[i].type == skip_type)
            continue;
        if (recs[i].fd) {
            /* op 7: the memfd's size (slabs, pages less), op 8: its bytes, slab by slab */
            struct stat st;
            assert_int_equal(fstat(mb->rw.fd, &st), 0);
            fputc(7, f);
            put16(f, 2);
            fputc((int)(st.st_size / REWIND_SLAB_BYTES), f);
            fputc(0, f);
            const struct rewind_slab *sl;
            for (uint32_t k = 0; (sl = rewind_slab_get(&mb->rw, k)); k++) {
                fputc(8, f);
                put16(f, (uint16_t)(1 + sl->used));
                fputc((int)sl->file_slab, f);
                fwrite(sl->data, 1, sl->used, f);
            }
        }
        fputc(recs[i].type - EH_CORE, f);
        put16(f, (uint16_t)recs[i].len);
        uint8_t *p = malloc(recs[i].len + 1);
        memcpy(p, recs[i].p, recs[i].len);
        if (recs[i].type == corrupt_type && recs[i].len > 12)
            p[recs[i].len - 5] ^= 0x40;
        fwrite(p, 1, recs[i].len, f);
        free(p);
    }
    fclose(f);
}

/* ---- checks ---- */

/* Every byte held, via rewind_iov. */
static uint8_t *gather(const struct rewind *rw, uint64_t *n)
{
    uint64_t held = rewind_bytes_held(rw), got = 0, abs = rw->abs_start;
    uint8_t *out = malloc(held ? held : 1);
    assert_non_null(out);
    while (abs < rw->abs_end) {
        struct iovec iov[8];
        int k = rewind_iov(rw, abs, iov, 8, 1u << 30);
        assert_true(k > 0);
        for (int i = 0; i < k; i++) {
            assert_true(got + iov[i].iov_len <= held);
            memcpy(out + got, iov[i].iov_base, iov[i].iov_len);
            got += iov[i].iov_len;
            abs += iov[i].iov_len;
        }
    }
    assert_int_equal(got, held);
    *n = got;
    return out;
}

static const struct estream *stream_named(const struct emount *m, const char *enc)
{
    for (const struct estream *s = m->streams; s; s = s->next)
        if (strcmp(s->encoder, enc) == 0)
            return s;
    return NULL;
}

static void check_same_mount(const struct emount *ma, const struct emount *mb)
{
    const struct rewind *ra = &ma->rw, *rb = &mb->rw;
    /* the view */
    assert_int_equal(mb->id, ma->id);
    assert_string_equal(mb->name, ma->name);
    assert_int_equal(mb->codec, ma->codec);
    assert_int_equal(mb->has_audio, ma->has_audio);
    assert_int_equal(mb->sample_rate, ma->sample_rate);
    assert_int_equal(mb->channels, ma->channels);
    assert_int_equal(mb->bitrate, ma->bitrate);
    assert_string_equal(mb->title, ma->title);
    assert_int_equal(mb->frames_out, ma->frames_out);
    assert_int_equal(mb->lost, ma->lost);
    assert_int_equal(mb->switches, ma->switches);
    assert_int_equal(mb->failovers, ma->failovers);
    assert_int_equal(mb->cur_seq, ma->cur_seq);
    assert_int_equal(mb->src_end_us, ma->src_end_us);
    assert_int_equal(mb->out_next_pts_us, ma->out_next_pts_us);
    assert_int_equal(mb->last_len, ma->last_len);
    assert_int_equal(mb->n_fed, ma->n_fed);
    for (uint32_t i = 0; i < ma->n_fed; i++)
        assert_string_equal(mb->fed[i], ma->fed[i]);

    /* the buffer: same file, same positions, same slabs and index */
    struct stat sa, sb;
    assert_int_equal(fstat(ra->fd, &sa), 0);
    assert_int_equal(fstat(rb->fd, &sb), 0);
    assert_true(sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino);
    assert_int_equal(rb->codec, ra->codec);
    assert_int_equal(rb->keep_us, ra->keep_us);
    assert_int_equal(rb->abs_start, ra->abs_start);
    assert_int_equal(rb->abs_end, ra->abs_end);
    assert_int_equal(rb->end_pts_us, ra->end_pts_us);
    assert_int_equal(rb->frames, ra->frames);
    assert_int_equal(rb->frames_held, ra->frames_held);
    assert_int_equal(rb->evicted_bytes, ra->evicted_bytes);
    assert_int_equal(rb->next_file_slab, ra->next_file_slab);
    assert_int_equal(rb->punch_from, ra->punch_from);
    assert_int_equal(rb->punch_to, ra->punch_to);
    assert_int_equal(rb->n_slabs, ra->n_slabs);
    for (uint32_t i = 0; i < ra->n_slabs; i++) {
        const struct rewind_slab *x = rewind_slab_get(ra, i), *y = rewind_slab_get(rb, i);
        assert_int_equal(y->abs_start, x->abs_start);
        assert_int_equal(y->used, x->used);
        assert_int_equal(y->file_slab, x->file_slab);
        assert_int_equal(y->frames, x->frames);
    }
    assert_int_equal(rb->n_index, ra->n_index);
    for (uint32_t i = 0; i < ra->n_index; i++) {
        const struct rewind_point *x = rewind_point_get(ra, i), *y = rewind_point_get(rb, i);
        assert_int_equal(y->pts_us, x->pts_us);
        assert_int_equal(y->abs, x->abs);
    }
    uint64_t na, nb;
    uint8_t *ba = gather(ra, &na), *bb = gather(rb, &nb);
    assert_int_equal(na, nb);
    assert_memory_equal(ba, bb, na);
    free(ba);
    free(bb);

    /* seeks and PTS: at every index point, between frames, before and after the buffer */
    uint64_t probes[] = {0, rewind_first_pts(ra), rewind_first_pts(ra) + frame_us / 2,
                         pts_of(JUMP_AT) - 1, pts_of(JUMP_AT), ra->end_pts_us - 1,
                         ra->end_pts_us, UINT64_MAX};
    for (size_t i = 0; i < sizeof(probes) / sizeof(probes[0]); i++) {
        uint64_t fa, fb;
        assert_int_equal(rewind_seek(rb, probes[i], &fb), rewind_seek(ra, probes[i], &fa));
        assert_int_equal(fb, fa);
    }
    for (uint32_t i = 0; i < ra->n_index; i += 7) {
        uint64_t p = rewind_point_get(ra, i)->pts_us + 3 * frame_us + 1, fa, fb;
        uint64_t at = rewind_seek(ra, p, &fa);
        assert_int_equal(rewind_seek(rb, p, &fb), at);
        assert_int_equal(fb, fa);
        assert_int_equal(rewind_pts_at(rb, at), rewind_pts_at(ra, at));
        assert_int_equal(rewind_pts_at(rb, at), fa);
    }
    /* the whole frame walk */
    uint64_t at = rb->abs_start, pts = rewind_first_pts(rb), frames = 0;
    while (at < rb->abs_end) {
        const uint8_t *fa, *fb;
        uint32_t la, lb;
        uint64_t da, db;
        uint64_t next = rewind_frame_at(rb, at, pts, &fb, &lb, &db);
        assert_int_equal(next, rewind_frame_at(ra, at, pts, &fa, &la, &da));
        assert_true(next > at);
        assert_int_equal(lb, la);
        assert_memory_equal(fb, fa, la);
        at = next;
        frames++;
    }
    assert_int_equal(at, rb->abs_end);
    assert_int_equal(frames, rb->frames_held);

    /* titles: the same ids and ICY blocks wherever a listener may be */
    assert_int_equal(mb->titles.n, ma->titles.n);
    assert_int_equal(mb->titles.ids, ma->titles.ids);
    uint64_t where[] = {0, ra->abs_start, (ra->abs_start + ra->abs_end) / 2, ra->abs_end - 1,
                        ra->abs_end};
    for (size_t i = 0; i < sizeof(where) / sizeof(where[0]); i++) {
        const struct title_change *x = titles_at(&ma->titles, where[i]);
        const struct title_change *y = titles_at(&mb->titles, where[i]);
        assert_non_null(x);
        assert_non_null(y);
        assert_int_equal(y->id, x->id);
        assert_int_equal(y->abs, x->abs);
        assert_int_equal(y->block->len, x->block->len);
        assert_memory_equal(y->block->data, x->block->data, x->block->len);
    }

    /* streams: same order, identity, priority, counters; the active one resumes at cur_seq */
    assert_int_equal(mb->n_streams, ma->n_streams);
    const struct estream *x = ma->streams, *y = mb->streams;
    for (; x && y; x = x->next, y = y->next) {
        assert_string_equal(y->encoder, x->encoder);
        assert_int_equal(y->session, x->session);
        assert_int_equal(y->priority, x->priority);
        assert_int_equal(y->ro.started, x->ro.started);
        assert_int_equal(y->ro.next_seq, x == ma->active ? ma->cur_seq : x->ro.next_seq);
        assert_int_equal(y->ro.received, x->ro.received);
        assert_int_equal(y->ro.duplicates, x->ro.duplicates);
        assert_int_equal(y->ro.late, x->ro.late);
        assert_int_equal(y->ro.lost, x->ro.lost);
        assert_int_equal(y->frames_out, x->frames_out);
        assert_int_equal(y->patched, x->patched);
        assert_int_equal(y->off_us, x->off_us);
        assert_int_equal(y->off_how, x->off_how);
        assert_true(y->healthy_since == x->healthy_since && y->off_at == x->off_at);
        assert_ptr_equal(y->mount, mb);
    }
    assert_null(x);
    assert_null(y);
    assert_non_null(mb->active);
    assert_ptr_equal(mb->active, stream_named(mb, ma->active->encoder));
    assert_ptr_equal(mb->ref, stream_named(mb, ma->ref->encoder));
    assert_int_equal(mb->active->ro.next_seq, 987650);
    assert_int_equal(stream_named(mb, "backup")->ro.next_seq, 123456789012ull);
}

/* B appends a frame: the bytes land in the shared file, where A's descriptor reads them. */
static void check_shared(struct emount *ma, struct emount *mb)
{
    uint32_t len;
    const uint8_t *f = frame_bytes(5, &len);
    uint64_t end = mb->rw.abs_end;
    assert_int_equal(rewind_append(&mb->rw, f, len, mb->rw.end_pts_us, frame_us), FC_OK);
    const struct rewind_slab *last = rewind_slab_get(&mb->rw, mb->rw.n_slabs - 1);
    assert_int_equal(last->abs_start + last->used, end + len);
    uint8_t got[2048];
    off_t off = (off_t)(last->file_slab * REWIND_SLAB_BYTES + (end - last->abs_start));
    assert_int_equal(pread(ma->rw.fd, got, len, off), (ssize_t)len);
    assert_memory_equal(got, f, len);
    /* ... and A's own mapping of that slab (same file slab, still mapped there) */
    const struct rewind_slab *la = rewind_slab_get(&ma->rw, ma->rw.n_slabs - 1);
    if (la->file_slab == last->file_slab)
        assert_memory_equal(la->data + (end - la->abs_start), f, len);
}

static void round_trip(uint64_t keep_us, uint32_t n_frames, bool evicted)
{
    uint32_t fds0 = open_fds();
    struct side *a = calloc(1, sizeof(*a)), *b = calloc(1, sizeof(*b));
    assert_non_null(a);
    assert_non_null(b);
    side_init(a, keep_us);
    side_init(b, keep_us);
    struct emount *ma = build_mount(a, n_frames);
    if (evicted) {
        assert_true(ma->rw.evicted_bytes > 0);
        assert_true(ma->rw.n_slabs >= 2);
        assert_true(rewind_slab_get(&ma->rw, 0)->file_slab > 0);
    } else {
        assert_int_equal(ma->rw.n_slabs, 1);
        assert_int_equal(ma->rw.abs_start, 0);
    }
    int memfd = transfer(a, b);
    assert_true(memfd >= 0);
    close(memfd);
    assert_int_equal(b->c.n_mounts, 1);
    assert_int_equal(b->c.mount_ids, a->c.mount_ids);
    struct emount *mb = edge_mount_find(&b->c, MOUNT, strlen(MOUNT));
    assert_non_null(mb);
    check_same_mount(ma, mb);
    if (n_frames == SEED_FRAMES) {
        write_seed("export_one_slab", mb, -1, -1);
        write_seed("export_no_index", mb, EH_INDEX, -1);
        write_seed("export_bad_stream", mb, -1, EH_STREAM);
    }
    check_shared(ma, mb);
    recs_free();
    side_free(a);
    side_free(b);
    free(a);
    free(b);
    assert_int_equal(open_fds(), fds0);
}

static void test_round_trip_one_slab(void **state)
{
    round_trip(KEEP_LONG_US, FEW_FRAMES, false);
}

static void test_round_trip_few(void **state)
{
    round_trip(KEEP_LONG_US, SEED_FRAMES, false);
}

static void test_round_trip_evicted(void **state)
{
    round_trip(KEEP_SHORT_US, MANY_FRAMES, true);
}

/* ---- (b) refusals: a good export replayed with one record changed ---- */

static struct side *ref_a, *ref_b;

static int export_setup(void **state)
{
    ref_a = calloc(1, sizeof(*ref_a));
    ref_b = calloc(1, sizeof(*ref_b));
    assert_non_null(ref_a);
    assert_non_null(ref_b);
    side_init(ref_a, KEEP_LONG_US);
    side_init(ref_b, KEEP_LONG_US);
    build_mount(ref_a, FEW_FRAMES);
    close(transfer(ref_a, ref_b));
    return 0;
}

static int export_teardown(void **state)
{
    recs_free();
    side_free(ref_a);
    side_free(ref_b);
    free(ref_a);
    free(ref_b);
    return 0;
}

static int rec_index(uint16_t type, int nth)
{
    for (int i = 0; i < n_recs; i++)
        if (recs[i].type == type && nth-- == 0)
            return i;
    fail_msg("no record %u", type);
    return -1;
}

enum fd_mode { FD_NORMAL, FD_NONE, FD_TWO, FD_SHORT };

/*
 * Replay recs[] into a fresh core with `edit` applied to a copy of record `at` (its payload may
 * be changed in place) and descriptors per `fdm` on that record (FD_SHORT: a copy of the memfd one
 * page short of its last slab). Returns the first refusal's status (FC_OK: none, then
 * core_carry_check's) with its reason in *why; checks no descriptor is left open.
 */
static enum fc_err replay(int at, void (*edit)(uint8_t *p, size_t len), enum fd_mode fdm,
                          const char **why, bool *at_check)
{
    uint32_t fds0 = open_fds();
    const struct emount *ma = ref_a->c.mounts;
    struct side *c = calloc(1, sizeof(*c));
    assert_non_null(c);
    side_init(c, KEEP_LONG_US);
    enum fc_err err = FC_OK;
    *why = NULL;
    *at_check = false;
    for (int i = 0; i < n_recs && err == FC_OK; i++) {
        uint8_t *p = malloc(recs[i].len + 1);
        assert_non_null(p);
        memcpy(p, recs[i].p, recs[i].len);
        int fds[2], nfds = 0;
        if (recs[i].fd && !(i == at && fdm == FD_NONE)) {
            if (i == at && fdm == FD_SHORT) {
                /* the same bytes in a new memfd, one page short of the last slab's end */
                struct stat st;
                assert_int_equal(fstat(ma->rw.fd, &st), 0);
                int f = memfd_create("short", MFD_CLOEXEC);
                assert_true(f >= 0);
                assert_int_equal(ftruncate(f, st.st_size - 4096), 0);
                fds[nfds++] = f;
            } else {
                fds[nfds++] = dup(ma->rw.fd);
            }
        }
        if (i == at && fdm == FD_TWO)
            fds[nfds++] = dup(ma->rw.fd);
        if (i == at && edit)
            edit(p, recs[i].len);
        err = core_carry_take(&c->c, recs[i].type, p, recs[i].len, fds, nfds, why);
        free(p);
    }
    if (err == FC_OK) {
        *at_check = true;
        err = core_carry_check(&c->c, why);
    }
    side_free(c);
    free(c);
    assert_int_equal(open_fds(), fds0); /* every descriptor kept or closed, none leaked */
    return err;
}

static void expect_refused(int at, void (*edit)(uint8_t *, size_t), enum fd_mode fdm,
                           const char *reason, bool at_check)
{
    const char *why;
    bool checked;
    enum fc_err err = replay(at, edit, fdm, &why, &checked);
    assert_int_equal(err, FC_PROTO);
    assert_non_null(why);
    assert_true(why[0] != '\0');
    assert_string_equal(why, reason);
    assert_int_equal(checked, at_check);
}

static void edit_slab_abs(uint8_t *p, size_t len)
{
    uint64_t v;
    memcpy(&v, p + 4, 8);
    v += 1; /* does not continue the buffer */
    memcpy(p + 4, &v, 8);
}

static void edit_point_outside(uint8_t *p, size_t len)
{
    uint64_t abs = ref_a->c.mounts->rw.abs_end; /* one past the newest byte */
    memcpy(p + len - 8, &abs, 8);
}

static void edit_point_backwards(uint8_t *p, size_t len)
{
    assert_true(len >= 4 + 32);
    uint64_t second;
    memcpy(&second, p + 4 + 16 + 8, 8);
    second += 1; /* the first point after the second */
    memcpy(p + 4 + 8, &second, 8);
}

static void edit_stream_mount(uint8_t *p, size_t len)
{
    uint32_t id = 99;
    memcpy(p, &id, 4);
}

/* The active stream's resume seq (after u32 mount, str encoder, u64 session, u32 prio, u8). */
static void edit_stream_seq(uint8_t *p, size_t len)
{
    uint16_t l;
    memcpy(&l, p + 4, 2);
    size_t at = 4 + 2 + l + 8 + 4 + 1;
    uint64_t seq;
    memcpy(&seq, p + at, 8);
    assert_int_equal(seq, 987650); /* the record of the active stream, as sent */
    seq++;
    memcpy(p + at, &seq, 8);
}

static void edit_mount_name(uint8_t *p, size_t len)
{
    p[4 + 2] = '/'; /* "/ive.mp3": not a valid mount name */
}

static void test_refuse_slab_out_of_order(void **state)
{
    expect_refused(rec_index(EH_SLABS, 0), edit_slab_abs, FD_NORMAL, "slab out of order", false);
}

static void test_refuse_index_outside(void **state)
{
    expect_refused(rec_index(EH_INDEX, 0), edit_point_outside, FD_NORMAL,
                   "index point out of order", false);
    expect_refused(rec_index(EH_INDEX, 0), edit_point_backwards, FD_NORMAL,
                   "index point out of order", false);
}

static void test_refuse_slab_past_memfd(void **state)
{
    /* The mount record is fine (its descriptor is checked against the slabs that follow). */
    expect_refused(rec_index(EH_MOUNT, 0), NULL, FD_SHORT, "slab out of order", false);
}

static void test_refuse_stream_unknown_mount(void **state)
{
    expect_refused(rec_index(EH_STREAM, 0), edit_stream_mount, FD_NORMAL,
                   "malformed stream record", false);
}

static void test_refuse_active_seq(void **state)
{
    /* streams go from the list's tail (the oldest, here the active one) to its head */
    expect_refused(rec_index(EH_STREAM, 0), edit_stream_seq, FD_NORMAL,
                   "malformed stream record", false);
}

static void test_refuse_mount_descriptors(void **state)
{
    expect_refused(rec_index(EH_MOUNT, 0), NULL, FD_NONE, "unexpected descriptors", false);
    expect_refused(rec_index(EH_MOUNT, 0), NULL, FD_TWO, "unexpected descriptors", false);
    expect_refused(rec_index(EH_SLABS, 0), NULL, FD_TWO, "unexpected descriptors", false);
    expect_refused(rec_index(EH_MOUNT, 0), edit_mount_name, FD_NORMAL, "malformed mount record",
                   false);
}

static void edit_truncate_slabs(uint8_t *p, size_t len)
{
    uint32_t used;
    memcpy(&used, p + 4 + 8, 4);
    used -= fr_len[(FEW_FRAMES - 1) % n_fr]; /* the last frame missing: abs_end falls short */
    memcpy(p + 4 + 8, &used, 4);
}

/* The rewind fields end the mount record: ... next_file_slab, punch_from, punch_to, abs_start,
 * abs_end, end_pts_us, frames, evicted_bytes (u64 each). */
static void edit_next_file_slab(uint8_t *p, size_t len)
{
    uint64_t k = (1ull << 42) - 1; /* the next slab's size (k + 1) * 4 MiB wraps to 0 */
    memcpy(p + len - 64, &k, 8);
}

static void edit_punch_held(uint8_t *p, size_t len)
{
    uint64_t from = 0, to = 1; /* file slab 0 is held */
    memcpy(p + len - 56, &from, 8);
    memcpy(p + len - 48, &to, 8);
}

static void test_refuse_file_slabs(void **state)
{
    expect_refused(rec_index(EH_MOUNT, 0), edit_next_file_slab, FD_NORMAL,
                   "malformed mount record", false);
    expect_refused(rec_index(EH_MOUNT, 0), edit_punch_held, FD_NORMAL,
                   "a slab held is to be punched", true);
}

static void test_refuse_incomplete(void **state)
{
    expect_refused(rec_index(EH_SLABS, 0), edit_truncate_slabs, FD_NORMAL,
                   "a rewind buffer arrived incomplete", true);
    /* and the untouched replay is accepted (the edits above are what is refused) */
    const char *why;
    bool checked;
    assert_int_equal(replay(-1, NULL, FD_NORMAL, &why, &checked), FC_OK);
    assert_true(checked);
}

/* ---- (c) listeners ---- */

/* A streaming listener on `m` of side `s`, as router.c's choose_span() and listener_serve_span()
 * leave it once its head is sent: time-shifted, paced, ICY. Its socket is *peer's. */
static struct elistener *make_listener(struct side *s, struct emount *m, int *peer)
{
    int sp[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sp), 0);
    int small = 4096;
    setsockopt(sp[0], SOL_SOCKET, SO_SNDBUF, &small, sizeof(small));
    struct elistener *l = listener_accept(&s->h, sp[0], NULL, "192.0.2.7:40000");
    assert_non_null(l);
    ev_timer_stop(s->h.loop, &l->idle);
    snprintf(l->ua, sizeof(l->ua), "mpv 0.35");
    snprintf(l->host, sizeof(l->host), "edge.example:8000");
    l->icy = true;
    l->accepted = 0;
    l->state = L_STREAM;
    struct hmount *hm = hmount_of(&s->h, m);
    assert_non_null(hm);
    l->mount = m;
    l->hm = hm;
    list_add(&hm->listeners, &l->mlink);
    hm->n_listeners++;
    hm->n_icy++;
    *peer = sp[1];
    return l;
}

static struct elistener *find_listener(struct ehttp *h, uint64_t id)
{
    for (struct list_node *it = h->all.next; it != &h->all; it = it->next) {
        struct elistener *l = container_of(it, struct elistener, alink);
        if (l->id == id)
            return l;
    }
    return NULL;
}

/* Fill the socket `fd` until it takes no more; the bytes written. */
static size_t fill_socket(int fd)
{
    static uint8_t junk[1024];
    size_t n = 0;
    for (;;) {
        ssize_t w = write(fd, junk, sizeof(junk));
        if (w <= 0)
            break;
        n += (size_t)w;
    }
    assert_true(errno == EAGAIN || errno == EWOULDBLOCK);
    return n;
}

static size_t read_all(int fd, uint8_t *buf, size_t cap)
{
    size_t n = 0;
    while (n < cap) {
        ssize_t r = read(fd, buf + n, cap - n);
        if (r <= 0)
            break;
        n += (size_t)r;
    }
    return n;
}

static void assert_same_listener(const struct elistener *x, const struct elistener *y)
{
    assert_int_equal(y->id, x->id);
    assert_string_equal(y->peer, x->peer);
    assert_string_equal(y->ua, x->ua);
    assert_string_equal(y->host, x->host);
    assert_int_equal(y->icy, x->icy);
    assert_int_equal(y->head, x->head);
    assert_int_equal(y->state, x->state);
    assert_string_equal(y->mount->name, x->mount->name);
    assert_int_equal(y->pos, x->pos);
    assert_int_equal(y->end_abs, x->end_abs);
    assert_int_equal(y->paced, x->paced);
    assert_true(y->burst_s == x->burst_s);
    assert_int_equal(y->lim_set, x->lim_set);
    assert_int_equal(y->lim_abs, x->lim_abs);
    assert_int_equal(y->lim_dur_us, x->lim_dur_us);
    assert_int_equal(y->start_pts_us, x->start_pts_us);
    assert_true(y->start_wall == x->start_wall);
    assert_int_equal(y->bytes_sent, x->bytes_sent);
    assert_int_equal(y->metaint_left, x->metaint_left);
    assert_int_equal(y->title_sent, x->title_sent);
    assert_int_equal(y->meta_ptr != NULL, x->meta_ptr != NULL);
    if (x->meta_ptr) {
        assert_int_equal(y->meta_len - y->meta_off, x->meta_len - x->meta_off);
        assert_memory_equal(y->meta_ptr + y->meta_off, x->meta_ptr + x->meta_off,
                            x->meta_len - x->meta_off);
    }
    assert_null(y->out);
}

static void write_listener_seed(const char *name, const uint8_t *p, size_t len)
{
    const char *dir = getenv("FC_CARRY_CORPUS");
    if (!dir)
        return;
    char path[512];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    fwrite(p, 1, len, f);
    fclose(f);
}

static void test_listener_round_trip(void **state)
{
    uint32_t fds0 = open_fds();
    struct side *a = calloc(1, sizeof(*a)), *b = calloc(1, sizeof(*b));
    assert_non_null(a);
    assert_non_null(b);
    side_init(a, KEEP_LONG_US);
    side_init(b, KEEP_LONG_US);
    struct emount *ma = build_mount(a, FEW_FRAMES);
    close(transfer(a, b));
    struct emount *mb = edge_mount_find(&b->c, MOUNT, strlen(MOUNT));
    assert_non_null(mb);
    const struct rewind_point *p10 = rewind_point_get(&ma->rw, 1); /* ~0.5 s in */
    assert_non_null(p10);

    /* Listener 1: 1234 audio bytes to the next ICY block, the first title sent. */
    int peer1, peer2;
    struct elistener *l1 = make_listener(a, ma, &peer1);
    l1->pos = p10->abs;
    l1->start_pts_us = p10->pts_us;
    l1->paced = true;
    l1->burst_s = 4;
    l1->start_wall = T0 - 10;
    l1->lim_set = true;
    l1->lim_abs = p10->abs + fr_len[0] * 3;
    l1->lim_dur_us = 3 * frame_us;
    l1->bytes_sent = 123456;
    l1->metaint_left = 1234;
    l1->title_sent = 1;
    /* Listener 2: half-way through the second title's block, live (not paced). */
    struct elistener *l2 = make_listener(a, ma, &peer2);
    const struct title_change *t2 = titles_at(&ma->titles, ma->rw.abs_end);
    assert_non_null(t2);
    assert_int_equal(t2->id, 2);
    l2->pos = rewind_point_get(&ma->rw, 3)->abs;
    l2->start_pts_us = rewind_point_get(&ma->rw, 3)->pts_us;
    l2->burst_s = 0;
    l2->start_wall = T0 - 1;
    l2->bytes_sent = 999;
    l2->metaint_left = 0;
    l2->title_sent = t2->id;
    l2->meta = msgref_get(t2->block);
    l2->meta_ptr = t2->block->data;
    l2->meta_len = t2->block->len;
    l2->meta_off = 5;
    assert_true(t2->block->len > 5);

    struct elistener *ls[2] = {l1, l2};
    int peers[2] = {peer1, peer2};
    uint8_t *rec = malloc(HANDOFF_REC_MAX);
    uint8_t *rx = malloc(1 << 20);
    assert_non_null(rec);
    assert_non_null(rx);
    for (int i = 0; i < 2; i++) {
        struct elistener *l = ls[i];
        assert_true(carry_can(l));
        carry_pause(l);
        assert_true(l->paused);
        struct ho_buf hb = {.p = rec, .cap = HANDOFF_REC_MAX};
        carry_export(l, &hb);
        assert_false(hb.bad);
        write_listener_seed(i == 0 ? "listener_paced_icy" : "listener_half_block", rec, hb.len);

        /* B takes a copy of the socket, full: the adopted listener writes nothing yet. */
        size_t junk = fill_socket(l->fd);
        int fd = fcntl(l->fd, F_DUPFD_CLOEXEC, 0);
        assert_true(fd >= 0);
        uint32_t before = b->h.n_listeners;
        const char *why = NULL;
        if (carry_adopt(&b->h, fd, rec, hb.len, &why) != FC_OK)
            fail_msg("carry_adopt: %s", why);
        assert_int_equal(b->h.n_listeners, before + 1);
        struct elistener *y = find_listener(&b->h, l->id);
        assert_non_null(y);
        assert_ptr_equal(y->mount, mb);
        assert_same_listener(l, y);
        assert_int_equal(((struct hmount *)mb->http)->n_listeners, (uint32_t)i + 1);
        assert_int_equal(((struct hmount *)mb->http)->n_icy, (uint32_t)i + 1);

        /* Now let it write: after the junk, the stream goes on exactly where A left it. */
        assert_int_equal(read_all(peers[i], rx, junk), junk);
        uint64_t pos = y->pos;
        uint32_t left = y->metaint_left;
        listener_write_audio(y);
        size_t n = read_all(peers[i], rx, 1 << 20);
        const struct title_change *tc;
        if (i == 0) {
            /* audio from pos for metaint_left bytes, then the block due there */
            assert_true(n > left + 1);
            uint8_t *ref = malloc(left);
            struct iovec iov[4];
            int k = rewind_iov(&mb->rw, pos, iov, 4, left);
            size_t got = 0;
            for (int j = 0; j < k; j++)
                memcpy(ref + got, iov[j].iov_base, iov[j].iov_len), got += iov[j].iov_len;
            assert_int_equal(got, left);
            assert_memory_equal(rx, ref, left);
            free(ref);
            tc = titles_at(&mb->titles, pos + left);
            assert_non_null(tc);
            assert_int_equal(tc->id, 1); /* already sent: a lone zero byte */
            assert_int_equal(rx[left], 0);
        } else {
            /* the rest of the half-sent block, then audio from pos */
            size_t rest = t2->block->len - 5;
            assert_true(n > rest);
            assert_memory_equal(rx, t2->block->data + 5, rest);
            struct iovec iov[4];
            int k = rewind_iov(&mb->rw, pos, iov, 4, 64);
            assert_true(k >= 1);
            assert_memory_equal(rx + rest, iov[0].iov_base, iov[0].iov_len < n - rest ? iov[0].iov_len : n - rest);
        }
    }

    /* Refused: a position past the buffer's end, and an unknown mount. */
    uint64_t keep = l1->pos;
    l1->pos = ma->rw.abs_end + 1;
    struct ho_buf hb = {.p = rec, .cap = HANDOFF_REC_MAX};
    carry_export(l1, &hb);
    l1->pos = keep;
    write_listener_seed("listener_pos_outside", rec, hb.len);
    uint32_t before = b->h.n_listeners;
    const char *why = NULL;
    assert_int_equal(carry_adopt(&b->h, fcntl(l1->fd, F_DUPFD_CLOEXEC, 0), rec, hb.len, &why),
                     FC_PROTO);
    assert_string_equal(why, "position outside the rewind buffer");
    assert_int_equal(b->h.n_listeners, before);

    snprintf(ma->name, sizeof(ma->name), "other.mp3");
    hb = (struct ho_buf){.p = rec, .cap = HANDOFF_REC_MAX};
    carry_export(l1, &hb);
    snprintf(ma->name, sizeof(ma->name), MOUNT);
    why = NULL;
    assert_int_equal(carry_adopt(&b->h, fcntl(l1->fd, F_DUPFD_CLOEXEC, 0), rec, hb.len, &why),
                     FC_PROTO);
    assert_string_equal(why, "unknown mount");
    /* a truncated record */
    hb = (struct ho_buf){.p = rec, .cap = HANDOFF_REC_MAX};
    carry_export(l1, &hb);
    why = NULL;
    assert_int_equal(carry_adopt(&b->h, fcntl(l1->fd, F_DUPFD_CLOEXEC, 0), rec, hb.len - 1, &why),
                     FC_PROTO);
    assert_string_equal(why, "malformed listener record");
    assert_int_equal(b->h.n_listeners, before);

    free(rec);
    free(rx);
    close(peer1);
    close(peer2);
    recs_free();
    side_free(a);
    side_free(b);
    free(a);
    free(b);
    assert_int_equal(open_fds(), fds0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip_one_slab),
        cmocka_unit_test(test_round_trip_few),
        cmocka_unit_test(test_round_trip_evicted),
        cmocka_unit_test_setup_teardown(test_refuse_slab_out_of_order, export_setup,
                                        export_teardown),
        cmocka_unit_test_setup_teardown(test_refuse_index_outside, export_setup, export_teardown),
        cmocka_unit_test_setup_teardown(test_refuse_slab_past_memfd, export_setup,
                                        export_teardown),
        cmocka_unit_test_setup_teardown(test_refuse_stream_unknown_mount, export_setup,
                                        export_teardown),
        cmocka_unit_test_setup_teardown(test_refuse_active_seq, export_setup, export_teardown),
        cmocka_unit_test_setup_teardown(test_refuse_mount_descriptors, export_setup,
                                        export_teardown),
        cmocka_unit_test_setup_teardown(test_refuse_file_slabs, export_setup, export_teardown),
        cmocka_unit_test_setup_teardown(test_refuse_incomplete, export_setup, export_teardown),
        cmocka_unit_test(test_listener_round_trip),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
