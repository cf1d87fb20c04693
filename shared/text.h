/*
 * text.h - small text helpers shared by the programs: URL query decoding
 * (application/x-www-form-urlencoded, RFC 3986 §2.1 percent-encoding) and UTF-8 checks for titles
 * (ICY titles from Shoutcast servers and playout software are often Latin-1; JSON needs UTF-8).
 * Pure functions; no allocation.
 */
#ifndef FC_TEXT_H
#define FC_TEXT_H

#include <stdbool.h>
#include <stddef.h>

/* Percent-decode `len` bytes of `in` into `out` (capacity `cap`, NUL-terminated); '+' is a
 * space. False on a bad escape, an encoded NUL, or if it does not fit. */
bool text_unescape(const char *in, size_t len, char *out, size_t cap);

/* The decoded value of `key` in query string `q` (`len` bytes, no '?'). False if the key is
 * absent or its value does not decode into `cap` bytes. */
bool text_query_value(const char *q, size_t len, const char *key, char *out, size_t cap);

/* Length in bytes of the UTF-8 sequence at `s` (1..4), or 0 if it is not valid UTF-8. */
size_t text_utf8_seq(const unsigned char *s);

/* True if the NUL-terminated `s` is valid UTF-8. */
bool text_utf8_valid(const char *s);

/* Replace every byte that is not part of valid UTF-8 by '?', in place. */
void text_utf8_sanitize(char *s);

/* Read `in` as Latin-1 and write it as UTF-8 to `out` (capacity `cap`, NUL-terminated,
 * truncated on a character boundary). */
void text_latin1_to_utf8(const char *in, char *out, size_t cap);

#endif
