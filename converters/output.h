/* output.h - the bytes a format writes, appended to a store writer, with
 * the output digest computed on the way (a sticky-error writer with a
 * running checksum, like redis rio).
 *
 * The output digest is SHA-256 over the SHA-256 of each consecutive
 * block of the output, the last block possibly short; the block size is
 * the image's chunk size.  A run of zeros costs one precomputed digest per
 * block instead of hashing it, and a data chunk written at a block
 * boundary reuses the chunk digest the image reader already verified, so
 * for raw output the output digest is the image digest.  docs/FORMATS.md
 * shows how to recompute it with standard tools. */
#ifndef FERRY_OUTPUT_H
#define FERRY_OUTPUT_H

#include <stddef.h>
#include <stdint.h>

#include "hash/digest.h"

struct store_writer;
struct output;

/* w may be NULL (digest only, for tests); block is a power of two. */
struct output *output_create(struct store_writer *w, uint32_t block);

/* Append len bytes. */
int output_write(struct output *o, const void *buf, size_t len);

/* Append len bytes whose SHA-256 is digest: when they are exactly one
 * block at a block boundary the digest is used instead of hashing. */
int output_write_digested(struct output *o, const void *buf, size_t len,
                          const uint8_t digest[DIGEST_LEN]);

/* Like output_write_digested, but runs of all-zero granules (granule
 * bytes each, from buf's start) go to the store as zeros: holes in a
 * file, pages never sent to a page blob. */
int output_write_sparse(struct output *o, const void *buf, size_t len,
                        const uint8_t digest[DIGEST_LEN], size_t granule);

/* Append len zero bytes (holes in a file, skipped in a page blob). */
int output_zero(struct output *o, uint64_t len);

/* Append zeros up to the next multiple of align (a power of two). */
int output_pad(struct output *o, uint64_t align);

/* Bytes appended so far. */
uint64_t output_pos(const struct output *o);

/* The output digest of everything appended; call once, at the end. */
int output_digest(struct output *o, uint8_t out[DIGEST_LEN]);

void output_close(struct output *o);           /* NULL ok */

#endif
