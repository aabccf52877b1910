/* bytes.h - small helpers the format files share: all-ones and first
 * non-zero tests (the zero test is util/zero.h), rounding, unaligned
 * big/little-endian fields in on-disk structures. */
#ifndef FERRY_BYTES_H
#define FERRY_BYTES_H

#include <endian.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "util/zero.h"

#define KIB(n) ((uint64_t)(n) << 10)
#define MIB(n) ((uint64_t)(n) << 20)
#define GIB(n) ((uint64_t)(n) << 30)

/* Round up to a multiple of a power of two; callers keep n far below
 * UINT64_MAX (disk sizes are at most 2^63 by the manifest's parser). */
static inline uint64_t round_up(uint64_t n, uint64_t align)
{
  return (n + align - 1) & ~(align - 1);
}

static inline uint64_t div_round_up(uint64_t n, uint64_t d)
{
  return n / d + (n % d != 0);
}

/* Whether buf[0..len) is all 0xff bytes. */
static inline int is_all_ones(const void *buf, size_t len)
{
  const unsigned char *p = buf;

  return len == 0 || (p[0] == 0xff && memcmp(p, p + 1, len - 1) == 0);
}

/* Offset of the first non-zero byte of buf[0..len), or len. */
static inline size_t first_nonzero(const void *buf, size_t len)
{
  const unsigned char *p = buf;
  size_t i;

  for (i = 0; i < len; i++)
    if (p[i])
      return i;
  return len;
}

/* Unaligned fields, explicit byte order (STYLE.md: convert only at the
 * boundary). */
static inline void put_be16(void *p, uint16_t v)
{
  v = htobe16(v);
  memcpy(p, &v, 2);
}

static inline void put_be32(void *p, uint32_t v)
{
  v = htobe32(v);
  memcpy(p, &v, 4);
}

static inline void put_be64(void *p, uint64_t v)
{
  v = htobe64(v);
  memcpy(p, &v, 8);
}

static inline void put_le32(void *p, uint32_t v)
{
  v = htole32(v);
  memcpy(p, &v, 4);
}

static inline void put_le64(void *p, uint64_t v)
{
  v = htole64(v);
  memcpy(p, &v, 8);
}

static inline uint16_t get_be16(const void *p)
{
  uint16_t v;

  memcpy(&v, p, 2);
  return be16toh(v);
}

static inline uint32_t get_be32(const void *p)
{
  uint32_t v;

  memcpy(&v, p, 4);
  return be32toh(v);
}

static inline uint64_t get_be64(const void *p)
{
  uint64_t v;

  memcpy(&v, p, 8);
  return be64toh(v);
}

static inline uint32_t get_le32(const void *p)
{
  uint32_t v;

  memcpy(&v, p, 4);
  return le32toh(v);
}

static inline uint64_t get_le64(const void *p)
{
  uint64_t v;

  memcpy(&v, p, 8);
  return le64toh(v);
}

#endif
