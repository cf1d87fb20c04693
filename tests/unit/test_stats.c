/*
 * test_stats.c - counters described once in a table of struct stat_def (shared/stats.c) and read
 * by every output: stat_value() for each field kind and for getters, stats_json() types and
 * values, stats_log() lines (integers without decimals, other doubles with 3, truncation), the
 * Prometheus text format 0.0.4 (prom_family, prom_sample, prom_table, prom_label escaping and
 * truncation, histograms, the process_* families), checked as exact text, and a whole sample
 * exposition fed to `promtool check metrics` (parser and linter) when promtool is installed.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <fcntl.h>

#include "../../shared/stats.c"

/* ---- a table over a test object ---- */

struct obj {
    uint64_t frames;
    uint32_t small;
    uint32_t after_small; /* must not leak into `small` */
    double ratio;
    bool up;
    uint64_t delay_us;
    uint64_t hidden;
};

static double twice_ratio(const void *o)
{
    return ((const struct obj *)o)->ratio * 2;
}

static const struct stat_def table[] = {
    {"frames", "frames_total", "Frames seen.", STAT_COUNTER, STAT_U64, offsetof(struct obj, frames),
     NULL, 0},
    {"small", "small", "A 32-bit gauge.", STAT_GAUGE, STAT_U32, offsetof(struct obj, small), NULL,
     0},
    {"ratio", "ratio", "A double gauge.", STAT_GAUGE, STAT_DOUBLE, offsetof(struct obj, ratio),
     NULL, 0},
    {"up", "up", "1 while up.", STAT_GAUGE, STAT_BOOL, offsetof(struct obj, up), NULL, 0},
    {"twice", "twice_ratio", "From a getter.", STAT_GAUGE, STAT_DOUBLE, 0, twice_ratio, 0},
    {"delay_us", "delay_seconds", "Scaled to seconds.", STAT_GAUGE, STAT_U64,
     offsetof(struct obj, delay_us), NULL, 1e-6},
    {"hidden", NULL, NULL, STAT_COUNTER, STAT_U64, offsetof(struct obj, hidden), NULL, 0},
};

static struct obj sample_obj(void)
{
    struct obj o;
    memset(&o, 0, sizeof(o));
    o.frames = 42;
    o.small = 7;
    o.after_small = 0xFFFFFFFFu;
    o.ratio = 0.5;
    o.up = true;
    o.delay_us = 1500000;
    o.hidden = 9;
    return o;
}

/* The text built so far, NUL-terminated (prom_printf keeps it so). */
static const char *text(const struct prom *p)
{
    assert_false(p->oom);
    return p->buf ? p->buf : "";
}

#define assert_text(p, want)                                                                       \
    do {                                                                                           \
        const char *got_ = text(p);                                                                \
        if (strcmp(got_, (want)) != 0)                                                             \
            fail_msg("got:\n%s\nwant:\n%s", got_, (want));                                         \
    } while (0)

/* ---- stat_value ---- */

static void test_stat_value_kinds(void **state)
{
    struct obj o = sample_obj();
    assert_true(stat_value(&table[0], &o) == 42.0);
    assert_true(stat_value(&table[1], &o) == 7.0); /* 32 bits only: after_small not read */
    assert_true(stat_value(&table[2], &o) == 0.5);
    assert_true(stat_value(&table[3], &o) == 1.0);
    assert_true(stat_value(&table[4], &o) == 1.0); /* the getter, not the field at off 0 */
    assert_true(stat_value(&table[5], &o) == 1500000.0); /* unscaled */
    o.up = false;
    o.small = 0xFFFFFFFFu;
    o.after_small = 0;
    o.frames = 1ull << 53;
    o.ratio = -3.25;
    assert_true(stat_value(&table[3], &o) == 0.0);
    assert_true(stat_value(&table[1], &o) == 4294967295.0);
    assert_true(stat_value(&table[0], &o) == 9007199254740992.0);
    assert_true(stat_value(&table[2], &o) == -3.25);
    assert_true(stat_value(&table[4], &o) == -6.5);
}

