/* tls.c - HTTPS for listeners (--listen-tls, --tls-cert, --tls-key; docs/architecture.md §7.11).
 *
 * OpenSSL 3, TLS 1.2 and 1.3 only, non-blocking on the listener's socket and driven by its libev
 * watchers. A listener's bytes go out through tls_writev(), which cuts the iovecs into records
 * of at most TLS_CHUNK bytes copied into a per-process scratch buffer and SSL_write()s them (one
 * copy per byte: the kernel's TLS, which would let writev() go straight from the slabs, is used
 * when OpenSSL reports it for the connection — BIO_get_ktls_send — and the kernel offers it).
 * SSL_write() retries must present the same bytes: a listener's plan always starts at its own
 * position, and one that cannot offer at least the length of its pending retry waits.
 * The certificate and key are read at start and again on tls_reload() (SIGHUP): a bad pair is
 * logged and the old one kept. */
#include <errno.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include "http.h"

#define TLS_CHUNK 16384 /* one TLS record */

static void ssl_errors(char *why, size_t n)
{
    unsigned long e = ERR_get_error();
    if (e)
        ERR_error_string_n(e, why, n);
    else
        snprintf(why, n, "%s", strerror(errno));
    ERR_clear_error();
}

void *tls_ctx_new(const char *cert, const char *key, char *why, size_t why_len)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    if (!ctx) {
        ssl_errors(why, why_len);
        return NULL;
    }
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
                              SSL_MODE_RELEASE_BUFFERS);
    SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_ENABLE_KTLS);
    if (SSL_CTX_use_certificate_chain_file(ctx, cert) != 1 ||
        SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1 ||
        SSL_CTX_check_private_key(ctx) != 1) {
        char e[200];
        ssl_errors(e, sizeof(e));
        snprintf(why, why_len, "%s / %s: %s", cert, key, e);
        SSL_CTX_free(ctx);
        return NULL;
    }
    return ctx;
}

void tls_ctx_free(void *ctx)
{
    SSL_CTX_free(ctx);
}

bool tls_reload(struct ehttp *h)
{
    if (!h->tls_ctx)
        return true;
    char why[300];
    void *ctx = tls_ctx_new(h->opt.tls_cert, h->opt.tls_key, why, sizeof(why));
    if (!ctx) {
        log_error(h->log, "tls reload failed, keeping the old certificate: %s", why);
        return false;
    }
    SSL_CTX_free(h->tls_ctx); /* connections hold their own reference */
    h->tls_ctx = ctx;
    log_info(h->log, "tls certificate reloaded from %s", h->opt.tls_cert);
    return true;
}

bool tls_start(struct elistener *l)
{
    l->ssl = SSL_new(l->http->tls_ctx);
    if (!l->ssl || SSL_set_fd(l->ssl, l->fd) != 1)
        return false;
    SSL_set_accept_state(l->ssl);
    return true;
}

/* errno for an SSL_get_error() code: EAGAIN for want-read/write, else EIO. `*want_write` is set
 * when the connection waits for writability. */
static ssize_t fail(struct elistener *l, int r)
{
    int e = SSL_get_error(l->ssl, r);
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
        l->tls_want_write = e == SSL_ERROR_WANT_WRITE;
        errno = EAGAIN;
        return -1;
    }
    if (e == SSL_ERROR_ZERO_RETURN)
        return 0;
    if (e == SSL_ERROR_SYSCALL && errno == 0)
        return 0; /* EOF without close_notify */
    ERR_clear_error();
    errno = e == SSL_ERROR_SYSCALL ? errno : EPROTO;
    return -1;
}

int tls_handshake(struct elistener *l)
{
    int r = SSL_do_handshake(l->ssl);
    if (r == 1) {
        l->tls_ready = true;
        l->tls_ktls = BIO_get_ktls_send(SSL_get_wbio(l->ssl)) > 0;
        return 1;
    }
    return fail(l, r) < 0 && errno == EAGAIN ? 0 : -1;
}

ssize_t tls_read(struct elistener *l, void *buf, size_t n)
{
    int r = SSL_read(l->ssl, buf, (int)(n > INT32_MAX ? INT32_MAX : n));
    return r > 0 ? r : fail(l, r);
}

ssize_t tls_write(struct elistener *l, const void *buf, size_t n)
{
    const struct iovec iov = {.iov_base = (void *)buf, .iov_len = n};
    return tls_writev(l, &iov, 1);
}

ssize_t tls_writev(struct elistener *l, const struct iovec *iov, int n)
{
    if (l->tls_ktls)
        return writev(l->fd, iov, n);
    size_t total = 0, offered = 0;
    for (int i = 0; i < n; i++)
        offered += iov[i].iov_len;
    if (offered < l->tls_retry) {
        errno = EAGAIN; /* a retry must present at least what the failed write held */
        return -1;
    }
    uint8_t *scratch = l->http->tls_scratch;
    int i = 0;
    size_t off = 0; /* into iov[i] */
    while (total < offered && total < EDGE_WRITE_MAX) {
        size_t len = 0;
        while (len < TLS_CHUNK && i < n) {
            size_t take = iov[i].iov_len - off;
            take = take < TLS_CHUNK - len ? take : TLS_CHUNK - len;
            memcpy(scratch + len, (const uint8_t *)iov[i].iov_base + off, take);
            len += take;
            off += take;
            if (off == iov[i].iov_len)
                i++, off = 0;
        }
        int r = SSL_write(l->ssl, scratch, (int)len);
        if (r <= 0) {
            ssize_t f = fail(l, r);
            if (f < 0 && errno == EAGAIN) {
                /* The next call starts at this chunk's first byte (the listener advances by
                 * `total`) and must offer at least as much. */
                l->tls_retry = len;
                return total ? (ssize_t)total : -1;
            }
            return total ? (ssize_t)total : (f == 0 ? (errno = EPIPE, -1) : -1);
        }
        l->tls_retry = 0;
        total += (size_t)r;
        if ((size_t)r < len)
            break; /* partial: the rest goes next time, from the listener's new position */
    }
    return (ssize_t)total;
}

void tls_close(struct elistener *l)
{
    if (!l->ssl)
        return;
    if (l->tls_ready)
        SSL_shutdown(l->ssl); /* one try: close_notify if the socket takes it */
    ERR_clear_error();
}

void tls_free(struct elistener *l)
{
    SSL_free(l->ssl);
    l->ssl = NULL;
}
