/* main.c - framecast-edge: flags and config, then the event loop. */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "cli.h"
#include "edge.h"
#include "sdnotify.h"
#include "http/preroll.h"

static const char *const prog = "framecast-edge";

static void usage(FILE *out)
{
    fprintf(out,
            "usage: %s --listen HOST:PORT --relay HOST:PORT... --key FILE [options]\n"
            "  --listen HOST:PORT    HTTP for listeners\n"
            "  --relay HOST:PORT     a relay to subscribe to (repeatable)\n"
            "  --key FILE            mesh key, 64 hex characters; repeat to accept more keys during a\n"
            "                        rotation: frames are sent with the first, accepted with any\n"
            "                        (SIGHUP reads the files again)\n"
            "  --burst S             seconds of audio sent at once on connect (default 4)\n"
            "  --write-interval S    a listener holding seconds of audio is written this often\n"
            "                        (default 1; 0 = as audio arrives)\n"
            "  --api-token-file FILE admin API tokens, a line each: NAME TOKEN [ro] (without it\n"
            "                        the API reads on loopback only and refuses writes)\n"
            "  --listen-tls HOST:PORT  HTTPS for listeners (with --tls-cert and --tls-key; TLS 1.2+;\n"
            "                        SIGHUP reads the certificate and key again)\n"
            "  --tls-cert FILE       certificate chain, PEM\n"
            "  --tls-key FILE        private key, PEM\n"
            "  --workers N           processes serving listeners (default: one per CPU;\n"
            "                        0 = serve them in this process)\n"
            "  --reorder-ms MS       wait for a missing frame this long (default 300)\n"
            "  --rewind S            seconds of audio kept per mount (default 14400)\n"
            "  --stream-timeout S    a stream silent this long is down (default 1)\n"
            "  --max-skew S          drop frames whose PTS is further than S from now (default 60)\n"
            "  --max-lag S           disconnect listeners further behind live (default 30)\n"
            "  --failback-after S    primary healthy this long before output returns to it (default 10)\n"
            "  --start-grace S       a new mount waits this long for every encoder before output\n"
            "                        begins, so it starts on the best priority (default 2.5)\n"
            "  --silence-failover S  dead air this long while a backup has sound: fail over\n"
            "                        (default 15, 0 = off)\n"
            "  --silence-threshold DB  level under which a frame is silent (default -50)\n"
            "  --sourceless-after S  alert when a mount has no healthy stream this long (default 30)\n"
            "  --alert-webhook URL   POST each alert as JSON to URL\n"
            "  --metaint BYTES       audio bytes between ICY blocks (default 16000)\n"
            "  --hls-segment S       HLS segment length, seconds (default 6)\n"
            "  --hls-group NAME=M1,M2  master playlist /hls/NAME.m3u8 over those mounts\n"
            "  --web-root DIR        files of the web player (default: web/ beside build/)\n"
            "  --preroll MOUNT=PATH  a clip (MP3 or ADTS) played to live listeners before the\n"
            "                        stream; a directory: its files in turn (repeatable)\n"
            "  --preroll-url [MOUNT=]URL  a VAST 3/4 ad server asked for each live listener's\n"
            "                        preroll (2 s at most; without MOUNT=, every other mount)\n"
            "  --rewind-dir DIR      keep each mount's rewind buffer there across restarts\n"
            "  --rewind-save-every S save it this often (default 60; also on clean shutdown)\n"
            "  --control PATH        a unix socket where a successor may take over (handoff restart)\n"
            "  --takeover PATH       take over from the edge whose --control is PATH: its listeners,\n"
            "                        buffers and links, without a gap (same flags otherwise)\n"
            "  --analytics URL|PATH  record listening sessions: sqlite:FILE (or a bare path) or\n"
            "                        postgresql://… (many edges, one database); figures at\n"
            "                        /api/v1/analytics\n"
            "  --analytics-raw-ip    store listeners' addresses, not a keyed hash of them\n"
            "  --analytics-min-s S   sessions shorter are flagged short (default 1)\n"
            "  --analytics-keep-days D  delete sessions older than D days (default 0 = keep)\n"
            "  --node NAME           name in HELLO and logs (default: hostname)\n"
            "  --log-json            JSON log lines\n"
            "  --config FILE         JSON object of the same options\n",
            prog);
}

