/* pool.h - a fork-join pool of worker threads for CPU-bound work
 * (compressing grains and gzip blocks, hashing).
 *
 * pool_run() hands out n tasks to the workers and to the calling thread
 * and returns when all are done, so a task's buffers may live on the
 * caller's stack.  One caller at a time. */
#ifndef FERRY_POOL_H
#define FERRY_POOL_H

#include <stddef.h>

/* Run task i; worker is 0 .. pool_threads() - 1 and names per-thread
 * state (a compressor).  -1 with ferry_error() on failure. */
typedef int (*pool_task)(void *arg, size_t i, unsigned worker);

struct pool;

/* threads in all, counting the caller (1 = run everything inline). */
struct pool *pool_create(unsigned threads);
unsigned pool_threads(const struct pool *p);

/* Run tasks 0..n-1; -1 with the first failing task's message (the other
 * tasks still ran). */
int pool_run(struct pool *p, size_t n, pool_task fn, void *arg);

void pool_close(struct pool *p);                /* NULL ok */

#endif
