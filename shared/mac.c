/* mac.c - see mac.h. */
#include "mac.h"

#include <errno.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>

enum fc_err mac_global_init(void)
{
    return sodium_init() < 0 ? FC_IO : FC_OK;
}

enum fc_err mac_key_from_hex(const char *hex, size_t len, struct mac_key *key)
{
    size_t bin_len = 0;
    const char *end = NULL;
    if (sodium_hex2bin(key->k, sizeof(key->k), hex, len, NULL, &bin_len, &end) != 0 ||
        bin_len != MAC_KEY_BYTES)
        return FC_PROTO;
    for (; end < hex + len; end++)
        if (*end != ' ' && *end != '\n' && *end != '\r' && *end != '\t')
            return FC_PROTO;
    return FC_OK;
}

enum fc_err mac_key_load(const char *path, struct mac_key *key, const char **why)
{
    char text[256];
    FILE *fp = fopen(path, "r");
    if (!fp) {
        *why = strerror(errno);
        return FC_IO;
    }
    size_t n = fread(text, 1, sizeof(text), fp);
    fclose(fp);
    enum fc_err err = n < sizeof(text) ? mac_key_from_hex(text, n, key) : FC_PROTO;
    sodium_memzero(text, sizeof(text));
    if (err != FC_OK)
        *why = "expected 64 hex characters (scripts/keygen.sh writes one)";
    return err;
}

void mac_tag(const struct mac_key *key, const uint8_t *body, size_t len, uint8_t *tag)
{
    crypto_generichash(tag, MAC_TAG_BYTES, body, len, key->k, MAC_KEY_BYTES);
}

enum fc_err mac_verify(const struct mac_key *key, const uint8_t *msg, size_t len)
{
    uint8_t want[MAC_TAG_BYTES];
    if (len < MAC_TAG_BYTES)
        return FC_PROTO;
    mac_tag(key, msg, len - MAC_TAG_BYTES, want);
    /* Constant time, like sodium_memcmp(), but a fixed 16-byte compare: sodium_memcmp's
     * byte loop cost 2 % of a relay's CPU (issue 9). */
    _Static_assert(MAC_TAG_BYTES == crypto_verify_16_BYTES, "tag is 16 bytes");
    return crypto_verify_16(want, msg + len - MAC_TAG_BYTES) == 0 ? FC_OK : FC_AUTH;
}

void mac_key_wipe(struct mac_key *key)
{
    sodium_memzero(key->k, sizeof(key->k));
}

enum fc_err mac_keyring_add(struct mac_keyring *ring, const struct mac_key *key)
{
    for (uint32_t i = 0; i < ring->n; i++)
        if (sodium_memcmp(ring->keys[i].k, key->k, MAC_KEY_BYTES) == 0)
            return FC_OK;
    if (ring->n >= MAC_KEYS_MAX)
        return FC_LIMIT;
    ring->keys[ring->n++] = *key;
    return FC_OK;
}

enum fc_err mac_verify_any(const struct mac_keyring *ring, const uint8_t *msg, size_t len,
                           uint32_t *which)
{
    if (len < MAC_TAG_BYTES)
        return FC_PROTO;
    uint32_t k = which && *which < ring->n ? *which : 0;
    /* Start at the hint and wrap around: a peer keeps its key from one message to the next, so
     * during a rotation a link pays for its own key only, not for every key before it. */
    for (uint32_t tried = 0; tried < ring->n; tried++) {
        if (mac_verify(&ring->keys[k], msg, len) == FC_OK) {
            if (which)
                *which = k;
            return FC_OK;
        }
        if (++k == ring->n)
            k = 0;
    }
    return FC_AUTH;
}

void mac_keyring_wipe(struct mac_keyring *ring)
{
    sodium_memzero(ring, sizeof(*ring));
}

enum fc_err mac_keyring_load(const struct mac_key_files *files, struct mac_keyring *ring,
                             const char **bad_path, const char **why)
{
    struct mac_keyring fresh = {0};
    enum fc_err err = FC_OK;
    *bad_path = "";
    *why = "no key file";
    if (files->n <= 0 || files->n > MAC_KEYS_MAX)
        return FC_PROTO;
    for (int i = 0; i < files->n && err == FC_OK; i++) {
        struct mac_key key;
        err = mac_key_load(files->paths[i], &key, why);
        if (err == FC_OK)
            err = mac_keyring_add(&fresh, &key); /* cannot be full: n <= MAC_KEYS_MAX */
        mac_key_wipe(&key);
        if (err != FC_OK)
            *bad_path = files->paths[i];
    }
    if (err == FC_OK)
        *ring = fresh;
    mac_keyring_wipe(&fresh);
    return err;
}

void mac_key_id(const struct mac_key *key, char out[MAC_KEY_ID_CHARS + 1])
{
    uint8_t h[crypto_generichash_BYTES_MIN]; /* libsodium's shortest output, 16 bytes */
    _Static_assert(MAC_KEY_ID_CHARS / 2 <= sizeof(h), "id fits the hash");
    crypto_generichash(h, sizeof(h), key->k, MAC_KEY_BYTES, NULL, 0);
    sodium_bin2hex(out, MAC_KEY_ID_CHARS + 1, h, MAC_KEY_ID_CHARS / 2);
}

const char *mac_keyring_ids(const struct mac_keyring *ring, char out[MAC_KEYRING_IDS_MAX])
{
    out[0] = '\0';
    for (uint32_t i = 0; i < ring->n && i < MAC_KEYS_MAX; i++) {
        char *p = out + i * (MAC_KEY_ID_CHARS + 1);
        if (i > 0)
            p[-1] = ',';
        mac_key_id(&ring->keys[i], p);
    }
    return out;
}
