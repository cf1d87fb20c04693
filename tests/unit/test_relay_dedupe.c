/*
 * test_relay_dedupe.c - unit tests for the relay's per-stream dedupe ring and catch-up window
 * (relay/streams.c, docs/architecture.md §4.2). streams.c is included whole; rpeer_wants() and
 * rpeer_send_frame() live in relay/peers.c, which is not linked, so they are stubbed here: the
 * stub records every frame queued to a peer. relay_frame_in() forwards raw message bytes
 * verbatim, so each "raw message" here is just 16 bytes carrying the frame's seq and session.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "../../relay/streams.c"

#define RAW_LEN 16
#define SENT_MAX 20000
#define MOUNT "capital"

/* ---- stubs for relay/peers.c ---- */

struct sent {
    struct rpeer *p;
    uint64_t seq;
    uint64_t session;
};

static struct sent sent[SENT_MAX];
static size_t n_sent;
static size_t close_after = SIZE_MAX; /* the stub marks a peer closing after this many sends */

bool rpeer_wants(const struct rpeer *p, const char *mount)
{
    if (p->all_mounts)
        return true;
    for (uint32_t i = 0; i < p->n_mounts; i++)
        if (strcmp(p->mounts[i], mount) == 0)
            return true;
    return false;
}

static uint64_t get_le64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = v << 8 | p[i];
    return v;
}

void rpeer_send_frame(struct rpeer *p, struct msgref *m)
{
    assert_non_null(m);
    assert_true(m->refs >= 1);
    assert_int_equal(m->len, WIRE_LEN_BYTES + RAW_LEN);
    /* The TCP length prefix, big-endian, then the raw bytes. */
    assert_int_equal(m->data[0], 0);
    assert_int_equal(m->data[1], 0);
    assert_int_equal(m->data[2], 0);
    assert_int_equal(m->data[3], RAW_LEN);
    assert_true(n_sent < SENT_MAX);
    sent[n_sent].p = p;
    sent[n_sent].seq = get_le64(m->data + WIRE_LEN_BYTES);
    sent[n_sent].session = get_le64(m->data + WIRE_LEN_BYTES + 8);
    n_sent++;
    p->frames_out++;
    if (n_sent >= close_after)
        p->closing = true;
}

/* ---- fixture ---- */

static struct relay relay;
static struct rpeer peers[4];
static char sub_mounts[1][WIRE_MOUNT_MAX + 1] = {"other"};
static struct wire_subscribe sub;

static int setup(void **state)
{
    setenv("FC_LOG_LEVEL", "error", 1);
    memset(&relay, 0, sizeof(relay));
    memset(peers, 0, sizeof(peers));
    relay.loop = ev_default_loop(0);
    if (!relay.loop)
        return -1;
    ev_now_update(relay.loop);
    log_init(&relay.log, "relay", false);
    relay.opt.max_skew_s = 60;
    relay.opt.catchup_s = 30;
    n_sent = 0;
    close_after = SIZE_MAX;
    memset(&sub, 0, sizeof(sub));
    return 0;
}

static int teardown(void **state)
{
    relay_streams_free(&relay);
    return 0;
}

/* Peers: 0 = subscribed to all, 1 = subscribed to "other" only, 2 = not subscribed,
 * 3 = subscribed to all but closing. Linked in that order. */
static void add_peers(void)
{
    for (int i = 0; i < 4; i++) {
        peers[i].relay = &relay;
        snprintf(peers[i].link.peer, sizeof(peers[i].link.peer), "10.0.0.%d:9001", i + 1);
        peers[i].next = i < 3 ? &peers[i + 1] : NULL;
    }
    peers[0].subscribed = peers[0].all_mounts = true;
    peers[1].subscribed = true;
    peers[1].n_mounts = 1;
    peers[1].mounts = sub_mounts;
    peers[3].subscribed = peers[3].all_mounts = true;
    peers[3].closing = true;
    relay.peers = &peers[0];
}

static void make_frame(struct wire_frame *f, const char *mount, uint64_t session, uint64_t seq,
                       uint64_t pts_us)
{
    memset(f, 0, sizeof(*f));
    snprintf(f->mount, sizeof(f->mount), "%s", mount);
    strcpy(f->encoder, "a");
    f->session = session;
    f->seq = seq;
    f->pts_us = pts_us;
    f->codec = FC_CODEC_MP3;
    f->sample_rate = 44100;
    f->channels = 2;
    f->samples = 1152;
}

