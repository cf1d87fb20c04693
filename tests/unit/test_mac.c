/*
 * test_mac.c - key rotation (docs/architecture.md §2.2): a keyring of up to MAC_KEYS_MAX keys;
 * messages are tagged with the first and verify against any (mac_verify_any, wire_decode),
 * `--key FILE` repeated loads them in order (cli_keys_load), and a reload (SIGHUP) replaces them
 * all or not at all (mac_keyring_load, cli_keys_reload).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "cli.h"
#include "mac.h"
#include "wire.h"

/* Key n (1-based) is n, n+1, ... : distinct keys that are easy to tell apart in a failure. */
static struct mac_key key_n(int n)
{
    struct mac_key k;
    for (int i = 0; i < MAC_KEY_BYTES; i++)
        k.k[i] = (uint8_t)(n + i);
    return k;
}

static struct mac_keyring ring_of(const int *ns, int count)
{
    struct mac_keyring ring = {0};
    for (int i = 0; i < count; i++) {
        struct mac_key k = key_n(ns[i]);
        assert_int_equal(mac_keyring_add(&ring, &k), FC_OK);
    }
    assert_int_equal(ring.n, (uint32_t)count);
    return ring;
}

#define BODY "\x93\x01\x03\xcf\x00\x00\x01\x8f\x00\x00\x00\x00" /* [1, 3, now]: a HEARTBEAT */
#define BODY_LEN (sizeof(BODY) - 1)

/* BODY tagged with key n into `msg` (BODY_LEN + MAC_TAG_BYTES bytes). */
static void tagged(int n, uint8_t *msg)
{
    struct mac_key k = key_n(n);
    memcpy(msg, BODY, BODY_LEN);
    mac_tag(&k, msg, BODY_LEN, msg + BODY_LEN);
}

static int setup(void **state)
{
    return mac_global_init() == FC_OK ? 0 : -1;
}

static void test_tagged_with_second_key(void **state)
{
    uint8_t msg[BODY_LEN + MAC_TAG_BYTES];
    const size_t len = sizeof(msg);
    struct mac_keyring one = ring_of((const int[]){1}, 1);
    struct mac_keyring both = ring_of((const int[]){1, 2}, 2);
    struct mac_keyring swapped = ring_of((const int[]){2, 1}, 2);
    uint32_t which = 0;

    tagged(2, msg);
    assert_int_equal(mac_verify_any(&both, msg, len, &which), FC_OK);
    assert_int_equal(which, 1);
    assert_int_equal(mac_verify_any(&swapped, msg, len, NULL), FC_OK);
    assert_int_equal(mac_verify_any(&one, msg, len, NULL), FC_AUTH);
    /* A message tagged with the first key verifies with either ring. */
    tagged(1, msg);
    which = 1;
    assert_int_equal(mac_verify_any(&both, msg, len, &which), FC_OK);
    assert_int_equal(which, 0);
    assert_int_equal(mac_verify_any(&one, msg, len, &which), FC_OK);
    assert_int_equal(which, 0);
}

static void test_tampered_fails_against_all(void **state)
{
    uint8_t msg[BODY_LEN + MAC_TAG_BYTES];
    struct mac_keyring all = ring_of((const int[]){1, 2, 3, 4}, MAC_KEYS_MAX);
    for (int n = 1; n <= MAC_KEYS_MAX; n++) {
        tagged(n, msg);
        uint32_t which = 99;
        assert_int_equal(mac_verify_any(&all, msg, sizeof(msg), &which), FC_OK);
        assert_int_equal(which, (uint32_t)(n - 1));
        /* Any flipped bit, in the body or in the tag, and no key verifies it; `which` stays. */
        for (size_t i = 0; i < sizeof(msg); i++) {
            msg[i] ^= 0x10;
            uint32_t before = which;
            assert_int_equal(mac_verify_any(&all, msg, sizeof(msg), &which), FC_AUTH);
            assert_int_equal(which, before);
            msg[i] ^= 0x10;
        }
    }
    /* A key outside the ring, an empty ring, a message too short for a tag. */
    struct mac_keyring none = {0};
    tagged(5, msg);
    assert_int_equal(mac_verify_any(&all, msg, sizeof(msg), NULL), FC_AUTH);
    assert_int_equal(mac_verify_any(&none, msg, sizeof(msg), NULL), FC_AUTH);
    assert_int_equal(mac_verify_any(&all, msg, MAC_TAG_BYTES - 1, NULL), FC_PROTO);
}

