/*
 * test_persist.c - unit tests for the rewind buffer on disk (edge/core/persist.c, issue 4 item 4,
 * format in persist.h): a round trip keeps the bytes, the PTS (as rewind_seek() and
 * rewind_pts_at() see them) and every stream's resume state; a file truncated at every 1/16th
 * (and densely) or with one flipped byte (many positions) loads exactly its valid prefix or is
 * rejected, never anything else; files that are not rewind files are rejected with FC_PROTO.
 *
 * persist.c works on the edge's `struct core`, so mount.c (mounts and streams), titles.c,
 * rewind.c, reorder.c and lane.c are compiled in; merge.c is not: its few symbols that mount.c
 * needs are stubbed below (none of them is reached by these tests).
 *
 * Frames are synthetic but valid MP3: MPEG-1 Layer III, 128 kbps, 44.1 kHz, header FF FB 90 44
 * (417 bytes) or, every third frame, with the padding bit FF FB 92 44 (418 bytes), so a loader
 * that slipped by a byte could not line up again. The body carries the frame's number, so any
 * wrong byte or frame shows.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "../../edge/core/lane.c"
#undef MASK /* lane.c and reorder.c each define their own ring mask */
#include "../../edge/core/reorder.c"
#include "../../edge/core/mount.c"
#include "../../edge/core/persist.c"
#include "../../edge/core/rewind.c"
#include "../../edge/core/titles.c"

#include "edge_merge_stubs.h"

#define FRAME_US 26122u                    /* clock_samples_to_us(1152, 44100) */
#define BASE_PTS 1700000000000000ull       /* 2023-11-14, µs since the epoch */
#define N_FRAMES 6000u                     /* ~2.6 MB: three frame blocks of <= 1 MiB */
#define JUMP_AT 4321u                      /* a PTS jump (re-based output) before this frame */
#define JUMP_US 7000000ull                 /* of 7 s */
#define MOUNT "live.mp3"
#define KEEP_US (4ull * 3600 * 1000000)    /* --rewind default */

static char tmpdir[64];
static struct ev_loop *loop;

/* A whole original mount: frames, their PTS and lengths, and the reference bytes. */
struct orig {
    struct core e;
    struct emount *m;
    uint8_t *bytes;   /* every byte held, in order */
    uint64_t n_bytes;
    uint64_t *pts;    /* per frame */
    uint64_t *off;    /* per frame: offset in bytes[] (abs - abs_start) */
    uint32_t n;       /* frames held */
};

static struct orig src;
static char path[128];
static uint8_t *file;     /* the saved file */
static size_t file_len;

static uint32_t frame_len(uint64_t k)
{
    return k % 3 == 0 ? 418u : 417u;
}

static void make_frame(uint64_t k, uint8_t *buf)
{
    uint32_t len = frame_len(k);
    buf[0] = 0xFF, buf[1] = 0xFB, buf[2] = k % 3 == 0 ? 0x92 : 0x90, buf[3] = 0x44;
    for (uint32_t i = 4; i < len; i++)
        buf[i] = i < 12 ? (uint8_t)(k >> (8 * (i - 4))) : (uint8_t)(k * 29u + i * 13u + 5u);
}

static void edge_setup(struct core *e, uint64_t keep_us)
{
    memset(e, 0, sizeof(*e));
    e->loop = loop;
    log_init(&e->log, "test-persist", false);
    e->opt.rewind_us = keep_us;
    e->opt.reorder_us = 300000;
}

static uint64_t pts_of(uint64_t k)
{
    return BASE_PTS + k * FRAME_US + (k >= JUMP_AT ? JUMP_US : 0);
}

/* Gather every byte held by `rw` (from abs_start) into a malloc'd buffer. */
static uint8_t *gather_all(const struct rewind *rw, uint64_t *n)
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

