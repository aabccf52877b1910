/* util/progress.h - a progress line on a terminal: done/total, rate, ETA.
 * Silent when stderr is not a terminal or when quiet. */
#ifndef FERRY_PROGRESS_H
#define FERRY_PROGRESS_H

#include <stdint.h>
#include <time.h>

struct progress {
  const char *label;
  uint64_t total, done;
  int active;
  struct timespec start, last;
};

void progress_init(struct progress *p, const char *label, uint64_t total,
                   int quiet);
void progress_add(struct progress *p, uint64_t n);
void progress_set(struct progress *p, uint64_t done, uint64_t total);
void progress_done(struct progress *p);

/* "1.5 GiB" into buf (size >= 16). */
const char *human_bytes(uint64_t n, char *buf, size_t size);

#endif
