/* cli.c - see cli.h. */
#include "cli.h"

#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void cli_fail(const char *prog, const char *flag, const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "%s: %s: ", prog, flag);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\n");
    exit(CLI_EXIT_USAGE);
}

static char *scalar_text(const char *prog, const char *key, json_t *v)
{
    char buf[64];
    if (json_is_string(v))
        return strdup(json_string_value(v));
    if (json_is_integer(v))
        snprintf(buf, sizeof(buf), "%lld", (long long)json_integer_value(v));
    else if (json_is_real(v))
        snprintf(buf, sizeof(buf), "%.17g", json_real_value(v));
    else
        cli_fail(prog, "--config", "key \"%s\": expected a string, number, boolean or array",
                 key);
    return strdup(buf);
}

static void push(char ***out, int *n, int *cap, char *s)
{
    if (*n + 2 > *cap) {
        *cap = *cap ? *cap * 2 : 32;
        *out = realloc(*out, (size_t)*cap * sizeof(**out));
        if (!*out) {
            fprintf(stderr, "out of memory\n");
            exit(CLI_EXIT_RUNTIME);
        }
    }
    (*out)[(*n)++] = s;
    (*out)[*n] = NULL;
}

static char *flag_name(const char *key)
{
    char *f = malloc(strlen(key) + 3);
    if (f)
        sprintf(f, "--%s", key);
    return f;
}

static void add_config(const char *prog, const char *path, char ***out, int *n, int *cap)
{
    json_error_t jerr;
    json_t *root = json_load_file(path, 0, &jerr);
    if (!root)
        cli_fail(prog, "--config", "%s: line %d: %s", path, jerr.line, jerr.text);
    if (!json_is_object(root))
        cli_fail(prog, "--config", "%s: expected a JSON object", path);
    const char *key;
    json_t *v;
    json_object_foreach(root, key, v)
    {
        if (strcmp(key, "config") == 0)
            cli_fail(prog, "--config", "%s: nested \"config\" is not allowed", path);
        if (json_is_false(v) || json_is_null(v))
            continue;
        if (json_is_true(v)) {
            push(out, n, cap, flag_name(key));
        } else if (json_is_array(v)) {
            size_t i;
            json_t *item;
            json_array_foreach(v, i, item)
            {
                push(out, n, cap, flag_name(key));
                push(out, n, cap, scalar_text(prog, key, item));
            }
        } else {
            push(out, n, cap, flag_name(key));
            push(out, n, cap, scalar_text(prog, key, v));
        }
    }
    json_decref(root);
}

void cli_expand(const char *prog, int *argc, char ***argv)
{
    const char *path = NULL;
    for (int i = 1; i < *argc; i++) {
        if (strcmp((*argv)[i], "--config") == 0) {
            if (i + 1 >= *argc)
                cli_fail(prog, "--config", "needs a file name");
            path = (*argv)[i + 1];
        } else if (strncmp((*argv)[i], "--config=", 9) == 0) {
            path = (*argv)[i] + 9;
        }
    }
    if (!path)
        return;
    char **out = NULL;
    int n = 0, cap = 0;
    push(&out, &n, &cap, (*argv)[0]);
    add_config(prog, path, &out, &n, &cap);
    for (int i = 1; i < *argc; i++) {
        if (strcmp((*argv)[i], "--config") == 0) {
            i++;
            continue;
        }
        if (strncmp((*argv)[i], "--config=", 9) == 0)
            continue;
        push(&out, &n, &cap, (*argv)[i]);
    }
    *argc = n;
    *argv = out;
}

double cli_double(const char *prog, const char *flag, const char *arg, double min, double max)
{
    char *end;
    errno = 0;
    double v = strtod(arg, &end);
    if (errno || end == arg || *end || isnan(v) || v < min || v > max)
        cli_fail(prog, flag, "expected a number from %g to %g, got \"%s\"", min, max, arg);
    return v;
}

uint64_t cli_bytes(const char *prog, const char *flag, const char *arg)
{
    char *end;
    errno = 0;
    double v = strtod(arg, &end);
    double mult = 1;
    if (*end == 'K' || *end == 'k')
        mult = 1024.0, end++;
    else if (*end == 'M' || *end == 'm')
        mult = 1024.0 * 1024, end++;
    else if (*end == 'G' || *end == 'g')
        mult = 1024.0 * 1024 * 1024, end++;
    if (*end == 'i' || *end == 'B')
        end += (*end == 'i' && end[1] == 'B') ? 2 : 1;
    if (errno || end == arg || *end || !(v >= 0) || v * mult > 1e15)
        cli_fail(prog, flag, "expected a byte count like 8M, got \"%s\"", arg);
    return (uint64_t)(v * mult);
}

void cli_key_add(const char *prog, struct mac_key_files *files, const char *path)
{
    if (files->n >= MAC_KEYS_MAX)
        cli_fail(prog, "--key", "at most %d keys (MAC_KEYS_MAX)", MAC_KEYS_MAX);
    files->paths[files->n++] = path;
}

void cli_keys_load(const char *prog, const struct mac_key_files *files, struct mac_keyring *ring)
{
    const char *path, *why;
    if (files->n == 0)
        cli_fail(prog, "--key", "required");
    if (mac_keyring_load(files, ring, &path, &why) != FC_OK)
        cli_fail(prog, "--key", "%s: %s", path, why);
}

enum fc_err cli_keys_reload(const struct mac_key_files *files, struct mac_keyring *ring,
                            const struct log *log)
{
    const char *path, *why;
    char ids[MAC_KEYRING_IDS_MAX];
    enum fc_err err = mac_keyring_load(files, ring, &path, &why);
    if (err == FC_OK)
        log_info(log, "SIGHUP: keys reloaded keys=%s", mac_keyring_ids(ring, ids));
    else
        log_error(log, "SIGHUP: keys NOT reloaded, still keys=%s: --key %s: %s",
                  mac_keyring_ids(ring, ids), path, why);
    return err;
}