/* NAME=mount1,mount2,... */
static void add_hls_group(struct http_opts *ho, const char *arg)
{
    if (ho->n_hls_groups >= EDGE_HLS_GROUPS_MAX)
        cli_fail(prog, "--hls-group", "at most %d groups", EDGE_HLS_GROUPS_MAX);
    struct hls_group *g = &ho->hls_groups[ho->n_hls_groups];
    const char *eq = strchr(arg, '=');
    if (!eq || !wire_valid_name(arg, (size_t)(eq - arg), WIRE_MOUNT_MAX))
        cli_fail(prog, "--hls-group", "\"%s\": expected NAME=mount1,mount2", arg);
    memcpy(g->name, arg, (size_t)(eq - arg));
    for (const char *p = eq + 1; *p;) {
        const char *end = strchr(p, ',');
        size_t n = end ? (size_t)(end - p) : strlen(p);
        if (g->n_mounts >= 8 || !wire_valid_name(p, n, WIRE_MOUNT_MAX))
            cli_fail(prog, "--hls-group", "\"%s\": 1..8 valid mount names", arg);
        memcpy(g->mounts[g->n_mounts++], p, n);
        p = end ? end + 1 : p + n;
    }
    if (g->n_mounts == 0)
        cli_fail(prog, "--hls-group", "\"%s\": no mounts", arg);
    ho->n_hls_groups++;
}

static bool log_json; /* --log-json */