/* Feed one frame with pts = now (plus `pts_off_us`), from `from`. */
static void feed_from(const char *mount, uint64_t session, uint64_t seq, int64_t pts_off_us,
                      struct rpeer *from)
{
    struct wire_frame f;
    make_frame(&f, mount, session, seq, (uint64_t)((int64_t)clock_wall_us() + pts_off_us));
    uint8_t raw[RAW_LEN];
    for (int i = 0; i < 8; i++) {
        raw[i] = (uint8_t)(seq >> (8 * i));
        raw[8 + i] = (uint8_t)(session >> (8 * i));
    }
    relay_frame_in(&relay, &f, raw, sizeof(raw), from, from ? from->link.peer : "udp");
}

static void feed(uint64_t session, uint64_t seq)
{
    feed_from(MOUNT, session, seq, 0, NULL);
}

static struct rstream *stream_of(const char *mount, uint64_t session)
{
    for (struct rstream *s = relay.streams; s; s = s->next)
        if (strcmp(s->mount, mount) == 0 && s->session == session)
            return s;
    return NULL;
}

static struct rslot *slot_of(struct rstream *s, uint64_t seq)
{
    return &s->ring[seq & (RELAY_RING - 1)];
}

/* ---- tests ---- */

static void test_first_copy_accepted(void **state)
{
    add_peers();
    feed(1, 0);
    assert_int_equal(relay.c.frames_in, 1);
    assert_int_equal(relay.c.frames_fwd, 1);
    assert_int_equal(relay.n_streams, 1);
    struct rstream *s = stream_of(MOUNT, 1);
    assert_non_null(s);
    assert_string_equal(s->encoder, "a");
    assert_int_equal(s->frames, 1);
    assert_int_equal(s->max_seq, 0);
    struct rslot *slot = slot_of(s, 0);
    assert_non_null(slot->m);
    assert_int_equal(slot->seq, 0);
    assert_true(slot->rx > 0);
    /* Only the peer subscribed to the mount and not closing got it. */
    assert_int_equal(n_sent, 1);
    assert_ptr_equal(sent[0].p, &peers[0]);
    assert_int_equal(sent[0].seq, 0);
    assert_int_equal(sent[0].session, 1);

    /* Frames arriving from a subscriber are not echoed back to it. */
    feed_from(MOUNT, 1, 1, 0, &peers[0]);
    assert_int_equal(relay.c.frames_fwd, 2);
    assert_int_equal(n_sent, 1);
    /* A subscriber to "other" gets frames of "other" only. */
    feed_from("other", 9, 0, 0, NULL);
    assert_int_equal(n_sent, 3);
    assert_ptr_equal(sent[1].p, &peers[0]);
    assert_ptr_equal(sent[2].p, &peers[1]);
    assert_int_equal(sent[2].session, 9);
    assert_int_equal(relay.n_streams, 2);
}

static void test_duplicate(void **state)
{
    add_peers();
    feed(1, 0);
    feed(1, 1);
    assert_int_equal(n_sent, 2);
    feed(1, 1);
    feed(1, 0);
    feed_from(MOUNT, 1, 0, 0, &peers[0]); /* another path */
    assert_int_equal(relay.c.frames_in, 5);
    assert_int_equal(relay.c.frames_fwd, 2);
    assert_int_equal(relay.c.dups, 3);
    assert_int_equal(stream_of(MOUNT, 1)->dups, 3);
    assert_int_equal(relay.c.stale, 0);
    assert_int_equal(n_sent, 2);
    /* Out of order but new: accepted once. */
    feed(1, 5);
    feed(1, 3);
    feed(1, 5);
    assert_int_equal(relay.c.frames_fwd, 4);
    assert_int_equal(relay.c.dups, 4);
    assert_int_equal(stream_of(MOUNT, 1)->max_seq, 5);
    /* Same seq, another session: a different stream, not a duplicate. */
    feed(2, 5);
    assert_int_equal(relay.c.frames_fwd, 5);
    assert_int_equal(relay.n_streams, 2);
}

/* A seq a whole ring (or more) behind the newest is stale; one less than a ring is not. */
static void test_stale_behind_ring(void **state)
{
    feed(1, 0);
    uint64_t max = 3 * RELAY_RING + 100;
    feed(1, max);
    assert_int_equal(relay.c.frames_fwd, 2);
    feed(1, max - RELAY_RING); /* exactly a ring behind */
    assert_int_equal(relay.c.stale, 1);
    feed(1, 5);
    assert_int_equal(relay.c.stale, 2);
    assert_int_equal(stream_of(MOUNT, 1)->stale, 2);
    feed(1, max - RELAY_RING + 1); /* just inside */
    assert_int_equal(relay.c.stale, 2);
    assert_int_equal(relay.c.frames_fwd, 3);
    assert_int_equal(relay.c.dups, 0);
}