/* ---- JSON ---- */

static void test_stats_json(void **state)
{
    struct obj o = sample_obj();
    json_t *j = json_object();
    stats_json(j, table, STAT_N(table), &o);
    assert_int_equal(json_object_size(j), STAT_N(table)); /* unexported entries too */
    json_t *v;
    v = json_object_get(j, "frames");
    assert_true(json_is_integer(v));
    assert_int_equal(json_integer_value(v), 42);
    v = json_object_get(j, "small");
    assert_true(json_is_integer(v));
    assert_int_equal(json_integer_value(v), 7);
    v = json_object_get(j, "ratio");
    assert_true(json_is_real(v));
    assert_true(json_real_value(v) == 0.5);
    v = json_object_get(j, "up");
    assert_true(json_is_true(v));
    v = json_object_get(j, "twice");
    assert_true(json_is_real(v));
    assert_true(json_real_value(v) == 1.0);
    v = json_object_get(j, "delay_us"); /* JSON is unscaled */
    assert_true(json_is_integer(v));
    assert_int_equal(json_integer_value(v), 1500000);
    v = json_object_get(j, "hidden");
    assert_true(json_is_integer(v));
    assert_int_equal(json_integer_value(v), 9);
    /* a real that happens to be integral is still a real; false is a boolean */
    o.ratio = 3;
    o.up = false;
    o.frames = 1ull << 53;
    stats_json(j, table, STAT_N(table), &o);
    assert_true(json_is_real(json_object_get(j, "ratio")));
    assert_true(json_is_false(json_object_get(j, "up")));
    assert_int_equal(json_integer_value(json_object_get(j, "frames")), 9007199254740992ll);
    char *s = json_dumps(j, JSON_SORT_KEYS | JSON_COMPACT);
    assert_string_equal(s, "{\"delay_us\":1500000,\"frames\":9007199254740992,\"hidden\":9,"
                           "\"ratio\":3.0,\"small\":7,\"twice\":6.0,\"up\":false}");
    free(s);
    json_decref(j);
}

/* ---- stats lines ---- */

static void test_stats_log_format(void **state)
{
    struct obj o = sample_obj();
    char buf[256];
    size_t n = stats_log(buf, sizeof(buf), table, STAT_N(table), &o);
    const char *want = " frames=42 small=7 ratio=0.500 up=1 twice=1 delay_us=1500000 hidden=9";
    assert_string_equal(buf, want);
    assert_int_equal(n, strlen(want));
    /* integral doubles without decimals, others with exactly 3 */
    o.ratio = 3;
    o.up = false;
    stats_log(buf, sizeof(buf), table, STAT_N(table), &o);
    assert_string_equal(buf, " frames=42 small=7 ratio=3 up=0 twice=6 delay_us=1500000 hidden=9");
    o.ratio = 1.0 / 3;
    stats_log(buf, sizeof(buf), table, 5, &o);
    assert_string_equal(buf, " frames=42 small=7 ratio=0.333 up=0 twice=0.667");
    o.ratio = -1.25;
    o.frames = 18446744073709551615ull;
    stats_log(buf, sizeof(buf), table, 5, &o);
    assert_string_equal(buf, " frames=18446744073709551616 small=7 ratio=-1.250 up=0 twice=-2.500");
    /* huge and non-finite doubles (never cast to an integer out of range) */
    o.ratio = 1e20;
    stats_log(buf, sizeof(buf), table + 2, 1, &o);
    assert_string_equal(buf, " ratio=100000000000000000000.000");
    o.ratio = NAN;
    stats_log(buf, sizeof(buf), table + 2, 1, &o);
    assert_string_equal(buf, " ratio=nan");
    o.ratio = -1.0 / 0.0;
    stats_log(buf, sizeof(buf), table + 2, 1, &o);
    assert_string_equal(buf, " ratio=-inf");
    o.ratio = 4e18;
    stats_log(buf, sizeof(buf), table + 2, 1, &o);
    assert_string_equal(buf, " ratio=4000000000000000000");
    /* an empty table writes an empty string */
    buf[0] = 'x';
    assert_int_equal(stats_log(buf, sizeof(buf), table, 0, &o), 0);
    assert_string_equal(buf, "");
}

