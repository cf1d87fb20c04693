/*
 * net.h - socket helpers: address parsing, non-blocking TCP/UDP/multicast sockets.
 *
 * Every socket returned is non-blocking and close-on-exec. Functions return -1 with errno set on
 * failure (callers log with the address they tried). Name resolution uses getaddrinfo and may
 * block: call only at start-up or for reconnects to configured addresses.
 */
#ifndef FC_NET_H
#define FC_NET_H

#include <stdbool.h>
#include <sys/socket.h>
#include "fc.h"

enum net_proto { NET_TCP = 1, NET_UDP = 2 };

struct net_addr {
    struct sockaddr_storage ss; /* resolved address */
    socklen_t len;              /* bytes used in ss */
    enum net_proto proto;       /* from the URL scheme; NET_TCP for plain HOST:PORT */
    bool multicast;             /* a multicast group (224.0.0.0/4 or ff00::/8) */
    char text[80];              /* "tcp://127.0.0.1:9001" as given, for logs */
};

#define NET_HOST_MAX 64

/*
 * Parse "tcp://HOST:PORT", "udp://HOST:PORT" or "HOST:PORT" ("[v6]:PORT" for IPv6) and resolve
 * it. FC_PROTO if malformed (bad scheme, no port, port out of 1..65535), FC_IO if it does not
 * resolve.
 */
enum fc_err net_addr_parse(const char *url, struct net_addr *out);

/* Listening TCP socket bound to `a` (SO_REUSEADDR, backlog SOMAXCONN), non-blocking,
 * close-on-exec; -1 with errno set on failure. */
int net_tcp_listen(const struct net_addr *a);
/* The same; with `reuseport`, SO_REUSEPORT too: processes of the same user each listen on `a`
 * and the kernel spreads new connections over them by a hash of the peer's address and port
 * (edge --workers). */
int net_tcp_listen_shared(const struct net_addr *a, bool reuseport);

/* Non-blocking connect to `a`; the connect may still be in progress (EINPROGRESS is success). */
int net_tcp_connect(const struct net_addr *a);

/*
 * UDP socket bound to `a` for receiving. For a multicast group, binds the group's port with
 * SO_REUSEADDR and joins the group on any interface. SO_RCVBUF is raised to `rcvbuf_bytes`.
 */
int net_udp_bind(const struct net_addr *a, int rcvbuf_bytes);

/* UDP socket connected to `a` for sending (multicast: TTL 1... set by `ttl`, loopback on). */
int net_udp_sender(const struct net_addr *a, int ttl);

/* Format `ss` as "HOST:PORT" into `buf` (size `n`); returns buf. */
const char *net_sockaddr_str(const struct sockaddr *sa, char *buf, size_t n);

/* Set O_NONBLOCK and FD_CLOEXEC on `fd`; -1 on failure. */
int net_set_nonblock(int fd);

/* TCP_NODELAY on; errors ignored (best effort). */
void net_tcp_nodelay(int fd);

#endif
