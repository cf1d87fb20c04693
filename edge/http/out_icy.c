/* out_icy.c - ICY metadata for listeners that send `Icy-MetaData: 1` (Shoutcast/Icecast
 * convention: `icy-metaint: N` audio bytes, then a length byte and length*16 bytes of
 * `StreamTitle='...';StreamUrl='...';`, a lone zero byte when the title is unchanged;
 * docs/architecture.md §7.5).
 *
 * The mount's title changes and their blocks are the core's (edge/core/titles.c); a listener
 * sends the title that applies at its own position, holding a reference to the block while it
 * is half-sent: a time-shifted listener hears the titles of its time, and a late joiner's first
 * block carries the current one.
 */
#include "http.h"
#include "preroll.h"

static const uint8_t icy_unchanged = 0;
/* After a preroll clip on a mount that never had a title: clear the clip's name (§7.14). */
static const uint8_t icy_no_title[] = {1, 'S', 't', 'r', 'e', 'a', 'm', 'T', 'i', 't', 'l', 'e',
                                       '=', '\'', '\'', ';', 0};

void icy_release(struct elistener *l)
{
    msgref_put(l->meta);
    l->meta = NULL;
    l->meta_ptr = NULL;
}

void icy_meta_begin(struct elistener *l, uint64_t abs)
{
    const struct title_change *tc = titles_at(&l->mount->titles, abs);
    if (tc && tc->id != l->title_sent) {
        l->meta = msgref_get(tc->block);
        l->meta_ptr = tc->block->data;
        l->meta_len = tc->block->len;
        l->title_sent = tc->id;
    } else if (!tc && l->title_sent == PREROLL_TITLE_ID) {
        l->meta_ptr = icy_no_title;
        l->meta_len = sizeof(icy_no_title);
        l->title_sent = 0;
    } else {
        l->meta_ptr = &icy_unchanged;
        l->meta_len = 1;
    }
    l->meta_off = 0;
}
