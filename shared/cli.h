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
#include "log.h"
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
 * Remember one `--key FILE` (repeatable, docs/architecture.md §2.2; `path` is borrowed) in
 * `files`, after those seen before: keys from --config come first (cli_expand), then those on the
 * command line. Exit 2 naming --key past MAC_KEYS_MAX.
 */
void cli_key_add(const char *prog, struct mac_key_files *files, const char *path);

/*
 * Load every file of `files` into `ring`, in order (mac_keyring_load): the first key tags what
 * the program sends, any verifies; a key given twice is kept once. Exit 2 naming --key if there
 * is none ("required"), or a file is unreadable or not a key. The caller wipes `ring` at exit.
 */
void cli_keys_load(const char *prog, const struct mac_key_files *files, struct mac_keyring *ring);

/*
 * SIGHUP: read the --key files again into `ring`, in place (links see the new keys with their
 * next message). Logs one line on `log`: the keys' names (mac_key_id), first first, or the file
 * that failed, in which case the keys in use stay. Returns what mac_keyring_load() returned.
 */
enum fc_err cli_keys_reload(const struct mac_key_files *files, struct mac_keyring *ring,
                            const struct log *log);

#endif