/* Build the original mount: `n_frames` frames appended (keeping `keep_us`), three streams. */
static void orig_build(struct orig *o, uint32_t n_frames, uint64_t keep_us)
{
    uint8_t buf[512];
    edge_setup(&o->e, keep_us);
    o->m = edge_mount_new(&o->e, MOUNT, FC_CODEC_MP3);
    assert_non_null(o->m);
    for (uint32_t k = 0; k < n_frames; k++) {
        make_frame(k, buf);
        assert_int_equal(rewind_append(&o->m->rw, buf, frame_len(k), pts_of(k), FRAME_US), FC_OK);
    }
    struct emount *m = o->m;
    m->has_audio = true;
    m->sample_rate = 44100;
    m->channels = 2;
    m->bitrate = 128000;
    m->last_dur_us = FRAME_US;
    m->out_next_pts_us = pts_of(n_frames - 1) + FRAME_US;
    m->src_end_us = pts_of(n_frames - 1) + FRAME_US - 1234;
    struct estream *a = edge_stream_new(&o->e, m, "studio-a", 0xdeadbeefcafef00dull, 0);
    struct estream *b = edge_stream_new(&o->e, m, "studio-b", 0x0000000000000001ull, 1);
    struct estream *c = edge_stream_new(&o->e, m, "backup", 0x7fffffffffffffffull, 5);
    assert_non_null(a);
    assert_non_null(b);
    assert_non_null(c);
    reorder_resume(&a->ro, 987654);      /* the active stream: frames decided but not output */
    reorder_resume(&b->ro, 123456789012ull);
    reorder_resume(&c->ro, 0);           /* never received: next_seq 0 */
    c->ro.started = false;
    m->active = a;
    m->cur_seq = 987650;                 /* what the output reached: what a restart resumes */

    /* Reference: the bytes and each frame's PTS and offset, by walking what is held. */
    o->bytes = gather_all(&m->rw, &o->n_bytes);
    o->n = (uint32_t)m->rw.frames_held;
    o->pts = calloc(o->n, sizeof(*o->pts));
    o->off = calloc(o->n + 1, sizeof(*o->off));
    assert_non_null(o->pts);
    assert_non_null(o->off);
    uint32_t first = n_frames - o->n;
    uint64_t abs = m->rw.abs_start;
    for (uint32_t i = 0; i < o->n; i++) {
        o->pts[i] = pts_of(first + i);
        o->off[i] = abs - m->rw.abs_start;
        abs += frame_len(first + i);
    }
    o->off[o->n] = abs - m->rw.abs_start;
    assert_int_equal(o->off[o->n], o->n_bytes);
}

static void orig_free(struct orig *o)
{
    edge_mounts_free(&o->e);
    free(o->bytes);
    free(o->pts);
    free(o->off);
    memset(o, 0, sizeof(*o));
}

static uint8_t *read_whole(const char *p, size_t *n)
{
    FILE *fp = fopen(p, "rb");
    assert_non_null(fp);
    struct stat st;
    assert_int_equal(fstat(fileno(fp), &st), 0);
    uint8_t *buf = malloc((size_t)st.st_size + 1);
    assert_non_null(buf);
    assert_int_equal(fread(buf, 1, (size_t)st.st_size, fp), (size_t)st.st_size);
    fclose(fp);
    *n = (size_t)st.st_size;
    return buf;
}

static void write_whole(const char *p, const uint8_t *buf, size_t n)
{
    FILE *fp = fopen(p, "wb");
    assert_non_null(fp);
    assert_int_equal(fwrite(buf, 1, n, fp), n);
    assert_int_equal(fclose(fp), 0);
}

/* ---- the file's own layout, parsed independently of persist.c ---- */

struct layout {
    size_t state_end;         /* file offset where the state block ends */
    uint32_t n_blocks;        /* frame blocks */
    size_t block_start[64];   /* file offset of each frame block's header */
    size_t block_end[64];     /* one past its payload */
    uint32_t frames_before[65]; /* frames in blocks [0, i) */
};

