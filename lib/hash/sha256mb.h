/* hash/sha256mb.h - multi-buffer SHA-256: several independent messages hashed
 * at once, one per SIMD lane (AVX2: 8 lanes, AVX-512: 16).
 *
 * SHA-256 of one message is a chain of dependent compressions, so one
 * buffer cannot use a wide vector unit; several buffers can.  A caller
 * that holds several chunks at a time (clone reading ahead, convert
 * fetching ahead) passes them together and gets each chunk's standard
 * SHA-256 (FIPS 180-4), the same bytes digest_buf() gives.
 *
 * The implementation is chosen at run time from the CPU's features; the
 * build needs no -m flags and the code runs on any x86-64 (or other)
 * CPU, falling back to OpenSSL one buffer at a time (also on CPUs with
 * SHA extensions, where OpenSSL is as fast). */
#ifndef FERRY_SHA256MB_H
#define FERRY_SHA256MB_H

#include <stddef.h>
#include <stdint.h>

#include "hash/digest.h"

/* out[i] = SHA-256(bufs[i][0..lens[i])) for every i < n.  Lengths may
 * differ and may be 0 (bufs[i] may then be NULL).  Buffers need no
 * alignment.  Cannot fail, allocates nothing (a few KiB of stack);
 * safe to call from several threads at once.  Throughput grows with n up
 * to sha256_lanes() (and a little beyond, as lanes that finish early are
 * refilled with the next buffer). */
void sha256_many(const void *const *bufs, const size_t *lens, size_t n,
                 uint8_t (*out)[DIGEST_LEN]);

/* How many buffers one pass hashes at once on this CPU (1, 8 or 16): the
 * batch a caller should gather for full throughput.  1 on CPUs with SHA
 * extensions, where OpenSSL's one-buffer code is as fast. */
unsigned sha256_lanes(void);

/* The implementations, for tests and benchmarks. */
enum sha256_path {
  SHA256_PATH_AUTO,     /* what sha256_many does on this CPU */
  SHA256_PATH_OPENSSL,  /* libcrypto, one buffer at a time */
  SHA256_PATH_SCALAR,   /* portable C, one buffer at a time */
  SHA256_PATH_AVX2,     /* 8 lanes of 32 bits in 256-bit AVX2 registers */
  SHA256_PATH_AVX512VL, /* 8 lanes, 256-bit, AVX-512VL rotate + ternlog */
  SHA256_PATH_AVX512,   /* 16 lanes in 512-bit AVX-512 registers */
  SHA256_PATH_COUNT
};

/* "auto", "openssl", "scalar", "avx2", "avx512vl", "avx512". */
const char *sha256_path_name(enum sha256_path path);

/* Lanes of a path (1, 8 or 16), 0 if this CPU (or build) lacks it. */
unsigned sha256_path_lanes(enum sha256_path path);

/* sha256_many on one path only, every buffer of the call, stragglers
 * included; -1 with an error recorded if this CPU lacks the path. */
int sha256_many_path(enum sha256_path path, const void *const *bufs,
                     const size_t *lens, size_t n,
                     uint8_t (*out)[DIGEST_LEN]);

/* sha256_many as it runs on a CPU without SHA extensions whose widest
 * path is `widest` (one of the SIMD paths or "scalar" for none): its
 * choices between kernels, and OpenSSL, for CPUs other than this one; -1
 * with an error recorded if this CPU lacks that path. */
int sha256_many_upto(enum sha256_path widest, const void *const *bufs,
                     const size_t *lens, size_t n,
                     uint8_t (*out)[DIGEST_LEN]);

#endif
