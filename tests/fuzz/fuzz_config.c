/*
 * fuzz_config.c - libFuzzer target for the JSON config loader (shared/cli.c: `--config FILE`).
 *
 * The input is the config file. It is written to a memfd and cli_expand() is called with
 * `prog --config /proc/self/fd/N --port 8000`, the path every program takes at start-up. The
 * flag values it yields are then given to cli_double() and cli_bytes(), as the programs do.
 *
 * cli.c is compiled in with exit() routed to a longjmp (cli_fail exits 2 on bad input: that is
 * its documented answer, not a crash) and its allocations, and jansson's, tracked, so what the
 * programs leave to exit is freed after each input and LeakSanitizer still sees real leaks.
 *
 * Checks, besides the sanitizers: a file is accepted exactly when it is a JSON object without a
 * "config" key whose values are scalars, booleans, null or arrays of scalars (decided here
 * independently with json_loadb); the new argv is argv[0], then for each key in file order
 * `--key` (true), nothing (false, null), `--key VALUE` (scalar) or one `--key VALUE` per array
 * item, then the other command-line arguments, then NULL.
 */
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "cli.h"

#include "fuzz_check.h"

/* ---- tracked allocations: everything cli.c and jansson allocate, freed after each input ---- */

struct fz_block {
    struct fz_block *prev, *next;
    size_t size;
    max_align_t pad[]; /* the user's bytes start here, suitably aligned */
};

static struct fz_block live = {&live, &live, 0};
static size_t live_count;

static void *fz_malloc(size_t n)
{
    struct fz_block *b = malloc(sizeof(*b) + n);
    if (!b)
        return NULL;
    b->size = n;
    b->next = live.next;
    b->prev = &live;
    live.next->prev = b;
    live.next = b;
    live_count++;
    return b->pad;
}

static void fz_free(void *p)
{
    if (!p)
        return;
    struct fz_block *b = (struct fz_block *)((char *)p - offsetof(struct fz_block, pad));
    b->prev->next = b->next;
    b->next->prev = b->prev;
    live_count--;
    free(b);
}

static void *fz_realloc(void *p, size_t n)
{
    if (!p)
        return fz_malloc(n);
    struct fz_block *b = (struct fz_block *)((char *)p - offsetof(struct fz_block, pad));
    void *q = fz_malloc(n);
    if (!q)
        return NULL;
    memcpy(q, p, b->size < n ? b->size : n);
    fz_free(p);
    return q;
}

static char *fz_strdup(const char *s)
{
    size_t n = strlen(s) + 1;
    char *d = fz_malloc(n);
    if (d)
        memcpy(d, s, n);
    return d;
}

static void fz_free_all(void)
{
    while (live.next != &live)
        fz_free(live.next->pad);
}

/* ---- exit() as a longjmp, stderr formatted but not printed ---- */

static jmp_buf fz_jmp;
static bool fz_armed;
static int fz_status;
static char fz_msg[8192]; /* what the input made cli.c print (to stderr in the programs) */
static size_t fz_msg_len;

__attribute__((noreturn)) static void fz_exit(int status)
{
    CHECK(fz_armed);
    fz_status = status;
    longjmp(fz_jmp, 1);
}

static int fz_vfprintf(FILE *fp, const char *fmt, va_list ap)
{
    CHECK(fp == stderr);
    int n = vsnprintf(fz_msg + fz_msg_len, sizeof(fz_msg) - fz_msg_len, fmt, ap);
    CHECK(n >= 0);
    fz_msg_len += (size_t)n;
    if (fz_msg_len >= sizeof(fz_msg))
        fz_msg_len = sizeof(fz_msg) - 1;
    return n;
}

static int fz_fprintf(FILE *fp, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = fz_vfprintf(fp, fmt, ap);
    va_end(ap);
    return n;
}

#define exit fz_exit
#define malloc fz_malloc
#define realloc fz_realloc
#define strdup fz_strdup
#define fprintf fz_fprintf
#define vfprintf fz_vfprintf
#include "../../shared/cli.c"
#undef exit
#undef malloc
#undef realloc
#undef strdup
#undef fprintf
#undef vfprintf

/* ---- the harness ---- */

static int memfd = -1;
static char path[64];

static void init_once(void)
{
    if (memfd >= 0)
        return;
    json_set_alloc_funcs(fz_malloc, fz_free);
    memfd = memfd_create("fuzz-config", MFD_CLOEXEC);
    CHECK(memfd >= 0);
    snprintf(path, sizeof(path), "/proc/self/fd/%d", memfd);
}

/* What cli.c should make of `root` (loaded independently): the number of argv entries from the
 * file, or -1 if it must be refused. */
