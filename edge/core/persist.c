/* persist.c - see persist.h. */
#include "persist.h"

#include <limits.h>

#include <dirent.h>
#include <errno.h>
#include <jansson.h>
#include <signal.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include "framer.h"

enum { BLOCK_STATE = 1, BLOCK_FRAMES = 2 };
#define BLOCK_HEAD 24 /* type, length, hash */

static void put32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24), p[1] = (uint8_t)(v >> 16), p[2] = (uint8_t)(v >> 8), p[3] = (uint8_t)v;
}

static uint32_t get32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static void put64(uint8_t *p, uint64_t v)
{
    put32(p, (uint32_t)(v >> 32));
    put32(p + 4, (uint32_t)v);
}

static uint64_t get64(const uint8_t *p)
{
    return (uint64_t)get32(p) << 32 | get32(p + 4);
}

static void block_hash(uint32_t type, uint32_t len, const uint8_t *payload, uint8_t out[16])
{
    uint8_t head[8];
    crypto_generichash_state st;
    put32(head, type);
    put32(head + 4, len);
    crypto_generichash_init(&st, NULL, 0, 16);
    crypto_generichash_update(&st, head, sizeof(head));
    crypto_generichash_update(&st, payload, len);
    crypto_generichash_final(&st, out, 16);
}

static bool write_block(FILE *fp, uint32_t type, const uint8_t *payload, uint32_t len)
{
    uint8_t head[BLOCK_HEAD];
    put32(head, type);
    put32(head + 4, len);
    block_hash(type, len, payload, head + 8);
    return fwrite(head, 1, sizeof(head), fp) == sizeof(head) &&
           fwrite(payload, 1, len, fp) == len;
}

static char *state_json(struct emount *m)
{
    json_t *streams = json_array();
    for (struct estream *s = m->streams; s; s = s->next) {
        char sid[17];
        snprintf(sid, sizeof(sid), "%016llx", (unsigned long long)s->session);
        uint64_t next = m->active == s ? m->cur_seq : s->ro.next_seq;
        json_array_append_new(streams, json_pack("{s:s, s:s, s:I, s:I, s:b}", "encoder",
                                                 s->encoder, "session", sid, "priority",
                                                 (json_int_t)s->priority, "next_seq",
                                                 (json_int_t)next, "active", m->active == s));
    }
    json_t *root = json_pack("{s:s, s:i, s:I, s:I, s:o}", "mount", m->name, "codec", m->codec,
                             "out_next_pts_us", (json_int_t)m->out_next_pts_us, "src_end_us",
                             (json_int_t)m->src_end_us, "streams", streams);
    char *text = root ? json_dumps(root, JSON_COMPACT) : NULL;
    json_decref(root);
    return text;
}

/* Frame records from the oldest frame held; PTS follow the index points (which carry any jumps). */
static bool write_frames(FILE *fp, const struct rewind *rw)
{
    uint8_t *blk = malloc(PERSIST_BLOCK_BYTES + 16 + REWIND_SLAB_BYTES);
    if (!blk)
        return false;
    uint32_t used = 0, idx = 0;
    uint64_t abs = rw->abs_start, pts = rewind_first_pts(rw);
    bool ok = true;
    while (ok && abs < rw->abs_end) {
        while (idx < rw->n_index) {
            const struct rewind_point *p = &rw->index[(rw->index_head + idx) % rw->index_cap];
            if (p->abs > abs)
                break;
            if (p->abs == abs)
                pts = p->pts_us;
            idx++;
        }
        const uint8_t *frame;
        uint32_t len;
        uint64_t dur, next = rewind_frame_at(rw, abs, pts, &frame, &len, &dur);
        if (!next)
            break;
        if (used + 16 + len > PERSIST_BLOCK_BYTES) {
            ok = write_block(fp, BLOCK_FRAMES, blk, used);
            used = 0;
        }
        put64(blk + used, pts);
        put32(blk + used + 8, (uint32_t)dur);
        put32(blk + used + 12, len);
        memcpy(blk + used + 16, frame, len);
        used += 16 + len;
        abs = next;
        pts += dur;
    }
    if (ok && used)
        ok = write_block(fp, BLOCK_FRAMES, blk, used);
    free(blk);
    return ok;
}

