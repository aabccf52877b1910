#include "image/codec.h"

#include <stdlib.h>
#include <string.h>

#include <zlib.h>
#include <zstd.h>

#include "util/error.h"

struct codec {
  enum chunk_encoding enc;
  int level;
  z_stream zenc, zdec;
  int zenc_ok, zdec_ok;
  ZSTD_CCtx *cctx;
  ZSTD_DCtx *dctx;
};

static const struct {
  const char *name;
  const char *suffix;
} codecs[] = {
  [ENC_RAW] = { "raw", "" },
  [ENC_GZIP] = { "gzip", ".gz" },
  [ENC_ZSTD] = { "zstd", ".zst" },
};

const char *codec_name(enum chunk_encoding enc)
{
  return codecs[enc].name;
}

const char *codec_suffix(enum chunk_encoding enc)
{
  return codecs[enc].suffix;
}

int codec_parse(const char *name, enum chunk_encoding *enc)
{
  size_t i;

  for (i = 0; i < sizeof codecs / sizeof codecs[0]; i++)
    if (strcmp(name, codecs[i].name) == 0) {
      *enc = (enum chunk_encoding)i;
      return 0;
    }
  if (strcmp(name, "none") == 0) {
    *enc = ENC_RAW;
    return 0;
  }
  ferry_error("unknown compression '%s': use none, gzip or zstd", name);
  return -1;
}

struct codec *codec_create(enum chunk_encoding enc, int level)
{
  struct codec *c = calloc(1, sizeof *c);

  if (c == NULL) {
    ferry_error("out of memory");
    return NULL;
  }
  c->enc = enc;
  c->level = level;
  return c;
}

void codec_close(struct codec *c)
{
  if (c == NULL)
    return;
  if (c->zenc_ok)
    deflateEnd(&c->zenc);
  if (c->zdec_ok)
    inflateEnd(&c->zdec);
  ZSTD_freeCCtx(c->cctx);
  ZSTD_freeDCtx(c->dctx);
  free(c);
}

/* zlib's counters are uInt: feed at most this much per call */
#define Z_STEP (1u << 30)

static size_t gzip_encode(struct codec *c, const void *in, size_t len,
                          void *out, size_t cap)
{
  int r;

  if (!c->zenc_ok) {
    /* windowBits 15 + 16: a gzip wrapper (RFC 1952), so `zcat` reads it */
    if (deflateInit2(&c->zenc, c->level > 0 ? c->level : 1, Z_DEFLATED,
                     15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK)
      return 0;
    c->zenc_ok = 1;
  } else if (deflateReset(&c->zenc) != Z_OK)
    return 0;
  if (len > Z_STEP || cap > Z_STEP)
    return 0;
  c->zenc.next_in = (Bytef *)(uintptr_t)in;
  c->zenc.avail_in = (uInt)len;
  c->zenc.next_out = out;
  c->zenc.avail_out = (uInt)cap;
  r = deflate(&c->zenc, Z_FINISH);
  if (r != Z_STREAM_END)
    return 0;           /* Z_OK / Z_BUF_ERROR: did not fit */
  return cap - c->zenc.avail_out;
}

static size_t zstd_encode(struct codec *c, const void *in, size_t len,
                          void *out, size_t cap)
{
  size_t r;

  if (c->cctx == NULL) {
    c->cctx = ZSTD_createCCtx();
    if (c->cctx == NULL)
      return 0;
    ZSTD_CCtx_setParameter(c->cctx, ZSTD_c_compressionLevel,
                           c->level ? c->level : 1);
    ZSTD_CCtx_setParameter(c->cctx, ZSTD_c_checksumFlag, 0);
    ZSTD_CCtx_setParameter(c->cctx, ZSTD_c_contentSizeFlag, 1);
  }
  r = ZSTD_compress2(c->cctx, out, cap, in, len);
  if (ZSTD_isError(r))
    return 0;           /* dstSize_tooSmall: did not fit */
  return r;
}

size_t codec_encode(struct codec *c, const void *in, size_t len, void *out,
                    size_t cap)
{
  switch (c->enc) {
  case ENC_GZIP:
    return gzip_encode(c, in, len, out, cap);
  case ENC_ZSTD:
    return zstd_encode(c, in, len, out, cap);
  case ENC_RAW:
    break;
  }
  return 0;
}

static int gzip_decode(struct codec *c, const void *in, size_t len, void *out,
                       size_t plain_len)
{
  int r;

  if (!c->zdec_ok) {
    if (inflateInit2(&c->zdec, 15 + 16) != Z_OK) {
      ferry_error("out of memory");
      return -1;
    }
    c->zdec_ok = 1;
  } else if (inflateReset(&c->zdec) != Z_OK) {
    ferry_error("zlib: cannot reset");
    return -1;
  }
  if (len > Z_STEP || plain_len > Z_STEP) {
    ferry_error("gzip chunk too large");
    return -1;
  }
  c->zdec.next_in = (Bytef *)(uintptr_t)in;
  c->zdec.avail_in = (uInt)len;
  c->zdec.next_out = out;
  c->zdec.avail_out = (uInt)plain_len;
  r = inflate(&c->zdec, Z_FINISH);
  if (r != Z_STREAM_END || c->zdec.avail_out != 0 || c->zdec.avail_in != 0) {
    ferry_error("gzip data is corrupt or not %zu bytes long%s%s", plain_len,
                c->zdec.msg ? ": " : "", c->zdec.msg ? c->zdec.msg : "");
    return -1;
  }
  return 0;
}

static int zstd_decode(struct codec *c, const void *in, size_t len, void *out,
                       size_t plain_len)
{
  unsigned long long content = ZSTD_getFrameContentSize(in, len);
  size_t r;

  if (content != plain_len) {
    ferry_error("zstd frame is corrupt or not %zu bytes long", plain_len);
    return -1;
  }
  if (c->dctx == NULL) {
    c->dctx = ZSTD_createDCtx();
    if (c->dctx == NULL) {
      ferry_error("out of memory");
      return -1;
    }
  }
  r = ZSTD_decompressDCtx(c->dctx, out, plain_len, in, len);
  if (ZSTD_isError(r) || r != plain_len) {
    ferry_error("zstd data is corrupt: %s",
                ZSTD_isError(r) ? ZSTD_getErrorName(r) : "short frame");
    return -1;
  }
  return 0;
}

int codec_decode(struct codec *c, enum chunk_encoding enc, const void *in,
                 size_t len, void *out, size_t plain_len)
{
  switch (enc) {
  case ENC_RAW:
    if (len != plain_len) {
      ferry_error("stored chunk is %zu bytes, expected %zu", len, plain_len);
      return -1;
    }
    memcpy(out, in, len);
    return 0;
  case ENC_GZIP:
    return gzip_decode(c, in, len, out, plain_len);
  case ENC_ZSTD:
    return zstd_decode(c, in, len, out, plain_len);
  }
  ferry_error("unknown chunk encoding %d", (int)enc);
  return -1;
}
