/* titles.c - see titles.h. The ICY block format (a length byte, then length * 16 bytes of
 * `StreamTitle='...';StreamUrl='...';`) is built by shared/icy.c. */
#include <string.h>
#include "icy.h"
#include "titles.h"

void titles_add(struct title_ring *t, uint64_t abs, const char *title, const char *url)
{
    uint8_t block[1 + ICY_META_MAX];
    size_t n = icy_meta_block(title, url, block);
    struct msgref *ref = msgref_new((uint32_t)n);
    if (!ref)
        return;
    memcpy(ref->data, block, n);
    if (t->n == EDGE_TITLES_MAX) {
        msgref_put(t->ring[t->head].block);
        t->head = (t->head + 1) % EDGE_TITLES_MAX;
        t->n--;
    }
    struct title_change *tc = &t->ring[(t->head + t->n) % EDGE_TITLES_MAX];
    tc->abs = abs;
    tc->id = ++t->ids;
    tc->block = ref;
    t->n++;
}

void titles_free(struct title_ring *t)
{
    while (t->n) {
        msgref_put(t->ring[t->head].block);
        t->head = (t->head + 1) % EDGE_TITLES_MAX;
        t->n--;
    }
}

const struct title_change *titles_at(const struct title_ring *t, uint64_t abs)
{
    for (uint32_t i = t->n; i > 0; i--) {
        const struct title_change *tc = &t->ring[(t->head + i - 1) % EDGE_TITLES_MAX];
        if (tc->abs <= abs)
            return tc;
    }
    return t->n ? &t->ring[t->head] : NULL; /* older than we remember */
}

bool titles_adopt(struct title_ring *t, uint64_t abs, uint64_t id, const uint8_t *block, size_t n)
{
    if (id <= t->ids || n == 0 || n > 1 + ICY_META_MAX || t->n == EDGE_TITLES_MAX ||
        (size_t)block[0] * 16 + 1 != n ||
        (t->n && abs < t->ring[(t->head + t->n - 1) % EDGE_TITLES_MAX].abs))
        return false; /* an ICY block is its length byte and that many 16-byte units */
    struct msgref *ref = msgref_new((uint32_t)n);
    if (!ref)
        return false;
    memcpy(ref->data, block, n);
    struct title_change *tc = &t->ring[(t->head + t->n) % EDGE_TITLES_MAX];
    tc->abs = abs;
    tc->id = t->ids = id;
    tc->block = ref;
    t->n++;
    return true;
}
