/* main.c - framecast-relay: flags and config, then the event loop. */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "cli.h"
#include "relay.h"
#include "sdnotify.h"

static const char *const prog = "framecast-relay";

static void usage(FILE *out)
{
    fprintf(out,
            "usage: %s --ingest URL... --serve HOST:PORT --key FILE [options]\n"
            "  --ingest URL        tcp://HOST:PORT, udp://HOST:PORT or udp://GROUP:PORT (repeatable)\n"
            "  --serve HOST:PORT   where edges and relays subscribe (repeatable)\n"
            "  --upstream HOST:PORT  subscribe to another relay: the mesh (repeatable)\n"
            "  --key FILE          mesh key, 64 hex characters; repeat to accept more keys during a\n"
            "                      rotation: frames are sent with the first, accepted with any\n"
            "                      (SIGHUP reads the files again)\n"
            "  --catchup S         seconds of frames kept for resuming peers (default 30)\n"
            "  --max-backlog BYTES disconnect a subscriber past this unsent backlog (default 8M)\n"
            "  --max-skew S        drop frames whose PTS is further than S from now (default 60)\n"
            "  --node NAME         name in HELLO and logs (default: hostname)\n"
            "  --alert-webhook URL POST relay_up/relay_down alerts as JSON to URL\n"
            "  --metrics HOST:PORT GET /metrics there: Prometheus text format\n"
            "  --control PATH      offer handoff restarts on this unix socket\n"
            "  --takeover PATH     take over the relay whose --control is PATH: its sockets,\n"
            "                      peers and catch-up windows (same flags otherwise); exits 1 if\n"
            "                      the handoff fails (the old relay keeps serving)\n"
            "  --log-json          JSON log lines\n"
            "  --config FILE       JSON object of the same options\n",
            prog);
}

static void add_listen(struct relay *r, const char *flag, const char *url, bool serve)
{
    if (r->n_listen >= RELAY_MAX_LISTEN)
        cli_fail(prog, flag, "at most %d listening addresses", RELAY_MAX_LISTEN);
    struct rlisten *ls = &r->listen[r->n_listen];
    enum fc_err err = net_addr_parse(url, &ls->addr);
    if (err != FC_OK)
        cli_fail(prog, flag, "\"%s\": %s", url,
                 err == FC_PROTO ? "expected tcp://HOST:PORT or udp://HOST:PORT"
                                 : "address does not resolve");
    if (serve && ls->addr.proto != NET_TCP)
        cli_fail(prog, flag, "\"%s\": subscribers connect over TCP", url);
    ls->serve = serve;
    ls->fd = -1;
    r->n_listen++;
}

