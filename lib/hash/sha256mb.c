/* hash/sha256mb.c - multi-buffer SHA-256 (see sha256mb.h).
 *
 * Each message of a call is assigned to a lane; the SIMD kernels
 * (sha256mb_kernel.h) run the FIPS 180-4 compression on every lane's next
 * block at once.  A lane's message is its full 64-byte blocks read in place
 * followed by one or two padded final blocks built in the lane's own tail
 * buffer (FIPS 180-4 5.1.1), so a kernel only ever sees whole blocks.  A
 * kernel call runs as many blocks as the shortest busy lane has left; a
 * lane whose message ends is refilled with the next message of the call,
 * and when fewer messages remain than lanes a narrower kernel takes over
 * (its state is the same rows of words), down to one lane. */
#include "hash/sha256mb.h"

#include <endian.h>
#include <stdalign.h>
#include <string.h>

#include "util/error.h"

#if defined(__x86_64__) && defined(__GNUC__)
#define MB_X86 1
#include <cpuid.h>
#include <immintrin.h>
#endif

#define MB_MAX_LANES 16
#define MB_BLOCK 64

/* FIPS 180-4 4.2.2: the first 32 bits of the fractional parts of the cube
 * roots of the first 64 primes. */
static const uint32_t sha256_k[64] = {
  0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5,
  0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
  0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3,
  0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
  0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc,
  0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
  0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7,
  0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
  0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13,
  0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
  0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3,
  0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
  0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5,
  0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
  0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208,
  0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
};

/* FIPS 180-4 5.3.3: H(0), the first 32 bits of the fractional parts of the
 * square roots of the first 8 primes. */
static const uint32_t sha256_h0[8] = {
  0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
  0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19,
};

/* ---- portable C, one lane (column 0 of st) ---- */

static inline uint32_t ror32(uint32_t x, unsigned n)
{
  return x >> n | x << (32 - n);
}

static void sha256_blocks_scalar(uint32_t st[8][MB_MAX_LANES],
                                 const uint8_t *const *ptr, size_t nblocks)
{
  const uint8_t *p = ptr[0];
  uint32_t hv[8];
  size_t i;
  int t;

  for (i = 0; i < 8; i++)
    hv[i] = st[i][0];
  for (; nblocks > 0; nblocks--, p += MB_BLOCK) {
    uint32_t w[64], a = hv[0], b = hv[1], c = hv[2], d = hv[3], e = hv[4],
             f = hv[5], g = hv[6], h = hv[7];

    /* FIPS 180-4 6.2.2 step 1; 3.2: words are big-endian */
    for (t = 0; t < 16; t++) {
      uint32_t be;

      memcpy(&be, p + 4 * t, 4);
      w[t] = be32toh(be);
    }
    for (t = 16; t < 64; t++) {
      uint32_t s0 = ror32(w[t - 15], 7) ^ ror32(w[t - 15], 18) ^
                    w[t - 15] >> 3;
      uint32_t s1 = ror32(w[t - 2], 17) ^ ror32(w[t - 2], 19) ^
                    w[t - 2] >> 10;

      w[t] = s1 + w[t - 7] + s0 + w[t - 16];
    }
    /* FIPS 180-4 6.2.2 step 3, with the functions of 4.1.2 */
    for (t = 0; t < 64; t++) {
      uint32_t t1 = h + (ror32(e, 6) ^ ror32(e, 11) ^ ror32(e, 25)) +
                    ((e & f) ^ (~e & g)) + sha256_k[t] + w[t];
      uint32_t t2 = (ror32(a, 2) ^ ror32(a, 13) ^ ror32(a, 22)) +
                    ((a & b) ^ (a & c) ^ (b & c));

      h = g;
      g = f;
      f = e;
      e = d + t1;
      d = c;
      c = b;
      b = a;
      a = t1 + t2;
    }
    hv[0] += a;
    hv[1] += b;
    hv[2] += c;
    hv[3] += d;
    hv[4] += e;
    hv[5] += f;
    hv[6] += g;
    hv[7] += h;
  }
  for (i = 0; i < 8; i++)
    st[i][0] = hv[i];
}

