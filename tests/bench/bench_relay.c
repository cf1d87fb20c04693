/*
 * bench_relay - a relay's cost per verified, deduplicated frame (issue 9, docs/architecture.md
 * §4): the generator and the subscribers around one running framecast-relay.
 *
 * Pre-builds FRAMES wire FRAME messages (shared/wire.c, MAC'd with the mesh key, TCP length
 * prefix in front) for MOUNTS mounts, interleaved round-robin as a relay sees many stations:
 * MPEG-1 Layer III, 128 kbit/s, 44.1 kHz, joint stereo (header FF FB 90 64, 417 bytes), one
 * encoder and session per mount, seq 0.. per mount, PTS 26122 µs apart centred on now, and - as
 * the shim does every SHIM_META_REPEAT_S - a title and the station fields on one frame in 191.
 * Then SUBS subscriber processes connect to the relay's --serve port as an edge does (HELLO,
 * SUBSCRIBE to every mount, HEARTBEAT each second) and the generator pushes every frame:
 *   tcp: over one TCP ingest link (HELLO first), 1 MiB writes, as fast as the relay takes them
 *        but at most --window frames (8192, ~4 MB) ahead of the slowest subscriber: the relay
 *        disconnects a subscriber past --max-backlog (8 MiB) rather than slow its ingest, and
 *        a subscriber descheduled for a moment on a shared box must not be;
 *   udp: one datagram a frame (no prefix), sendmmsg of 64, at most 4096 frames (~2 MB) ahead
 *        of the slowest subscriber, so the relay's socket buffer is never overrun.
 * Each subscriber parses a frame's mount and seq, checks that its bytes are exactly the message
 * the generator built (it is forked after build_frames(), so it has them: stricter than the tag,
 * and cheap enough not to starve the relay of CPU on a 2-core box; control messages have their
 * tag verified), and marks a bitmap: a frame seen twice is a duplicate, one never seen missing.
 *
 * The relay's CPU is utime+stime from /proc/PID/stat, read just before the first frame is sent
 * and once every subscriber holds every frame (or nothing has arrived for 3 s).
 *
 * Output, exactly one line:
 *   relay ingest=tcp mounts=500 frames=1000000 subs=2 cpu_s=S wall_s=S frames_per_cpu_s=N
 *         sub0=N sub1=N missing=N dups=N bad=N udp_drops=N result=ok|FAIL
 * frames_per_cpu_s = distinct frames the relay forwarded (the fewest any subscriber got) divided
 * by the relay's CPU seconds. Exit 1 (result=FAIL) if any subscriber saw a duplicate or a bad
 * message, or missed a frame that the kernel did not drop (UDP: the relay socket's drop counter
 * in /proc/net/udp; TCP: none may be missing).
 *
 * Usage: bench_relay --key FILE --relay-pid PID --ingest tcp:PORT|udp:PORT --serve PORT
 *                    [--mounts N] [--frames N] [--subs N] [--window N]
 * Loopback only (127.0.0.1). tests/bench/bench_relay.sh starts the relay and runs both variants.
 */
#include <errno.h>
#include <getopt.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "framer.h"
#include "mac.h"
#include "wire.h"

#define BENCH_MAX_SUBS 8
#define FRAME_BYTES 417u                 /* 144 * 128000 / 44100, no padding bit */
#define FRAME_SAMPLES 1152u              /* MPEG-1 Layer III */
#define FRAME_US 26122u                  /* clock_samples_to_us(1152, 44100) */
#define TITLE_EVERY 191u                 /* SHIM_META_REPEAT_S (5 s) in 26.1 ms frames */
#define MSG_CAP (WIRE_LEN_BYTES + 1024u) /* one frame message with its title fits */
#define TCP_WRITE_BYTES (1u << 20)       /* generator write size */
#define UDP_BATCH 64                     /* datagrams per sendmmsg */
#define SUB_BUF_BYTES (4u << 20)         /* subscriber read buffer */
#define IDLE_DONE_US 3000000ull          /* no progress this long: the run is over */
#define RUN_MAX_US 50000000ull           /* hard stop: keep benchmark runs under a minute */

