/*
 * fuzz_persist.c - libFuzzer target for the rewind file loader (edge/persist.c, format in
 * persist.h): persist_load_mount() on arbitrary files.
 *
 * Block checksums would stop a mutator at the first block, so most inputs are a recipe the
 * harness turns into a file with correct checksums (and, on request, wrong ones):
 *   byte 0, flags: bit 0 the rest is the file as is (raw); bit 1 a bad magic, bit 2 a bad version;
 *     bit 3 load the file a second time (the mount exists: refused, nothing changed);
 *     bit 4 save what was loaded, load that, save again: the two saves must agree.
 *   then chunks: kind (1 byte), length (2 bytes, little-endian), payload; kind bits 0-1: 0 a state
 *     block, 1 a frames block, 2 a block of type kind >> 4, 3 the payload written bare; bit 2 a
 *     wrong checksum; bit 3 a header length of (payload length + (kind >> 4) + 1) (truncated).
 * As in tests/unit/test_persist.c, mount.c, rewind.c and reorder.c are compiled in and the rest
 * of the edge is stubbed (lane.c too: a load only creates and frees empty lanes).
 *
 * Checks, besides the sanitizers: FC_OK exactly when one mount was made (FC_PROTO otherwise,
 * never a half-made mount); a reference reader of the format (written here from persist.h)
 * agrees on whether the state block is sound, on the frames loaded (every whole, valid record of
 * the checksummed frame blocks up to the first bad one) and on whether the rest was dropped;
 * loaded fields stay within their bounds; a save of a loaded mount loads back and saves the same
 * frame blocks and the same state.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <sanitizer/asan_interface.h>
#include <stdbool.h>

#include "fuzz_check.h"

#include "fuzz_pool.h"

#define malloc pool_malloc
#define calloc pool_calloc
#define realloc pool_realloc
#define free pool_free
#include "../../edge/core/reorder.c"
#include "../../edge/core/mount.c"
#include "../../edge/core/persist.c"
#include "../../edge/core/rewind.c"
#include "../../edge/core/titles.c"
#undef malloc
#undef calloc
#undef realloc
#undef free


/* ---- stubs for the rest of the edge (as in test_persist.c); none is reached ---- */
#define STUB __attribute__((weak))

/* A loaded stream's merge lane (lane.c) stays empty until frames arrive: a load only sets it up
 * and frees it. Stubbed, so each input does not allocate (and ASan poison) 4 MiB per stream. */
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

#define FILE_MAX (4u << 20)

static struct ev_loop *loop;
static struct core E1, E2;
static int memfd = -1;
static char in_path[64];
static char dir[64], save1[96], save2[96];
static uint8_t *file; /* the file built from the input */
static size_t file_len;

static void edge_setup(struct core *e)
{
    memset(e, 0, sizeof(*e));
    e->loop = loop;
    log_init(&e->log, "fuzz-persist", false);
    e->log.min = LOG_ERROR;
    e->opt.rewind_us = 4ull * 3600 * 1000000; /* --rewind default */
    e->opt.reorder_us = 300000;
}

static void cleanup(void)
{
    unlink(save1);
    unlink(save2);
    rmdir(dir);
}

static void init_once(void)
{
    if (memfd >= 0)
        return;
    CHECK(sodium_init() >= 0);
    loop = ev_loop_new(0);
    CHECK(loop);
    memfd = memfd_create("fuzz-persist", MFD_CLOEXEC);
    CHECK(memfd >= 0);
    snprintf(in_path, sizeof(in_path), "/proc/self/fd/%d", memfd);
    snprintf(dir, sizeof(dir), "/dev/shm/fuzz-persist.XXXXXX");
    if (!mkdtemp(dir)) {
        snprintf(dir, sizeof(dir), "/tmp/fuzz-persist.XXXXXX");
        CHECK(mkdtemp(dir));
    }
    snprintf(save1, sizeof(save1), "%s/a.rewind", dir);
    snprintf(save2, sizeof(save2), "%s/b.rewind", dir);
    atexit(cleanup);
    file = malloc(FILE_MAX);
    CHECK(file);
}

static void put(const void *p, size_t n)
{
    if (n > FILE_MAX - file_len)
        n = FILE_MAX - file_len;
    memcpy(file + file_len, p, n);
    file_len += n;
}

static void put_block(uint32_t type, uint32_t head_len, const uint8_t *payload, uint32_t len,
                      bool bad_hash)
{
    uint8_t head[BLOCK_HEAD];
    put32(head, type);
    put32(head + 4, head_len);
    block_hash(type, len, payload, head + 8);
    if (bad_hash)
        head[8 + len % 16] ^= 0x20;
    put(head, sizeof(head));
    put(payload, len);
}

