/* fuzz_check.h - the libFuzzer targets' CHECK: a failed property is a crash (the fuzzer keeps the
 * input), with the file, line and condition on stderr. */
#ifndef FC_FUZZ_CHECK_H
#define FC_FUZZ_CHECK_H

#include <stdio.h>

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond);              \
            __builtin_trap();                                                                      \
        }                                                                                          \
    } while (0)

#endif
