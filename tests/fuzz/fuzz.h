/* SPDX-License-Identifier: MIT */
/*
 * fuzz.h: what the libFuzzer targets of tests/fuzz share. Each target
 * defines LLVMFuzzerTestOneInput; a property that does not hold aborts, so
 * that libFuzzer keeps the input as a crash.
 */
#ifndef SN_FUZZ_H
#define SN_FUZZ_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "socknet.h" /* each target includes the internal headers it uses */

#define FUZZ_ASSERT(cond)                                                                          \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "%s:%d: %s does not hold\n", __FILE__, __LINE__, #cond);               \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

/* A heap copy of exactly n bytes (at least one byte is allocated), so that
 * AddressSanitizer sees a read one byte past the input. */
static inline uint8_t *fuzz_copy(const uint8_t *data, size_t n)
{
    uint8_t *p = malloc(n > 0 ? n : 1);
    FUZZ_ASSERT(p != NULL);
    if (n > 0)
        memcpy(p, data, n);
    return p;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#endif
