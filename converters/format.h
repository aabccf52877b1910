/* format.h - output image formats: one ops table per format file.
 *
 * Writing: ferry-convert reads the chunked image in disk order and hands
 * each extent to the format's writer, which appends its encoding to an
 * output (output.h: a store writer plus the running output digest).
 * Nothing is visible at the destination until the whole output is written
 * and committed.
 *
 * Reading back (--verify): the format's reader parses an output, checks
 * its structure and yields the disk it holds, front to back, so that it
 * can be compared with the chunked image it came from.
 *
 * docs/FORMATS.md describes each format and the specification it follows. */
#ifndef FERRY_FORMAT_H
#define FERRY_FORMAT_H

#include <stddef.h>
#include <stdint.h>

#include "image/image.h"
#include "image/reader.h"

struct output;
struct instream;
struct pool;

/* What the caller chooses for every format. */
struct format_opts {
  struct pool *pool;          /* compression workers; never NULL */
  int level;                  /* deflate level 1-9 (vmdk, gce) */
  const char *name;           /* the output's file name (vmdk descriptor) */
};

/* The base of every format's writer state. */
struct format_writer {
  const struct format_ops *ops;
  struct output *out;
  const struct image_manifest *m;
  const uint8_t *map;              /* chunks holding data (alloc_map_test) */
  struct format_opts opts;
};

/* The base of every format's reader state. */
struct format_reader {
  const struct format_ops *ops;
  struct instream *in;
  const struct image_manifest *m;
  uint64_t virtual_size;           /* the disk size the output declares */
  uint64_t pos;                    /* next disk offset read() returns */
};

struct format_ops {
  const char *name;                /* --format NAME */
  const char *description;         /* one line for --list-formats */
  const char *extension;           /* conventional file suffix */
  int page_blob;                   /* azure:// writes it as a page blob */

  /* The disk size the output declares for m: the image's size rounded as
   * the format or its cloud requires (the added bytes read as zeros). */
  uint64_t (*virtual_size)(const struct image_manifest *m);

  /* Size of the whole output for m and its allocation map, or 0 when it
   * depends on the content (compressed formats).  Page blobs need it. */
  uint64_t (*output_size)(const struct image_manifest *m,
                          const uint8_t *map);

  /* Start writing an image of m to out; NULL with an error. */
  struct format_writer *(*open)(struct output *out,
                                const struct image_manifest *m,
                                const uint8_t *map,
                                const struct format_opts *opts);

  /* The next data chunk, in disk order: len plain bytes at offset whose
   * SHA-256 is digest (verified by the reader). */
  int (*data)(struct format_writer *w, uint64_t offset, const void *buf,
              size_t len, const uint8_t digest[DIGEST_LEN]);

  /* The next len bytes of the disk, starting at offset, are zeros. */
  int (*zero)(struct format_writer *w, uint64_t offset, uint64_t len);

  /* Write what follows the data (footers, tables); the caller commits. */
  int (*finish)(struct format_writer *w);

  void (*close)(struct format_writer *w);      /* NULL ok */

  /* Open an output for reading back: parse and check its headers against
   * m; NULL with an error saying what is damaged and where. */
  struct format_reader *(*reader_open)(struct instream *in,
                                       const struct image_manifest *m);

  /* The next len bytes of the disk (len <= the image's chunk size):
   * 1 with the bytes in buf, 0 when the output holds no data there (they
   * read as zeros; buf is left as it was), -1 with an error. */
  int (*read)(struct format_reader *r, void *buf, size_t len);

  /* Called once the whole virtual size has been read: check what follows
   * the data (footers, end markers, checksums). */
  int (*reader_end)(struct format_reader *r);

  void (*reader_close)(struct format_reader *r);   /* NULL ok */
};

/* For formats whose output holds the disk's bytes in place (raw, fixed
 * VHD): a writer and a reader of the bare base state (freed by
 * format_free_writer and format_free_reader), NULL with an error; zeros
 * written as a run of zeros; read() at the same offset in the output; no
 * end checks. */
struct format_writer *format_writer_new(const struct format_ops *ops,
                                        struct output *out,
                                        const struct image_manifest *m,
                                        const uint8_t *map,
                                        const struct format_opts *opts);
int format_zero_in_place(struct format_writer *w, uint64_t offset,
                         uint64_t len);
struct format_reader *format_reader_new(const struct format_ops *ops,
                                        struct instream *in,
                                        const struct image_manifest *m,
                                        uint64_t virtual_size);
int format_read_in_place(struct format_reader *r, void *buf, size_t len);
int format_reader_end_none(struct format_reader *r);
void format_free_reader(struct format_reader *r);
void format_free_writer(struct format_writer *w);

/* The format table (format.c); NULL with an error naming the choices. */
const struct format_ops *format_lookup(const char *name);
void format_list(void);

#endif
