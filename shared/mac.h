/*
 * mac.h - the mesh key and message tags (docs/architecture.md §2.2).
 *
 * Every wire message carries a 16-byte tag: keyed BLAKE2b-128 (libsodium crypto_generichash)
 * over the msgpack body, with a 32-byte mesh key shared by shims, relays and edges. Verification
 * uses crypto_verify_16 (constant time). The key file holds the key as 64 hex characters (optional
 * trailing whitespace); `scripts/keygen.sh` writes one.
 */
#ifndef FC_MAC_H
#define FC_MAC_H

#include <stddef.h>
#include <stdint.h>
#include "fc.h"

#define MAC_KEY_BYTES 32
#define MAC_TAG_BYTES 16

struct mac_key {
    uint8_t k[MAC_KEY_BYTES]; /* the mesh key; wiped by mac_key_wipe() */
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

#endif