static uint32_t be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static void parse_layout(const uint8_t *f, size_t n, struct layout *L)
{
    memset(L, 0, sizeof(*L));
    assert_true(n >= 8 + 24);
    assert_memory_equal(f, "FCRW", 4);
    assert_int_equal(be32(f + 4), 1);
    assert_int_equal(be32(f + 8), 1); /* state first */
    L->state_end = 8 + 24 + be32(f + 12);
    size_t at = L->state_end;
    while (at < n) {
        assert_true(L->n_blocks < 64);
        assert_true(at + 24 <= n);
        assert_int_equal(be32(f + at), 2);
        uint32_t len = be32(f + at + 4);
        assert_true(len <= PERSIST_BLOCK_BYTES);
        assert_true(at + 24 + len <= n);
        uint32_t frames = 0, off = 0;
        while (off < len) {
            off += 16 + be32(f + at + 24 + off + 12);
            frames++;
        }
        assert_int_equal(off, len);
        L->block_start[L->n_blocks] = at;
        L->block_end[L->n_blocks] = at + 24 + len;
        L->frames_before[L->n_blocks + 1] = L->frames_before[L->n_blocks] + frames;
        L->n_blocks++;
        at += 24 + len;
    }
    assert_int_equal(at, n);
}

/* ---- checks ---- */

struct loaded {
    struct core e;
    struct emount *m;
    enum fc_err err;
    uint64_t frames, dropped;
    const char *why;
};

static void load(struct loaded *L, const char *p, uint64_t keep_us)
{
    edge_setup(&L->e, keep_us);
    L->err = persist_load_mount(&L->e, p, &L->frames, &L->dropped, &L->why);
    L->m = edge_mount_find(&L->e, MOUNT, strlen(MOUNT));
    if (L->err == FC_OK)
        assert_non_null(L->m);
    else
        assert_null(L->m); /* nothing usable: no half-made mount left behind */
}

static void unload(struct loaded *L)
{
    edge_mounts_free(&L->e);
}

/*
 * The loaded mount holds exactly the first `n` frames of `o`: same bytes, and for every frame
 * rewind_seek() to its PTS (and 1 µs before/after) and rewind_pts_at() agree with the original,
 * positions counted from each buffer's oldest byte. Seeks are checked for every `stride`-th
 * frame and for the first and last index intervals in full (the bulk tests use a stride).
 */
static void expect_prefix(const struct orig *o, const struct emount *lm, uint32_t n,
                          uint32_t stride)
{
    const struct rewind *a = &o->m->rw, *b = &lm->rw;
    assert_true(n <= o->n);
    assert_int_equal(b->frames_held, n);
    uint64_t got_n;
    uint8_t *got = gather_all(b, &got_n);
    assert_int_equal(got_n, o->off[n]);
    assert_memory_equal(got, o->bytes, got_n);
    free(got);
    if (n == 0)
        return;
    assert_int_equal(rewind_first_pts(b), o->pts[0]);
    assert_int_equal(b->end_pts_us, o->pts[n - 1] + FRAME_US);
    uint64_t fa, fb;
    for (uint32_t i = 0; i < n; i++) {
        if (i % stride != 0 && i > 40 && i + 40 < n && !(i + 1 >= JUMP_AT && i <= JUMP_AT + 1))
            continue;
        uint64_t aa = rewind_seek(a, o->pts[i], &fa) - a->abs_start;
        uint64_t ab = rewind_seek(b, o->pts[i], &fb) - b->abs_start;
        assert_int_equal(ab, o->off[i]);
        assert_int_equal(aa, ab);
        assert_int_equal(fa, fb);
        assert_int_equal(fb, o->pts[i]);
        aa = rewind_seek(a, o->pts[i] - 1, &fa) - a->abs_start;
        ab = rewind_seek(b, o->pts[i] - 1, &fb) - b->abs_start;
        assert_int_equal(aa, ab);
        assert_int_equal(fa, fb);
        if (i + 1 < n) {
            aa = rewind_seek(a, o->pts[i] + 1, &fa) - a->abs_start;
            ab = rewind_seek(b, o->pts[i] + 1, &fb) - b->abs_start;
            assert_int_equal(aa, ab);
            assert_int_equal(fa, fb);
            assert_int_equal(ab, o->off[i + 1]);
        }
        assert_int_equal(rewind_pts_at(b, b->abs_start + o->off[i]), o->pts[i]);
        assert_int_equal(rewind_pts_at(a, a->abs_start + o->off[i]), o->pts[i]);
    }
    /* Older than the buffer: the oldest frame. */
    assert_int_equal(rewind_seek(b, o->pts[0] - 10000000, &fb), b->abs_start);
    assert_int_equal(fb, o->pts[0]);
    /* Frames walk from the oldest one to the end with the right PTS. */
    uint64_t abs = b->abs_start, pts = o->pts[0], dur;
    const uint8_t *fr;
    uint32_t len;
    for (uint32_t i = 0; i < n; i++) {
        assert_int_equal(abs - b->abs_start, o->off[i]);
        uint64_t next = rewind_frame_at(b, abs, pts, &fr, &len, &dur);
        assert_true(next != 0);
        assert_int_equal(dur, FRAME_US);
        abs = next;
    }
    assert_int_equal(abs, b->abs_end);
}