struct sub_state {
    _Atomic uint64_t unique; /* distinct frames received */
    _Atomic uint64_t dups;   /* frames received again */
    _Atomic uint64_t bad;    /* tag mismatch or unparseable FRAME */
    _Atomic int ready;       /* HELLO exchanged, SUBSCRIBE sent */
};

struct shared {
    _Atomic int stop; /* parent -> subscribers: finish */
    struct sub_state sub[BENCH_MAX_SUBS];
};

struct bench {
    struct mac_key key;
    int relay_pid;
    bool udp;
    int ingest_port, serve_port;
    uint32_t mounts, frames, per_mount, subs;
    uint32_t window;     /* TCP: frames sent ahead of the slowest subscriber, at most */
    uint32_t udp_window; /* UDP: the same, small enough for the relay's socket buffer */
    uint64_t *session;   /* per mount */
    uint8_t *msgs;       /* every message back to back, prefix included */
    size_t msgs_len;
    size_t *off;       /* frames + 1 offsets into msgs */
    struct shared *sh; /* MAP_SHARED with the subscribers */
};

static uint64_t rng_state = 0x9E3779B97F4A7C15ull;
static uint64_t rng(void) /* xorshift64*: reproducible */
{
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 2685821657736338717ull;
}

static void die(const char *what)
{
    fprintf(stderr, "bench_relay: %s: %s\n", what, errno ? strerror(errno) : "failed");
    exit(2);
}

static int tcp_connect(int port)
{
    struct sockaddr_in sa = {.sin_family = AF_INET,
                             .sin_port = htons((uint16_t)port),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), one = 1;
    if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
        die("connect to the relay");
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    return fd;
}

static void write_all(int fd, const uint8_t *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            die("write to the relay");
        p += w;
        n -= (size_t)w;
    }
}

/* Encode one control message with its TCP prefix into buf; returns the bytes to write. */
static size_t ctrl_hello(const struct bench *b, const char *role, const char *node, uint8_t *buf,
                         size_t cap)
{
    size_t len;
    if (wire_encode_hello(&b->key, role, node, buf + WIRE_LEN_BYTES, cap - WIRE_LEN_BYTES, &len) !=
        FC_OK)
        die("encode HELLO");
    wire_put_len(buf, (uint32_t)len);
    return WIRE_LEN_BYTES + len;
}

static size_t ctrl_heartbeat(const struct bench *b, uint8_t *buf, size_t cap)
{
    size_t len;
    if (wire_encode_heartbeat(&b->key, clock_wall_us(), buf + WIRE_LEN_BYTES, cap - WIRE_LEN_BYTES,
                              &len) != FC_OK)
        die("encode HEARTBEAT");
    wire_put_len(buf, (uint32_t)len);
    return WIRE_LEN_BYTES + len;
}

/* ---- the frames ---- */

