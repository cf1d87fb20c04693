/*
 * bench_rewind - memory and seek cost of a mount's rewind buffer (edge/core/rewind.c, issue 4 item 7,
 * docs/architecture.md §6.3: memory within 2% of the audio bytes held).
 *
 * Fills one buffer with 8 hours of synthetic 64 kbps MP3 (MPEG-1 Layer III, 44.1 kHz, joint
 * stereo: header FF FB 50 44, 208 bytes, or FF FB 52 44 with the padding bit, 209 bytes, padded
 * as an encoder does so the average is exactly 64000 bit/s) as fast as it can, PTS spaced as the
 * edge stamps them (26122 µs a frame), keep_us = 8 h. RSS growth is VmRSS after minus before:
 * the slabs are shared mappings of a memfd, whose resident pages Linux (>= 4.5) counts in VmRSS
 * as RssShmem. Then 1,000 cursors seek to random times (rewind_seek, each timed with
 * CLOCK_MONOTONIC) and read from there (rewind_iov); every landing is checked.
 *
 * Output, first line exactly:
 *   rewind: hours=8 bitrate=64000 audio_bytes=N rss_bytes=N ratio=R seek_us_p99=N
 * then `seek: ...` (p50/p99/max) and `fill: ...` lines. Exit 1 if a seek landed wrong, or if
 * ratio > 1.02 (runs shorter than 8 h: RSS growth > 1.02 x audio + 8 MiB).
 * Usage: bench_rewind [HOURS] (default 8; less for quick runs). Build without sanitizers.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../../edge/core/rewind.c"

#define BITRATE 64000u
#define SAMPLE_RATE 44100u
#define FRAME_SAMPLES 1152u                 /* MPEG-1 Layer III */
#define FRAME_US 26122u                     /* clock_samples_to_us(1152, 44100) */
#define SLOT_NUM (144u * BITRATE)           /* frame length = 144 * bitrate / rate (+ padding) */
#define BASE_PTS 1795330800000000ull        /* 2026-11-22T07:00:00Z, µs */
#define CURSORS 1000
#define READ_BYTES (64u * 1024)             /* what each cursor reads after its seek */
#define RATIO_MAX 1.02                      /* docs/architecture.md §6.3 */
#define FIXED_ALLOW_BYTES (8u << 20)        /* issue 4: "plus a fixed few MiB" (open slab, index) */

static uint64_t rss_bytes(void)
{
    FILE *fp = fopen("/proc/self/status", "r");
    char line[256];
    uint64_t kb = 0;
    if (!fp)
        return 0;
    while (fgets(line, sizeof(line), fp))
        if (sscanf(line, "VmRSS: %lu kB", &kb) == 1)
            break;
    fclose(fp);
    return kb * 1024;
}

static double now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

