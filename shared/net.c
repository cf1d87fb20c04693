/* net.c - see net.h. */
#include "net.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static bool split_host_port(const char *s, char *host, size_t hmax, long *port)
{
    const char *colon;
    if (*s == '[') {
        const char *close = strchr(s, ']');
        if (!close || close[1] != ':' || (size_t)(close - s - 1) >= hmax)
            return false;
        memcpy(host, s + 1, (size_t)(close - s - 1));
        host[close - s - 1] = '\0';
        colon = close + 1;
    } else {
        colon = strrchr(s, ':');
        if (!colon || (size_t)(colon - s) >= hmax || colon == s)
            return false;
        memcpy(host, s, (size_t)(colon - s));
        host[colon - s] = '\0';
    }
    char *end;
    errno = 0;
    *port = strtol(colon + 1, &end, 10);
    return errno == 0 && *end == '\0' && end != colon + 1 && *port >= 1 && *port <= 65535;
}

static bool addr_is_multicast(const struct sockaddr_storage *ss)
{
    if (ss->ss_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)ss;
        return IN_MULTICAST(ntohl(in->sin_addr.s_addr));
    }
    if (ss->ss_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)ss;
        return IN6_IS_ADDR_MULTICAST(&in6->sin6_addr);
    }
    return false;
}

enum fc_err net_addr_parse(const char *url, struct net_addr *out)
{
    char host[NET_HOST_MAX + 1];
    long port;
    const char *rest = url;
    memset(out, 0, sizeof(*out));
    out->proto = NET_TCP;
    if (strncmp(url, "tcp://", 6) == 0) {
        rest = url + 6;
    } else if (strncmp(url, "udp://", 6) == 0) {
        rest = url + 6;
        out->proto = NET_UDP;
    } else if (strstr(url, "://")) {
        return FC_PROTO;
    }
    size_t rl = strlen(rest);
    if (rl > 0 && rest[rl - 1] == '/')
        rl--;
    char hp[NET_HOST_MAX + 16];
    if (rl >= sizeof(hp))
        return FC_PROTO;
    memcpy(hp, rest, rl);
    hp[rl] = '\0';
    if (!split_host_port(hp, host, sizeof(host), &port))
        return FC_PROTO;
    snprintf(out->text, sizeof(out->text), "%s", url);

    struct addrinfo hints = {.ai_family = AF_UNSPEC}, *res = NULL;
    hints.ai_socktype = out->proto == NET_TCP ? SOCK_STREAM : SOCK_DGRAM;
    char ps[8];
    snprintf(ps, sizeof(ps), "%ld", port);
    if (getaddrinfo(host, ps, &hints, &res) != 0 || !res)
        return FC_IO;
    memcpy(&out->ss, res->ai_addr, res->ai_addrlen);
    out->len = res->ai_addrlen;
    freeaddrinfo(res);
    out->multicast = addr_is_multicast(&out->ss);
    return FC_OK;
}

int net_set_nonblock(int fd)
{
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)
        return -1;
    return fcntl(fd, F_SETFD, FD_CLOEXEC);
}

void net_tcp_nodelay(int fd)
{
    int one = 1;
    (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

static int new_socket(int family, int type)
{
    return socket(family, type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
}

int net_tcp_listen(const struct net_addr *a)
{
    return net_tcp_listen_shared(a, false);
}

int net_tcp_listen_shared(const struct net_addr *a, bool reuseport)
{
    int one = 1;
    int fd = new_socket(a->ss.ss_family, SOCK_STREAM);
    if (fd < 0)
        return -1;
    if ((reuseport && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) < 0) ||
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
        bind(fd, (const struct sockaddr *)&a->ss, a->len) < 0 || listen(fd, SOMAXCONN) < 0) {
        int e = errno;
        close(fd);
        errno = e;
        return -1;
    }
    return fd;
}

int net_tcp_connect(const struct net_addr *a)
{
    int fd = new_socket(a->ss.ss_family, SOCK_STREAM);
    if (fd < 0)
        return -1;
    net_tcp_nodelay(fd);
    if (connect(fd, (const struct sockaddr *)&a->ss, a->len) < 0 && errno != EINPROGRESS) {
        int e = errno;
        close(fd);
        errno = e;
        return -1;
    }
    return fd;
}

static int join_group(int fd, const struct net_addr *a)
{
    if (a->ss.ss_family == AF_INET) {
        struct ip_mreq mr = {0};
        mr.imr_multiaddr = ((const struct sockaddr_in *)&a->ss)->sin_addr;
        mr.imr_interface.s_addr = htonl(INADDR_ANY);
        return setsockopt(fd, IPPROTO_IP, IP_ADD_MEMBERSHIP, &mr, sizeof(mr));
    }
    struct ipv6_mreq mr6 = {0};
    mr6.ipv6mr_multiaddr = ((const struct sockaddr_in6 *)&a->ss)->sin6_addr;
    return setsockopt(fd, IPPROTO_IPV6, IPV6_JOIN_GROUP, &mr6, sizeof(mr6));
}

int net_udp_bind(const struct net_addr *a, int rcvbuf_bytes)
{
    int one = 1;
    int fd = new_socket(a->ss.ss_family, SOCK_DGRAM);
    if (fd < 0)
        return -1;
    /* Best effort: without CAP_NET_ADMIN the kernel caps it at rmem_max, which is still useful. */
    (void)setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &rcvbuf_bytes, sizeof(rcvbuf_bytes));
    (void)setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf_bytes, sizeof(rcvbuf_bytes));
    if (a->multicast)
        (void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (bind(fd, (const struct sockaddr *)&a->ss, a->len) < 0 ||
        (a->multicast && join_group(fd, a) < 0)) {
        int e = errno;
        close(fd);
        errno = e;
        return -1;
    }
    return fd;
}

int net_udp_sender(const struct net_addr *a, int ttl)
{
    int fd = new_socket(a->ss.ss_family, SOCK_DGRAM);
    if (fd < 0)
        return -1;
    int sndbuf = 1 << 20;
    (void)setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof(sndbuf));
    if (a->multicast) {
        int loop = 1;
        if (a->ss.ss_family == AF_INET) {
            unsigned char t = (unsigned char)ttl, l = 1;
            (void)setsockopt(fd, IPPROTO_IP, IP_MULTICAST_TTL, &t, sizeof(t));
            (void)setsockopt(fd, IPPROTO_IP, IP_MULTICAST_LOOP, &l, sizeof(l));
        } else {
            (void)setsockopt(fd, IPPROTO_IPV6, IPV6_MULTICAST_HOPS, &ttl, sizeof(ttl));
            (void)setsockopt(fd, IPPROTO_IPV6, IPV6_MULTICAST_LOOP, &loop, sizeof(loop));
        }
    }
    if (connect(fd, (const struct sockaddr *)&a->ss, a->len) < 0) {
        int e = errno;
        close(fd);
        errno = e;
        return -1;
    }
    return fd;
}

const char *net_sockaddr_str(const struct sockaddr *sa, char *buf, size_t n)
{
    char host[INET6_ADDRSTRLEN] = "?";
    unsigned port = 0;
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
        inet_ntop(AF_INET, &in->sin_addr, host, sizeof(host));
        port = ntohs(in->sin_port);
        snprintf(buf, n, "%s:%u", host, port);
    } else if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
        inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof(host));
        port = ntohs(in6->sin6_port);
        snprintf(buf, n, "[%s]:%u", host, port);
    } else {
        snprintf(buf, n, "unix");
    }
    return buf;
}
