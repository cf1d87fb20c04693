/*
 * fuzz_handoff.c - libFuzzer target for what a new edge takes from the old one in a handoff
 * restart (docs/architecture.md §8.4): a run of records fed to core_carry_take() (edge/core/
 * carry_core.c, with rewind_adopt*, titles_adopt), then core_carry_check(). The old process is
 * trusted to mean well, not to be right (an older or buggy binary): nothing it sends may crash
 * the new one, map past a memfd's end (SIGBUS), or leave a buffer the HTTP side cannot walk.
 *
 * Input, a recipe: byte 0, flags: bit 0 after an accepted run, the taker appends frames (as the
 * merge's output would) and the buffer is checked again. Then ops: op (1 byte), length (2 bytes,
 * little-endian), payload (cut at the input's end); op bits 0-3:
 *   0-5  the record EH_CORE + op (EH_CORE, EH_MOUNT, EH_STREAM, EH_SLABS, EH_INDEX, EH_TITLE);
 *        EH_MOUNT comes with a copy of the current memfd (made empty if none yet), the others
 *        with none; op bit 7 flips that (EH_MOUNT without a descriptor, the others with one);
 *   6    a record of any type: u16 type, then its payload (descriptor as above: none, bit 7 one);
 *   7    a new current memfd: u8 size in slabs (mod 16), u8 pages (4 KiB) less than that;
 *   8    bytes into the current memfd: u8 file slab (mod 16), then the bytes, written at that
 *        slab's offset but never past the memfd's size (a short memfd stays short);
 *   else nothing.
 * Records go to core_carry_take until one is refused; then core_carry_check.
 *
 * Checks besides the sanitizers: a refused record has FC_PROTO or FC_NOMEM and a reason; after
 * core_carry_check's FC_OK every mount's buffer is whole (slabs contiguous from abs_start, their
 * `used` summing to abs_end - abs_start, file slabs increasing and inside the memfd: the first
 * and last byte of each mapping are read), the index lies inside and in order, rewind_iov covers
 * exactly the bytes held, rewind_seek / rewind_pts_at / the frame walk stay inside the buffer,
 * titles and streams are sound (the active one resumes at cur_seq); the same after appending;
 * edge_mounts_free leaves no memory (LeakSanitizer) and no descriptor behind.
 *
 * Seeds (tests/fuzz/corpus/fuzz_handoff/export_*) are real exports: tests/unit/test_carry.c
 * with FC_CARRY_CORPUS=DIR writes them. As in fuzz_persist.c, mount.c, rewind.c, titles.c and
 * reorder.c are compiled in (large buffers from a pool) and the rest of the edge is stubbed.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sanitizer/asan_interface.h>
#include <stdbool.h>

#include "fuzz_check.h"

/* Each stream's 2 MiB reorder ring: reuse freed blocks (kept poisoned). */
#define POOL_N 64
#include "fuzz_pool.h"

#define malloc pool_malloc
#define calloc pool_calloc
#define free pool_free
#include "../../edge/core/reorder.c"
#include "../../edge/core/mount.c"
#include "../../edge/core/rewind.c"
#include "../../edge/core/titles.c"
#include "../../edge/core/carry_core.c"
#undef malloc
#undef calloc
#undef free

/* ---- stubs for the rest of the edge; none is reached but lane_init/lane_free ---- */
#define STUB __attribute__((weak))
STUB enum fc_err lane_init(struct lane *l)
{
    memset(l, 0, sizeof(*l));
    return FC_OK;
}
STUB void lane_free(struct lane *l)
{
    (void)l;
}
#include "../unit/edge_merge_stubs.h"

/* ---- the harness ---- */

#define MEMFD_SLABS_MAX 16
#define APPEND_FRAMES 40
#define WALK_MAX 200000 /* frames walked per buffer at most (a 16-slab buffer holds ~160 k) */

static struct ev_loop *loop;
static struct core C;
static int memfd = -1;       /* the current memfd (the harness's copy) */
static int fd_mark = -1;     /* the lowest free descriptor when the input began */
static uint8_t frame[418];   /* a valid MP3 frame: MPEG-1 Layer III, 128 kbit/s, 44.1 kHz */