/* Every capacity from 0 to past the full line: a NUL-terminated prefix of the full line, the
 * returned length is its length, nothing written at or past `cap`. */
static void test_stats_log_truncation(void **state)
{
    struct obj o = sample_obj();
    char full[256];
    size_t n_full = stats_log(full, sizeof(full), table, STAT_N(table), &o);
    assert_true(n_full > 20 && n_full < sizeof(full) - 8);
    for (size_t cap = 0; cap <= n_full + 3; cap++) {
        char buf[300];
        memset(buf, 0xA5, sizeof(buf));
        size_t n = stats_log(buf, cap, table, STAT_N(table), &o);
        for (size_t i = cap; i < sizeof(buf); i++)
            if ((unsigned char)buf[i] != 0xA5)
                fail_msg("cap %zu: byte %zu written", cap, i);
        if (cap == 0) {
            assert_int_equal(n, 0);
            continue;
        }
        assert_true(n < cap);
        assert_int_equal(strlen(buf), n);
        assert_memory_equal(buf, full, n);
        assert_int_equal(n, cap > n_full ? n_full : cap - 1);
    }
}

/* ---- Prometheus text ---- */

static void test_prom_family_and_sample(void **state)
{
    struct obj o = sample_obj();
    struct prom p = {0};
    prom_family(&p, "fc_", &table[0]);
    prom_family(&p, "fc_", &table[6]); /* not exported: nothing */
    prom_sample(&p, "fc_", &table[6], "", &o);
    prom_sample(&p, "fc_", &table[0], "", &o);
    prom_sample(&p, "fc_", &table[0], NULL, &o);
    prom_sample(&p, "fc_", &table[0], "mount=\"m\"", &o);
    assert_text(&p, "# HELP fc_frames_total Frames seen.\n"
                    "# TYPE fc_frames_total counter\n"
                    "fc_frames_total 42\n"
                    "fc_frames_total 42\n"
                    "fc_frames_total{mount=\"m\"} 42\n");
    free(p.buf);

    /* HELP text escapes backslash and newline (and nothing else) */
    static const struct stat_def odd = {"odd", "odd", "Back\\slash, \"quoted\",\nnext line.",
                                        STAT_GAUGE, STAT_U64, 0, NULL, 0};
    memset(&p, 0, sizeof(p));
    prom_family(&p, "fc_", &odd);
    prom_histogram_head(&p, "fc_", "h_seconds", "A\\b\nc");
    assert_text(&p, "# HELP fc_odd Back\\\\slash, \"quoted\",\\nnext line.\n"
                    "# TYPE fc_odd gauge\n"
                    "# HELP fc_h_seconds A\\\\b\\nc\n"
                    "# TYPE fc_h_seconds histogram\n");
    free(p.buf);

    /* values: integers exact, others %.9g, scale applied (to exports only) */
    memset(&p, 0, sizeof(p));
    prom_family(&p, "fc_", &table[5]);
    prom_sample(&p, "fc_", &table[5], "", &o); /* 1500000 µs */
    o.delay_us = 20000000;
    prom_sample(&p, "fc_", &table[5], "", &o);
    o.delay_us = 1234;
    prom_sample(&p, "fc_", &table[5], "", &o);
    o.ratio = 1.0 / 3;
    prom_sample(&p, "fc_", &table[2], "", &o);
    o.ratio = -2;
    prom_sample(&p, "fc_", &table[2], "", &o);
    o.ratio = 1e20;
    prom_sample(&p, "fc_", &table[2], "", &o);
    o.ratio = NAN;
    prom_sample(&p, "fc_", &table[2], "", &o);
    o.ratio = -NAN; /* what 0.0 / 0.0 gives on x86: printf writes "-nan" */
    prom_sample(&p, "fc_", &table[2], "", &o);
    o.ratio = INFINITY;
    prom_sample(&p, "fc_", &table[2], "", &o);
    o.ratio = -INFINITY;
    prom_sample(&p, "fc_", &table[2], "", &o);
    o.frames = 9007199254740993ull; /* 2^53 + 1: past 9e15, not printed as an integer */
    prom_sample(&p, "fc_", &table[0], "", &o);
    assert_text(&p, "# HELP fc_delay_seconds Scaled to seconds.\n"
                    "# TYPE fc_delay_seconds gauge\n"
                    "fc_delay_seconds 1.5\n"
                    "fc_delay_seconds 20\n"
                    "fc_delay_seconds 0.001234\n"
                    "fc_ratio 0.333333333\n"
                    "fc_ratio -2\n"
                    "fc_ratio 1e+20\n"
                    "fc_ratio NaN\n"
                    "fc_ratio NaN\n"
                    "fc_ratio +Inf\n"
                    "fc_ratio -Inf\n"
                    "fc_frames_total 9.00719925e+15\n");
    free(p.buf);
}