#ifdef MB_X86

#define MB_INLINE static inline __attribute__((always_inline))

/* ---- AVX2: 8 lanes; no vector rotate, so x ror n = x >> n | x << 32-n,
 * the shifts of the three terms of each sigma xor-ed together ---- */

#define TARGET_AVX2 __attribute__((target("avx2")))

#define AVX2_SR(x, n) _mm256_srli_epi32(x, n)
#define AVX2_SL(x, n) _mm256_slli_epi32(x, n)
#define AVX2_X(a, b) _mm256_xor_si256(a, b)

TARGET_AVX2 MB_INLINE __m256i avx2_bsig0(__m256i x)
{
  return AVX2_X(AVX2_X(AVX2_X(AVX2_SR(x, 2), AVX2_SR(x, 13)), AVX2_SR(x, 22)),
                AVX2_X(AVX2_X(AVX2_SL(x, 30), AVX2_SL(x, 19)),
                       AVX2_SL(x, 10)));
}

TARGET_AVX2 MB_INLINE __m256i avx2_bsig1(__m256i x)
{
  return AVX2_X(AVX2_X(AVX2_X(AVX2_SR(x, 6), AVX2_SR(x, 11)), AVX2_SR(x, 25)),
                AVX2_X(AVX2_X(AVX2_SL(x, 26), AVX2_SL(x, 21)), AVX2_SL(x, 7)));
}

TARGET_AVX2 MB_INLINE __m256i avx2_ssig0(__m256i x)
{
  return AVX2_X(AVX2_X(AVX2_X(AVX2_SR(x, 7), AVX2_SR(x, 18)), AVX2_SR(x, 3)),
                AVX2_X(AVX2_SL(x, 25), AVX2_SL(x, 14)));
}

TARGET_AVX2 MB_INLINE __m256i avx2_ssig1(__m256i x)
{
  return AVX2_X(AVX2_X(AVX2_X(AVX2_SR(x, 17), AVX2_SR(x, 19)),
                       AVX2_SR(x, 10)),
                AVX2_X(AVX2_SL(x, 15), AVX2_SL(x, 13)));
}

/* Ch = (e & f) ^ (~e & g) = ((f ^ g) & e) ^ g */
TARGET_AVX2 MB_INLINE __m256i avx2_ch(__m256i e, __m256i f, __m256i g)
{
  return AVX2_X(_mm256_and_si256(AVX2_X(f, g), e), g);
}

/* Maj = (a & b) ^ (a & c) ^ (b & c) = ((a ^ b) & (b ^ c)) ^ b */
TARGET_AVX2 MB_INLINE __m256i avx2_maj(__m256i a, __m256i b, __m256i c)
{
  return AVX2_X(_mm256_and_si256(AVX2_X(a, b), AVX2_X(b, c)), b);
}

/* Transpose 8 rows of 8 words (row = one lane's words) into 8 columns. */
TARGET_AVX2 MB_INLINE void avx2_transpose8(__m256i r[8], __m256i *col)
{
  __m256i t[8], u[8];
  int i;

  for (i = 0; i < 8; i += 2) {
    t[i] = _mm256_unpacklo_epi32(r[i], r[i + 1]);
    t[i + 1] = _mm256_unpackhi_epi32(r[i], r[i + 1]);
  }
  for (i = 0; i < 8; i += 4) {
    u[i] = _mm256_unpacklo_epi64(t[i], t[i + 2]);
    u[i + 1] = _mm256_unpackhi_epi64(t[i], t[i + 2]);
    u[i + 2] = _mm256_unpacklo_epi64(t[i + 1], t[i + 3]);
    u[i + 3] = _mm256_unpackhi_epi64(t[i + 1], t[i + 3]);
  }
  /* u[k] holds word k of rows 0-3 (low half) and word k+4 (high half) */
  for (i = 0; i < 4; i++) {
    col[i] = _mm256_permute2x128_si256(u[i], u[i + 4], 0x20);
    col[i + 4] = _mm256_permute2x128_si256(u[i], u[i + 4], 0x31);
  }
}

