/*
 * test_pull.c - unit tests for the shim's --pull burst handling (encoder-shim/pull.c with
 * publish.c and stamp.c), on a fake clock.
 *
 * A simulated Icecast server produces a 128 kbit/s MP3 stream in real time (417-byte frames of
 * 1152 samples at 44.1 kHz, each carrying its index k). On connect it sends a burst: the last
 * `burst` bytes it produced (starting mid-frame, as Icecast's burst does), in chunks `gap` apart,
 * then what it produces every RT_PERIOD. The chunks go to pull.c's curl write callback at fake
 * wall-clock times; its flush timer is fired when the fake clock passes its deadline (libev is
 * never run). What the shim sends is captured and decoded (wire_decode) frame by frame.
 *
 * Test seams, both in this file only (no product change): clock_wall_us() is renamed to the
 * fake clock, and send(2) to a capture function, by #define before the shim's sources are
 * included.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <fcntl.h>
#include <sys/types.h>
#include <unistd.h>

static uint64_t fake_now_us;
static uint64_t fake_wall_us(void)
{
    return fake_now_us;
}
static ssize_t fake_send(int fd, const void *buf, size_t len, int flags);

#define clock_wall_us fake_wall_us
#define send fake_send
#include "../../encoder-shim/level.c"
#include "../../encoder-shim/publish.c"
#include "../../encoder-shim/pull.c"
#include "../../encoder-shim/stamp.c"
#undef send
#undef clock_wall_us

#define SAMPLES 1152u
#define RATE 44100u
#define FRAME_LEN 417u            /* 128 kbit/s, 44.1 kHz, no padding */
#define S0_US 1700000000000000ull /* the server's frame 0 starts here (wall clock) */
#define SEC 1000000ull
#define RT_PERIOD_US 100000ull /* the server writes what it has every 100 ms */
#define BURST_BYTES 65536u     /* Icecast's default burst-size */
#define MAX_SENT 8192

/* ---- the capture of what the shim sends ---- */

struct sent {
    uint64_t k; /* server frame index in the payload */
    uint64_t seq;
    uint64_t pts_us;
    uint64_t at_us; /* fake wall clock when it was sent */
};

static struct sent sent[MAX_SENT];
static size_t n_sent;
static struct wire_decoder dec;
static struct shim S;
static struct framer framer;
static struct ev_loop *loop;

static ssize_t fake_send(int fd, const void *buf, size_t len, int flags)
{
    struct wire_msg msg;
    const char *why = "";
    enum fc_err err = wire_decode(&dec, &S.keys, buf, len, &msg, &why);
    if (err != FC_OK)
        fail_msg("the shim sent an undecodable message: %s", why);
    assert_int_equal(msg.type, WIRE_FRAME);
    const struct wire_frame *f = &msg.u.frame;
    assert_int_equal(f->payload_len, FRAME_LEN);
    assert_int_equal(f->samples, SAMPLES);
    assert_true(n_sent < MAX_SENT);
    struct sent *s = &sent[n_sent++];
    memcpy(&s->k, f->payload + 6, sizeof(s->k));
    s->seq = f->seq;
    s->pts_us = f->pts_us;
    s->at_us = fake_now_us;
    return (ssize_t)len;
}

/* ---- the server ---- */

static uint64_t frame_us(void)
{
    return clock_samples_to_us(SAMPLES, RATE);
}

/* Bytes of whole frames the server has produced by wall time `w`. */
static uint64_t produced(uint64_t w)
{
    return (w - S0_US) * RATE / (SAMPLES * SEC) * FRAME_LEN;
}

/* Byte `pos` of the server's stream: frame pos / FRAME_LEN, with its index in bytes 6..13. */
static uint8_t stream_byte(uint64_t pos)
{
    uint64_t k = pos / FRAME_LEN, i = pos % FRAME_LEN;
    static const uint8_t head[6] = {0xFF, 0xFB, 0x90, 0x64, 0, 0}; /* main_data_begin 0 */
    if (i < 6)
        return head[i];
    if (i < 14)
        return (uint8_t)(k >> (8 * (i - 6)));
    return (uint8_t)((k * 7 + i) % 251); /* never 0xFF: no false sync words */
}

static uint64_t srv_pos;        /* next byte the server sends on this connection */
static uint64_t chunk_at[4096]; /* fake times of the write callbacks */
static size_t n_chunks;
static uint64_t flush_at; /* fake time the shim's flush timer fires, 0 = not armed */

