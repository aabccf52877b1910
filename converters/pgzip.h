/* pgzip.h - a gzip stream (RFC 1952) compressed by several threads.
 *
 * The input is cut into 1 MiB blocks deflated in parallel by the pool,
 * each primed with the 32 KiB before it as its dictionary (so the ratio
 * stays that of one stream) and ended with a sync flush so that the
 * pieces join into a single deflate stream (pigz's method); the CRC-32s
 * of the blocks are combined in order. */
#ifndef FERRY_PGZIP_H
#define FERRY_PGZIP_H

#include <stddef.h>
#include <stdint.h>

struct output;
struct pool;
struct pgzip;

/* Write the gzip header to out; NULL with an error. */
struct pgzip *pgzip_create(struct output *out, struct pool *pool,
                           int level);

/* Append len input bytes (NULL: zeros). */
int pgzip_write(struct pgzip *z, const void *buf, uint64_t len);

/* Input bytes so far. */
uint64_t pgzip_total_in(const struct pgzip *z);

/* Compress what is left, end the deflate stream, write the trailer. */
int pgzip_finish(struct pgzip *z);

void pgzip_close(struct pgzip *z);             /* NULL ok */

#endif
