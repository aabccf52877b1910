/* format.c - format name -> writer. */
#include "format.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "instream.h"
#include "output.h"
#include "util/error.h"

extern const struct format_ops format_raw;
extern const struct format_ops format_vhd;
extern const struct format_ops format_vhd_dynamic;
extern const struct format_ops format_vmdk;
extern const struct format_ops format_qcow2;
extern const struct format_ops format_gce;

/* --format NAME -> writer and reader (curl's scheme table). */
static const struct format_ops *const formats[] = {
  &format_raw,
  &format_vhd,
  &format_vhd_dynamic,
  &format_vmdk,
  &format_qcow2,
  &format_gce,
};

#define N_FORMATS (sizeof formats / sizeof formats[0])

const struct format_ops *format_lookup(const char *name)
{
  char names[256];
  size_t i, n = 0;

  for (i = 0; i < N_FORMATS; i++)
    if (strcmp(formats[i]->name, name) == 0)
      return formats[i];
  for (i = 0; i < N_FORMATS && n < sizeof names; i++)
    n += (size_t)snprintf(names + n, sizeof names - n, "%s%s",
                          i ? ", " : "", formats[i]->name);
  ferry_error("unknown format '%s': use one of %s", name, names);
  return NULL;
}

void format_list(void)
{
  size_t i;

  for (i = 0; i < N_FORMATS; i++)
    printf("%-12s %s\n", formats[i]->name, formats[i]->description);
}

struct format_writer *format_writer_new(const struct format_ops *ops,
                                        struct output *out,
                                        const struct image_manifest *m,
                                        const uint8_t *map,
                                        const struct format_opts *opts)
{
  struct format_writer *w = calloc(1, sizeof *w);

  if (w == NULL) {
    ferry_error("out of memory");
    return NULL;
  }
  *w = (struct format_writer){ .ops = ops, .out = out, .m = m, .map = map,
                               .opts = *opts };
  return w;
}

int format_zero_in_place(struct format_writer *w, uint64_t offset,
                         uint64_t len)
{
  (void)offset;
  return output_zero(w->out, len);
}

struct format_reader *format_reader_new(const struct format_ops *ops,
                                        struct instream *in,
                                        const struct image_manifest *m,
                                        uint64_t virtual_size)
{
  struct format_reader *r = calloc(1, sizeof *r);

  if (r == NULL) {
    ferry_error("out of memory");
    return NULL;
  }
  r->ops = ops;
  r->in = in;
  r->m = m;
  r->virtual_size = virtual_size;
  return r;
}

int format_read_in_place(struct format_reader *r, void *buf, size_t len)
{
  if (instream_pread(r->in, r->pos, buf, len) == -1)
    return -1;
  r->pos += len;
  return 1;
}

int format_reader_end_none(struct format_reader *r)
{
  (void)r;
  return 0;
}

void format_free_reader(struct format_reader *r)
{
  free(r);
}

void format_free_writer(struct format_writer *w)
{
  free(w);
}