static struct estream *stream_by(const struct emount *m, const char *enc, uint64_t session)
{
    for (struct estream *s = m->streams; s; s = s->next)
        if (strcmp(s->encoder, enc) == 0 && s->session == session)
            return s;
    return NULL;
}

static void expect_state(const struct emount *om, const struct emount *lm)
{
    assert_string_equal(lm->name, om->name);
    assert_int_equal(lm->codec, om->codec);
    assert_int_equal(lm->rw.codec, om->rw.codec);
    assert_int_equal(lm->out_next_pts_us, om->out_next_pts_us);
    assert_int_equal(lm->src_end_us, om->src_end_us);
    assert_int_equal(lm->n_streams, om->n_streams);
    assert_non_null(lm->active);
    assert_string_equal(lm->active->encoder, om->active->encoder);
    assert_int_equal(lm->active->session, om->active->session);
    assert_int_equal(lm->cur_seq, om->cur_seq);
    for (const struct estream *s = om->streams; s; s = s->next) {
        const struct estream *t = stream_by(lm, s->encoder, s->session);
        assert_non_null(t);
        assert_int_equal(t->priority, s->priority);
        /* The active stream resumes where the output stopped, the others where they were. */
        assert_int_equal(t->ro.next_seq, s == om->active ? om->cur_seq : s->ro.next_seq);
        assert_true(t->ro.started);
        assert_int_equal(t == lm->active, s == om->active);
    }
}

static void expect_audio_fields(const struct emount *lm, uint32_t n)
{
    assert_int_equal(lm->has_audio, n > 0);
    if (n == 0)
        return;
    assert_int_equal(lm->sample_rate, 44100);
    assert_int_equal(lm->channels, 2);
    assert_int_equal(lm->bitrate, 128000);
    assert_int_equal(lm->last_dur_us, FRAME_US);
}

/* ---- fixtures ---- */

static int group_setup(void **state)
{
    (void)state;
    setenv("FC_LOG_LEVEL", "error", 1);
    assert_int_equal(sodium_init() >= 0, 1);
    loop = ev_loop_new(0);
    snprintf(tmpdir, sizeof(tmpdir), "/tmp/fc-test-persist.XXXXXX");
    if (!mkdtemp(tmpdir))
        return -1;
    snprintf(path, sizeof(path), "%s/%s.rewind", tmpdir, MOUNT);
    orig_build(&src, N_FRAMES, KEEP_US);
    if (persist_save_mount(src.m, path) != FC_OK)
        return -1;
    file = read_whole(path, &file_len);
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    char cmd[128];
    orig_free(&src);
    free(file);
    snprintf(cmd, sizeof(cmd), "rm -rf -- '%s'", tmpdir);
    if (system(cmd) != 0)
        return -1;
    ev_loop_destroy(loop);
    return 0;
}

/* ---- tests ---- */

static void test_save_writes_tmp_then_renames(void **state)
{
    (void)state;
    char tmp[160];
    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    assert_int_equal(access(tmp, F_OK), -1); /* renamed away */
    struct layout L;
    parse_layout(file, file_len, &L);
    assert_true(L.n_blocks >= 3); /* several frame blocks, so cuts fall between and inside */
    assert_int_equal(L.frames_before[L.n_blocks], N_FRAMES);
    for (uint32_t i = 0; i < L.n_blocks; i++)
        assert_true(L.block_end[i] - L.block_start[i] - 24 <= PERSIST_BLOCK_BYTES);
}