/* FIPS 180-4 3.2 and 5.2.1: a block is sixteen big-endian words. */
TARGET_AVX2 MB_INLINE void avx2_load_block(__m256i w[16],
                                           const uint8_t *const *ptr,
                                           size_t off)
{
  const __m256i bswap = _mm256_setr_epi8(
    3, 2, 1, 0, 7, 6, 5, 4, 11, 10, 9, 8, 15, 14, 13, 12,
    3, 2, 1, 0, 7, 6, 5, 4, 11, 10, 9, 8, 15, 14, 13, 12);
  __m256i lo[8], hi[8];
  int l;

  for (l = 0; l < 8; l++) {
    lo[l] = _mm256_shuffle_epi8(
      _mm256_loadu_si256((const __m256i *)(ptr[l] + off)), bswap);
    hi[l] = _mm256_shuffle_epi8(
      _mm256_loadu_si256((const __m256i *)(ptr[l] + off + 32)), bswap);
  }
  avx2_transpose8(lo, w);
  avx2_transpose8(hi, w + 8);
}

#define MB_NAME sha256_blocks_avx2
#define MB_TARGET TARGET_AVX2
#define MB_VEC __m256i
#define MB_LOAD(p) _mm256_load_si256((const __m256i *)(p))
#define MB_STORE(p, v) _mm256_store_si256((__m256i *)(p), v)
#define MB_ADD(a, b) _mm256_add_epi32(a, b)
#define MB_SET1(x) _mm256_set1_epi32((int)(x))
#define MB_BSIG0 avx2_bsig0
#define MB_BSIG1 avx2_bsig1
#define MB_SSIG0 avx2_ssig0
#define MB_SSIG1 avx2_ssig1
#define MB_CH avx2_ch
#define MB_MAJ avx2_maj
#define MB_LOAD_BLOCK avx2_load_block
#include "hash/sha256mb_kernel.h"

/* ---- AVX-512VL: the same 8 lanes of 256 bits, with a rotate
 * instruction and three-input logic (vpternlogd): sigmas, Ch and Maj are
 * each one or a few instructions.  The truth tables below index bits by
 * (first << 2 | second << 1 | third). ---- */

#define TARGET_AVX512VL __attribute__((target("avx2,avx512f,avx512vl")))
#define TERN_XOR3 0x96  /* a ^ b ^ c */
#define TERN_CH 0xca    /* a ? b : c */
#define TERN_MAJ 0xe8   /* at least two of a, b, c */

#define VL_R(x, n) _mm256_ror_epi32(x, n)
#define VL_3(a, b, c, op) _mm256_ternarylogic_epi32(a, b, c, op)

TARGET_AVX512VL MB_INLINE __m256i vl_bsig0(__m256i x)
{
  return VL_3(VL_R(x, 2), VL_R(x, 13), VL_R(x, 22), TERN_XOR3);
}

TARGET_AVX512VL MB_INLINE __m256i vl_bsig1(__m256i x)
{
  return VL_3(VL_R(x, 6), VL_R(x, 11), VL_R(x, 25), TERN_XOR3);
}

TARGET_AVX512VL MB_INLINE __m256i vl_ssig0(__m256i x)
{
  return VL_3(VL_R(x, 7), VL_R(x, 18), _mm256_srli_epi32(x, 3), TERN_XOR3);
}

TARGET_AVX512VL MB_INLINE __m256i vl_ssig1(__m256i x)
{
  return VL_3(VL_R(x, 17), VL_R(x, 19), _mm256_srli_epi32(x, 10), TERN_XOR3);
}

