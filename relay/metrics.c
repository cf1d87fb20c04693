/* metrics.c - the relay's counters, described once (shared/stats.h): the `stats` log lines and
 * GET /metrics on --metrics HOST:PORT (Prometheus text format 0.0.4; docs/architecture.md §7.8).
 * Per-peer families carry only --upstream links (stable addresses); inbound peers are summed. */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include "relay.h"
#include "stats.h"

#define PREFIX "framecast_relay_"
#define F(field) STAT_U64, offsetof(struct relay_counters, field), NULL, 0

static const struct stat_def relay_stats[] = {
    {"frames_in", "frames_received_total", "FRAME messages received, every copy.", STAT_COUNTER,
     F(frames_in)},
    {"forwarded", "frames_forwarded_total", "First copies verified and fanned out.",
     STAT_COUNTER, F(frames_fwd)},
    {"dups", "frames_duplicate_total", "Copies of frames already forwarded.", STAT_COUNTER,
     F(dups)},
    {"stale", "frames_stale_total", "Frames older than the catch-up window.", STAT_COUNTER,
     F(stale)},
    {"bad_tags", "udp_bad_tags_total", "Datagrams dropped: tag did not verify.", STAT_COUNTER,
     F(bad_tags)},
    {"other_key", "udp_other_key_total",
     "Datagrams verified with a key other than the first --key (a key rotation under way).",
     STAT_COUNTER, F(other_key)},
    {"bad_msgs", "bad_messages_total", "Messages dropped: malformed.", STAT_COUNTER, F(bad_msgs)},
    {"skew_drops", "frames_skew_dropped_total", "Frames dropped: PTS too far from now.",
     STAT_COUNTER, F(skew_drops)},
    {"session_drops", "sessions_refused_total", "New sessions refused (flood guard).",
     STAT_COUNTER, F(session_drops)},
    {"backlog_kicks", "subscribers_kicked_total", "Subscribers disconnected for --max-backlog.",
     STAT_COUNTER, F(backlog_kicks)},
};

#define P(field) STAT_U64, offsetof(struct rpeer, field), NULL, 0
static const struct stat_def peer_stats[] = {
    {"up", "upstream_up", "1 while the link to the upstream relay is up.", STAT_GAUGE,
     STAT_BOOL, offsetof(struct rpeer, link.up), NULL, 0},
    {"frames_in", "upstream_frames_received_total", "FRAME messages from the upstream relay.",
     STAT_COUNTER, P(frames_in)},
    {"bad_tags", "upstream_bad_tags_total", "Messages from it whose tag did not verify.",
     STAT_COUNTER, P(link.st.bad_tags)},
    {"other_key", "upstream_other_key_total",
     "Messages from it verified with a key other than the first --key.", STAT_COUNTER,
     P(link.st.other_key)},
};

void relay_log_stats(struct relay *r)
{
    char buf[512];
    stats_log(buf, sizeof(buf), relay_stats, STAT_N(relay_stats), &r->c);
    log_info(&r->log, "stats streams=%u%s", r->n_streams, buf);
    for (struct rpeer *p = r->peers; p; p = p->next)
        log_info(&r->log,
                 "stats peer=%s%s up=%d frames_in=%llu frames_out=%llu bad_tags=%llu "
                 "other_key=%llu bad_msgs=%llu queue_drops=%llu",
                 p->link.peer, p->upstream ? " upstream=1" : "", p->link.up,
                 (unsigned long long)p->frames_in, (unsigned long long)p->frames_out,
                 (unsigned long long)p->link.st.bad_tags, (unsigned long long)p->link.st.other_key,
                 (unsigned long long)p->link.st.bad_msgs,
                 (unsigned long long)p->link.st.queue_drops);
}

char *relay_metrics(void *ctx, size_t *len)
{
    struct relay *r = ctx;
    struct prom p = {0};
    const void *c = &r->c;
    const char *none = "";
    prom_table(&p, PREFIX, relay_stats, STAT_N(relay_stats), &c, &none, 1);
    uint64_t peers = 0, subs = 0, tcp_bad_tags = 0, tcp_other_key = 0, out = 0;
    for (struct rpeer *q = r->peers; q; q = q->next) {
        peers++;
        subs += q->subscribed;
        tcp_bad_tags += q->link.st.bad_tags;
        tcp_other_key += q->link.st.other_key;
        out += q->frames_out;
    }
    prom_printf(&p, "# HELP " PREFIX "streams Streams (mount, encoder, session) held.\n"
                    "# TYPE " PREFIX "streams gauge\n" PREFIX "streams %u\n", r->n_streams);
    prom_printf(&p, "# HELP " PREFIX "peers TCP peers connected (ingest, subscribers, mesh).\n"
                    "# TYPE " PREFIX "peers gauge\n" PREFIX "peers %llu\n",
                (unsigned long long)peers);
    prom_printf(&p, "# HELP " PREFIX "subscribers Peers subscribed to frames.\n"
                    "# TYPE " PREFIX "subscribers gauge\n" PREFIX "subscribers %llu\n",
                (unsigned long long)subs);
    prom_printf(&p, "# HELP " PREFIX "tcp_bad_tags_total Messages on TCP links whose tag did not "
                    "verify (connected peers).\n# TYPE " PREFIX "tcp_bad_tags_total counter\n"
                    PREFIX "tcp_bad_tags_total %llu\n", (unsigned long long)tcp_bad_tags);
    prom_printf(&p, "# HELP " PREFIX "tcp_other_key_total Messages on TCP links verified with a "
                    "key other than the first --key (connected peers).\n# TYPE " PREFIX
                    "tcp_other_key_total counter\n" PREFIX "tcp_other_key_total %llu\n",
                (unsigned long long)tcp_other_key);
    prom_printf(&p, "# HELP " PREFIX "frames_sent_total Frames queued to connected peers.\n"
                    "# TYPE " PREFIX "frames_sent_total counter\n" PREFIX "frames_sent_total %llu\n",
                (unsigned long long)out);
    const void *objs[RELAY_MAX_UPSTREAMS];
    char lab[RELAY_MAX_UPSTREAMS][160];
    const char *labels[RELAY_MAX_UPSTREAMS];
    size_t n = 0;
    for (struct rpeer *q = r->peers; q && n < RELAY_MAX_UPSTREAMS; q = q->next)
        if (q->upstream) {
            prom_label(lab[n], sizeof(lab[n]), "relay", q->link.peer);
            objs[n] = q;
            labels[n] = lab[n];
            n++;
        }
    prom_table(&p, PREFIX, peer_stats, STAT_N(peer_stats), objs, labels, n);
    prom_process(&p);
    if (p.oom) {
        free(p.buf);
        return NULL;
    }
    *len = p.len;
    return p.buf;
}
