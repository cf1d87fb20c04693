/*
 * fuzz_relay_handoff.c - libFuzzer target for the record parser of a relay taking over
 * (relay/handoff.c: relay_ho_in_record(), relay_ho_in_end(); docs/architecture.md §4.7).
 *
 * The input is a run of records as the old relay would send them: type (1 byte: HO_USER + b % 8,
 * so one unknown type too), descriptors (1 byte: b % 3 sockets come with the record, one end of a
 * fresh socketpair each), payload length (2 bytes, little-endian, cut to what is left) and the
 * payload. Then HO_END (relay_ho_in_end). The relay compiled in has two listening addresses, an
 * --upstream, --metrics and --control, so every kind of record can match something.
 *
 * Checks, besides the sanitizers: a bad record is FC_PROTO with a reason, never a crash; every
 * descriptor passed in is adopted or closed (the process's open descriptors are the same before
 * and after each input); what was taken over is sound: each stream is found by its key, each
 * stored message's length prefix agrees with its length, each peer's send queue holds at most its
 * caps and a partly written head message within its length.
 */
#include <dirent.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "../../relay/handoff_send.c"
#include "../../relay/handoff_take.c"
#include "../../relay/ingest.c"
#include "../../relay/metrics.c"
#include "../../relay/peers.c"
#include "../../relay/relay.c"
#include "../../relay/streams.c"

#include "fuzz_check.h"

static struct relay relay;
static const char *const listen_urls[] = {"tcp://127.0.0.1:9001", "udp://127.0.0.1:9002"};

static int count_fds(void)
{
    int n = 0;
    DIR *d = opendir("/proc/self/fd");
    if (!d)
        return -1;
    while (readdir(d))
        n++;
    closedir(d);
    return n;
}

static void setup(void)
{
    static bool done;
    if (done)
        return;
    setenv("FC_LOG_LEVEL", "error", 1);
    CHECK(mac_global_init() == FC_OK);
    struct mac_key key;
    for (int i = 0; i < MAC_KEY_BYTES; i++)
        key.k[i] = (uint8_t)(i * 7 + 1);
    CHECK(mac_keyring_add(&relay.keys, &key) == FC_OK);
    log_init(&relay.log, "relay", false);
    relay.loop = ev_default_loop(0);
    relay.opt.catchup_s = 30;
    relay.opt.max_backlog_bytes = 1u << 20;
    relay.opt.max_skew_s = 60;
    relay.opt.has_metrics = true;
    CHECK(net_addr_parse("127.0.0.1:9200", &relay.opt.metrics) == FC_OK);
    relay.opt.control_path = "/nonexistent/relay.sock";
    done = true;
}

/* A fresh relay state for one input (the options stay). */
static void reset(void)
{
    relay.control_fd = -1;
    relay.metrics_fd = -1;
    relay.n_listen = 0;
    for (size_t i = 0; i < sizeof(listen_urls) / sizeof(listen_urls[0]); i++) {
        struct rlisten *ls = &relay.listen[relay.n_listen++];
        memset(ls, 0, sizeof(*ls));
        CHECK(net_addr_parse(listen_urls[i], &ls->addr) == FC_OK);
        ls->fd = -1;
        ls->relay = &relay;
    }
    relay.n_upstream = 1;
    CHECK(net_addr_parse("127.0.0.1:9101", &relay.upstream_addr[0]) == FC_OK);
    memset(relay.upstream_peer, 0, sizeof(relay.upstream_peer));
    memset(&relay.c, 0, sizeof(relay.c));
}

static void release(void)
{
    relay_peers_free(&relay); /* closes adopted connections and listening sockets */
    relay_streams_free(&relay);
    if (relay.control_fd >= 0)
        close(relay.control_fd);
    if (relay.metrics_fd >= 0)
        close(relay.metrics_fd);
    for (int i = 0; i < relay.n_listen; i++)
        relay.listen[i].fd = -1;
}

static void check_state(void)
{
    uint32_t n = 0;
    for (struct rstream *s = relay.streams; s; s = s->next, n++) {
        CHECK(relay_stream_find(&relay, s->mount, s->encoder, s->session) == s);
        for (uint32_t i = 0; i < RELAY_RING; i++) {
            const struct rslot *slot = &s->ring[i];
            CHECK(!slot->m || slot->rx != 0);
            if (slot->m) {
                const uint8_t *d = slot->m->data;
                uint32_t len =
                    (uint32_t)d[0] << 24 | (uint32_t)d[1] << 16 | (uint32_t)d[2] << 8 | d[3];
                CHECK(len + WIRE_LEN_BYTES == slot->m->len);
                CHECK((slot->seq & (RELAY_RING - 1)) == i);
            }
        }
    }
    CHECK(n == relay.n_streams && n <= RELAY_MAX_STREAMS);
    for (struct rpeer *p = relay.peers; p; p = p->next) {
        const struct outq *q = &p->link.q;
        CHECK(p->link.fd >= 0);
        CHECK(outq_count(q) <= q->mask + 1 && q->bytes <= q->max_bytes);
        if (outq_count(q) > 0)
            CHECK(q->head_off < q->ring[q->head & q->mask]->len);
        else
            CHECK(q->head_off == 0 && q->bytes == 0);
        CHECK(p->n_mounts <= WIRE_SUB_MOUNTS_MAX);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    setup();
    reset();
    int fds_before = count_fds();
    struct relay_ho_in *in = relay_ho_in_new(&relay);
    CHECK(in != NULL);
    enum fc_err err = FC_OK;
    const char *why = NULL;
    size_t off = 0;
    while (err == FC_OK && size - off >= 4) {
        uint16_t type = (uint16_t)(HO_USER + data[off] % 8);
        int nfds = data[off + 1] % 3, fds[2];
        size_t len = (size_t)data[off + 2] | (size_t)data[off + 3] << 8;
        off += 4;
        if (len > size - off)
            len = size - off;
        for (int i = 0; i < nfds; i++) {
            int sv[2];
            CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) == 0);
            close(sv[1]);
            fds[i] = sv[0];
        }
        why = NULL;
        err = relay_ho_in_record(in, type, data + off, len, fds, nfds, &why);
        CHECK(err == FC_OK || (err == FC_PROTO && why != NULL));
        off += len;
    }
    if (err == FC_OK) {
        err = relay_ho_in_end(in, &why);
        CHECK(err == FC_OK || (err == FC_PROTO && why != NULL));
    }
    relay_ho_in_free(in);
    if (getenv("FUZZ_VERBOSE")) /* to see what a corpus file does */
        fprintf(stderr, "fuzz_relay_handoff: %s%s%s streams=%u\n", fc_strerror(err),
                why ? ": " : "", why ? why : "", relay.n_streams);
    if (err == FC_OK)
        check_state();
    release();
    CHECK(count_fds() == fds_before);
    return 0;
}