static void test_round_trip(void **state)
{
    (void)state;
    struct loaded L;
    load(&L, path, KEEP_US);
    assert_int_equal(L.err, FC_OK);
    assert_int_equal(L.frames, N_FRAMES);
    assert_int_equal(L.dropped, 0);
    assert_int_equal(L.m->rw.frames, N_FRAMES);
    expect_prefix(&src, L.m, N_FRAMES, 1);
    expect_state(src.m, L.m);
    expect_audio_fields(L.m, N_FRAMES);
    /* Index points at the same frames: the loaded buffer seeks exactly as the original did. */
    assert_int_equal(L.m->rw.n_index, src.m->rw.n_index);
    for (uint32_t i = 0; i < src.m->rw.n_index; i++) {
        const struct rewind_point *p = point_at(&src.m->rw, i), *q = point_at(&L.m->rw, i);
        assert_int_equal(q->pts_us, p->pts_us);
        assert_int_equal(q->abs, p->abs - src.m->rw.abs_start);
    }
    /* Saving the loaded mount again gives the same frame blocks, byte for byte (the state
     * block may list the streams in another order: edge_stream_new() prepends). */
    char again[160];
    snprintf(again, sizeof(again), "%s/again.rewind", tmpdir);
    assert_int_equal(persist_save_mount(L.m, again), FC_OK);
    size_t n2;
    uint8_t *f2 = read_whole(again, &n2);
    struct layout l1, l2;
    parse_layout(file, file_len, &l1);
    parse_layout(f2, n2, &l2);
    assert_int_equal(l2.state_end, l1.state_end);
    assert_int_equal(n2, file_len);
    assert_memory_equal(f2 + l2.state_end, file + l1.state_end, file_len - l1.state_end);
    free(f2);
    unlink(again);
    unload(&L);
}

/* A buffer that has evicted slabs (abs_start > 0) round-trips from its oldest frame. */
static void test_round_trip_after_eviction(void **state)
{
    (void)state;
    struct orig o;
    const uint64_t keep = 300ull * 1000000; /* 300 s: ~1.1 slabs of 128 kbps */
    orig_build(&o, 30000, keep);            /* ~784 s appended: slabs evicted */
    assert_true(o.m->rw.abs_start > 0);
    assert_true(o.n < 30000);
    char p[160];
    snprintf(p, sizeof(p), "%s/evicted.rewind", tmpdir);
    assert_int_equal(persist_save_mount(o.m, p), FC_OK);
    struct loaded L;
    load(&L, p, keep);
    assert_int_equal(L.err, FC_OK);
    assert_int_equal(L.dropped, 0);
    assert_int_equal(L.frames, o.n);
    expect_prefix(&o, L.m, o.n, 1);
    expect_state(o.m, L.m);
    unload(&L);
    /* A shorter --rewind at load keeps the newest part (whole slabs evicted), never garbage. */
    load(&L, p, 60ull * 1000000);
    assert_int_equal(L.err, FC_OK);
    assert_int_equal(L.frames, o.n);
    assert_true(L.m->rw.frames_held <= o.n);
    assert_true(L.m->rw.end_pts_us == o.m->rw.end_pts_us);
    assert_true(L.m->rw.end_pts_us - rewind_first_pts(&L.m->rw) >= 60ull * 1000000);
    unload(&L);
    unlink(p);
    orig_free(&o);
}

/* What a prefix of the file must load to: err, frames and drops, by the layout. */
static void expect_cut(const struct layout *Ly, size_t cut, const struct loaded *L)
{
    if (cut < Ly->state_end) {
        assert_int_equal(L->err, FC_PROTO);
        return;
    }
    assert_int_equal(L->err, FC_OK);
    uint32_t whole = 0;
    bool at_boundary = cut == Ly->state_end;
    for (uint32_t b = 0; b < Ly->n_blocks; b++) {
        if (Ly->block_end[b] <= cut)
            whole = b + 1;
        if (Ly->block_end[b] == cut)
            at_boundary = true;
    }
    assert_int_equal(L->frames, Ly->frames_before[whole]);
    assert_int_equal(L->dropped, at_boundary ? 0 : 1);
}

