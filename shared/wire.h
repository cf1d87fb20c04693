/*
 * wire.h - wire protocol v1 (docs/architecture.md §2): msgpack bodies with a 16-byte tag.
 *
 * A message is a msgpack array `[1, type, ...]` followed by its MAC tag (mac.h). On TCP each
 * message is preceded by a uint32 big-endian length (body + tag, at most WIRE_MAX_MSG); on UDP and
 * multicast one datagram is one message. Encoders write into caller buffers (no allocation).
 * The decoder uses a caller-owned `struct wire_decoder` whose msgpack zone is reused between
 * messages; decoded strings are copied into fixed fields, the FRAME payload points into the
 * caller's message buffer (valid as long as that buffer is).
 *
 * Receivers must check every field: wire_decode() checks types, lengths, ranges and that the
 * payload's own header agrees with codec, sample_rate, channels and samples. The PTS replay guard
 * (±max-skew of the local clock) is left to the caller, which knows its clock and limits.
 */
#ifndef FC_WIRE_H
#define FC_WIRE_H

#include <msgpack.h>
#include <stdbool.h>
#include "fc.h"
#include "mac.h"

#define WIRE_VERSION 1
#define WIRE_LEN_BYTES 4          /* TCP length prefix, big-endian */
#define WIRE_MAX_MSG 65536        /* body + tag, docs/architecture.md §2.3 */
#define WIRE_MOUNT_MAX 64         /* bytes, [A-Za-z0-9._-] */
#define WIRE_ENCODER_MAX 32       /* bytes, same charset */
#define WIRE_NODE_MAX 64          /* HELLO node name */
#define WIRE_META_MAX 4080        /* title / url bytes carried in FRAME meta (an ICY block body) */
#define WIRE_STATION_MAX 255      /* bytes of each station field (name, genre, ...) */
#define WIRE_MAX_PAYLOAD 8192     /* one MP3 or ADTS frame (framer.h FRAMER_MAX_FRAME) */
#define WIRE_SUB_MOUNTS_MAX 64    /* mounts in one SUBSCRIBE */
#define WIRE_SUB_RESUME_MAX 256   /* resume entries in one SUBSCRIBE */
#define WIRE_FEATURES_MAX 16

enum wire_type { WIRE_HELLO = 0, WIRE_FRAME = 1, WIRE_SUBSCRIBE = 2, WIRE_HEARTBEAT = 3 };

struct wire_hello {
    char role[16];                   /* "shim", "relay" or "edge" */
    char node[WIRE_NODE_MAX + 1];    /* the sender's node name */
    uint32_t n_features;             /* entries used in features (extra ones are ignored) */
    char features[WIRE_FEATURES_MAX][32];
};

struct wire_frame {
    char mount[WIRE_MOUNT_MAX + 1];     /* NUL-terminated */
    char encoder[WIRE_ENCODER_MAX + 1]; /* NUL-terminated */
    uint32_t priority;                  /* 0 = primary, 1 = first backup, ... */
    uint64_t session;                   /* random per stream start */
    uint64_t seq;                       /* frame number in the session, from 0 */
    uint64_t pts_us;                    /* wall-clock µs of the first sample */
    enum fc_codec codec;                /* FC_CODEC_MP3 or FC_CODEC_ADTS */
    uint32_t sample_rate;               /* Hz */
    uint8_t channels;                   /* 1..8 */
    uint16_t samples;                   /* samples per channel in this frame */
    int8_t level[4];                    /* four sub-frame RMS values, dBFS */
    const uint8_t *payload;             /* the whole frame; borrowed */
    uint32_t payload_len;               /* bytes */
    bool has_meta;                      /* meta map present (title and/or url) */
    char title[WIRE_META_MAX + 1];      /* StreamTitle, UTF-8, "" if absent */
    char url[WIRE_META_MAX + 1];        /* StreamUrl, "" if absent */
    bool has_station;                   /* station fields below are present (ice-* headers) */
    char st_name[WIRE_STATION_MAX + 1]; /* ice-name / icy-name */
    char st_genre[WIRE_STATION_MAX + 1];
    char st_desc[WIRE_STATION_MAX + 1];
    char st_url[WIRE_STATION_MAX + 1];  /* the station's web site */
    uint32_t st_bitrate;                /* ice-bitrate, kbit/s, 0 = unknown */
};

struct wire_resume {
    char mount[WIRE_MOUNT_MAX + 1];
    char encoder[WIRE_ENCODER_MAX + 1];
    uint64_t session;
    uint64_t next_seq; /* first seq the subscriber still needs */
};

