/* main.c - framecast-shim: flags and config, then the event loop. */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "cli.h"
#include "shim.h"

static const char *const prog = "framecast-shim";

static void usage(FILE *out)
{
    fprintf(out,
            "usage: %s --mount NAME --encoder NAME (--pull URL | --file PATH | --source-listen HOST:PORT)\n"
            "       --to URL... --key FILE [options]\n"
            "  --mount NAME      mount name, [A-Za-z0-9._-], at most 64 bytes\n"
            "  --encoder NAME    this encoder's name (several encoders may feed one mount)\n"
            "  --priority N      0 = primary, 1 = first backup, ... (default 0)\n"
            "  --pull URL        republish an Icecast/Shoutcast mount (http:// or https://)\n"
            "  --file PATH       play an MP3 or ADTS file in real time, looped\n"
            "  --source-listen HOST:PORT  accept an Icecast source push (SOURCE/PUT) for the mount,\n"
            "                    and /admin/metadata title updates\n"
            "  --source-password P  password of user \"source\" (HTTP Basic)\n"
            "  --codec C         mp3, aac or auto (default: from Content-Type or file name)\n"
            "  --to URL          tcp://HOST:PORT, udp://HOST:PORT, udp://GROUP:PORT (repeatable)\n"
            "  --key FILE        mesh key, 64 hex characters; repeat to accept more keys during a\n"
            "                    rotation: frames are sent with the first, accepted with any\n"
            "                    (SIGHUP reads the files again)\n"
            "  --node NAME       name in HELLO and logs (default: hostname)\n"
            "  --metrics HOST:PORT  GET /metrics there: Prometheus text format\n"
            "  --log-json        JSON log lines\n"
            "  --config FILE     JSON object of the same options\n",
            prog);
}

static void set_name(char *dst, size_t max, const char *flag, const char *v)
{
    if (!wire_valid_name(v, strlen(v), max))
        cli_fail(prog, flag, "\"%s\": 1..%zu characters of A-Z a-z 0-9 . _ -", v, max);
    memcpy(dst, v, strlen(v) + 1);
}

static void parse_args(struct shim *s, int argc, char **argv)
{
    enum { O_MOUNT = 1, O_ENCODER, O_PRIO, O_PULL, O_FILE, O_CODEC, O_TO, O_KEY, O_NODE, O_JSON,
           O_SRCLISTEN, O_SRCPW, O_METRICS };
    static const struct option opts[] = {
        {"mount", required_argument, 0, O_MOUNT}, {"encoder", required_argument, 0, O_ENCODER},
        {"priority", required_argument, 0, O_PRIO}, {"pull", required_argument, 0, O_PULL},
        {"file", required_argument, 0, O_FILE},   {"codec", required_argument, 0, O_CODEC},
        {"to", required_argument, 0, O_TO},       {"key", required_argument, 0, O_KEY},
        {"node", required_argument, 0, O_NODE},   {"log-json", no_argument, 0, O_JSON},
        {"source-listen", required_argument, 0, O_SRCLISTEN},
        {"source-password", required_argument, 0, O_SRCPW},
        {"metrics", required_argument, 0, O_METRICS},
        {"help", no_argument, 0, 'h'},            {0, 0, 0, 0}};
    int c;
    gethostname(s->opt.node, sizeof(s->opt.node) - 1);
    opterr = 0;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case O_MOUNT:
            set_name(s->opt.mount, WIRE_MOUNT_MAX, "--mount", optarg);
            break;
        case O_ENCODER:
            set_name(s->opt.encoder, WIRE_ENCODER_MAX, "--encoder", optarg);
            break;
        case O_PRIO:
            s->opt.priority = (uint32_t)cli_double(prog, "--priority", optarg, 0, 255);
            break;
        case O_PULL:
            if (strncmp(optarg, "http://", 7) != 0 && strncmp(optarg, "https://", 8) != 0)
                cli_fail(prog, "--pull", "\"%s\": expected an http:// or https:// URL", optarg);
            s->opt.pull_url = optarg;
            break;
        case O_FILE:
            s->opt.file = optarg;
            break;
        case O_SRCLISTEN:
            if (net_addr_parse(optarg, &s->opt.source_listen) != FC_OK ||
                s->opt.source_listen.proto != NET_TCP)
                cli_fail(prog, "--source-listen", "\"%s\": expected HOST:PORT", optarg);
            s->opt.source_listen_set = true;
            break;
        case O_SRCPW:
            s->opt.source_password = optarg;
            break;
        case O_CODEC:
            if (strcmp(optarg, "mp3") == 0)
                s->opt.codec = FC_CODEC_MP3;
            else if (strcmp(optarg, "aac") == 0 || strcmp(optarg, "adts") == 0)
                s->opt.codec = FC_CODEC_ADTS;
            else if (strcmp(optarg, "auto") == 0)
                s->opt.codec = FC_CODEC_NONE;
            else
                cli_fail(prog, "--codec", "\"%s\": expected mp3, aac or auto", optarg);
            break;
        case O_TO: {
            if (s->n_targets >= SHIM_MAX_TARGETS)
                cli_fail(prog, "--to", "at most %d targets", SHIM_MAX_TARGETS);
            enum fc_err err = net_addr_parse(optarg, &s->targets[s->n_targets].addr);
            if (err != FC_OK)
                cli_fail(prog, "--to", "\"%s\": %s", optarg,
                         err == FC_PROTO ? "expected tcp://HOST:PORT or udp://HOST:PORT"
                                         : "address does not resolve");
            s->n_targets++;
            break;
        }
        case O_KEY:
            cli_key_add(prog, &s->key_files, optarg);
            break;
        case O_NODE:
            snprintf(s->opt.node, sizeof(s->opt.node), "%s", optarg);
            break;
        case O_JSON:
            s->opt.log_json = true;
            break;
        case O_METRICS:
            if (net_addr_parse(optarg, &s->opt.metrics) != FC_OK || s->opt.metrics.proto != NET_TCP)
                cli_fail(prog, "--metrics", "\"%s\": expected HOST:PORT", optarg);
            s->opt.has_metrics = true;
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
    if (!s->opt.mount[0])
        cli_fail(prog, "--mount", "required");
    if (!s->opt.encoder[0])
        cli_fail(prog, "--encoder", "required");
    if ((s->opt.pull_url != NULL) + (s->opt.file != NULL) + s->opt.source_listen_set != 1)
        cli_fail(prog, "--pull", "give exactly one input: --pull URL, --file PATH or --source-listen");
    if (s->opt.source_listen_set && (!s->opt.source_password || !s->opt.source_password[0]))
        cli_fail(prog, "--source-password", "required with --source-listen");
    if (s->n_targets == 0)
        cli_fail(prog, "--to", "give at least one target");
    cli_keys_load(prog, &s->key_files, &s->keys);
}