/* Advance the fake clock to `t`, firing the flush timer on the way if it is due. */
static void advance_to(uint64_t t)
{
    if (flush_at && flush_at <= t) {
        fake_now_us = flush_at;
        flush_at = 0;
        ev_timer_stop(loop, &S.pull_flush);
        on_pull_flush(loop, &S.pull_flush, 0);
    }
    fake_now_us = t;
}

/* Deliver bytes [srv_pos, to) as one write callback at fake time `t`. */
static void deliver(uint64_t t, uint64_t to)
{
    static uint8_t buf[BURST_BYTES * 4];
    advance_to(t);
    if (to <= srv_pos)
        return;
    assert_true(to - srv_pos <= sizeof(buf));
    size_t n = 0;
    for (uint64_t p = srv_pos; p < to; p++)
        buf[n++] = stream_byte(p);
    srv_pos = to;
    assert_true(n_chunks < FC_ARRAY_LEN(chunk_at));
    chunk_at[n_chunks++] = t;
    assert_int_equal(write_cb((char *)buf, 1, n, &S), n);
    /* The loop never runs: the timer's deadline is read off the watcher (libev's clock stands
     * still, so the remaining time is the delay write_cb set). */
    flush_at = ev_is_active(&S.pull_flush)
                   ? fake_now_us + (uint64_t)llround(ev_timer_remaining(loop, &S.pull_flush) * 1e6)
                   : 0;
}

/* A connection at wall time `w`: headers, then `burst` bytes (ending at what the server has)
 * in chunks of `chunk` bytes `gap_us` apart. Returns the fake time of the last chunk. */
static uint64_t connect_burst(uint64_t w, uint64_t burst, uint64_t chunk, uint64_t gap_us)
{
    const char *ct = "Content-Type: audio/mpeg\r\n";
    advance_to(w);
    header_cb((char *)ct, 1, strlen(ct), &S);
    uint64_t end = produced(w);
    srv_pos = end > burst ? end - burst : 0;
    uint64_t t = w;
    while (srv_pos < end) {
        deliver(t, srv_pos + chunk < end ? srv_pos + chunk : end);
        t += gap_us;
    }
    return t - gap_us;
}

/* Real time from the current position until wall time `until`: every RT_PERIOD_US, what the
 * server produced since. */
static void real_time(uint64_t until)
{
    uint64_t t = fake_now_us;
    while (t + RT_PERIOD_US <= until) {
        t += RT_PERIOD_US;
        deliver(t, produced(t));
    }
    advance_to(until);
}

/* The connection ends at wall time `w` (pull.c's on_pull_done) and the next one is made. */
static void disconnect(uint64_t w)
{
    advance_to(w);
    on_pull_done(&S.http, S.easy, CURLE_RECV_ERROR);
    flush_at = 0;
    assert_null(S.easy);
    assert_true(ev_is_active(&S.pull_retry));
    ev_timer_stop(loop, &S.pull_retry);
    pull_connect(&S); /* what the retry timer does */
    assert_non_null(S.easy);
}

/* Index of the first sent frame sent at or after fake time `t`. */
static size_t first_sent_after(uint64_t t)
{
    for (size_t i = 0; i < n_sent; i++)
        if (sent[i].at_us >= t)
            return i;
    return n_sent;
}

/* FC_TEST_DUMP=1: print what was sent (times relative to the test's start). */
static void dump(size_t from, size_t to)
{
    if (!getenv("FC_TEST_DUMP"))
        return;
    for (size_t i = from; i < to && i < n_sent; i++)
        print_message("sent[%zu] k=%llu seq=%llu at=%+.3f ms pts_end=%+.3f ms (true end %+.3f)\n",
                      i, (unsigned long long)sent[i].k, (unsigned long long)sent[i].seq,
                      ((double)sent[i].at_us - (double)(S0_US + 60 * SEC)) / 1e3,
                      ((double)(sent[i].pts_us + frame_us()) - (double)(S0_US + 60 * SEC)) / 1e3,
                      ((double)(S0_US + clock_samples_to_us((sent[i].k + 1) * SAMPLES, RATE)) -
                       (double)(S0_US + 60 * SEC)) /
                          1e3);
}

/* True end of server frame k (when the server had produced it). */
static uint64_t true_end(uint64_t k)
{
    return S0_US + clock_samples_to_us((k + 1) * SAMPLES, RATE);
}

