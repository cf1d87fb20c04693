/*
 * churn - listeners that come and go, for the soak test (tests/soak/soak.sh).
 *
 *   churn HOST PORT MOUNT N MIN_S MAX_S [SEED]
 *
 * Keeps N slots busy against http://HOST:PORT (loopback only), in one epoll thread, until SIGTERM
 * or SIGINT. Each slot connects, sends one request, reads (and discards) the answer for a random
 * lifetime in [MIN_S, MAX_S], hangs up, waits 0-300 ms and starts again. Requests, by slot turn:
 *   60 %  GET /MOUNT                   plain listener
 *   20 %  GET /MOUNT + Icy-MetaData: 1 ICY listener
 *   15 %  GET /MOUNT?offset=10         time-shifted listener
 *    5 %  GET /, /MOUNT.m3u8, /status-json.xsl, /MOUNT/rewind (read to the end, lifetime <= 2 s)
 * SIGUSR1 pauses: every connection is closed and none opened until SIGUSR2. Each pause, and the
 * exit, print one line on stdout:
 *   churn: connects=C audio=A ok=O non200=X cut=K connect_err=E io_err=I bytes=B audio_s=S
 *          avg_Bps=R other=Q paused=0|1
 * where `audio` / `other` count 200 answers to audio / small requests, `cut` audio answers the
 * server ended before the listener's lifetime, `connect_err` connections refused or not made
 * within the lifetime, `io_err` read errors and answers without a complete head within the
 * lifetime, `audio_s` the seconds audio listeners were connected and `avg_Bps` their body bytes
 * per second (burst included).
 * Exit 0 after a signal; 2 on a bad command line.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

enum state { IDLE, CONNECTING, HEAD, BODY };
enum kind { PLAIN, ICY, OFFSET, OTHER };
enum why { LIFETIME, SERVER_CLOSED, IO_ERROR, PAUSE };

struct slot {
    int fd;
    enum state st;
    enum kind kind;
    double t_start; /* connect started */
    double t_end;   /* hang up at (lifetime) / IDLE: connect again at */
    uint64_t body;  /* body bytes of this connection */
    char head[2048];
    size_t hlen;
};

struct totals {
    uint64_t connects, audio, ok, non200, cut, connect_err, io_err, bytes, other;
    double audio_s;
};