static void build_frames(struct bench *b)
{
    static uint8_t payload[FRAME_BYTES];
    static struct wire_frame f; /* big (titles): not on the stack */
    b->session = calloc(b->mounts, sizeof(*b->session));
    b->off = calloc((size_t)b->frames + 1, sizeof(*b->off));
    b->msgs = malloc((size_t)b->frames * MSG_CAP);
    if (!b->session || !b->off || !b->msgs)
        die("allocate the frames");
    for (uint32_t m = 0; m < b->mounts; m++)
        b->session[m] = rng() | 1ull << 63;
    /* Centred on now, so the first and the last frame are both well inside --max-skew. */
    uint64_t base_pts = clock_wall_us() - (uint64_t)b->per_mount * FRAME_US / 2;
    static const uint8_t hdr[4] = {0xFF, 0xFB, 0x90, 0x64};
    struct frame_info info;
    memcpy(payload, hdr, sizeof(hdr));
    if (frame_header_parse(FC_CODEC_MP3, payload, sizeof(payload), &info) != FC_OK ||
        info.len != FRAME_BYTES)
        die("the synthetic MP3 header");
    size_t pos = 0;
    for (uint32_t i = 0; i < b->frames; i++) {
        uint32_t m = i % b->mounts, seq = i / b->mounts;
        for (size_t j = sizeof(hdr); j < sizeof(payload); j += 8) {
            uint64_t r = rng();
            memcpy(payload + j, &r, sizeof(payload) - j < 8 ? sizeof(payload) - j : 8);
        }
        memset(&f, 0, offsetof(struct wire_frame, title));
        snprintf(f.mount, sizeof(f.mount), "m%03u", m);
        strcpy(f.encoder, "a");
        f.session = b->session[m];
        f.seq = seq;
        f.pts_us = base_pts + (uint64_t)seq * FRAME_US;
        f.codec = FC_CODEC_MP3;
        f.sample_rate = 44100;
        f.channels = 2;
        f.samples = FRAME_SAMPLES;
        memset(f.level, -20, sizeof(f.level));
        f.payload = payload;
        f.payload_len = sizeof(payload);
        f.has_meta = f.has_station = seq % TITLE_EVERY == 0;
        if (f.has_meta) {
            snprintf(f.title, sizeof(f.title), "Artist %u - Song %u", m, seq / TITLE_EVERY);
            f.url[0] = '\0';
            snprintf(f.st_name, sizeof(f.st_name), "Station %u", m);
            strcpy(f.st_genre, "Various");
            strcpy(f.st_desc, "framecast relay benchmark");
            strcpy(f.st_url, "http://example.invalid/");
            f.st_bitrate = 128;
        }
        size_t len;
        uint8_t *out = b->msgs + pos;
        if (wire_encode_frame(&b->key, &f, out + WIRE_LEN_BYTES, MSG_CAP - WIRE_LEN_BYTES, &len) !=
            FC_OK)
            die("encode FRAME");
        wire_put_len(out, (uint32_t)len);
        b->off[i] = pos;
        pos += WIRE_LEN_BYTES + len;
    }
    b->off[b->frames] = pos;
    b->msgs_len = pos;
}

/* ---- subscribers ---- */

static bool mp_uint(const uint8_t **pp, const uint8_t *end, uint64_t *v)
{
    const uint8_t *p = *pp;
    if (p >= end)
        return false;
    int n = 0;
    if (*p <= 0x7f) {
        *v = *p;
        *pp = p + 1;
        return true;
    }
    switch (*p) {
    case 0xcc:
        n = 1;
        break;
    case 0xcd:
        n = 2;
        break;
    case 0xce:
        n = 4;
        break;
    case 0xcf:
        n = 8;
        break;
    default:
        return false;
    }
    if (end - p < n + 1)
        return false;
    *v = 0;
    for (int i = 1; i <= n; i++)
        *v = *v << 8 | p[i];
    *pp = p + 1 + n;
    return true;
}

static bool mp_str(const uint8_t **pp, const uint8_t *end, const uint8_t **s, uint32_t *n)
{
    const uint8_t *p = *pp;
    if (p >= end)
        return false;
    if (*p >= 0xa0 && *p <= 0xbf) {
        *n = *p & 0x1f;
        p++;
    } else if (*p == 0xd9 && end - p >= 2) {
        *n = p[1];
        p += 2;
    } else {
        return false;
    }
    if ((size_t)(end - p) < *n)
        return false;
    *s = p;
    *pp = p + *n;
    return true;
}

