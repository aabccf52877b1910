/* image/reader.h - read a chunked image back in disk order.
 *
 * Worker threads fetch, decode and verify chunks ahead of the consumer
 * through a bounded window; zero chunks come back as runs without any
 * request.  Memory: (window + jobs) chunk buffers. */
#ifndef FERRY_IMAGE_READER_H
#define FERRY_IMAGE_READER_H

#include <stddef.h>
#include <stdint.h>

#include "image/image.h"

struct store;
struct image_reader;

/* An extent of the disk, in order: a data chunk or a run of zero chunks. */
struct image_extent {
  uint64_t index;        /* first chunk */
  uint64_t count;        /* chunks (1 for data) */
  uint64_t offset;       /* byte offset on the disk */
  uint64_t length;       /* bytes (the last chunk may be short) */
  const void *data;      /* NULL for zeros; valid until the next call */
  const uint8_t *digest; /* the data's verified SHA-256 (NULL for zeros);
                            valid until the next call */
};

struct image_reader *image_reader_open(struct store *s,
                                       const struct image_manifest *m,
                                       unsigned jobs);

/* 1 with the next extent, 0 at the end of the disk (when every chunk has
 * been verified and so has the table and the image digest), -1 with an
 * error naming the chunk. */
int image_reader_next(struct image_reader *r, struct image_extent *e);

/* Bytes fetched from the store so far (stored size). */
uint64_t image_reader_fetched(struct image_reader *r);

void image_reader_close(struct image_reader *r);

/* Which chunks hold data: a bitmap of m->chunk_count bits read from the
 * table (one streaming pass).  Caller frees. */
uint8_t *image_alloc_map(struct store *s, const struct image_manifest *m);

static inline int alloc_map_test(const uint8_t *map, uint64_t index)
{
  return map[index / 8] >> (index % 8) & 1;
}

#endif