/*
 * PTS over [from, to) only ever advance, and never by more than a frame: within one flush by
 * exactly one frame (26122 or 26123 µs, the sample clock), between flushes by up to one frame
 * (the anchor may be pulled back by less than a frame when a batch shows the audio is older than
 * thought, never so far that a frame starts before the one sent before it).
 */
static void check_pts_continuous(size_t from, size_t to)
{
    for (size_t i = from + 1; i < to; i++) {
        int64_t step = (int64_t)sent[i].pts_us - (int64_t)sent[i - 1].pts_us;
        bool same_flush = sent[i].at_us == sent[i - 1].at_us;
        int64_t min = same_flush ? (int64_t)frame_us() : 1;
        if (step < min || step > (int64_t)frame_us() + 1)
            fail_msg("sent frame %zu (k=%llu): PTS step %lld µs, want %s one frame (%llu)", i,
                     (unsigned long long)sent[i].k, (long long)step,
                     same_flush ? "exactly" : "more than 0, at most",
                     (unsigned long long)frame_us());
    }
}

/* Each frame's PTS says when it ended no earlier than the server produced it (it cannot have)
 * and at most `max_late_us` later. */
static void check_accuracy(size_t from, size_t to, uint64_t max_late_us)
{
    for (size_t i = from; i < to; i++) {
        int64_t late = (int64_t)(sent[i].pts_us + frame_us()) - (int64_t)true_end(sent[i].k);
        if (late < -1 || late > (int64_t)max_late_us)
            fail_msg("sent frame %zu (k=%llu, sent at %+.3f s): PTS %+.3f ms off its true time", i,
                     (unsigned long long)sent[i].k,
                     ((double)sent[i].at_us - (double)(S0_US + 60 * SEC)) / 1e6, late / 1e3);
    }
}

/* Every frame once, in order: server frames consecutive, seqs consecutive. */
static void check_frames_consecutive(size_t from, size_t to)
{
    for (size_t i = from + 1; i < to; i++) {
        if (sent[i].k != sent[i - 1].k + 1)
            fail_msg("sent frame %zu: server frame %llu after %llu", i,
                     (unsigned long long)sent[i].k, (unsigned long long)sent[i - 1].k);
        assert_int_equal(sent[i].seq, sent[i - 1].seq + 1);
    }
}

/* No frame ends after it was sent (it cannot have been heard yet), and none lags by more than
 * `max_lag_us`, over [from, to). */
static void check_causal(size_t from, size_t to, uint64_t max_lag_us)
{
    for (size_t i = from; i < to; i++) {
        uint64_t end = sent[i].pts_us + frame_us();
        if (end > sent[i].at_us + 1)
            fail_msg("sent frame %zu ends %llu µs after it was sent", i,
                     (unsigned long long)(end - sent[i].at_us));
        if (sent[i].at_us - end > max_lag_us)
            fail_msg("sent frame %zu (k=%llu) lags %llu µs", i, (unsigned long long)sent[i].k,
                     (unsigned long long)(sent[i].at_us - end));
    }
}

static int setup(void **state)
{
    assert_int_equal(mac_global_init(), FC_OK);
    memset(&S, 0, sizeof(S));
    n_sent = 0;
    n_chunks = 0;
    flush_at = 0;
    srv_pos = 0;
    fake_now_us = S0_US + 60 * SEC;
    loop = ev_loop_new(EVFLAG_AUTO);
    assert_non_null(loop);
    assert_int_equal(wire_decoder_init(&dec), FC_OK);
    log_init(&S.log, "shim", false);
    if (!getenv("FC_TEST_VERBOSE"))
        S.log.min = LOG_ERROR;
    memset(S.keys.keys[0].k, 0x42, sizeof(S.keys.keys[0].k));
    S.keys.n = 1;
    S.loop = loop;
    S.framer = &framer;
    S.session = 0x5e55;
    strcpy(S.opt.mount, "live");
    strcpy(S.opt.encoder, "a");
    S.opt.pull_url = "http://127.0.0.1:9/live"; /* never contacted: the loop never runs */
    S.opt.codec = FC_CODEC_NONE;
    S.n_targets = 1;
    S.targets[0].shim = &S;
    S.targets[0].udp_fd = open("/dev/null", O_WRONLY); /* send(2) is captured */
    assert_true(S.targets[0].udp_fd >= 0);
    S.src_fd = -1;
    assert_int_equal(shim_pull_start(&S), FC_OK);
    return 0;
}

static int teardown(void **state)
{
    shim_pull_free(&S);
    level_free(&S.meter);
    shim_targets_free(&S);
    wire_decoder_free(&dec);
    ev_loop_destroy(loop);
    return 0;
}

