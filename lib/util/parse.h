/* util/parse.h - numbers from command lines and config files, checked.
 *
 * Every parser takes the whole text (no leading sign or space, nothing
 * after the number), refuses overflow, and on failure records an error
 * naming what was being parsed, so main() only prints it:
 *
 *   case 'j':
 *     if (parse_uint("--jobs", optarg, 1, 64, &jobs) == -1)
 *       goto usage_error;          // prints "prog: %s\n", ferry_errmsg()
 */
#ifndef FERRY_PARSE_H
#define FERRY_PARSE_H

#include <stdint.h>

/* A decimal number in [lo, hi] for what (an option or setting name):
 * "--jobs must be 1 to 64 (not 'x')" otherwise. */
int parse_uint(const char *what, const char *text, unsigned lo, unsigned hi,
               unsigned *out);
int parse_u64(const char *what, const char *text, uint64_t lo, uint64_t hi,
              uint64_t *out);

/* A size in bytes: "100M", "1.5G", "800k", "4MiB", "512" (suffixes K, M,
 * G, T in either case are powers of 1024; "iB" or "B" may follow; up to 6
 * decimals, the result rounded down).  -1 with an error if malformed or
 * 2^64 or more. */
int parse_size(const char *text, uint64_t *out);

#endif
