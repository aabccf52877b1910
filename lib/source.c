/* source.c - choosing a source for a spec, and what they share. */
#include "source.h"

#include <string.h>

#include "error.h"

struct source *source_file_open(const char *path);

struct source *source_open(const char *spec)
{
  if (strstr(spec, "://") != NULL) {
    ferry_error("source '%s': only local files and block devices are "
                "supported as sources here (e.g. /dev/sda or disk.img)",
                spec);
    return NULL;
  }
  return source_file_open(spec);
}

void source_close(struct source *src)
{
  if (src)
    src->ops->close(src);
}

int buf_is_zero(const void *buf, size_t len)
{
  const unsigned char *p = buf;
  size_t head;

  /* check a few bytes cheaply, then compare the buffer with itself shifted
   * by 16: memcmp is vectorised and stops at the first difference */
  head = len < 16 ? len : 16;
  for (size_t i = 0; i < head; i++)
    if (p[i])
      return 0;
  return len <= 16 || memcmp(p, p + 16, len - 16) == 0;
}