enum fc_err persist_save_mount(struct emount *m, const char *path)
{
    char tmp[PATH_MAX];
    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    FILE *fp = fopen(tmp, "wb");
    if (!fp)
        return FC_IO;
    uint8_t magic[8] = {'F', 'C', 'R', 'W'};
    put32(magic + 4, PERSIST_VERSION);
    char *state = state_json(m);
    bool ok = state && fwrite(magic, 1, 8, fp) == 8 &&
              write_block(fp, BLOCK_STATE, (const uint8_t *)state, (uint32_t)strlen(state)) &&
              write_frames(fp, &m->rw);
    free(state);
    ok = fflush(fp) == 0 && fsync(fileno(fp)) == 0 && ok;
    ok = fclose(fp) == 0 && ok;
    if (!ok || rename(tmp, path) != 0) {
        int err = errno;
        unlink(tmp);
        errno = err;
        return FC_IO;
    }
    return FC_OK;
}

/* ---- loading ---- */

struct reader {
    FILE *fp;
    uint8_t *buf; /* one block payload */
};

/* FC_OK with the payload in r->buf, FC_EOF at a clean end, FC_PROTO when damaged/truncated. */
static enum fc_err read_block(struct reader *r, uint32_t *type, uint32_t *len, const char **why)
{
    uint8_t head[BLOCK_HEAD], hash[16];
    size_t n = fread(head, 1, sizeof(head), r->fp);
    if (n == 0)
        return FC_EOF;
    if (n < sizeof(head))
        return *why = "truncated block header", FC_PROTO;
    *type = get32(head);
    *len = get32(head + 4);
    uint32_t max = *type == BLOCK_STATE ? PERSIST_STATE_MAX : PERSIST_BLOCK_BYTES;
    if ((*type != BLOCK_STATE && *type != BLOCK_FRAMES) || *len > max)
        return *why = "bad block type or length", FC_PROTO;
    if (fread(r->buf, 1, *len, r->fp) != *len)
        return *why = "truncated block", FC_PROTO;
    block_hash(*type, *len, r->buf, hash);
    if (sodium_memcmp(hash, head + 8, 16) != 0)
        return *why = "block checksum mismatch", FC_PROTO;
    return FC_OK;
}

static void restore_streams(struct core *e, struct emount *m, json_t *streams)
{
    size_t i;
    json_t *js;
    json_array_foreach(streams, i, js)
    {
        const char *enc = json_string_value(json_object_get(js, "encoder"));
        const char *sid = json_string_value(json_object_get(js, "session"));
        json_int_t prio = json_integer_value(json_object_get(js, "priority"));
        json_int_t next = json_integer_value(json_object_get(js, "next_seq"));
        if (!enc || !sid || !wire_valid_name(enc, strlen(enc), WIRE_ENCODER_MAX) || prio < 0 ||
            next < 0 || m->n_streams >= EDGE_MAX_STREAMS_PER_MOUNT)
            continue;
        struct estream *s = edge_stream_new(e, m, enc, strtoull(sid, NULL, 16), (uint32_t)prio);
        if (!s)
            continue;
        reorder_resume(&s->ro, (uint64_t)next);
        if (json_is_true(json_object_get(js, "active"))) {
            m->active = s;
            m->cur_seq = (uint64_t)next;
        }
    }
}

