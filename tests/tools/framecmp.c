/*
 * framecmp - check that a received stream is a contiguous run of a reference stream's frames.
 *
 *   framecmp --codec mp3|adts [--min-frames N] REF GOT
 *
 * Both files are split with the framer without framer_finish(), so a frame cut short at the end
 * of either (a listener disconnected mid-frame) is ignored, and so is the last whole frame (it has
 * no successor to vouch for it) - alike in both. Garbage and a partial first frame in GOT (a
 * listener joining mid-stream) are skipped by resynchronisation. GOT matches when some frame K of
 * REF starts a run REF[K..K+N) byte-equal to GOT's N frames.
 *
 * Output, one line on stdout:
 *   framecmp: frames=N ref_frames=M matched_at=K                                  (exit 0)
 *   framecmp: MISMATCH frames=N ref_frames=M best_run=R at_got_frame=I (reason)   (exit 1)
 * Exit 1 also when N < --min-frames (default 1); exit 2 on a bad command line or unreadable file.
 *
 * Frames are compared by FNV-1a 64 hash, the best alignment is found in O(N + M) with the
 * Z-algorithm over the hash sequences, and every reported match is confirmed with memcmp().
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "framer.h"

#define FNV64_OFFSET 0xcbf29ce484222325ULL /* FNV-1a parameters, draft-eastlake-fnv §2 */
#define FNV64_PRIME 0x100000001b3ULL

/* One frame of a loaded file. */
struct frame_ref {
    size_t off;    /* byte offset in the file */
    uint32_t len;  /* bytes */
    uint64_t hash; /* FNV-1a 64 of the bytes */
};

/* A file held in memory and its frames. */
struct framed {
    const char *path;    /* for messages */
    uint8_t *data;       /* whole file */
    size_t size;         /* bytes in data */
    struct frame_ref *v; /* frames in file order */
    size_t n;            /* frames in v */
};

static struct framer framer; /* 32 KiB: keep it off the stack */

static void usage(void)
{
    fprintf(stderr, "usage: framecmp --codec mp3|adts [--min-frames N] REF GOT\n");
}

static uint64_t fnv1a64(const uint8_t *p, size_t len)
{
    uint64_t h = FNV64_OFFSET;
    for (size_t i = 0; i < len; i++)
        h = (h ^ p[i]) * FNV64_PRIME;
    return h;
}

/* Read the whole of `path` into memory. */
static int load(struct framed *fr, const char *path)
{
    size_t cap = 1 << 20;
    FILE *fp;

    errno = 0;
    fp = fopen(path, "rb");
    fr->path = path;
    fr->size = 0;
    fr->data = malloc(cap);
    if (!fp || !fr->data)
        goto fail;
    for (;;) {
        if (fr->size == cap) {
            uint8_t *bigger = realloc(fr->data, cap * 2);
            if (!bigger)
                goto fail;
            fr->data = bigger;
            cap *= 2;
        }
        size_t n = fread(fr->data + fr->size, 1, cap - fr->size, fp);
        fr->size += n;
        if (n == 0)
            break;
    }
    if (ferror(fp))
        goto fail;
    fclose(fp);
    return 0;
fail:
    fprintf(stderr, "framecmp: %s: %s\n", path, errno ? strerror(errno) : "read error");
    if (fp)
        fclose(fp);
    return -1;
}

/* Split a loaded file into frames (no framer_finish(): see the top of the file). */
static int split(struct framed *fr, enum fc_codec codec)
{
    const uint8_t *frame;
    struct frame_info info;
    size_t cap = 1024, fed = 0;

    fr->n = 0;
    fr->v = malloc(cap * sizeof *fr->v);
    if (!fr->v)
        return -1;
    framer_init(&framer, codec);
    while (fed < fr->size) {
        fed += framer_feed(&framer, fr->data + fed, fr->size - fed);
        while (framer_next(&framer, &frame, &info) == FC_OK) {
            if (fr->n == cap) {
                struct frame_ref *bigger = realloc(fr->v, cap * 2 * sizeof *fr->v);
                if (!bigger)
                    return -1;
                fr->v = bigger;
                cap *= 2;
            }
            /* The framer's buffer holds the last (len - index) bytes fed. */
            size_t off = fed - (framer.len - (size_t)(frame - framer.buf));
            fr->v[fr->n++] = (struct frame_ref){off, info.len, fnv1a64(frame, info.len)};
        }
    }
    return 0;
}