static uint64_t rng_state = 0x9E3779B97F4A7C15ull;
static uint64_t rng(void) /* xorshift64*: reproducible */
{
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 0x2545F4914F6CDD1Dull;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
    static struct rewind rw;
    static double seek_us[CURSORS];
    static uint8_t frame[256];
    double hours = argc > 1 ? atof(argv[1]) : 8;
    if (hours <= 0 || hours > 48) {
        fprintf(stderr, "usage: bench_rewind [HOURS]\n");
        return 2;
    }
    uint64_t keep_us = (uint64_t)(hours * 3600e6);
    uint64_t n_frames = (uint64_t)(hours * 3600 * SAMPLE_RATE / FRAME_SAMPLES);

    uint64_t rss0 = rss_bytes();
    if (rewind_init(&rw, FC_CODEC_MP3, keep_us) != FC_OK) {
        fprintf(stderr, "bench_rewind: rewind_init failed\n");
        return 1;
    }
    memset(frame, 0, sizeof(frame));
    frame[0] = 0xFF, frame[1] = 0xFB, frame[3] = 0x44;
    uint64_t audio = 0, rest = 0;
    double t0 = now_us();
    for (uint64_t k = 0; k < n_frames; k++) {
        rest += SLOT_NUM % SAMPLE_RATE;
        bool pad = rest >= SAMPLE_RATE;
        if (pad)
            rest -= SAMPLE_RATE;
        uint32_t len = SLOT_NUM / SAMPLE_RATE + pad;
        frame[2] = pad ? 0x52 : 0x50;
        memcpy(frame + 4, &k, sizeof(k)); /* the frame's number: cursors check where they land */
        if (rewind_append(&rw, frame, len, BASE_PTS + k * FRAME_US, FRAME_US) != FC_OK) {
            fprintf(stderr, "bench_rewind: append failed at frame %llu\n", (unsigned long long)k);
            return 1;
        }
        audio += len;
    }
    double fill_s = (now_us() - t0) / 1e6;
    uint64_t rss1 = rss_bytes();
    uint64_t grown = rss1 > rss0 ? rss1 - rss0 : 0;
    if (audio != rewind_bytes_held(&rw) || rw.frames_held != n_frames) {
        fprintf(stderr, "bench_rewind: held %llu bytes / %llu frames, appended %llu / %llu\n",
                (unsigned long long)rewind_bytes_held(&rw), (unsigned long long)rw.frames_held,
                (unsigned long long)audio, (unsigned long long)n_frames);
        return 1;
    }

    /* 1,000 cursors: seek to a random time, then read from there as a listener would. */
    int wrong = 0;
    uint64_t span_us = n_frames * FRAME_US, read_total = 0;
    for (int c = 0; c < CURSORS; c++) {
        uint64_t target = BASE_PTS + rng() % span_us, found;
        double a = now_us();
        uint64_t abs = rewind_seek(&rw, target, &found);
        seek_us[c] = now_us() - a;
        struct iovec iov[4];
        int n = rewind_iov(&rw, abs, iov, 4, READ_BYTES);
        uint64_t k = (target - BASE_PTS + FRAME_US - 1) / FRAME_US; /* first frame >= target */
        uint64_t got_k;
        if (n < 1 || iov[0].iov_len < 12) {
            wrong++;
            continue;
        }
        const uint8_t *p = iov[0].iov_base;
        memcpy(&got_k, p + 4, sizeof(got_k));
        if (p[0] != 0xFF || p[1] != 0xFB || got_k != k || found != BASE_PTS + k * FRAME_US)
            wrong++;
        for (int i = 0; i < n; i++)
            read_total += iov[i].iov_len;
    }
    qsort(seek_us, CURSORS, sizeof(seek_us[0]), cmp_double);
    double p50 = seek_us[CURSORS / 2], p99 = seek_us[CURSORS * 99 / 100];
    double ratio = audio ? (double)grown / (double)audio : 0;

    printf("rewind: hours=%g bitrate=%u audio_bytes=%llu rss_bytes=%llu ratio=%.4f "
           "seek_us_p99=%.2f\n",
           hours, BITRATE, (unsigned long long)audio, (unsigned long long)grown, ratio, p99);
    printf("seek: cursors=%d p50_us=%.2f p99_us=%.2f max_us=%.2f wrong=%d read_bytes=%llu "
           "index_points=%u slabs=%u\n",
           CURSORS, p50, p99, seek_us[CURSORS - 1], wrong, (unsigned long long)read_total,
           rw.n_index, rw.n_slabs);
    printf("fill: frames=%llu seconds=%.3f frames_per_s=%.0f mb_per_s=%.0f mem_bytes=%llu "
           "rss_before=%llu rss_after=%llu\n",
           (unsigned long long)n_frames, fill_s, n_frames / fill_s, audio / fill_s / 1e6,
           (unsigned long long)rewind_mem_bytes(&rw), (unsigned long long)rss0,
           (unsigned long long)rss1);
    rewind_free(&rw);
    if (wrong) {
        fprintf(stderr, "bench_rewind: %d cursors landed on the wrong frame\n", wrong);
        return 1;
    }
    /* The 8 h run must meet the ratio outright; shorter runs get the fixed allowance, which
     * weighs more the less audio there is. */
    if (hours >= 8 ? ratio > RATIO_MAX : grown > RATIO_MAX * audio + FIXED_ALLOW_BYTES) {
        fprintf(stderr, "bench_rewind: ratio %.4f > %.2f\n", ratio, RATIO_MAX);
        return 1;
    }
    return 0;
}