/* The hint is where the search starts, never a filter: any start finds any key. */
static void test_hint_any_start(void **state)
{
    uint8_t msg[BODY_LEN + MAC_TAG_BYTES];
    struct mac_keyring three = ring_of((const int[]){7, 8, 9}, 3);
    for (int n = 7; n <= 9; n++) {
        tagged(n, msg);
        for (uint32_t start = 0; start < 6; start++) { /* 3..5: out of range, from 0 */
            uint32_t which = start;
            assert_int_equal(mac_verify_any(&three, msg, sizeof(msg), &which), FC_OK);
            assert_int_equal(which, (uint32_t)(n - 7));
        }
    }
}

static void test_keyring_add(void **state)
{
    struct mac_keyring ring = {0};
    struct mac_key k1 = key_n(1), k2 = key_n(2);
    assert_int_equal(mac_keyring_add(&ring, &k1), FC_OK);
    assert_int_equal(mac_keyring_add(&ring, &k2), FC_OK);
    assert_int_equal(mac_keyring_add(&ring, &k1), FC_OK); /* already held: kept once */
    assert_int_equal(ring.n, 2);
    assert_memory_equal(mac_keyring_send(&ring)->k, k1.k, MAC_KEY_BYTES);
    assert_memory_equal(ring.keys[1].k, k2.k, MAC_KEY_BYTES);
    for (int n = 3; n <= MAC_KEYS_MAX; n++) {
        struct mac_key k = key_n(n);
        assert_int_equal(mac_keyring_add(&ring, &k), FC_OK);
    }
    struct mac_key extra = key_n(MAC_KEYS_MAX + 1);
    assert_int_equal(mac_keyring_add(&ring, &extra), FC_LIMIT);
    assert_int_equal(ring.n, MAC_KEYS_MAX);
    assert_int_equal(mac_keyring_add(&ring, &k2), FC_OK); /* a held key is still fine when full */
    mac_keyring_wipe(&ring);
    assert_int_equal(ring.n, 0);
    static const uint8_t zero[MAC_KEY_BYTES];
    for (int i = 0; i < MAC_KEYS_MAX; i++)
        assert_memory_equal(ring.keys[i].k, zero, MAC_KEY_BYTES);
}

/* wire_decode: encoded with a ring's send key (the first), decoded by rings holding it anywhere;
 * the decoder remembers which key verified and starts there next time. */
static void test_wire_decode_rotation(void **state)
{
    struct mac_keyring a = ring_of((const int[]){1}, 1);
    struct mac_keyring ab = ring_of((const int[]){1, 2}, 2);
    struct mac_keyring ba = ring_of((const int[]){2, 1}, 2);
    struct mac_keyring b = ring_of((const int[]){2}, 1);
    struct wire_decoder dec;
    struct wire_msg msg;
    uint8_t buf[256];
    size_t len;
    const char *why = "";
    assert_int_equal(wire_decoder_init(&dec), FC_OK);
    assert_int_equal(dec.key_index, 0);

    /* A sender on `ba` (switched to B, still accepts A) tags with B. */
    assert_int_equal(wire_encode_heartbeat(mac_keyring_send(&ba), 42, buf, sizeof(buf), &len),
                     FC_OK);
    assert_int_equal(wire_decode(&dec, &ab, buf, len, &msg, &why), FC_OK);
    assert_int_equal(msg.type, WIRE_HEARTBEAT);
    assert_int_equal(msg.u.heartbeat.now_us, 42);
    assert_int_equal(dec.key_index, 1);
    assert_int_equal(wire_decode(&dec, &b, buf, len, &msg, &why), FC_OK);
    assert_int_equal(dec.key_index, 0);
    assert_int_equal(wire_decode(&dec, &a, buf, len, &msg, &why), FC_AUTH);
    assert_string_equal(why, "bad tag");

    /* A sender still on A reaches `ab` and `ba`, not `b`. */
    assert_int_equal(wire_encode_heartbeat(mac_keyring_send(&ab), 43, buf, sizeof(buf), &len),
                     FC_OK);
    assert_int_equal(wire_decode(&dec, &ba, buf, len, &msg, &why), FC_OK);
    assert_int_equal(dec.key_index, 1);
    assert_int_equal(wire_decode(&dec, &ab, buf, len, &msg, &why), FC_OK);
    assert_int_equal(dec.key_index, 0);
    assert_int_equal(wire_decode(&dec, &b, buf, len, &msg, &why), FC_AUTH);

    /* Tampered: refused by every ring. */
    buf[3] ^= 1;
    assert_int_equal(wire_decode(&dec, &ab, buf, len, &msg, &why), FC_AUTH);
    assert_int_equal(wire_decode(&dec, &ba, buf, len, &msg, &why), FC_AUTH);
    wire_decoder_free(&dec);
}

