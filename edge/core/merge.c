/* merge.c - one output per mount from several encoders (docs/architecture.md §5.4 to §5.9:
 * health, encoder choice, alignment, splicing, patching, silence failover).
 *
 * Each stream's reorder buffer decides its seqs into the stream's lane. The mount outputs the
 * active stream's frames in seq order into the rewind buffer, re-stamped from the sample count.
 * A seq lost on every path is patched with the backup's frames covering the same span (mapped
 * through the estimated content offset) and output returns to the active stream right after.
 * A stream that stops (--stream-timeout) or carries dead air (--silence-failover) is replaced by
 * the next healthy one at the aligned point; the primary takes over again after it has been
 * healthy for --failback-after. Splices cut at frame boundaries, for MP3 preferring a frame
 * with main_data_begin == 0 within ±2 frames.
 */
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include "clock.h"
#include "core.h"
#include "framer.h"

#define SPLICE_MDB_SEARCH 2 /* frames either side of the aligned point */

static uint64_t frame_dur(const struct lane_frame *f)
{
    return clock_samples_to_us(f->samples, f->sample_rate);
}

static bool alive(const struct core *e, const struct estream *s)
{
    return s->lane.any && core_now(e) - s->last_rx < e->opt.stream_timeout_s;
}

static bool has_sound(const struct core *e, const struct estream *s)
{
    return core_now(e) - s->loud_last < EDGE_LOUD_RECENT_S;
}

/* Dead air: silent for --silence-failover while another alive stream has sound. */
static bool dead_air(const struct core *e, const struct emount *m, const struct estream *s)
{
    if (e->opt.silence_failover_s <= 0 || s->silent_since == 0 ||
        core_now(e) - s->silent_since < e->opt.silence_failover_s)
        return false;
    for (const struct estream *t = m->streams; t; t = t->next)
        if (t != s && alive(e, t) && has_sound(e, t))
            return true;
    return false;
}

static bool healthy(const struct core *e, const struct emount *m, const struct estream *s)
{
    return alive(e, s) && !dead_air(e, m, s);
}

bool merge_has_source(struct core *e, struct emount *m)
{
    for (struct estream *s = m->streams; s; s = s->next)
        if (healthy(e, m, s))
            return true;
    return false;
}

/* Content offset from stream a to stream b: content at a's PTS p is at b's PTS p + d. */
static int64_t offset(const struct estream *a, const struct estream *b)
{
    return b->off_us - a->off_us;
}

/* ---- decided frames into lanes; per-stream health ---- */

static void note_level(struct core *e, struct estream *s, const struct reorder_frame *f)
{
    int8_t loudest = f->level[0];
    for (int i = 1; i < 4; i++)
        if (f->level[i] > loudest)
            loudest = f->level[i];
    double now = core_now(e);
    if (loudest < e->opt.silence_threshold_db) {
        if (s->silent_since == 0)
            s->silent_since = now;
    } else {
        s->silent_since = 0;
        s->loud_last = now;
    }
}

static void fill_lanes(struct core *e, struct emount *m)
{
    uint64_t now_us = (uint64_t)(core_now(e) * 1e6);
    for (struct estream *s = m->streams; s; s = s->next) {
        const struct reorder_frame *f;
        uint64_t lost;
        while (reorder_pop(&s->ro, now_us, &f, &lost) == FC_OK) {
            if (lost)
                lane_put_lost(&s->lane, f->seq, lost);
            lane_put(&s->lane, f);
            note_level(e, s, f);
        }
        bool h = healthy(e, m, s);
        if (h && s->healthy_since == 0)
            s->healthy_since = core_now(e);
        else if (!h)
            s->healthy_since = 0;
    }
}

/* ---- offsets between encoders ---- */

static struct estream *reference(struct emount *m)
{
    struct estream *ref = NULL;
    for (struct estream *s = m->streams; s; s = s->next)
        if (s->lane.any && (!ref || s->priority < ref->priority))
            ref = s;
    return ref;
}

/*
 * An estimate is used only once the next one agrees with it (within ALIGN_AGREE_US): a single
 * estimate from a quasi-periodic stretch of programme can lock on a peak half a second off, and
 * successive windows (EDGE_ALIGN_EVERY_S apart) then disagree. A trusted offset changes the same
 * way, so one bad window never moves it.
 */
