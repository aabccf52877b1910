/* test.h - a minimal unit-test harness: each CHECK states one expectation
 * and a failed one names the file, line and expression. */
#ifndef FERRY_TEST_H
#define FERRY_TEST_H

#include <ftw.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int test_failures;
static int test_checks;

#define CHECK(cond)                                                         \
  do {                                                                      \
    test_checks++;                                                          \
    if (!(cond)) {                                                          \
      fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__,      \
              #cond);                                                       \
      test_failures++;                                                      \
    }                                                                       \
  } while (0)

#define CHECK_U64(a, b)                                                     \
  do {                                                                      \
    uint64_t a_ = (uint64_t)(a), b_ = (uint64_t)(b);                        \
    test_checks++;                                                          \
    if (a_ != b_) {                                                         \
      fprintf(stderr, "%s:%d: %s == %" PRIu64 ", expected %" PRIu64 "\n",   \
              __FILE__, __LINE__, #a, a_, b_);                              \
      test_failures++;                                                      \
    }                                                                       \
  } while (0)

#define CHECK_STR(a, b)                                                     \
  do {                                                                      \
    const char *a_ = (a), *b_ = (b);                                        \
    test_checks++;                                                          \
    if (a_ == NULL || strcmp(a_, b_) != 0) {                                \
      fprintf(stderr, "%s:%d: %s == \"%s\", expected \"%s\"\n", __FILE__,   \
              __LINE__, #a, a_ ? a_ : "(null)", b_);                        \
      test_failures++;                                                      \
    }                                                                       \
  } while (0)

/* The message contains needle. */
#define CHECK_CONTAINS(msg, needle)                                         \
  do {                                                                      \
    const char *m_ = (msg);                                                 \
    test_checks++;                                                          \
    if (m_ == NULL || strstr(m_, needle) == NULL) {                         \
      fprintf(stderr, "%s:%d: \"%s\" does not contain \"%s\"\n", __FILE__,  \
              __LINE__, m_ ? m_ : "(null)", needle);                        \
      test_failures++;                                                      \
    }                                                                       \
  } while (0)

#define TEST_MAIN_END()                                                     \
  do {                                                                      \
    fprintf(stderr, "%s: %d checks, %d failed\n", __FILE__, test_checks,    \
            test_failures);                                                 \
    return test_failures ? 1 : 0;                                           \
  } while (0)

/* A fresh empty directory under $TMPDIR; the caller removes it. */
static inline char *test_tmpdir(void)
{
  const char *base = getenv("TMPDIR");
  char *path;

  if (asprintf(&path, "%s/ferry-unit-XXXXXX", base && *base ? base : "/tmp")
      == -1 || mkdtemp(path) == NULL) {
    perror("mkdtemp");
    exit(2);
  }
  return path;
}

static inline int test_rm_one(const char *path, const struct stat *st,
                              int flag, struct FTW *ftw)
{
  (void)st;
  (void)flag;
  (void)ftw;
  return remove(path);
}

static inline void test_rmrf(const char *path)
{
  nftw(path, test_rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

#endif