static bool same_frame(const struct framed *a, size_t i, const struct framed *b, size_t j)
{
    const struct frame_ref *x = &a->v[i], *y = &b->v[j];
    return x->hash == y->hash && x->len == y->len &&
           memcmp(a->data + x->off, b->data + y->off, x->len) == 0;
}

/*
 * z[N + 1 + k] = how many of GOT's frames, from the first, equal REF's from frame k, by hash.
 * The sequence is GOT, a separator equal to nothing, REF.
 */
static size_t *match_lengths(const struct framed *ref, const struct framed *got)
{
    size_t n = got->n, total = got->n + 1 + ref->n;
    size_t *z = calloc(total, sizeof *z);
    if (!z)
        return NULL;
#define SEQ(i) ((i) < n ? got->v[(i)].hash : ref->v[(i)-n - 1].hash)
#define EQ(i, j) ((i) != n && (j) != n && SEQ(i) == SEQ(j))
    for (size_t i = 1, l = 0, r = 0; i < total; i++) {
        if (i < r)
            z[i] = r - i < z[i - l] ? r - i : z[i - l];
        while (i + z[i] < total && EQ(z[i], i + z[i]))
            z[i]++;
        if (i + z[i] > r)
            l = i, r = i + z[i];
    }
#undef EQ
#undef SEQ
    return z;
}

int main(int argc, char **argv)
{
    enum fc_codec codec = FC_CODEC_NONE;
    unsigned long min_frames = 1;
    const char *paths[2];
    int npaths = 0;

    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--codec") == 0 && i + 1 < argc) {
            i++;
            codec = strcmp(argv[i], "mp3") == 0    ? FC_CODEC_MP3
                    : strcmp(argv[i], "adts") == 0 ? FC_CODEC_ADTS
                                                   : FC_CODEC_NONE;
            if (codec == FC_CODEC_NONE)
                goto usage;
        } else if (strcmp(argv[i], "--min-frames") == 0 && i + 1 < argc) {
            char *end;
            min_frames = strtoul(argv[++i], &end, 10);
            if (*argv[i] == '\0' || *end != '\0')
                goto usage;
        } else if (argv[i][0] == '-' || npaths == 2) {
            goto usage;
        } else {
            paths[npaths++] = argv[i];
        }
    }
    if (codec == FC_CODEC_NONE || npaths != 2)
        goto usage;

    struct framed ref = {0}, got = {0};
    if (load(&ref, paths[0]) < 0 || load(&got, paths[1]) < 0)
        return 2;
    if (split(&ref, codec) < 0 || split(&got, codec) < 0) {
        fprintf(stderr, "framecmp: out of memory\n");
        return 2;
    }
    size_t *z = match_lengths(&ref, &got);
    if (!z) {
        fprintf(stderr, "framecmp: out of memory\n");
        return 2;
    }

    /* The first alignment whose every frame really is byte-equal wins; else report the longest. */
    size_t n = got.n, m = ref.n, best_run = 0, best_at = 0;
    bool matched = false;
    for (size_t k = 0; k < m && n > 0; k++) {
        size_t run = z[n + 1 + k];
        if (run <= best_run && run < n)
            continue;
        size_t ok = 0;
        while (ok < run && same_frame(&got, ok, &ref, k + ok))
            ok++; /* a hash collision shortens the run */
        if (ok > best_run || (ok == n && !matched)) {
            best_run = ok;
            best_at = k;
        }
        if (ok == n) {
            matched = true;
            break;
        }
    }
    free(z);

    char reason[160];
    if (matched && n >= min_frames) {
        printf("framecmp: frames=%zu ref_frames=%zu matched_at=%zu\n", n, m, best_at);
        return 0;
    }
    if (matched)
        snprintf(reason, sizeof reason, "only %zu frames, need %lu", n, min_frames);
    else if (n == 0)
        snprintf(reason, sizeof reason, "no frames in %s", got.path);
    else if (best_run == 0)
        snprintf(reason, sizeof reason, "GOT frame 0 (offset %zu) is not in REF", got.v[0].off);
    else if (best_at + best_run == m)
        snprintf(reason, sizeof reason, "REF ends after frame %zu", m - 1);
    else
        snprintf(reason, sizeof reason, "GOT frame %zu (offset %zu) differs from REF frame %zu",
                 best_run, got.v[best_run].off, best_at + best_run);
    printf("framecmp: MISMATCH frames=%zu ref_frames=%zu best_run=%zu at_got_frame=%zu (%s)\n", n,
           m, best_run, best_run, reason);
    return 1;

usage:
    usage();
    return 2;
}