static bool confirmed(struct estream *s, int64_t d)
{
    if (s->cand_n > 0 && llabs(d - s->cand_us) <= ALIGN_AGREE_US) {
        s->cand_n++;
        s->cand_us = d;
        return true;
    }
    s->cand_us = d;
    s->cand_n = 1;
    return false;
}

static void update_offsets(struct core *e, struct emount *m)
{
    double now = core_now(e);
    if (now < m->next_align)
        return;
    m->next_align = now + EDGE_ALIGN_EVERY_S;
    struct estream *ref = reference(m);
    if (!ref)
        return;
    if (ref != m->ref) {
        /* Re-base every offset on the new reference, keeping their differences, if the new one
         * was itself measured; otherwise (a restarted encoder: a new session) nothing is known
         * about it yet and every offset must be measured again. */
        bool known = ref->off_how == ALIGN_OK && ref->off_at > 0;
        int64_t base = ref->off_us;
        for (struct estream *s = m->streams; s; s = s->next) {
            s->off_us = known ? s->off_us - base : 0;
            s->cand_n = 0;
            if (!known) {
                s->off_how = ALIGN_NODATA;
                s->off_at = 0;
            }
        }
        ref->off_us = 0;
        ref->off_how = ALIGN_OK; /* the reference is aligned with itself */
        ref->off_at = now;
        m->ref = ref;
    }
    for (struct estream *s = m->streams; s; s = s->next) {
        if (s == ref || !alive(e, s) || !alive(e, ref))
            continue;
        int64_t d = 0;
        double corr = 0;
        enum align_result r = align_estimate(&ref->lane, &s->lane, e->align, &d, &corr);
        s->off_corr = corr;
        if (r == ALIGN_OK && confirmed(s, d)) {
            if (s->off_how != ALIGN_OK || llabs(d - s->off_us) > 5000)
                log_info(&e->log, "mount=%s encoder=%s offset_ms=%.1f vs=%s corr=%.2f agreeing=%u",
                         m->name, s->encoder, d / 1000.0, ref->encoder, corr, s->cand_n);
            s->off_us = d;
            s->off_at = now;
            s->off_how = ALIGN_OK;
        } else if (s->off_how != ALIGN_OK) {
            /* never trusted: PTS alignment until two estimates agree */
            s->off_us = 0;
            s->off_how = r == ALIGN_OK ? ALIGN_NODATA : r;
        }
    }
}

/* ---- output ---- */

static void output(struct core *e, struct emount *m, const struct lane_frame *f)
{
    struct frame_info info;
    uint64_t dur = frame_dur(f);
    uint64_t now_wall = clock_wall_us();
    /* Output PTS follow the sample count; re-based only when far from the wall clock. */
    (void)now_wall;
    if (!m->has_audio || m->out_next_pts_us + EDGE_RESYNC_US < f->pts_us ||
        f->pts_us + EDGE_RESYNC_US < m->out_next_pts_us) {
        if (m->has_audio)
            log_info(&e->log, "mount=%s output PTS re-based by %lld ms", m->name,
                     ((long long)f->pts_us - (long long)m->out_next_pts_us) / 1000);
        m->out_next_pts_us = f->pts_us;
    }
    m->rw.codec = f->codec;
    if (rewind_append(&m->rw, f->data, f->len, m->out_next_pts_us, dur) != FC_OK) {
        log_error(&e->log, "mount=%s cannot append to the rewind buffer", m->name);
        return;
    }
    m->out_next_pts_us += dur;
    m->has_audio = true;
    m->frames_out++;
    m->codec = f->codec;
    m->sample_rate = f->sample_rate;
    m->channels = f->channels;
    m->last_dur_us = dur;
    m->last_len = f->len;
    if (frame_header_parse(f->codec, f->data, f->len, &info) == FC_OK)
        m->bitrate = info.bitrate;
    if (e->hooks.appended)
        e->hooks.appended(e->hooks.ctx, m); /* the HTTP side batches its writes */
}

