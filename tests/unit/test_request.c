/*
 * test_request.c - tests for the query of GET /<mount> (edge/http/request.c, docs/architecture.md §7.4,
 * issue 4 items 2-3): `offset=S`, `at=T` (Unix seconds or ISO-8601 UTC, with Z,
 * .fff, +00:00, and percent-encoded colons), `duration=S`, `dvr=S`; malformed values and offset
 * with at give FC_PROTO naming the parameter; percent-decoding and its bad escapes.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "../../edge/http/request.c"

#define T_2026_11_22_0900 1795338000.0 /* 2026-11-22T09:00:00Z (python calendar.timegm) */
#define T_2000_01_01 946684800.0       /* 2000-01-01T00:00:00Z */
#define T_2026_03_03 1772496000.0      /* 2026-03-03T00:00:00Z */

static void near(double got, double want)
{
    if (fabs(got - want) > 1e-6)
        fail_msg("got %.6f, want %.6f", got, want);
}

/* Parse `q`: expect FC_OK. */
static struct stream_req ok(const char *q)
{
    struct stream_req r;
    const char *why = "unset";
    enum fc_err err = request_parse_query(q, strlen(q), &r, &why);
    if (err != FC_OK)
        fail_msg("query \"%s\": err %d why \"%s\"", q, err, why);
    return r;
}

/* Parse `q`: expect FC_PROTO and `why` containing `param`. */
static void bad(const char *q, const char *param)
{
    struct stream_req r;
    const char *why = NULL;
    enum fc_err err = request_parse_query(q, strlen(q), &r, &why);
    if (err != FC_PROTO)
        fail_msg("query \"%s\": err %d, want FC_PROTO", q, err);
    if (!why || !strstr(why, param))
        fail_msg("query \"%s\": why \"%s\" does not name \"%s\"", q, why ? why : "(null)", param);
}

static double time_ok(const char *s)
{
    double t = -1;
    if (!request_parse_time(s, strlen(s), &t))
        fail_msg("time \"%s\" rejected", s);
    return t;
}

static void time_bad(const char *s)
{
    double t = -1;
    if (request_parse_time(s, strlen(s), &t))
        fail_msg("time \"%s\" accepted as %.6f", s, t);
}

/* ---- request_parse_query ---- */

static void test_empty_and_unknown(void **state)
{
    (void)state;
    struct stream_req r = ok("");
    assert_false(r.has_offset || r.has_at || r.has_duration);
    assert_true(r.dvr_s == 0);
    r = ok("foo=bar&x&=5&&y=");
    assert_false(r.has_offset || r.has_at || r.has_duration);
    r = ok("OFFSET=5"); /* keys are case-sensitive: unknown, ignored */
    assert_false(r.has_offset);
    r = ok("offset"); /* no '=': ignored */
    assert_false(r.has_offset);
}

static void test_offset(void **state)
{
    (void)state;
    struct stream_req r = ok("offset=20");
    assert_true(r.has_offset);
    near(r.offset_s, 20);
    assert_false(r.has_at || r.has_duration);
    near(ok("offset=0").offset_s, 0);
    near(ok("offset=1.5").offset_s, 1.5);
    near(ok("offset=100000").offset_s, 100000); /* valid here; the buffer answers 416 */
    near(ok("offset=1e3").offset_s, 1000);
    near(ok("offset=604800").offset_s, REQUEST_MAX_DURATION_S);
    near(ok("&offset=3&").offset_s, 3);
    near(ok("offset=3&offset=4").offset_s, 4); /* the last one counts */
    near(ok("o%66fset=7").offset_s, 7);         /* an escaped key */
}

static void test_offset_bad(void **state)
{
    (void)state;
    bad("offset=-1", "offset");
    bad("offset=-0.001", "offset");
    bad("offset=", "offset");
    bad("offset=abc", "offset");
    bad("offset=12abc", "offset");
    bad("offset=1.2.3", "offset");
    bad("offset=nan", "offset");
    bad("offset=NaN", "offset");
    bad("offset=inf", "offset");
    bad("offset=-inf", "offset");
    bad("offset=1e999", "offset"); /* ERANGE */
    bad("offset=604801", "offset"); /* past REQUEST_MAX_DURATION_S */
    bad("offset=5%00", "offset");
    bad("duration=5&offset=x", "offset");
}

