/*
 * test_merge.c - unit tests for the edge's merge of several encoders into one output per mount
 * (edge/core/merge.c with mount.c, titles.c, reorder.c, lane.c, align.c and rewind.c), on a
 * fake clock.
 *
 * A struct core is built by hand (as core_start() would, without timers) and driven by
 * c->test_now: every EDGE_TICK_S of fake time, the frames due by then are handed to
 * edge_frame_in() (as relay links would) and edge_tick() runs. The core knows nothing of HTTP:
 * its hooks (struct edge_hooks) count appended frames and ticks here; alert_emit() is stubbed
 * to record events.
 *
 * Two encoders, a (priority 0) and b (priority 1), carry one synthetic programme: content frame
 * c is a 417-byte MP3 frame (a real Layer III header, main_data_begin 0) whose payload names the
 * encoder and c, with four loudness levels drawn from a random-ish envelope of c. Encoder a
 * carries content c at PTS P0 + c frames; b is 400 ms behind (content c at a's PTS + 400 ms, on
 * a PTS grid of its own phase). A frame reaches the edge NET_DELAY after its last sample, or at
 * once when it is part of a burst on connect. The output is read back from the mount's rewind
 * buffer frame by frame, so every assertion is about the bytes a listener would get.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "../../edge/core/lane.c"
#undef MASK
#include "../../edge/core/reorder.c"
#undef MASK
#include "../../edge/core/align.c"
#include "../../edge/core/rewind.c"
#define splice merge_splice /* rewind.c's <fcntl.h> declares splice(2) */
#include "../../edge/core/merge.c"
#undef splice
#include "../../edge/core/mount.c"
#include "../../edge/core/titles.c"

#define SAMPLES 1152u
#define RATE 44100u
#define FRAME_LEN 417u            /* 128 kbit/s, 44.1 kHz, no padding */
#define P0_US 1700000000000000ull /* wall-clock PTS of content frame 0 on a */
#define T0_S 1000.0               /* fake monotonic clock at the start of a test */
/* The wall clock reads P0 + 10 s at T0_S: room for bursts of past audio. */
#define T0_WALL_US (P0_US + 10000000)
#define NET_DELAY_S 0.05                  /* shim -> relays -> edge */
#define B_BEHIND_US 400000                /* b's content runs 400 ms behind a's */
#define B_SHIFT 15                        /* whole frames of that: 15 * 26122.45 = 391837 µs */
#define B_PHASE_US (B_BEHIND_US - 391837) /* and b's PTS grid starts 8163 µs later */
#define MAX_OUT 20000                     /* output frames read back */
#define STEP_US 6530                      /* one sub-frame of alignment */

/* ---- the core's hooks (where the HTTP side would be) and a stub for alerts ---- */

static unsigned n_appends, n_ticks, n_freed;
static char alerts[64][32];
static unsigned n_alerts;

static void on_appended(void *ctx, struct emount *m)
{
    assert_ptr_equal(ctx, &n_appends);
    assert_true(m->has_audio);
    n_appends++;
}
static void on_tick(void *ctx)
{
    n_ticks++;
}
static void on_mount_freed(void *ctx, struct emount *m)
{
    n_freed++;
}

void alert_emit(struct alerter *a, const char *event, json_t *fields)
{
    if (n_alerts < FC_ARRAY_LEN(alerts))
        snprintf(alerts[n_alerts++], sizeof(alerts[0]), "%s", event);
    json_decref(fields);
}

static unsigned alerts_named(const char *event)
{
    unsigned n = 0;
    for (unsigned i = 0; i < n_alerts; i++)
        n += strcmp(alerts[i], event) == 0;
    return n;
}

/* ---- the programme and the encoders ---- */