static bool compatible(const struct lane_frame *a, const struct lane_frame *b)
{
    return a->codec == b->codec && a->sample_rate == b->sample_rate &&
           a->channels == b->channels && a->samples == b->samples;
}

/* `s` now feeds the output: its encoder is no longer new to the mount. */
static void note_fed(struct emount *m, struct estream *s)
{
    m->splice_wait_logged = false;
    for (uint32_t i = 0; i < m->n_fed; i++)
        if (strcmp(m->fed[i], s->encoder) == 0)
            goto out;
    if (m->n_fed < EDGE_MAX_STREAMS_PER_MOUNT)
        memcpy(m->fed[m->n_fed++], s->encoder, sizeof(m->fed[0]));
out:
    for (struct estream *t = m->streams; t; t = t->next)
        if (strcmp(t->encoder, s->encoder) == 0)
            t->first_time = false;
}

bool merge_encoder_fed(const struct emount *m, const char *encoder)
{
    for (uint32_t i = 0; i < m->n_fed; i++)
        if (strcmp(m->fed[i], encoder) == 0)
            return true;
    return m->n_fed >= EDGE_MAX_STREAMS_PER_MOUNT; /* list full: treat as known */
}

/* For MP3, the frame nearest `seq` (±2) that needs no bit reservoir from frames before it. */
static uint64_t splice_frame(const struct lane *l, uint64_t seq)
{
    for (uint64_t d = 0; d <= SPLICE_MDB_SEARCH; d++) {
        for (int sign = -1; sign <= 1; sign += 2) {
            if (d == 0 && sign > 0)
                continue;
            uint64_t q = sign < 0 ? seq - d : seq + d;
            if (sign < 0 && d > seq)
                continue;
            const struct lane_frame *f = lane_get(l, q);
            if (f && f->state == LANE_PRESENT && f->mdb == 0)
                return q;
        }
    }
    return seq;
}

/* The healthy stream with the lowest priority number (newest first among equals). */
static struct estream *best(struct core *e, struct emount *m, const struct estream *except)
{
    struct estream *b = NULL;
    for (struct estream *s = m->streams; s; s = s->next) {
        if (s == except || !healthy(e, m, s))
            continue;
        if (!b || s->priority < b->priority ||
            (s->priority == b->priority && s->first_rx > b->first_rx))
            b = s;
    }
    return b;
}

/* The offset from the reference to `s` can be used for a splice: two estimates agreed. */
static bool trusted(const struct estream *s)
{
    return s->off_how == ALIGN_OK && s->off_at > 0;
}

/*
 * Dead air on the active stream: it still sends, so there is time to wait for an offset to the
 * backup that can be trusted (a splice by PTS alone is off by the encoders' latency difference),
 * bounded by EDGE_ALIGN_WAIT_S. A stream that stopped is replaced at once.
 */
static bool wait_for_offset(struct core *e, struct emount *m, const struct estream *cur,
                            const struct estream *b)
{
    if (!alive(e, cur) || (trusted(cur) && trusted(b)) || b->off_how == ALIGN_FLAT)
        return false;
    double waited = core_now(e) - cur->silent_since - e->opt.silence_failover_s;
    if (waited >= EDGE_ALIGN_WAIT_S) {
        log_warn(&e->log, "mount=%s dead air on %s: no trusted offset to %s after %.1f s, "
                 "splicing by PTS", m->name, cur->encoder, b->encoder, waited);
        return false;
    }
    if (!m->splice_wait_logged)
        log_info(&e->log, "mount=%s dead air on %s: waiting for a trusted offset to %s",
                 m->name, cur->encoder, b->encoder);
    m->splice_wait_logged = true;
    return true;
}

/* Which stream should be active now (may be the current one). */
static struct estream *pinned(struct core *e, struct emount *m)
{
    if (!m->pinned[0])
        return NULL;
    struct estream *found = NULL;
    for (struct estream *s = m->streams; s; s = s->next)
        if (strcmp(s->encoder, m->pinned) == 0 && healthy(e, m, s) &&
            (!found || s->first_rx > found->first_rx))
            found = s; /* its newest session */
    return found;
}

