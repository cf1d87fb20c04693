/*
 * preroll.h - a clip played to a live listener before the stream (docs/architecture.md §7.14,
 * issue 11): `--preroll MOUNT=PATH` (a file, or a directory whose files rotate in name order)
 * and `--preroll-url [MOUNT=]URL` (a VAST 3/4 ad server, edge/http/vast.h, fetched by
 * edge/http/adfetch.c).
 *
 * A clip is sent at full speed right after the response head, before the live burst, which
 * then continues at its frame boundary; an ICY listener's metaint count runs through the clip
 * (blocks inside it carry the clip's name) into the live audio, whose first block carries the
 * live title. Not for HEAD, `?offset=`, `?at=`, `&duration=` or `&preroll=0` requests, and once
 * per session: a client (address, User-Agent, mount) that had one is skipped while connected
 * and for PREROLL_SESSION_GAP_S after it left, across all worker processes (a table in shared
 * memory made before they fork).
 *
 * Every function runs on the loop thread of the process serving listeners.
 */
#ifndef FC_PREROLL_H
#define FC_PREROLL_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/uio.h>
#include "http.h"

#define PREROLL_SESSION_GAP_S 60.0   /* issue 11: a reconnect within 60 s is the same session */
#define PREROLL_MOUNTS_MAX 64        /* --preroll / --preroll-url entries */
#define PREROLL_DIR_MAX 64           /* files of one --preroll directory */
#define PREROLL_ONCE_SLOTS 16384     /* shared once-per-session table (16 bytes a slot) */
#define PREROLL_ONCE_PROBE 8         /* slots probed per client */
#define PREROLL_TITLE_ID UINT64_MAX  /* elistener.title_sent after a clip: the live title is due */

struct clip;
struct adfetch;

/* One --preroll or --preroll-url entry. */
struct preroll_entry {
    char mount[WIRE_MOUNT_MAX + 1];    /* "" = every mount without an entry of its own */
    char *path;                        /* --preroll PATH (owned), or NULL */
    char *url;                         /* --preroll-url URL (owned), or NULL */
    struct clip *clips[PREROLL_DIR_MAX]; /* the file's or directory's clips, in name order */
    char *why[PREROLL_DIR_MAX];        /* a clip's mismatch with the mount (owned), NULL = enabled */
    int n_clips;
    uint32_t *next;                    /* the clip the next listener gets (rotation), in the
                                          shared memory: one rotation for all workers */
    const struct emount *checked;      /* the mount the clips were checked against */
};

/* A client that had a preroll: a slot of the shared once-per-session table. */
struct preroll_once {
    uint64_t key;                      /* hash of address, User-Agent and mount; 0 = free */
    uint64_t until_ms;                 /* skipped until then (Unix ms) */
};

/* The process's prerolls (ehttp.pre), made by the first preroll_add* and inherited by workers. */
struct preroll {
    struct preroll_entry *e[PREROLL_MOUNTS_MAX]; /* owned */
    int n;
    struct preroll_once *once;         /* PREROLL_ONCE_SLOTS in MAP_SHARED memory (then the
                                          entries' rotation counters), or NULL */
    struct adfetch *af;                /* this process's ad requests (adfetch.c), NULL until one */
};

/*
 * main.c, while parsing flags (before preroll_setup): `--preroll MOUNT=PATH` and
 * `--preroll-url URL` (every mount without its own entry) or `--preroll-url MOUNT=URL`.
 * false with *why on a malformed argument (no '=', an invalid mount name, an empty path, a URL
 * not http(s)://, a mount given twice, more than PREROLL_MOUNTS_MAX entries, no memory).
 * Pure parsing (fuzz target tests/fuzz/fuzz_preroll_arg.c); the strings are copied.
 */
bool preroll_add(struct ehttp *h, const char *arg, char *why, size_t why_len);
bool preroll_add_url(struct ehttp *h, const char *arg, char *why, size_t why_len);

/*
 * main.c, after every flag (h->opt.metaint final), before workers fork: load every --preroll
 * file (a directory: its regular files, sorted by name, at most PREROLL_DIR_MAX) and make the
 * shared once-per-session table. false with *why naming the file and the problem (unreadable,
 * not MP3 or ADTS, too large, an empty directory): the program exits 2.
 */
bool preroll_setup(struct ehttp *h, char *why, size_t why_len);

/* edge.c: release everything (listeners are closed first). */
void preroll_free(struct ehttp *h);

/*
 * router.c, first thing when a mount's audio is asked for: true if `l` now waits for the ad
 * server (at most ADFETCH_TIMEOUT_S; its socket is only watched for a disconnect) and
 * stream_start() will be called again for it with a copy of `rq`; false: go on at once.
 */
bool preroll_wait(struct elistener *l, struct emount *m, const struct stream_req *rq);

/* router.c, once the stream's head and position are set, before its first write: give `l` its
 * clip if it gets one (l->pre, ICY phase), counted in h->c.prerolls. */
void preroll_attach(struct elistener *l, struct emount *m, const struct stream_req *rq);

/* out_stream.c: the iovec of `l`'s clip bytes still to send (l->pre set). */
void preroll_iov(const struct elistener *l, struct iovec *iov);
/* out_stream.c: `n` more bytes of the clip were written; at its end the reference is dropped,
 * l->preroll_s set and the ad's impression URLs pinged. */
void preroll_sent(struct elistener *l, size_t n);

/* listener.c: `l` is closing: drop its clip, its ad request, and note when its session ended. */
void preroll_forget(struct elistener *l);

/* out_stream.c (every appended frame): the first frame of a mount with --preroll files checks
 * each clip against the mount's codec, sample rate and channels; a mismatch disables that clip
 * (logged as an error naming the file and the difference, once, by the core process). */
void preroll_check_mount(struct ehttp *h, const struct emount *m);

/* admin.c: the mount's preroll setup and state for /api/v1/mounts/<m> (new reference), or
 * NULL when it has none. */
json_t *preroll_json(const struct ehttp *h, const struct emount *m);

/* adfetch.c → preroll.c: the ad request of `l` ended with `c` (a reference handed over, NULL on
 * failure: counted in h->c.preroll_failures); start its stream. */
void preroll_resume(struct elistener *l, struct clip *c, const char *mount,
                    const struct stream_req *rq);

#endif
