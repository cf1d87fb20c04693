/*
 * mac.h - the mesh key and message tags (docs/architecture.md §2.2).
 *
 * Every wire message carries a 16-byte tag: keyed BLAKE2b-128 (libsodium crypto_generichash)
 * over the msgpack body, with a 32-byte mesh key shared by shims, relays and edges. Verification
 * uses crypto_verify_16 (constant time). The key file holds the key as 64 hex characters (optional
 * trailing whitespace); `scripts/keygen.sh` writes one.
 *
 * Key rotation (§2.2): a process holds a keyring of 1..MAC_KEYS_MAX keys (`--key FILE`, repeated).
 * It tags what it sends with the first and accepts a message tagged with any of them. The files
 * are read again on SIGHUP (mac_keyring_load), so a running process changes keys in place.
 */
#ifndef FC_MAC_H
#define FC_MAC_H

#include <stddef.h>
#include <stdint.h>
#include "fc.h"

#define MAC_KEY_BYTES 32
#define MAC_TAG_BYTES 16
/* Keys one process holds at once (`--key` given up to this many times): a rotation needs two, the
 * old and the new; the spare room covers a rotation started before the previous one finished.
 * A message no key verifies costs one hash per key, so keep it small. */
#define MAC_KEYS_MAX 4
#define MAC_KEY_ID_CHARS 8 /* hex characters of a key's public name, mac_key_id() */
/* "id,id,...": the names of a full keyring, with the NUL */
#define MAC_KEYRING_IDS_MAX (MAC_KEYS_MAX * (MAC_KEY_ID_CHARS + 1))

struct mac_key {
    uint8_t k[MAC_KEY_BYTES]; /* the mesh key; wiped by mac_key_wipe() */
};

/* The keys a process accepts; the first also tags everything it sends. */
struct mac_keyring {
    uint32_t n;                        /* keys in use, 0..MAC_KEYS_MAX (senders need >= 1) */
    struct mac_key keys[MAC_KEYS_MAX]; /* keys[0] tags what we send; any of keys[0..n) verifies */
};

/*
 * Call once per process before any other mac_* or wire_* function (sodium_init).
 * Returns FC_OK or FC_IO if libsodium cannot initialise.
 */
enum fc_err mac_global_init(void);

/*
 * Read the key file at `path`: exactly 64 hex characters, then optional whitespace.
 * FC_IO if unreadable (errno set), FC_PROTO if malformed. On error `*why` names the problem.
 */
enum fc_err mac_key_load(const char *path, struct mac_key *key, const char **why);

/* Parse 64 hex characters from `hex` (length `len`, trailing whitespace allowed). */
enum fc_err mac_key_from_hex(const char *hex, size_t len, struct mac_key *key);

/* Write the tag of `body` (`len` bytes) to `tag` (MAC_TAG_BYTES). */
void mac_tag(const struct mac_key *key, const uint8_t *body, size_t len, uint8_t *tag);

/*
 * Check the tag that follows `body`: `msg` is body then MAC_TAG_BYTES of tag, `len` counts both.
 * FC_OK if it verifies, FC_AUTH if not, FC_PROTO if `len` is too short to hold a tag.
 */
enum fc_err mac_verify(const struct mac_key *key, const uint8_t *msg, size_t len);

/* Zero the key (sodium_memzero). */
void mac_key_wipe(struct mac_key *key);

/*
 * Append a copy of `key` to `ring` (the caller keeps and wipes its own copy). A key the ring
 * already holds is not added twice (FC_OK, `n` unchanged). FC_LIMIT if the ring holds
 * MAC_KEYS_MAX keys already.
 */
enum fc_err mac_keyring_add(struct mac_keyring *ring, const struct mac_key *key);

/* The key that tags what we send: the ring's first. The ring must hold at least one key. */
static inline const struct mac_key *mac_keyring_send(const struct mac_keyring *ring)
{
    return &ring->keys[0];
}

/*
 * mac_verify() against every key of `ring`: FC_OK as soon as one verifies, FC_AUTH if none does
 * (or the ring is empty), FC_PROTO if `len` is too short to hold a tag. Each key is checked in
 * constant time (crypto_verify_16); which key matched is not secret (every key is as strong).
 * `*which` (may be NULL) is the index of the key to try first, a hint such as the key that
 * verified the peer's previous message (out of range = 0); on FC_OK it is set to the index of
 * the key that verified. With one key, or the hint right, this costs one tag computation, as
 * mac_verify() does; a message no key verifies costs one per key.
 */
enum fc_err mac_verify_any(const struct mac_keyring *ring, const uint8_t *msg, size_t len,
                           uint32_t *which);

/* Zero every key of the ring and empty it (sodium_memzero). */
void mac_keyring_wipe(struct mac_keyring *ring);

/* The key files a process was given (`--key FILE`, in order): read at start and on SIGHUP. */
struct mac_key_files {
    const char *paths[MAC_KEYS_MAX]; /* borrowed: argv or the --config expansion, live to exit */
    int n;                           /* paths used */
};

/*
 * Read every file of `files` (mac_key_load) into `ring`, in order, a key held twice kept once.
 * All or nothing: on error `ring` is left as it was and `*bad_path`, `*why` name the file and the
 * problem. FC_IO unreadable, FC_PROTO not a key (or `files` is empty). A ring in use may be
 * reloaded between messages (single thread): links read it for every message.
 */
enum fc_err mac_keyring_load(const struct mac_key_files *files, struct mac_keyring *ring,
                             const char **bad_path, const char **why);

/*
 * A public name for `key`, for logs: the first MAC_KEY_ID_CHARS hex characters of its unkeyed
 * BLAKE2b-128 (Python: hashlib.blake2b(key, digest_size=16).hexdigest()[:8]); 32 bits reveal
 * nothing usable about a random 256-bit key. Writes MAC_KEY_ID_CHARS characters and a NUL to `out`.
 */
void mac_key_id(const struct mac_key *key, char out[MAC_KEY_ID_CHARS + 1]);

/* The names of the ring's keys, first first, comma-separated, into `out` (MAC_KEYRING_IDS_MAX
 * bytes); returns `out`. */
const char *mac_keyring_ids(const struct mac_keyring *ring, char out[MAC_KEYRING_IDS_MAX]);

#endif