struct wire_subscribe {
    uint32_t n_mounts; /* 0 = all mounts */
    char mounts[WIRE_SUB_MOUNTS_MAX][WIRE_MOUNT_MAX + 1];
    uint32_t n_resume;
    struct wire_resume resume[WIRE_SUB_RESUME_MAX];
};

struct wire_heartbeat {
    uint64_t now_us; /* sender's wall clock, µs */
};

struct wire_msg {
    enum wire_type type;
    union {
        struct wire_hello hello;
        struct wire_frame frame;
        struct wire_subscribe subscribe;
        struct wire_heartbeat heartbeat;
    } u;
};

/* Reusable decoding state: one per peer or socket. */
struct wire_decoder {
    msgpack_zone zone;  /* reused between messages */
    uint32_t key_index; /* keyring index of the key that verified the last message: tried first
                         * for the next one (mac_verify_any's hint); 0 after init */
};

/* FC_NOMEM if the zone cannot be set up. */
enum fc_err wire_decoder_init(struct wire_decoder *d);
void wire_decoder_free(struct wire_decoder *d);

/*
 * Verify and decode one message: `msg` is body + tag, `len` bytes (no TCP length prefix). The
 * tag must verify against one of the keys of `keys` (borrowed; mac_verify_any(), starting with
 * d->key_index, which is then set to the key that verified: docs/architecture.md §2.2).
 * FC_AUTH: no key verifies the tag (nothing parsed). FC_PROTO: malformed body or a field out of
 * range; `*why` (may be NULL) then names the field. FC_LIMIT: len > WIRE_MAX_MSG.
 * On FC_OK, `out` is filled; FRAME payload points into `msg`.
 */
enum fc_err wire_decode(struct wire_decoder *d, const struct mac_keyring *keys,
                        const uint8_t *msg, size_t len, struct wire_msg *out, const char **why);

/*
 * Encoders: write body + tag of one message to `out` (capacity `cap` bytes), set `*len`. `key`
 * (borrowed) tags it: a keyring's first key, mac_keyring_send().
 * FC_LIMIT if it does not fit or exceeds WIRE_MAX_MSG; FC_PROTO if a field is invalid.
 * To send on TCP, encode at `buf + WIRE_LEN_BYTES` and call wire_put_len(buf, len).
 */
enum fc_err wire_encode_hello(const struct mac_key *key, const char *role, const char *node,
                              uint8_t *out, size_t cap, size_t *len);
enum fc_err wire_encode_frame(const struct mac_key *key, const struct wire_frame *f, uint8_t *out,
                              size_t cap, size_t *len);
enum fc_err wire_encode_subscribe(const struct mac_key *key, const struct wire_subscribe *s,
                                  uint8_t *out, size_t cap, size_t *len);
enum fc_err wire_encode_heartbeat(const struct mac_key *key, uint64_t now_us, uint8_t *out,
                                  size_t cap, size_t *len);

/* Write the 4-byte big-endian TCP length prefix `len` at `p`. */
void wire_put_len(uint8_t *p, uint32_t len);

/* True if `s` (`len` bytes) is a valid mount name: 1..64 bytes of [A-Za-z0-9._-]. */
bool wire_valid_name(const char *s, size_t len, size_t max);

/*
 * Length-prefixed TCP framing: bytes read from a socket go into `buf`; whole messages come out.
 * The buffer is fixed (WIRE_LEN_BYTES + WIRE_MAX_MSG) and never grows.
 */
struct wire_reader {
    uint8_t buf[WIRE_LEN_BYTES + WIRE_MAX_MSG]; /* received, not yet consumed */
    size_t start;                               /* first unconsumed byte */
    size_t end;                                 /* one past the last received byte */
};

/* Reset to empty. */
void wire_reader_reset(struct wire_reader *r);

/* Where to read into next: `*space` bytes free at the returned pointer (compacts first). */
uint8_t *wire_reader_space(struct wire_reader *r, size_t *space);

/* Account for `n` bytes just read into the space. */
void wire_reader_commit(struct wire_reader *r, size_t n);

/*
 * Next whole message: FC_OK sets `*msg`/`*len` (body + tag, no prefix; valid until the next
 * reader call). FC_AGAIN: need more bytes. FC_PROTO: the length prefix is 0, shorter than a
 * tag, or over WIRE_MAX_MSG: the stream is broken and the peer must be closed.
 */
enum fc_err wire_reader_next(struct wire_reader *r, const uint8_t **msg, size_t *len);

#endif