/* HELP/TYPE once per family, then one sample per object in order, labels as given; families
 * with no object still get their HELP/TYPE. */
static void test_prom_table(void **state)
{
    struct obj o1 = sample_obj(), o2 = sample_obj();
    o2.frames = 0;
    o2.small = 3;
    o2.ratio = 0.25;
    o2.up = false;
    o2.delay_us = 250000;
    const void *objs[] = {&o1, &o2};
    const char *labels[] = {"mount=\"a\"", "mount=\"b\",encoder=\"x\""};
    struct prom p = {0};
    prom_table(&p, "fc_", table, STAT_N(table), objs, labels, 2);
    assert_text(&p, "# HELP fc_frames_total Frames seen.\n"
                    "# TYPE fc_frames_total counter\n"
                    "fc_frames_total{mount=\"a\"} 42\n"
                    "fc_frames_total{mount=\"b\",encoder=\"x\"} 0\n"
                    "# HELP fc_small A 32-bit gauge.\n"
                    "# TYPE fc_small gauge\n"
                    "fc_small{mount=\"a\"} 7\n"
                    "fc_small{mount=\"b\",encoder=\"x\"} 3\n"
                    "# HELP fc_ratio A double gauge.\n"
                    "# TYPE fc_ratio gauge\n"
                    "fc_ratio{mount=\"a\"} 0.5\n"
                    "fc_ratio{mount=\"b\",encoder=\"x\"} 0.25\n"
                    "# HELP fc_up 1 while up.\n"
                    "# TYPE fc_up gauge\n"
                    "fc_up{mount=\"a\"} 1\n"
                    "fc_up{mount=\"b\",encoder=\"x\"} 0\n"
                    "# HELP fc_twice_ratio From a getter.\n"
                    "# TYPE fc_twice_ratio gauge\n"
                    "fc_twice_ratio{mount=\"a\"} 1\n"
                    "fc_twice_ratio{mount=\"b\",encoder=\"x\"} 0.5\n"
                    "# HELP fc_delay_seconds Scaled to seconds.\n"
                    "# TYPE fc_delay_seconds gauge\n"
                    "fc_delay_seconds{mount=\"a\"} 1.5\n"
                    "fc_delay_seconds{mount=\"b\",encoder=\"x\"} 0.25\n");
    free(p.buf);

    memset(&p, 0, sizeof(p));
    prom_table(&p, "fc_", table, 2, NULL, NULL, 0);
    assert_text(&p, "# HELP fc_frames_total Frames seen.\n"
                    "# TYPE fc_frames_total counter\n"
                    "# HELP fc_small A 32-bit gauge.\n"
                    "# TYPE fc_small gauge\n");
    free(p.buf);

    /* no label: bare names */
    memset(&p, 0, sizeof(p));
    const char *none[] = {""};
    prom_table(&p, "x_", table, 1, objs, none, 1);
    assert_text(&p, "# HELP x_frames_total Frames seen.\n"
                    "# TYPE x_frames_total counter\n"
                    "x_frames_total 42\n");
    free(p.buf);
}

