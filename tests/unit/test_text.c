/* Unit tests for shared/text.c: query values, UTF-8 checks, Latin-1 conversion. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>
#include "text.h"

static void test_query_value(void **state)
{
    const char *q = "mount=%2Fm&mode=updinfo&song=Caf%E9+au+lait&x=";
    char out[64];
    assert_true(text_query_value(q, strlen(q), "mount", out, sizeof(out)));
    assert_string_equal(out, "/m");
    assert_true(text_query_value(q, strlen(q), "song", out, sizeof(out)));
    assert_string_equal(out, "Caf\xe9 au lait");
    assert_true(text_query_value(q, strlen(q), "x", out, sizeof(out)));
    assert_string_equal(out, "");
    assert_false(text_query_value(q, strlen(q), "mod", out, sizeof(out))); /* prefix only */
    assert_false(text_query_value(q, strlen(q), "charset", out, sizeof(out)));
    assert_false(text_query_value("song=%zz", 8, "song", out, sizeof(out)));
    assert_false(text_query_value("song=%00", 8, "song", out, sizeof(out)));
    assert_false(text_query_value("song=abcdef", 11, "song", out, 4)); /* does not fit */
}

static void test_utf8(void **state)
{
    assert_true(text_utf8_valid("plain ascii"));
    assert_true(text_utf8_valid("Zo\xc3\xab \xe2\x99\xab \xf0\x9f\x8e\xb5"));
    assert_false(text_utf8_valid("Caf\xe9"));             /* Latin-1 */
    assert_false(text_utf8_valid("\xc0\xaf"));            /* overlong */
    assert_false(text_utf8_valid("\xe2\x99"));            /* truncated */
    assert_false(text_utf8_valid("\xf5\x80\x80\x80"));    /* past U+10FFFF */
    char s[] = "ok \xe9 \xc3\xa9 \xe2\x99 end";
    text_utf8_sanitize(s);
    assert_string_equal(s, "ok ? \xc3\xa9 ?? end");
    assert_true(text_utf8_valid(s));
}

static void test_latin1(void **state)
{
    char out[16];
    text_latin1_to_utf8("Caf\xe9 \xff", out, sizeof(out));
    assert_string_equal(out, "Caf\xc3\xa9 \xc3\xbf");
    assert_true(text_utf8_valid(out));
    text_latin1_to_utf8("\xe9\xe9\xe9\xe9\xe9\xe9\xe9\xe9", out, 8); /* cut between characters */
    assert_true(text_utf8_valid(out));
    assert_true(strlen(out) < 8);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_query_value),
        cmocka_unit_test(test_utf8),
        cmocka_unit_test(test_latin1),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
