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
  return format_writer_new(&format_raw, out, m, map, opts);
}

static int raw_data(struct format_writer *w, uint64_t offset, const void *buf,
                    size_t len, const uint8_t digest[DIGEST_LEN])
{
  (void)offset;
  return output_write_sparse(w->out, buf, len, digest, SPARSE_GRANULE);
}

static int raw_finish(struct format_writer *w)
{
  (void)w;
  return 0;
}

static struct format_reader *raw_reader_open(struct instream *in,
                                             const struct image_manifest *m)
{

  if (instream_size(in) != m->disk_size) {
    ferry_error("%s is %" PRIu64 " bytes, the disk is %" PRIu64 ": it is "
                "not a raw copy of this image (truncated or of another "
                "disk)", instream_name(in), instream_size(in), m->disk_size);
    return NULL;
  }
  return format_reader_new(&format_raw, in, m, m->disk_size);
}

const struct format_ops format_raw = {
  .name = "raw",
  .description = "the disk's bytes (AWS ImportSnapshot, OpenStack, KVM)",
  .extension = ".raw",
  .virtual_size = raw_virtual_size,
  .output_size = raw_output_size,
  .open = raw_open,
  .data = raw_data,
  .zero = format_zero_in_place,
  .finish = raw_finish,
  .close = format_free_writer,
  .reader_open = raw_reader_open,
  .read = format_read_in_place,
  .reader_end = format_reader_end_none,
  .reader_close = format_free_reader,
};
