/* Multi-buffer SHA-256: every implementation this CPU has, against the
 * FIPS 180-4 example messages and against OpenSSL (digest_buf) on random
 * buffers of many lengths, batch sizes and alignments.  Each buffer is its
 * own exact-size allocation, so that ASan catches a read past its end. */
#include "hash/sha256mb.h"

#include "hash/digest.h"
#include "util/error.h"
#include "test.h"

static uint64_t rng = 0x9e3779b97f4a7c15u;

/* sha256_many_path (that path only) or sha256_many_upto (the choices of
 * sha256_many on a CPU whose widest path is that one) */
static int (*hash)(enum sha256_path, const void *const *, const size_t *,
                   size_t, uint8_t (*)[DIGEST_LEN]);
static const char *mode;

/* xorshift64: reproducible bytes and lengths */
static uint64_t rnd(void)
{
  rng ^= rng << 13;
  rng ^= rng >> 7;
  rng ^= rng << 17;
  return rng;
}

/* A buffer of len random bytes that ends where its allocation ends; the
 * caller frees base. */
static uint8_t *rnd_buf(size_t len, size_t align, uint8_t **base)
{
  uint8_t *p;
  size_t i;

  *base = malloc(len + align > 0 ? len + align : 1);
  if (*base == NULL) {
    perror("malloc");
    exit(2);
  }
  p = *base + align;
  for (i = 0; i < len; i++)
    p[i] = (uint8_t)rnd();
  return p;
}

static const char *hex_of(const uint8_t d[DIGEST_LEN])
{
  static char hex[DIGEST_HEX_LEN + 1];

  digest_to_hex(d, hex);
  return hex;
}

/* Hash bufs on path and compare each digest with OpenSSL's; print the
 * first mismatch. */
static void check_batch(enum sha256_path path, const void *const *bufs,
                        const size_t *lens, size_t n, const char *what)
{
  uint8_t (*got)[DIGEST_LEN] = calloc(n ? n : 1, DIGEST_LEN);
  uint8_t want[DIGEST_LEN];
  size_t i;

  CHECK(got != NULL);
  if (got == NULL)
    return;
  CHECK(hash(path, bufs, lens, n, got) == 0);
  for (i = 0; i < n; i++) {
    digest_buf(lens[i] ? bufs[i] : "", lens[i], want);
    test_checks++;
    if (memcmp(got[i], want, DIGEST_LEN) != 0) {
      fprintf(stderr, "%s %s: %s: buffer %zu of %zu (%zu bytes): got %s",
              mode, sha256_path_name(path), what, i, n, lens[i],
              hex_of(got[i]));
      fprintf(stderr, ", expected %s\n", hex_of(want));
      test_failures++;
      break;
    }
  }
  free(got);
}

/* FIPS 180-4 example messages (NIST CSRC "Examples with Intermediate
 * Values", SHA-256), all in one call of different lengths, then each on its
 * own. */
static void check_vectors(enum sha256_path path)
{
  static const char *const hex[] = {
    "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1",
    "cf5b16a778af8380036ce59e7b0492370b249b11e8f07a51afac45037afee9d1",
    "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0",
  };
  static const char m448[] =
    "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
  static const char m896[] =
    "abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmn"
    "hijklmnoijklmnopjklmnopqklmnopqrlmnopqrsmnopqrstnopqrstu";
  char *million = malloc(1000000);
  const void *bufs[5] = { "abc", NULL, m448, m896, million };
  size_t lens[5] = { 3, 0, sizeof m448 - 1, sizeof m896 - 1, 1000000 };
  uint8_t out[5][DIGEST_LEN];
  size_t i;

  CHECK(million != NULL);
  if (million == NULL)
    return;
  memset(million, 'a', 1000000);
  CHECK(sizeof m448 - 1 == 448 / 8);
  CHECK(sizeof m896 - 1 == 896 / 8);
  CHECK(hash(path, bufs, lens, 5, out) == 0);
  for (i = 0; i < 5; i++)
    CHECK_STR(hex_of(out[i]), hex[i]);
  for (i = 0; i < 5; i++) {
    memset(out[0], 0, DIGEST_LEN);
    CHECK(hash(path, &bufs[i], &lens[i], 1, out) == 0);
    CHECK_STR(hex_of(out[0]), hex[i]);
  }
  free(million);
}

/* Every length 0..300 (one to five blocks, each padding case: the length
 * fitting in the last block or spilling into another), first all lanes the
 * same length, then all 301 lengths in one call. */
