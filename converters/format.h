/* format.h - output image formats: one ops table per format file.
 *
 * ferry-convert reads the chunked image in disk order and hands each
 * extent to the format's writer, which appends its encoding to a store
 * writer (a local file or an object).  Nothing is visible at the
 * destination until the whole output is written and committed. */
#ifndef FERRY_FORMAT_H
#define FERRY_FORMAT_H

#include <stddef.h>
#include <stdint.h>

#include "image.h"

struct store_writer;

/* The base of every format's writer state. */
struct format_writer {
  const struct format_ops *ops;
  struct store_writer *out;
  const struct image_manifest *m;
  const uint8_t *map;              /* chunks holding data (alloc_map_test) */
};

struct format_ops {
  const char *name;                /* --format NAME */
  const char *description;         /* one line for --list-formats */
  const char *extension;           /* conventional file suffix */

  /* Size of the output for m, or 0 when it depends on the content.  Used
   * for page blobs and preallocation. */
  uint64_t (*output_size)(const struct image_manifest *m);

  /* Start writing an image of m to out; NULL with an error. */
  struct format_writer *(*open)(struct store_writer *out,
                                const struct image_manifest *m,
                                const uint8_t *map);

  /* The next data chunk, in disk order: len plain bytes at offset. */
  int (*data)(struct format_writer *w, uint64_t offset, const void *buf,
              size_t len);

  /* The next len bytes of the disk, starting at offset, are zeros. */
  int (*zero)(struct format_writer *w, uint64_t offset, uint64_t len);

  /* Write what follows the data (footers, tables); the caller commits. */
  int (*finish)(struct format_writer *w);

  void (*close)(struct format_writer *w);      /* NULL ok */
};

/* The format table (format.c); NULL with an error naming the choices. */
const struct format_ops *format_lookup(const char *name);
void format_list(void);

#endif
