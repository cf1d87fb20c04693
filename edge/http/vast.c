/* vast.c - see vast.h. Element names are matched without their namespace prefix: ad servers
 * send both plain VAST and VAST in the http://www.iab.com/VAST namespace. */
#include "vast.h"

#include <libxml/parser.h>
#include <libxml/tree.h>
#include <stdbool.h>
#include <string.h>
#include <strings.h>

static bool named(const xmlNode *n, const char *name)
{
    return n && n->type == XML_ELEMENT_NODE && strcmp((const char *)n->name, name) == 0;
}

static const xmlNode *child(const xmlNode *parent, const char *name)
{
    for (const xmlNode *c = parent ? parent->children : NULL; c; c = c->next)
        if (named(c, name))
            return c;
    return NULL;
}

/* Text content of `n` (CDATA included), trimmed, into out; false if empty or longer than max. */
static bool text_of(const xmlNode *n, char *out, size_t max)
{
    xmlChar *s = xmlNodeGetContent(n);
    bool ok = false;
    out[0] = '\0';
    if (s) {
        const char *p = (const char *)s, *e = p + strlen(p);
        while (p < e && (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n'))
            p++;
        while (e > p && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\r' || e[-1] == '\n'))
            e--;
        size_t k = (size_t)(e - p);
        if (k > 0 && k <= max) {
            memcpy(out, p, k);
            out[k] = '\0';
            ok = true;
        }
    }
    xmlFree(s);
    return ok;
}

static bool is_http_url(const char *u)
{
    return strncasecmp(u, "http://", 7) == 0 || strncasecmp(u, "https://", 8) == 0;
}

/* The MIME type `t` (parameters after ';' ignored) is one of `codec`'s. */
static bool type_matches(const char *t, enum fc_codec codec)
{
    static const char *const mp3[] = {"audio/mpeg", "audio/mp3", "audio/mpeg3", "audio/x-mpeg"};
    static const char *const aac[] = {"audio/aac", "audio/aacp", "audio/x-aac", "audio/adts"};
    const char *const *list = codec == FC_CODEC_ADTS ? aac : mp3;
    size_t k = strcspn(t, "; \t");
    for (size_t i = 0; i < 4; i++)
        if (strlen(list[i]) == k && strncasecmp(t, list[i], k) == 0)
            return true;
    return false;
}

/* Attribute `name` of `n` into out (max bytes + NUL); "" when absent or too long. */
static void attr_of(const xmlNode *n, const char *name, char *out, size_t max)
{
    xmlChar *v = xmlGetProp(n, (const xmlChar *)name);
    const char *p = (const char *)v;
    out[0] = '\0';
    if (p) {
        /* XML Schema's whitespace collapse for these token and boolean values */
        while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')
            p++;
        size_t len = strlen(p);
        while (len && (p[len - 1] == ' ' || p[len - 1] == '\t' || p[len - 1] == '\n' ||
                       p[len - 1] == '\r'))
            len--;
        if (len <= max) {
            memcpy(out, p, len);
            out[len] = '\0';
        }
    }
    xmlFree(v);
}

/* The first suitable MediaFile of an InLine ad's linear creatives; FC_OK or FC_PROTO. */
static enum fc_err pick_media(const xmlNode *inline_ad, enum fc_codec codec, struct vast_ad *out,
                              const char **why)
{
    const xmlNode *creatives = child(inline_ad, "Creatives");
    *why = "no MediaFile of the mount's codec";
    for (const xmlNode *cr = creatives ? creatives->children : NULL; cr; cr = cr->next) {
        const xmlNode *media = child(child(cr, "Linear"), "MediaFiles");
        for (const xmlNode *mf = media ? media->children : NULL; mf; mf = mf->next) {
            char type[64], delivery[32];
            if (!named(mf, "MediaFile"))
                continue;
            attr_of(mf, "type", type, sizeof(type) - 1);
            attr_of(mf, "delivery", delivery, sizeof(delivery) - 1);
            if (!type_matches(type, codec) || strcasecmp(delivery, "streaming") == 0)
                continue;
            if (!text_of(mf, out->media_url, VAST_URL_MAX) || !is_http_url(out->media_url)) {
                *why = "a MediaFile URL is empty, too long or not http(s)";
                continue;
            }
            memcpy(out->media_type, type, sizeof(type));
            return FC_OK;
        }
    }
    return FC_PROTO;
}

/* The http(s) Impression URLs among `ad`'s children (InLine or Wrapper), in order. */
static void impressions_of(const xmlNode *ad, struct vast_ad *out)
{
    for (const xmlNode *c = ad->children; c; c = c->next) {
        if (!named(c, "Impression") || out->n_impressions >= VAST_IMPRESSIONS_MAX)
            continue;
        char *u = out->impressions[out->n_impressions];
        if (text_of(c, u, VAST_URL_MAX) && is_http_url(u))
            out->n_impressions++;
        else
            u[0] = '\0';
    }
}

static enum fc_err parse_inline(const xmlNode *in, enum fc_codec codec, struct vast_ad *out,
                                const char **why)
{
    const xmlNode *t = child(in, "AdTitle");
    out->kind = VAST_INLINE;
    if (t)
        text_of(t, out->title, VAST_TITLE_MAX);
    enum fc_err err = pick_media(in, codec, out, why);
    if (err != FC_OK)
        return err;
    impressions_of(in, out);
    return FC_OK;
}

/* A Wrapper (VAST 3.0 §2.4.1, 4.1 §3.4): false if its VASTAdTagURI is not a usable URL. */
static bool parse_wrapper(const xmlNode *wr, struct vast_ad *out)
{
    char follow[16];
    const xmlNode *tag = child(wr, "VASTAdTagURI");
    if (!tag || !text_of(tag, out->ad_tag_uri, VAST_URL_MAX) || !is_http_url(out->ad_tag_uri)) {
        out->ad_tag_uri[0] = '\0';
        return false;
    }
    out->kind = VAST_WRAPPER;
    attr_of(wr, "followAdditionalWrappers", follow, sizeof(follow) - 1);
    out->follow_wrappers = strcasecmp(follow, "false") != 0 && strcmp(follow, "0") != 0;
    impressions_of(wr, out);
    return true;
}

/* The first child `name` of an Ad of the root, after `prev` (an earlier one's), or NULL. */
static const xmlNode *next_ad(const xmlNode *root, const xmlNode *prev, const char *name)
{
    for (const xmlNode *ad = prev ? prev->parent->next : root->children; ad; ad = ad->next) {
        const xmlNode *c = named(ad, "Ad") ? child(ad, name) : NULL;
        if (c)
            return c;
    }
    return NULL;
}

/* The ad to use among the root's Ads: the first InLine, else the first usable Wrapper. */
static enum fc_err pick_ad(const xmlNode *root, enum fc_codec codec, struct vast_ad *out,
                           const char **why)
{
    const xmlNode *in = next_ad(root, NULL, "InLine"), *wr = NULL;
    if (in)
        return parse_inline(in, codec, out, why);
    *why = "no ad";
    if (!child(root, "Ad"))
        return FC_EOF;
    *why = "neither an InLine ad nor a Wrapper with an http(s) VASTAdTagURI";
    while ((wr = next_ad(root, wr, "Wrapper")) != NULL)
        if (parse_wrapper(wr, out))
            return FC_OK;
    return FC_PROTO;
}

enum fc_err vast_parse(const char *doc, size_t len, enum fc_codec codec, struct vast_ad *out,
                       const char **why)
{
    memset(out, 0, sizeof(*out));
    if (len > VAST_DOC_MAX) {
        *why = "answer too large";
        return FC_LIMIT;
    }
    /* No NOENT (entities stay unexpanded, no XXE), no DTD loading, no network. */
    xmlDoc *d = xmlReadMemory(doc, (int)len, "vast.xml", NULL,
                              XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING);
    if (!d) {
        *why = "not well-formed XML";
        return FC_PROTO;
    }
    enum fc_err err = FC_PROTO;
    const xmlNode *root = xmlDocGetRootElement(d);
    char version[16];
    if (!named(root, "VAST")) {
        *why = "the root element is not VAST";
        goto out;
    }
    attr_of(root, "version", version, sizeof(version) - 1);
    if (version[0] < '2' || version[0] > '4' || (version[1] != '.' && version[1] != '\0')) {
        *why = "not VAST version 2, 3 or 4";
        goto out;
    }
    err = pick_ad(root, codec, out, why);
out:
    xmlFreeDoc(d);
    return err;
}