/* The buffer grows past its first 4 KiB (and stays NUL-terminated, in one piece). */
static void test_prom_growth(void **state)
{
    struct prom p = {0};
    for (int i = 0; i < 5000; i++)
        prom_printf(&p, "line_%d %d\n", i, i);
    assert_false(p.oom);
    assert_true(p.cap > p.len);
    assert_int_equal(strlen(p.buf), p.len);
    const char *c = p.buf;
    for (int i = 0; i < 5000; i++) {
        char want[32];
        int k = snprintf(want, sizeof(want), "line_%d %d\n", i, i);
        assert_memory_equal(c, want, (size_t)k);
        c += k;
    }
    assert_int_equal(*c, '\0');
    free(p.buf);
}

/* Is s[0..n) valid UTF-8? */
static bool utf8_valid(const unsigned char *s, size_t n)
{
    for (size_t i = 0; i < n;) {
        unsigned char b = s[i];
        size_t k = b < 0x80 ? 1 : (b & 0xE0) == 0xC0 ? 2 : (b & 0xF0) == 0xE0 ? 3
                                : (b & 0xF8) == 0xF0 ? 4 : 0;
        if (k == 0 || i + k > n)
            return false;
        for (size_t j = 1; j < k; j++)
            if ((s[i + j] & 0xC0) != 0x80)
                return false;
        i += k;
    }
    return true;
}

/* `name="...` closed by an unescaped quote, escapes well formed, no raw newline. */
static void check_label_shape(const char *out, size_t n, const char *name)
{
    size_t k = strlen(name);
    assert_true(n >= k + 3);
    assert_memory_equal(out, name, k);
    assert_memory_equal(out + k, "=\"", 2);
    size_t i = k + 2;
    for (; i < n - 1; i++) {
        assert_true(out[i] != '\n' && out[i] != '"');
        if (out[i] == '\\') {
            i++;
            assert_true(i < n - 1);
            assert_true(out[i] == '\\' || out[i] == '"' || out[i] == 'n');
        }
    }
    assert_int_equal(out[n - 1], '"');
    assert_int_equal(out[n], '\0');
    assert_true(utf8_valid((const unsigned char *)out, n));
}

static void test_prom_label_escaping(void **state)
{
    char out[128];
    size_t n = prom_label(out, sizeof(out), "mount", "plain-1.x");
    assert_string_equal(out, "mount=\"plain-1.x\"");
    assert_int_equal(n, strlen(out));
    n = prom_label(out, sizeof(out), "m", "a\\b\"c\nd");
    assert_string_equal(out, "m=\"a\\\\b\\\"c\\nd\"");
    assert_int_equal(n, strlen(out));
    n = prom_label(out, sizeof(out), "m", "\"\"\\\n");
    assert_string_equal(out, "m=\"\\\"\\\"\\\\\\n\"");
    n = prom_label(out, sizeof(out), "m", "");
    assert_string_equal(out, "m=\"\"");
    assert_int_equal(n, 4);
    n = prom_label(out, sizeof(out), "m", "caf\xc3\xa9 \xe2\x82\xac"); /* UTF-8 passes through */
    assert_string_equal(out, "m=\"caf\xc3\xa9 \xe2\x82\xac\"");
}

/* Every capacity, for values full of escapes and multi-byte characters: the result fits (NUL
 * included, nothing written past cap), is a prefix of the whole label's escaped value closed by
 * a quote, never ends inside an escape or a UTF-8 sequence; or is empty when even `name=""`
 * does not fit. */