static void check_truncated(const struct layout *Ly, size_t cut, uint64_t *prev_frames)
{
    char p[160];
    snprintf(p, sizeof(p), "%s/cut.rewind", tmpdir);
    write_whole(p, file, cut);
    struct loaded L;
    load(&L, p, KEEP_US);
    expect_cut(Ly, cut, &L);
    if (L.err == FC_OK) {
        assert_true(L.frames >= *prev_frames); /* non-decreasing with the cut point */
        assert_true(L.frames <= N_FRAMES);
        *prev_frames = L.frames;
        expect_prefix(&src, L.m, (uint32_t)L.frames, 17);
        expect_state(src.m, L.m);
        expect_audio_fields(L.m, (uint32_t)L.frames);
    }
    unload(&L);
    unlink(p);
}

static void test_truncated_sixteenths(void **state)
{
    (void)state;
    struct layout Ly;
    parse_layout(file, file_len, &Ly);
    uint64_t prev = 0;
    uint32_t inside = 0;
    for (uint32_t i = 0; i <= 16; i++) {
        size_t cut = file_len * i / 16;
        check_truncated(&Ly, cut, &prev);
        for (uint32_t b = 0; b < Ly.n_blocks; b++)
            inside += cut > Ly.block_start[b] && cut < Ly.block_end[b];
    }
    assert_true(inside >= 10); /* most cuts really fall inside a block */
    assert_int_equal(prev, N_FRAMES);
}

/* Every cut in the header, the state block and around each block boundary, and a sweep. */
static void test_truncated_dense(void **state)
{
    (void)state;
    struct layout Ly;
    parse_layout(file, file_len, &Ly);
    uint64_t prev = 0;
    size_t last = 0;
    uint32_t n_cuts = 0;
    for (size_t cut = 0; cut <= file_len; cut++) {
        bool near = cut <= Ly.state_end + 30;
        for (uint32_t b = 0; b < Ly.n_blocks && !near; b++)
            near = (cut + 30 >= Ly.block_start[b] && cut <= Ly.block_start[b] + 30) ||
                   (cut + 30 >= Ly.block_end[b] && cut <= Ly.block_end[b] + 30);
        if (!near && cut - last < 7919 && cut != file_len)
            continue;
        last = cut;
        check_truncated(&Ly, cut, &prev);
        n_cuts++;
    }
    assert_int_equal(prev, N_FRAMES);
    print_message("truncated: %u cut points of a %zu-byte file\n", n_cuts, file_len);
}

static void check_flipped(const struct layout *Ly, size_t pos, uint8_t mask, uint32_t *rejected,
                          uint32_t *prefixes)
{
    char p[160];
    snprintf(p, sizeof(p), "%s/flip.rewind", tmpdir);
    file[pos] ^= mask;
    write_whole(p, file, file_len);
    file[pos] ^= mask;
    struct loaded L;
    load(&L, p, KEEP_US);
    if (pos < Ly->state_end) {
        /* Magic, version or state: the file is rejected (a mount without its state is no use). */
        assert_int_equal(L.err, FC_PROTO);
        assert_true(L.why && *L.why);
        (*rejected)++;
    } else {
        uint32_t b = 0;
        while (Ly->block_end[b] <= pos)
            b++;
        assert_int_equal(L.err, FC_OK);
        assert_int_equal(L.dropped, 1);
        assert_int_equal(L.frames, Ly->frames_before[b]);
        expect_prefix(&src, L.m, (uint32_t)L.frames, 17);
        expect_state(src.m, L.m);
        (*prefixes)++;
    }
    unload(&L);
    unlink(p);
}

