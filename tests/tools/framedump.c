/*
 * framedump - list the frames the framer finds in a file, for eyeballing and for integration
 * tests.
 *
 *   framedump --codec mp3|adts FILE      (FILE "-" reads stdin)
 *
 * One line per frame, `index offset len sample_rate channels samples` (offset in bytes from the
 * start of FILE), then one summary line
 * `framedump: frames=N garbage_bytes=G tags_skipped=T info_frames_dropped=D`.
 * Exit codes: 0 done, 1 read error, 2 bad command line.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "framer.h"

#define READ_CHUNK 65536

static void usage(void)
{
    fprintf(stderr, "usage: framedump --codec mp3|adts FILE\n");
}

/* File offset of `frame`: the buffer holds the last (len - index) bytes fed so far. */
static uint64_t frame_offset(const struct framer *f, const uint8_t *frame, uint64_t fed)
{
    return fed - (f->len - (size_t)(frame - f->buf));
}

static void drain(struct framer *f, uint64_t fed)
{
    const uint8_t *frame;
    struct frame_info info;

    while (framer_next(f, &frame, &info) == FC_OK)
        printf("%llu %llu %u %u %u %u\n", (unsigned long long)(f->frames - 1),
               (unsigned long long)frame_offset(f, frame, fed), info.len, info.sample_rate,
               info.channels, info.samples);
}

int main(int argc, char **argv)
{
    static struct framer f; /* 32 KiB: keep it off the stack */
    static uint8_t chunk[READ_CHUNK];
    enum fc_codec codec = FC_CODEC_NONE;
    const char *path = NULL;
    uint64_t fed = 0;
    size_t n;

    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--codec") == 0 && i + 1 < argc) {
            i++;
            if (strcmp(argv[i], "mp3") == 0)
                codec = FC_CODEC_MP3;
            else if (strcmp(argv[i], "adts") == 0)
                codec = FC_CODEC_ADTS;
        } else if (argv[i][0] == '-' && argv[i][1] != '\0') {
            usage();
            return 2;
        } else if (!path) {
            path = argv[i];
        } else {
            usage();
            return 2;
        }
    }
    if (codec == FC_CODEC_NONE || !path) {
        usage();
        return 2;
    }

    FILE *fp = strcmp(path, "-") == 0 ? stdin : fopen(path, "rb");
    if (!fp) {
        fprintf(stderr, "framedump: %s: %s\n", path, strerror(errno));
        return 1;
    }
    framer_init(&f, codec);
    while ((n = fread(chunk, 1, sizeof chunk, fp)) > 0) {
        for (size_t off = 0; off < n;) {
            size_t took = framer_feed(&f, chunk + off, n - off);
            off += took;
            fed += took;
            drain(&f, fed);
        }
    }
    bool failed = ferror(fp);
    if (fp != stdin)
        fclose(fp);
    if (failed) {
        fprintf(stderr, "framedump: %s: read error\n", path);
        return 1;
    }
    framer_finish(&f);
    drain(&f, fed);
    printf("framedump: frames=%llu garbage_bytes=%llu tags_skipped=%llu info_frames_dropped=%llu\n",
           (unsigned long long)f.frames, (unsigned long long)f.garbage_bytes,
           (unsigned long long)f.tags_skipped, (unsigned long long)f.info_frames_dropped);
    return 0;
}