static volatile sig_atomic_t g_stop, g_pause, g_resume;
static void on_signal(int sig)
{
    if (sig == SIGUSR1)
        g_pause = 1;
    else if (sig == SIGUSR2)
        g_resume = 1;
    else
        g_stop = 1;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;
static uint64_t rng(void) /* xorshift64* */
{
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 0x2545f4914f6cdd1dull;
}
static double uniform(double lo, double hi)
{
    return lo + (hi - lo) * (double)(rng() >> 11) / 9007199254740992.0;
}

static struct totals tot;
static int epfd;
static struct sockaddr_in target;
static const char *g_host, *g_mount;
static int g_port;
static double g_min_s, g_max_s;

/* End the connection of `s` for reason `why`: account for it and schedule the next one. */
static void finish(struct slot *s, double t, enum why why)
{
    if (s->fd >= 0) {
        epoll_ctl(epfd, EPOLL_CTL_DEL, s->fd, NULL);
        close(s->fd);
        s->fd = -1;
    }
    switch (s->st) {
    case CONNECTING:
        if (why != PAUSE)
            tot.connect_err++; /* refused, or not connected within the lifetime */
        break;
    case HEAD:
        if (why != PAUSE)
            tot.io_err++; /* no complete answer head within the lifetime */
        break;
    case BODY:
        if (s->kind == OTHER)
            break; /* small answers end when the server closes */
        tot.audio_s += t - s->t_start;
        if (why == SERVER_CLOSED)
            tot.cut++;
        else if (why == IO_ERROR)
            tot.io_err++;
        break;
    case IDLE:
        break;
    }
    s->st = IDLE;
    s->t_end = t + uniform(0.0, 0.3);
}

static void start(struct slot *s, double t)
{
    static unsigned turn;
    unsigned k = turn++ % 20;
    s->kind = k < 12 ? PLAIN : k < 16 ? ICY : k < 19 ? OFFSET : OTHER;
    s->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    s->t_start = t;
    s->t_end = t + (s->kind == OTHER ? 2.0 : uniform(g_min_s, g_max_s));
    s->body = 0;
    s->hlen = 0;
    s->st = CONNECTING;
    tot.connects++;
    if (s->fd < 0 ||
        (connect(s->fd, (struct sockaddr *)&target, sizeof(target)) < 0 && errno != EINPROGRESS)) {
        finish(s, t, IO_ERROR);
        return;
    }
    struct epoll_event ev = {.events = EPOLLOUT | EPOLLIN, .data.ptr = s};
    epoll_ctl(epfd, EPOLL_CTL_ADD, s->fd, &ev);
}

static void send_request(struct slot *s, double t)
{
    static unsigned other_turn;
    char path[256], req[512];
    const char *extra = "";
    switch (s->kind) {
    case PLAIN:
        snprintf(path, sizeof(path), "/%s", g_mount);
        break;
    case ICY:
        snprintf(path, sizeof(path), "/%s", g_mount);
        extra = "Icy-MetaData: 1\r\n";
        break;
    case OFFSET:
        snprintf(path, sizeof(path), "/%s?offset=10", g_mount);
        break;
    case OTHER:
        switch (other_turn++ % 4) {
        case 0:
            snprintf(path, sizeof(path), "/");
            break;
        case 1:
            snprintf(path, sizeof(path), "/%s.m3u8", g_mount);
            break;
        case 2:
            snprintf(path, sizeof(path), "/status-json.xsl");
            break;
        default:
            snprintf(path, sizeof(path), "/%s/rewind", g_mount);
            break;
        }
        break;
    }
    int n = snprintf(req, sizeof(req),
                     "GET %s HTTP/1.1\r\nHost: %s:%d\r\nUser-Agent: framecast-churn/1\r\n%s"
                     "Connection: close\r\n\r\n",
                     path, g_host, g_port, extra);
    if (write(s->fd, req, (size_t)n) != n) {
        finish(s, t, IO_ERROR);
        return;
    }
    s->st = HEAD;
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = s};
    epoll_ctl(epfd, EPOLL_CTL_MOD, s->fd, &ev);
}

static void on_readable(struct slot *s, double t)
{
    static char buf[65536];
    for (;;) {
        ssize_t r = read(s->fd, buf, sizeof(buf));
        if (r < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                return;
            finish(s, t, IO_ERROR);
            return;
        }
        if (r == 0) {
            finish(s, t, SERVER_CLOSED);
            return;
        }
        size_t off = 0;
        if (s->st == HEAD) {
            size_t cp = (size_t)r < sizeof(s->head) - 1 - s->hlen ? (size_t)r
                                                                  : sizeof(s->head) - 1 - s->hlen;
            memcpy(s->head + s->hlen, buf, cp);
            size_t old = s->hlen;
            s->hlen += cp;
            s->head[s->hlen] = '\0';
            char *end = strstr(s->head, "\r\n\r\n");
            if (!end) {
                if (s->hlen >= sizeof(s->head) - 1) {
                    finish(s, t, IO_ERROR);
                    return;
                }
                continue;
            }
            size_t hend = (size_t)(end - s->head) + 4;
            int status = s->hlen > 12 ? atoi(s->head + 9) : 0;
            if (status != 200) {
                tot.non200++;
                fprintf(stderr, "churn: status %d for a %s request\n", status,
                        s->kind == OTHER ? "small" : "audio");
                s->st = IDLE; /* counted here: no cut, no audio time */
                finish(s, t, LIFETIME);
                return;
            }
            tot.ok++;
            if (s->kind != OTHER)
                tot.audio++;
            else
                tot.other++;
            s->st = BODY;
            off = hend - old;
        }
        s->body += (size_t)r - off;
        if (s->kind != OTHER)
            tot.bytes += (size_t)r - off;
    }
}

