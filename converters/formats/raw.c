/* formats/raw.c - the disk's bytes, nothing else (AWS ImportSnapshot/ImportImage,
 * OpenStack Glance, KVM).  Zero runs become holes in a local file.  The
 * output digest of a raw output is the image digest. */
#include <inttypes.h>
#include <stdlib.h>

#include "util/error.h"
#include "format.h"
#include "instream.h"
#include "output.h"

extern const struct format_ops format_raw;

/* Zero runs inside data chunks become holes too, 64 KiB at a time. */
#define SPARSE_GRANULE (64u << 10)

static uint64_t raw_virtual_size(const struct image_manifest *m)
{
  return m->disk_size;
}

static uint64_t raw_output_size(const struct image_manifest *m,
                                const uint8_t *map)
{
  (void)map;
  return m->disk_size;
}

static struct format_writer *raw_open(struct output *out,
                                      const struct image_manifest *m,
                                      const uint8_t *map,
                                      const struct format_opts *opts)
{
  struct format_writer *w = calloc(1, sizeof *w);

  if (w == NULL) {
    ferry_error("out of memory");
    return NULL;
  }
  *w = (struct format_writer){ .ops = &format_raw, .out = out, .m = m,
                               .map = map, .opts = *opts };
  return w;
}

static int raw_data(struct format_writer *w, uint64_t offset, const void *buf,
                    size_t len, const uint8_t digest[DIGEST_LEN])
{
  (void)offset;
  return output_write_sparse(w->out, buf, len, digest, SPARSE_GRANULE);
}

static int raw_zero(struct format_writer *w, uint64_t offset, uint64_t len)
{
  (void)offset;
  return output_zero(w->out, len);
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

static struct format_reader *raw_reader_open(struct instream *in,
                                             const struct image_manifest *m)
{
  struct format_reader *r;

  if (instream_size(in) != m->disk_size) {
    ferry_error("%s is %" PRIu64 " bytes, the disk is %" PRIu64 ": it is "
                "not a raw copy of this image (truncated or of another "
                "disk)", instream_name(in), instream_size(in), m->disk_size);
    return NULL;
  }
  r = calloc(1, sizeof *r);
  if (r == NULL) {
    ferry_error("out of memory");
    return NULL;
  }
  r->ops = &format_raw;
  r->in = in;
  r->m = m;
  r->virtual_size = m->disk_size;
  return r;
}

static int raw_read(struct format_reader *r, void *buf, size_t len)
{
  if (instream_pread(r->in, r->pos, buf, len) == -1)
    return -1;
  r->pos += len;
  return 1;
}

static int raw_reader_end(struct format_reader *r)
{
  (void)r;
  return 0;
}

static void raw_reader_close(struct format_reader *r)
{
  free(r);
}

const struct format_ops format_raw = {
  .name = "raw",
  .description = "the disk's bytes (AWS ImportSnapshot, OpenStack, KVM)",
  .extension = ".raw",
  .virtual_size = raw_virtual_size,
  .output_size = raw_output_size,
  .open = raw_open,
  .data = raw_data,
  .zero = raw_zero,
  .finish = raw_finish,
  .close = raw_close,
  .reader_open = raw_reader_open,
  .read = raw_read,
  .reader_end = raw_reader_end,
  .reader_close = raw_reader_close,
};
