#include "clone/ratelimit.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <time.h>

#include "util/error.h"

struct ratelimit {
  pthread_mutex_t lock;
  double rate;            /* bytes per second */
  double next;            /* monotonic time the next send may start */
};

static double now(void)
{
  struct timespec t;

  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

struct ratelimit *ratelimit_create(uint64_t bytes_per_sec)
{
  struct ratelimit *rl = calloc(1, sizeof *rl);

  if (rl == NULL) {
    ferry_error("out of memory");
    return NULL;
  }
  pthread_mutex_init(&rl->lock, NULL);
  rl->rate = (double)bytes_per_sec;
  rl->next = now();
  return rl;
}

void ratelimit_close(struct ratelimit *rl)
{
  if (rl == NULL)
    return;
  pthread_mutex_destroy(&rl->lock);
  free(rl);
}

void ratelimit_take(struct ratelimit *rl, uint64_t n)
{
  double t = now(), start, wait;

  pthread_mutex_lock(&rl->lock);
  /* an idle link does not bank more than a second of credit */
  if (rl->next < t - 1.0)
    rl->next = t - 1.0;
  start = rl->next;
  rl->next += (double)n / rl->rate;
  pthread_mutex_unlock(&rl->lock);
  wait = start - t;
  if (wait > 0) {
    struct timespec ts = {
      .tv_sec = (time_t)wait,
      .tv_nsec = (long)((wait - floor(wait)) * 1e9),
    };

    while (nanosleep(&ts, &ts) == -1 && errno == EINTR)
      ;
  }
}
