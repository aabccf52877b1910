/* util/vector.h - one typed growable array (libnbd common/utils/vector.h).
 *
 *   DEFINE_VECTOR_TYPE(string_vector, char *);
 *   string_vector v = empty_vector;
 *   if (string_vector_append(&v, s) == -1) ...
 *   free(v.ptr);
 */
#ifndef FERRY_VECTOR_H
#define FERRY_VECTOR_H

#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "util/error.h"

#define empty_vector { .ptr = NULL, .len = 0, .cap = 0 }

#define DEFINE_VECTOR_TYPE(name, type)                                       \
  typedef struct {                                                           \
    type *ptr;                                                               \
    size_t len, cap;                                                         \
  } name;                                                                    \
                                                                             \
  /* Make room for n more elements; -1 with an error on overflow or OOM. */ \
  static inline __attribute__((unused)) int                                  \
  name##_reserve(name *v, size_t n)                                          \
  {                                                                          \
    size_t want, cap;                                                        \
    type *p;                                                                 \
    if (__builtin_add_overflow(v->len, n, &want)) {                         \
      ferry_error("vector too large");                                       \
      return -1;                                                             \
    }                                                                        \
    if (want <= v->cap)                                                      \
      return 0;                                                              \
    cap = v->cap ? v->cap : 8;                                               \
    while (cap < want)                                                       \
      if (__builtin_mul_overflow(cap, 2, &cap)) {                           \
        ferry_error("vector too large");                                     \
        return -1;                                                           \
      }                                                                      \
    p = reallocarray(v->ptr, cap, sizeof(type));                             \
    if (p == NULL) {                                                         \
      ferry_error("out of memory growing a vector to %zu", cap);             \
      return -1;                                                             \
    }                                                                        \
    v->ptr = p;                                                              \
    v->cap = cap;                                                            \
    return 0;                                                                \
  }                                                                          \
                                                                             \
  static inline __attribute__((unused)) int                                  \
  name##_append(name *v, type elem)                                          \
  {                                                                          \
    if (name##_reserve(v, 1) == -1)                                          \
      return -1;                                                             \
    v->ptr[v->len++] = elem;                                                 \
    return 0;                                                                \
  }                                                                          \
                                                                             \
  static inline __attribute__((unused)) void                                 \
  name##_reset(name *v)                                                      \
  {                                                                          \
    free(v->ptr);                                                            \
    v->ptr = NULL;                                                           \
    v->len = v->cap = 0;                                                     \
  }

#endif
