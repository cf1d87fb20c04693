/* api_tokens.c - --api-token-file: `NAME TOKEN [ro]` per line (docs/architecture.md §7.10).
 * Only a BLAKE2b-256 hash of each token is kept (api_token_hash); the token text is wiped. */
#include <errno.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>
#include "http.h"

void api_token_hash(const char *tok, size_t len, uint8_t out[32])
{
    crypto_generichash(out, 32, (const uint8_t *)tok, len, NULL, 0);
}

bool admin_load_tokens(struct ehttp *h, const char *path, char *why, size_t why_len)
{
    FILE *fp = fopen(path, "r");
    if (!fp) {
        snprintf(why, why_len, "%s: %s", path, strerror(errno));
        return false;
    }
    char line[512];
    int ln = 0;
    h->n_tokens = 0;
    while (fgets(line, sizeof(line), fp)) {
        ln++;
        if (!strchr(line, '\n') && !feof(fp)) {
            snprintf(why, why_len, "%s:%d: line longer than %zu bytes", path, ln,
                     sizeof(line) - 2);
            fclose(fp);
            return false;
        }
        char name[64], tok[256], flag[16], extra[2];
        int n = sscanf(line, "%63s %255s %15s %1s", name, tok, flag, extra);
        if (n <= 0 || name[0] == '#')
            continue;
        /* A field at its sscanf width may have been cut: refuse rather than guess. */
        if (n < 2 || n > 3 || (n == 3 && strcmp(flag, "ro") != 0) ||
            strlen(name) > API_TOKEN_NAME_MAX || strlen(tok) < 16 || strlen(tok) > 254 ||
            h->n_tokens == API_TOKENS_MAX) {
            snprintf(why, why_len,
                     "%s:%d: expected \"NAME TOKEN\" or \"NAME TOKEN ro\" (name <= %d bytes, token "
                     "16..254 bytes, at most %d lines)",
                     path, ln, API_TOKEN_NAME_MAX, API_TOKENS_MAX);
            fclose(fp);
            return false;
        }
        struct api_token *t = &h->tokens[h->n_tokens++];
        memcpy(t->name, name, strlen(name) + 1); /* <= API_TOKEN_NAME_MAX, checked above */
        api_token_hash(tok, strlen(tok), t->hash);
        t->ro = n == 3;
        sodium_memzero(tok, sizeof(tok));
    }
    fclose(fp);
    if (h->n_tokens == 0) {
        snprintf(why, why_len, "%s: no tokens", path);
        return false;
    }
    return true;
}