static struct emount *restore_state(struct core *e, const uint8_t *text, uint32_t len,
                                    const char **why)
{
    json_error_t jerr;
    json_t *root = json_loadb((const char *)text, len, 0, &jerr);
    const char *name = root ? json_string_value(json_object_get(root, "mount")) : NULL;
    json_int_t codec = json_integer_value(json_object_get(root, "codec"));
    struct emount *m = NULL;
    if (!name || !wire_valid_name(name, strlen(name), WIRE_MOUNT_MAX) ||
        (codec != FC_CODEC_MP3 && codec != FC_CODEC_ADTS))
        *why = "bad state block";
    else if (edge_mount_find(e, name, strlen(name)))
        *why = "mount already loaded";
    else if ((m = edge_mount_new(e, name, (enum fc_codec)codec))) {
        m->out_next_pts_us = (uint64_t)json_integer_value(json_object_get(root, "out_next_pts_us"));
        m->src_end_us = (uint64_t)json_integer_value(json_object_get(root, "src_end_us"));
        restore_streams(e, m, json_object_get(root, "streams"));
    }
    json_decref(root);
    return m;
}

/* Append the frame records of one block; false if a record is malformed. */
static bool restore_frames(struct emount *m, const uint8_t *p, uint32_t len, uint64_t *frames)
{
    uint32_t off = 0;
    while (off + 16 <= len) {
        uint64_t pts = get64(p + off), dur = get32(p + off + 8);
        uint32_t flen = get32(p + off + 12);
        struct frame_info info;
        if (flen > len - off - 16 ||
            frame_header_parse(m->rw.codec, p + off + 16, flen, &info) != FC_OK ||
            info.len != flen)
            return false;
        if (rewind_append(&m->rw, p + off + 16, flen, pts, dur) != FC_OK)
            return false;
        m->has_audio = true;
        m->sample_rate = info.sample_rate;
        m->channels = info.channels;
        m->bitrate = info.bitrate;
        m->last_dur_us = dur;
        (*frames)++;
        off += 16 + flen;
    }
    return off == len;
}

enum fc_err persist_load_mount(struct core *e, const char *path, uint64_t *frames_loaded,
                               uint64_t *blocks_dropped, const char **why)
{
    struct reader r = {fopen(path, "rb"), malloc(PERSIST_BLOCK_BYTES)};
    uint8_t magic[8];
    struct emount *m = NULL;
    enum fc_err err = FC_IO;
    *frames_loaded = *blocks_dropped = 0;
    *why = "";
    if (!r.fp || !r.buf) {
        *why = strerror(errno);
        goto out;
    }
    err = FC_PROTO;
    if (fread(magic, 1, 8, r.fp) != 8 || memcmp(magic, "FCRW", 4) != 0 ||
        get32(magic + 4) != PERSIST_VERSION) {
        *why = "not a framecast rewind file (v1)";
        goto out;
    }
    uint32_t type, len;
    if (read_block(&r, &type, &len, why) != FC_OK || type != BLOCK_STATE) {
        if (!**why)
            *why = "no state block";
        goto out;
    }
    if (!(m = restore_state(e, r.buf, len, why)))
        goto out;
    err = FC_OK;
    enum fc_err rb;
    while ((rb = read_block(&r, &type, &len, why)) == FC_OK)
        if (type != BLOCK_FRAMES || !restore_frames(m, r.buf, len, frames_loaded)) {
            *why = "malformed frame record";
            rb = FC_PROTO;
            break;
        }
    if (rb == FC_PROTO) {
        (*blocks_dropped)++;
        /* Count what follows the damage, for the log. */
        while (fread(r.buf, 1, PERSIST_BLOCK_BYTES, r.fp) > 0)
            ;
    }
out:
    if (r.fp)
        fclose(r.fp);
    free(r.buf);
    return err;
}

static void mount_path(const struct core *e, const char *mount, char *out, size_t n)
{
    snprintf(out, n, "%s/%s.rewind", e->opt.rewind_dir, mount);
}