/* The file from a recipe (see the top). */
static void build(const uint8_t *data, size_t size, uint8_t flags)
{
    uint8_t magic[8] = {'F', 'C', 'R', 'W'};
    put32(magic + 4, PERSIST_VERSION);
    if (flags & 2)
        magic[1 + size % 3] ^= 0x01;
    if (flags & 4)
        put32(magic + 4, PERSIST_VERSION + 1 + (uint32_t)(size & 0xff));
    file_len = 0;
    put(magic, sizeof(magic));
    while (size >= 3) {
        uint8_t kind = data[0];
        uint32_t len = (uint32_t)data[1] | (uint32_t)data[2] << 8;
        data += 3;
        size -= 3;
        if (len > size)
            len = (uint32_t)size;
        uint32_t type = (kind & 3) == 0 ? BLOCK_STATE : (kind & 3) == 1 ? BLOCK_FRAMES : kind >> 4;
        uint32_t head_len = (kind & 8) ? len + (kind >> 4) + 1 : len;
        if ((kind & 3) == 3)
            put(data, len);
        else
            put_block(type, head_len, data, len, kind & 4);
        data += len;
        size -= len;
    }
}

/* ---- a reference reader, from the format in persist.h ---- */

struct expect {
    bool state_ok;    /* magic, version and a checksummed state block of sound size come first */
    uint32_t state_off, state_len;
    uint64_t frames;  /* records loaded for a mount of `codec` */
    bool dropped;     /* something after the state block was cut */
};

/* A checksummed block at `off`: its payload offset and length, or false. */
static bool ref_block(size_t off, uint32_t *type, uint32_t *len, size_t *payload)
{
    uint8_t hash[16];
    if (file_len - off < BLOCK_HEAD)
        return false;
    *type = get32(file + off);
    *len = get32(file + off + 4);
    if (*type != BLOCK_STATE && *type != BLOCK_FRAMES)
        return false;
    if (*len > (*type == BLOCK_STATE ? PERSIST_STATE_MAX : PERSIST_BLOCK_BYTES) ||
        *len > file_len - off - BLOCK_HEAD)
        return false;
    block_hash(*type, *len, file + off + BLOCK_HEAD, hash);
    if (memcmp(hash, file + off + 8, 16) != 0)
        return false;
    *payload = off + BLOCK_HEAD;
    return true;
}

static void reference(enum fc_codec codec, struct expect *x)
{
    memset(x, 0, sizeof(*x));
    uint32_t type, len;
    size_t off;
    if (file_len < 8 || memcmp(file, "FCRW", 4) != 0 || get32(file + 4) != PERSIST_VERSION ||
        !ref_block(8, &type, &len, &off) || type != BLOCK_STATE)
        return;
    x->state_ok = true;
    x->state_off = (uint32_t)off;
    x->state_len = len;
    size_t at = off + len;
    while (at < file_len) {
        if (!ref_block(at, &type, &len, &off) || type != BLOCK_FRAMES) {
            x->dropped = true;
            return;
        }
        const uint8_t *p = file + off;
        uint32_t r = 0;
        while (len - r >= 16) {
            uint32_t flen = get32(p + r + 12);
            struct frame_info info;
            if (flen > len - r - 16 || frame_header_parse(codec, p + r + 16, flen, &info) != FC_OK ||
                info.len != flen)
                break;
            x->frames++;
            r += 16 + flen;
        }
        if (r != len) {
            x->dropped = true;
            return;
        }
        at = off + len;
    }
}

/* ---- checks on what was loaded ---- */

static void check_mount(const struct core *e, const struct emount *m)
{
    CHECK(e->n_mounts == 1 && e->mounts == m && !m->next);
    CHECK(wire_valid_name(m->name, strlen(m->name), WIRE_MOUNT_MAX));
    CHECK(m->codec == FC_CODEC_MP3 || m->codec == FC_CODEC_ADTS);
    CHECK(m->n_streams <= EDGE_MAX_STREAMS_PER_MOUNT);
    uint32_t n = 0;
    bool active_found = !m->active;
    for (const struct estream *s = m->streams; s; s = s->next, n++) {
        CHECK(s->mount == m);
        CHECK(wire_valid_name(s->encoder, strlen(s->encoder), WIRE_ENCODER_MAX));
        active_found |= s == m->active;
    }
    CHECK(n == m->n_streams && active_found);
    CHECK(m->has_audio == (m->rw.frames_held > 0));
    CHECK(rewind_bytes_held(&m->rw) <= file_len);
}

static json_t *state_of(const uint8_t *f, size_t n)
{
    CHECK(n >= 8 + BLOCK_HEAD);
    uint32_t len = get32(f + 12);
    CHECK(len <= n - 8 - BLOCK_HEAD);
    json_error_t jerr;
    json_t *root = json_loadb((const char *)f + 8 + BLOCK_HEAD, len, 0, &jerr);
    CHECK(root);
    return root;
}

