/* raw.c - the disk's bytes, nothing else (AWS ImportSnapshot, OpenStack).
 * Zero runs become holes in a local file. */
#include <stdlib.h>

#include "error.h"
#include "format.h"
#include "store.h"

extern const struct format_ops format_raw;

static uint64_t raw_output_size(const struct image_manifest *m)
{
  return m->disk_size;
}

static struct format_writer *raw_open(struct store_writer *out,
                                      const struct image_manifest *m,
                                      const uint8_t *map)
{
  struct format_writer *w = calloc(1, sizeof *w);

  if (w == NULL) {
    ferry_error("out of memory");
    return NULL;
  }
  w->ops = &format_raw;
  w->out = out;
  w->m = m;
  w->map = map;
  return w;
}

static int raw_data(struct format_writer *w, uint64_t offset, const void *buf,
                    size_t len)
{
  (void)offset;
  return store_writer_write(w->out, buf, len);
}

static int raw_zero(struct format_writer *w, uint64_t offset, uint64_t len)
{
  (void)offset;
  return store_writer_zero(w->out, len);
}

static int raw_finish(struct format_writer *w)
{
  (void)w;
  return 0;
}

static void raw_close(struct format_writer *w)
{
  free(w);
}

const struct format_ops format_raw = {
  .name = "raw",
  .description = "the disk's bytes (AWS ImportSnapshot, OpenStack, KVM)",
  .extension = ".raw",
  .output_size = raw_output_size,
  .open = raw_open,
  .data = raw_data,
  .zero = raw_zero,
  .finish = raw_finish,
  .close = raw_close,
};