static void test_duration(void **state)
{
    (void)state;
    struct stream_req r = ok("offset=25&duration=10");
    assert_true(r.has_offset && r.has_duration);
    near(r.offset_s, 25);
    near(r.duration_s, 10);
    r = ok("duration=0.5");
    assert_true(r.has_duration && !r.has_offset && !r.has_at);
    near(r.duration_s, 0.5);
    bad("offset=25&duration=0", "duration");
    bad("offset=25&duration=-10", "duration");
    bad("offset=25&duration=", "duration");
    bad("offset=25&duration=nan", "duration");
    bad("offset=25&duration=10s", "duration");
    bad("offset=25&duration=604801", "duration");
}

static void test_dvr(void **state)
{
    (void)state;
    near(ok("dvr=3600").dvr_s, 3600);
    near(ok("dvr=0").dvr_s, 0);
    bad("dvr=-1", "dvr");
    bad("dvr=x", "dvr");
}

static void test_at(void **state)
{
    (void)state;
    struct stream_req r = ok("at=1763802000");
    assert_true(r.has_at && !r.has_offset);
    near(r.at_s, 1763802000.0);
    near(ok("at=1763802000.25").at_s, 1763802000.25);
    near(ok("at=2026-11-22T09:00:00Z").at_s, T_2026_11_22_0900);
    near(ok("at=2026-11-22T09%3A00%3A00Z").at_s, T_2026_11_22_0900);  /* %3A colons */
    near(ok("at=2026-11-22T09%3a00%3a00Z").at_s, T_2026_11_22_0900);  /* lower-case hex */
    near(ok("at=2026-11-22T09:00:00.250Z").at_s, T_2026_11_22_0900 + 0.25);
    near(ok("at=2026-11-22T09%3A00%3A00.5Z").at_s, T_2026_11_22_0900 + 0.5);
    near(ok("at=2026-11-22T09:00:00%2B00:00").at_s, T_2026_11_22_0900); /* %2B = '+' */
    near(ok("at=2026-11-22T09%3A00%3A00%2B00%3A00").at_s, T_2026_11_22_0900);
    r = ok("at=2026-11-22T09:00:00Z&duration=5");
    assert_true(r.has_at && r.has_duration);
    near(r.duration_s, 5);
}

static void test_at_bad(void **state)
{
    (void)state;
    bad("at=", "at");
    bad("at=yesterday", "at");
    bad("at=-5", "at");
    bad("at=nan", "at");
    bad("at=inf", "at");
    bad("at=2026-11-22", "at");
    bad("at=2026-11-22T09:00", "at");
    bad("at=2026-13-22T09:00:00Z", "at");
    bad("at=2026-11-22T25:00:00Z", "at");
    bad("at=2026-11-22T09:00:00+01:00", "at"); /* only UTC */
    bad("at=2026-11-22T09:00:00Zjunk", "at");
    bad("at=2026-11-22T09:00:00%3", "at");
}

static void test_offset_and_at(void **state)
{
    (void)state;
    bad("offset=20&at=1763802000", "offset and at");
    bad("at=2026-11-22T09:00:00Z&offset=0", "offset and at");
    bad("at=1763802000&duration=5&offset=1", "offset and at");
}

/* A value longer than request.c's buffers is refused, not truncated or overrun. */
static void test_long_values(void **state)
{
    (void)state;
    char q[512];
    memset(q, 0, sizeof(q));
    strcpy(q, "offset=");
    memset(q + 7, '1', 200);
    bad(q, "offset");
    memset(q, 0, sizeof(q));
    strcpy(q, "at=2026-11-22T09:00:00.");
    memset(q + strlen(q), '1', 100);
    bad(q, "at");
    /* The longest value that fits (95 bytes): parsed, not refused. */
    memset(q, 0, sizeof(q));
    strcpy(q, "offset=1.");
    memset(q + strlen(q), '0', 95 - 2);
    near(ok(q).offset_s, 1);
}

