/* store/retry.h - bounded retries for requests to object stores.
 *
 * Exponential backoff with full jitter (AWS architecture blog,
 * "Exponential Backoff And Jitter"), bounded both in attempts and in
 * time.  What to retry is the caller's call; the policy is shared:
 * transport failures (refused, reset, timeouts, dropped connections),
 * 5xx, 429 and 408 are retried, authentication and other 4xx are not.
 *
 *   FERRY_RETRIES        attempts in all, 1 to 100 (default 10)
 *   FERRY_RETRY_SECONDS  time budget of one request, seconds (default 300)
 */
#ifndef FERRY_RETRY_H
#define FERRY_RETRY_H

#include <time.h>

#define RETRY_ATTEMPTS_DEFAULT 10
#define RETRY_SECONDS_DEFAULT 300
#define RETRY_BASE_MS 250
#define RETRY_CAP_MS 20000

struct retry {
  unsigned attempt;                 /* attempts made so far */
  unsigned max_attempts;
  double seconds;                   /* time budget */
  struct timespec start;
};

/* Start counting for one request, with the environment's limits. */
void retry_start(struct retry *r);

/* After failed attempt r->attempt: sleep (at most until the budget ends)
 * and return 1 when another attempt may be made; 0 when the attempts or
 * the time are spent.  retry_after_ms > 0 is the server's Retry-After,
 * honoured up to the backoff cap. */
int retry_again(struct retry *r, unsigned retry_after_ms);

/* Seconds since retry_start. */
double retry_elapsed(const struct retry *r);

#endif