static void test_prom_label_truncation(void **state)
{
    static const char *values[] = {
        "abcdefghijklmnopqrstuvwxyz",
        "\\\\\\\\\\\\\\\\\\\\",
        "\"a\"b\"c\"d\"e\"f\"",
        "x\ny\nz\n\n\n",
        "\xc3\xa9\xc3\xa9\xe2\x82\xac\xf0\x9f\x8e\xb5\xc3\xa9\xe2\x82\xac\xf0\x9f\x8e\xb5",
        "a\\\xc3\xa9\"\xe2\x82\xac\n",
    };
    for (size_t v = 0; v < STAT_N(values); v++) {
        char full[256];
        size_t n_full = prom_label(full, sizeof(full), "label", values[v]);
        check_label_shape(full, n_full, "label");
        for (size_t cap = 0; cap <= n_full + 2; cap++) {
            char out[300];
            memset(out, 0xA5, sizeof(out));
            size_t n = prom_label(out, cap, "label", values[v]);
            for (size_t i = cap; i < sizeof(out); i++)
                if ((unsigned char)out[i] != 0xA5)
                    fail_msg("value %zu, cap %zu: byte %zu written past cap", v, cap, i);
            if (cap < sizeof("label=\"\"")) {
                assert_int_equal(n, 0);
                if (cap)
                    assert_int_equal(out[0], '\0');
                continue;
            }
            assert_true(n < cap);
            check_label_shape(out, n, "label");
            assert_memory_equal(out, full, n - 1); /* all but the closing quote: a prefix */
            if (cap > n_full)
                assert_int_equal(n, n_full);
            else
                assert_true(n + 4 >= cap); /* truncated no more than one character + escape */
        }
    }
}

static void test_prom_histogram(void **state)
{
    static const double le[] = {0.005, 0.1, 1, 25};
    static const uint64_t counts[] = {2, 3, 0, 4, 1}; /* the last: above 25 */
    struct prom p = {0};
    prom_histogram_head(&p, "fc_", "ttfb_seconds", "Time to first byte.");
    prom_histogram_series(&p, "fc_", "ttfb_seconds", "proto=\"http\"", le, 4, counts, 40.75);
    prom_histogram_series(&p, "fc_", "ttfb_seconds", "", le, 4, counts, 0.5);
    prom_histogram_series(&p, "fc_", "ttfb_seconds", NULL, le, 1, counts, 0);
    assert_text(&p, "# HELP fc_ttfb_seconds Time to first byte.\n"
                    "# TYPE fc_ttfb_seconds histogram\n"
                    "fc_ttfb_seconds_bucket{proto=\"http\",le=\"0.005\"} 2\n"
                    "fc_ttfb_seconds_bucket{proto=\"http\",le=\"0.1\"} 5\n"
                    "fc_ttfb_seconds_bucket{proto=\"http\",le=\"1\"} 5\n"
                    "fc_ttfb_seconds_bucket{proto=\"http\",le=\"25\"} 9\n"
                    "fc_ttfb_seconds_bucket{proto=\"http\",le=\"+Inf\"} 10\n"
                    "fc_ttfb_seconds_sum{proto=\"http\"} 40.75\n"
                    "fc_ttfb_seconds_count{proto=\"http\"} 10\n"
                    "fc_ttfb_seconds_bucket{le=\"0.005\"} 2\n"
                    "fc_ttfb_seconds_bucket{le=\"0.1\"} 5\n"
                    "fc_ttfb_seconds_bucket{le=\"1\"} 5\n"
                    "fc_ttfb_seconds_bucket{le=\"25\"} 9\n"
                    "fc_ttfb_seconds_bucket{le=\"+Inf\"} 10\n"
                    "fc_ttfb_seconds_sum 0.5\n"
                    "fc_ttfb_seconds_count 10\n"
                    "fc_ttfb_seconds_bucket{le=\"0.005\"} 2\n"
                    "fc_ttfb_seconds_bucket{le=\"+Inf\"} 5\n"
                    "fc_ttfb_seconds_sum 0\n"
                    "fc_ttfb_seconds_count 5\n");
    free(p.buf);
}