/* Same state, streams in any order (each load lists them in reverse). */
static void check_same_state(json_t *a, json_t *b)
{
    json_t *sa = json_object_get(a, "streams"), *sb = json_object_get(b, "streams");
    CHECK(json_is_array(sa) && json_is_array(sb) && json_array_size(sa) == json_array_size(sb));
    for (size_t i = 0; i < json_array_size(sa); i++) {
        bool found = false;
        for (size_t j = 0; j < json_array_size(sb) && !found; j++)
            found = json_equal(json_array_get(sa, i), json_array_get(sb, j));
        CHECK(found);
    }
    json_object_del(a, "streams");
    json_object_del(b, "streams");
    CHECK(json_equal(a, b));
}

static uint8_t *read_all(const char *p, size_t *n)
{
    FILE *fp = fopen(p, "rb");
    CHECK(fp);
    CHECK(fseek(fp, 0, SEEK_END) == 0);
    long len = ftell(fp);
    CHECK(len >= 0);
    CHECK(fseek(fp, 0, SEEK_SET) == 0);
    uint8_t *buf = malloc((size_t)len + 1);
    CHECK(buf && fread(buf, 1, (size_t)len, fp) == (size_t)len);
    fclose(fp);
    *n = (size_t)len;
    return buf;
}

/* Save m, load the save, save that: both saves hold the same frames and state. */
static void round_trip(struct emount *m)
{
    uint64_t frames, dropped;
    const char *why;
    CHECK(persist_save_mount(m, save1) == FC_OK);
    edge_setup(&E2);
    CHECK(persist_load_mount(&E2, save1, &frames, &dropped, &why) == FC_OK);
    CHECK(dropped == 0 && frames == m->rw.frames_held);
    struct emount *m2 = edge_mount_find(&E2, m->name, strlen(m->name));
    CHECK(m2);
    check_mount(&E2, m2);
    CHECK(m2->n_streams == m->n_streams && m2->cur_seq == (m->active ? m->cur_seq : 0));
    CHECK(m2->out_next_pts_us == m->out_next_pts_us && m2->src_end_us == m->src_end_us);
    CHECK(rewind_bytes_held(&m2->rw) == rewind_bytes_held(&m->rw));
    CHECK(persist_save_mount(m2, save2) == FC_OK);
    size_t n1, n2;
    uint8_t *f1 = read_all(save1, &n1), *f2 = read_all(save2, &n2);
    size_t s1 = 8 + BLOCK_HEAD + get32(f1 + 12), s2 = 8 + BLOCK_HEAD + get32(f2 + 12);
    CHECK(n1 - s1 == n2 - s2 && memcmp(f1 + s1, f2 + s2, n1 - s1) == 0);
    json_t *j1 = state_of(f1, n1), *j2 = state_of(f2, n2);
    check_same_state(j1, j2);
    json_decref(j1);
    json_decref(j2);
    free(f1);
    free(f2);
    edge_mounts_free(&E2);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    init_once();
    if (size < 1)
        return 0;
    uint8_t flags = data[0];
    if (flags & 1) {
        file_len = 0;
        put(data + 1, size - 1);
    } else {
        build(data + 1, size - 1, flags);
    }
    CHECK(ftruncate(memfd, 0) == 0);
    CHECK(pwrite(memfd, file, file_len, 0) == (ssize_t)file_len);

    edge_setup(&E1);
    uint64_t frames = 99, dropped = 99;
    const char *why = NULL;
    enum fc_err err = persist_load_mount(&E1, in_path, &frames, &dropped, &why);
    CHECK(why != NULL);

    struct expect x;
    if (err != FC_OK) {
        CHECK(err == FC_PROTO && why[0]);
        CHECK(E1.n_mounts == 0 && !E1.mounts && frames == 0 && dropped == 0);
        reference(FC_CODEC_MP3, &x);
        if (x.state_ok)
            CHECK(strcmp(why, "bad state block") == 0);
        return 0;
    }
    struct emount *m = E1.mounts;
    CHECK(m);
    check_mount(&E1, m);
    reference(m->codec, &x);
    CHECK(x.state_ok);
    CHECK(frames == x.frames && m->rw.frames_held == frames);
    CHECK(dropped == (x.dropped ? 1u : 0u) && (why[0] != '\0') == x.dropped);

    if (flags & 8) { /* the same file again: the mount exists, nothing changes */
        uint64_t f2, d2;
        const char *w2;
        CHECK(persist_load_mount(&E1, in_path, &f2, &d2, &w2) == FC_PROTO);
        CHECK(strcmp(w2, "mount already loaded") == 0 && E1.n_mounts == 1 &&
              m->rw.frames_held == frames);
    }
    if (flags & 16)
        round_trip(m);
    edge_mounts_free(&E1);
    return 0;
}