/*
 * request.h: "unknown keys are ignored". A player's own long parameter (a token, a tracking
 * id) must not make the request fail.
 */
static void test_long_unknown_ignored(void **state)
{
    (void)state;
    char q[512];
    memset(q, 0, sizeof(q));
    strcpy(q, "offset=20&token=");
    memset(q + strlen(q), 'a', 200);
    struct stream_req r1, r;
    const char *why = NULL;
    enum fc_err e1 = request_parse_query(q, strlen(q), &r1, &why);
    memset(q, 0, sizeof(q));
    memset(q, 'k', 40);
    strcat(q, "=1&offset=20");
    const char *why2 = NULL;
    enum fc_err e2 = request_parse_query(q, strlen(q), &r, &why2);
    if (e1 != FC_OK || e2 != FC_OK)
        fail_msg("an unknown parameter with a value > 95 bytes (err %d, why \"%s\") or a key > "
                 "31 bytes (err %d, why \"%s\") makes the query fail",
                 e1, why ? why : "", e2, why2 ? why2 : "");
    near(r1.offset_s, 20);
    near(r.offset_s, 20);
}

/*
 * A literal '+' in a query is a space (application/x-www-form-urlencoded), so
 * ?at=2026-11-22T09:00:00+00:00 typed by hand arrives as "...09:00:00 00:00". request.h says
 * "+00:00 accepted": the space form is accepted as +00:00.
 */
static void test_at_literal_plus(void **state)
{
    (void)state;
    struct stream_req r;
    const char *why = NULL;
    const char *q = "at=2026-11-22T09:00:00+00:00";
    if (request_parse_query(q, strlen(q), &r, &why) != FC_OK)
        fail_msg("query \"%s\" refused (why \"%s\"): the '+' decodes to a space", q, why);
    near(r.at_s, T_2026_11_22_0900);
}

/* ---- request_parse_time ---- */

static void test_time_unix(void **state)
{
    (void)state;
    near(time_ok("0"), 0);
    near(time_ok("1763802000"), 1763802000.0);
    near(time_ok("1763802000.5"), 1763802000.5);
    near(time_ok("1.7638e9"), 1763800000.0);
    time_bad("");
    time_bad("-1");
    time_bad("nan");
    time_bad("inf");
    time_bad("17638020x0");
    time_bad(" ");
}

static void test_time_iso(void **state)
{
    (void)state;
    near(time_ok("2026-11-22T09:00:00Z"), T_2026_11_22_0900);
    near(time_ok("2026-11-22T09:00:00"), T_2026_11_22_0900); /* no zone: UTC */
    near(time_ok("2026-11-22T09:00:00+00:00"), T_2026_11_22_0900);
    near(time_ok("2026-11-22T09:00:00.5Z"), T_2026_11_22_0900 + 0.5);
    near(time_ok("2026-11-22T09:00:00.123Z"), T_2026_11_22_0900 + 0.123);
    near(time_ok("2026-11-22T09:00:00.123456+00:00"), T_2026_11_22_0900 + 0.123456);
    near(time_ok("2000-01-01T00:00:00Z"), T_2000_01_01);
    near(time_ok("2026-03-03T00:00:00Z"), T_2026_03_03);
    time_bad("2026-11-22T09:00:00-05:00");
    time_bad("2026-11-22T09:00:00+01:00");
    time_bad("2026-11-22T09:00:00.Z");
    time_bad("2026-11-22T09:00:00ZZ");
    time_bad("2026-11-22 09:00:00Z");
    time_bad("2026-11-22T09:00:00Z ");
    time_bad("2026-11-22");
    time_bad("2026-00-22T09:00:00Z");
    time_bad("2026-11-32T09:00:00Z");
    time_bad("2026-11-22T09:60:00Z");
    time_bad("--");
}

