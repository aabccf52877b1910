/* Chunk encodings: round trips, "does not pay" and corruption. */
#include "image/codec.h"
#include "util/error.h"
#include "test.h"

static void roundtrip(enum chunk_encoding enc)
{
  size_t len = 1 << 20, z;
  char *in = malloc(len), *out = malloc(len), *back = malloc(len);
  struct codec *c = codec_create(enc, 1);
  size_t i;

  for (i = 0; i < len; i++)              /* compressible: a repeating text */
    in[i] = "ferry moves servers "[i % 20];
  z = codec_encode(c, in, len, out, len - len / 8);
  CHECK(z > 0 && z < len / 8);
  CHECK(codec_decode(c, enc, out, z, back, len) == 0);
  CHECK(memcmp(in, back, len) == 0);

  /* the context is reused: a second chunk works the same */
  z = codec_encode(c, in, len / 2, out, len);
  CHECK(z > 0);
  CHECK(codec_decode(c, enc, out, z, back, len / 2) == 0);

  /* the wrong plain length is refused, not padded or truncated */
  CHECK(codec_decode(c, enc, out, z, back, len / 2 - 1) == -1);

  /* random data does not fit in 7/8 of its size: encode says 0 */
  srand(7);
  for (i = 0; i < len; i++)
    in[i] = (char)rand();
  CHECK(codec_encode(c, in, len, out, len - len / 8) == 0);

  /* a flipped byte in the middle of a stream is detected */
  memset(in, 'x', len);
  z = codec_encode(c, in, len, out, len);
  CHECK(z > 16);
  out[z / 2] ^= 0x55;
  out[z - 2] ^= 0x55;
  CHECK(codec_decode(c, enc, out, z, back, len) == -1 ||
        memcmp(in, back, len) != 0);
  /* a truncated stream is refused */
  z = codec_encode(c, in, len, out, len);
  CHECK(codec_decode(c, enc, out, z - 3, back, len) == -1);
  codec_close(c);
  free(in);
  free(out);
  free(back);
}

int main(void)
{
  enum chunk_encoding e;

  roundtrip(ENC_GZIP);
  roundtrip(ENC_ZSTD);
  CHECK(codec_parse("zstd", &e) == 0 && e == ENC_ZSTD);
  CHECK(codec_parse("none", &e) == 0 && e == ENC_RAW);
  CHECK(codec_parse("lz4", &e) == -1);
  CHECK_CONTAINS(ferry_errmsg(), "use none, gzip or zstd");
  CHECK_STR(codec_suffix(ENC_GZIP), ".gz");
  CHECK_STR(codec_suffix(ENC_RAW), "");
  TEST_MAIN_END();
}