/* The value of the sample line `name value` in text `t`; fails if absent. */
static double sample_value(const char *t, const char *name)
{
    size_t k = strlen(name);
    for (const char *c = t; c && *c; c = strchr(c, '\n'), c = c ? c + 1 : NULL)
        if (strncmp(c, name, k) == 0 && c[k] == ' ') {
            char *end;
            double v = strtod(c + k + 1, &end);
            assert_true(end > c + k + 1 && *end == '\n');
            return v;
        }
    fail_msg("no sample %s in:\n%s", name, t);
    return 0;
}

static unsigned count_lines_starting(const char *t, const char *prefix)
{
    unsigned n = 0;
    size_t k = strlen(prefix);
    for (const char *c = t; c && *c; c = strchr(c, '\n'), c = c ? c + 1 : NULL)
        n += strncmp(c, prefix, k) == 0;
    return n;
}

static void test_prom_process(void **state)
{
    static const char *fam[][2] = {
        {"process_cpu_seconds_total", "counter"},
        {"process_resident_memory_bytes", "gauge"},
        {"process_open_fds", "gauge"},
        {"process_start_time_seconds", "gauge"},
    };
    /* burn a little CPU so the counter has something to count */
    volatile double x = 0;
    for (long i = 0; i < 20000000; i++)
        x += (double)i * 1e-9;
    struct prom p = {0};
    prom_process(&p);
    const char *t = text(&p);
    for (size_t i = 0; i < STAT_N(fam); i++) {
        char help[128], type[128];
        snprintf(help, sizeof(help), "# HELP %s ", fam[i][0]);
        snprintf(type, sizeof(type), "# TYPE %s %s\n", fam[i][0], fam[i][1]);
        assert_int_equal(count_lines_starting(t, help), 1);
        assert_non_null(strstr(t, type));
    }
    assert_int_equal(count_lines_starting(t, "process_"), 4);
    double cpu = sample_value(t, "process_cpu_seconds_total");
    double rss = sample_value(t, "process_resident_memory_bytes");
    double fds = sample_value(t, "process_open_fds");
    double start = sample_value(t, "process_start_time_seconds");
    double now = (double)time(NULL);
    assert_true(cpu >= 0 && cpu < 3600);
    assert_true(rss >= 1 << 20 && rss < 64e9);
    assert_true(fds >= 3);
    /* the descriptors open now, counted another way (prom_process's own is closed again) */
    int open_now = 0;
    for (int fd = 0; fd < 65536; fd++)
        open_now += fcntl(fd, F_GETFD) != -1;
    assert_true(fds == open_now);
    if (!(start > now - 3600 && start <= now + 2))
        fail_msg("process_start_time_seconds %.2f, now %.0f", start, now);
    /* two more descriptors are counted as two more */
    int a = dup(0), b = dup(0);
    assert_true(a >= 0 && b >= 0);
    struct prom q = {0};
    prom_process(&q);
    assert_true(sample_value(text(&q), "process_open_fds") == fds + 2);
    close(a);
    close(b);
    free(q.buf);
    free(p.buf);
}

/* ---- the whole exposition through promtool ---- */

static bool have_promtool(void)
{
    return system("command -v promtool >/dev/null 2>&1") == 0;
}