TARGET_AVX512VL MB_INLINE __m256i vl_ch(__m256i e, __m256i f, __m256i g)
{
  return VL_3(e, f, g, TERN_CH);
}

TARGET_AVX512VL MB_INLINE __m256i vl_maj(__m256i a, __m256i b, __m256i c)
{
  return VL_3(a, b, c, TERN_MAJ);
}

#define MB_NAME sha256_blocks_avx512vl
#define MB_TARGET TARGET_AVX512VL
#define MB_VEC __m256i
#define MB_LOAD(p) _mm256_load_si256((const __m256i *)(p))
#define MB_STORE(p, v) _mm256_store_si256((__m256i *)(p), v)
#define MB_ADD(a, b) _mm256_add_epi32(a, b)
#define MB_SET1(x) _mm256_set1_epi32((int)(x))
#define MB_BSIG0 vl_bsig0
#define MB_BSIG1 vl_bsig1
#define MB_SSIG0 vl_ssig0
#define MB_SSIG1 vl_ssig1
#define MB_CH vl_ch
#define MB_MAJ vl_maj
#define MB_LOAD_BLOCK avx2_load_block
#include "hash/sha256mb_kernel.h"

/* ---- AVX-512: 16 lanes of 512 bits, same instructions as the VL kernel;
 * AVX-512BW for the byte shuffle ---- */

#define TARGET_AVX512 __attribute__((target("avx2,avx512f,avx512bw")))

#define Z_R(x, n) _mm512_ror_epi32(x, n)
#define Z_3(a, b, c, op) _mm512_ternarylogic_epi32(a, b, c, op)

TARGET_AVX512 MB_INLINE __m512i z_bsig0(__m512i x)
{
  return Z_3(Z_R(x, 2), Z_R(x, 13), Z_R(x, 22), TERN_XOR3);
}

TARGET_AVX512 MB_INLINE __m512i z_bsig1(__m512i x)
{
  return Z_3(Z_R(x, 6), Z_R(x, 11), Z_R(x, 25), TERN_XOR3);
}

TARGET_AVX512 MB_INLINE __m512i z_ssig0(__m512i x)
{
  return Z_3(Z_R(x, 7), Z_R(x, 18), _mm512_srli_epi32(x, 3), TERN_XOR3);
}

TARGET_AVX512 MB_INLINE __m512i z_ssig1(__m512i x)
{
  return Z_3(Z_R(x, 17), Z_R(x, 19), _mm512_srli_epi32(x, 10), TERN_XOR3);
}

TARGET_AVX512 MB_INLINE __m512i z_ch(__m512i e, __m512i f, __m512i g)
{
  return Z_3(e, f, g, TERN_CH);
}

TARGET_AVX512 MB_INLINE __m512i z_maj(__m512i a, __m512i b, __m512i c)
{
  return Z_3(a, b, c, TERN_MAJ);
}

/* 16 rows of 16 words (row = one lane's block) into 16 columns: 32-bit
 * then 64-bit interleaves inside each 128-bit quarter, then two rounds of
 * quarter shuffles. */
