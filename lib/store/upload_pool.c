/* store/upload_pool.c - parallel part uploads (see upload_pool.h). */
#include "store/upload_pool.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/error.h"

#define POOL_MAX_THREADS 16

struct upload_pool {
  upload_fn fn;
  void *opaque;
  unsigned threads, started;
  pthread_t tid[POOL_MAX_THREADS];
  pthread_mutex_t lock;
  pthread_cond_t cond;
  struct upload_job jobs[POOL_MAX_THREADS + 1];
  int state[POOL_MAX_THREADS + 1];  /* FREE, FILLING, QUEUED, RUNNING */
  unsigned queued, running;
  int stop, failed;
  char errmsg[1024];
};

enum { FREE, FILLING, QUEUED, RUNNING };

static void *pool_main(void *arg)
{
  struct upload_pool *p = arg;

  pthread_mutex_lock(&p->lock);
  for (;;) {
    unsigned i, pick = 0;
    uint32_t lowest = UINT32_MAX;
    int r, skip;

    while (!p->stop && p->queued == 0)
      pthread_cond_wait(&p->cond, &p->lock);
    if (p->stop)
      break;
    /* lowest number first: the object fills front to back */
    for (i = 0; i <= p->threads; i++)
      if (p->state[i] == QUEUED && p->jobs[i].number < lowest) {
        lowest = p->jobs[i].number;
        pick = i;
      }
    p->state[pick] = RUNNING;
    p->queued--;
    p->running++;
    skip = p->failed;
    pthread_mutex_unlock(&p->lock);
    r = skip ? 0 : p->fn(p->opaque, &p->jobs[pick]);
    pthread_mutex_lock(&p->lock);
    if (r == -1 && !p->failed) {
      p->failed = 1;
      snprintf(p->errmsg, sizeof p->errmsg, "%s", ferry_errmsg());
    }
    p->state[pick] = FREE;
    p->running--;
    pthread_cond_broadcast(&p->cond);
  }
  pthread_mutex_unlock(&p->lock);
  return NULL;
}

struct upload_pool *upload_pool_create(unsigned threads, upload_fn fn,
                                       void *opaque)
{
  struct upload_pool *p = calloc(1, sizeof *p);

  if (p == NULL) {
    ferry_error("out of memory");
    return NULL;
  }
  p->threads = threads > POOL_MAX_THREADS ? POOL_MAX_THREADS : threads;
  p->fn = fn;
  p->opaque = opaque;
  pthread_mutex_init(&p->lock, NULL);
  pthread_cond_init(&p->cond, NULL);
  return p;
}

static int failed_locked(struct upload_pool *p)
{
  if (p->failed)
    ferry_error_set(p->errmsg);
  return p->failed;
}

struct upload_job *upload_pool_get(struct upload_pool *p, size_t cap)
{
  struct upload_job *j = NULL;
  unsigned i;

  pthread_mutex_lock(&p->lock);
  for (;;) {
    if (failed_locked(p))
      goto out;
    for (i = 0; i <= p->threads; i++)
      if (p->state[i] == FREE)
        break;
    if (i <= p->threads)
      break;
    pthread_cond_wait(&p->cond, &p->lock);
  }
  j = &p->jobs[i];
  if (j->cap < cap) {
    free(j->buf);
    j->buf = malloc(cap);
    j->cap = j->buf ? cap : 0;
    if (j->buf == NULL) {
      ferry_error("out of memory for an upload buffer of %zu bytes", cap);
      j = NULL;
      goto out;
    }
  }
  p->state[i] = FILLING;
  j->len = 0;
out:
  pthread_mutex_unlock(&p->lock);
  return j;
}

void upload_pool_put(struct upload_pool *p, struct upload_job *j)
{
  if (j == NULL)
    return;
  pthread_mutex_lock(&p->lock);
  p->state[j - p->jobs] = FREE;
  pthread_cond_broadcast(&p->cond);
  pthread_mutex_unlock(&p->lock);
}

int upload_pool_submit(struct upload_pool *p, struct upload_job *j)
{
  unsigned i = (unsigned)(j - p->jobs);
  int r = 0;

  if (p->threads == 0) {
    r = p->fn(p->opaque, j);
    upload_pool_put(p, j);
    return r;
  }
  pthread_mutex_lock(&p->lock);
  if (failed_locked(p)) {
    p->state[i] = FREE;
    r = -1;
    goto out;
  }
  while (p->started < p->threads) {
    if ((errno = pthread_create(&p->tid[p->started], NULL, pool_main, p))
        != 0) {
      if (p->started > 0)
        break;                      /* fewer threads will do */
      ferry_error("cannot start an upload thread: %m");
      p->state[i] = FREE;
      r = -1;
      goto out;
    }
    p->started++;
  }
  p->state[i] = QUEUED;
  p->queued++;
  pthread_cond_broadcast(&p->cond);
out:
  pthread_mutex_unlock(&p->lock);
  return r;
}

int upload_pool_finish(struct upload_pool *p)
{
  int r;

  pthread_mutex_lock(&p->lock);
  while (!p->failed && (p->queued > 0 || p->running > 0))
    pthread_cond_wait(&p->cond, &p->lock);
  /* a failure: let running uploads end before the caller moves on */
  while (p->running > 0)
    pthread_cond_wait(&p->cond, &p->lock);
  r = failed_locked(p) ? -1 : 0;
  pthread_mutex_unlock(&p->lock);
  return r;
}

void upload_pool_close(struct upload_pool *p)
{
  unsigned i;

  if (p == NULL)
    return;
  pthread_mutex_lock(&p->lock);
  p->stop = 1;
  pthread_cond_broadcast(&p->cond);
  pthread_mutex_unlock(&p->lock);
  for (i = 0; i < p->started; i++)
    pthread_join(p->tid[i], NULL);
  for (i = 0; i <= POOL_MAX_THREADS; i++)
    free(p->jobs[i].buf);
  pthread_mutex_destroy(&p->lock);
  pthread_cond_destroy(&p->cond);
  free(p);
}
