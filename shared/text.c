/* text.c - see text.h. */
#include "text.h"

#include <string.h>

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

bool text_unescape(const char *in, size_t len, char *out, size_t cap)
{
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        char c = in[i];
        if (c == '%') {
            if (i + 2 >= len)
                return false;
            int hi = hexval(in[i + 1]), lo = hexval(in[i + 2]);
            if (hi < 0 || lo < 0)
                return false;
            c = (char)(hi << 4 | lo);
            i += 2;
        } else if (c == '+') {
            c = ' ';
        }
        if (o + 1 >= cap || c == '\0')
            return false;
        out[o++] = c;
    }
    out[o] = '\0';
    return true;
}

bool text_query_value(const char *q, size_t len, const char *key, char *out, size_t cap)
{
    size_t klen = strlen(key);
    for (size_t i = 0; i < len;) {
        size_t amp = i;
        while (amp < len && q[amp] != '&')
            amp++;
        if (amp - i > klen && memcmp(q + i, key, klen) == 0 && q[i + klen] == '=')
            return text_unescape(q + i + klen + 1, amp - i - klen - 1, out, cap);
        i = amp + 1;
    }
    return false;
}

size_t text_utf8_seq(const unsigned char *s)
{
    size_t n = *s < 0x80                      ? 1
               : (*s & 0xE0) == 0xC0 && *s >= 0xC2 ? 2
               : (*s & 0xF0) == 0xE0               ? 3
               : (*s & 0xF8) == 0xF0 && *s <= 0xF4 ? 4
                                                   : 0;
    for (size_t i = 1; i < n; i++)
        if ((s[i] & 0xC0) != 0x80)
            return 0;
    return n;
}

bool text_utf8_valid(const char *p)
{
    const unsigned char *s = (const unsigned char *)p;
    while (*s) {
        size_t n = text_utf8_seq(s);
        if (n == 0)
            return false;
        s += n;
    }
    return true;
}

void text_utf8_sanitize(char *p)
{
    unsigned char *s = (unsigned char *)p;
    while (*s) {
        size_t n = text_utf8_seq(s);
        if (n == 0)
            *s++ = '?';
        else
            s += n;
    }
}

void text_latin1_to_utf8(const char *in, char *out, size_t cap)
{
    size_t o = 0;
    for (const unsigned char *p = (const unsigned char *)in; *p && o + 3 < cap; p++) {
        if (*p < 0x80) {
            out[o++] = (char)*p;
        } else {
            out[o++] = (char)(0xC0 | *p >> 6);
            out[o++] = (char)(0x80 | (*p & 0x3F));
        }
    }
    out[o] = '\0';
}