/* The number of a FRAME built by build_frames(), from its mount and seq; false if not one. */
static bool frame_index(const struct bench *b, const uint8_t *body, size_t len, uint64_t *idx)
{
    const uint8_t *p = body, *end = body + len, *s;
    uint32_t n;
    uint64_t prio, session, seq;
    if (len < 3 || p[0] != 0x9f || p[1] != WIRE_VERSION || p[2] != WIRE_FRAME)
        return false;
    p += 3;
    if (!mp_str(&p, end, &s, &n) || n != 4 || s[0] != 'm')
        return false;
    uint32_t m =
        (uint32_t)(s[1] - '0') * 100 + (uint32_t)(s[2] - '0') * 10 + (uint32_t)(s[3] - '0');
    if (m >= b->mounts || !mp_str(&p, end, &s, &n) || !mp_uint(&p, end, &prio) ||
        !mp_uint(&p, end, &session) || !mp_uint(&p, end, &seq))
        return false;
    if (session != b->session[m] || seq >= b->per_mount)
        return false;
    *idx = seq * b->mounts + m; /* its place in build_frames() order */
    return true;
}

static void sub_run(struct bench *b, int id)
{
    struct sub_state *st = &b->sh->sub[id];
    uint8_t *buf = malloc(SUB_BUF_BYTES), *seen = calloc((size_t)b->frames / 8 + 1, 1);
    uint8_t ctrl[WIRE_LEN_BYTES + 512];
    char node[32];
    if (!buf || !seen)
        die("subscriber buffers");
    int fd = tcp_connect(b->serve_port);
    snprintf(node, sizeof(node), "bench-sub%d", id);
    write_all(fd, ctrl, ctrl_hello(b, "edge", node, ctrl, sizeof(ctrl)));
    /* SUBSCRIBE to every mount, no resume entries: the relay sends everything it gets. */
    static struct wire_subscribe sub;
    static uint8_t subbuf[WIRE_LEN_BYTES + 256];
    size_t len;
    if (wire_encode_subscribe(&b->key, &sub, subbuf + WIRE_LEN_BYTES,
                              sizeof(subbuf) - WIRE_LEN_BYTES, &len) != FC_OK)
        die("encode SUBSCRIBE");
    wire_put_len(subbuf, (uint32_t)len);
    /* The relay takes HELLO first and SUBSCRIBE after; sending both at once is what link.c does
     * as soon as the peer's HELLO arrives, and the relay reads them in order. */
    write_all(fd, subbuf, WIRE_LEN_BYTES + len);
    atomic_store(&st->ready, 1);

    uint64_t unique = 0, dups = 0, bad = 0, last_beat = clock_mono_us();
    size_t start = 0, end = 0;
    for (;;) {
        struct pollfd pfd = {.fd = fd, .events = POLLIN};
        int pr = poll(&pfd, 1, 100);
        uint64_t now = clock_mono_us();
        if (now - last_beat >= 1000000) { /* LINK_DEAD_S: the relay drops a silent peer */
            write_all(fd, ctrl, ctrl_heartbeat(b, ctrl, sizeof(ctrl)));
            last_beat = now;
        }
        if (pr > 0) {
            if (start > 0) {
                memmove(buf, buf + start, end - start);
                end -= start;
                start = 0;
            }
            ssize_t n = read(fd, buf + end, SUB_BUF_BYTES - end);
            if (n <= 0 && !(n < 0 && (errno == EINTR || errno == EAGAIN)))
                break; /* the relay closed us */
            if (n > 0)
                end += (size_t)n;
            while (end - start >= WIRE_LEN_BYTES) {
                const uint8_t *p = buf + start;
                uint32_t mlen =
                    (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
                if (mlen <= MAC_TAG_BYTES || mlen > WIRE_MAX_MSG) {
                    bad++;
                    goto out; /* framing broken */
                }
                if (end - start < WIRE_LEN_BYTES + mlen)
                    break;
                const uint8_t *body = p + WIRE_LEN_BYTES;
                start += WIRE_LEN_BYTES + mlen;
                if (mlen > 3 && body[2] != WIRE_FRAME) {
                    if (mac_verify(&b->key, body, mlen) != FC_OK)
                        bad++;
                    continue; /* HELLO, HEARTBEAT */
                }
                /* A frame must be byte for byte the message the generator built (the subscriber
                 * is forked after build_frames, so it has them): a stricter check than the tag,
                 * and cheap enough that the subscribers do not starve the relay of CPU. */
                uint64_t idx;
                if (!frame_index(b, body, mlen - MAC_TAG_BYTES, &idx) ||
                    b->off[idx + 1] - b->off[idx] != WIRE_LEN_BYTES + mlen ||
                    memcmp(b->msgs + b->off[idx], p, WIRE_LEN_BYTES + mlen) != 0) {
                    bad++;
                    continue;
                }
                if (seen[idx >> 3] & (1u << (idx & 7))) {
                    dups++;
                } else {
                    seen[idx >> 3] |= (uint8_t)(1u << (idx & 7));
                    unique++;
                }
            }
            atomic_store(&st->unique, unique);
            atomic_store(&st->dups, dups);
            atomic_store(&st->bad, bad);
        }
        if (atomic_load(&b->sh->stop))
            break;
    }
out:
    atomic_store(&st->unique, unique);
    atomic_store(&st->dups, dups);
    atomic_store(&st->bad, bad);
    close(fd);
    _exit(0);
}

/* ---- measurement ---- */

/* utime + stime of `pid` in seconds (/proc/PID/stat fields 14 and 15). */
static double proc_cpu_s(int pid)
{
    char path[64], text[1024];
    snprintf(path, sizeof(path), "/proc/%d/stat", pid);
    FILE *fp = fopen(path, "r");
    if (!fp)
        die("read the relay's /proc/PID/stat");
    size_t n = fread(text, 1, sizeof(text) - 1, fp);
    fclose(fp);
    text[n] = '\0';
    const char *p = strrchr(text, ')');
    unsigned long ut = 0, stt = 0;
    if (!p || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &stt) != 2)
        die("parse /proc/PID/stat");
    return (double)(ut + stt) / (double)sysconf(_SC_CLK_TCK);
}

