#include "util/parse.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>

#include "util/error.h"

/* Digits only: strtoull alone would take " 7", "+7" and "-7" (as 2^64-7). */
static int digits_u64(const char *text, uint64_t *out)
{
  unsigned long long v;
  char *end;

  if (text[0] < '0' || text[0] > '9')
    return -1;
  errno = 0;
  v = strtoull(text, &end, 10);
  if (errno != 0 || *end != '\0')
    return -1;
  *out = v;
  return 0;
}

int parse_u64(const char *what, const char *text, uint64_t lo, uint64_t hi,
              uint64_t *out)
{
  uint64_t v;

  if (digits_u64(text, &v) == -1 || v < lo || v > hi) {
    if (hi == UINT64_MAX)
      ferry_error("%s must be a whole number of at least %" PRIu64
                  " (not '%s')", what, lo, text);
    else
      ferry_error("%s must be %" PRIu64 " to %" PRIu64 " (not '%s')", what,
                  lo, hi, text);
    return -1;
  }
  *out = v;
  return 0;
}

int parse_uint(const char *what, const char *text, unsigned lo, unsigned hi,
               unsigned *out)
{
  uint64_t v;

  if (parse_u64(what, text, lo, hi, &v) == -1)
    return -1;
  *out = (unsigned)v;
  return 0;
}

int parse_size(const char *text, uint64_t *out)
{
  const char *p = text;
  uint64_t whole = 0, frac = 0, scale = 1, v;
  unsigned shift = 0, decimals = 0;

  if (*p < '0' || *p > '9')
    goto bad;
  for (; *p >= '0' && *p <= '9'; p++)
    if (__builtin_mul_overflow(whole, 10, &whole) ||
        __builtin_add_overflow(whole, (uint64_t)(*p - '0'), &whole))
      goto big;
  if (*p == '.') {
    for (p++; *p >= '0' && *p <= '9'; p++) {
      if (++decimals > 6)
        goto bad;
      frac = frac * 10 + (uint64_t)(*p - '0');
      scale *= 10;
    }
    if (decimals == 0)
      goto bad;
  }
  switch (*p) {
  case 'k': case 'K': shift = 10; break;
  case 'm': case 'M': shift = 20; break;
  case 'g': case 'G': shift = 30; break;
  case 't': case 'T': shift = 40; break;
  }
  if (shift) {
    p++;
    if (*p == 'i')
      p++;
  }
  if (*p == 'B' || *p == 'b')
    p++;
  if (*p != '\0')
    goto bad;
  /* frac < 10^6 < 2^20 and shift <= 40: frac << shift fits in 64 bits */
  if (whole > (UINT64_MAX >> shift) ||
      __builtin_add_overflow(whole << shift, (frac << shift) / scale, &v))
    goto big;
  *out = v;
  return 0;
bad:
  ferry_error("'%s' is not a size: use a number with an optional k, M, G "
              "or T suffix (powers of 1024)", text);
  return -1;
big:
  ferry_error("size '%s' is too large: it must be below 16 EiB", text);
  return -1;
}