enum fc_err merge_pin(struct core *e, struct emount *m, const char *encoder)
{
    if (encoder[0]) {
        bool any = false;
        for (struct estream *s = m->streams; s; s = s->next)
            any |= strcmp(s->encoder, encoder) == 0;
        if (!any)
            return FC_PROTO;
    }
    snprintf(m->pinned, sizeof(m->pinned), "%s", encoder);
    return FC_OK;
}

static struct estream *target(struct core *e, struct emount *m)
{
    struct estream *pin = pinned(e, m);
    if (pin)
        return pin;
    struct estream *cur = m->active, *b = best(e, m, NULL);
    if (!cur || !b || b == cur)
        return b ? b : cur;
    if (!healthy(e, m, cur))
        return wait_for_offset(e, m, cur, b) ? cur : b;
    double now = core_now(e);
    /* Fail back once the primary has been healthy long enough and the offset between it and the
     * current stream has been measured since it came back (a restarted encoder has a new
     * latency); after a further correlation window, PTS alignment has to do. An encoder that
     * never fed this mount (it arrived after output began) is not a primary that failed: it
     * takes over as soon as it is aligned. */
    double hold = b->first_time ? 0 : e->opt.failback_after_s;
    bool measured = (cur->off_at > b->healthy_since && b->off_at > 0 && trusted(cur)) ||
                    b->off_how == ALIGN_FLAT || now - b->healthy_since >= hold + ALIGN_WINDOW_US / 1e6;
    if (b->priority < cur->priority && now - b->healthy_since >= hold && measured)
        return b; /* fail back */
    return cur;
}

/*
 * Continue the output from stream `to` at the point where it currently ends. Returns false when
 * `to` has not yet decided frames that far (wait and retry).
 */
static bool splice(struct core *e, struct emount *m, struct estream *to)
{
    struct estream *from = m->active;
    uint64_t seq;
    int64_t off = offset(from, to);
    uint64_t at = (uint64_t)((int64_t)m->src_end_us + off);
    const struct lane_frame *last = to->lane.any ? lane_get(&to->lane, to->lane.end_seq - 1) : NULL;
    if (!last || last->pts_us + frame_dur(last) / 2 <= at)
        return false; /* `to` has not reached that point yet */
    if (!lane_seek_pts(&to->lane, at, &seq))
        return false;
    seq = splice_frame(&to->lane, seq);
    const struct lane_frame *f = lane_get(&to->lane, seq);
    const struct lane_frame *prev = lane_get(&from->lane, m->cur_seq ? m->cur_seq - 1 : 0);
    bool disc = prev && prev->state == LANE_PRESENT && !compatible(prev, f);
    bool back = to->priority < from->priority;
    const char *event = back ? "failback" : "failover";
    if (back)
        m->failbacks++;
    else
        m->failovers++;
    if (disc)
        m->discontinuities++;
    log_warn(&e->log,
             "event=%s mount=%s from=%s to=%s splice_offset_ms=%.1f splice_error_ms=%.1f "
             "alignment=%s corr=%.2f%s",
             event, m->name, from->encoder, to->encoder, off / 1000.0,
             ((double)f->pts_us - (double)at) / 1000.0, align_result_name(to->off_how),
             to->off_corr, disc ? " discontinuity=1 (codec, rate or channels differ)" : "");
    alert_emit(&e->alert, event,
               json_pack("{s:s, s:s, s:s, s:f, s:f, s:s, s:b}", "mount", m->name, "from",
                         from->encoder, "to", to->encoder, "splice_offset_ms", off / 1000.0,
                         "splice_error_ms", ((double)f->pts_us - (double)at) / 1000.0,
                         "alignment", align_result_name(to->off_how), "discontinuity", disc));
    note_fed(m, to);
    m->active = to;
    m->cur_seq = seq;
    m->src_end_us = f->pts_us;
    m->switches++;
    return true;
}

/*
 * The active stream lost seqs [cur_seq, cur_seq + n) on every path: play a backup's frames for
 * the same span. Returns false to wait for the backup (bounded by EDGE_PATCH_WAIT_S).
 */
