/* pgzip.c - parallel gzip (see pgzip.h). */
#include "pgzip.h"

#include <stdlib.h>
#include <string.h>

#include <zlib.h>

#include "util/error.h"
#include "output.h"
#include "pool.h"

#define BLOCK (1u << 20)
#define DICT (32u << 10)            /* deflate's window (RFC 1951) */

struct pgzip {
  struct output *out;
  struct pool *pool;
  int level;
  size_t blocks;                  /* per batch */
  uint8_t *in;                    /* DICT bytes of history, then a batch */
  size_t fill;                    /* input bytes in the batch */
  int have_dict;                  /* the history holds a whole window */
  uint8_t *outbuf;
  size_t out_cap;                 /* per block */
  size_t *out_len;
  uint32_t *crc;
  int final;                      /* compressing the last batch */
  uint32_t total_crc;
  uint64_t total_in;
  z_stream *zs;                   /* one per pool thread */
  int *zs_ready;
  unsigned threads;
};

struct pgzip *pgzip_create(struct output *out, struct pool *pool, int level)
{
  /* RFC 1952: ID1 ID2, CM = 8 (deflate), no flags, no MTIME, XFL 0,
   * OS = 3 (Unix) */
  static const uint8_t header[10] = { 0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3 };
  struct pgzip *z = calloc(1, sizeof *z);

  if (z == NULL)
    goto oom;
  z->out = out;
  z->pool = pool;
  z->level = level;
  z->threads = pool_threads(pool);
  z->blocks = (size_t)z->threads * 2;
  /* deflateBound for a raw stream plus a sync flush's empty stored block
   * and the final block's header */
  z->out_cap = BLOCK + BLOCK / 1000 + 1024;
  z->in = malloc(DICT + z->blocks * BLOCK);
  z->outbuf = malloc(z->blocks * z->out_cap);
  z->out_len = calloc(z->blocks, sizeof *z->out_len);
  z->crc = calloc(z->blocks, sizeof *z->crc);
  z->zs = calloc(z->threads, sizeof *z->zs);
  z->zs_ready = calloc(z->threads, sizeof *z->zs_ready);
  if (z->in == NULL || z->outbuf == NULL || z->out_len == NULL ||
      z->crc == NULL || z->zs == NULL || z->zs_ready == NULL)
    goto oom;
  z->total_crc = (uint32_t)crc32(0, NULL, 0);
  if (output_write(out, header, sizeof header) == -1) {
    pgzip_close(z);
    return NULL;
  }
  return z;
oom:
  ferry_error("out of memory");
  pgzip_close(z);
  return NULL;
}

void pgzip_close(struct pgzip *z)
{
  unsigned i;

  if (z == NULL)
    return;
  for (i = 0; z->zs_ready && i < z->threads; i++)
    if (z->zs_ready[i])
      deflateEnd(&z->zs[i]);
  free(z->in);
  free(z->outbuf);
  free(z->out_len);
  free(z->crc);
  free(z->zs);
  free(z->zs_ready);
  free(z);
}

uint64_t pgzip_total_in(const struct pgzip *z)
{
  return z->total_in + z->fill;
}

static size_t batch_blocks(const struct pgzip *z)
{
  size_t n = (z->fill + BLOCK - 1) / BLOCK;

  return n == 0 && z->final ? 1 : n;   /* the end needs a final block */
}

/* Pool task: deflate block i of the batch. */
static int deflate_block(void *arg, size_t i, unsigned worker)
{
  struct pgzip *z = arg;
  uint8_t *src = z->in + DICT + i * BLOCK;
  size_t len = z->fill - i * BLOCK < BLOCK ? z->fill - i * BLOCK : BLOCK;
  int last = z->final && i + 1 == batch_blocks(z);
  z_stream *zs = &z->zs[worker];
  int r;

  if (z->fill == 0)
    len = 0;
  if (!z->zs_ready[worker]) {
    /* windowBits -15: a raw deflate stream; the gzip framing is ours */
    if (deflateInit2(zs, z->level, Z_DEFLATED, -15, 8,
                     Z_DEFAULT_STRATEGY) != Z_OK) {
      ferry_error("cannot start a zlib compressor");
      return -1;
    }
    z->zs_ready[worker] = 1;
  } else
    deflateReset(zs);
  if ((i > 0 || z->have_dict) &&
      deflateSetDictionary(zs, src - DICT, DICT) != Z_OK) {
    ferry_error("zlib refused a dictionary");
    return -1;
  }
  zs->next_in = src;
  zs->avail_in = (uInt)len;
  zs->next_out = z->outbuf + i * z->out_cap;
  zs->avail_out = (uInt)z->out_cap;
  r = deflate(zs, last ? Z_FINISH : Z_SYNC_FLUSH);
  if ((last && r != Z_STREAM_END) || (!last && r != Z_OK) ||
      zs->avail_in != 0 || zs->avail_out == 0) {
    ferry_error("zlib deflate failed (%d)", r);
    return -1;
  }
  z->out_len[i] = z->out_cap - zs->avail_out;
  z->crc[i] = (uint32_t)crc32(0, src, (uInt)len);
  return 0;
}

/* Compress the batch, write it in order, keep its tail as history. */
static int run_batch(struct pgzip *z)
{
  size_t n = batch_blocks(z), i;

  if (pool_run(z->pool, n, deflate_block, z) == -1)
    return -1;
  for (i = 0; i < n; i++) {
    size_t len = z->fill - i * BLOCK < BLOCK ? z->fill - i * BLOCK : BLOCK;

    if (z->fill == 0)
      len = 0;
    if (output_write(z->out, z->outbuf + i * z->out_cap, z->out_len[i])
        == -1)
      return -1;
    z->total_crc = (uint32_t)crc32_combine(z->total_crc, z->crc[i],
                                           (z_off_t)len);
  }
  z->total_in += z->fill;
  if (z->fill >= DICT) {
    memmove(z->in, z->in + DICT + z->fill - DICT, DICT);
    z->have_dict = 1;
  } else if (z->fill > 0) {
    /* a short batch happens only at the end */
    z->have_dict = 0;
  }
  z->fill = 0;
  return 0;
}

int pgzip_write(struct pgzip *z, const void *buf, uint64_t len)
{
  const uint8_t *p = buf;

  while (len > 0) {
    size_t room = z->blocks * BLOCK - z->fill;
    size_t n = len < room ? (size_t)len : room;

    if (p) {
      memcpy(z->in + DICT + z->fill, p, n);
      p += n;
    } else
      memset(z->in + DICT + z->fill, 0, n);
    z->fill += n;
    len -= n;
    if (z->fill == z->blocks * BLOCK && run_batch(z) == -1)
      return -1;
  }
  return 0;
}

int pgzip_finish(struct pgzip *z)
{
  uint8_t trailer[8];
  uint32_t isize;

  z->final = 1;
  if (run_batch(z) == -1)
    return -1;
  /* RFC 1952: CRC32 and ISIZE (input size mod 2^32), little-endian */
  isize = (uint32_t)z->total_in;
  trailer[0] = (uint8_t)z->total_crc;
  trailer[1] = (uint8_t)(z->total_crc >> 8);
  trailer[2] = (uint8_t)(z->total_crc >> 16);
  trailer[3] = (uint8_t)(z->total_crc >> 24);
  trailer[4] = (uint8_t)isize;
  trailer[5] = (uint8_t)(isize >> 8);
  trailer[6] = (uint8_t)(isize >> 16);
  trailer[7] = (uint8_t)(isize >> 24);
  return output_write(z->out, trailer, sizeof trailer);
}
