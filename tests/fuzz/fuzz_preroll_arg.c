/*
 * fuzz_preroll_arg.c - libFuzzer target for the edge's --preroll / --preroll-url arguments
 * (edge/http/preroll.c: preroll_add, preroll_add_url) and for turning a file's bytes into a
 * preroll clip (edge/http/clip.c: clip_from_bytes, framing and the ICY rendering).
 *
 * Input: byte 0 bit 0 picks --preroll or --preroll-url for the first argument, bit 1 for the
 * second; bytes 1-2 a metaint; the rest is split at the first NUL into two arguments, the rest
 * after a second NUL is a clip file's contents. Checks: an accepted argument made an entry whose
 * mount is a valid name (or "" for a bare http(s) URL) and whose value is the argument's, a URL
 * is http(s); a refused one leaves a message; the same mount is never accepted twice. A clip
 * accepted has frames, the ICY rendering is the audio plus one block per metaint bytes that more
 * audio follows (the first carrying the name), and the count left after it is below metaint.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../../edge/http/clip.c"
#include "../../edge/http/preroll.c"

#include "fuzz_check.h"

/* What preroll.c calls outside the parts fuzzed. */
bool adfetch_start(struct ehttp *h, struct elistener *l, const char *url, const struct emount *m,
                   const struct stream_req *rq)
{
    return false;
}
void adfetch_forget(struct elistener *l) {}
void adfetch_sent(struct elistener *l) {}
void adfetch_free(struct adfetch *af) {}
void stream_start(struct elistener *l, struct emount *m, const struct stream_req *rq) {}
void listener_respond_error(struct elistener *l, int status, const char *msg) {}
struct emount *edge_mount_find(struct core *c, const char *name, size_t len)
{
    return NULL;
}

static void check_arg(struct ehttp *h, bool url, const char *arg)
{
    char why[300] = "";
    int before = h->pre ? h->pre->n : 0;
    bool ok = url ? preroll_add_url(h, arg, why, sizeof(why)) : preroll_add(h, arg, why, sizeof(why));
    if (!ok) {
        CHECK(why[0]);
        return;
    }
    struct preroll *pr = h->pre;
    CHECK(pr && pr->n >= before && pr->n <= before + 1);
    const char *eq = strchr(arg, '=');
    bool bare = url && (!strncmp(arg, "http://", 7) || !strncmp(arg, "https://", 8));
    const char *mount = bare ? "" : arg;
    size_t mlen = bare ? 0 : (size_t)(eq - arg);
    struct preroll_entry *e = entry_named(pr, mount, mlen, false);
    CHECK(e);
    CHECK(bare || wire_valid_name(e->mount, strlen(e->mount), WIRE_MOUNT_MAX));
    const char *v = url ? e->url : e->path;
    CHECK(v && strcmp(v, bare ? arg : eq + 1) == 0 && v[0]);
    CHECK(!(e->url && e->path));
    if (url)
        CHECK(!strncmp(v, "http://", 7) || !strncmp(v, "https://", 8));
}

static void check_clip(const uint8_t *d, size_t n, uint32_t metaint)
{
    struct clip *c = NULL;
    const char *why = NULL;
    if (clip_from_bytes(d, n, "fuzz", "fuzz", metaint, &c, &why) != FC_OK) {
        CHECK(why && why[0] && !c);
        return;
    }
    CHECK(c->frames > 0 && c->raw_len > 0 && c->raw_len <= n && c->seconds > 0);
    uint32_t blocks = (c->raw_len - 1) / metaint;
    size_t first = blocks ? 1 + 16 * (size_t)((strlen("StreamTitle='fuzz';") + 15) / 16) : 0;
    CHECK(c->icy_len == c->raw_len + first + (blocks ? blocks - 1 : 0));
    CHECK(c->icy_left < metaint);
    CHECK((c->raw_len + c->icy_left) % metaint == 0);
    CHECK(memcmp(c->icy, c->raw, c->raw_len < metaint ? c->raw_len : metaint) == 0);
    clip_unref(c);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct ehttp h;
    if (size < 3)
        return 0;
    uint32_t metaint = 256 + ((uint32_t)data[1] << 8 | data[2]);
    char *buf = malloc(size - 2);
    if (!buf)
        return 0;
    memcpy(buf, data + 3, size - 3);
    buf[size - 3] = '\0';
    const char *a1 = buf;
    const char *a2 = buf + strlen(buf) < buf + size - 3 ? buf + strlen(buf) + 1 : NULL;
    check_arg(&h, data[0] & 1, a1);
    if (a2) {
        check_arg(&h, data[0] & 2, a2);
        const char *rest = a2 + strlen(a2) < buf + size - 3 ? a2 + strlen(a2) + 1 : NULL;
        if (rest)
            check_clip((const uint8_t *)rest, (size_t)(buf + size - 3 - rest), metaint);
    }
    preroll_free(&h);
    free(buf);
    return 0;
}
