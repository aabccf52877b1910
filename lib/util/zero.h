/* util/zero.h - the one all-zero test, on the hot path of clone (every
 * chunk read) and convert (every grain, granule and block written). */
#ifndef FERRY_ZERO_H
#define FERRY_ZERO_H

#include <stddef.h>

/* 1 if buf[0..len) is all zero bytes (len 0 included). */
int buf_is_zero(const void *buf, size_t len);

#endif
