/* output.c - output bytes and the output digest (see output.h). */
#include "output.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "bytes.h"
#include "util/error.h"
#include "image/image.h"
#include "hash/sha256mb.h"
#include "store/store.h"

/* Blocks that are not whole verified chunks (a format's tables, data off
 * the block grid as in vhd-dynamic, compressed output) are copied into
 * block buffers and hashed OUT_BATCH at a time with the multi-buffer
 * SHA-256 (lib/hash/sha256mb.h): 8 lanes give about 1.8 GB/s on one core
 * where OpenSSL gives 0.4 (docs/PERFORMANCE.md), for 8 blocks of memory
 * (32 MiB at 4 MiB chunks).  The root digest takes the block digests in
 * order, so a block whose digest is known already (a verified chunk, a
 * zero block) waits in the queue behind the buffered blocks before it. */
#define OUT_BATCH 8
#define OUT_QUEUE 64                 /* root entries waiting (>= OUT_BATCH) */

struct output {
  struct store_writer *w;
  uint64_t pos;
  uint64_t block;
  struct digest_ctx *root;       /* over the finished blocks' digests */
  uint8_t zero_leaf[DIGEST_LEN];
  unsigned batch;                /* blocks hashed together */
  uint8_t *bufs[OUT_BATCH];      /* bufs[nbuf] is the block being filled */
  unsigned nbuf;                 /* full blocks waiting in bufs[0..nbuf) */
  struct {
    uint8_t d[DIGEST_LEN];
    int buf;                     /* index into bufs, -1: d is known */
  } q[OUT_QUEUE];                /* finished blocks not yet in root */
  unsigned nq;
  int failed;                    /* sticky: nothing is appended after */
};

struct output *output_create(struct store_writer *w, uint32_t block)
{
  struct output *o = calloc(1, sizeof *o);
  unsigned lanes = sha256_lanes();

  if (o == NULL)
    goto oom;
  o->w = w;
  o->block = block;
  o->batch = lanes < 1 ? 1 : lanes > OUT_BATCH ? OUT_BATCH : lanes;
  o->root = digest_create();
  if (o->root == NULL)
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
  digest_close(o->root);
  for (unsigned i = 0; i < OUT_BATCH; i++)
    free(o->bufs[i]);
  free(o);
}

uint64_t output_pos(const struct output *o)
{
  return o->pos;
}

/* Hash the buffered blocks together and feed every queued digest to the
 * root, in order. */
static void flush(struct output *o)
{
  const void *bufs[OUT_BATCH];
  size_t lens[OUT_BATCH];
  uint8_t d[OUT_BATCH][DIGEST_LEN];

  for (unsigned i = 0; i < o->nbuf; i++) {
    bufs[i] = o->bufs[i];
    lens[i] = (size_t)o->block;
  }
  if (o->nbuf > 0)
    sha256_many(bufs, lens, o->nbuf, d);
  for (unsigned i = 0; i < o->nq; i++)
    digest_update(o->root, o->q[i].buf < 0 ? o->q[i].d : d[o->q[i].buf],
                  DIGEST_LEN);
  o->nq = 0;
  o->nbuf = 0;
}

/* A whole block whose digest is known, at a block boundary. */
static void known_block(struct output *o, const uint8_t d[DIGEST_LEN])
{
  if (o->nq == 0) {
    digest_update(o->root, d, DIGEST_LEN);
  } else {
    memcpy(o->q[o->nq].d, d, DIGEST_LEN);
    o->q[o->nq++].buf = -1;
    if (o->nq == OUT_QUEUE)
      flush(o);
  }
  o->pos += o->block;
}

/* Copy len bytes of buf (NULL: zeros) into the block being filled,
 * queueing blocks as they fill. */
static int hash_bytes(struct output *o, const uint8_t *buf, uint64_t len)
{
  while (len > 0) {
    uint64_t fill = o->pos % o->block, room = o->block - fill;
    uint64_t n = len < room ? len : room;

    if (o->bufs[o->nbuf] == NULL &&
        (o->bufs[o->nbuf] = malloc((size_t)o->block)) == NULL) {
      ferry_error("out of memory for a %" PRIu64 "-byte output block",
                  o->block);
      o->failed = 1;
      return -1;
    }
    if (buf) {
      memcpy(o->bufs[o->nbuf] + fill, buf, (size_t)n);
      buf += n;
    } else {
      memset(o->bufs[o->nbuf] + fill, 0, (size_t)n);
    }
    o->pos += n;
    len -= n;
    if (o->pos % o->block == 0) {
      o->q[o->nq++].buf = (int)o->nbuf++;
      if (o->nbuf == o->batch || o->nq == OUT_QUEUE)
        flush(o);
    }
  }
  return 0;
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
  return hash_bytes(o, buf, len);
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
  known_block(o, digest);
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
    int zero = buf_is_zero(p + off, len - off < granule ? len - off : granule);

    /* extend the run while the granules stay zero (or not) */
    while (end < len) {
      n = len - end < granule ? len - end : granule;
      if (buf_is_zero(p + end, n) != zero)
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
    known_block(o, digest);
    return 0;
  }
  return hash_bytes(o, buf, len);
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
  if (hash_bytes(o, NULL, head) == -1)
    return -1;
  len -= head;
  for (blocks = len / o->block; blocks > 0; blocks--)
    known_block(o, o->zero_leaf);
  return hash_bytes(o, NULL, len % o->block);
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
  if (o->pos % o->block != 0) {   /* the last block, short */
    const void *buf = o->bufs[o->nbuf];
    size_t len = (size_t)(o->pos % o->block);

    sha256_many(&buf, &len, 1, &d);
  }
  flush(o);
  if (o->pos % o->block != 0)
    digest_update(o->root, d, DIGEST_LEN);
  digest_final(o->root, out);
  o->failed = 1;                 /* nothing more may be appended */
  return 0;
}
