/*
 * titles.h - a mount's recent title changes, each with the buffer position it applies from and
 * its ICY metadata block built once (docs/architecture.md §5.10, §7.5).
 *
 * The blocks are data of the mount: reference-counted (shared/msgref), so a reader half-way
 * through sending one keeps it alive after the ring has dropped it. No HTTP here: the HTTP side
 * looks a title up by a listener's position (titles_at) and sends its block.
 */
#ifndef FC_TITLES_H
#define FC_TITLES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "outq.h"

#define EDGE_TITLES_MAX 256 /* title changes remembered per mount */

/* A title and where in the rewind buffer it starts. */
struct title_change {
    uint64_t abs;         /* buffer position from which it applies */
    uint64_t id;          /* increasing per mount, from 1 */
    struct msgref *block; /* ICY metadata block (length byte + text), reference-counted */
};

/* Ring of the last EDGE_TITLES_MAX changes, oldest at `head`. Zeroed = empty. */
struct title_ring {
    struct title_change ring[EDGE_TITLES_MAX];
    uint32_t head, n;
    uint64_t ids; /* id of the newest change */
};

/* Record `title` / `url` (NUL-terminated) as applying from buffer position `abs`; the oldest
 * change is dropped when the ring is full. Out of memory: the change is not recorded. */
void titles_add(struct title_ring *t, uint64_t abs, const char *title, const char *url);

/* The change that applies at buffer position `abs` (the oldest one if `abs` is older than every
 * change remembered), or NULL when none was ever recorded. Borrowed: valid until the next
 * titles_add / titles_free; take a msgref_get() of its block to keep it longer. */
const struct title_change *titles_at(const struct title_ring *t, uint64_t abs);

/* Release every change (their blocks live on while a reader holds a reference). */
void titles_free(struct title_ring *t);

/* Handoff restart (edge/edge_handoff.c): append a change as the old process held it (`id` above every
 * id held, `block` the ICY block of `n` bytes, copied). false on a bad id or size, a full ring or
 * no memory. */
bool titles_adopt(struct title_ring *t, uint64_t abs, uint64_t id, const uint8_t *block, size_t n);

#endif
