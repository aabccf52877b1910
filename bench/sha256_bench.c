/* sha256_bench.c - per-core throughput of each SHA-256 implementation of
 * lib/hash/sha256mb.c on batches of equal buffers (default 4 MiB, ferry's
 * default chunk): MB/s of the calling thread's CPU time, so that other
 * load on the machine costs wall time but not the figure, and of the
 * fastest call and the median call: a loaded (or virtual) machine also
 * steals CPU time and cache.  Run it pinned (bench/sha256.sh uses
 * taskset -c 0).
 *
 *   sha256-bench [SIZE_MIB [SECONDS [BATCH...]]]
 *
 * One line per path and batch size (default: the path's lanes):
 * "path lanes batch MB/s-fastest MB/s-median MB/s-wall"; exit 1 if a path
 * gives a digest that differs from OpenSSL's. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "hash/digest.h"
#include "hash/sha256mb.h"

#define MAX_BATCH 64
#define MAX_LANES 16
#define MAX_CALLS 10000

static int cmp_double(const void *a, const void *b)
{
  double x = *(const double *)a, y = *(const double *)b;

  return x < y ? -1 : x > y;
}

static double now(clockid_t clock)
{
  struct timespec ts;

  clock_gettime(clock, &ts);
  return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static long arg_long(const char *s, long lo, long hi, const char *what)
{
  char *end;
  long v = strtol(s, &end, 10);

  if (*s == '\0' || *end != '\0' || v < lo || v > hi) {
    fprintf(stderr, "sha256-bench: %s must be %ld..%ld, not \"%s\"\n", what,
            lo, hi, s);
    exit(2);
  }
  return v;
}

int main(int argc, char **argv)
{
  size_t size = (size_t)(argc > 1 ? arg_long(argv[1], 1, 64, "SIZE_MIB") : 4)
                << 20;
  double secs = argc > 2 ? (double)arg_long(argv[2], 1, 60, "SECONDS") : 2;
  static const void *bufs[MAX_BATCH];
  static size_t lens[MAX_BATCH];
  static uint8_t out[MAX_BATCH][DIGEST_LEN], want[MAX_BATCH][DIGEST_LEN];
  static double t[MAX_CALLS];
  unsigned batches[16], nbatch = 0, nbuf = MAX_LANES, b, p;
  size_t i, j;
  int rc = 0;

  for (i = 3; i < (size_t)argc && nbatch < 16; i++) {
    batches[nbatch] = (unsigned)arg_long(argv[i], 1, MAX_BATCH, "BATCH");
    if (batches[nbatch] > nbuf)
      nbuf = batches[nbatch];
    nbatch++;
  }
  for (i = 0; i < nbuf; i++) {
    uint8_t *p8 = malloc(size);

    if (p8 == NULL) {
      perror("sha256-bench: malloc");
      return 1;
    }
    for (j = 0; j < size; j++)
      p8[j] = (uint8_t)(j * 2654435761u >> 13 ^ i);
    bufs[i] = p8;
    lens[i] = size;
    digest_buf(p8, size, want[i]);
  }
  printf("# %zu MiB buffers, lanes of sha256_many on this CPU: %u\n",
         size >> 20, sha256_lanes());
  printf("# path lanes batch MB/s(fastest call) MB/s(median call) "
         "MB/s(wall)\n");
  for (p = 0; p < SHA256_PATH_COUNT; p++) {
    unsigned lanes = sha256_path_lanes(p);
    const unsigned *bl = nbatch ? batches : &lanes;

    if (lanes == 0) {
      printf("%s 0 - not on this CPU\n", sha256_path_name(p));
      continue;
    }
    for (b = 0; b < (nbatch ? nbatch : 1); b++) {
      size_t bytes = size * bl[b];
      double start, w;
      unsigned k = 0;

      /* a warm-up call, checked, then whole calls until time is up */
      memset(out, 0, sizeof out);
      if (sha256_many_path(p, bufs, lens, bl[b], out) == -1 ||
          memcmp(out, want, bl[b] * sizeof out[0]) != 0) {
        fprintf(stderr, "sha256-bench: %s gives wrong digests\n",
                sha256_path_name(p));
        rc = 1;
        continue;
      }
      start = now(CLOCK_MONOTONIC);
      do {
        double c0 = now(CLOCK_THREAD_CPUTIME_ID);

        sha256_many_path(p, bufs, lens, bl[b], out);
        t[k++] = now(CLOCK_THREAD_CPUTIME_ID) - c0;
        w = now(CLOCK_MONOTONIC) - start;
      } while (k < MAX_CALLS && (w < secs || k < 5));
      qsort(t, k, sizeof t[0], cmp_double);
      printf("%s %u %u %.0f %.0f %.0f\n", sha256_path_name(p), lanes, bl[b],
             bytes / t[0] / 1e6, bytes / t[k / 2] / 1e6,
             bytes * k / w / 1e6);
      fflush(stdout);
    }
  }
  for (i = 0; i < nbuf; i++)
    free((void *)bufs[i]);
  return rc;
}