static void init_once(void)
{
    if (loop)
        return;
    loop = ev_loop_new(0);
    CHECK(loop);
    frame[0] = 0xFF, frame[1] = 0xFB, frame[2] = 0x90, frame[3] = 0x44;
    for (size_t i = 4; i < 417; i++)
        frame[i] = (uint8_t)(i * 13 + 5);
}

/* The lowest free descriptor now (libFuzzer may hold some of its own between inputs). */
static int lowest_free_fd(void)
{
    int fd = dup(0);
    CHECK(fd >= 0);
    close(fd);
    return fd;
}

static void core_setup(void)
{
    memset(&C, 0, sizeof(C));
    C.loop = loop;
    log_init(&C.log, "fuzz-handoff", false);
    C.log.min = LOG_ERROR + 1; /* quiet */
    C.opt.rewind_us = 4ull * 3600 * 1000000;
    C.opt.reorder_us = 300000;
    C.test_now = 1000.0;
}

static void new_memfd(const uint8_t *p, size_t n)
{
    if (memfd >= 0)
        close(memfd);
    memfd = memfd_create("fuzz-handoff", MFD_CLOEXEC);
    CHECK(memfd >= 0);
    uint64_t slabs = n > 0 ? p[0] % MEMFD_SLABS_MAX : 0, less = n > 1 ? p[1] * 4096ull : 0;
    uint64_t size = slabs * REWIND_SLAB_BYTES;
    size = size > less ? size - less : 0;
    CHECK(ftruncate(memfd, (off_t)size) == 0);
}

static void fill_memfd(const uint8_t *p, size_t n)
{
    struct stat st;
    if (memfd < 0 || n < 1)
        return;
    CHECK(fstat(memfd, &st) == 0);
    uint64_t at = (uint64_t)(p[0] % MEMFD_SLABS_MAX) * REWIND_SLAB_BYTES;
    n--;
    if (at >= (uint64_t)st.st_size)
        return;
    if (n > (uint64_t)st.st_size - at)
        n = (size_t)((uint64_t)st.st_size - at);
    CHECK(pwrite(memfd, p + 1, n, (off_t)at) == (ssize_t)n);
}

static volatile uint8_t sink;

/* Read a byte of a mapping: a page past the memfd's end faults here (SIGBUS). */
static void touch(const uint8_t *p)
{
    sink ^= *(const volatile uint8_t *)p;
}

