/* image/codec.h - how a chunk is stored: plain, gzip or zstd.
 *
 * zstd (libzstd) is the default because at level 1 it compresses several
 * times faster than zlib's fastest level at a better ratio (measured in
 * docs/PERFORMANCE.md); gzip stays for stores read by tools without zstd. */
#ifndef FERRY_CODEC_H
#define FERRY_CODEC_H

#include <stddef.h>
#include <stdint.h>

enum chunk_encoding {
  ENC_RAW = 0,
  ENC_GZIP = 1,
  ENC_ZSTD = 2,
};

/* Name in manifests and on the command line ("raw", "gzip", "zstd"). */
const char *codec_name(enum chunk_encoding enc);
/* Object-name suffix of a chunk stored this way ("", ".gz", ".zst"). */
const char *codec_suffix(enum chunk_encoding enc);
/* Parse a name; -1 with an error naming the choices. */
int codec_parse(const char *name, enum chunk_encoding *enc);

/* A compressor or decompressor with its reusable state; one per thread. */
struct codec;
struct codec *codec_create(enum chunk_encoding enc, int level);
void codec_close(struct codec *c);

/* Compress in[0..len) into out[0..cap).  Returns the compressed size, or 0
 * when it does not fit in cap: callers pass the largest size for which
 * compression pays and store the chunk plain otherwise. */
size_t codec_encode(struct codec *c, const void *in, size_t len, void *out,
                    size_t cap);

/* Decode in[0..len) stored as enc into exactly plain_len bytes at out.
 * -1 with an error if the data is corrupt or not exactly plain_len long. */
int codec_decode(struct codec *c, enum chunk_encoding enc, const void *in,
                 size_t len, void *out, size_t plain_len);

#endif
