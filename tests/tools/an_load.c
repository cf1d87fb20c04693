/* an_load.c - load sessions into an analytics database through the edge's own store
 * (edge/analytics/: queue, writer thread, schema, batched inserts), for tests/integration/
 * analytics_db.sh.
 *
 * usage: an_load URL NODE FILE
 *   URL   as --analytics (sqlite:FILE, a path, postgresql://…); NODE the node name stored;
 *   FILE  one session a line, tab-separated: id mount proto(raw|icy|hls) start_us end_us
 *         preroll_s listened_s bytes timeshift_s user_agent client
 * Submits every line, waits (at most 30 s) until the writer has committed them all, prints
 * "an_load: N sessions written" and exits 0; 1 on a bad line, a full queue or a timeout. The
 * store flags short sessions itself (min_s 1, as the edge's default). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "../../edge/analytics/store.c"
#include "../../edge/analytics/schema.c"
#include "../../edge/analytics/figures.c"
#include "../../edge/analytics/query.c"
#include "../../edge/analytics/sqlite.c"
#include "../../edge/analytics/pg.c"
#include "an_tsv.h"

#define LOAD_WAIT_S 30


int main(int argc, char **argv)
{
    if (argc != 4) {
        fprintf(stderr, "usage: an_load URL NODE FILE\n");
        return 2;
    }
    struct log lg;
    log_init(&lg, "an_load", false);
    FILE *in = fopen(argv[3], "r");
    if (!in) {
        perror(argv[3]);
        return 1;
    }
    struct ev_loop *loop = ev_default_loop(0);
    struct analytics_opts o = {.url = argv[1], .min_s = 1, .node = argv[2]};
    struct analytics *a;
    if (analytics_open(&a, &o, loop, &lg) != FC_OK)
        return 1;
    char line[2048];
    uint64_t n = 0;
    int rc = 0;
    while (fgets(line, sizeof(line), in)) {
        struct an_session s;
        if (line[0] == '#' || line[0] == '\n')
            continue;
        if (!an_tsv_parse(line, &s) || !analytics_submit(a, &s)) {
            fprintf(stderr, "an_load: line %llu refused\n", (unsigned long long)n + 1);
            rc = 1;
            break;
        }
        n++;
    }
    fclose(in);
    struct an_stats st = {0};
    for (int i = 0; rc == 0 && i < LOAD_WAIT_S * 100; i++) {
        analytics_stats(a, &st);
        if (st.written >= n)
            break;
        usleep(10000);
    }
    if (rc == 0 && st.written < n) {
        fprintf(stderr, "an_load: only %llu of %llu written after %d s\n",
                (unsigned long long)st.written, (unsigned long long)n, LOAD_WAIT_S);
        rc = 1;
    }
    analytics_close(a);
    if (rc == 0)
        printf("an_load: %llu sessions written\n", (unsigned long long)n);
    return rc;
}
