/* store/retry.c - bounded retries (see retry.h). */
#include "store/retry.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>

static unsigned env_uint(const char *name, unsigned def, unsigned lo,
                         unsigned hi)
{
  const char *s = getenv(name);
  unsigned long v;
  char *end;

  if (s == NULL || *s == '\0')
    return def;
  errno = 0;
  v = strtoul(s, &end, 10);
  if (errno || *end || v < lo || v > hi)
    return def;
  return (unsigned)v;
}

void retry_start(struct retry *r)
{
  r->attempt = 0;
  r->max_attempts = env_uint("FERRY_RETRIES", RETRY_ATTEMPTS_DEFAULT, 1, 100);
  r->seconds = env_uint("FERRY_RETRY_SECONDS", RETRY_SECONDS_DEFAULT, 1,
                        86400);
  clock_gettime(CLOCK_MONOTONIC, &r->start);
}

double retry_elapsed(const struct retry *r)
{
  struct timespec t;

  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)(t.tv_sec - r->start.tv_sec) +
         (double)(t.tv_nsec - r->start.tv_nsec) / 1e9;
}

int retry_again(struct retry *r, unsigned retry_after_ms)
{
  static _Thread_local unsigned seed;
  unsigned long long ceiling = RETRY_BASE_MS;
  double left = r->seconds - retry_elapsed(r);
  struct timespec ts;
  unsigned ms, i;

  if (r->attempt >= r->max_attempts || left <= 0)
    return 0;
  if (seed == 0)
    seed = (unsigned)time(NULL) ^ (unsigned)(uintptr_t)&ts;
  for (i = 1; i < r->attempt && ceiling < RETRY_CAP_MS; i++)
    ceiling *= 2;
  if (ceiling > RETRY_CAP_MS)
    ceiling = RETRY_CAP_MS;
  ms = (unsigned)(rand_r(&seed) % (ceiling + 1));
  if (retry_after_ms > ms)
    ms = retry_after_ms < RETRY_CAP_MS ? retry_after_ms : RETRY_CAP_MS;
  if (ms / 1000.0 > left)
    ms = (unsigned)(left * 1000);
  ts.tv_sec = ms / 1000;
  ts.tv_nsec = (long)(ms % 1000) * 1000000L;
  while (nanosleep(&ts, &ts) == -1 && errno == EINTR)
    ;
  return retry_elapsed(r) < r->seconds;
}