/* ---- tests ---- */

/*
 * A burst on connect in 15 chunks of 10 frames, 1 ms apart (curl hands the shim up to 16 KiB
 * per callback), then real time (a chunk every 100 ms). The chunks are stamped as one batch, in
 * the past (its first frame ~3.9 s before the last chunk); PTS advance one frame at a time
 * through the burst and never step back on into real time; every PTS is within 150 ms of when
 * the server produced the frame, never before it; no frame ends after it was sent. (Stamped
 * chunk by chunk, each later chunk pulled the anchor back and PTS jumped back 234 ms at every
 * chunk: this was test_stamp.c's disabled test_bug_burst_in_chunks. Stamped when its last chunk
 * came, the burst's anchor was late by the burst's transfer time plus the frame the framer
 * holds back, and the first real-time batch pulled it back: PTS stepped back 4.5 ms.)
 */
static void test_burst_in_chunks(void **state)
{
    uint64_t w = fake_now_us;
    /* start the burst on a frame boundary: 150 whole frames */
    uint64_t end = produced(w);
    const char *ct = "Content-Type: audio/mpeg\r\n";
    header_cb((char *)ct, 1, strlen(ct), &S);
    srv_pos = end - 150 * FRAME_LEN;
    for (int c = 0; c < 15; c++)
        deliver(w + (uint64_t)c * 1000, srv_pos + 10 * FRAME_LEN);
    uint64_t last_chunk = w + 14 * 1000;
    real_time(w + 10 * SEC);
    dump(140, 170);
    assert_true(n_sent > 400);
    check_frames_consecutive(0, n_sent);
    check_pts_continuous(0, n_sent);
    check_causal(0, n_sent, UINT64_MAX); /* burst frames lag by seconds */
    check_causal(first_sent_after(fake_now_us - 5 * SEC), n_sent, 250000);
    check_accuracy(0, n_sent, 150000);
    /* The burst (149 frames: the last waits for its successor's header) went out at once, after
     * its last chunk, stamped in the past (~3.9 s before the last chunk at its start). */
    assert_true(sent[0].at_us >= last_chunk);
    for (size_t i = 1; i < 149; i++)
        assert_int_equal(sent[i].at_us, sent[0].at_us);
    assert_int_equal(sent[0].k, end / FRAME_LEN - 150);
    assert_true(last_chunk - sent[0].pts_us > 3800000);
}

/*
 * A slower burst: 64 KiB (4.1 s of audio) in 8 KiB chunks 40 ms apart, i.e. twelve times real
 * time but each chunk further apart than the steady-state coalescing (10 ms). While audio
 * arrives faster than real time the shim keeps collecting, until a chunk comes at real-time
 * pace: one batch, PTS continuous and within 150 ms of the truth. (Flushed 100 ms after the
 * burst's last chunk, before real time resumed, the burst was stamped ~280 ms late and PTS then
 * stepped back 266 ms.)
 */
static void test_slow_burst_coalesced(void **state)
{
    uint64_t w = fake_now_us;
    uint64_t last_chunk = connect_burst(w, BURST_BYTES, 8192, 40000);
    assert_true(last_chunk - w >= 280000);
    real_time(w + 10 * SEC);
    assert_true(n_sent > 400);
    check_frames_consecutive(0, n_sent);
    check_pts_continuous(0, n_sent);
    check_causal(0, n_sent, UINT64_MAX); /* burst frames lag by seconds */
    check_causal(first_sent_after(fake_now_us - 5 * SEC), n_sent, 250000);
    check_accuracy(0, n_sent, 150000);
    /* One batch for the burst: ~156 frames sent together after the last chunk. */
    size_t n_first = 0;
    while (n_first < n_sent && sent[n_first].at_us == sent[0].at_us)
        n_first++;
    assert_true(sent[0].at_us >= last_chunk);
    assert_true(n_first >= BURST_BYTES / FRAME_LEN - 2);
    /* The burst starts mid-frame: the first whole frame is the first sent. */
    assert_int_equal(sent[0].k, (produced(w) - BURST_BYTES) / FRAME_LEN + 1);
}

/*
 * In steady state (one chunk per 100 ms, real time), each chunk is stamped on its own shortly
 * after it came (SHIM_COALESCE_S), not held back like a burst.
 */
