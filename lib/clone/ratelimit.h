/* clone/ratelimit.h - a shared bandwidth cap (--max-rate) for WAN links. */
#ifndef FERRY_RATELIMIT_H
#define FERRY_RATELIMIT_H

#include <stdint.h>

struct ratelimit;

/* bytes_per_sec > 0; NULL with an error on OOM. */
struct ratelimit *ratelimit_create(uint64_t bytes_per_sec);
void ratelimit_close(struct ratelimit *rl);

/* Sleep until sending n more bytes keeps the average at the cap.  Several
 * threads may call it at once; each reserves its own slot of time. */
void ratelimit_take(struct ratelimit *rl, uint64_t n);

#endif
