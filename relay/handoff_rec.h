/*
 * handoff_rec.h - handoff restart of framecast-relay (docs/architecture.md §4.7), over the control
 * socket of shared/handoff.h: the record format, shared by handoff_send.c (the old relay) and
 * handoff_take.c (the new one). Internal to relay/.
 *
 * The old relay sends, after HO_HELLO, these records (numbered from HO_USER), then HO_END:
 *
 *   RHO_COUNTERS  the relay's counters (struct relay_counters, one u64 each)
 *   RHO_SOCKET    one descriptor: u8 kind; RHO_SOCK_LISTEN adds u8 proto, u8 serve, u32 salen,
 *                 salen bytes of sockaddr, str text (an --ingest / --serve socket, TCP listening
 *                 or UDP, multicast membership included); RHO_SOCK_METRICS adds u32 salen and
 *                 the sockaddr, RHO_SOCK_CONTROL str path
 *   RHO_STREAM    u32 id (0, 1, ... in order), str mount, str encoder, u64 session,
 *                 u32 priority, u64 max_seq, u64 expire_seq, u64 frames, f64 last_rx_age_s,
 *                 u64 dups, u64 stale
 *   RHO_SLOTS     a run of slots of stream `id` (see below): u64 seq, f64 rx_age_s, u8 has_msg,
 *                 then the stored message if has_msg
 *   RHO_PEER      the connection (one descriptor): u32 id (in order), u8 upstream, u8 up,
 *                 u8 connecting, u8 subscribed, u8 all_mounts, str peer, u32 salen, salen bytes
 *                 (an upstream's address), f64 opened_age_s, u32 key_index, u64 frames_in,
 *                 u64 frames_out, 7 x u64 link counters, u32 head_off, u32 n_mounts, str mount...
 *   RHO_PEER_IN   u32 id, then bytes received from the peer and not parsed yet (appended)
 *   RHO_PEER_Q    a run of the peer's unsent messages, in order (head_off bytes of the first
 *                 were written)
 *
 * A run (RHO_SLOTS, RHO_PEER_Q) starts with u32 id, u8 cont. A message is u32 total, u32 n and
 * n bytes (its TCP length prefix included); a message that does not fit the record goes on in
 * the next record of the run, which has cont = 1 and starts with u32 n and n more bytes. Ages
 * are seconds before the sender's ev_now (the receiver subtracts them from its own).
 *
 * The receiver checks every length, count, id and order; anything off is a bad record: HO_FAIL
 * and exit 1, the old relay keeps serving.
 */
#ifndef FC_RELAY_HANDOFF_REC_H
#define FC_RELAY_HANDOFF_REC_H

#include <string.h>
#include "clock.h"
#include "handoff.h"

enum {
    RHO_COUNTERS = HO_USER,
    RHO_SOCKET,
    RHO_STREAM,
    RHO_SLOTS,
    RHO_PEER,
    RHO_PEER_IN,
    RHO_PEER_Q,
};

enum { RHO_SOCK_LISTEN = 1, RHO_SOCK_METRICS, RHO_SOCK_CONTROL };

#define HO_PATH_MAX 108 /* sockaddr_un.sun_path */

#define RHO_RUN_HEAD 5      /* u32 id, u8 cont */
#define RHO_MSG_HEAD 8      /* u32 total, u32 n */
#define RHO_SLOT_HEAD 17    /* u64 seq, f64 rx_age_s, u8 has_msg */
#define RHO_MAX_PEERS 65536 /* peers taken over, at most (the unit's LimitNOFILE) */
#define RHO_MAX_AGE_S 1e7   /* ages are clamped to this: a bad one cannot make rx 0 */
/* The old relay's loop stands still while it serves a takeover, and its peers declare a link
 * dead after LINK_DEAD_S (3 s) of silence: so its waits are bounded well below that (not by
 * HANDOFF_TIMEOUT_S), and a takeover that fails costs peers at most a pause. */
#define RHO_HELLO_WAIT_S 0.5 /* for HO_HELLO once readable (shared/ho_accept.c waited) */
#define RHO_SEND_MAX_S 1.5   /* for sending the whole state */
#define RHO_READY_WAIT_S 1.0 /* for HO_READY after HO_END */
#define RHO_READY_WITHIN_S (RHO_READY_WAIT_S / 2) /* see relay_takeover_confirm() */

/* Environment variable of the failure test hook (tests/integration/relay_handoff.sh only). */
#define RHO_TEST_DIE_ENV "FC_TEST_HANDOFF_DIE"

static inline double mono_s(void)
{
    return (double)clock_mono_us() / 1e6;
}

#define RHO_FAIL_SEND_S 0.1 /* best effort: the peer learns of a failure from the close too */

/* Tell the other side the handoff is off (`why`, text), best effort. */
static inline void send_fail(int fd, const char *why)
{
    handoff_send(fd, HO_FAIL, why, strlen(why), NULL, 0, RHO_FAIL_SEND_S);
}

#endif