static void test_flipped_byte(void **state)
{
    (void)state;
    struct layout Ly;
    parse_layout(file, file_len, &Ly);
    uint32_t rejected = 0, prefixes = 0;
    /* Every byte of the header and the state block, and of every block header. */
    for (size_t pos = 0; pos < Ly.state_end; pos++)
        check_flipped(&Ly, pos, 0x01, &rejected, &prefixes);
    for (uint32_t b = 0; b < Ly.n_blocks; b++)
        for (size_t pos = Ly.block_start[b]; pos < Ly.block_start[b] + 24 + 40; pos++)
            check_flipped(&Ly, pos, 0x80, &rejected, &prefixes);
    /* Payload bytes spread over the file, and the very last byte. */
    for (size_t pos = Ly.state_end; pos < file_len; pos += 9973)
        check_flipped(&Ly, pos, 0xFF, &rejected, &prefixes);
    check_flipped(&Ly, file_len - 1, 0x10, &rejected, &prefixes);
    assert_true(rejected > 0 && prefixes > 0);
    print_message("flipped bytes: %u positions rejected (header/state), %u loaded a prefix\n",
                  rejected, prefixes);
}

static void test_not_a_rewind_file(void **state)
{
    (void)state;
    char p[160];
    struct loaded L;
    snprintf(p, sizeof(p), "%s/bad.rewind", tmpdir);

    write_whole(p, (const uint8_t *)"", 0);                 /* empty */
    load(&L, p, KEEP_US);
    assert_int_equal(L.err, FC_PROTO);
    unload(&L);

    uint8_t mp3[4180];                                       /* raw MP3 frames */
    for (uint32_t k = 0; k < 10; k++)
        make_frame(k, mp3 + k * 418);
    write_whole(p, mp3, sizeof(mp3));
    load(&L, p, KEEP_US);
    assert_int_equal(L.err, FC_PROTO);
    unload(&L);

    const char *text = "{\"mount\":\"live.mp3\"}\n";           /* text */
    write_whole(p, (const uint8_t *)text, strlen(text));
    load(&L, p, KEEP_US);
    assert_int_equal(L.err, FC_PROTO);
    unload(&L);

    uint8_t v2[64];                                          /* a future version */
    memcpy(v2, file, sizeof(v2));
    v2[7] = 2;
    write_whole(p, v2, sizeof(v2));
    load(&L, p, KEEP_US);
    assert_int_equal(L.err, FC_PROTO);
    unload(&L);

    write_whole(p, file, 8);                                 /* magic only */
    load(&L, p, KEEP_US);
    assert_int_equal(L.err, FC_PROTO);
    unload(&L);

    snprintf(p, sizeof(p), "%s/missing.rewind", tmpdir);      /* absent */
    load(&L, p, KEEP_US);
    assert_int_equal(L.err, FC_IO);
    unload(&L);
    unlink(p);
}

/* A state block whose JSON is valid for the checksum but wrong inside: rejected or skipped. */
static void put_state_file(const char *p, const char *json)
{
    FILE *fp = fopen(p, "wb");
    assert_non_null(fp);
    uint8_t magic[8] = {'F', 'C', 'R', 'W', 0, 0, 0, 1};
    assert_int_equal(fwrite(magic, 1, 8, fp), 8);
    assert_true(write_block(fp, BLOCK_STATE, (const uint8_t *)json, (uint32_t)strlen(json)));
    assert_int_equal(fclose(fp), 0);
}

