/*
 * latency-probe.c - when does each MP3 frame reach (a) a listener on icecast2, (b) the edge's
 * rewind buffer, (c) a listener on the edge? One process, one monotonic clock, frames matched
 * by content hash (the test signal never repeats a frame).
 *
 * (a) is the reference: the shim pulls the same icecast2 mount, so an icecast2 listener reads a
 *     frame when the shim does (same server, same write loop).
 * (b) is read from outside the edge, without instrumenting it: the rewind buffer is a memfd
 *     (edge/core/rewind.h: slab k at file offset k * 4 MiB, frames appended back to back, a frame
 *     never straddles slabs, unwritten bytes are zero). It is opened through
 *     /proc/EDGE_PID/fd/N and polled every millisecond for the next frame header.
 * (c) is an ordinary HTTP listener (the URL may carry ?burst=0).
 * Frames that reached the icecast2 listener less than SKIP_S after start are ignored (bursts).
 *
 * usage: latency-probe ICE_PORT ICE_PATH EDGE_PORT EDGE_PATH EDGE_PID SECONDS [SKIP_S=3]
 * prints one line: frames=... buffer_ms p50/p90/max | listener_ms ... | cadence_ms ...
 * build: cc -O2 -o latency-probe latency-probe.c   (loopback only; MP3 only)
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define SLAB (4u << 20) /* REWIND_SLAB_BYTES */
#define MAXF 20000

struct frame {
    uint64_t hash;
    double t;
};

struct ftab {
    struct frame f[MAXF];
    int n;
};

struct stream {
    const char *name;
    int fd;
    int in_body;
    int synced;
    double t_conn, t_body1;
    uint64_t body, first500; /* body bytes, and those within 500 ms of connect */
    uint8_t buf[1 << 17];
    size_t len;
    char hdr[4096];
    size_t hlen;
    struct ftab tab;
};

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static uint64_t fnv(const uint8_t *p, size_t n)
{
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++)
        h = (h ^ p[i]) * 1099511628211ull;
    return h;
}

/* Length of the MPEG audio frame whose header is at h, 0 if h is not a valid header. */
static size_t mp3_len(const uint8_t *h)
{
    static const int br[5][16] = {
        {0, 32, 64, 96, 128, 160, 192, 224, 256, 288, 320, 352, 384, 416, 448, 0}, /* V1 L1 */
        {0, 32, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320, 384, 0},    /* V1 L2 */
        {0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320, 0},     /* V1 L3 */
        {0, 32, 48, 56, 64, 80, 96, 112, 128, 144, 160, 176, 192, 224, 256, 0},    /* V2 L1 */
        {0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160, 0}};        /* V2 L2/3 */
    static const int sr1[3] = {44100, 48000, 32000};
    if (h[0] != 0xFF || (h[1] & 0xE0) != 0xE0)
        return 0;
    int ver = (h[1] >> 3) & 3, layer = (h[1] >> 1) & 3; /* ver 3=1, 2=2, 0=2.5; layer 3=I 1=III */
    int bri = h[2] >> 4, sri = (h[2] >> 2) & 3, pad = (h[2] >> 1) & 1;
    if (ver == 1 || layer == 0 || bri == 0 || bri == 15 || sri == 3)
        return 0;
    int sr = sr1[sri] >> (ver == 3 ? 0 : ver == 2 ? 1 : 2);
    int row = ver == 3 ? 3 - layer : layer == 3 ? 3 : 4;
    long b = br[row][bri] * 1000L;
    if (layer == 3)
        return (size_t)((12 * b / sr + pad) * 4);
    if (layer == 1 && ver != 3)
        return (size_t)(72 * b / sr + pad);
    return (size_t)(144 * b / sr + pad);
}

static void add(struct ftab *t, uint64_t h, double when)
{
    if (t->n < MAXF)
        t->f[t->n++] = (struct frame){h, when};
}

/* Cut whole frames out of s->buf; a frame's time is the read that completed it. */
static void frames(struct stream *s, double t)
{
    size_t p = 0;
    while (p + 4 <= s->len) {
        size_t n = mp3_len(s->buf + p);
        if (!s->synced) { /* a valid header followed by another one */
            if (!n) {
                p++;
                continue;
            }
            if (p + n + 4 > s->len)
                break;
            if (!mp3_len(s->buf + p + n)) {
                p++;
                continue;
            }
            s->synced = 1;
        }
        if (!n) {
            s->synced = 0;
            continue;
        }
        if (p + n > s->len)
            break;
        add(&s->tab, fnv(s->buf + p, n), t);
        p += n;
    }
    memmove(s->buf, s->buf + p, s->len - p);
    s->len -= p;
}

