/*
 * icy.h - ICY (Shoutcast/Icecast) in-band metadata: demultiplexing a received stream and
 * building metadata blocks for listeners.
 *
 * Convention (Shoutcast/Icecast, no formal spec): with `Icy-MetaData: 1` the server answers
 * `icy-metaint: N`, then sends N audio bytes, one length byte L, L*16 bytes of metadata text
 * (`StreamTitle='...';StreamUrl='...';`, NUL-padded), N audio bytes, and so on. L = 0 means
 * "unchanged".
 */
#ifndef FC_ICY_H
#define FC_ICY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "fc.h"

#define ICY_META_MAX (255 * 16)  /* largest metadata block body, bytes */
#define ICY_METAINT_MAX 1048576   /* we refuse larger icy-metaint values */
#define ICY_FIELD_MAX 4080        /* bytes kept of a title or url (a whole ICY block body) */

/* Called with runs of audio bytes (borrowed, valid during the call). */
typedef void (*icy_audio_fn)(void *ctx, const uint8_t *data, size_t len);
/* Called once per non-empty metadata block with the parsed StreamTitle/StreamUrl
 * (NUL-terminated, "" when absent; borrowed). */
typedef void (*icy_meta_fn)(void *ctx, const char *title, const char *url);

struct icy_demux {
    uint32_t metaint;        /* audio bytes between blocks; 0 = no metadata in the stream */
    uint32_t audio_left;     /* audio bytes until the next length byte */
    uint32_t meta_left;      /* metadata bytes still to collect (0 = expecting length byte or audio) */
    bool in_meta;            /* collecting a metadata block */
    uint32_t meta_len;       /* bytes collected in meta */
    char meta[ICY_META_MAX + 1];
    uint64_t blocks;         /* non-empty metadata blocks seen */
};

/* Start demultiplexing with `metaint` (0: everything is audio). */
void icy_demux_init(struct icy_demux *d, uint32_t metaint);

/* Split `len` bytes of received data into audio and metadata, calling the callbacks in order.
 * Never fails: garbage in metadata just yields empty fields. */
void icy_demux_feed(struct icy_demux *d, const uint8_t *data, size_t len, icy_audio_fn audio,
                    icy_meta_fn meta, void *ctx);

/*
 * Extract StreamTitle and StreamUrl from a metadata text `text` (`len` bytes, may contain NULs
 * and padding). Values end at the `';` that closes them. Outputs are NUL-terminated, truncated
 * to ICY_FIELD_MAX bytes, "" if absent.
 */
void icy_parse_meta(const char *text, size_t len, char title[ICY_FIELD_MAX + 1],
                    char url[ICY_FIELD_MAX + 1]);

/*
 * Build a metadata block for listeners: length byte then `StreamTitle='title';` (and
 * `StreamUrl='url';` when url is non-empty) padded with NULs to a multiple of 16. A `'` inside
 * the title is kept (players tolerate it); bytes beyond 255*16 are cut. Writes at most
 * 1 + ICY_META_MAX bytes to `out`; returns the total length written (>= 1).
 */
size_t icy_meta_block(const char *title, const char *url, uint8_t *out);

#endif
