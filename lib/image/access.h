/* image/access.h - random access to one generation of a chunked image,
 * with writes captured at chunk granularity, and the writes committed as
 * the image's next generation.
 *
 * What guest preparation (prepare/, docs/PREPARATION.md) reads and writes
 * through an NBD export (nbd/export.h): the base generation is never
 * changed; a write copies the chunk it touches whole into a sparse overlay
 * file (unlinked, in overlay_dir) and marks it dirty; reads of a clean
 * chunk fetch, decode and SHA-256-verify it against the table (a small LRU
 * of decoded chunks), zero chunks are served without a request.
 * image_access_commit() then writes generation last + 1: the dirty chunks
 * (hashed, encoded as the options say, named by their digest as FORMAT.md
 * says), a table equal to the base's with those rows replaced (rows of
 * chunks now all zero dropped), the flush, generations/<N>.json and
 * manifest.json, in FORMAT.md's order.  Nothing else is read or sent.
 *
 * Memory: the table's index -> entry array (48 bytes per data chunk) and
 * the LRU (cache_chunks decoded chunks).  Thread-safe: every call may come
 * from several threads at once. */
#ifndef FERRY_IMAGE_ACCESS_H
#define FERRY_IMAGE_ACCESS_H

#include <stddef.h>
#include <stdint.h>

#include "image/image.h"

struct store;
struct image_access;

struct image_access_opts {
  const char *overlay_dir;     /* where the sparse overlay lives (/var/tmp) */
  unsigned cache_chunks;       /* decoded chunks kept (0: 8) */
};

/* Open generation m (loaded by the caller: manifest.json or
 * generations/<N>.json) of the image at s; NULL with an error. */
struct image_access *image_access_open(struct store *s,
                                       const struct image_manifest *m,
                                       const struct image_access_opts *o);

uint64_t image_access_size(struct image_access *a);

/* Read len bytes at off (off + len <= size); -1 with an error naming the
 * chunk, its offset and object key. */
int image_access_pread(struct image_access *a, void *buf, size_t len,
                       uint64_t off);
/* Write len bytes at off into the overlay. */
int image_access_pwrite(struct image_access *a, const void *buf, size_t len,
                        uint64_t off);
/* Write zeros (NBD WRITE_ZEROES and TRIM: the disk then reads zeros). */
int image_access_zero(struct image_access *a, size_t len, uint64_t off);
/* Make the overlay durable (fdatasync). */
int image_access_flush(struct image_access *a);

/* Chunks written so far. */
uint64_t image_access_dirty(struct image_access *a);

/* Whether a chunk range holds data: 1 data, 0 zeros (for NBD block
 * status); index < chunk_count. */
int image_access_chunk_allocated(struct image_access *a, uint64_t index);

struct image_commit_opts {
  enum chunk_encoding enc;     /* how new chunks are stored when it pays */
  int level;                   /* codec level (0: default) */
  const char *prepared_for;    /* recorded in the manifest: "aws", ... */
};

/* Write the dirty chunks as generation (highest under generations/) + 1,
 * recording prepared_from = the base generation and prepared_for; *out is
 * the new manifest.  With no dirty chunk nothing is written and *out is the
 * base (returns 0).  -1 with an error: the image's manifest.json is then
 * still the one it was.  After a commit the access reads the committed
 * generation as its base, with nothing dirty. */
int image_access_commit(struct image_access *a,
                        const struct image_commit_opts *o,
                        struct image_manifest *out);

void image_access_close(struct image_access *a);

#endif
