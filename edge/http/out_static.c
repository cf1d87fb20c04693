/* out_static.c - the web player's files (web/: index.html, player.css, player.js and hls.js
 * from the npm registry) and the operator view's (ops.html, ops.js, uPlot from npm), read once at start-up and served from memory, so a request never
 * touches the disk from the event loop. */
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "http.h"

#define STATIC_MAX_BYTES (4u << 20)

static const struct {
    const char *path;  /* URL path */
    const char *file;  /* under the web root */
    const char *ctype;
} static_files[] = {
    {"/", "index.html", "text/html; charset=utf-8"},
    {"/player.css", "player.css", "text/css; charset=utf-8"},
    {"/player.js", "player.js", "text/javascript; charset=utf-8"},
    {"/hls.min.js", "vendor/node_modules/hls.js/dist/hls.min.js", "text/javascript; charset=utf-8"},
    {"/ops", "ops.html", "text/html; charset=utf-8"},
    {"/ops.js", "ops.js", "text/javascript; charset=utf-8"},
    {"/uPlot.iife.min.js", "vendor/node_modules/uplot/dist/uPlot.iife.min.js",
     "text/javascript; charset=utf-8"},
    {"/uPlot.min.css", "vendor/node_modules/uplot/dist/uPlot.min.css", "text/css; charset=utf-8"},
};

static char *slurp(const char *path, size_t *len)
{
    FILE *fp = fopen(path, "rb");
    if (!fp)
        return NULL;
    char *buf = malloc(STATIC_MAX_BYTES);
    *len = buf ? fread(buf, 1, STATIC_MAX_BYTES, fp) : 0;
    fclose(fp);
    return buf;
}

/* --web-root, or web/ beside the build directory of this binary. */
static void web_root(const struct ehttp *h, char *out, size_t n)
{
    char exe[PATH_MAX];
    if (h->opt.web_root) {
        snprintf(out, n, "%s", h->opt.web_root);
        return;
    }
    ssize_t k = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
    exe[k > 0 ? k : 0] = '\0';
    snprintf(out, n, "%s/../web", dirname(exe));
}

void static_load(struct ehttp *h)
{
    char root[PATH_MAX], path[PATH_MAX + 64];
    web_root(h, root, sizeof(root));
    for (size_t i = 0; i < FC_ARRAY_LEN(static_files) && i < EDGE_STATIC_MAX; i++) {
        snprintf(path, sizeof(path), "%s/%s", root, static_files[i].file);
        h->statics[i].data = slurp(path, &h->statics[i].len);
        if (!h->statics[i].data)
            log_warn(h->log, "web file %s not found (the player page will lack it)", path);
    }
}

void static_free(struct ehttp *h)
{
    for (size_t i = 0; i < EDGE_STATIC_MAX; i++) {
        free(h->statics[i].data);
        h->statics[i].data = NULL;
    }
}

bool static_serve(struct elistener *l, const char *path, size_t len)
{
    struct ehttp *h = l->http;
    for (size_t i = 0; i < FC_ARRAY_LEN(static_files) && i < EDGE_STATIC_MAX; i++) {
        const char *p = static_files[i].path;
        if (strlen(p) != len || memcmp(p, path, len) != 0 || !h->statics[i].data)
            continue;
        listener_respond(l, 200, static_files[i].ctype, h->statics[i].data, h->statics[i].len,
                         i == 0 ? "Cache-Control: no-cache\r\n" : NULL);
        return true;
    }
    return false;
}
