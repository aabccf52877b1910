#include "util/zero.h"

#include <string.h>

/* Compared against in slices: one read stream over the buffer, where
 * comparing the buffer with itself shifted (the earlier way) read it twice
 * and misaligned.  4 KiB stays in L1 next to the slice being read. */
static const unsigned char zero_page[4096];

int buf_is_zero(const void *buf, size_t len)
{
  const unsigned char *p = buf;
  size_t i;

  /* data chunks almost always have a non-zero byte near the start */
  for (i = 0; i < 16 && i < len; i++)
    if (p[i])
      return 0;
  for (; len >= sizeof zero_page; p += sizeof zero_page,
       len -= sizeof zero_page)
    if (memcmp(p, zero_page, sizeof zero_page) != 0)
      return 0;
  return len == 0 || memcmp(p, zero_page, len) == 0;
}