/* The kernel's drop counter of the UDP socket bound to `port` (/proc/net/udp, last column). */
static uint64_t udp_drops(int port)
{
    FILE *fp = fopen("/proc/net/udp", "r");
    char line[512];
    uint64_t drops = 0;
    if (!fp)
        return 0;
    while (fgets(line, sizeof(line), fp)) {
        unsigned lport;
        if (sscanf(line, " %*d: %*8x:%4x", &lport) != 1 || (int)lport != port)
            continue;
        char *last = strrchr(line, ' ');
        if (last)
            drops += strtoull(last + 1, NULL, 10);
    }
    fclose(fp);
    return drops;
}

static uint64_t min_unique(const struct bench *b)
{
    uint64_t m = UINT64_MAX;
    for (uint32_t i = 0; i < b->subs; i++) {
        uint64_t u = atomic_load(&b->sh->sub[i].unique);
        if (u < m)
            m = u;
    }
    return m;
}

static void sleep_us(long us)
{
    struct timespec ts = {us / 1000000, (us % 1000000) * 1000};
    nanosleep(&ts, NULL);
}

/* Wait while `sent` is more than `window` frames ahead of the slowest subscriber. A frame lost
 * on the way (UDP) would hold the window forever, so after 200 ms without progress go on. */
static void wait_window(const struct bench *b, uint32_t sent, uint32_t window)
{
    uint64_t stuck_since = clock_mono_us(), last = min_unique(b);
    while (sent > last && sent - last > window) {
        sleep_us(50);
        uint64_t now = clock_mono_us(), got = min_unique(b);
        if (got != last) {
            last = got;
            stuck_since = now;
        } else if (now - stuck_since > 200000) {
            return;
        }
    }
}