static void parse_args(struct relay *r, int argc, char **argv)
{
    enum { O_INGEST = 1, O_SERVE, O_UPSTREAM, O_KEY, O_CATCHUP, O_BACKLOG, O_SKEW, O_NODE, O_JSON, O_WEBHOOK, O_METRICS, O_CONTROL, O_TAKEOVER };
    static const struct option opts[] = {
        {"ingest", required_argument, 0, O_INGEST},   {"serve", required_argument, 0, O_SERVE},
        {"upstream", required_argument, 0, O_UPSTREAM}, {"key", required_argument, 0, O_KEY},
        {"catchup", required_argument, 0, O_CATCHUP}, {"max-backlog", required_argument, 0, O_BACKLOG},
        {"max-skew", required_argument, 0, O_SKEW},   {"node", required_argument, 0, O_NODE},
        {"log-json", no_argument, 0, O_JSON},         {"help", no_argument, 0, 'h'},
        {"alert-webhook", required_argument, 0, O_WEBHOOK},
        {"metrics", required_argument, 0, O_METRICS},
        {"control", required_argument, 0, O_CONTROL},
        {"takeover", required_argument, 0, O_TAKEOVER},
        {0, 0, 0, 0}};
    int c;
    r->opt.catchup_s = 30;
    r->opt.max_backlog_bytes = 8u << 20;
    r->opt.max_skew_s = 60;
    gethostname(r->opt.node, sizeof(r->opt.node) - 1);
    opterr = 0;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case O_INGEST:
            add_listen(r, "--ingest", optarg, false);
            break;
        case O_SERVE:
            add_listen(r, "--serve", optarg, true);
            break;
        case O_UPSTREAM:
            if (r->n_upstream >= RELAY_MAX_UPSTREAMS)
                cli_fail(prog, "--upstream", "at most %d", RELAY_MAX_UPSTREAMS);
            if (net_addr_parse(optarg, &r->upstream_addr[r->n_upstream]) != FC_OK ||
                r->upstream_addr[r->n_upstream].proto != NET_TCP)
                cli_fail(prog, "--upstream", "\"%s\": expected HOST:PORT", optarg);
            r->n_upstream++;
            break;
        case O_KEY:
            cli_key_add(prog, &r->key_files, optarg);
            break;
        case O_CATCHUP:
            r->opt.catchup_s = cli_double(prog, "--catchup", optarg, 0, 3600);
            break;
        case O_BACKLOG:
            r->opt.max_backlog_bytes = cli_bytes(prog, "--max-backlog", optarg);
            if (r->opt.max_backlog_bytes < 65536)
                cli_fail(prog, "--max-backlog", "at least 64K");
            break;
        case O_SKEW:
            r->opt.max_skew_s = cli_double(prog, "--max-skew", optarg, 1, 86400);
            break;
        case O_NODE:
            snprintf(r->opt.node, sizeof(r->opt.node), "%s", optarg);
            break;
        case O_JSON:
            r->opt.log_json = true;
            break;
        case O_WEBHOOK:
            if (strncmp(optarg, "http://", 7) != 0 && strncmp(optarg, "https://", 8) != 0)
                cli_fail(prog, "--alert-webhook", "\"%s\": expected an http(s):// URL", optarg);
            r->opt.alert_webhook = optarg;
            break;
        case O_METRICS:
            if (net_addr_parse(optarg, &r->opt.metrics) != FC_OK || r->opt.metrics.proto != NET_TCP)
                cli_fail(prog, "--metrics", "\"%s\": expected HOST:PORT", optarg);
            r->opt.has_metrics = true;
            break;
        case O_CONTROL:
        case O_TAKEOVER:
            if (!*optarg || strlen(optarg) >= 108) /* sockaddr_un.sun_path */
                cli_fail(prog, c == O_CONTROL ? "--control" : "--takeover",
                         "\"%s\": expected a unix socket path (1-107 bytes)", optarg);
            if (c == O_CONTROL)
                r->opt.control_path = optarg;
            else
                r->opt.takeover_path = optarg;
            break;
        case 'h':
            usage(stdout);
            exit(0);
        default:
            cli_fail(prog, argv[optind - 1], "unknown option or missing value (see --help)");
        }
    }
    if (optind < argc)
        cli_fail(prog, argv[optind], "unexpected argument");
    if (r->key_files.n == 0)
        cli_fail(prog, "--key", "required");
    if (r->n_listen == 0 && r->n_upstream == 0)
        cli_fail(prog, "--ingest", "give at least one --ingest, --serve or --upstream");
    cli_keys_load(prog, &r->key_files, &r->keys);
}

int main(int argc, char **argv)
{
    static struct relay relay;
    relay.control_fd = -1;
    relay.metrics_fd = -1;
    signal(SIGPIPE, SIG_IGN);
    if (mac_global_init() != FC_OK) {
        fprintf(stderr, "%s: libsodium failed to initialise\n", prog);
        return CLI_EXIT_RUNTIME;
    }
    cli_expand(prog, &argc, &argv);
    parse_args(&relay, argc, argv);
    log_init(&relay.log, "relay", relay.opt.log_json);
    struct ev_loop *loop = ev_default_loop(0);
    relay.loop = loop;
    int ctl = -1;
    if (relay.opt.takeover_path && relay_takeover_recv(&relay, &ctl) != FC_OK) {
        relay_free(&relay);
        return CLI_EXIT_RUNTIME;
    }
    if (relay_start(&relay, loop) != FC_OK) {
        if (ctl >= 0)
            relay_takeover_fail(&relay, ctl, "the new relay failed to start (see its log)");
        relay_free(&relay);
        return CLI_EXIT_RUNTIME;
    }
    if (ctl >= 0 && relay_takeover_confirm(&relay, ctl) != FC_OK) {
        relay_free(&relay);
        return CLI_EXIT_RUNTIME;
    }
    if (ctl < 0)
        sdnotify("READY=1");
    char ids[MAC_KEYRING_IDS_MAX];
    log_info(&relay.log, "started node=%s catchup_s=%g max_backlog=%llu keys=%s%s", relay.opt.node,
             relay.opt.catchup_s, (unsigned long long)relay.opt.max_backlog_bytes,
             mac_keyring_ids(&relay.keys, ids), ctl >= 0 ? " (taken over)" : "");
    ev_run(loop, 0);
    relay_free(&relay);
    return 0;
}