static int open_stream(struct stream *s, int port, const char *path)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    s->fd = socket(AF_INET, SOCK_STREAM, 0);
    s->t_conn = now();
    if (s->fd < 0 || connect(s->fd, (struct sockaddr *)&a, sizeof a) < 0)
        return -1;
    char req[512];
    int n = snprintf(req, sizeof req,
                     "GET %s HTTP/1.0\r\nHost: 127.0.0.1:%d\r\nUser-Agent: latency-probe\r\n\r\n",
                     path, port);
    if (write(s->fd, req, (size_t)n) != n)
        return -1;
    fcntl(s->fd, F_SETFL, O_NONBLOCK);
    return 0;
}

static int on_readable(struct stream *s)
{
    for (;;) {
        uint8_t tmp[65536];
        ssize_t r = read(s->fd, tmp, sizeof tmp);
        if (r < 0)
            return errno == EAGAIN ? 0 : -1;
        if (r == 0)
            return -1;
        double t = now();
        size_t off = 0;
        if (!s->in_body) {
            size_t cp = (size_t)r < sizeof s->hdr - 1 - s->hlen ? (size_t)r : sizeof s->hdr - 1 - s->hlen;
            memcpy(s->hdr + s->hlen, tmp, cp);
            size_t old = s->hlen;
            s->hlen += cp;
            s->hdr[s->hlen] = 0;
            char *e = strstr(s->hdr, "\r\n\r\n");
            if (!e) {
                if (s->hlen >= sizeof s->hdr - 1)
                    return -1;
                continue;
            }
            if (atoi(s->hdr + 9) != 200) {
                fprintf(stderr, "%s: status %d\n", s->name, atoi(s->hdr + 9));
                return -1;
            }
            off = (size_t)(e - s->hdr) + 4 - old;
            s->in_body = 1;
        }
        size_t body = (size_t)r - off;
        if (!body)
            continue;
        if (!s->t_body1)
            s->t_body1 = t;
        s->body += body;
        if (t - s->t_conn <= 0.5)
            s->first500 += body;
        if (s->len + body > sizeof s->buf)
            return -1;
        memcpy(s->buf + s->len, tmp + off, body);
        s->len += body;
        frames(s, t);
    }
}

/* The edge's rewind memfd, through /proc. */
static int open_memfd(int pid)
{
    char dir[64], p[320], target[256];
    snprintf(dir, sizeof dir, "/proc/%d/fd", pid);
    DIR *d = opendir(dir);
    if (!d)
        return -1;
    struct dirent *de;
    int fd = -1, found = 0;
    while ((de = readdir(d))) {
        snprintf(p, sizeof p, "%s/%s", dir, de->d_name);
        ssize_t n = readlink(p, target, sizeof target - 1);
        if (n <= 0)
            continue;
        target[n] = 0;
        if (strstr(target, "memfd:framecast-rewind")) {
            found++;
            if (fd < 0)
                fd = open(p, O_RDONLY | O_CLOEXEC);
        }
    }
    closedir(d);
    if (found != 1)
        fprintf(stderr, "latency-probe: %d rewind memfds in the edge (using the first)\n", found);
    return fd;
}

struct memfd_poll {
    int fd;
    uint64_t cur;            /* file offset of the next frame */
    uint64_t pend_off[256];  /* frames seen, hashed on the next poll (a copy may be in flight) */
    uint32_t pend_len[256];
    double pend_t[256];
    int npend;
    long bad;                /* nonzero bytes that are no frame header */
    struct ftab tab;
};

static size_t header_at(int fd, uint64_t off, uint8_t h[4])
{
    if (pread(fd, h, 4, (off_t)off) != 4)
        return 0;
    return mp3_len(h);
}

static void memfd_start(struct memfd_poll *m)
{
    struct stat st;
    fstat(m->fd, &st);
    uint64_t slabs = (uint64_t)st.st_size / SLAB;
    m->cur = slabs ? (slabs - 1) * SLAB : 0;
    uint8_t h[4];
    size_t n;
    while ((n = header_at(m->fd, m->cur, h)))
        m->cur += n; /* frames already held: not timed */
}

