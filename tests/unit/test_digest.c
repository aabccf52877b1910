/* SHA-256 and hex helpers against FIPS 180-2 test vectors. */
#include "hash/digest.h"
#include "test.h"

int main(void)
{
  uint8_t d[DIGEST_LEN], back[DIGEST_LEN];
  char hex[DIGEST_HEX_LEN + 1];
  struct digest_ctx *ctx;

  /* FIPS 180-2 appendix B.1: "abc" */
  digest_buf("abc", 3, d);
  digest_to_hex(d, hex);
  CHECK_STR(hex, "ba7816bf8f01cfea414140de5dae2223"
                 "b00361a396177a9cb410ff61f20015ad");
  /* the empty message */
  digest_buf("", 0, d);
  digest_to_hex(d, hex);
  CHECK_STR(hex, "e3b0c44298fc1c149afbf4c8996fb924"
                 "27ae41e4649b934ca495991b7852b855");

  /* streaming in pieces gives the same digest as one call */
  ctx = digest_create();
  CHECK(ctx != NULL);
  digest_update(ctx, "a", 1);
  digest_update(ctx, "bc", 2);
  digest_final(ctx, back);
  digest_buf("abc", 3, d);
  CHECK(memcmp(d, back, DIGEST_LEN) == 0);
  /* a finished context is reset for reuse */
  digest_update(ctx, "abc", 3);
  digest_final(ctx, back);
  CHECK(memcmp(d, back, DIGEST_LEN) == 0);
  digest_close(ctx);

  /* hex round trip and rejection of malformed hex */
  digest_to_hex(d, hex);
  CHECK(digest_from_hex(hex, back) == 0);
  CHECK(memcmp(d, back, DIGEST_LEN) == 0);
  hex[10] = 'G';
  CHECK(digest_from_hex(hex, back) == -1);
  hex[10] = 'A';                           /* upper case is not canonical */
  CHECK(digest_from_hex(hex, back) == -1);
  CHECK(digest_from_hex("abcd", back) == -1);
  TEST_MAIN_END();
}