static void on_signal(EV_P_ ev_signal *w, int revents)
{
    ev_break(EV_A_ EVBREAK_ALL);
}

/* Frames encoded from now on are tagged with the new first key; those already queued or kept for
 * a reconnect (SHIM_RESEND_S) keep the tag they were made with. */
static void on_sighup(EV_P_ ev_signal *w, int revents)
{
    struct shim *s = container_of(w, struct shim, sighup);
    cli_keys_reload(&s->key_files, &s->keys, &s->log);
}

static void on_stats(EV_P_ ev_timer *w, int revents)
{
    shim_log_stats(container_of(w, struct shim, stats));
}

/*
 * Test hook FC_DEBUG_DROP_SEQ=N[,M...]: those sequence numbers are never sent on any path (the
 * patch test needs a frame lost everywhere). It is loud on purpose: a warning at start names
 * the seqs, and a malformed value is a configuration error (exit 2), never silently half-read.
 */
static void debug_drop_parse(struct shim *s, const char *prog)
{
    const char *v = getenv("FC_DEBUG_DROP_SEQ");
    if (!v)
        return;
    for (const char *p = v; *p;) {
        char *end;
        errno = 0;
        unsigned long long q = strtoull(p, &end, 10);
        if (end == p || errno || *p == '-' || (*end != ',' && *end != '\0') ||
            s->n_debug_drop >= SHIM_DEBUG_DROP_MAX) {
            fprintf(stderr, "%s: FC_DEBUG_DROP_SEQ=\"%s\": expected up to %d comma-separated "
                    "sequence numbers\n", prog, v, SHIM_DEBUG_DROP_MAX);
            exit(CLI_EXIT_USAGE);
        }
        s->debug_drop[s->n_debug_drop++] = q;
        p = *end == ',' ? end + 1 : end;
    }
    log_warn(&s->log, "test hook FC_DEBUG_DROP_SEQ=%s: these frames are NOT sent", v);
}

int main(int argc, char **argv)
{
    static struct shim shim;
    static struct framer framer;
    struct shim *s = &shim;
    int rc = 0;
    signal(SIGPIPE, SIG_IGN);
    if (mac_global_init() != FC_OK) {
        fprintf(stderr, "%s: libsodium failed to initialise\n", prog);
        return CLI_EXIT_RUNTIME;
    }
    cli_expand(prog, &argc, &argv);
    parse_args(s, argc, argv);
    log_init(&s->log, "shim", s->opt.log_json);
    s->loop = ev_default_loop(0);
    s->framer = &framer;
    randombytes_buf(&s->session, sizeof(s->session));
    debug_drop_parse(s, prog);
    ev_signal_init(&s->sigint, on_signal, SIGINT);
    ev_signal_start(s->loop, &s->sigint);
    ev_signal_init(&s->sigterm, on_signal, SIGTERM);
    ev_signal_start(s->loop, &s->sigterm);
    ev_signal_init(&s->sighup, on_sighup, SIGHUP);
    ev_signal_start(s->loop, &s->sighup);
    ev_timer_init(&s->stats, on_stats, 60, 60);
    ev_timer_start(s->loop, &s->stats);
    s->src_fd = -1;
    enum fc_err in_err = shim_targets_start(s);
    if (in_err == FC_OK)
        in_err = s->opt.pull_url ? shim_pull_start(s)
                 : s->opt.file  ? shim_file_start(s)
                                : shim_source_start(s);
    if (in_err == FC_OK && s->opt.has_metrics &&
        metrics_http_start(&s->metrics, s->loop, &s->log, &s->opt.metrics, shim_metrics, s) != FC_OK) {
        log_error(&s->log, "metrics %s: %s", s->opt.metrics.text, strerror(errno));
        in_err = FC_IO;
    }
    if (in_err != FC_OK) {
        rc = CLI_EXIT_RUNTIME;
        goto out;
    }
    char ids[MAC_KEYRING_IDS_MAX];
    log_info(&s->log, "started mount=%s encoder=%s priority=%u session=%016llx targets=%d keys=%s",
             s->opt.mount, s->opt.encoder, s->opt.priority, (unsigned long long)s->session,
             s->n_targets, mac_keyring_ids(&s->keys, ids));
    ev_run(s->loop, 0);
    on_stats(s->loop, &s->stats, 0);
out:
    metrics_http_stop(&s->metrics);
    shim_pull_free(s);
    shim_file_free(s);
    shim_source_free(s);
    shim_targets_free(s);
    level_free(&s->meter);
    mac_keyring_wipe(&s->keys);
    return rc;
}