/* The slot holds a newer seq: an older one mapping to it is stale, not new, not a duplicate. */
static void test_stale_slot_newer(void **state)
{
    feed(1, 7);
    feed(1, 7 + RELAY_RING);
    struct rstream *s = stream_of(MOUNT, 1);
    assert_int_equal(slot_of(s, 7)->seq, 7 + RELAY_RING);
    feed(1, 7);
    assert_int_equal(relay.c.stale, 1);
    assert_int_equal(relay.c.dups, 0);
    assert_int_equal(relay.c.frames_fwd, 2);
    assert_int_equal(slot_of(s, 7)->seq, 7 + RELAY_RING);
    /* Even after its message expired, the slot's seq still judges. */
    slot_of(s, 7)->rx -= relay.opt.catchup_s + 1;
    relay_expire(&relay);
    assert_null(slot_of(s, 7)->m);
    feed(1, 7);
    assert_int_equal(relay.c.stale, 2);
    feed(1, 7 + RELAY_RING);
    assert_int_equal(relay.c.dups, 1);
}

static void test_skew(void **state)
{
    add_peers();
    int64_t skew_us = (int64_t)(relay.opt.max_skew_s * 1e6);
    /* A new stream whose first frame is outside ±max_skew is not even created. */
    feed_from(MOUNT, 1, 0, -skew_us - 1000000, NULL);
    feed_from(MOUNT, 1, 0, skew_us + 1000000, NULL);
    assert_int_equal(relay.c.skew_drops, 2);
    assert_int_equal(relay.n_streams, 0);
    assert_int_equal(relay.c.frames_fwd, 0);
    /* Inside the window (with margin for the clock moving during the test): accepted. */
    feed_from(MOUNT, 1, 0, -skew_us + 1000000, NULL);
    feed_from(MOUNT, 1, 1, skew_us - 1000000, NULL);
    assert_int_equal(relay.c.frames_fwd, 2);
    /* An existing stream: a skewed frame is dropped and its seq stays free. */
    feed_from(MOUNT, 1, 2, -skew_us - 1000000, NULL);
    assert_int_equal(relay.c.skew_drops, 3);
    assert_int_equal(relay.c.frames_fwd, 2);
    assert_null(slot_of(stream_of(MOUNT, 1), 2)->m);
    feed(1, 2);
    assert_int_equal(relay.c.frames_fwd, 3);
    assert_int_equal(n_sent, 3);
    /* A skewed replay of an accepted seq is a duplicate first. */
    feed_from(MOUNT, 1, 2, skew_us + 1000000, NULL);
    assert_int_equal(relay.c.dups, 1);
    assert_int_equal(relay.c.skew_drops, 3);
}

/* RELAY_MAX_SESSIONS_PER_MOUNT sessions for one mount; the next is refused. */
static void test_session_flood(void **state)
{
    for (uint64_t i = 0; i < RELAY_MAX_SESSIONS_PER_MOUNT; i++)
        feed(100 + i, 0);
    assert_int_equal(relay.n_streams, RELAY_MAX_SESSIONS_PER_MOUNT);
    assert_int_equal(relay.c.session_drops, 0);
    feed(999, 0);
    assert_int_equal(relay.c.session_drops, 1);
    assert_int_equal(relay.n_streams, RELAY_MAX_SESSIONS_PER_MOUNT);
    assert_null(stream_of(MOUNT, 999));
    feed(999, 1);
    assert_int_equal(relay.c.session_drops, 2);
    /* Existing sessions go on; another mount is not affected. */
    feed(100, 1);
    feed(115, 1);
    assert_int_equal(relay.c.frames_fwd, RELAY_MAX_SESSIONS_PER_MOUNT + 2);
    feed_from("other", 999, 0, 0, NULL);
    assert_int_equal(relay.n_streams, RELAY_MAX_SESSIONS_PER_MOUNT + 1);
    assert_int_equal(relay.c.session_drops, 2);
    /* Once an idle session expires, a new one is let in. */
    struct rstream *s = stream_of(MOUNT, 105);
    s->last_rx -= relay.opt.catchup_s + 61;
    relay_expire(&relay);
    assert_null(stream_of(MOUNT, 105));
    feed(999, 2);
    assert_non_null(stream_of(MOUNT, 999));
    assert_int_equal(relay.c.session_drops, 2);
}

