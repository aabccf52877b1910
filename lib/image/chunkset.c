#include "image/chunkset.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "util/error.h"
#include "store/store.h"

struct entry {
  uint8_t digest[DIGEST_LEN];
  uint64_t stored_size : 56;
  uint64_t enc : 7;
  uint64_t used : 1;
};

struct chunkset {
  pthread_mutex_t lock;
  struct entry *tab;
  size_t cap, count;         /* cap is a power of two */
};

struct chunkset *chunkset_create(void)
{
  struct chunkset *cs = calloc(1, sizeof *cs);

  if (cs == NULL) {
    ferry_error("out of memory");
    return NULL;
  }
  pthread_mutex_init(&cs->lock, NULL);
  return cs;
}

void chunkset_close(struct chunkset *cs)
{
  if (cs == NULL)
    return;
  pthread_mutex_destroy(&cs->lock);
  free(cs->tab);
  free(cs);
}

/* The digest is already uniformly distributed: its first bytes hash it. */
static size_t slot_of(const uint8_t *digest, size_t cap)
{
  uint64_t h;

  memcpy(&h, digest, sizeof h);
  return (size_t)h & (cap - 1);
}

static struct entry *lookup(struct entry *tab, size_t cap,
                            const uint8_t *digest)
{
  size_t i = slot_of(digest, cap);

  while (tab[i].used && memcmp(tab[i].digest, digest, DIGEST_LEN) != 0)
    i = (i + 1) & (cap - 1);
  return &tab[i];
}

static int grow(struct chunkset *cs)
{
  size_t cap = cs->cap ? cs->cap * 2 : 1024, i;
  struct entry *tab = calloc(cap, sizeof *tab);

  if (tab == NULL) {
    ferry_error("out of memory growing the chunk set to %zu", cap);
    return -1;
  }
  for (i = 0; i < cs->cap; i++)
    if (cs->tab[i].used)
      *lookup(tab, cap, cs->tab[i].digest) = cs->tab[i];
  free(cs->tab);
  cs->tab = tab;
  cs->cap = cap;
  return 0;
}

int chunkset_add(struct chunkset *cs, const uint8_t digest[DIGEST_LEN],
                 enum chunk_encoding enc, uint64_t stored_size)
{
  struct entry *e;
  int r = 0;

  pthread_mutex_lock(&cs->lock);
  if ((cs->count + 1) * 4 > cs->cap * 3 && grow(cs) == -1) {
    r = -1;
    goto out;
  }
  e = lookup(cs->tab, cs->cap, digest);
  if (!e->used) {
    memcpy(e->digest, digest, DIGEST_LEN);
    e->used = 1;
    cs->count++;
  }
  e->enc = enc;
  e->stored_size = stored_size;
out:
  pthread_mutex_unlock(&cs->lock);
  return r;
}

int chunkset_find(struct chunkset *cs, const uint8_t digest[DIGEST_LEN],
                  enum chunk_encoding *enc, uint64_t *stored_size)
{
  struct entry *e;
  int r = 0;

  pthread_mutex_lock(&cs->lock);
  if (cs->cap) {
    e = lookup(cs->tab, cs->cap, digest);
    if (e->used) {
      *enc = (enum chunk_encoding)e->enc;
      *stored_size = e->stored_size;
      r = 1;
    }
  }
  pthread_mutex_unlock(&cs->lock);
  return r;
}

uint64_t chunkset_count(struct chunkset *cs)
{
  uint64_t n;

  pthread_mutex_lock(&cs->lock);
  n = cs->count;
  pthread_mutex_unlock(&cs->lock);
  return n;
}

static int load_one(void *opaque, const char *key, uint64_t size)
{
  static const enum chunk_encoding encs[] = { ENC_RAW, ENC_GZIP, ENC_ZSTD };
  struct chunkset *cs = opaque;
  uint8_t digest[DIGEST_LEN];
  char hex[DIGEST_HEX_LEN + 1];
  const char *rest = key + strlen("chunks/");
  size_t i;

  if (strlen(rest) < DIGEST_HEX_LEN || size == 0)
    return 0;
  memcpy(hex, rest, DIGEST_HEX_LEN);
  hex[DIGEST_HEX_LEN] = '\0';
  if (digest_from_hex(hex, digest) == -1)
    return 0;                              /* not a chunk: ignore */
  for (i = 0; i < sizeof encs / sizeof encs[0]; i++)
    if (strcmp(rest + DIGEST_HEX_LEN, codec_suffix(encs[i])) == 0)
      return chunkset_add(cs, digest, encs[i], size);
  return 0;
}

int chunkset_load(struct chunkset *cs, struct store *s)
{
  return store_list(s, "chunks/", load_one, cs);
}