static void push_tcp(const struct bench *b)
{
    uint8_t hello[WIRE_LEN_BYTES + 256];
    int fd = tcp_connect(b->ingest_port);
    write_all(fd, hello, ctrl_hello(b, "shim", "bench-gen", hello, sizeof(hello)));
    /* As fast as the relay takes them, but no further ahead of the subscribers than the window:
     * the relay has no back-pressure from subscribers to ingest (it disconnects one past
     * --max-backlog), and a subscriber briefly descheduled on a shared 2-core box must not be. */
    for (uint32_t i = 0; i < b->frames;) {
        uint32_t n = 0;
        while (i + n < b->frames && b->off[i + n + 1] - b->off[i] <= TCP_WRITE_BYTES)
            n++;
        wait_window(b, i + n, b->window);
        write_all(fd, b->msgs + b->off[i], b->off[i + n] - b->off[i]);
        i += n;
    }
    /* Left open (the relay would log the close); closed at exit. */
}
static void push_udp(const struct bench *b)
{
    struct sockaddr_in sa = {.sin_family = AF_INET,
                             .sin_port = htons((uint16_t)b->ingest_port),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
        die("UDP socket");
    struct mmsghdr hdr[UDP_BATCH];
    struct iovec iov[UDP_BATCH];
    uint32_t sent = 0;
    while (sent < b->frames) {
        wait_window(b, sent, b->udp_window);
        uint32_t n = b->frames - sent < UDP_BATCH ? b->frames - sent : UDP_BATCH;
        for (uint32_t i = 0; i < n; i++) {
            size_t o = b->off[sent + i];
            iov[i].iov_base = b->msgs + o + WIRE_LEN_BYTES;
            iov[i].iov_len = b->off[sent + i + 1] - o - WIRE_LEN_BYTES;
            memset(&hdr[i], 0, sizeof(hdr[i]));
            hdr[i].msg_hdr.msg_iov = &iov[i];
            hdr[i].msg_hdr.msg_iovlen = 1;
        }
        int r = sendmmsg(fd, hdr, n, 0);
        if (r < 0) {
            if (errno == EINTR || errno == ENOBUFS || errno == EAGAIN)
                continue;
            die("sendmmsg");
        }
        sent += (uint32_t)r;
    }
    close(fd);
}

static void usage(void)
{
    fprintf(stderr, "usage: bench_relay --key FILE --relay-pid PID --ingest tcp:PORT|udp:PORT "
                    "--serve PORT [--mounts N] [--frames N] [--subs N] [--window N]\n");
    exit(2);
}

int main(int argc, char **argv)
{
    static struct bench b;
    const char *key_path = NULL, *ingest = NULL, *why = "";
    b.mounts = 500;
    b.frames = 1000000;
    b.subs = 2;
    b.window = 8192;
    b.udp_window = 4096;
    static const struct option opts[] = {{"key", required_argument, 0, 'k'},
                                         {"relay-pid", required_argument, 0, 'p'},
                                         {"ingest", required_argument, 0, 'i'},
                                         {"serve", required_argument, 0, 's'},
                                         {"mounts", required_argument, 0, 'm'},
                                         {"frames", required_argument, 0, 'f'},
                                         {"subs", required_argument, 0, 'n'},
                                         {"window", required_argument, 0, 'w'},
                                         {0, 0, 0, 0}};
    int c;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case 'k':
            key_path = optarg;
            break;
        case 'p':
            b.relay_pid = atoi(optarg);
            break;
        case 'i':
            ingest = optarg;
            break;
        case 's':
            b.serve_port = atoi(optarg);
            break;
        case 'm':
            b.mounts = (uint32_t)strtoul(optarg, NULL, 10);
            break;
        case 'f':
            b.frames = (uint32_t)strtoul(optarg, NULL, 10);
            break;
        case 'n':
            b.subs = (uint32_t)strtoul(optarg, NULL, 10);
            break;
        case 'w':
            b.window = b.udp_window = (uint32_t)strtoul(optarg, NULL, 10);
            break;
        default:
            usage();
        }
    }
    if (!key_path || !ingest || b.relay_pid <= 0 || b.serve_port <= 0 || b.mounts == 0 ||
        b.mounts > 1000 || b.frames < b.mounts || b.subs == 0 || b.subs > BENCH_MAX_SUBS)
        usage();
    if (strncmp(ingest, "tcp:", 4) == 0)
        b.udp = false;
    else if (strncmp(ingest, "udp:", 4) == 0)
        b.udp = true;
    else
        usage();
    b.ingest_port = atoi(ingest + 4);
    b.per_mount = b.frames / b.mounts;
    b.frames = b.per_mount * b.mounts;
    signal(SIGPIPE, SIG_IGN);
    if (mac_global_init() != FC_OK || mac_key_load(key_path, &b.key, &why) != FC_OK) {
        fprintf(stderr, "bench_relay: key %s: %s\n", key_path, why);
        return 2;
    }
    b.sh = mmap(NULL, sizeof(*b.sh), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (b.sh == MAP_FAILED)
        die("mmap");
    build_frames(&b);

    pid_t kids[BENCH_MAX_SUBS];
    for (uint32_t i = 0; i < b.subs; i++) {
        kids[i] = fork();
        if (kids[i] < 0)
            die("fork");
        if (kids[i] == 0)
            sub_run(&b, (int)i);
    }
    uint64_t t = clock_mono_us();
    for (uint32_t i = 0; i < b.subs; i++)
        while (!atomic_load(&b.sh->sub[i].ready)) {
            if (clock_mono_us() - t > 5000000)
                die("subscribers did not connect");
            sleep_us(1000);
        }
    sleep_us(200000); /* let the relay read the SUBSCRIBEs (catch-up would cover a late one) */

    uint64_t drops0 = b.udp ? udp_drops(b.ingest_port) : 0;
    double cpu0 = proc_cpu_s(b.relay_pid);
    uint64_t t0 = clock_mono_us();
    if (b.udp)
        push_udp(&b);
    else
        push_tcp(&b);
    uint64_t last = 0, last_change = clock_mono_us(), t1 = last_change;
    for (;;) {
        uint64_t got = min_unique(&b), now = clock_mono_us();
        if (got != last) {
            last = got;
            last_change = t1 = now;
        }
        if (got >= b.frames || now - last_change > IDLE_DONE_US || now - t0 > RUN_MAX_US)
            break;
        sleep_us(500);
    }
    double cpu1 = proc_cpu_s(b.relay_pid);
    uint64_t drops = b.udp ? udp_drops(b.ingest_port) - drops0 : 0;
    atomic_store(&b.sh->stop, 1);
    for (uint32_t i = 0; i < b.subs; i++)
        waitpid(kids[i], NULL, 0);

    uint64_t got = min_unique(&b), dups = 0, bad = 0, missing = 0;
    char subs_txt[256] = "";
    size_t o = 0;
    for (uint32_t i = 0; i < b.subs; i++) {
        uint64_t u = atomic_load(&b.sh->sub[i].unique);
        dups += atomic_load(&b.sh->sub[i].dups);
        bad += atomic_load(&b.sh->sub[i].bad);
        missing += b.frames - u;
        o += (size_t)snprintf(subs_txt + o, sizeof(subs_txt) - o, " sub%u=%llu", i,
                              (unsigned long long)u);
    }
    /* A datagram the kernel dropped is missing at every subscriber. */
    bool ok = dups == 0 && bad == 0 && missing == (b.udp ? drops * b.subs : 0) && got > 0;
    double cpu_s = cpu1 - cpu0, wall_s = (double)(t1 - t0) / 1e6;
    printf("relay ingest=%s mounts=%u frames=%u subs=%u cpu_s=%.2f wall_s=%.2f "
           "frames_per_cpu_s=%.0f%s missing=%llu dups=%llu bad=%llu udp_drops=%llu result=%s\n",
           b.udp ? "udp" : "tcp", b.mounts, b.frames, b.subs, cpu_s, wall_s,
           cpu_s > 0 ? (double)got / cpu_s : 0.0, subs_txt, (unsigned long long)missing,
           (unsigned long long)dups, (unsigned long long)bad, (unsigned long long)drops,
           ok ? "ok" : "FAIL");
    return ok ? 0 : 1;
}
