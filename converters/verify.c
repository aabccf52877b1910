/* verify.c - ferry-convert --verify: read an output back through its
 * format's reader and compare the disk it holds with the chunked image.
 *
 * Only the chunk table is read from the image: each data chunk of the
 * output is hashed and compared with the chunk's digest, every other byte
 * must be zero.  When a chunk differs, that one chunk is fetched from the
 * image to name the first differing byte. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bytes.h"
#include "util/cleanup.h"
#include "image/codec.h"
#include "convert.h"
#include "util/error.h"
#include "format.h"
#include "instream.h"
#include "util/progress.h"
#include "store/store.h"

/* Fetch, decode and check chunk c into buf (its plain length). */
static int fetch_chunk(struct store *s, const struct image_manifest *m,
                       const struct image_chunk *c, void *buf)
{
  uint64_t len = image_chunk_len(m, c->index);
  char key[IMAGE_CHUNK_KEY_MAX];
  uint8_t d[DIGEST_LEN];
  CLEANUP_FREE void *z = NULL;
  struct codec *codec;
  size_t got;
  int r;

  image_chunk_key(c->digest, c->enc, key);
  z = malloc((size_t)c->stored_size + 1);
  if (z == NULL) {
    ferry_error("out of memory");
    return -1;
  }
  if (store_get(s, key, 0, c->enc == ENC_RAW ? buf : z,
                (size_t)c->stored_size + 1, &got) == -1)
    return -1;
  if (got != c->stored_size) {
    ferry_error("chunk %" PRIu64 " (%s) is %zu bytes, the table says %"
                PRIu64, c->index, key, got, c->stored_size);
    return -1;
  }
  if (c->enc != ENC_RAW) {
    codec = codec_create(ENC_RAW, 0);
    if (codec == NULL)
      return -1;
    r = codec_decode(codec, c->enc, z, got, buf, (size_t)len);
    codec_close(codec);
    if (r == -1)
      return -1;
  }
  digest_buf(buf, (size_t)len, d);
  if (memcmp(d, c->digest, DIGEST_LEN) != 0) {
    ferry_error("chunk %" PRIu64 " (%s) does not match its digest", c->index,
                key);
    return -1;
  }
  return 0;
}

/* The output's chunk (out, or zeros when hole) differs from the image's
 * chunk c (NULL: a zero chunk): find and report the first differing byte. */
static int report(struct store *src, const struct image_manifest *m,
                  const char *name, uint64_t index, const uint8_t *out,
                  const struct image_chunk *c)
{
  uint64_t len = image_chunk_len(m, index), off = index * m->chunk_size;
  CLEANUP_FREE uint8_t *img = NULL;
  size_t i;

  if (c == NULL) {
    i = first_nonzero(out, (size_t)len);
    ferry_error("%s differs from the image at disk offset %" PRIu64
                " (chunk %" PRIu64 "): the output holds 0x%02x where the "
                "disk is zero", name, off + i, index, out[i]);
    return -1;
  }
  img = malloc((size_t)len);
  if (img == NULL) {
    ferry_error("out of memory");
    return -1;
  }
  if (fetch_chunk(src, m, c, img) == -1) {
    ferry_error_prefix("%s differs from the image in chunk %" PRIu64
                       " (disk offset %" PRIu64 "); fetching the chunk to "
                       "find the byte failed: ", name, index, off);
    return -1;
  }
  for (i = 0; i < len; i++)
    if ((out ? out[i] : 0) != img[i])
      break;
  if (i == len) {
    ferry_error("%s: chunk %" PRIu64 " hashes differently but reads the "
                "same; the store changed during the check, run it again",
                name, index);
    return -1;
  }
  ferry_error("%s differs from the image at disk offset %" PRIu64
              " (chunk %" PRIu64 "): the output holds 0x%02x where the "
              "disk holds 0x%02x%s", name, off + i, index,
              out ? out[i] : 0, img[i],
              out ? "" : " (the output has no data there)");
  return -1;
}

int verify_output(struct store *src, const struct image_manifest *m,
                  const struct format_ops *fmt, struct store *dst,
                  const char *key, int quiet, struct verify_result *res)
{
  struct instream *in = NULL;
  struct format_reader *fr = NULL;
  struct table_reader *table = NULL;
  CLEANUP_FREE uint8_t *buf = NULL;
  struct image_chunk c;
  struct progress prog;
  struct timespec t0, t1;
  uint64_t i, expect, pos;
  uint8_t d[DIGEST_LEN];
  const char *name;
  int have, n, r = -1;

  clock_gettime(CLOCK_MONOTONIC, &t0);
  memset(res, 0, sizeof *res);
  in = instream_open(dst, key);
  if (in == NULL)
    return -1;
  name = instream_name(in);
  res->output_bytes = instream_size(in);
  buf = malloc(m->chunk_size);
  if (buf == NULL) {
    ferry_error("out of memory");
    goto out;
  }
  fr = fmt->reader_open(in, m);
  if (fr == NULL)
    goto out;
  expect = fmt->virtual_size(m);
  res->virtual_size = fr->virtual_size;
  if (fr->virtual_size != expect) {
    ferry_error("%s declares a %" PRIu64 "-byte disk; a %s of this image "
                "holds %" PRIu64 " bytes: it was not converted from this "
                "image", name, fr->virtual_size, fmt->name, expect);
    goto out;
  }
  table = table_reader_open(src, m);
  if (table == NULL)
    goto out;
  have = table_reader_next(table, &c);
  if (have == -1)
    goto out;
  progress_init(&prog, "verifying", m->disk_size, quiet);
  for (i = 0; i < m->chunk_count; i++) {
    uint64_t len = image_chunk_len(m, i);
    int data = have == 1 && c.index == i;

    n = fmt->read(fr, buf, (size_t)len);
    if (n == -1)
      goto out;
    if (data) {
      if (n == 0) {
        report(src, m, name, i, NULL, &c);
        goto out;
      }
      digest_buf(buf, (size_t)len, d);
      if (memcmp(d, c.digest, DIGEST_LEN) != 0) {
        report(src, m, name, i, buf, &c);
        goto out;
      }
      have = table_reader_next(table, &c);
      if (have == -1)
        goto out;
    } else if (n == 1 && !buf_is_zero(buf, (size_t)len)) {
      report(src, m, name, i, buf, NULL);
      goto out;
    }
    progress_add(&prog, len);
  }
  if (have != 0) {
    ferry_error("the chunk table of %s lists chunks beyond the disk",
                store_url(src));
    goto out;
  }
  /* what the format adds past the disk (rounding) must read as zeros */
  for (pos = m->disk_size; pos < fr->virtual_size; ) {
    uint64_t len = fr->virtual_size - pos;

    if (len > m->chunk_size)
      len = m->chunk_size;
    n = fmt->read(fr, buf, (size_t)len);
    if (n == -1)
      goto out;
    if (n == 1 && !buf_is_zero(buf, (size_t)len)) {
      ferry_error("%s holds data at offset %" PRIu64 ", past the end of "
                  "the %" PRIu64 "-byte disk where it should hold zeros",
                  name, pos + first_nonzero(buf, (size_t)len), m->disk_size);
      goto out;
    }
    pos += len;
  }
  if (fmt->reader_end(fr) == -1)
    goto out;
  progress_done(&prog);
  clock_gettime(CLOCK_MONOTONIC, &t1);
  res->seconds = (double)(t1.tv_sec - t0.tv_sec) +
                 (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
  r = 0;
out:
  table_reader_close(table);
  if (fr)
    fmt->reader_close(fr);
  instream_close(in);
  return r;
}