TARGET_AVX512 MB_INLINE void z_load_block(__m512i w[16],
                                          const uint8_t *const *ptr,
                                          size_t off)
{
  const __m512i bswap = _mm512_broadcast_i32x4(_mm_setr_epi8(
    3, 2, 1, 0, 7, 6, 5, 4, 11, 10, 9, 8, 15, 14, 13, 12));
  __m512i r[16], t[16];
  int i, k;

  for (i = 0; i < 16; i++)
    r[i] = _mm512_shuffle_epi8(
      _mm512_loadu_si512((const void *)(ptr[i] + off)), bswap);
  for (i = 0; i < 16; i += 2) {
    t[i] = _mm512_unpacklo_epi32(r[i], r[i + 1]);
    t[i + 1] = _mm512_unpackhi_epi32(r[i], r[i + 1]);
  }
  /* r[4g + k]: quarter q holds word 4q+k of rows 4g..4g+3 */
  for (i = 0; i < 16; i += 4) {
    r[i] = _mm512_unpacklo_epi64(t[i], t[i + 2]);
    r[i + 1] = _mm512_unpackhi_epi64(t[i], t[i + 2]);
    r[i + 2] = _mm512_unpacklo_epi64(t[i + 1], t[i + 3]);
    r[i + 3] = _mm512_unpackhi_epi64(t[i + 1], t[i + 3]);
  }
  for (k = 0; k < 4; k++) {
    /* quarters {0,1} and {2,3} of groups 0,1 then 2,3 ... */
    __m512i v0 = _mm512_shuffle_i32x4(r[k], r[4 + k], 0x44);
    __m512i v1 = _mm512_shuffle_i32x4(r[k], r[4 + k], 0xee);
    __m512i v2 = _mm512_shuffle_i32x4(r[8 + k], r[12 + k], 0x44);
    __m512i v3 = _mm512_shuffle_i32x4(r[8 + k], r[12 + k], 0xee);

    /* ... then quarter q of every group: word 4q+k of all 16 rows */
    w[k] = _mm512_shuffle_i32x4(v0, v2, 0x88);
    w[4 + k] = _mm512_shuffle_i32x4(v0, v2, 0xdd);
    w[8 + k] = _mm512_shuffle_i32x4(v1, v3, 0x88);
    w[12 + k] = _mm512_shuffle_i32x4(v1, v3, 0xdd);
  }
}

#define MB_NAME sha256_blocks_avx512
#define MB_TARGET TARGET_AVX512
#define MB_VEC __m512i
#define MB_LOAD(p) _mm512_load_si512((const void *)(p))
#define MB_STORE(p, v) _mm512_store_si512((void *)(p), v)
#define MB_ADD(a, b) _mm512_add_epi32(a, b)
#define MB_SET1(x) _mm512_set1_epi32((int)(x))
#define MB_BSIG0 z_bsig0
#define MB_BSIG1 z_bsig1
#define MB_SSIG0 z_ssig0
#define MB_SSIG1 z_ssig1
#define MB_CH z_ch
#define MB_MAJ z_maj
#define MB_LOAD_BLOCK z_load_block
#include "hash/sha256mb_kernel.h"

static int have_avx2(void)
{
  return __builtin_cpu_supports("avx2");
}

static int have_avx512vl(void)
{
  return __builtin_cpu_supports("avx2") &&
         __builtin_cpu_supports("avx512f") &&
         __builtin_cpu_supports("avx512vl");
}

static int have_avx512(void)
{
  return __builtin_cpu_supports("avx2") &&
         __builtin_cpu_supports("avx512f") &&
         __builtin_cpu_supports("avx512bw");
}

#endif /* MB_X86 */

static int have_always(void)
{
  return 1;
}

/* SHA extensions (CPUID.(EAX=7,ECX=0):EBX[bit 29], Intel SDM vol. 2A):
 * OpenSSL then hashes one buffer at about 1.5 GB/s or more
 * (shared/testbed), as fast as our widest kernel on this Xeon, without
 * AVX-512's lower clock and with no batch to gather. */
static int have_sha_ni(void)
{
#ifdef MB_X86
  unsigned a, b, c, d;

  return __get_cpuid_count(7, 0, &a, &b, &c, &d) && (b & bit_SHA) != 0;
#else
  return 0;
#endif
}

/* ---- the lanes ---- */

struct mb_kernel {
  enum sha256_path path;
  unsigned lanes;
  /* Throughput with every lane busy, MB/s on one core of the Xeon of
   * docs/PERFORMANCE.md (bench/sha256.sh): only the ratios matter, to
   * choose a narrower kernel when few messages remain. */
  unsigned speed;
  int (*have)(void);
  /* Hash nblocks blocks at ptr[l] into column l of st, l < lanes. */
  void (*blocks)(uint32_t st[8][MB_MAX_LANES], const uint8_t *const *ptr,
                 size_t nblocks);
};