/* The 64-byte copy in request_parse_time: long input is refused, never overrun. */
static void test_time_long(void **state)
{
    (void)state;
    char s[200];
    memset(s, '1', sizeof(s)); /* not NUL-terminated: only `len` bytes may be read */
    double t;
    assert_false(request_parse_time(s, sizeof(s), &t));
    assert_false(request_parse_time(s, 64, &t));
    assert_true(request_parse_time(s, 63, &t)); /* 63 digits: a (huge) finite number */
    /* Only `len` bytes are read: a longer string with a good prefix. */
    const char *p = "2026-11-22T09:00:00Zgarbage";
    assert_true(request_parse_time(p, 20, &t));
    near(t, T_2026_11_22_0900);
}

/* ---- text_unescape ---- */

static void test_unescape(void **state)
{
    (void)state;
    char out[32];
    assert_true(text_unescape("abc", 3, out, sizeof(out)));
    assert_string_equal(out, "abc");
    assert_true(text_unescape("", 0, out, sizeof(out)));
    assert_string_equal(out, "");
    assert_true(text_unescape("09%3A00%3a00", 12, out, sizeof(out)));
    assert_string_equal(out, "09:00:00");
    assert_true(text_unescape("a+b%20c", 7, out, sizeof(out)));
    assert_string_equal(out, "a b c");
    assert_true(text_unescape("%2B%25", 6, out, sizeof(out)));
    assert_string_equal(out, "+%");
    assert_true(text_unescape("%41", 3, out, sizeof(out))); /* escape at the very end */
    assert_string_equal(out, "A");
    assert_true(text_unescape("%C3%A9", 6, out, sizeof(out)));
    assert_string_equal(out, "\xC3\xA9");
    assert_true(text_unescape("abcdef", 3, out, sizeof(out))); /* only len bytes */
    assert_string_equal(out, "abc");
}

static void test_unescape_bad(void **state)
{
    (void)state;
    char out[32];
    assert_false(text_unescape("%", 1, out, sizeof(out)));
    assert_false(text_unescape("%4", 2, out, sizeof(out)));
    assert_false(text_unescape("ab%", 3, out, sizeof(out)));
    assert_false(text_unescape("ab%4", 4, out, sizeof(out)));
    assert_false(text_unescape("%zz", 3, out, sizeof(out)));
    assert_false(text_unescape("%4g", 3, out, sizeof(out)));
    assert_false(text_unescape("%g4", 3, out, sizeof(out)));
    assert_false(text_unescape("% 41", 4, out, sizeof(out)));
    assert_false(text_unescape("%00", 3, out, sizeof(out))); /* no NUL inside a value */
    assert_false(text_unescape("%%41", 4, out, sizeof(out)));
    /* "%41" cut to 2 bytes by len: the escape is incomplete. */
    assert_false(text_unescape("%41", 2, out, sizeof(out)));
}

static void test_unescape_capacity(void **state)
{
    (void)state;
    char out[8];
    memset(out, 'X', sizeof(out));
    assert_true(text_unescape("abcdefg", 7, out, 8)); /* 7 + NUL fits exactly */
    assert_string_equal(out, "abcdefg");
    assert_false(text_unescape("abcdefgh", 8, out, 8));
    memset(out, 'X', sizeof(out));
    assert_false(text_unescape("abcdefgh", 8, out, 4));
    assert_int_equal(out[4], 'X'); /* nothing written past cap */
    assert_true(text_unescape("%41%42%43", 9, out, 4)); /* 9 in, 3 out: fits */
    assert_string_equal(out, "ABC");
    assert_true(text_unescape("", 0, out, 1));
    assert_string_equal(out, "");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_empty_and_unknown),
        cmocka_unit_test(test_offset),
        cmocka_unit_test(test_offset_bad),
        cmocka_unit_test(test_duration),
        cmocka_unit_test(test_dvr),
        cmocka_unit_test(test_at),
        cmocka_unit_test(test_at_bad),
        cmocka_unit_test(test_offset_and_at),
        cmocka_unit_test(test_long_values),
        cmocka_unit_test(test_long_unknown_ignored),
        cmocka_unit_test(test_at_literal_plus),
        cmocka_unit_test(test_time_unix),
        cmocka_unit_test(test_time_iso),
        cmocka_unit_test(test_time_long),
        cmocka_unit_test(test_unescape),
        cmocka_unit_test(test_unescape_bad),
        cmocka_unit_test(test_unescape_capacity),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