static void expect_sent_run(size_t from, struct rpeer *p, uint64_t session, uint64_t lo,
                            uint64_t hi)
{
    assert_int_equal(n_sent - from, hi - lo + 1);
    for (uint64_t seq = lo; seq <= hi; seq++) {
        const struct sent *e = &sent[from + (seq - lo)];
        assert_ptr_equal(e->p, p);
        assert_int_equal(e->session, session);
        assert_int_equal(e->seq, seq);
    }
}

static void subscribe_resume(uint64_t session, uint64_t next_seq)
{
    uint32_t i = sub.n_resume++;
    strcpy(sub.resume[i].mount, MOUNT);
    strcpy(sub.resume[i].encoder, "a");
    sub.resume[i].session = session;
    sub.resume[i].next_seq = next_seq;
}

/* A SUBSCRIBE with resume gets every frame after next_seq, in seq order, whatever order
 * they arrived in. */
static void test_catchup_resume(void **state)
{
    for (uint64_t seq = 0; seq < 100; seq++)
        feed(1, seq ^ 1); /* pairs swapped */
    assert_int_equal(relay.c.frames_fwd, 100);
    struct rpeer p = {.relay = &relay, .subscribed = true, .all_mounts = true};
    strcpy(p.link.peer, "edge:1");

    subscribe_resume(1, 40);
    size_t from = n_sent;
    relay_catchup(&relay, &p, &sub);
    expect_sent_run(from, &p, 1, 40, 99);

    /* No resume entry for this stream: everything in the window. */
    memset(&sub, 0, sizeof(sub));
    from = n_sent;
    relay_catchup(&relay, &p, &sub);
    expect_sent_run(from, &p, 1, 0, 99);

    /* A resume for another session of the mount does not apply. */
    subscribe_resume(2, 50);
    from = n_sent;
    relay_catchup(&relay, &p, &sub);
    expect_sent_run(from, &p, 1, 0, 99);

    /* Caught up already: nothing; resume at the newest: one frame. */
    memset(&sub, 0, sizeof(sub));
    subscribe_resume(1, 100);
    from = n_sent;
    relay_catchup(&relay, &p, &sub);
    assert_int_equal(n_sent, from);
    sub.resume[0].next_seq = 99;
    relay_catchup(&relay, &p, &sub);
    expect_sent_run(from, &p, 1, 99, 99);

    /* A peer that does not want the mount gets nothing. */
    struct rpeer q = {.relay = &relay, .subscribed = true, .n_mounts = 1, .mounts = sub_mounts};
    strcpy(q.link.peer, "edge:2");
    from = n_sent;
    sub.resume[0].next_seq = 0;
    relay_catchup(&relay, &q, &sub);
    assert_int_equal(n_sent, from);
}

/* Gaps are skipped; only frames within --catchup are sent; the ring bounds how far back. */
static void test_catchup_window(void **state)
{
    struct rpeer p = {.relay = &relay, .subscribed = true, .all_mounts = true};
    strcpy(p.link.peer, "edge:1");
    for (uint64_t seq = 0; seq < 60; seq++)
        if (seq != 45 && seq != 46)
            feed(1, seq);
    struct rstream *s = stream_of(MOUNT, 1);
    for (uint64_t seq = 0; seq < 50; seq++)
        if (slot_of(s, seq)->m)
            slot_of(s, seq)->rx -= relay.opt.catchup_s + 1; /* older than --catchup */
    subscribe_resume(1, 40);
    size_t from = n_sent;
    relay_catchup(&relay, &p, &sub);
    expect_sent_run(from, &p, 1, 50, 59);

    /* More than a ring of frames: at most the last RELAY_RING seqs are candidates. */
    for (uint64_t seq = 60; seq < RELAY_RING + 200; seq++)
        feed(1, seq);
    sub.resume[0].next_seq = 0;
    from = n_sent;
    relay_catchup(&relay, &p, &sub);
    expect_sent_run(from, &p, 1, 200, RELAY_RING + 199);
}

/* Catch-up stops as soon as the peer is closed (e.g. by the backlog cap). */
static void test_catchup_stops_on_close(void **state)
{
    for (uint64_t seq = 0; seq < 100; seq++)
        feed(1, seq);
    feed(2, 0);
    struct rpeer p = {.relay = &relay, .subscribed = true, .all_mounts = true};
    strcpy(p.link.peer, "edge:1");
    size_t from = n_sent;
    close_after = from + 10;
    relay_catchup(&relay, &p, &sub);
    assert_int_equal(n_sent - from, 10);
    assert_true(p.closing);
}

