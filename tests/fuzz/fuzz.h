/* fuzz.h - what every libFuzzer harness in tests/fuzz/ shares.
 *
 * Each harness is one LLVMFuzzerTestOneInput over a parser that takes
 * input from outside ferry (docs/TESTING.md, "Fuzzing").  It calls the
 * project's own functions, never a copy of them, and leaks nothing: the
 * run fails on a leak as on a crash. */
#ifndef FERRY_FUZZ_H
#define FERRY_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The input as a NUL-terminated string, as the callers have it (an HTTP
 * body, a file read whole): NULL when out of memory (the run skips it). */
static inline char *fuzz_string(const uint8_t *data, size_t size)
{
  char *s = malloc(size + 1);

  if (s) {
    memcpy(s, data, size);
    s[size] = '\0';
  }
  return s;
}

#endif
