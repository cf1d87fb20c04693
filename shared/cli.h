/*
 * cli.h - command-line helpers shared by the three programs (docs/architecture.md §1.4).
 *
 * Every flag also has a JSON config key: `--config FILE` holds an object whose keys are flag
 * names without dashes; arrays repeat a flag, `true` gives a bare flag. cli_expand() splices the
 * file's flags in front of the command line, so flags given on the command line win for
 * single-valued options. Bad input exits with status 2 and a message naming the flag.
 */
#ifndef FC_CLI_H
#define FC_CLI_H

#include <stdint.h>
#include "mac.h"

#define CLI_EXIT_USAGE 2   /* bad command line or config */
#define CLI_EXIT_RUNTIME 1 /* runtime failure */

/* Print "PROG: --FLAG: message" to stderr and exit(2). */
void cli_fail(const char *prog, const char *flag, const char *fmt, ...)
    __attribute__((format(printf, 3, 4), noreturn));

/*
 * If argv contains `--config FILE` (or --config=FILE), build a new argv: argv[0], the flags from
 * FILE, then the remaining command-line arguments. Exits 2 naming --config if FILE is unreadable
 * or not a JSON object of strings/numbers/booleans/arrays. The result lives until exit.
 */
void cli_expand(const char *prog, int *argc, char ***argv);

/* Parse a number within [min, max] or exit 2 naming `flag`. */
double cli_double(const char *prog, const char *flag, const char *arg, double min, double max);

/* Parse a byte count with an optional K/M/G suffix (powers of 1024) or exit 2. */
uint64_t cli_bytes(const char *prog, const char *flag, const char *arg);

/*
 * `--key FILE`, repeatable (docs/architecture.md §2.2): the key files named, in order. Keys from
 * --config come first (cli_expand), then those on the command line.
 */
struct cli_keys {
    const char *paths[MAC_KEYS_MAX]; /* borrowed (argv or the --config expansion) */
    int n;                           /* paths used */
};

/* Remember one `--key FILE` (`path` is borrowed); exit 2 naming --key past MAC_KEYS_MAX. */
void cli_key_add(const char *prog, struct cli_keys *k, const char *path);

/*
 * Load every file of `k` into `ring` (emptied first), in order: the first key tags what the
 * program sends, any verifies. Exit 2 naming --key if there is none ("required"), or a file is
 * unreadable or not a key. A key given twice is kept once. The caller wipes `ring` at exit.
 */
void cli_keys_load(const char *prog, const struct cli_keys *k, struct mac_keyring *ring);

#endif
