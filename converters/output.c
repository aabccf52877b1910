/* output.c - output bytes and the output digest (see output.h). */
#include "output.h"

#include <stdlib.h>
#include <string.h>

#include "bytes.h"
#include "error.h"
#include "image.h"
#include "store.h"

struct output {
  struct store_writer *w;
  uint64_t pos;
  uint64_t block;
  struct digest_ctx *leaf;       /* the block being filled */
  struct digest_ctx *root;       /* over the finished blocks' digests */
  uint8_t zero_leaf[DIGEST_LEN];
  int failed;                    /* sticky: nothing is appended after */
};

static const uint8_t zeros[64 * 1024];

struct output *output_create(struct store_writer *w, uint32_t block)
{
  struct output *o = calloc(1, sizeof *o);

  if (o == NULL)
    goto oom;
  o->w = w;
  o->block = block;
  o->leaf = digest_create();
  o->root = digest_create();
  if (o->leaf == NULL || o->root == NULL)
    goto oom;
  if (image_zero_digest(block, o->zero_leaf) == -1) {
    output_close(o);
    return NULL;
  }
  return o;
oom:
  ferry_error("out of memory");
  output_close(o);
  return NULL;
}

void output_close(struct output *o)
{
  if (o == NULL)
    return;
  digest_close(o->leaf);
  digest_close(o->root);
  free(o);
}

uint64_t output_pos(const struct output *o)
{
  return o->pos;
}

/* Hash len bytes of buf (NULL: zeros) into the current block, closing
 * blocks as they fill. */
static void hash_bytes(struct output *o, const uint8_t *buf, uint64_t len)
{
  while (len > 0) {
    uint64_t room = o->block - o->pos % o->block;
    uint64_t n = len < room ? len : room;
    uint8_t d[DIGEST_LEN];

    if (buf) {
      digest_update(o->leaf, buf, (size_t)n);
      buf += n;
    } else {
      uint64_t left = n;

      while (left > 0) {
        size_t z = left < sizeof zeros ? (size_t)left : sizeof zeros;

        digest_update(o->leaf, zeros, z);
        left -= z;
      }
    }
    o->pos += n;
    len -= n;
    if (o->pos % o->block == 0) {
      digest_final(o->leaf, d);
      digest_update(o->root, d, DIGEST_LEN);
    }
  }
}

static int check(struct output *o)
{
  if (o->failed) {
    ferry_error("output already failed");
    return -1;
  }
  return 0;
}

int output_write(struct output *o, const void *buf, size_t len)
{
  if (check(o) == -1)
    return -1;
  if (o->w && store_writer_write(o->w, buf, len) == -1) {
    o->failed = 1;
    return -1;
  }
  hash_bytes(o, buf, len);
  return 0;
}

int output_write_digested(struct output *o, const void *buf, size_t len,
                          const uint8_t digest[DIGEST_LEN])
{
  if (o->pos % o->block != 0 || len != o->block)
    return output_write(o, buf, len);
  if (check(o) == -1)
    return -1;
  if (o->w && store_writer_write(o->w, buf, len) == -1) {
    o->failed = 1;
    return -1;
  }
  digest_update(o->root, digest, DIGEST_LEN);
  o->pos += len;
  return 0;
}

int output_write_sparse(struct output *o, const void *buf, size_t len,
                        const uint8_t digest[DIGEST_LEN], size_t granule)
{
  const uint8_t *p = buf;
  size_t off = 0;

  if (check(o) == -1)
    return -1;
  while (o->w && off < len) {
    size_t end = off, n;
    int zero = is_zero(p + off, len - off < granule ? len - off : granule);

    /* extend the run while the granules stay zero (or not) */
    while (end < len) {
      n = len - end < granule ? len - end : granule;
      if (is_zero(p + end, n) != zero)
        break;
      end += n;
    }
    if ((zero ? store_writer_zero(o->w, end - off)
              : store_writer_write(o->w, p + off, end - off)) == -1) {
      o->failed = 1;
      return -1;
    }
    off = end;
  }
  if (o->pos % o->block == 0 && len == o->block) {
    digest_update(o->root, digest, DIGEST_LEN);
    o->pos += len;
  } else
    hash_bytes(o, buf, len);
  return 0;
}

int output_zero(struct output *o, uint64_t len)
{
  uint64_t head, blocks;

  if (check(o) == -1)
    return -1;
  if (len == 0)
    return 0;
  if (o->w && store_writer_zero(o->w, len) == -1) {
    o->failed = 1;
    return -1;
  }
  /* finish the current block, then whole blocks by their known digest */
  head = (o->block - o->pos % o->block) % o->block;
  if (head > len)
    head = len;
  hash_bytes(o, NULL, head);
  len -= head;
  for (blocks = len / o->block; blocks > 0; blocks--) {
    digest_update(o->root, o->zero_leaf, DIGEST_LEN);
    o->pos += o->block;
  }
  hash_bytes(o, NULL, len % o->block);
  return 0;
}

int output_pad(struct output *o, uint64_t align)
{
  return output_zero(o, (align - o->pos % align) % align);
}

int output_digest(struct output *o, uint8_t out[DIGEST_LEN])
{
  uint8_t d[DIGEST_LEN];

  if (check(o) == -1)
    return -1;
  if (o->pos % o->block != 0) {
    digest_final(o->leaf, d);
    digest_update(o->root, d, DIGEST_LEN);
  }
  digest_final(o->root, out);
  o->failed = 1;                 /* nothing more may be appended */
  return 0;
}