static void parse_args(struct edge *e, int argc, char **argv)
{
    enum { O_LISTEN = 1, O_RELAY, O_KEY, O_BURST, O_REORDER, O_REWIND, O_TIMEOUT, O_SKEW,
           O_LAG, O_NODE, O_JSON, O_FAILBACK, O_GRACE, O_WINTERVAL, O_SILENCE, O_SILENCE_DB, O_SOURCELESS, O_WEBHOOK, O_RWDIR, O_RWEVERY, O_METAINT, O_HLSSEG, O_HLSGROUP, O_WEBROOT, O_WORKERS, O_APITOKENS, O_TLSLISTEN, O_TLSCERT, O_TLSKEY, O_CONTROL, O_TAKEOVER,
           O_ANALYTICS, O_AN_RAWIP, O_AN_MIN, O_AN_KEEP, O_PREROLL, O_PREROLL_URL };
    static const struct option opts[] = {
        {"listen", required_argument, 0, O_LISTEN},   {"relay", required_argument, 0, O_RELAY},
        {"key", required_argument, 0, O_KEY},         {"burst", required_argument, 0, O_BURST},
        {"reorder-ms", required_argument, 0, O_REORDER}, {"rewind", required_argument, 0, O_REWIND},
        {"stream-timeout", required_argument, 0, O_TIMEOUT},
        {"max-skew", required_argument, 0, O_SKEW},   {"max-lag", required_argument, 0, O_LAG},
        {"node", required_argument, 0, O_NODE},       {"log-json", no_argument, 0, O_JSON},
        {"failback-after", required_argument, 0, O_FAILBACK},
        {"silence-failover", required_argument, 0, O_SILENCE},
        {"start-grace", required_argument, 0, O_GRACE},
        {"write-interval", required_argument, 0, O_WINTERVAL},
        {"silence-threshold", required_argument, 0, O_SILENCE_DB},
        {"sourceless-after", required_argument, 0, O_SOURCELESS},
        {"alert-webhook", required_argument, 0, O_WEBHOOK},
        {"rewind-dir", required_argument, 0, O_RWDIR},
        {"metaint", required_argument, 0, O_METAINT},
        {"hls-segment", required_argument, 0, O_HLSSEG},
        {"hls-group", required_argument, 0, O_HLSGROUP},
        {"web-root", required_argument, 0, O_WEBROOT},
        {"workers", required_argument, 0, O_WORKERS},
        {"api-token-file", required_argument, 0, O_APITOKENS},
        {"listen-tls", required_argument, 0, O_TLSLISTEN},
        {"tls-cert", required_argument, 0, O_TLSCERT},
        {"tls-key", required_argument, 0, O_TLSKEY},
        {"rewind-save-every", required_argument, 0, O_RWEVERY},
        {"control", required_argument, 0, O_CONTROL},
        {"takeover", required_argument, 0, O_TAKEOVER},
        {"analytics", required_argument, 0, O_ANALYTICS},
        {"analytics-raw-ip", no_argument, 0, O_AN_RAWIP},
        {"analytics-min-s", required_argument, 0, O_AN_MIN},
        {"analytics-keep-days", required_argument, 0, O_AN_KEEP},
        {"preroll", required_argument, 0, O_PREROLL},
        {"preroll-url", required_argument, 0, O_PREROLL_URL},
        {"help", no_argument, 0, 'h'},                {0, 0, 0, 0}};
    struct core_opts *co = &e->core.opt;
    struct http_opts *ho = &e->http.opt;
    bool have_listen = false;
    int c;
    ho->burst_s = 4;
    co->reorder_us = 300000;
    co->rewind_us = 14400ull * 1000000;
    co->stream_timeout_s = 1;
    co->max_skew_s = 60;
    ho->max_lag_s = 30;
    co->failback_after_s = 10;
    co->start_grace_s = EDGE_START_GRACE_S;
    ho->write_interval_s = EDGE_WRITE_INTERVAL_S;
    co->silence_failover_s = 15;
    co->silence_threshold_db = -50;
    co->sourceless_after_s = 30;
    co->rewind_save_every_s = 60;
    ho->metaint = EDGE_METAINT_DEFAULT;
    ho->hls_segment_s = 6;
    e->an_opt.min_s = ho->analytics_min_s = 1;
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    e->workers = cpus < 1 ? 1 : cpus > WORKERS_MAX ? WORKERS_MAX : (uint32_t)cpus;
    gethostname(co->node, sizeof(co->node) - 1);
    opterr = 0;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case O_LISTEN:
            if (net_addr_parse(optarg, &ho->listen) != FC_OK || ho->listen.proto != NET_TCP)
                cli_fail(prog, "--listen", "\"%s\": expected HOST:PORT", optarg);
            have_listen = true;
            break;
        case O_RELAY:
            if (co->n_relays >= EDGE_MAX_RELAYS)
                cli_fail(prog, "--relay", "at most %d relays", EDGE_MAX_RELAYS);
            if (net_addr_parse(optarg, &co->relays[co->n_relays]) != FC_OK ||
                co->relays[co->n_relays].proto != NET_TCP)
                cli_fail(prog, "--relay", "\"%s\": expected HOST:PORT", optarg);
            co->n_relays++;
            break;
        case O_KEY:
            cli_key_add(prog, &e->core.key_files, optarg);
            break;
        case O_BURST:
            ho->burst_s = cli_double(prog, "--burst", optarg, 0, 600);
            break;
        case O_REORDER:
            co->reorder_us = (uint64_t)(cli_double(prog, "--reorder-ms", optarg, 1, 10000) * 1000);
            break;
        case O_REWIND:
            co->rewind_us = (uint64_t)(cli_double(prog, "--rewind", optarg, 10, 7 * 86400) * 1e6);
            break;
        case O_TIMEOUT:
            co->stream_timeout_s = cli_double(prog, "--stream-timeout", optarg, 0.05, 60);
            break;
        case O_SKEW:
            co->max_skew_s = cli_double(prog, "--max-skew", optarg, 1, 86400);
            break;
        case O_LAG:
            ho->max_lag_s = cli_double(prog, "--max-lag", optarg, 1, 86400);
            break;
        case O_WINTERVAL:
            ho->write_interval_s = cli_double(prog, "--write-interval", optarg, 0, 5);
            break;
        case O_GRACE:
            co->start_grace_s = cli_double(prog, "--start-grace", optarg, 0, 60);
            break;
        case O_FAILBACK:
            co->failback_after_s = cli_double(prog, "--failback-after", optarg, 0, 86400);
            break;
        case O_SILENCE:
            co->silence_failover_s = cli_double(prog, "--silence-failover", optarg, 0, 86400);
            break;
        case O_SILENCE_DB:
            co->silence_threshold_db = (int)cli_double(prog, "--silence-threshold", optarg, -127, 0);
            break;
        case O_HLSSEG:
            ho->hls_segment_s = cli_double(prog, "--hls-segment", optarg, 1, 60);
            break;
        case O_HLSGROUP:
            add_hls_group(ho, optarg);
            break;
        case O_APITOKENS: {
            char why[256];
            if (!admin_load_tokens(&e->http, optarg, why, sizeof(why)))
                cli_fail(prog, "--api-token-file", "%s", why);
            ho->api_token_file = optarg;
            break;
        }
        case O_TLSLISTEN:
            if (net_addr_parse(optarg, &ho->listen_tls) != FC_OK || ho->listen_tls.proto != NET_TCP)
                cli_fail(prog, "--listen-tls", "\"%s\": expected HOST:PORT", optarg);
            ho->has_tls = true;
            break;
        case O_TLSCERT:
            ho->tls_cert = optarg;
            break;
        case O_TLSKEY:
            ho->tls_key = optarg;
            break;
        case O_WORKERS:
            e->workers = (uint32_t)cli_double(prog, "--workers", optarg, 0, WORKERS_MAX);
            break;
        case O_WEBROOT:
            ho->web_root = optarg;
            break;
        case O_METAINT:
            ho->metaint = (uint32_t)cli_double(prog, "--metaint", optarg, 256, 1 << 20);
            break;
        case O_RWDIR:
            co->rewind_dir = optarg;
            break;
        case O_RWEVERY:
            co->rewind_save_every_s = cli_double(prog, "--rewind-save-every", optarg, 1, 86400);
            break;
        case O_SOURCELESS:
            co->sourceless_after_s = cli_double(prog, "--sourceless-after", optarg, 0, 86400);
            break;
        case O_WEBHOOK:
            if (strncmp(optarg, "http://", 7) != 0 && strncmp(optarg, "https://", 8) != 0)
                cli_fail(prog, "--alert-webhook", "\"%s\": expected an http(s):// URL", optarg);
            co->alert_webhook = optarg;
            break;
        case O_NODE:
            snprintf(co->node, sizeof(co->node), "%s", optarg);
            break;
        case O_JSON:
            log_json = true;
            break;
        case O_CONTROL:
            e->ho.control = optarg;
            break;
        case O_TAKEOVER:
            e->ho.takeover = optarg;
            co->taking_over = true;
            break;
        case O_ANALYTICS: {
            char why[300];
            if (analytics_url_check(optarg, why, sizeof(why)) != FC_OK)
                cli_fail(prog, "--analytics", "%s", why);
            e->an_opt.url = optarg;
            e->analytics_on = true; /* sessions are built (edge/http/sessions.c) */
            break;
        }
        case O_AN_RAWIP:
            e->an_opt.raw_ip = ho->analytics_raw_ip = true;
            break;
        case O_AN_MIN:
            e->an_opt.min_s = ho->analytics_min_s =
                cli_double(prog, "--analytics-min-s", optarg, 0, 3600);
            break;
        case O_AN_KEEP:
            e->an_opt.keep_days = cli_double(prog, "--analytics-keep-days", optarg, 0, 36500);
            break;
        case O_PREROLL:
        case O_PREROLL_URL: {
            char why[300];
            bool url = c == O_PREROLL_URL;
            if (!(url ? preroll_add_url : preroll_add)(&e->http, optarg, why, sizeof(why)))
                cli_fail(prog, url ? "--preroll-url" : "--preroll", "%s", why);
            break;
        }
        case 'h':
            usage(stdout);
            exit(0);
        default:
            cli_fail(prog, argv[optind - 1], "unknown option or missing value (see --help)");
        }
    }
    if (optind < argc)
        cli_fail(prog, argv[optind], "unexpected argument");
    if (ho->has_tls != (ho->tls_cert != NULL) || ho->has_tls != (ho->tls_key != NULL))
        cli_fail(prog, "--listen-tls", "--listen-tls, --tls-cert and --tls-key go together");
    if (ho->has_tls) {
        char why[400];
        if (!(e->http.tls_ctx = tls_ctx_new(ho->tls_cert, ho->tls_key, why, sizeof(why))))
            cli_fail(prog, "--tls-cert", "%s", why);
    }
    if (!have_listen)
        cli_fail(prog, "--listen", "required");
    if (co->n_relays == 0)
        cli_fail(prog, "--relay", "give at least one relay");
    cli_keys_load(prog, &e->core.key_files, &e->core.keys);
    if (co->rewind_dir && access(co->rewind_dir, W_OK | X_OK) != 0)
        cli_fail(prog, "--rewind-dir", "%s: %s", co->rewind_dir, strerror(errno));
    char why[4400];
    if (!preroll_setup(&e->http, why, sizeof(why)))
        cli_fail(prog, "--preroll", "%s", why);
}

int main(int argc, char **argv)
{
    static struct edge edge;
    signal(SIGPIPE, SIG_IGN);
    if (mac_global_init() != FC_OK) {
        fprintf(stderr, "%s: libsodium failed to initialise\n", prog);
        return CLI_EXIT_RUNTIME;
    }
    cli_expand(prog, &argc, &argv);
    parse_args(&edge, argc, argv);
    log_init(&edge.core.log, "edge", log_json);
    struct ev_loop *loop = ev_default_loop(0);
    int rc = 0;
    if (edge_start(&edge, loop) != FC_OK || edge_handoff_listen(&edge) != FC_OK) {
        rc = CLI_EXIT_RUNTIME;
    } else {
        if (!edge.ho.takeover)
            sdnotify("READY=1"); /* systemd Type=notify (a successor said so itself) */
        ev_run(loop, 0);
    }
    edge_free(&edge);
    return rc;
}