static void test_bad_state(void **state)
{
    (void)state;
    char p[160];
    struct loaded L;
    snprintf(p, sizeof(p), "%s/state.rewind", tmpdir);
    static const char *const bad[] = {
        "not json",
        "{\"mount\":\"a/b\",\"codec\":1,\"streams\":[]}",   /* not a mount name */
        "{\"mount\":\"live.mp3\",\"codec\":99,\"streams\":[]}",
        "{\"codec\":1}",
        "[]",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        put_state_file(p, bad[i]);
        load(&L, p, KEEP_US);
        assert_int_equal(L.err, FC_PROTO);
        unload(&L);
    }
    /* Streams with bad fields are skipped; the mount loads with the good ones. */
    char ok[512];
    snprintf(ok, sizeof(ok),
             "{\"mount\":\"%s\",\"codec\":%d,\"out_next_pts_us\":5,\"src_end_us\":6,\"streams\":["
             "{\"encoder\":\"a b\",\"session\":\"1\",\"priority\":0,\"next_seq\":1,\"active\":true},"
             "{\"encoder\":\"x\",\"session\":\"2\",\"priority\":-1,\"next_seq\":1,\"active\":false},"
             "{\"encoder\":\"y\",\"session\":\"3\",\"priority\":1,\"next_seq\":-5,\"active\":false},"
             "{\"session\":\"4\"}, 17,"
             "{\"encoder\":\"good\",\"session\":\"00000000000000ff\",\"priority\":2,"
             "\"next_seq\":42,\"active\":true}]}",
             MOUNT, FC_CODEC_MP3);
    put_state_file(p, ok);
    load(&L, p, KEEP_US);
    assert_int_equal(L.err, FC_OK);
    assert_int_equal(L.frames, 0);
    assert_int_equal(L.m->n_streams, 1);
    assert_non_null(L.m->active);
    assert_string_equal(L.m->active->encoder, "good");
    assert_int_equal(L.m->active->session, 0xff);
    assert_int_equal(L.m->cur_seq, 42);
    assert_false(L.m->has_audio);
    unload(&L);
    /* The same mount twice in one edge: the second file is refused. */
    put_state_file(p, ok);
    struct loaded L2;
    load(&L2, p, KEEP_US);
    uint64_t f, d;
    const char *why;
    assert_int_equal(persist_load_mount(&L2.e, p, &f, &d, &why), FC_PROTO);
    assert_string_equal(why, "mount already loaded");
    unload(&L2);
    unlink(p);
}

/* A frames block whose checksum is right but whose records are wrong: dropped, prefix kept. */
static void test_bad_records(void **state)
{
    (void)state;
    char p[160];
    snprintf(p, sizeof(p), "%s/records.rewind", tmpdir);
    struct layout Ly;
    parse_layout(file, file_len, &Ly);
    /* Header, state and the first block as saved, then a crafted second block. */
    static const struct {
        uint32_t flen_delta; /* added to the real length in the record */
        uint8_t hdr1;        /* replaces the frame's 2nd byte */
        uint32_t cut;        /* bytes removed from the end of the payload */
    } cases[] = {
        {1, 0xFB, 0},    /* length says 1 more than the header */
        {0, 0x00, 0},    /* not an MP3 header */
        {0, 0xFB, 5},    /* the last record cut short */
        {0, 0xFB, 400},  /* the last record's frame cut short */
    };
    for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
        FILE *fp = fopen(p, "wb");
        assert_non_null(fp);
        assert_int_equal(fwrite(file, 1, Ly.block_end[0], fp), Ly.block_end[0]);
        uint8_t blk[3 * (16 + 418)];
        uint32_t used = 0;
        uint32_t k0 = Ly.frames_before[1];
        for (uint32_t k = k0; k < k0 + 3; k++) {
            uint32_t len = frame_len(k);
            put64(blk + used, pts_of(k));
            put32(blk + used + 8, FRAME_US);
            put32(blk + used + 12, len + (k == k0 + 1 ? cases[c].flen_delta : 0));
            make_frame(k, blk + used + 16);
            if (k == k0 + 1)
                blk[used + 17] = cases[c].hdr1;
            used += 16 + len;
        }
        used -= cases[c].cut;
        assert_true(write_block(fp, BLOCK_FRAMES, blk, used));
        assert_int_equal(fclose(fp), 0);
        struct loaded L;
        load(&L, p, KEEP_US);
        assert_int_equal(L.err, FC_OK);
        assert_int_equal(L.dropped, 1);
        /* Frames before the bad record of the crafted block may be kept; never the bad one. */
        assert_true(L.frames >= Ly.frames_before[1] && L.frames <= Ly.frames_before[1] + 2);
        expect_prefix(&src, L.m, (uint32_t)L.frames, 17);
        unload(&L);
    }
    unlink(p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_save_writes_tmp_then_renames),
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_round_trip_after_eviction),
        cmocka_unit_test(test_truncated_sixteenths),
        cmocka_unit_test(test_truncated_dense),
        cmocka_unit_test(test_flipped_byte),
        cmocka_unit_test(test_not_a_rewind_file),
        cmocka_unit_test(test_bad_state),
        cmocka_unit_test(test_bad_records),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
