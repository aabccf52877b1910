/* source/source.c - choosing a source for a spec, and what they share. */
#include "source/source.h"

#include <string.h>

#include "util/error.h"

struct source *source_file_open(const char *path);
struct source *source_nbd_open(const char *uri, const struct source_opts *o);

struct source *source_open_opts(const char *spec,
                                const struct source_opts *o)
{
  if (strncmp(spec, "nbd://", 6) == 0 || strncmp(spec, "nbds://", 7) == 0 ||
      strncmp(spec, "nbd+unix://", 11) == 0 ||
      strncmp(spec, "nbds+unix://", 12) == 0)
    return source_nbd_open(spec, o);
  if (strstr(spec, "://") != NULL) {
    ferry_error("source '%s': use a block device or image file (e.g. "
                "/dev/sda, disk.img) or an NBD URI (nbd://HOST/EXPORT, "
                "nbd+unix:///EXPORT?socket=PATH)", spec);
    return NULL;
  }
  if (o && o->bitmap) {
    ferry_error("source %s: --bitmap needs an NBD source exporting a dirty "
                "bitmap", spec);
    return NULL;
  }
  return source_file_open(spec);
}

struct source *source_open(const char *spec)
{
  return source_open_opts(spec, NULL);
}

void source_close(struct source *src)
{
  if (src)
    src->ops->close(src);
}