void persist_load_all(struct core *e)
{
    DIR *d = opendir(e->opt.rewind_dir);
    if (!d) {
        log_warn(&e->log, "rewind_dir=%s: %s (starting empty)", e->opt.rewind_dir,
                 strerror(errno));
        return;
    }
    struct dirent *de;
    while ((de = readdir(d))) {
        size_t n = strlen(de->d_name);
        if (n < 8 || strcmp(de->d_name + n - 7, ".rewind") != 0)
            continue;
        char path[PATH_MAX];
        snprintf(path, sizeof(path), "%s/%s", e->opt.rewind_dir, de->d_name);
        uint64_t frames, dropped;
        const char *why;
        enum fc_err err = persist_load_mount(e, path, &frames, &dropped, &why);
        if (err != FC_OK)
            log_warn(&e->log, "rewind file=%s not loaded: %s", path, why);
        else if (dropped)
            log_warn(&e->log, "rewind file=%s loaded frames=%llu; rest dropped: %s", path,
                     (unsigned long long)frames, why);
        else
            log_info(&e->log, "rewind file=%s loaded frames=%llu", path,
                     (unsigned long long)frames);
    }
    closedir(d);
}

void persist_save_all(struct core *e)
{
    for (struct emount *m = e->mounts; m; m = m->next) {
        char path[PATH_MAX];
        if (!m->has_audio)
            continue;
        mount_path(e, m->name, path, sizeof(path));
        if (persist_save_mount(m, path) != FC_OK)
            log_error(&e->log, "rewind file=%s save failed: %s", path, strerror(errno));
    }
}

static void set_defer(struct core *e, bool defer)
{
    for (struct emount *m = e->mounts; m; m = m->next)
        rewind_defer_punch(&m->rw, defer);
}

static void on_child(EV_P_ ev_child *w, int revents)
{
    struct core *e = container_of(w, struct core, save_child);
    ev_child_stop(EV_A_ w);
    e->save_pid = 0;
    set_defer(e, false);
    if (!WIFEXITED(w->rstatus) || WEXITSTATUS(w->rstatus) != 0)
        log_error(&e->log, "rewind save failed (status %d)", w->rstatus);
    else
        log_debug(&e->log, "rewind saved to %s", e->opt.rewind_dir);
}

/* Fork: the child sees the buffers as they are now (slabs are shared mappings; evicted ones
 * stay in the memfd until it is done) and writes them while the loop goes on. */
static void on_save_timer(EV_P_ ev_timer *w, int revents)
{
    struct core *e = container_of(w, struct core, save_timer);
    if (e->save_pid > 0)
        return; /* the previous save is still running */
    set_defer(e, true);
    pid_t pid = fork();
    if (pid < 0) {
        set_defer(e, false);
        log_error(&e->log, "rewind save: fork: %s", strerror(errno));
        return;
    }
    if (pid == 0) {
        signal(SIGTERM, SIG_DFL);
        signal(SIGINT, SIG_DFL);
        /* The child must not hold listener or relay sockets: a listener that closes would get
         * no FIN until the save ends. Slabs stay readable through their mappings. */
        if (close_range(3, ~0u, 0) != 0)
            for (int fd = 3; fd < 65536; fd++)
                close(fd);
        int rc = 0;
        for (struct emount *m = e->mounts; m; m = m->next) {
            char path[PATH_MAX];
            mount_path(e, m->name, path, sizeof(path));
            if (m->has_audio && persist_save_mount(m, path) != FC_OK)
                rc = 1;
        }
        _exit(rc);
    }
    e->save_pid = pid;
    ev_child_set(&e->save_child, pid, 0);
    ev_child_start(EV_A_ & e->save_child);
}

void persist_start(struct core *e)
{
    ev_init(&e->save_child, on_child);
    ev_timer_init(&e->save_timer, on_save_timer, e->opt.rewind_save_every_s,
                  e->opt.rewind_save_every_s);
    ev_timer_start(e->loop, &e->save_timer);
}

void persist_stop(struct core *e)
{
    ev_timer_stop(e->loop, &e->save_timer);
    if (e->save_pid > 0) {
        int status;
        waitpid(e->save_pid, &status, 0); /* let it finish: its file is as good as ours */
        ev_child_stop(e->loop, &e->save_child);
        e->save_pid = 0;
        set_defer(e, false);
    }
}