/* Widest first. */
static const struct mb_kernel mb_kernels[] = {
#ifdef MB_X86
  { .path = SHA256_PATH_AVX512, .lanes = 16, .speed = 2500,
    .have = have_avx512, .blocks = sha256_blocks_avx512 },
  { .path = SHA256_PATH_AVX512VL, .lanes = 8, .speed = 1850,
    .have = have_avx512vl, .blocks = sha256_blocks_avx512vl },
  { .path = SHA256_PATH_AVX2, .lanes = 8, .speed = 1090,
    .have = have_avx2, .blocks = sha256_blocks_avx2 },
#endif
  { .path = SHA256_PATH_SCALAR, .lanes = 1, .speed = 190,
    .have = have_always, .blocks = sha256_blocks_scalar },
};
#define MB_NKERNELS (sizeof mb_kernels / sizeof mb_kernels[0])

/* One message in a lane. */
struct mb_lane {
  const uint8_t *p;      /* the next block to hash */
  size_t blocks;         /* blocks left at p */
  size_t msg;            /* index of the message in the call */
  unsigned tail_blocks;  /* blocks in tail, hashed once those at p are */
  int in_tail;           /* p points into tail */
  /* FIPS 180-4 5.1.1: the message's last partial block, a 1 bit, zeros
   * and the 64-bit big-endian bit length, ending on a block boundary. */
  uint8_t tail[2 * MB_BLOCK];
};

struct mb {
  const void *const *bufs;
  const size_t *lens;
  size_t n;
  uint8_t (*out)[DIGEST_LEN];
  size_t next;           /* the first message not yet given a lane */
  size_t openssl_speed;  /* OpenSSL's, in the unit of mb_kernel.speed */
  unsigned busy;         /* lanes 0..busy-1 hold messages */
  struct mb_lane lane[MB_MAX_LANES];
  /* row j = working hash word H_j of every lane */
  alignas(64) uint32_t st[8][MB_MAX_LANES];
};

/* Give lane l the next message of the call. */
static void mb_start(struct mb *m, unsigned l)
{
  struct mb_lane *ln = &m->lane[l];
  size_t len = m->lens[m->next], rem = len % MB_BLOCK;
  uint64_t bits = htobe64((uint64_t)len << 3);
  unsigned j;

  ln->msg = m->next++;
  ln->p = m->bufs[ln->msg];
  ln->blocks = len / MB_BLOCK;
  ln->tail_blocks = rem + 1 + sizeof bits <= MB_BLOCK ? 1 : 2;
  memset(ln->tail, 0, sizeof ln->tail);
  if (rem > 0)
    memcpy(ln->tail, ln->p + (len - rem), rem);
  ln->tail[rem] = 0x80;
  memcpy(ln->tail + ln->tail_blocks * MB_BLOCK - sizeof bits, &bits,
         sizeof bits);
  ln->in_tail = 0;
  if (ln->blocks == 0) {
    ln->p = ln->tail;
    ln->blocks = ln->tail_blocks;
    ln->tail_blocks = 0;
    ln->in_tail = 1;
  }
  for (j = 0; j < 8; j++)
    m->st[j][l] = sha256_h0[j];
}

/* Lane l's message is hashed: write its digest (FIPS 180-4 6.2.2: H0..H7
 * big-endian), then refill the lane or close the gap with the last lane. */
