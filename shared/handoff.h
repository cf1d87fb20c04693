/*
 * handoff.h - the control socket of a handoff restart (docs/architecture.md §7.12 "Handoff restart").
 *
 * A running program started with `--control PATH` listens on a unix SOCK_SEQPACKET socket at
 * PATH. A second copy of the program (possibly a newer binary) started with `--takeover PATH`
 * connects to it and receives the running one's state as a run of records: each one datagram, a
 * struct ho_head then `len` payload bytes (at most HANDOFF_REC_MAX), with up to HANDOFF_FDS_MAX
 * descriptors passed alongside by SCM_RIGHTS. The payloads are packed byte strings written and
 * read with struct ho_buf (no alignment assumed, every read bounds-checked); their layout belongs
 * to each program and is versioned by the first record (HO_HELLO carrying HANDOFF_VERSION).
 *
 * Both sides move the records with blocking calls bounded by a timeout: a handoff is a short
 * pause of the old process's loop, never an unbounded one.
 */
#ifndef FC_HANDOFF_H
#define FC_HANDOFF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define HANDOFF_REC_MAX (60 * 1024) /* payload bytes per record */
#define HANDOFF_FDS_MAX 64          /* descriptors per record */
#define HANDOFF_TIMEOUT_S 10.0      /* one record's send or receive, at most */

/* Record types both programs use; each program numbers its own from HO_USER. */
enum {
    HO_HELLO = 1, /* new → old: u32 version, u32 pid; old → new: the same (accepted) */
    HO_END,       /* old → new: everything was sent */
    HO_READY,     /* new → old: all adopted; the old one hands over for good and exits */
    HO_FAIL,      /* either way: text reason; the handoff is off, the old one keeps serving */
    HO_USER = 16,
};

struct ho_head {
    uint16_t type;
    uint16_t nfds;    /* descriptors that came with the record */
    uint32_t len;     /* payload bytes that follow */
};

/* Listen on `path` (a stale socket file there is removed first): non-blocking, close-on-exec.
 * -1 with errno on failure. */
int handoff_listen(const char *path);

/* Connect to `path`: a blocking, close-on-exec socket, or -1 with errno (ENOENT, ECONNREFUSED). */
int handoff_connect(const char *path);

/* Send one record (the socket may be non-blocking: waits with poll up to `timeout_s`). 0, or -1
 * with errno: EMSGSIZE (len > HANDOFF_REC_MAX or nfds > HANDOFF_FDS_MAX), ETIMEDOUT, EPIPE. The
 * descriptors stay open here (the receiver gets copies). */
int handoff_send(int fd, uint16_t type, const void *p, size_t len, const int *fds, int nfds,
                 double timeout_s);

/* Receive one record into `buf` (`cap` >= HANDOFF_REC_MAX), waiting up to `timeout_s`: its type
 * in *type, the descriptors that came with it in fds[] (close-on-exec, owned by the caller;
 * *nfds of them, room for HANDOFF_FDS_MAX). Returns the payload length, or -1 with errno:
 * ETIMEDOUT, EPIPE (the peer closed), EPROTO (a short or malformed datagram; its descriptors
 * are closed). */
ssize_t handoff_recv(int fd, uint16_t *type, void *buf, size_t cap, int *fds, int *nfds,
                     double timeout_s);

/* Wait up to `timeout_s` for `events` (POLLIN, POLLOUT) on `fd`: 0 ready, -1 with errno
 * (ETIMEDOUT). For senders of other record formats on a non-blocking socket (edge/wmsg.c). */
int handoff_wait(int fd, short events, double timeout_s);

/* Close every descriptor in fds[0..n). */
void handoff_close_fds(const int *fds, int n);

/*
 * A packed payload being written or read. Writers: ho_put* append while room remains (past
 * `cap`, `bad` is set and nothing more is written). Readers: ho_get* copy out while bytes remain
 * (past the end, `bad` is set and zeroes are returned). Check `bad` once at the end.
 */
struct ho_buf {
    uint8_t *p;
    size_t len;       /* writer: bytes written; reader: bytes in p */
    size_t off;       /* reader: bytes consumed */
    size_t cap;       /* writer: room in p */
    bool bad;
};

void ho_put(struct ho_buf *b, const void *v, size_t n);
void ho_put_u8(struct ho_buf *b, uint8_t v);
void ho_put_u32(struct ho_buf *b, uint32_t v);
void ho_put_u64(struct ho_buf *b, uint64_t v);
void ho_put_f64(struct ho_buf *b, double v);
/* A string: u16 length then the bytes (no NUL). */
void ho_put_str(struct ho_buf *b, const char *s);

void ho_get(struct ho_buf *b, void *v, size_t n);
uint8_t ho_get_u8(struct ho_buf *b);
uint32_t ho_get_u32(struct ho_buf *b);
uint64_t ho_get_u64(struct ho_buf *b);
double ho_get_f64(struct ho_buf *b);
/* A string into out (`cap` bytes, NUL-terminated); one longer than cap - 1 sets `bad`. */
void ho_get_str(struct ho_buf *b, char *out, size_t cap);
/* Bytes left to read. */
size_t ho_left(const struct ho_buf *b);

#endif