static void write_key(const char *path, int n)
{
    struct mac_key k = key_n(n);
    char hex[2 * MAC_KEY_BYTES + 1];
    for (int i = 0; i < MAC_KEY_BYTES; i++)
        snprintf(hex + 2 * i, 3, "%02x", k.k[i]);
    FILE *fp = fopen(path, "w");
    assert_non_null(fp);
    fprintf(fp, "%s\n", hex);
    fclose(fp);
}

/* --key A --key B --key A: two keys, A first (it tags what is sent). */
static void test_cli_keys_load(void **state)
{
    char a[] = "/tmp/test_mac_aXXXXXX", b[] = "/tmp/test_mac_bXXXXXX";
    int fa = mkstemp(a), fb = mkstemp(b);
    assert_true(fa >= 0 && fb >= 0);
    close(fa);
    close(fb);
    write_key(a, 1);
    write_key(b, 2);
    struct mac_key_files files = {0};
    cli_key_add("test", &files, a);
    cli_key_add("test", &files, b);
    cli_key_add("test", &files, a);
    struct mac_keyring ring = ring_of((const int[]){9}, 1); /* replaced by the load */
    cli_keys_load("test", &files, &ring);
    assert_int_equal(ring.n, 2);
    struct mac_key k1 = key_n(1), k2 = key_n(2);
    assert_memory_equal(ring.keys[0].k, k1.k, MAC_KEY_BYTES);
    assert_memory_equal(ring.keys[1].k, k2.k, MAC_KEY_BYTES);
    char ids[MAC_KEYRING_IDS_MAX];
    assert_string_equal(mac_keyring_ids(&ring, ids), "2dccd599,0337c89c");

    /* SIGHUP after the files changed: the same paths, the new contents, in place. */
    write_key(a, 2);
    write_key(b, 1);
    struct log quiet;
    log_init(&quiet, "test", false);
    quiet.min = LOG_ERROR + 1;
    assert_int_equal(cli_keys_reload(&files, &ring, &quiet), FC_OK);
    assert_string_equal(mac_keyring_ids(&ring, ids), "0337c89c,2dccd599");
    write_key(b, 2); /* both files hold key 2: one key */
    assert_int_equal(cli_keys_reload(&files, &ring, &quiet), FC_OK);
    assert_int_equal(ring.n, 1);
    assert_memory_equal(mac_keyring_send(&ring)->k, k2.k, MAC_KEY_BYTES);

    /* A file that is not a key, or is gone: nothing changes. */
    write_key(a, 1);
    FILE *fp = fopen(b, "w");
    assert_non_null(fp);
    fputs("not a key\n", fp);
    fclose(fp);
    const char *path = NULL, *why = NULL;
    assert_int_equal(mac_keyring_load(&files, &ring, &path, &why), FC_PROTO);
    assert_string_equal(path, b);
    assert_non_null(why);
    assert_int_equal(cli_keys_reload(&files, &ring, &quiet), FC_PROTO);
    unlink(b);
    assert_int_equal(mac_keyring_load(&files, &ring, &path, &why), FC_IO);
    assert_string_equal(path, b);
    assert_int_equal(ring.n, 1);
    assert_memory_equal(mac_keyring_send(&ring)->k, k2.k, MAC_KEY_BYTES);
    struct mac_key_files none = {0};
    assert_int_equal(mac_keyring_load(&none, &ring, &path, &why), FC_PROTO);
    assert_int_equal(ring.n, 1);
    mac_keyring_wipe(&ring);
    unlink(a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tagged_with_second_key),
        cmocka_unit_test(test_tampered_fails_against_all),
        cmocka_unit_test(test_hint_any_start),
        cmocka_unit_test(test_keyring_add),
        cmocka_unit_test(test_wire_decode_rotation),
        cmocka_unit_test(test_cli_keys_load),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