/* Several streams: each gets its own resume point. */
static void test_catchup_streams(void **state)
{
    for (uint64_t seq = 0; seq < 30; seq++) {
        feed(1, seq);
        feed(2, seq);
    }
    subscribe_resume(1, 10);
    subscribe_resume(2, 25);
    struct rpeer p = {.relay = &relay, .subscribed = true, .all_mounts = true};
    strcpy(p.link.peer, "edge:1");
    size_t from = n_sent;
    relay_catchup(&relay, &p, &sub);
    assert_int_equal(n_sent - from, 20 + 5);
    size_t n1 = 0, n2 = 0;
    uint64_t last1 = 9, last2 = 24;
    for (size_t i = from; i < n_sent; i++) {
        if (sent[i].session == 1) {
            assert_int_equal(sent[i].seq, last1 + 1);
            last1 = sent[i].seq;
            n1++;
        } else {
            assert_int_equal(sent[i].session, 2);
            assert_int_equal(sent[i].seq, last2 + 1);
            last2 = sent[i].seq;
            n2++;
        }
    }
    assert_int_equal(n1, 20);
    assert_int_equal(n2, 5);
}

/* relay_expire drops messages older than --catchup (keeping their seq for dedupe) and streams
 * idle for longer than --catchup + 60 s. */
static void test_expire(void **state)
{
    for (uint64_t seq = 0; seq < 20; seq++)
        feed(1, seq);
    feed(2, 0);
    struct rstream *s = stream_of(MOUNT, 1);
    for (uint64_t seq = 0; seq < 10; seq++)
        slot_of(s, seq)->rx -= relay.opt.catchup_s + 0.5;
    relay_expire(&relay);
    for (uint64_t seq = 0; seq < 20; seq++) {
        struct rslot *slot = slot_of(s, seq);
        assert_int_equal(slot->seq, seq);
        assert_true(slot->rx != 0);
        if (seq < 10)
            assert_null(slot->m);
        else
            assert_non_null(slot->m);
    }
    assert_int_equal(relay.n_streams, 2);
    /* A late copy of an expired frame is still a duplicate. */
    feed(1, 3);
    assert_int_equal(relay.c.dups, 1);
    assert_int_equal(relay.c.frames_fwd, 21);
    /* Catch-up now starts after the expired ones. */
    struct rpeer p = {.relay = &relay, .subscribed = true, .all_mounts = true};
    strcpy(p.link.peer, "edge:1");
    subscribe_resume(1, 0);
    size_t from = n_sent;
    relay_catchup(&relay, &p, &sub);
    size_t n = 0;
    for (size_t i = from; i < n_sent; i++)
        if (sent[i].session == 1)
            assert_int_equal(sent[i].seq, 10 + n++);
    assert_int_equal(n, 10);

    /* Idle, but not long enough: kept. Long enough: gone, with all its messages (ASan). */
    s->last_rx -= relay.opt.catchup_s + 59;
    relay_expire(&relay);
    assert_non_null(stream_of(MOUNT, 1));
    s->last_rx -= 2;
    relay_expire(&relay);
    assert_null(stream_of(MOUNT, 1));
    assert_non_null(stream_of(MOUNT, 2));
    assert_int_equal(relay.n_streams, 1);
    /* The session may come back (as new: its dedupe state is gone). */
    feed(1, 20);
    assert_non_null(stream_of(MOUNT, 1));
    assert_int_equal(relay.n_streams, 2);
}

/* Slots are reused around the ring: every accepted message is released exactly once (ASan),
 * and each slot ends up holding the newest seq that maps to it. */
static void test_ring_reuse(void **state)
{
    for (uint64_t seq = 0; seq < 3 * RELAY_RING; seq++)
        feed(1, seq);
    assert_int_equal(relay.c.frames_fwd, 3 * RELAY_RING);
    assert_int_equal(relay.c.stale, 0);
    struct rstream *s = stream_of(MOUNT, 1);
    assert_int_equal(s->max_seq, 3 * RELAY_RING - 1);
    for (uint64_t i = 0; i < RELAY_RING; i++) {
        assert_int_equal(s->ring[i].seq, 2 * RELAY_RING + i);
        assert_non_null(s->ring[i].m);
    }
    /* Copies of every seq still in the ring are duplicates; anything older is stale. */
    feed(1, 2 * RELAY_RING);
    feed(1, 3 * RELAY_RING - 1);
    feed(1, 2 * RELAY_RING - 1);
    feed(1, 0);
    assert_int_equal(relay.c.dups, 2);
    assert_int_equal(relay.c.stale, 2);
}

