/* util/zero: buf_is_zero sees a single non-zero byte wherever it is: in
 * the first 16 bytes, in any 4 KiB slice, in the tail, from any start
 * alignment, and does not look past len. */
#include "util/zero.h"
#include "test.h"

int main(void)
{
  static unsigned char big[(1 << 20) + 64];
  static const size_t lens[] = { 0, 1, 15, 16, 17, 4095, 4096, 4097,
                                 4111, 4112, 8192, 8209 };
  size_t i, k, a, pos;
  int missed = 0;

  CHECK(buf_is_zero(big, sizeof big));
  CHECK(buf_is_zero(NULL, 0));
  for (a = 0; a < 3; a++)                       /* start alignment */
    for (k = 0; k < sizeof lens / sizeof lens[0]; k++) {
      unsigned char *p = big + a;

      CHECK(buf_is_zero(p, lens[k]));
      for (pos = 0; pos < lens[k]; pos++) {
        p[pos] = 0x80;
        missed += buf_is_zero(p, lens[k]);
        p[pos] = 0;
      }
      /* a byte just past the end is not looked at */
      p[lens[k]] = 1;
      CHECK(buf_is_zero(p, lens[k]));
      p[lens[k]] = 0;
    }
  CHECK(missed == 0);
  /* a large chunk: first, last and slice-edge bytes */
  for (i = 0; i < 6; i++) {
    static const size_t at[] = { 0, 16, 4095, 4096, (1 << 20) - 4097,
                                 (1 << 20) - 1 };

    big[at[i]] = 1;
    CHECK(!buf_is_zero(big, 1 << 20));
    big[at[i]] = 0;
  }
  CHECK(buf_is_zero(big, 1 << 20));
  TEST_MAIN_END();
}
