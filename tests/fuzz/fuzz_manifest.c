/* fuzz_manifest.c - the chunked image's manifest and chunk table, as a
 * reader (ferry-convert, the agent's sync) gets them from a store that
 * someone else may have written (docs/FORMAT.md).
 *
 * Input: manifest.json, then optionally a NUL byte and the chunk table.
 * The manifest is read through image_manifest_load() from a store held in
 * memory; when it parses, the table is streamed through table_reader with
 * the manifest's table size and digest made to match the table given (a
 * writer of the store can always make them match), so the table parser
 * sees every line instead of stopping at the digest check. */
#include <errno.h>

#include "fuzz.h"
#include "hash/digest.h"
#include "image/image.h"
#include "store/store.h"
#include "util/error.h"

struct mem_store {
  struct store base;
  const uint8_t *manifest, *table;
  size_t manifest_len, table_len;
};

static int mem_object(struct store *s, const char *key, const uint8_t **p,
                      size_t *len)
{
  struct mem_store *m = (struct mem_store *)s;

  if (strcmp(key, IMAGE_MANIFEST_KEY) == 0) {
    *p = m->manifest;
    *len = m->manifest_len;
    return 1;
  }
  if (strncmp(key, "tables/", 7) == 0) {
    *p = m->table;
    *len = m->table_len;
    return 1;
  }
  return 0;
}

static int mem_get(struct store *s, const char *key, uint64_t off, void *buf,
                   size_t len, size_t *got)
{
  const uint8_t *p;
  size_t n;

  if (!mem_object(s, key, &p, &n)) {
    ferry_error("%s not found", key);
    errno = ENOENT;
    return -1;
  }
  if (off > n)
    off = n;
  *got = n - off < len ? n - (size_t)off : len;
  if (*got)
    memcpy(buf, p + off, *got);
  return 0;
}

static int mem_head(struct store *s, const char *key, uint64_t *size)
{
  const uint8_t *p;
  size_t n;

  if (!mem_object(s, key, &p, &n))
    return 0;
  *size = n;
  return 1;
}

static const struct store_ops mem_ops = {
  .scheme = "mem",
  .usage = "mem://",
  .get = mem_get,
  .head = mem_head,
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  const uint8_t *nul = memchr(data, '\0', size);
  struct mem_store ms = {
    .base = { .ops = &mem_ops, .url = (char *)"mem://fuzz" },
    .manifest = data,
    .manifest_len = nul ? (size_t)(nul - data) : size,
  };
  struct image_manifest m;
  struct table_reader *r;
  struct image_chunk c;
  int n;

  if (nul) {
    ms.table = nul + 1;
    ms.table_len = size - ms.manifest_len - 1;
  }
  if (image_manifest_load(&ms.base, &m) == -1)
    return 0;
  m.table_size = ms.table_len;
  digest_buf(ms.table ? ms.table : (const uint8_t *)"", ms.table_len,
             m.table_digest);
  r = table_reader_open(&ms.base, &m);
  if (r == NULL)
    return 0;
  /* bounded: each entry consumes at least one byte of the table */
  while ((n = table_reader_next(r, &c)) == 1)
    if (c.index >= m.chunk_count || c.stored_size == 0)
      abort();            /* the parser let through what it promises not */
  table_reader_close(r);
  return 0;
}