/*
 * BUG (low severity, not in the suite): classify() tests `seq + RELAY_RING <= s->max_seq`,
 * which wraps for seq > UINT64_MAX - RELAY_RING (wire_decode accepts seq up to UINT64_MAX - 1).
 * Input: a stream whose first frame is seq UINT64_MAX - 1, then seq UINT64_MAX - 2 (one behind,
 * slot free). Expected SEQ_NEW (accepted); actual SEQ_STALE. `s->max_seq - seq >= RELAY_RING`
 * would not wrap. Real seqs count from 0 and never get near, so only a broken shim hits it.
 */
static void test_regress_seq_near_u64_max(void **state)
{
    feed(1, UINT64_MAX - 1);
    assert_int_equal(relay.c.frames_fwd, 1);
    feed(1, UINT64_MAX - 2);
    assert_int_equal(relay.c.stale, 0);      /* actual: 1 */
    assert_int_equal(relay.c.frames_fwd, 2); /* actual: 1 */
}

/* Age every held message of `s` past --catchup. */
static void age_all(struct rstream *s)
{
    for (uint32_t i = 0; i < RELAY_RING; i++)
        if (s->ring[i].m)
            s->ring[i].rx -= relay.opt.catchup_s + 1;
}

static size_t held(const struct rstream *s)
{
    size_t n = 0;
    for (uint32_t i = 0; i < RELAY_RING; i++)
        n += s->ring[i].m != NULL;
    return n;
}

/* relay_expire walks up from the oldest held seq (issue 9) rather than scanning every slot:
 * frames that arrived out of order, below the walk's start, or before a seq leap still expire. */
static void test_expire_walk(void **state)
{
    /* Out of order: 10 and 11 arrive after 12. */
    for (uint64_t seq = 0; seq < 10; seq++)
        feed(1, seq);
    feed(1, 12);
    feed(1, 10);
    feed(1, 11);
    struct rstream *s = stream_of(MOUNT, 1);
    assert_int_equal(held(s), 13);
    age_all(s);
    relay_expire(&relay);
    assert_int_equal(held(s), 0);

    /* Only the oldest half expired: the walk stops at the first live one and keeps the rest. */
    for (uint64_t seq = 20; seq < 30; seq++)
        feed(1, seq);
    for (uint64_t seq = 20; seq < 25; seq++)
        slot_of(s, seq)->rx -= relay.opt.catchup_s + 1;
    relay_expire(&relay);
    assert_int_equal(held(s), 5);
    assert_null(slot_of(s, 24)->m);
    assert_non_null(slot_of(s, 25)->m);
    /* A late frame below where the walk stopped (never seen, so new) still expires. */
    feed(1, 15);
    assert_non_null(slot_of(s, 15)->m);
    age_all(s);
    relay_expire(&relay);
    assert_int_equal(held(s), 0);

    /* A seq leap of more than a ring: frames below the new window expire too. */
    for (uint64_t seq = 40; seq < 45; seq++)
        feed(1, seq);
    feed(1, 45 + 3 * RELAY_RING);
    assert_int_equal(held(s), 6);
    age_all(s);
    relay_expire(&relay);
    assert_int_equal(held(s), 0);
    assert_int_equal(relay.c.frames_fwd, 13 + 10 + 1 + 6);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_first_copy_accepted, setup, teardown),
        cmocka_unit_test_setup_teardown(test_duplicate, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stale_behind_ring, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stale_slot_newer, setup, teardown),
        cmocka_unit_test_setup_teardown(test_skew, setup, teardown),
        cmocka_unit_test_setup_teardown(test_session_flood, setup, teardown),
        cmocka_unit_test_setup_teardown(test_catchup_resume, setup, teardown),
        cmocka_unit_test_setup_teardown(test_catchup_window, setup, teardown),
        cmocka_unit_test_setup_teardown(test_catchup_stops_on_close, setup, teardown),
        cmocka_unit_test_setup_teardown(test_catchup_streams, setup, teardown),
        cmocka_unit_test_setup_teardown(test_expire, setup, teardown),
        cmocka_unit_test_setup_teardown(test_expire_walk, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ring_reuse, setup, teardown),
        cmocka_unit_test_setup_teardown(test_regress_seq_near_u64_max, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