static bool patch(struct core *e, struct emount *m, uint64_t n)
{
    struct estream *cur = m->active, *b = best(e, m, cur);
    double now = core_now(e);
    uint64_t dur = m->last_dur_us, span = n * dur;
    if (m->gap_since == 0)
        m->gap_since = now;
    const struct lane_frame *ref = lane_get(&cur->lane, m->cur_seq + n);
    uint64_t from = m->src_end_us, to = from + span;
    if (ref && ref->state == LANE_PRESENT)
        to = ref->pts_us; /* the next frame we have says where the gap ends */
    uint64_t patched = 0;
    if (b && b->lane.any) {
        int64_t off = offset(cur, b);
        uint64_t bfrom = (uint64_t)((int64_t)from + off), bto = (uint64_t)((int64_t)to + off);
        const struct lane_frame *last = lane_get(&b->lane, b->lane.end_seq - 1);
        bool covered = last && last->pts_us + frame_dur(last) / 2 >= bto;
        if (!covered && now - m->gap_since < EDGE_PATCH_WAIT_S)
            return false;
        uint64_t seq;
        const struct lane_frame *prev = lane_get(&cur->lane, m->cur_seq - 1);
        if (lane_seek_pts(&b->lane, bfrom, &seq)) {
            for (;; seq++) {
                const struct lane_frame *f = lane_get(&b->lane, seq);
                if (!f || f->pts_us + frame_dur(f) / 2 > bto)
                    break;
                if (f->state != LANE_PRESENT || (prev && !compatible(prev, f)))
                    continue;
                output(e, m, f);
                patched++;
            }
        }
        b->patched += patched;
    }
    m->patched += patched;
    if (patched == 0 || patched < n) {
        m->gaps++;
        m->lost += n - (patched < n ? patched : n);
    }
    log_warn(&e->log, "event=%s mount=%s encoder=%s lost_frames=%llu at_seq=%llu patched=%llu%s%s",
             patched ? "patched" : "gap", m->name, cur->encoder, (unsigned long long)n,
             (unsigned long long)m->cur_seq, (unsigned long long)patched,
             b ? " from=" : " (no backup)", b ? b->encoder : "");
    m->cur_seq += n;
    m->src_end_us = to;
    m->gap_since = 0;
    return true;
}

/* Count the run of lost seqs at cur_seq; `*closed` tells whether a present frame follows. */
static uint64_t lost_run(const struct lane *l, uint64_t seq, bool *closed)
{
    uint64_t n = 0;
    const struct lane_frame *f;
    while ((f = lane_get(l, seq + n)) && f->state == LANE_LOST)
        n++;
    *closed = f != NULL;
    return n;
}

static void start(struct core *e, struct emount *m, struct estream *s)
{
    note_fed(m, s);
    m->active = s;
    m->cur_seq = lane_oldest(&s->lane);
    log_info(&e->log, "event=source mount=%s encoder=%s from_seq=%llu", m->name, s->encoder,
             (unsigned long long)m->cur_seq);
}

void merge_pump(struct core *e, struct emount *m)
{
    fill_lanes(e, m);
    update_offsets(e, m);
    if (!m->active) {
        struct estream *s = best(e, m, NULL);
        if (!s || core_now(e) - m->first_seen < e->opt.start_grace_s)
            return;
        start(e, m, s);
    }
    for (int guard = 0; guard < 100000; guard++) {
        struct estream *want = target(e, m);
        if (want && want != m->active && m->has_audio && !splice(e, m, want))
            return;
        if (want && want != m->active && !m->has_audio)
            start(e, m, want);
        struct estream *cur = m->active;
        const struct lane_frame *f = lane_get(&cur->lane, m->cur_seq);
        if (!f) {
            if (cur->lane.any && m->cur_seq < lane_oldest(&cur->lane)) {
                m->cur_seq = lane_oldest(&cur->lane); /* fell a whole lane behind */
                continue;
            }
            return; /* not decided yet */
        }
        if (f->state == LANE_PRESENT) {
            output(e, m, f);
            cur->frames_out++;
            m->cur_seq++;
            m->src_end_us = f->pts_us + frame_dur(f);
            continue;
        }
        bool closed;
        uint64_t n = lost_run(&cur->lane, m->cur_seq, &closed);
        if (!closed && alive(e, cur))
            return; /* the gap may still be growing */
        if (!patch(e, m, n))
            return;
    }
}