static void mb_finish(struct mb *m, unsigned l)
{
  unsigned j, last;

  for (j = 0; j < 8; j++) {
    uint32_t be = htobe32(m->st[j][l]);

    memcpy(m->out[m->lane[l].msg] + 4 * j, &be, 4);
  }
  if (m->next < m->n) {
    mb_start(m, l);
    return;
  }
  last = --m->busy;
  if (last != l) {
    struct mb_lane *to = &m->lane[l], *from = &m->lane[last];
    size_t at = from->in_tail ? (size_t)(from->p - from->tail) : 0;

    *to = *from;
    if (to->in_tail)
      to->p = to->tail + at;
    for (j = 0; j < 8; j++)
      m->st[j][l] = m->st[j][last];
  }
}

/* OpenSSL's one-buffer assembly on the same core (`openssl speed -evp
 * sha256`), in the unit of mb_kernel.speed; with SHA extensions, faster
 * than any kernel. */
#define MB_OPENSSL_SPEED 390
#define MB_OPENSSL_SHA_NI_SPEED ((size_t)-1)

/* Expected throughput of kernel k on `left` messages of about the same
 * length: they take ceil(left / lanes) passes of all lanes, and the lanes
 * left empty in the last pass are lost (10 messages: one pass of 16 lanes
 * beats two of 8). */
static size_t mb_speed(const struct mb_kernel *k, size_t left)
{
  size_t passes = (left + k->lanes - 1) / k->lanes;

  return left == 0 ? k->speed : k->speed * left / (passes * k->lanes);
}

/* The fastest kernel this CPU has for `left` messages, among mb_kernels[]
 * from index `from` on. */
static const struct mb_kernel *mb_pick(size_t left, size_t from)
{
  const struct mb_kernel *best = NULL;
  size_t i;

  for (i = from; i < MB_NKERNELS; i++) {
    const struct mb_kernel *k = &mb_kernels[i];

    if ((best == NULL || mb_speed(k, left) > mb_speed(best, left)) &&
        k->have())
      best = k;
  }
  return best;
}

static void openssl_many(const void *const *bufs, const size_t *lens,
                         size_t n, uint8_t (*out)[DIGEST_LEN])
{
  size_t i;

  for (i = 0; i < n; i++)
    digest_buf(lens[i] ? bufs[i] : "", lens[i], out[i]);
}

/* Hash every message of m, on kernel `fixed` if not NULL, else on the
 * best kernel from mb_kernels[from] on for the messages left at each
 * step. */
static void mb_run(struct mb *m, const struct mb_kernel *fixed, size_t from)
{
  for (;;) {
    size_t left = m->busy + (m->n - m->next);
    const struct mb_kernel *k = fixed ? fixed : mb_pick(left, from);
    const uint8_t *ptr[MB_MAX_LANES];
    unsigned l, run;
    size_t nblocks;

    /* Messages not started yet can go to OpenSSL, where it is faster. */
    if (fixed == NULL && m->busy == 0 &&
        mb_speed(k, left) < m->openssl_speed) {
      openssl_many(m->bufs + m->next, m->lens + m->next, m->n - m->next,
                   m->out + m->next);
      return;
    }

    while (m->busy < k->lanes && m->next < m->n)
      mb_start(m, m->busy++);
    if (m->busy == 0)
      return;
    /* A narrower kernel runs the first lanes; the others wait. */
    run = m->busy < k->lanes ? m->busy : k->lanes;
    nblocks = m->lane[0].blocks;
    for (l = 0; l < run; l++) {
      ptr[l] = m->lane[l].p;
      if (m->lane[l].blocks < nblocks)
        nblocks = m->lane[l].blocks;
    }
    /* Empty lanes hash a busy lane's blocks again, into unused columns. */
    for (; l < k->lanes; l++)
      ptr[l] = m->lane[0].p;
    k->blocks(m->st, ptr, nblocks);
    for (l = 0; l < run; l++) {
      struct mb_lane *ln = &m->lane[l];

      ln->p += nblocks * MB_BLOCK;
      ln->blocks -= nblocks;
      if (ln->blocks == 0 && ln->tail_blocks > 0) {
        ln->p = ln->tail;
        ln->blocks = ln->tail_blocks;
        ln->tail_blocks = 0;
        ln->in_tail = 1;
      }
    }
    /* Downwards, so that a lane moved into a gap has been looked at. */
    for (l = run; l-- > 0;)
      if (m->lane[l].blocks == 0)
        mb_finish(m, l);
  }
}

