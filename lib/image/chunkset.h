/* image/chunkset.h - which chunks a store already holds, by digest.
 *
 * An open-addressing hash set of 40-byte records, safe for many threads:
 * a resumed clone lists chunks/ once and then never sends those again. */
#ifndef FERRY_CHUNKSET_H
#define FERRY_CHUNKSET_H

#include <stdint.h>

#include "image/codec.h"
#include "hash/digest.h"

struct store;
struct chunkset;

struct chunkset *chunkset_create(void);
void chunkset_close(struct chunkset *cs);

/* Remember digest stored as enc with stored_size bytes. */
int chunkset_add(struct chunkset *cs, const uint8_t digest[DIGEST_LEN],
                 enum chunk_encoding enc, uint64_t stored_size);
/* 1 with *enc and *stored_size if known, 0 if not. */
int chunkset_find(struct chunkset *cs, const uint8_t digest[DIGEST_LEN],
                  enum chunk_encoding *enc, uint64_t *stored_size);
uint64_t chunkset_count(struct chunkset *cs);

/* Add every chunks/<digest>[suffix] object in s. */
int chunkset_load(struct chunkset *cs, struct store *s);

#endif
