/* image/image.h - the chunked image: manifest.json, a chunk table, chunks.
 *
 * The contract between agent and converters; docs/FORMAT.md is its
 * specification.  Layout under an image's store prefix:
 *
 *   manifest.json                 written last: present = image complete
 *   tables/<sha256>.tsv           the chunk table of one generation
 *   chunks/<sha256>[.gz|.zst]     a chunk, named by its plain bytes' digest
 *   generations/<N>.json          each generation's manifest, kept
 */
#ifndef FERRY_IMAGE_H
#define FERRY_IMAGE_H

#include <stddef.h>
#include <stdint.h>

#include "image/codec.h"
#include "hash/digest.h"

struct store;

#define IMAGE_FORMAT_NAME "ferry-chunked-image"
#define IMAGE_VERSION 1
#define IMAGE_MANIFEST_KEY "manifest.json"
#define IMAGE_MANIFEST_MAX (1u << 20)
#define IMAGE_CHUNK_MIN (1u << 20)
#define IMAGE_CHUNK_MAX (64u << 20)
#define IMAGE_CHUNK_DEFAULT (4u << 20)
/* a chunk key: "chunks/" + 64 hex + ".zst" + NUL */
#define IMAGE_CHUNK_KEY_MAX 80
/* prepared_for: up to 63 of A-Z a-z 0-9 . _ - and a NUL */
#define IMAGE_PREPARED_FOR_MAX 64

/* One non-zero chunk, as the table lists it. */
struct image_chunk {
  uint64_t index;
  uint8_t digest[DIGEST_LEN];
  enum chunk_encoding enc;
  uint64_t stored_size;
};

struct image_manifest {
  uint32_t version;
  uint64_t disk_size;
  uint32_t chunk_size;
  uint64_t chunk_count;       /* ceil(disk_size / chunk_size) */
  uint64_t generation;        /* 1 for the first sync */
  uint64_t data_chunks;       /* chunks in the table (non-zero) */
  uint64_t data_bytes;        /* their plain size */
  uint64_t stored_bytes;      /* their stored (maybe compressed) size */
  char table_key[96];
  uint8_t table_digest[DIGEST_LEN];
  uint64_t table_size;
  uint8_t image_digest[DIGEST_LEN];
  /* Optional (FORMAT.md): a generation that guest preparation wrote from
   * generation prepared_from for target prepared_for ("aws", ...); 0 and
   * "" in every generation a clone or sync wrote. */
  uint64_t prepared_from;
  char prepared_for[IMAGE_PREPARED_FOR_MAX];
};

/* Plain length of chunk index (the last one may be short). */
uint64_t image_chunk_len(const struct image_manifest *m, uint64_t index);

/* "chunks/<hex><suffix>" into key[IMAGE_CHUNK_KEY_MAX]. */
void image_chunk_key(const uint8_t digest[DIGEST_LEN],
                     enum chunk_encoding enc, char *key);

/* Digest of an all-zero chunk of len bytes (cached; thread-safe). */
int image_zero_digest(uint64_t len, uint8_t out[DIGEST_LEN]);

/* Parse and validate a manifest; where names it in messages. */
int image_manifest_parse(const char *json, size_t len, const char *where,
                         struct image_manifest *m);
/* Serialize (caller frees). */
char *image_manifest_format(const struct image_manifest *m);

/* Read manifest.json of the image at s.  A missing manifest sets errno to
 * ENOENT and says the image is incomplete or absent; one that cannot be
 * parsed, EBADMSG. */
int image_manifest_load(struct store *s, struct image_manifest *m);

/* Read generations/<N>.json of the image at s (N >= 1); errno ENOENT when
 * it is missing, EBADMSG when it cannot be parsed or is another
 * generation. */
int image_manifest_load_generation(struct store *s, uint64_t generation,
                                   struct image_manifest *m);

/* The highest generation number under generations/ (0 if none). */
int image_last_generation(struct store *s, uint64_t *generation);

/* Make the image at s complete: flush the store, write the generation's
 * manifest, then manifest.json. */
int image_manifest_commit(struct store *s, const struct image_manifest *m);

/* The image digest: SHA-256 over every chunk's digest in index order, zero
 * chunks as the digest of a zero chunk of their length. */
struct image_digest;
struct image_digest *image_digest_create(const struct image_manifest *m);
/* Feed the next non-zero chunk (indexes increasing); zero chunks before it
 * are filled in. */
int image_digest_add(struct image_digest *d, uint64_t index,
                     const uint8_t digest[DIGEST_LEN]);
/* Fill in trailing zero chunks and produce the digest. */
int image_digest_final(struct image_digest *d, uint8_t out[DIGEST_LEN]);
void image_digest_close(struct image_digest *d);

/* Table writer: entries in increasing index order; the table is spooled to
 * an unlinked temporary file, not memory, so its size does not bound the
 * disks ferry can handle. */
struct table_writer;
struct table_writer *table_writer_create(const struct image_manifest *m);
int table_writer_add(struct table_writer *w, const struct image_chunk *c);
/* Upload the table to s and fill m's table, data_* and image_digest. */
int table_writer_finish(struct table_writer *w, struct store *s,
                        struct image_manifest *m);
void table_writer_close(struct table_writer *w);

/* Table reader: streams the table from the store, validating each entry;
 * the table's digest is checked when the last entry has been read. */
struct table_reader;
struct table_reader *table_reader_open(struct store *s,
                                       const struct image_manifest *m);
/* 1 with *c, 0 at the end (table digest, counts and image digest verified),
 * -1 with an error naming the table line. */
int table_reader_next(struct table_reader *r, struct image_chunk *c);
void table_reader_close(struct table_reader *r);

/* Parse one table line (without its newline); for the reader and tests. */
int image_table_parse_line(const char *line, const struct image_manifest *m,
                           struct image_chunk *c);

#endif
