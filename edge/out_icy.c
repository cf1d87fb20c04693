/* out_icy.c - ICY metadata for listeners that send `Icy-MetaData: 1` (Shoutcast/Icecast
 * convention: `icy-metaint: N` audio bytes, then a length byte and length*16 bytes of
 * `StreamTitle='...';StreamUrl='...';`, a lone zero byte when the title is unchanged).
 *
 * Each mount keeps its recent title changes with the buffer position they apply from, each with
 * its metadata block built once (reference-counted, so a listener half-way through sending one
 * keeps it alive). A listener sends the title that applies at its own position: a time-shifted
 * listener hears the titles of its time, and a late joiner's first block carries the current one.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "edge.h"
#include "icy.h"

static const uint8_t icy_unchanged = 0;

void icy_title_changed(struct emount *m, const char *title, const char *url)
{
    uint8_t block[1 + ICY_META_MAX];
    size_t n = icy_meta_block(title, url, block);
    struct msgref *ref = msgref_new((uint32_t)n);
    if (!ref)
        return;
    memcpy(ref->data, block, n);
    if (m->n_titles == EDGE_TITLES_MAX) {
        msgref_put(m->titles[m->titles_head].block);
        m->titles_head = (m->titles_head + 1) % EDGE_TITLES_MAX;
        m->n_titles--;
    }
    struct title_change *tc = &m->titles[(m->titles_head + m->n_titles) % EDGE_TITLES_MAX];
    tc->abs = m->rw.abs_end;
    tc->id = ++m->title_ids;
    tc->block = ref;
    m->n_titles++;
}

void icy_titles_free(struct emount *m)
{
    while (m->n_titles) {
        msgref_put(m->titles[m->titles_head].block);
        m->titles_head = (m->titles_head + 1) % EDGE_TITLES_MAX;
        m->n_titles--;
    }
}

/* The title change that applies at buffer position `abs`, or NULL. */
static const struct title_change *title_at(const struct emount *m, uint64_t abs)
{
    for (uint32_t i = m->n_titles; i > 0; i--) {
        const struct title_change *tc = &m->titles[(m->titles_head + i - 1) % EDGE_TITLES_MAX];
        if (tc->abs <= abs)
            return tc;
    }
    return m->n_titles ? &m->titles[m->titles_head] : NULL; /* older than we remember */
}

void icy_release(struct elistener *l)
{
    msgref_put(l->meta);
    l->meta = NULL;
    l->meta_ptr = NULL;
}

void icy_meta_begin(struct elistener *l, uint64_t abs)
{
    const struct title_change *tc = title_at(l->mount, abs);
    if (tc && tc->id != l->title_sent) {
        l->meta = msgref_get(tc->block);
        l->meta_ptr = tc->block->data;
        l->meta_len = tc->block->len;
        l->title_sent = tc->id;
    } else {
        l->meta_ptr = &icy_unchanged;
        l->meta_len = 1;
    }
    l->meta_off = 0;
}