static const struct mb_kernel *mb_kernel_of(enum sha256_path path)
{
  size_t i;

  for (i = 0; i < MB_NKERNELS; i++)
    if (mb_kernels[i].path == path)
      return &mb_kernels[i];
  return NULL;
}

static void mb_many(const struct mb_kernel *fixed, size_t from,
                    size_t openssl_speed, const void *const *bufs,
                    const size_t *lens, size_t n, uint8_t (*out)[DIGEST_LEN])
{
  struct mb m = { .bufs = bufs, .lens = lens, .n = n, .out = out,
                  .openssl_speed = openssl_speed };

  mb_run(&m, fixed, from);
}

void sha256_many(const void *const *bufs, const size_t *lens, size_t n,
                 uint8_t (*out)[DIGEST_LEN])
{
  mb_many(NULL, 0,
          have_sha_ni() ? MB_OPENSSL_SHA_NI_SPEED : MB_OPENSSL_SPEED, bufs,
          lens, n, out);
}

unsigned sha256_lanes(void)
{
  return sha256_path_lanes(SHA256_PATH_AUTO);
}

const char *sha256_path_name(enum sha256_path path)
{
  static const char *const names[SHA256_PATH_COUNT] = {
    [SHA256_PATH_AUTO] = "auto",
    [SHA256_PATH_OPENSSL] = "openssl",
    [SHA256_PATH_SCALAR] = "scalar",
    [SHA256_PATH_AVX2] = "avx2",
    [SHA256_PATH_AVX512VL] = "avx512vl",
    [SHA256_PATH_AVX512] = "avx512",
  };

  return (unsigned)path < SHA256_PATH_COUNT ? names[path] : "?";
}

unsigned sha256_path_lanes(enum sha256_path path)
{
  const struct mb_kernel *k;

  switch (path) {
  case SHA256_PATH_AUTO:
    return have_sha_ni() ? 1 : mb_pick(MB_MAX_LANES, 0)->lanes;
  case SHA256_PATH_OPENSSL:
    return 1;
  default:
    k = mb_kernel_of(path);
    return k != NULL && k->have() ? k->lanes : 0;
  }
}

int sha256_many_path(enum sha256_path path, const void *const *bufs,
                     const size_t *lens, size_t n,
                     uint8_t (*out)[DIGEST_LEN])
{
  const struct mb_kernel *k;

  switch (path) {
  case SHA256_PATH_AUTO:
    sha256_many(bufs, lens, n, out);
    return 0;
  case SHA256_PATH_OPENSSL:
    openssl_many(bufs, lens, n, out);
    return 0;
  default:
    k = mb_kernel_of(path);
    if (k == NULL || !k->have()) {
      ferry_error("sha256: the %s implementation is not available on this "
                  "CPU", sha256_path_name(path));
      return -1;
    }
    mb_many(k, 0, 0, bufs, lens, n, out);
    return 0;
  }
}

int sha256_many_upto(enum sha256_path widest, const void *const *bufs,
                     const size_t *lens, size_t n,
                     uint8_t (*out)[DIGEST_LEN])
{
  const struct mb_kernel *k = mb_kernel_of(widest);

  if (widest == SHA256_PATH_AUTO || widest == SHA256_PATH_OPENSSL)
    return sha256_many_path(widest, bufs, lens, n, out);
  if (k == NULL || !k->have()) {
    ferry_error("sha256: the %s implementation is not available on this "
                "CPU", sha256_path_name(widest));
    return -1;
  }
  mb_many(NULL, (size_t)(k - mb_kernels), MB_OPENSSL_SPEED, bufs, lens, n,
          out);
  return 0;
}
