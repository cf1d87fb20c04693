/*
 * persist.h - the rewind buffer on disk (--rewind-dir), so a restarted edge still serves the
 * hours before its restart and resumes every stream where it stopped.
 *
 * One file per mount, `<dir>/<mount>.rewind`, written to `<file>.tmp` then renamed. Format v1:
 *   "FCRW" | u32 version (1) | blocks...
 *   block: u32 type | u32 length | 16-byte BLAKE2b of (type, length, payload) | payload
 *   type 1 (first): JSON state: mount, codec, out_next_pts_us, src_end_us, active stream and
 *                   every stream's (encoder, session, priority, next_seq)
 *   type 2: frame records: u64 pts_us | u32 dur_us | u32 len | frame bytes, repeated
 * Integers are big-endian; lengths are 32-bit; a frames block holds at most PERSIST_BLOCK_BYTES.
 * Loading keeps the valid prefix: a truncated or corrupt block ends the file (logged), never a
 * crash. Periodic saves run in a forked child so the loop never blocks on disk.
 */
#ifndef FC_PERSIST_H
#define FC_PERSIST_H

#include <stdio.h>
#include "core.h"

#define PERSIST_VERSION 1
#define PERSIST_BLOCK_BYTES (1u << 20)
#define PERSIST_STATE_MAX (64u << 10)

/* Write mount `m` to `path` (via path.tmp + rename). FC_IO with errno on failure. */
enum fc_err persist_save_mount(struct emount *m, const char *path);

/* Read `path` into a new mount of `e`. Returns FC_OK if a mount was made (possibly from a
 * prefix of the file: `*blocks_dropped` counts what was cut), FC_PROTO / FC_IO if nothing
 * usable. `*why` says what ended the file early. */
enum fc_err persist_load_mount(struct core *e, const char *path, uint64_t *frames_loaded,
                               uint64_t *blocks_dropped, const char **why);

/* Load every `*.rewind` file of --rewind-dir (logged). */
void persist_load_all(struct core *e);

/* Save every mount now, in this process (shutdown). */
void persist_save_all(struct core *e);

/* Start the periodic saver (fork per save). */
void persist_start(struct core *e);
void persist_stop(struct core *e);

#endif