static void check_lengths(enum sha256_path path)
{
  enum { MAXLEN = 300, N = MAXLEN + 1 };
  uint8_t *base[N];
  const void *bufs[N];
  size_t lens[N], len, i, lanes = sha256_path_lanes(path);
  char what[64];

  for (len = 0; len <= MAXLEN; len++) {
    for (i = 0; i < lanes; i++) {
      lens[i] = len;
      bufs[i] = rnd_buf(len, i % 8, &base[i]);
    }
    snprintf(what, sizeof what, "%zu lanes of %zu bytes", lanes, len);
    check_batch(path, bufs, lens, lanes, what);
    for (i = 0; i < lanes; i++)
      free(base[i]);
  }
  for (i = 0; i < N; i++) {
    lens[i] = i;
    bufs[i] = rnd_buf(i, rnd() % 64, &base[i]);
  }
  check_batch(path, bufs, lens, N, "lengths 0..300 in one call");
  for (i = 0; i < N; i++)
    free(base[i]);
}

/* n = 1..40 buffers of random lengths (up to 20 blocks) and alignments:
 * partial batches, lanes finishing at different blocks and refilled. */
static void check_mixes(enum sha256_path path)
{
  enum { MAXN = 40 };
  uint8_t *base[MAXN];
  const void *bufs[MAXN];
  size_t lens[MAXN], n, i;
  char what[64];
  int round;

  for (round = 0; round < 3; round++)
    for (n = 1; n <= MAXN; n++) {
      for (i = 0; i < n; i++) {
        lens[i] = rnd() % (20 * 64 + 1);
        bufs[i] = rnd_buf(lens[i], rnd() % 64, &base[i]);
      }
      snprintf(what, sizeof what, "mix of %zu random lengths", n);
      check_batch(path, bufs, lens, n, what);
      for (i = 0; i < n; i++)
        free(base[i]);
    }
}

/* Long messages (1 MiB + odd bytes) with short ones among them: the long
 * ones outlive the short ones by thousands of blocks, and with a NULL
 * empty buffer in the middle. */
static void check_long(enum sha256_path path)
{
  enum { N = 19 };
  uint8_t *base[N];
  const void *bufs[N];
  size_t lens[N], i;

  for (i = 0; i < N; i++) {
    lens[i] = i % 3 == 0 ? (1 << 20) + 2 * i + 1 : rnd() % 5000;
    bufs[i] = rnd_buf(lens[i], i % 5, &base[i]);
  }
  lens[7] = 0;
  bufs[7] = NULL;
  check_batch(path, bufs, lens, N, "1 MiB+odd among short buffers");
  check_batch(path, bufs, lens, 1, "1 MiB+odd alone");
  for (i = 0; i < N; i++)
    free(base[i]);
}

static void check_all(enum sha256_path p)
{
  check_vectors(p);
  check_lengths(p);
  check_mixes(p);
  check_long(p);
}

int main(void)
{
  char ran[256] = "", absent[256] = "", upto[256] = "";
  unsigned p;

  /* the batch size is one the implementations have */
  CHECK(sha256_lanes() == 1 || sha256_lanes() == 8 || sha256_lanes() == 16);
  CHECK(sha256_path_lanes(SHA256_PATH_AUTO) == sha256_lanes());
  CHECK(sha256_path_lanes(SHA256_PATH_OPENSSL) == 1);
  CHECK(sha256_path_lanes(SHA256_PATH_SCALAR) == 1);
  /* an unknown path is refused with a message */
  CHECK(sha256_many_path(SHA256_PATH_COUNT, NULL, NULL, 0, NULL) == -1);
  CHECK_CONTAINS(ferry_errmsg(), "not available");
  CHECK(sha256_many_upto(SHA256_PATH_COUNT, NULL, NULL, 0, NULL) == -1);
  /* no buffers: nothing written, nothing read */
  sha256_many(NULL, NULL, 0, NULL);

  /* each path on its own, for every buffer of a call */
  hash = sha256_many_path;
  mode = "path";
  for (p = 0; p < SHA256_PATH_COUNT; p++) {
    char *list = sha256_path_lanes(p) ? ran : absent;

    snprintf(list + strlen(list), 256 - strlen(list), " %s",
             sha256_path_name(p));
    if (sha256_path_lanes(p) == 0) {
      CHECK(sha256_many_path(p, NULL, NULL, 0, NULL) == -1);
      CHECK(sha256_many_upto(p, NULL, NULL, 0, NULL) == -1);
      continue;
    }
    check_all(p);
  }
  /* sha256_many's own choices (narrower kernels for the last messages,
   * OpenSSL for lone ones) as on CPUs whose widest path is each of ours */
  hash = sha256_many_upto;
  mode = "auto up to";
  for (p = SHA256_PATH_SCALAR; p < SHA256_PATH_COUNT; p++)
    if (sha256_path_lanes(p) > 0) {
      snprintf(upto + strlen(upto), 256 - strlen(upto), " %s",
               sha256_path_name(p));
      check_all(p);
    }
  fprintf(stderr, "paths run:%s; not on this CPU:%s; auto as on CPUs up "
          "to:%s (%u lanes here)\n", ran, *absent ? absent : " none", upto,
          sha256_lanes());
  TEST_MAIN_END();
}
