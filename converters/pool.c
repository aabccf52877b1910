/* pool.c - fork-join worker pool (see pool.h). */
#include "pool.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

#include "util/error.h"

struct pool {
  unsigned threads, started;
  pthread_t *tids;
  pthread_mutex_t lock;
  pthread_cond_t work, done;

  /* the current job */
  pool_task fn;
  void *arg;
  size_t n, next, finished;
  unsigned long generation;
  int failed, stop;
  char errmsg[1024];
};

/* Take and run tasks of the current job until none is left; called with
 * the lock held, returns with it held. */
static void run_tasks(struct pool *p, unsigned worker)
{
  while (p->next < p->n) {
    size_t i = p->next++;
    int r;

    pthread_mutex_unlock(&p->lock);
    r = p->fn(p->arg, i, worker);
    pthread_mutex_lock(&p->lock);
    if (r == -1 && !p->failed) {
      p->failed = 1;
      snprintf(p->errmsg, sizeof p->errmsg, "%s", ferry_errmsg());
    }
    if (++p->finished == p->n)
      pthread_cond_broadcast(&p->done);
  }
}

struct worker_arg {
  struct pool *p;
  unsigned id;
};

static void *worker_main(void *opaque)
{
  struct worker_arg *wa = opaque;
  struct pool *p = wa->p;
  unsigned id = wa->id;
  unsigned long seen = 0;

  free(wa);
  pthread_mutex_lock(&p->lock);
  for (;;) {
    while (!p->stop && p->generation == seen)
      pthread_cond_wait(&p->work, &p->lock);
    if (p->stop)
      break;
    seen = p->generation;
    run_tasks(p, id);
  }
  pthread_mutex_unlock(&p->lock);
  return NULL;
}

struct pool *pool_create(unsigned threads)
{
  struct pool *p = calloc(1, sizeof *p);
  unsigned i;

  if (p == NULL)
    goto oom;
  if (threads == 0)
    threads = 1;
  p->threads = threads;
  pthread_mutex_init(&p->lock, NULL);
  pthread_cond_init(&p->work, NULL);
  pthread_cond_init(&p->done, NULL);
  p->tids = calloc(threads, sizeof *p->tids);
  if (p->tids == NULL)
    goto oom;
  for (i = 1; i < threads; i++) {
    struct worker_arg *wa = malloc(sizeof *wa);

    if (wa == NULL)
      goto oom;
    wa->p = p;
    wa->id = i;
    errno = pthread_create(&p->tids[i], NULL, worker_main, wa);
    if (errno != 0) {
      ferry_error("cannot start a worker thread: %m");
      free(wa);
      pool_close(p);
      return NULL;
    }
    p->started++;
  }
  return p;
oom:
  ferry_error("out of memory");
  pool_close(p);
  return NULL;
}

unsigned pool_threads(const struct pool *p)
{
  return p->threads;
}

int pool_run(struct pool *p, size_t n, pool_task fn, void *arg)
{
  int failed;

  if (n == 0)
    return 0;
  pthread_mutex_lock(&p->lock);
  p->fn = fn;
  p->arg = arg;
  p->n = n;
  p->next = p->finished = 0;
  p->failed = 0;
  if (n > 1 && p->started > 0) {
    p->generation++;
    pthread_cond_broadcast(&p->work);
  }
  run_tasks(p, 0);
  while (p->finished < p->n)
    pthread_cond_wait(&p->done, &p->lock);
  failed = p->failed;
  p->n = p->next = p->finished = 0;
  pthread_mutex_unlock(&p->lock);
  if (failed) {
    ferry_error_set(p->errmsg);
    return -1;
  }
  return 0;
}

void pool_close(struct pool *p)
{
  unsigned i;

  if (p == NULL)
    return;
  pthread_mutex_lock(&p->lock);
  p->stop = 1;
  pthread_cond_broadcast(&p->work);
  pthread_mutex_unlock(&p->lock);
  for (i = 1; i <= p->started; i++)
    pthread_join(p->tids[i], NULL);
  pthread_mutex_destroy(&p->lock);
  pthread_cond_destroy(&p->work);
  pthread_cond_destroy(&p->done);
  free(p->tids);
  free(p);
}
