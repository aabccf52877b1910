/* util/parse: sizes and range-checked numbers refuse what they cannot
 * represent exactly (overflow, a sign, nothing, junk after the number) and
 * name the option in the error. */
#include "util/error.h"
#include "util/parse.h"
#include "test.h"

static uint64_t size_ok(const char *text)
{
  uint64_t v = 12345;

  CHECK(parse_size(text, &v) == 0);
  return v;
}

static int size_bad(const char *text, const char *needle)
{
  uint64_t v = 7;
  int r = parse_size(text, &v);

  CHECK_CONTAINS(ferry_errmsg(), needle);
  CHECK_U64(v, 7);                        /* untouched on failure */
  return r == -1;
}

int main(void)
{
  unsigned u = 99;
  uint64_t v = 99;

  /* suffixes: powers of 1024, either case, optional iB/B */
  CHECK_U64(size_ok("0"), 0);
  CHECK_U64(size_ok("512"), 512);
  CHECK_U64(size_ok("512B"), 512);
  CHECK_U64(size_ok("800k"), 800 * 1024);
  CHECK_U64(size_ok("4M"), 4u << 20);
  CHECK_U64(size_ok("4MiB"), 4u << 20);
  CHECK_U64(size_ok("4mb"), 4u << 20);
  CHECK_U64(size_ok("1.5G"), 3ull << 29);
  CHECK_U64(size_ok("2T"), 2ull << 40);
  CHECK_U64(size_ok("0.000001T"), (1ull << 40) / 1000000);
  CHECK_U64(size_ok("16777215T"), 16777215ull << 40);
  CHECK_U64(size_ok("16777215.999999T"),
            (16777215ull << 40) + (999999ull << 40) / 1000000);
  CHECK_U64(size_ok("18446744073709551615"), UINT64_MAX);

  /* empty, signs, spaces, junk, fractions that say nothing */
  CHECK(size_bad("", "'' is not a size"));
  CHECK(size_bad("-1", "'-1' is not a size"));
  CHECK(size_bad("+1M", "is not a size"));
  CHECK(size_bad(" 1M", "is not a size"));
  CHECK(size_bad("1M ", "is not a size"));
  CHECK(size_bad("M", "is not a size"));
  CHECK(size_bad("1X", "is not a size"));
  CHECK(size_bad("15i", "is not a size"));
  CHECK(size_bad("1.M", "is not a size"));
  CHECK(size_bad("1.0000001G", "is not a size"));
  CHECK(size_bad("1e3", "is not a size"));
  CHECK(size_bad("inf", "is not a size"));
  CHECK(size_bad("0x10", "is not a size"));
  /* overflow: of the digits, of the suffix (a fraction of a unit cannot
   * carry past 2^64: the largest fits) */
  CHECK(size_bad("18446744073709551616", "too large"));
  CHECK(size_bad("16777216T", "too large"));
  CHECK(size_bad("17179869184G", "too large"));

  /* range-checked numbers name the option and the range */
  CHECK(parse_uint("--jobs", "8", 1, 64, &u) == 0);
  CHECK_U64(u, 8);
  CHECK(parse_uint("--jobs", "64", 1, 64, &u) == 0);
  CHECK_U64(u, 64);
  CHECK(parse_uint("--jobs", "0", 1, 64, &u) == -1);
  CHECK_STR(ferry_errmsg(), "--jobs must be 1 to 64 (not '0')");
  CHECK(parse_uint("--jobs", "65", 1, 64, &u) == -1);
  CHECK(parse_uint("--jobs", "", 1, 64, &u) == -1);
  CHECK_STR(ferry_errmsg(), "--jobs must be 1 to 64 (not '')");
  CHECK(parse_uint("--jobs", "-1", 0, 64, &u) == -1);
  CHECK(parse_uint("--jobs", " 1", 0, 64, &u) == -1);
  CHECK(parse_uint("--jobs", "+1", 0, 64, &u) == -1);
  CHECK(parse_uint("--jobs", "1x", 0, 64, &u) == -1);
  CHECK(parse_uint("--lease", "4294967296", 0, UINT32_MAX, &u) == -1);
  CHECK_U64(u, 64);                       /* untouched on failure */
  CHECK(parse_uint("--lease", "4294967295", 0, UINT32_MAX, &u) == 0);
  CHECK_U64(u, UINT32_MAX);

  CHECK(parse_u64("--generation", "18446744073709551615", 1, UINT64_MAX,
                  &v) == 0);
  CHECK_U64(v, UINT64_MAX);
  CHECK(parse_u64("--generation", "18446744073709551616", 1, UINT64_MAX,
                  &v) == -1);
  CHECK_STR(ferry_errmsg(), "--generation must be a whole number of at "
            "least 1 (not '18446744073709551616')");
  CHECK(parse_u64("--generation", "0", 1, UINT64_MAX, &v) == -1);
  CHECK_U64(v, UINT64_MAX);

  TEST_MAIN_END();
}