static int expected_entries(json_t *root)
{
    if (!root || !json_is_object(root))
        return -1;
    int n = 0;
    const char *key;
    json_t *v;
    json_object_foreach(root, key, v)
    {
        if (strcmp(key, "config") == 0)
            return -1;
        if (json_is_false(v) || json_is_null(v))
            continue;
        if (json_is_true(v)) {
            n += 1;
        } else if (json_is_array(v)) {
            size_t i;
            json_t *item;
            json_array_foreach(v, i, item)
            {
                if (!json_is_string(item) && !json_is_number(item))
                    return -1;
                n += 2;
            }
        } else if (json_is_string(v) || json_is_number(v)) {
            n += 2;
        } else {
            return -1;
        }
    }
    return n;
}

static bool is_flag(const char *arg, const char *key)
{
    return arg[0] == '-' && arg[1] == '-' && strcmp(arg + 2, key) == 0;
}

static bool same_scalar(const char *arg, json_t *v)
{
    char buf[64];
    if (json_is_string(v))
        return strcmp(arg, json_string_value(v)) == 0;
    if (json_is_integer(v))
        snprintf(buf, sizeof(buf), "%lld", (long long)json_integer_value(v));
    else
        snprintf(buf, sizeof(buf), "%.17g", json_real_value(v));
    return strcmp(arg, buf) == 0;
}

/* The file's part of argv, key by key in file order. */
static void check_entries(json_t *root, char **out, int n)
{
    int i = 1;
    const char *key;
    json_t *v;
    json_object_foreach(root, key, v)
    {
        if (json_is_false(v) || json_is_null(v))
            continue;
        if (json_is_true(v)) {
            CHECK(i < n && is_flag(out[i], key));
            i++;
        } else if (json_is_array(v)) {
            size_t k;
            json_t *item;
            json_array_foreach(v, k, item)
            {
                CHECK(i + 1 < n && is_flag(out[i], key) && same_scalar(out[i + 1], item));
                i += 2;
            }
        } else {
            CHECK(i + 1 < n && is_flag(out[i], key) && same_scalar(out[i + 1], v));
            i += 2;
        }
    }
}

/* Values as the programs parse them: a number or a byte count, or exit 2. */
static void parse_value(const char *arg)
{
    double d;
    uint64_t b;
    fz_msg_len = 0;
    fz_armed = true;
    if (setjmp(fz_jmp) == 0) {
        d = cli_double("fuzz", "--value", arg, -1e9, 1e9);
        CHECK(!isnan(d) && d >= -1e9 && d <= 1e9);
    } else {
        CHECK(fz_status == CLI_EXIT_USAGE);
    }
    if (setjmp(fz_jmp) == 0) {
        b = cli_bytes("fuzz", "--value", arg);
        CHECK(b <= (uint64_t)1e15);
    } else {
        CHECK(fz_status == CLI_EXIT_USAGE);
    }
    fz_armed = false;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    init_once();
    CHECK(ftruncate(memfd, 0) == 0);
    CHECK(pwrite(memfd, data, size, 0) == (ssize_t)size);

    char *args[] = {"framecast-edge", "--config", path, "--port", "8000", NULL};
    static char **argv;
    static int argc;
    argc = 5;
    argv = args;

    json_error_t jerr;
    json_t *root = json_loadb((const char *)data, size, 0, &jerr);
    int want = expected_entries(root);

    fz_status = -1;
    fz_msg_len = 0;
    fz_msg[0] = '\0';
    fz_armed = true;
    if (setjmp(fz_jmp) == 0) {
        cli_expand("framecast-edge", &argc, &argv);
        fz_armed = false;
        CHECK(want >= 0);
        CHECK(argc == 1 + want + 2 && argv != args);
        CHECK(argv[0] == args[0] && argv[argc - 2] == args[3] && argv[argc - 1] == args[4] &&
              argv[argc] == NULL);
        for (int i = 1; i <= want; i++)
            CHECK(argv[i] != NULL);
        check_entries(root, argv, 1 + want);
        for (int i = 1; i <= want; i++)
            if (argv[i][0] != '-')
                parse_value(argv[i]);
    } else {
        fz_armed = false;
        CHECK(fz_status == CLI_EXIT_USAGE);
        CHECK(want < 0);
        /* One line naming the program and the flag. */
        CHECK(strncmp(fz_msg, "framecast-edge: --config: ", 26) == 0);
        CHECK(fz_msg_len > 26 && fz_msg[fz_msg_len - 1] == '\n');
    }
    json_decref(root);
    fz_free_all(); /* the new argv (kept until exit by the programs), or what cli_fail left */
    return 0;
}
