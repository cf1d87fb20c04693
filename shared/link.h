/*
 * link.h - one TCP connection speaking wire protocol v1 (docs/architecture.md §2.3, §2.4).
 *
 * Shared by the shim (to relays), the relay (accepted peers and --upstream) and the edge (to
 * relays). A link sends HELLO when the connection opens, expects HELLO first, then passes every
 * other verified message to `ops->on_msg`. It sends HEARTBEAT every LINK_HEARTBEAT_S and declares
 * the peer dead after LINK_DEAD_S of silence (a frozen process whose socket stays open).
 * Outbound links reconnect with jittered backoff (100 ms .. 5 s); inbound ones report on_down
 * once and stay closed for their owner to free.
 *
 * Loop rules: all calls on the loop's thread. Callbacks may call link_send(); they must not free
 * the link (mark it and free it later, e.g. from an ev_check watcher).
 */
#ifndef FC_LINK_H
#define FC_LINK_H

#include <ev.h>
#include <stdbool.h>
#include "backoff.h"
#include "log.h"
#include "net.h"
#include "outq.h"
#include "wire.h"

#define LINK_HEARTBEAT_S 1.0 /* docs/architecture.md §2.4 */
#define LINK_DEAD_S 3.0      /* docs/architecture.md §2.4 */
#define LINK_HELLO_S 5.0     /* a connection must bring a verified HELLO within this */
#define LINK_READS_PER_WAKE 16

struct link;

struct link_ops {
    /* A verified message other than HELLO/HEARTBEAT. `raw` is its body + tag (`raw_len` bytes),
     * valid only during the call. */
    void (*on_msg)(struct link *l, const struct wire_msg *msg, const uint8_t *raw, size_t raw_len);
    /* HELLO received: the link is up. May be NULL. */
    void (*on_up)(struct link *l);
    /* The connection closed (`why` says why). Outbound links will retry by themselves. */
    void (*on_down)(struct link *l, const char *why);
    /* Fill a SUBSCRIBE to send after HELLO; NULL = this link does not subscribe. */
    void (*fill_subscribe)(struct link *l, struct wire_subscribe *s);
};

struct link_stats {
    uint64_t msgs_rx;     /* verified messages received */
    uint64_t bad_tags;    /* messages dropped: no key verified the tag */
    uint64_t other_key;   /* verified messages tagged with a key other than our first (a peer
                           * on the other side of a key rotation, docs/architecture.md §2.2) */
    uint64_t bad_msgs;    /* messages dropped: malformed or out-of-range field */
    uint64_t connects;    /* connections made (outbound) */
    uint64_t disconnects; /* connections lost */
    uint64_t queue_drops; /* messages not queued: send queue full */
};

struct link {
    struct ev_loop *loop;        /* borrowed */
    const struct link_ops *ops;  /* borrowed */
    const struct mac_keyring *keys; /* borrowed; first tags what we send, any verifies */
    const struct log *log;       /* borrowed */
    const char *role;            /* our HELLO role, borrowed */
    const char *node;            /* our HELLO node name, borrowed */
    void *owner;                 /* for the callbacks */
    struct net_addr addr;        /* peer (outbound: where we connect) */
    char peer[96];               /* peer address text for logs */
    bool outbound;               /* we connect and reconnect */
    int fd;                      /* -1 when closed */
    bool connecting;             /* connect() in progress */
    bool up;                     /* HELLO received */
    bool stopped;                /* link_stop() called: no reconnects */
    ev_io rio;                   /* readable */
    ev_io wio;                   /* writable; started only while the socket is full */
    ev_prepare flush;            /* started while output is queued: written before the loop
                                  * sleeps, all that this iteration queued in one writev */
    ev_timer retry;              /* reconnect delay (outbound) */
    ev_timer beat;               /* heartbeat and dead-peer check, every LINK_HEARTBEAT_S */
    double last_rx;              /* ev_now of the last byte received */
    double opened_at;            /* ev_now the connection opened */
    struct backoff bo;           /* reconnect delays */
    struct wire_reader *rd;      /* owned, fixed size */
    struct wire_decoder dec;     /* owned */
    struct wire_msg *msg;        /* owned scratch for decoding */
    struct outq q;               /* owned send queue */
    bool keep_queue;             /* outbound: keep queued messages across reconnects */
    struct log_limit ll;         /* rate limit for bad-message logs */
    struct link_stats st;
    bool paused_retry;           /* link_pause() stopped a pending reconnect */
};

/*
 * Set up `l` (no I/O yet). `keys` (borrowed, must outlive the link, at least one key): HELLO,
 * SUBSCRIBE and HEARTBEAT are tagged with the first, messages tagged with any are accepted.
 * `max_msgs`/`max_bytes` cap the send queue (a subscriber past them is disconnected by
 * link_send's caller). FC_NOMEM on allocation failure.
 */
enum fc_err link_init(struct link *l, struct ev_loop *loop, const struct link_ops *ops,
                      const struct mac_keyring *keys, const struct log *log, const char *role,
                      const char *node, uint32_t max_msgs, uint64_t max_bytes);

/* Outbound: start connecting to `addr` now (and forever after, with backoff). */
void link_connect(struct link *l, const struct net_addr *addr);

/* Inbound: adopt the accepted socket `fd` from `peer` and send HELLO. */
void link_accept(struct link *l, int fd, const struct sockaddr *peer);

/*
 * Handoff restart (docs/architecture.md §4.7): take over `fd`, a connection that another process
 * served until now, in the state it left it: `addr` non-NULL makes it an outbound link (it
 * reconnects there later), `peer` is the text for logs; `up`: the peer's HELLO was received
 * (ours was sent: no HELLO is sent now); `connecting`: an outbound connect still in progress;
 * `unread` (`unread_len` bytes, copied) was received and not yet parsed: it is parsed first;
 * `opened_age_s`: how long ago the connection opened (the LINK_HELLO_S limit). Messages pushed on
 * `l->q` before the call are the unsent output, `head_off` bytes of the first already written.
 * Watchers are started (nothing is read or written before the loop runs). FC_LIMIT if
 * `unread_len` exceeds the reader or `head_off` the first queued message; `fd` is then not
 * adopted (the caller still owns it).
 */
enum fc_err link_adopt(struct link *l, int fd, const struct net_addr *addr, const char *peer,
                       bool up, bool connecting, const uint8_t *unread, size_t unread_len,
                       uint32_t head_off, double opened_age_s);

/*
 * Queue `m` (a new reference is taken). FC_OK; FC_AGAIN if the link is not connected (not
 * queued unless keep_queue); FC_LIMIT if the send queue is full (not queued, counted).
 */
enum fc_err link_send(struct link *l, struct msgref *m);

/* Encode and queue a control message (HELLO/SUBSCRIBE/HEARTBEAT are built inside link.c). */
enum fc_err link_send_subscribe(struct link *l);

/* Close now (on_down is called if it was connected); `why` is logged. Outbound links retry. */
void link_close(struct link *l, const char *why);

/* Stop for good: close, stop timers, no more callbacks. Then link_free() may be called. */
void link_stop(struct link *l);

/* Handoff restart (docs/architecture.md §7.12): stop reading, heartbeats and reconnects without
 * closing (bytes the peer sends wait in the kernel); link_resume() goes on as if nothing
 * happened (the silence is not held against the peer). */
void link_pause(struct link *l);
void link_resume(struct link *l);

/* Release memory. The link must be stopped. */
void link_free(struct link *l);

#endif
