/*
 * fuzz_pool.h - an allocator for the large buffers of the edge files a fuzz target compiles in
 * (each stream's 2 MiB reorder ring, the persist loader's 1 MiB block buffer): under ASan every
 * fresh large allocation is mapped and its shadow poisoned, which took 90 % of the time. A freed
 * block is kept poisoned (a use after free still reports) and handed out again, like a malloc
 * that reuses memory; calloc still zeroes. Include after fuzz_check.h, then
 * `#define malloc pool_malloc` (calloc, realloc, free) around the files compiled in.
 * POOL_N (blocks remembered) may be defined before.
 */
#ifndef FC_FUZZ_POOL_H
#define FC_FUZZ_POOL_H

#include <sanitizer/asan_interface.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define POOL_MIN (16u << 10)
#ifndef POOL_N
#define POOL_N 256
#endif
static struct {
    void *p;
    size_t n;
    bool used;
} pool[POOL_N];

static void *pool_malloc(size_t n)
{
    if (n < POOL_MIN)
        return malloc(n);
    int spare = -1;
    for (int i = 0; i < POOL_N; i++) {
        if (pool[i].p && !pool[i].used && pool[i].n == n) {
            pool[i].used = true;
            ASAN_UNPOISON_MEMORY_REGION(pool[i].p, n);
            return pool[i].p;
        }
        if (!pool[i].p && spare < 0)
            spare = i;
    }
    void *p = malloc(n);
    if (p && spare >= 0)
        pool[spare].p = p, pool[spare].n = n, pool[spare].used = true;
    return p;
}

static void *pool_calloc(size_t k, size_t n)
{
    if (n && k > SIZE_MAX / n)
        return NULL;
    void *p = pool_malloc(k * n);
    if (p)
        memset(p, 0, k * n);
    return p;
}

static void pool_free(void *p)
{
    if (!p)
        return;
    for (int i = 0; i < POOL_N; i++)
        if (pool[i].p == p) {
            CHECK(pool[i].used); /* a double free */
            pool[i].used = false;
            ASAN_POISON_MEMORY_REGION(p, pool[i].n);
            return;
        }
    free(p);
}

__attribute__((unused)) static void *pool_realloc(void *p, size_t n)
{
    for (int i = 0; p && i < POOL_N; i++)
        if (pool[i].p == p) {
            void *q = pool_malloc(n);
            if (q)
                memcpy(q, p, pool[i].n < n ? pool[i].n : n), pool_free(p);
            return q;
        }
    return realloc(p, n);
}

#endif
