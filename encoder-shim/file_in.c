/* file_in.c - --file PATH: play a file in real time, looped, as if it were a live source. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "clock.h"
#include "shim.h"

#define FILE_TICK_S 0.01 /* release due frames every 10 ms */

static enum fc_err read_file(struct shim *s)
{
    FILE *fp = fopen(s->opt.file, "rb");
    if (!fp) {
        log_error(&s->log, "file=%s: %s", s->opt.file, strerror(errno));
        return FC_IO;
    }
    fseek(fp, 0, SEEK_END);
    long size = ftell(fp);
    fseek(fp, 0, SEEK_SET);
    if (size <= 0 || (unsigned long)size > SHIM_FILE_MAX) {
        log_error(&s->log, "file=%s: size %ld outside 1..%u bytes", s->opt.file, size,
                  SHIM_FILE_MAX);
        fclose(fp);
        return FC_LIMIT;
    }
    s->file_data = malloc((size_t)size);
    s->file_len = s->file_data ? fread(s->file_data, 1, (size_t)size, fp) : 0;
    fclose(fp);
    return s->file_len == (size_t)size ? FC_OK : FC_IO;
}

/* Frame the whole file once; playback then walks the index. */
static enum fc_err index_file(struct shim *s)
{
    size_t cap = 1024, pos = 0;
    s->file_frames = malloc(cap * sizeof(*s->file_frames));
    if (!s->file_frames)
        return FC_NOMEM;
    framer_init(s->framer, s->codec);
    size_t fed_total = 0;
    for (;;) {
        size_t took = framer_feed(s->framer, s->file_data + pos, s->file_len - pos);
        pos += took;
        if (pos == s->file_len)
            framer_finish(s->framer);
        const uint8_t *frame;
        struct frame_info info;
        bool any = false;
        while (framer_next(s->framer, &frame, &info) == FC_OK) {
            any = true;
            if (s->file_n == cap) {
                struct file_frame *n = realloc(s->file_frames, 2 * cap * sizeof(*n));
                if (!n)
                    return FC_NOMEM;
                s->file_frames = n;
                cap *= 2;
            }
            /* The frame bytes are the file's own: find them by content from our offset. */
            uint8_t *at = memmem(s->file_data + fed_total, s->file_len - fed_total, frame, info.len);
            if (!at)
                return FC_PROTO;
            s->file_frames[s->file_n].off = (uint32_t)(at - s->file_data);
            s->file_frames[s->file_n].info = info;
            s->file_n++;
            fed_total = (size_t)(at - s->file_data) + info.len;
        }
        if (pos == s->file_len && !any)
            break;
    }
    return s->file_n > 0 ? FC_OK : FC_PROTO;
}

static void on_file_tick(EV_P_ ev_timer *w, int revents)
{
    struct shim *s = container_of(w, struct shim, file_timer);
    uint64_t now = clock_wall_us();
    for (int n = 0; n < SHIM_BATCH_FRAMES; n++) {
        const struct file_frame *ff = &s->file_frames[s->file_next];
        uint64_t due = s->file_start_us + clock_samples_to_us(s->file_samples, ff->info.sample_rate);
        if (due > now)
            break;
        shim_batch_add(s, s->file_data + ff->off, &ff->info);
        s->file_samples += ff->info.samples;
        if (++s->file_next == s->file_n)
            s->file_next = 0; /* loop */
    }
    shim_flush_batch(s, now);
}

enum fc_err shim_file_start(struct shim *s)
{
    const char *dot = strrchr(s->opt.file, '.');
    s->codec = s->opt.codec;
    if (s->codec == FC_CODEC_NONE)
        s->codec = dot && (strcmp(dot, ".aac") == 0 || strcmp(dot, ".adts") == 0) ? FC_CODEC_ADTS
                                                                                : FC_CODEC_MP3;
    enum fc_err err = read_file(s);
    if (err == FC_OK)
        err = index_file(s);
    if (err != FC_OK) {
        if (err != FC_IO)
            log_error(&s->log, "file=%s: no %s frames found", s->opt.file,
                      s->codec == FC_CODEC_ADTS ? "ADTS" : "MP3");
        return err;
    }
    log_info(&s->log, "file=%s frames=%zu codec=%s rate=%u", s->opt.file, s->file_n,
             s->codec == FC_CODEC_ADTS ? "adts" : "mp3", s->file_frames[0].info.sample_rate);
    level_free(&s->meter);
    if (level_init(&s->meter, s->codec) != FC_OK)
        return FC_NOMEM;
    s->file_start_us = clock_wall_us();
    ev_timer_init(&s->file_timer, on_file_tick, 0, FILE_TICK_S);
    ev_timer_start(s->loop, &s->file_timer);
    return FC_OK;
}

void shim_file_free(struct shim *s)
{
    if (s->file_data)
        ev_timer_stop(s->loop, &s->file_timer);
    free(s->file_data);
    free(s->file_frames);
    s->file_data = NULL;
    s->file_frames = NULL;
}
