/*
 * fuzz_api_tokens.c - libFuzzer target for the edge's --api-token-file parser
 * (edge/http/api_tokens.c: `NAME TOKEN [ro]` per line).
 *
 * The input is the file, written to a memfd and read through /proc/self/fd/N as the edge reads
 * its path at start. Checks, besides the sanitizers: a file is accepted exactly when every
 * non-blank, non-comment line has a name of 1..API_TOKEN_NAME_MAX bytes, a token of 16..254
 * bytes and at most the flag "ro" (nothing more), lines are at most 510 bytes, there are 1..API_TOKENS_MAX
 * tokens (decided here independently); then each accepted token is found by hashing it, its
 * name and read-only flag match, and a refused file leaves a message.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "../../edge/http/api_tokens.c"

#include "fuzz_check.h"

static bool is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

struct want {
    char name[64], tok[256];
    bool ro;
};

/* The same rules, independently: returns the expected token count or -1 (refused). */
static int expect(const uint8_t *d, size_t n, struct want *w, int max)
{
    int count = 0;
    size_t i = 0;
    while (i < n) {
        size_t e = i;
        while (e < n && d[e] != '\n')
            e++;
        if (e - i > 510)
            return -1;
        if (memchr(d + i, 0, e - i))
            return -2; /* a NUL cuts fgets' view of the line: not modelled */
        char f[3][512];
        int k = 0;
        size_t p = i;
        while (k < 4) {
            while (p < e && is_space((char)d[p]))
                p++;
            if (p >= e)
                break;
            size_t q = p;
            while (q < e && !is_space((char)d[q]))
                q++;
            if (k < 3) {
                memcpy(f[k], d + p, q - p);
                f[k][q - p] = 0;
            }
            k++;
            p = q;
        }
        i = e + 1;
        if (k == 0 || f[0][0] == '#')
            continue;
        if (k < 2 || k > 3 || strlen(f[0]) > API_TOKEN_NAME_MAX || strlen(f[1]) < 16 ||
            strlen(f[1]) > 254 || (k == 3 && strcmp(f[2], "ro") != 0) || count == max)
            return -1;
        snprintf(w[count].name, sizeof(w[count].name), "%s", f[0]);
        snprintf(w[count].tok, sizeof(w[count].tok), "%s", f[1]);
        w[count].ro = k >= 3;
        count++;
    }
    return count ? count : -1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int fd = -1;
    static struct ehttp h;
    static struct want w[API_TOKENS_MAX];
    if (fd < 0)
        fd = memfd_create("fuzz-tokens", MFD_CLOEXEC);
    CHECK(fd >= 0);
    CHECK(ftruncate(fd, 0) == 0 && pwrite(fd, data, size, 0) == (ssize_t)size);
    char path[64], why[256] = "";
    snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
    memset(&h, 0, sizeof(h));
    bool ok = admin_load_tokens(&h, path, why, sizeof(why));
    int want = expect(data, size, w, API_TOKENS_MAX);
    if (want == -2 || (size && memchr(data, 0, size)))
        return 0; /* fgets stops at NUL inside a line: only "no crash" is checked */
    CHECK(ok == (want > 0));
    if (!ok) {
        CHECK(why[0] != 0);
        return 0;
    }
    CHECK(h.n_tokens == want);
    for (int i = 0; i < want; i++) {
        uint8_t hash[32];
        api_token_hash(w[i].tok, strlen(w[i].tok), hash);
        CHECK(memcmp(hash, h.tokens[i].hash, 32) == 0);
        CHECK(strcmp(h.tokens[i].name, w[i].name) == 0 && h.tokens[i].ro == w[i].ro);
    }
    return 0;
}