static void report(int paused)
{
    printf("churn: connects=%llu audio=%llu ok=%llu non200=%llu cut=%llu connect_err=%llu "
           "io_err=%llu bytes=%llu audio_s=%.0f avg_Bps=%.0f other=%llu paused=%d\n",
           (unsigned long long)tot.connects, (unsigned long long)tot.audio,
           (unsigned long long)tot.ok, (unsigned long long)tot.non200, (unsigned long long)tot.cut,
           (unsigned long long)tot.connect_err, (unsigned long long)tot.io_err,
           (unsigned long long)tot.bytes, tot.audio_s,
           tot.audio_s > 0 ? (double)tot.bytes / tot.audio_s : 0.0, (unsigned long long)tot.other,
           paused);
    fflush(stdout);
}

int main(int argc, char **argv)
{
    if (argc < 7) {
        fprintf(stderr, "usage: %s HOST PORT MOUNT N MIN_S MAX_S [SEED]\n", argv[0]);
        return 2;
    }
    g_host = argv[1];
    g_port = atoi(argv[2]);
    g_mount = argv[3];
    int n = atoi(argv[4]);
    g_min_s = atof(argv[5]);
    g_max_s = atof(argv[6]);
    if (argc > 7)
        rng_state ^= strtoull(argv[7], NULL, 10) * 0x100000001b3ull;
    if (inet_pton(AF_INET, g_host, &target.sin_addr) != 1 ||
        (ntohl(target.sin_addr.s_addr) >> 24) != 127) {
        fprintf(stderr, "churn: refusing non-loopback target %s\n", g_host);
        return 2;
    }
    if (n < 1 || n > 20000 || g_port < 1 || g_port > 65535 || g_min_s <= 0 || g_max_s < g_min_s) {
        fprintf(stderr, "churn: bounds: 1 <= N <= 20000, 0 < MIN_S <= MAX_S\n");
        return 2;
    }
    target.sin_family = AF_INET;
    target.sin_port = htons((uint16_t)g_port);
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < (rlim_t)n + 64) {
        rl.rlim_cur = (rlim_t)n + 64;
        if (rl.rlim_max < rl.rlim_cur)
            rl.rlim_max = rl.rlim_cur;
        if (setrlimit(RLIMIT_NOFILE, &rl) != 0) {
            perror("churn: setrlimit NOFILE");
            return 2;
        }
    }
    struct sigaction sa = {.sa_handler = on_signal};
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGUSR1, &sa, NULL);
    sigaction(SIGUSR2, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    epfd = epoll_create1(EPOLL_CLOEXEC);
    struct slot *slots = calloc((size_t)n, sizeof(*slots));
    if (epfd < 0 || !slots) {
        perror("churn");
        return 1;
    }
    double t = now_s();
    for (int i = 0; i < n; i++) {
        slots[i].fd = -1;
        slots[i].st = IDLE;
        slots[i].t_end = t + uniform(0.0, 2.0); /* spread the first connects over 2 s */
    }
    int paused = 0;
    struct epoll_event evs[256];
    while (!g_stop) {
        if (g_pause) {
            g_pause = 0;
            paused = 1;
            t = now_s();
            for (int i = 0; i < n; i++)
                if (slots[i].st != IDLE)
                    finish(&slots[i], t, PAUSE);
            report(paused);
        }
        if (g_resume) {
            g_resume = 0;
            paused = 0;
            t = now_s();
            for (int i = 0; i < n; i++)
                slots[i].t_end = t + uniform(0.0, 2.0);
        }
        int ne = epoll_wait(epfd, evs, 256, 20);
        t = now_s();
        for (int i = 0; i < ne; i++) {
            struct slot *s = evs[i].data.ptr;
            if (s->st == CONNECTING) {
                int err = 0;
                socklen_t el = sizeof(err);
                getsockopt(s->fd, SOL_SOCKET, SO_ERROR, &err, &el);
                if (err)
                    finish(s, t, IO_ERROR);
                else
                    send_request(s, t);
            } else if (s->st == HEAD || s->st == BODY) {
                on_readable(s, t);
            }
        }
        for (int i = 0; i < n; i++) {
            struct slot *s = &slots[i];
            if (s->st == IDLE) {
                if (!paused && t >= s->t_end)
                    start(s, t);
            } else if (t >= s->t_end) {
                finish(s, t, LIFETIME);
            }
        }
    }
    t = now_s();
    for (int i = 0; i < n; i++)
        if (slots[i].st != IDLE)
            finish(&slots[i], t, PAUSE);
    report(paused);
    free(slots);
    close(epfd);
    return 0;
}