static void memfd_poll(struct memfd_poll *m, double t)
{
    for (int i = 0; i < m->npend; i++) {
        uint8_t f[8192];
        if (m->pend_len[i] <= sizeof f && pread(m->fd, f, m->pend_len[i], (off_t)m->pend_off[i]) == (ssize_t)m->pend_len[i])
            add(&m->tab, fnv(f, m->pend_len[i]), m->pend_t[i]);
    }
    m->npend = 0;
    for (;;) {
        uint8_t h[4];
        size_t n = header_at(m->fd, m->cur, h);
        if (n) {
            if (m->npend == 256)
                return;
            m->pend_off[m->npend] = m->cur;
            m->pend_len[m->npend] = (uint32_t)n;
            m->pend_t[m->npend++] = t;
            m->cur += n;
            continue;
        }
        if (h[0] | h[1] | h[2] | h[3])
            m->bad++;
        struct stat st;
        fstat(m->fd, &st);
        uint64_t next = (m->cur / SLAB + 1) * SLAB;
        if ((uint64_t)st.st_size > next && header_at(m->fd, next, h)) {
            m->cur = next; /* the edge opened a new slab */
            continue;
        }
        return;
    }
}

static int cmpd(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double find(const struct ftab *t, uint64_t h)
{
    for (int i = 0; i < t->n; i++)
        if (t->f[i].hash == h)
            return t->f[i].t;
    return -1;
}

static void pr(const char *name, double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, cmpd);
    if (!n) {
        printf(" %s n=0", name);
        return;
    }
    printf(" %s p50=%.1f p90=%.1f max=%.1f", name, v[(n - 1) / 2] * 1e3, v[(int)(0.9 * (n - 1))] * 1e3,
           v[n - 1] * 1e3);
}

static struct stream ice = {.name = "icecast2"}, edge = {.name = "edge"};
static struct memfd_poll mem;

int main(int argc, char **argv)
{
    if (argc < 7) {
        fprintf(stderr, "usage: %s ICE_PORT ICE_PATH EDGE_PORT EDGE_PATH EDGE_PID SECONDS [SKIP_S]\n",
                argv[0]);
        return 2;
    }
    double secs = atof(argv[6]), skip = argc > 7 ? atof(argv[7]) : 3;
    mem.fd = open_memfd(atoi(argv[5]));
    if (mem.fd < 0) {
        fprintf(stderr, "latency-probe: no rewind memfd in /proc/%s/fd\n", argv[5]);
        return 1;
    }
    memfd_start(&mem);
    double t0 = now();
    if (open_stream(&ice, atoi(argv[1]), argv[2]) || open_stream(&edge, atoi(argv[3]), argv[4])) {
        perror("latency-probe: connect");
        return 1;
    }
    int ep = epoll_create1(0);
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &ice};
    epoll_ctl(ep, EPOLL_CTL_ADD, ice.fd, &ev);
    ev.data.ptr = &edge;
    epoll_ctl(ep, EPOLL_CTL_ADD, edge.fd, &ev);
    while (now() < t0 + secs) {
        struct epoll_event evs[4];
        int n = epoll_wait(ep, evs, 4, 1);
        for (int i = 0; i < n; i++)
            if (on_readable(evs[i].data.ptr) < 0) {
                fprintf(stderr, "latency-probe: %s stream ended\n", ((struct stream *)evs[i].data.ptr)->name);
                return 1;
            }
        memfd_poll(&mem, now());
    }
    memfd_poll(&mem, now()); /* hash the last pending frames */

    static double buf[MAXF], lis[MAXF], cad[MAXF];
    int nref = 0, nb = 0, nl = 0, nc = 0;
    for (int i = 0; i < ice.tab.n; i++) {
        const struct frame *f = &ice.tab.f[i];
        if (f->t < t0 + skip || f->t > t0 + secs - 1)
            continue; /* bursts; frames the others may not have yet */
        nref++;
        double tm = find(&mem.tab, f->hash), te = find(&edge.tab, f->hash);
        if (tm >= 0)
            buf[nb++] = tm - f->t;
        if (te >= 0)
            lis[nl++] = te - f->t;
        if (tm >= 0 && te >= 0)
            cad[nc++] = te - tm;
    }
    printf("frames=%d matched_buffer=%d matched_listener=%d |", nref, nb, nl);
    pr("buffer_minus_icecast_listener_ms", buf, nb);
    printf(" |");
    pr("edge_listener_minus_icecast_listener_ms", lis, nl);
    printf(" |");
    pr("edge_listener_minus_buffer_ms", cad, nc);
    printf(" | edge_listener_first_500ms_B=%llu memfd_bad=%ld\n", (unsigned long long)edge.first500, mem.bad);
    return nref > 0 && nb >= nref * 9 / 10 && nl >= nref * 9 / 10 ? 0 : 3;
}