static uint64_t splitmix(uint64_t x)
{
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

/* Loudness of sub-frame u (4 per content frame): linear between random knots 6 sub-frames
 * (~40 ms) apart, -28..-12 dBFS. */
static int8_t level_at(int64_t u)
{
    uint64_t k = (uint64_t)(u + (1 << 30)) / 6, r = (uint64_t)(u + (1 << 30)) % 6;
    double a = -28 + 16 * (double)(splitmix(k) >> 11) / (double)(1ull << 53);
    double b = -28 + 16 * (double)(splitmix(k + 1) >> 11) / (double)(1ull << 53);
    return (int8_t)lround(a + (b - a) * (double)r / 6);
}

struct enc {
    const char *name;
    uint32_t priority;
    uint64_t session;
    uint64_t pts0_us;      /* PTS of this encoder's frame index 0 */
    int64_t content_shift; /* frame index k carries content k + content_shift */
    double connect_s;      /* fake time it connects: a burst of what it has, then real time */
    double burst_s;        /* seconds of past audio in the connect burst */
    double stop_s;         /* stops sending from then (0 = never) ... */
    double resume_s;       /* ... until then (0 = never): the same session, seqs go on */
    uint64_t drop_k[8];    /* frame indexes lost on every path */
    int n_drop;
    int64_t next_k; /* next frame index to consider; INT64_MIN = not started */
    uint64_t sent;
};

static struct core E;
static struct enc A, B;
static uint8_t frame_buf[FRAME_LEN];

struct out_frame {
    char enc;
    int64_t content;
    uint64_t seq;
    uint64_t pts_us;
};
static struct out_frame out[MAX_OUT];
static size_t n_out;

static uint64_t frame_us(void)
{
    return clock_samples_to_us(SAMPLES, RATE);
}

static uint64_t pts_of(const struct enc *x, int64_t k)
{
    return x->pts0_us + clock_samples_to_us((uint64_t)k * SAMPLES, RATE);
}

/* Fake monotonic time at which wall-clock µs `w` happens. */
static double mono_of(uint64_t w)
{
    return T0_S + ((double)w - (double)T0_WALL_US) / 1e6;
}

static uint64_t wall_of(double t)
{
    return T0_WALL_US + (uint64_t)llround((t - T0_S) * 1e6);
}

static void enc_init(struct enc *x, const char *name, uint32_t prio, uint64_t pts0, int64_t shift,
                     double connect_s)
{
    memset(x, 0, sizeof(*x));
    x->name = name;
    x->priority = prio;
    x->session = 0x5e55000000000000ull | prio;
    x->pts0_us = pts0;
    x->content_shift = shift;
    x->connect_s = connect_s;
    x->burst_s = 0;
    x->next_k = INT64_MIN;
}

static void send_frame(struct enc *x, int64_t k)
{
    for (int i = 0; i < x->n_drop; i++)
        if (x->drop_k[i] == (uint64_t)k)
            return;
    int64_t c = k + x->content_shift;
    struct wire_frame f;
    memset(&f, 0, sizeof(f));
    strcpy(f.mount, "live");
    snprintf(f.encoder, sizeof(f.encoder), "%s", x->name);
    f.priority = x->priority;
    f.session = x->session;
    f.seq = (uint64_t)k + 100000; /* seqs are per session; any start */
    f.pts_us = pts_of(x, k);
    f.codec = FC_CODEC_MP3;
    f.sample_rate = RATE;
    f.channels = 2;
    f.samples = SAMPLES;
    for (int q = 0; q < 4; q++)
        f.level[q] = level_at(4 * c + q);
    memset(frame_buf, 0x11, sizeof(frame_buf));
    frame_buf[0] = 0xFF, frame_buf[1] = 0xFB, frame_buf[2] = 0x90, frame_buf[3] = 0x64;
    frame_buf[4] = 0, frame_buf[5] = 0; /* main_data_begin 0: any frame is a clean splice */
    frame_buf[6] = (uint8_t)x->name[0];
    memcpy(frame_buf + 8, &c, sizeof(c));
    memcpy(frame_buf + 16, &f.seq, sizeof(f.seq));
    f.payload = frame_buf;
    f.payload_len = FRAME_LEN;
    edge_frame_in(&E, &f, NULL);
    x->sent++;
}

/* Hand the edge every frame of `x` due by fake time `t`. */
static void enc_run(struct enc *x, double t)
{
    if (t < x->connect_s)
        return;
    if (x->next_k == INT64_MIN) {
        /* First frame of the connect burst: burst_s before the connect, on this grid. */
        uint64_t w = wall_of(x->connect_s - x->burst_s);
        assert_true(w > x->pts0_us);
        x->next_k = (int64_t)((w - x->pts0_us) / frame_us());
    }
    for (;;) {
        int64_t k = x->next_k;
        double arrive = mono_of(pts_of(x, k + 1)) + NET_DELAY_S;
        if (arrive > t)
            break;
        bool out =
            x->stop_s > 0 && arrive >= x->stop_s && (x->resume_s == 0 || arrive < x->resume_s);
        if (!out) /* an outage: the frames it would have sent are lost on every path */
            send_frame(x, k);
        x->next_k++;
    }
}

/* Read the whole rewind buffer back into out[]. */
static struct emount *read_output(void)
{
    struct emount *m = edge_mount_find(&E, "live", 4);
    n_out = 0;
    if (!m || !m->has_audio)
        return m;
    uint64_t abs = m->rw.abs_start, pts = rewind_first_pts(&m->rw);
    while (abs < m->rw.abs_end) {
        const uint8_t *fr;
        uint32_t len;
        uint64_t dur;
        uint64_t next = rewind_frame_at(&m->rw, abs, pts, &fr, &len, &dur);
        assert_true(next > abs);
        assert_int_equal(len, FRAME_LEN);
        assert_true(n_out < MAX_OUT);
        struct out_frame *o = &out[n_out++];
        o->enc = (char)fr[6];
        memcpy(&o->content, fr + 8, sizeof(o->content));
        memcpy(&o->seq, fr + 16, sizeof(o->seq));
        o->pts_us = rewind_pts_at(&m->rw, abs);
        pts += dur;
        abs = next;
    }
    return m;
}

static struct estream *stream_of(struct emount *m, const char *name)
{
    for (struct estream *s = m->streams; s; s = s->next)
        if (strcmp(s->encoder, name) == 0)
            return s;
    return NULL;
}

/* Run the fake clock to `until_s` in EDGE_TICK_S steps; stop early when `done` says so. */
static double run_until(double until_s, bool (*done)(void))
{
    for (;;) {
        double t = E.test_now + EDGE_TICK_S;
        if (t > until_s)
            return E.test_now;
        E.test_now = t;
        enc_run(&A, t);
        enc_run(&B, t);
        edge_tick(&E);
        if (done && done())
            return t;
    }
}

static struct emount *mount(void)
{
    return edge_mount_find(&E, "live", 4);
}

/* The output is one programme: content frames consecutive (no gap, no repeat), output PTS
 * advancing one frame at a time, from `from` on. */
static void check_continuous(size_t from)
{
    for (size_t i = from + 1; i < n_out; i++)
        if (out[i].content != out[i - 1].content + 1)
            fail_msg("output frame %zu: content %lld from %c after %lld from %c (gap or repeat)", i,
                     (long long)out[i].content, out[i].enc, (long long)out[i - 1].content,
                     out[i - 1].enc);
}

static int setup(void **state)
{
    memset(&E, 0, sizeof(E));
    log_init(&E.log, "edge", false);
    if (!getenv("FC_TEST_VERBOSE"))
        E.log.min = LOG_ERROR;
    E.opt.reorder_us = 300000;
    E.opt.rewind_us = 600ull * 1000000;
    E.opt.stream_timeout_s = 1;
    E.opt.max_skew_s = 1e9; /* PTS are P0-based, not today's wall clock */
    E.opt.failback_after_s = 10;
    E.opt.start_grace_s = EDGE_START_GRACE_S;
    E.opt.silence_failover_s = 15;
    E.opt.silence_threshold_db = -50;
    E.opt.sourceless_after_s = 30;
    E.align = malloc(sizeof(*E.align));
    assert_non_null(E.align);
    E.test_now = T0_S;
    E.hooks = (struct edge_hooks){.ctx = &n_appends, .appended = on_appended, .tick = on_tick,
                                  .mount_freed = on_mount_freed};
    n_alerts = n_appends = n_ticks = n_freed = 0;
    n_out = 0;
    enc_init(&A, "a", 0, P0_US, 0, T0_S);
    enc_init(&B, "b", 1, P0_US + B_PHASE_US, -B_SHIFT, T0_S);
    return 0;
}

static int teardown(void **state)
{
    uint32_t mounts = E.n_mounts;
    edge_mounts_free(&E);
    assert_int_equal(n_freed, mounts);
    free(E.align);
    return 0;
}

/* ---- tests ---- */

static void test_sanity(void **state)
{
    assert_int_equal(frame_us(), 26122);
    /* b's frame holding content c sits 400 ms (± rounding) after a's. */
    for (int64_t c = 0; c < 1000; c += 37) {
        int64_t d = (int64_t)pts_of(&B, c + B_SHIFT) - (int64_t)pts_of(&A, c);
        assert_true(llabs(d - B_BEHIND_US) <= 1);
    }
    struct frame_info info;
    uint8_t h[4] = {0xFF, 0xFB, 0x90, 0x64};
    assert_int_equal(mp3_header_parse(h, 4, &info), FC_OK);
    assert_int_equal(info.len, FRAME_LEN);
}

static bool b_trusted(void)
{
    struct emount *m = mount();
    struct estream *b = m ? stream_of(m, "b") : NULL;
    return b && b->off_how == ALIGN_OK && b->off_at > 0;
}

/* Both encoders healthy from the start: output begins (within the start grace and a little),
 * on a, every frame in order in the rewind buffer, the appended hook called for each and the
 * tick hook every tick; b's offset is measured at
 * +400 ms within one sub-frame. */
static void test_output_in_order(void **state)
{
    run_until(T0_S + E.opt.start_grace_s + 1.0, NULL);
    struct emount *m = read_output();
    assert_non_null(m);
    assert_true(m->has_audio);
    assert_true(n_out > 10);
    assert_ptr_equal(m->active, stream_of(m, "a"));
    assert_int_equal(n_appends, m->frames_out);
    assert_true(n_ticks >= (unsigned)((E.opt.start_grace_s + 1.0) / EDGE_TICK_S) - 1);

    double t = run_until(T0_S + 60, b_trusted);
    assert_true(b_trusted()); /* within 60 s of programme */
    struct estream *b = stream_of(m, "b"), *a = stream_of(m, "a");
    int64_t off = b->off_us - a->off_us;
    if (llabs(off - B_BEHIND_US) > STEP_US)
        fail_msg("b's offset %lld µs, want %d ± %d", (long long)off, B_BEHIND_US, STEP_US);
    run_until(t + 5, NULL);
    read_output();
    assert_true(n_out > 500);
    for (size_t i = 0; i < n_out; i++)
        assert_int_equal(out[i].enc, 'a');
    check_continuous(0);
    /* Output PTS start at the first frame's source PTS and follow the sample count: at the end
     * within 2 ms of a's PTS for the same content (26122 µs a frame against 26122.45). */
    assert_int_equal(out[0].pts_us, pts_of(&A, out[0].content));
    for (size_t i = 1; i < n_out; i++)
        assert_true(out[i].pts_us > out[i - 1].pts_us);
    assert_true(llabs((long long)m->rw.end_pts_us -
                      (long long)pts_of(&A, out[n_out - 1].content + 1)) <= 2000);
    assert_int_equal(m->frames_out, n_out);
    assert_int_equal(m->rw.frames, n_out);
    assert_int_equal(m->lost, 0);
    assert_int_equal(m->failovers + m->failbacks + m->switches, 0);
    /* The output keeps up: its last frame is at most a reorder wait and a tick behind a's. */
    assert_true(out[n_out - 1].content + 20 >= A.next_k);
}

/* A seq lost on every path of a is patched with b's frame for the same content (found through
 * the measured offset): no gap, no repeat, counted as patched, not lost. */
static void test_patch_from_backup(void **state)
{
    double t = run_until(T0_S + 60, b_trusted);
    assert_true(b_trusted());
    int64_t lost_k = A.next_k + 40; /* ~1 s ahead: not sent yet */
    A.drop_k[A.n_drop++] = (uint64_t)lost_k;
    run_until(t + 6, NULL);
    struct emount *m = read_output();
    check_continuous(0);
    size_t hits = 0;
    for (size_t i = 0; i < n_out; i++) {
        if (out[i].content == lost_k) {
            hits++;
            assert_int_equal(out[i].enc, 'b');
            assert_int_equal(out[i].seq, (uint64_t)(lost_k + B_SHIFT) + 100000);
        } else {
            assert_int_equal(out[i].enc, 'a');
        }
    }
    assert_int_equal(hits, 1);
    assert_true(out[n_out - 1].content > lost_k + 100);
    assert_int_equal(m->patched, 1);
    assert_int_equal(m->lost, 0);
    assert_int_equal(m->gaps, 0);
    assert_int_equal(stream_of(m, "b")->patched, 1);
    assert_ptr_equal(m->active, stream_of(m, "a"));
}

static bool active_is_b(void)
{
    struct emount *m = mount();
    return m && m->active && strcmp(m->active->encoder, "b") == 0;
}

static bool active_is_a(void)
{
    struct emount *m = mount();
    return m && m->active && strcmp(m->active->encoder, "a") == 0;
}

/* a stops: past --stream-timeout the output fails over to b at the aligned point (the next
 * content frame, no gap, no repeat). a comes back (same session, the outage's seqs lost): the
 * output stays on b for --failback-after, then returns to a, again seamlessly. */
static void test_failover_and_failback(void **state)
{
    double t = run_until(T0_S + 60, b_trusted);
    assert_true(b_trusted());
    const double stop = t + 1, resume = stop + 8;
    A.stop_s = stop;
    A.resume_s = resume;
    double t_over = run_until(resume - 0.5, active_is_b);
    assert_true(active_is_b());
    struct emount *m = read_output();
    assert_int_equal(m->failovers, 1);
    assert_int_equal(alerts_named("failover"), 1);
    /* after the timeout, not before; and soon after it (a tick or two) */
    assert_true(t_over >= stop + E.opt.stream_timeout_s - NET_DELAY_S - 0.05);
    assert_true(t_over <= stop + E.opt.stream_timeout_s + 0.5);
    run_until(resume - 0.1, NULL);
    read_output();
    check_continuous(0);
    assert_int_equal(out[n_out - 1].enc, 'b');

    /* a is back: no failback before --failback-after; failback within a further correlation
     * window (plus two alignment periods to confirm the offset). */
    double t_back =
        run_until(resume + E.opt.failback_after_s + ALIGN_WINDOW_US / 1e6 + 6, active_is_a);
    assert_true(active_is_a());
    assert_true(t_back >= resume + E.opt.failback_after_s);
    run_until(t_back + 3, NULL);
    read_output();
    check_continuous(0);
    assert_int_equal(m->failovers, 1);
    assert_int_equal(m->failbacks, 1);
    assert_int_equal(alerts_named("failback"), 1);
    assert_int_equal(m->lost, 0);
    assert_int_equal(out[n_out - 1].enc, 'a');
    /* the output went a ... a, b ... b, a ... a: exactly two changes of encoder */
    unsigned changes = 0;
    for (size_t i = 1; i < n_out; i++)
        changes += out[i].enc != out[i - 1].enc;
    assert_int_equal(changes, 2);
}

/*
 * Start on the primary: b's first frame (its connect burst) reaches the edge 1.7 s before a's,
 * both healthy. The first frame output comes from a, and the output never changes encoder: no
 * failback is needed because b never fed the output.
 */
static void test_start_on_primary(void **state)
{
    A.connect_s = T0_S + 1.7;
    A.burst_s = 4;
    B.burst_s = 4;
    struct estream *first_active = NULL;
    for (double t = T0_S; t < T0_S + 30; t += EDGE_TICK_S) {
        run_until(t, NULL);
        struct emount *m = mount();
        if (m && m->has_audio && !first_active) {
            first_active = m->active;
            read_output();
            assert_true(n_out > 0);
            if (out[0].enc != 'a')
                fail_msg("output began on %c at %.2f s (a connected at +1.7 s)", out[0].enc,
                         t - T0_S);
        }
    }
    struct emount *m = read_output();
    assert_non_null(first_active);
    assert_ptr_equal(first_active, stream_of(m, "a"));
    assert_int_equal(m->failbacks, 0);
    assert_int_equal(m->failovers, 0);
    assert_int_equal(m->switches, 0);
    for (size_t i = 0; i < n_out; i++)
        assert_int_equal(out[i].enc, 'a');
    check_continuous(0);
    assert_true(n_out > 900); /* ~28 s of output since start */
}

/*
 * An encoder new to the mount, arriving after output began (here 6 s after b, past the start
 * grace) is no failed primary: it takes over as soon as its offset is trusted, well before
 * --failback-after (set to 60 s here), at the aligned point.
 */
static void test_new_primary_takes_over_when_aligned(void **state)
{
    E.opt.failback_after_s = 60;
    A.connect_s = T0_S + 6;
    run_until(T0_S + 5, NULL);
    struct emount *m = read_output();
    assert_true(m && m->has_audio);
    assert_ptr_equal(m->active, stream_of(m, "b"));
    double t = run_until(T0_S + 50, active_is_a);
    assert_true(active_is_a());
    assert_true(t < A.connect_s + E.opt.failback_after_s);
    run_until(t + 3, NULL);
    read_output();
    check_continuous(0);
    assert_int_equal(out[0].enc, 'b');
    assert_int_equal(out[n_out - 1].enc, 'a');
    assert_int_equal(m->switches, 1);
}

/* ---- the admin API's promote/release (merge_pin) ---- */

/* Every output frame is the frame its encoder sent for that content: seq = its frame index +
 * 100000, a's index = content, b's = content + B_SHIFT (nothing re-used from another spot). */
static void check_seqs(void)
{
    for (size_t i = 0; i < n_out; i++) {
        int64_t k = out[i].enc == 'a' ? out[i].content : out[i].content + B_SHIFT;
        if (out[i].enc != 'a' && out[i].enc != 'b')
            fail_msg("output frame %zu from encoder %c", i, out[i].enc);
        if (out[i].seq != (uint64_t)k + 100000)
            fail_msg("output frame %zu: content %lld from %c has seq %llu, want %llu", i,
                     (long long)out[i].content, out[i].enc, (unsigned long long)out[i].seq,
                     (unsigned long long)k + 100000);
    }
}

static unsigned encoder_changes(void)
{
    unsigned changes = 0;
    for (size_t i = 1; i < n_out; i++)
        changes += out[i].enc != out[i - 1].enc;
    return changes;
}

/* Output on a, b aligned (both healthy): the state every pin test starts from. */
static struct emount *both_aligned(double *t)
{
    *t = run_until(T0_S + 60, b_trusted);
    assert_true(b_trusted());
    struct emount *m = read_output();
    assert_non_null(m);
    assert_ptr_equal(m->active, stream_of(m, "a"));
    assert_int_equal(m->switches, 0);
    assert_string_equal(m->pinned, "");
    return m;
}

/*
 * Promote b (the backup) while a is healthy: the output splices to b at the aligned point (no
 * content lost or repeated, each frame b's own for that content) within a couple of seconds,
 * and stays on b, a healthy and better, far longer than --failback-after and a correlation
 * window. Release: back to a (a failback), seamlessly again.
 */
static void test_pin_promote_and_release(void **state)
{
    double t;
    struct emount *m = both_aligned(&t);
    assert_int_equal(merge_pin(&E, m, "b"), FC_OK);
    assert_string_equal(m->pinned, "b");
    double t_pin = run_until(t + 5, active_is_b);
    assert_true(active_is_b());
    assert_true(t_pin - t <= 2.0);
    assert_int_equal(m->switches, 1);
    assert_int_equal(alerts_named("failover"), 1);

    /* a stays healthy (and better) all along, yet the output stays on b */
    double hold = E.opt.failback_after_s + ALIGN_WINDOW_US / 1e6 + 20;
    double t_a = run_until(t_pin + hold, active_is_a);
    if (active_is_a())
        fail_msg("output went back to a %.1f s after b was pinned", t_a - t_pin);
    assert_true(healthy(&E, m, stream_of(m, "a")));
    read_output();
    check_continuous(0);
    check_seqs();
    assert_int_equal(encoder_changes(), 1);
    assert_int_equal(out[n_out - 1].enc, 'b');
    assert_true(out[n_out - 1].content + 40 >= A.next_k); /* b keeps the output going */
    assert_int_equal(m->switches, 1);

    /* release: failback to a, which has been healthy all along */
    t = E.test_now;
    assert_int_equal(merge_pin(&E, m, ""), FC_OK);
    assert_string_equal(m->pinned, "");
    double t_back = run_until(t + 5, active_is_a);
    assert_true(active_is_a());
    assert_true(t_back - t <= 2.0);
    run_until(t_back + 3, NULL);
    read_output();
    check_continuous(0);
    check_seqs();
    assert_int_equal(encoder_changes(), 2);
    assert_int_equal(out[n_out - 1].enc, 'a');
    assert_int_equal(m->switches, 2);
    assert_int_equal(m->failovers, 1);
    assert_int_equal(m->failbacks, 1);
    assert_int_equal(alerts_named("failback"), 1);
    assert_int_equal(m->lost, 0);
    assert_int_equal(m->gaps, 0);
}

/*
 * The pinned encoder stops: past --stream-timeout the output goes back to a at the aligned
 * point; the pin stays, and when b sends again (same session) the output returns to it.
 */
static void test_pin_stream_stops(void **state)
{
    double t;
    struct emount *m = both_aligned(&t);
    assert_int_equal(merge_pin(&E, m, "b"), FC_OK);
    double t_pin = run_until(t + 5, active_is_b);
    assert_true(active_is_b());
    run_until(t_pin + 5, NULL);
    const double stop = E.test_now + 1, resume = stop + 10;
    B.stop_s = stop;
    B.resume_s = resume;
    double t_a = run_until(resume - 0.5, active_is_a);
    assert_true(active_is_a());
    assert_true(t_a >= stop + E.opt.stream_timeout_s - NET_DELAY_S - 0.05);
    assert_true(t_a <= stop + E.opt.stream_timeout_s + 0.5);
    assert_string_equal(m->pinned, "b"); /* still pinned */
    run_until(resume - 0.1, NULL);
    read_output();
    check_continuous(0);
    check_seqs();
    assert_int_equal(encoder_changes(), 2); /* a ... b ... a */
    assert_int_equal(out[n_out - 1].enc, 'a');
    assert_true(out[n_out - 1].content + 40 >= A.next_k); /* a carried on during the outage */

    /* b is back: it is pinned, so it feeds the output again (no --failback-after wait) */
    double t_b = run_until(resume + 5, active_is_b);
    assert_true(active_is_b());
    run_until(t_b + 3, NULL);
    read_output();
    check_continuous(0);
    check_seqs();
    assert_int_equal(encoder_changes(), 3);
    assert_int_equal(m->lost, 0);
    assert_int_equal(m->gaps, 0);
}

/* Pinning an encoder the mount has no stream of: FC_PROTO, the pin (none, or b) unchanged and
 * the output undisturbed. Pinning the active encoder changes nothing either. */
static void test_pin_unknown_encoder(void **state)
{
    double t;
    struct emount *m = both_aligned(&t);
    assert_int_equal(merge_pin(&E, m, "c"), FC_PROTO);
    assert_int_equal(merge_pin(&E, m, "bb"), FC_PROTO); /* no prefix match */
    assert_int_equal(merge_pin(&E, m, "B"), FC_PROTO);
    assert_string_equal(m->pinned, "");
    assert_int_equal(merge_pin(&E, m, "a"), FC_OK); /* already active */
    assert_string_equal(m->pinned, "a");
    run_until(t + 5, active_is_b);
    assert_true(active_is_a());
    assert_int_equal(m->switches, 0);

    assert_int_equal(merge_pin(&E, m, "b"), FC_OK);
    t = run_until(E.test_now + 5, active_is_b);
    assert_true(active_is_b());
    assert_int_equal(merge_pin(&E, m, "zz"), FC_PROTO);
    assert_string_equal(m->pinned, "b");
    run_until(t + 20, active_is_a);
    assert_true(active_is_b());
    read_output();
    check_continuous(0);
    check_seqs();
    assert_int_equal(encoder_changes(), 1);
    assert_int_equal(m->switches, 1);
    assert_int_equal(m->lost, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_sanity, setup, teardown),
        cmocka_unit_test_setup_teardown(test_output_in_order, setup, teardown),
        cmocka_unit_test_setup_teardown(test_patch_from_backup, setup, teardown),
        cmocka_unit_test_setup_teardown(test_failover_and_failback, setup, teardown),
        cmocka_unit_test_setup_teardown(test_start_on_primary, setup, teardown),
        cmocka_unit_test_setup_teardown(test_new_primary_takes_over_when_aligned, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pin_promote_and_release, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pin_stream_stops, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pin_unknown_encoder, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