static void check_buffer(const struct emount *m, bool appended)
{
    const struct rewind *rw = &m->rw;
    CHECK(rw->abs_end >= rw->abs_start); /* no position wrapped around */
    /* The writer's file slab numbers: the next one's offset fits an off_t (new_slab() sizes the
     * memfd to (k + 1) slabs), and the range waiting to be punched lies before every slab held
     * (a punch there would zero audio still served). */
    CHECK(rw->next_file_slab < (uint64_t)INT64_MAX / REWIND_SLAB_BYTES);
    CHECK(rw->punch_from <= rw->punch_to);
    CHECK(rw->punch_to <= (rw->n_slabs ? rewind_slab_get(rw, 0)->file_slab : rw->next_file_slab));
    struct stat st;
    CHECK(fstat(rw->fd, &st) == 0);
    uint64_t sum = 0, frames = 0, at = rw->abs_start;
    const struct rewind_slab *prev = NULL, *sl;
    for (uint32_t i = 0; (sl = rewind_slab_get(rw, i)); i++) {
        CHECK(sl->abs_start == at);
        CHECK(sl->used <= REWIND_SLAB_BYTES);
        CHECK(sl->file_slab < rw->next_file_slab);
        CHECK(!prev || sl->file_slab > prev->file_slab);
        CHECK((sl->file_slab + 1) * REWIND_SLAB_BYTES <= (uint64_t)st.st_size);
        touch(sl->data);
        touch(sl->data + REWIND_SLAB_BYTES - 1);
        at += sl->used;
        sum += sl->used;
        frames += sl->frames;
        prev = sl;
    }
    CHECK(sum == rw->abs_end - rw->abs_start && at == rw->abs_end);
    /* (after appending, a slab's u32 count carried near its maximum may wrap: statistics only) */
    CHECK(appended || frames == rw->frames_held);
    const struct rewind_point *pp = NULL, *pt;
    for (uint32_t i = 0; (pt = rewind_point_get(rw, i)); i++) {
        CHECK(pt->abs >= rw->abs_start && pt->abs < rw->abs_end);
        CHECK(!pp || pt->abs >= pp->abs);
        pp = pt;
    }
    CHECK(!m->has_audio || rw->n_index > 0);

    /* rewind_iov covers exactly what is held, from inside the slabs */
    uint64_t got = 0, abs = rw->abs_start;
    while (abs < rw->abs_end) {
        struct iovec iov[8];
        int k = rewind_iov(rw, abs, iov, 8, 1u << 30);
        CHECK(k > 0);
        for (int i = 0; i < k; i++) {
            const struct rewind_slab *s = NULL;
            for (uint32_t j = 0; (sl = rewind_slab_get(rw, j)) && !s; j++)
                if ((uint8_t *)iov[i].iov_base >= sl->data &&
                    (uint8_t *)iov[i].iov_base + iov[i].iov_len <= sl->data + sl->used)
                    s = sl;
            CHECK(s && iov[i].iov_len > 0);
            touch(iov[i].iov_base);
            touch((uint8_t *)iov[i].iov_base + iov[i].iov_len - 1);
            got += iov[i].iov_len;
            abs += iov[i].iov_len;
        }
    }
    CHECK(got == rw->abs_end - rw->abs_start);

    /* seeks and PTS lookups land inside the buffer */
    uint64_t probes[12] = {0, rewind_first_pts(rw), rw->end_pts_us, UINT64_MAX,
                           rw->end_pts_us - 1, rewind_first_pts(rw) + 1};
    int np = 6;
    for (uint32_t i = 0; np < 12 && (pt = rewind_point_get(rw, i * 3)); i++)
        probes[np++] = pt->pts_us + 30000;
    for (int i = 0; i < np; i++) {
        uint64_t found;
        uint64_t a = rewind_seek(rw, probes[i], &found);
        CHECK(a >= rw->abs_start);
        (void)rewind_pts_at(rw, a < rw->abs_end ? a : rw->abs_start);
    }
    (void)rewind_pts_at(rw, rw->abs_end);
    (void)rewind_pts_at(rw, rw->abs_start + (rw->abs_end - rw->abs_start) / 2);

    /* the frame walk from the oldest byte, and from every index point */
    for (uint32_t i = 0; i <= rw->n_index && i < 64; i++) {
        at = i == 0 ? rw->abs_start : rewind_point_get(rw, i - 1)->abs;
        for (uint32_t n = 0; n < WALK_MAX && at < rw->abs_end; n++) {
            const uint8_t *f;
            uint32_t len;
            uint64_t dur;
            uint64_t next = rewind_frame_at(rw, at, 0, &f, &len, &dur);
            if (!next)
                break;
            CHECK(next == at + len && next <= rw->abs_end);
            touch(f);
            touch(f + len - 1);
            at = next;
        }
    }
}

static void check_core(bool appended)
{
    uint32_t n = 0;
    for (const struct emount *m = C.mounts; m; m = m->next, n++) {
        CHECK(wire_valid_name(m->name, strlen(m->name), WIRE_MOUNT_MAX));
        CHECK(m->id > 0 && m->id <= C.mount_ids);
        CHECK(edge_mount_find(&C, m->name, strlen(m->name)) == m);
        for (const struct emount *o = m->next; o; o = o->next)
            CHECK(o->id != m->id);
        CHECK(m->codec == FC_CODEC_MP3 || m->codec == FC_CODEC_ADTS);
        CHECK(m->n_fed <= EDGE_MAX_STREAMS_PER_MOUNT);
        uint32_t ns = 0;
        bool active_in = !m->active, ref_in = !m->ref;
        for (const struct estream *s = m->streams; s; s = s->next, ns++) {
            CHECK(s->mount == m);
            CHECK(wire_valid_name(s->encoder, strlen(s->encoder), WIRE_ENCODER_MAX));
            active_in |= s == m->active;
            ref_in |= s == m->ref;
        }
        CHECK(ns == m->n_streams && ns <= EDGE_MAX_STREAMS_PER_MOUNT && active_in && ref_in);
        CHECK(!m->active || (m->active->ro.started && m->active->ro.next_seq == m->cur_seq));
        CHECK(m->titles.n <= EDGE_TITLES_MAX);
        for (uint32_t i = 0; i < m->titles.n; i++) {
            const struct title_change *tc =
                &m->titles.ring[(m->titles.head + i) % EDGE_TITLES_MAX];
            CHECK(tc->block && tc->block->len >= 1 && tc->block->len <= 1 + ICY_META_MAX);
            CHECK(tc->id <= m->titles.ids);
        }
        const struct title_change *tc = titles_at(&m->titles, m->rw.abs_end);
        CHECK(!tc == !m->titles.n);
        check_buffer(m, appended);
    }
    CHECK(n == C.n_mounts && n <= EDGE_MAX_MOUNTS);
}

