/* source/source.h - disks to read: one ops table per kind of source.
 *
 * A source is only ever read: ferry never writes to the disk it migrates.
 * Sources report which extents are holes (read as zeros without being
 * read), so unallocated space costs nothing. */
#ifndef FERRY_SOURCE_H
#define FERRY_SOURCE_H

#include <stddef.h>
#include <stdint.h>


struct source;

struct source_ops {
  const char *name;                      /* "file", "block", "nbd" */

  /* Read exactly len bytes at off (off + len <= size); a short read is an
   * error.  May be called from several threads at once. */
  int (*pread)(struct source *src, void *buf, size_t len, uint64_t off);

  /* The extent that starts at off (< size): *zero = 1 when it is known to
   * read as zeros (a hole), 0 when it may hold data; *len > 0 is its
   * length, up to the end of the disk.  A source that cannot tell reports
   * data to the end. */
  int (*extent)(struct source *src, uint64_t off, int *zero, uint64_t *len);

  /* Changed-block tracking: the extent that starts at off (< size) with
   * *changed = 0 when it is known not to have changed since the tracking
   * point (a dirty bitmap's start), 1 when it may have; *len > 0.  NULL
   * when the source cannot tell. */
  int (*changed)(struct source *src, uint64_t off, int *changed,
                 uint64_t *len);

  void (*close)(struct source *src);     /* NULL ok */
};

/* How to open a source (NBD only, for now). */
struct source_opts {
  unsigned connections;                  /* NBD connections (default 4) */
  const char *bitmap;                    /* NBD dirty bitmap name */
};

struct source {
  const struct source_ops *ops;
  char *name;                            /* for messages */
  uint64_t size;
};

/* Open spec read-only: a regular file, a block device, or an NBD URI
 * (nbd://, nbds://, nbd+unix://).  o may be NULL. */
struct source *source_open(const char *spec);
struct source *source_open_opts(const char *spec,
                                const struct source_opts *o);
void source_close(struct source *src);

static inline int source_pread(struct source *src, void *buf, size_t len,
                               uint64_t off)
{
  return src->ops->pread(src, buf, len, off);
}

static inline int source_extent(struct source *src, uint64_t off, int *zero,
                                uint64_t *len)
{
  return src->ops->extent(src, off, zero, len);
}

#endif