static void test_real_time_not_held(void **state)
{
    uint64_t w = fake_now_us;
    connect_burst(w, BURST_BYTES, 16384, 2000);
    real_time(w + 5 * SEC);
    size_t from = first_sent_after(w + 2 * SEC);
    assert_true(n_sent - from > 100);
    for (size_t i = from; i < n_sent; i++) {
        /* sent SHIM_COALESCE_S after the chunk that completed it arrived */
        uint64_t chunk = 0;
        for (size_t c = 0; c < n_chunks && chunk_at[c] <= sent[i].at_us; c++)
            chunk = chunk_at[c];
        assert_int_equal(sent[i].at_us - chunk, (uint64_t)(SHIM_COALESCE_S * 1e6));
    }
    check_causal(from, n_sent, RT_PERIOD_US + frame_us() + 20000);
    check_accuracy(from, n_sent, 150000);
}

/*
 * A reconnect after 1.5 s: the new connection's burst (4.1 s) repeats ~2.6 s the shim already
 * sent. Those frames are skipped (counted), the outage's audio is sent once: server frames
 * consecutive, seqs consecutive, PTS continuous across the reconnect.
 */
static void test_reconnect_skips_repeated_audio(void **state)
{
    uint64_t w = fake_now_us;
    connect_burst(w, BURST_BYTES, 16384, 2000);
    real_time(w + 10 * SEC);
    size_t before = n_sent;
    uint64_t last_k = sent[before - 1].k;
    uint64_t wd = w + 10 * SEC + 30000;
    disconnect(wd);
    uint64_t wr = wd + 1500000;
    uint64_t burst_first_k = (produced(wr) - BURST_BYTES) / FRAME_LEN + 1;
    uint64_t last_chunk = connect_burst(wr, BURST_BYTES, 16384, 2000);
    real_time(wr + 10 * SEC);
    assert_true(n_sent > before + 300);
    check_frames_consecutive(0, n_sent);
    check_pts_continuous(0, n_sent);
    check_causal(0, n_sent, UINT64_MAX); /* burst frames lag by seconds */
    check_causal(first_sent_after(fake_now_us - 5 * SEC), n_sent, 250000);
    check_accuracy(0, n_sent, 150000);
    assert_int_equal(S.frames_skipped, last_k + 1 - burst_first_k);
    assert_true(S.frames_skipped > 80); /* ~2.6 s of repeated audio */
    assert_false(S.resyncing);
    assert_true(sent[before].at_us >= last_chunk);
    assert_int_equal(S.connects, 2);
}

/*
 * A reconnect after 10 s, longer than the burst: nothing repeats (nothing skipped); the audio
 * of the outage never came, so PTS jump forward by what was missed (the stamper re-anchors on a
 * new input), within 30 ms; seqs stay consecutive.
 */
static void test_reconnect_after_long_outage(void **state)
{
    uint64_t w = fake_now_us;
    connect_burst(w, BURST_BYTES, 16384, 2000);
    real_time(w + 10 * SEC);
    size_t before = n_sent;
    uint64_t wd = w + 10 * SEC + 30000;
    disconnect(wd);
    uint64_t wr = wd + 10 * SEC;
    connect_burst(wr, BURST_BYTES, 16384, 2000);
    real_time(wr + 10 * SEC);
    assert_int_equal(S.frames_skipped, 0);
    check_frames_consecutive(0, before);
    check_frames_consecutive(before, n_sent);
    check_pts_continuous(before, n_sent);
    for (size_t i = before; i < n_sent; i++)
        assert_int_equal(sent[i].seq, sent[i - 1].seq + 1);
    uint64_t missed = sent[before].k - sent[before - 1].k - 1;
    assert_true(missed > 150);
    int64_t jump =
        (int64_t)sent[before].pts_us - (int64_t)sent[before - 1].pts_us - (int64_t)frame_us();
    int64_t want = (int64_t)clock_samples_to_us(missed * SAMPLES, RATE);
    if (llabs(jump - want) > 30000)
        fail_msg("PTS jumped %lld µs over %llu missed frames (%lld µs)", (long long)jump,
                 (unsigned long long)missed, (long long)want);
    check_causal(0, n_sent, UINT64_MAX); /* burst frames lag by seconds */
    check_causal(first_sent_after(fake_now_us - 5 * SEC), n_sent, 250000);
    check_accuracy(0, n_sent, 150000);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_burst_in_chunks, setup, teardown),
        cmocka_unit_test_setup_teardown(test_slow_burst_coalesced, setup, teardown),
        cmocka_unit_test_setup_teardown(test_real_time_not_held, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reconnect_skips_repeated_audio, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reconnect_after_long_outage, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