static void test_promtool_accepts(void **state)
{
    static const struct stat_def t2[] = {
        {"bytes", "sent_bytes_total", "Bytes sent.", STAT_COUNTER, STAT_U64,
         offsetof(struct obj, frames), NULL, 0},
        {"delay", "delay_seconds", "Scaled to seconds.", STAT_GAUGE, STAT_U64,
         offsetof(struct obj, delay_us), NULL, 1e-6},
        {"ratio", "ratio", "A ratio, with \"quotes\" and a backslash \\ in its help.", STAT_GAUGE,
         STAT_DOUBLE, offsetof(struct obj, ratio), NULL, 0},
        {"up", "up", "1 while up.", STAT_GAUGE, STAT_BOOL, offsetof(struct obj, up), NULL, 0},
        {"none", "no_objects_total", "A family with no object.", STAT_COUNTER, STAT_U64, 0, NULL,
         0},
    };
    struct obj o1 = sample_obj(), o2 = sample_obj(), o3 = sample_obj();
    o2.ratio = 1.0 / 3;
    o3.ratio = 1e-7;
    struct obj o4 = sample_obj();
    o4.ratio = -NAN;
    o3.frames = 123456789012ull;
    char l1[64], l2[128], l3[96];
    prom_label(l1, sizeof(l1), "mount", "live");
    size_t k = prom_label(l2, sizeof(l2), "mount", "odd \"name\" \\ with\nnewline");
    l2[k++] = ',';
    prom_label(l2 + k, sizeof(l2) - k, "encoder", "caf\xc3\xa9");
    prom_label(l3, 24, "mount", "a-value-much-longer-than-fits\"\"\"");
    const void *objs[] = {&o1, &o2, &o3, &o4};
    const char *labels[] = {l1, l2, l3, "mount=\"nan\""};
    struct prom p = {0};
    prom_table(&p, "fctest_", t2, 4, objs, labels, 4);
    prom_table(&p, "fctest_", t2 + 4, 1, NULL, NULL, 0);
    static const double le[] = {0.001, 0.01, 0.1, 1, 10};
    static const uint64_t counts[] = {1, 0, 7, 3, 0, 2};
    prom_histogram_head(&p, "fctest_", "ttfb_seconds", "Time to first byte.");
    prom_histogram_series(&p, "fctest_", "ttfb_seconds", l1, le, 5, counts, 12.345);
    prom_histogram_series(&p, "fctest_", "ttfb_seconds", l2, le, 5, counts, 0);
    prom_histogram_head(&p, "fctest_", "plain_seconds", "No labels.");
    prom_histogram_series(&p, "fctest_", "plain_seconds", "", le, 5, counts, 1e-3);
    prom_process(&p);
    const char *t = text(&p);
    /* every family's HELP and TYPE exactly once */
    assert_int_equal(count_lines_starting(t, "# HELP "), 5 + 2 + 4);
    assert_int_equal(count_lines_starting(t, "# TYPE "), 5 + 2 + 4);
    assert_int_equal(count_lines_starting(t, "fctest_sent_bytes_total{"), 4);
    assert_int_equal(count_lines_starting(t, "fctest_ttfb_seconds_bucket{"), 12);
    assert_int_equal(t[strlen(t) - 1], '\n');

    if (!have_promtool()) {
        free(p.buf);
        print_message("NOTE: promtool not installed: the exposition was not checked by "
                      "`promtool check metrics` (install the prometheus package)\n");
        skip();
    }
    FILE *f = popen("promtool check metrics", "w");
    assert_non_null(f);
    assert_int_equal(fwrite(t, 1, p.len, f), p.len);
    int st = pclose(f);
    if (!(WIFEXITED(st) && WEXITSTATUS(st) == 0))
        fail_msg("promtool check metrics failed (status %d) on:\n%s", st, t);
    /* and promtool does reject a broken exposition (the check is not vacuous) */
    f = popen("promtool check metrics >/dev/null 2>&1", "w");
    assert_non_null(f);
    fputs("# HELP fctest_x_total X.\n# TYPE fctest_x_total counter\nfctest_x_total{a=\"b\"c\"} 1\n",
          f);
    st = pclose(f);
    assert_false(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    free(p.buf);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_stat_value_kinds),
        cmocka_unit_test(test_stats_json),
        cmocka_unit_test(test_stats_log_format),
        cmocka_unit_test(test_stats_log_truncation),
        cmocka_unit_test(test_prom_family_and_sample),
        cmocka_unit_test(test_prom_table),
        cmocka_unit_test(test_prom_growth),
        cmocka_unit_test(test_prom_label_escaping),
        cmocka_unit_test(test_prom_label_truncation),
        cmocka_unit_test(test_prom_histogram),
        cmocka_unit_test(test_prom_process),
        cmocka_unit_test(test_promtool_accepts),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