/* The taker goes on writing, as the merge's output does after the handoff. */
static void append_more(void)
{
    for (struct emount *m = C.mounts; m; m = m->next) {
        for (int k = 0; k < APPEND_FRAMES; k++) {
            uint32_t len = k % 3 ? 417 : 418;
            frame[2] = len == 418 ? 0x92 : 0x90;
            enum fc_err err = rewind_append(&m->rw, frame, len, m->rw.end_pts_us, 26122);
            if (err != FC_OK) {
                CHECK(err == FC_NOMEM); /* a file slab number the memfd cannot reach */
                break;
            }
            m->has_audio = true;
        }
    }
    check_core(true);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    init_once();
    if (size < 1)
        return 0;
    uint8_t flags = data[0];
    data++, size--;
    fd_mark = lowest_free_fd();
    core_setup();
    enum fc_err err = FC_OK;
    const char *why = NULL;
    while (size >= 3 && err == FC_OK) {
        uint8_t op = data[0];
        size_t len = (size_t)data[1] | (size_t)data[2] << 8;
        data += 3, size -= 3;
        if (len > size)
            len = size;
        const uint8_t *p = data;
        data += len, size -= len;
        int kind = op & 0x0f;
        bool flip = op & 0x80;
        if (kind == 7) {
            new_memfd(p, len);
            continue;
        }
        if (kind == 8) {
            fill_memfd(p, len);
            continue;
        }
        if (kind > 8)
            continue;
        uint16_t type;
        if (kind == 6) {
            if (len < 2)
                continue;
            type = (uint16_t)(p[0] | p[1] << 8);
            p += 2, len -= 2;
        } else {
            type = (uint16_t)(EH_CORE + kind);
        }
        int fds[1], nfds = 0;
        if ((type == EH_MOUNT) != flip) {
            if (memfd < 0)
                new_memfd(NULL, 0);
            fds[nfds++] = dup(memfd);
            CHECK(fds[0] >= 0);
        }
        /* A copy of the payload on the heap, exactly its size: a read past it is caught. */
        uint8_t *rec = malloc(len ? len : 1);
        CHECK(rec);
        memcpy(rec, p, len);
        why = NULL;
        err = core_carry_take(&C, type, rec, len, fds, nfds, &why);
        free(rec);
    }
    if (err == FC_OK) {
        why = NULL;
        err = core_carry_check(&C, &why);
        if (err == FC_OK) {
            check_core(false);
            if (flags & 1)
                append_more();
        }
    }
    if (err != FC_OK)
        CHECK((err == FC_PROTO || err == FC_NOMEM) && why && why[0]);
    edge_mounts_free(&C);
    CHECK(!C.mounts && C.n_mounts == 0);
    if (memfd >= 0)
        close(memfd);
    memfd = -1;
    /* every descriptor the records brought was kept by a mount (now freed) or closed */
    int probe = dup(0);
    if (probe != fd_mark) {
        char l[64], t[256];
        snprintf(l, sizeof(l), "/proc/self/fd/%d", fd_mark);
        ssize_t k = readlink(l, t, sizeof(t) - 1);
        fprintf(stderr, "fd %d is open: %.*s\n", fd_mark, (int)(k > 0 ? k : 0), t);
    }
    CHECK(probe == fd_mark);
    close(probe);
    return 0;
}
